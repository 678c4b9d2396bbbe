"""The classifier protocol of the paper's text (normalisation, augmentation) and common random numbers."""

import logging

import numpy as np
import pytest
import torch

from ganaug.classifier import augment as aug_mod
from ganaug.classifier import training as tr
from ganaug.classifier.augment import DEFAULT_AUGMENT, BatchAugment, keyed_uniforms
from ganaug.classifier.models import IMAGENET_MEAN, IMAGENET_STD
from ganaug.classifier.predict import features, predict_proba
from ganaug.classifier.training import load_classifier, run_seed, train_classifier
from ganaug.io import InputError, load_torch

LOG = logging.getLogger("ganaug.test")
# timm's test_resnet: its own settings say mean = std = 0.5, so ImageNet's statistics are visible
TINY = {"model": "timm:test_resnet", "model_kwargs": {"channels": [8, 16, 16, 24], "stem_width": 8},
        "input_size": 16, "batch_size": 16, "lr": 0.01, "num_threads": 1, "epochs": 1}


def _data(n, seed, size=16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), (np.arange(n) % 2).astype(np.int64)


@pytest.fixture
def spy_normalise(monkeypatch):
    """Record the (mean, std) of every normalisation (training, validation, TTA, features)."""
    calls = []
    original = aug_mod.normalise

    def spy(x, mean, std):
        calls.append((tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)))
        return original(x, mean, std)

    monkeypatch.setattr(aug_mod, "normalise", spy)
    return calls


@pytest.mark.parametrize("normalize, mean, std", [("imagenet", IMAGENET_MEAN, IMAGENET_STD),
                                                  ("model", (0.5,) * 3, (0.5,) * 3)])
def test_normalisation_in_training_and_in_the_saved_model(tmp_path, spy_normalise, normalize, mean, std):
    (xt, yt), (xv, yv) = _data(32, 0), _data(16, 1)
    cfg = dict(TINY, normalize=normalize, val_augment=True)
    train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG)
    expected = {(tuple(round(v, 6) for v in mean), tuple(round(v, 6) for v in std))}
    assert spy_normalise and set(spy_normalise) == expected  # training batches and validation
    model, info = load_classifier(tmp_path / "model.pt", "cpu")
    assert info.mean == pytest.approx(mean) and info.std == pytest.approx(std)
    spy_normalise.clear()
    predict_proba(model, info, xv, "cpu", tta=2)
    features(model, info, xv, "cpu")
    predict_proba(model, info, xv, "cpu")
    assert spy_normalise and set(spy_normalise) == expected


def test_normalize_key_is_checked():
    with pytest.raises(InputError, match="classifier.normalize"):
        tr.complete_config({"normalize": "inception"})
    with pytest.raises(InputError, match="classifier.balanced_batches"):
        tr.complete_config({"balanced_batches": "yes"})


def test_default_augmentation_is_the_papers_text():
    assert DEFAULT_AUGMENT["hflip"] and DEFAULT_AUGMENT["vflip"]
    assert DEFAULT_AUGMENT["scale"] == [0.75, 1.0] and DEFAULT_AUGMENT["rotation"] == 45.0
    assert DEFAULT_AUGMENT["hue"] == 0.1
    aug = BatchAugment(None, (0, 0, 0), (1, 1, 1), out_size=8)
    p = aug.sample_params(64, torch.Generator().manual_seed(0))
    for k in ("brightness", "contrast", "saturation"):
        assert torch.all(p[k] == 1.0), k
    assert p["hue"].abs().max() <= 0.1 and p["hue"].abs().max() > 0.05
    # a grey image under identity geometry: hue leaves grey unchanged, so any change is b/c/s jitter
    grey = torch.full((64, 8, 8, 3), 150, dtype=torch.uint8)
    p["theta"] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(64, 2, 3).clone()
    out = aug.apply(grey, p)
    assert torch.allclose(out, torch.full_like(out, 150 / 255), atol=1e-5)
    assert tr.DEFAULTS["balanced_batches"] is False and tr.DEFAULTS["normalize"] == "imagenet"


def test_run_seed_shared_across_experiments_only_with_common_random_numbers():
    assert run_seed(2021, "aug_a", 3, True) == run_seed(2021, "aug_b", 3, True)
    assert run_seed(2021, "aug_a", 3, True) != run_seed(2021, "aug_a", 4, True)
    assert run_seed(2021, "aug_a", 3, False) != run_seed(2021, "aug_b", 3, False)
    cfg = tr.complete_config(TINY)
    heads = {}
    for crn in (True, False):
        models = [tr.build_model(cfg, run_seed(2021, e, 0, crn))[0] for e in ("aug_a", "aug_b")]
        heads[crn] = [torch.cat([v.flatten() for v in m.state_dict().values() if v.is_floating_point()])
                      for m in models]
    assert torch.equal(*heads[True]) and not torch.equal(*heads[False])


def test_keyed_order_and_augmentation_are_shared_by_common_images():
    ids_a = [f"real{i}" for i in range(20)]
    ids_b = [f"syn{i}" for i in range(7)] + ids_a[::-1]  # the same real images, other rows, plus others
    ka, kb = tr.sample_keys(ids_a), tr.sample_keys(ids_b)
    la, lb = torch.zeros(len(ka), dtype=torch.int64), torch.zeros(len(kb), dtype=torch.int64)
    oa = tr._epoch_order(None, la, False, ka, salt=5).numpy()
    ob = tr._epoch_order(None, lb, False, kb, salt=5).numpy()
    seq_a = [ids_a[i] for i in oa]
    seq_b = [ids_b[i] for i in ob if ids_b[i].startswith("real")]
    assert seq_a == seq_b and sorted(oa.tolist()) == list(range(20))
    assert seq_a != [ids_a[i] for i in tr._epoch_order(None, la, False, ka, salt=6).numpy()]
    # each common image gets the same augmentation draws wherever it sits
    ua = dict(zip(seq_a, keyed_uniforms(tr._augment_keys(ka, oa, 9))))
    ub = dict(zip([ids_b[i] for i in ob], keyed_uniforms(tr._augment_keys(kb, ob, 9))))
    assert all(torch.equal(ua[k], ub[k]) for k in ids_a)
    assert not torch.equal(ua["real0"], ua["real1"])
    # a repeated id is a second sample, not a copy of the first's draws
    assert len(set(tr.sample_keys(["x", "x"]).tolist())) == 2


def test_sample_ids_make_training_independent_of_row_order(tmp_path):
    (xt, yt), (xv, yv) = _data(40, 0), _data(16, 1)
    ids = [f"img{i}" for i in range(40)]
    perm = np.random.default_rng(1).permutation(40)
    cfg = dict(TINY, epochs=2)

    def weights(d):
        return torch.cat([v.flatten().float() for v in load_torch(tmp_path / d / "model.pt")["state_dict"].values()])

    train_classifier(xt, yt, xv, yv, cfg, tmp_path / "a", seed=3, device="cpu", log=LOG, sample_ids=ids)
    train_classifier(xt[perm], yt[perm], xv, yv, cfg, tmp_path / "b", seed=3, device="cpu", log=LOG,
                     sample_ids=[ids[i] for i in perm])
    train_classifier(xt[perm], yt[perm], xv, yv, cfg, tmp_path / "c", seed=3, device="cpu", log=LOG)
    assert torch.equal(weights("a"), weights("b"))
    assert not torch.equal(weights("a"), weights("c"))
    with pytest.raises(InputError, match="sample_ids"):
        train_classifier(xt, yt, xv, yv, cfg, tmp_path / "d", seed=3, device="cpu", log=LOG, sample_ids=ids[:-1])


def test_training_draws_the_same_augmentation_for_a_common_image(tmp_path, monkeypatch):
    """Set B = set A plus other images, in another row order: every image of A is augmented alike in
    both trainings (common random numbers), though it sits at other positions of the epoch."""
    (xt, yt), (xv, yv) = _data(48, 0), _data(8, 1)
    ids = [f"img{i}" for i in range(48)]
    a, b = np.arange(32), np.random.default_rng(2).permutation(48)  # b: a's images and 16 others
    seen = {}
    original = BatchAugment.apply

    def spy(self, x, params):
        for i in range(x.shape[0]):
            seen.setdefault(run, {})[x[i].numpy().tobytes()] = params["theta"][i].clone()
        return original(self, x, params)

    monkeypatch.setattr(BatchAugment, "apply", spy)
    for run, rows in (("a", a), ("b", b)):
        train_classifier(xt[rows], yt[rows], xv, yv, TINY, tmp_path / run, seed=3, device="cpu", log=LOG,
                         sample_ids=[ids[i] for i in rows])
    common = [xt[i].tobytes() for i in a]
    assert all(torch.equal(seen["a"][k], seen["b"][k]) for k in common)
    assert len({seen["a"][k][0, 0].item() for k in common}) > 10  # and they are random
