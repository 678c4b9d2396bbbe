"""The classifier at hardware speed: precision switch, one draw and one host sync per epoch instead of per
step, and CPU results unchanged by drawing the epoch's parameters at once."""

import logging

import numpy as np
import pytest
import torch

from ganaug.classifier import predict as pr
from ganaug.classifier import training as tr
from ganaug.classifier.augment import BatchAugment, keyed_uniforms
from ganaug.classifier.training import inference_precision, load_classifier, train_classifier
from ganaug.io import InputError, load_torch

LOG = logging.getLogger("ganaug.test")
TINY = {"model": "timm:test_resnet", "model_kwargs": {"channels": [8, 16, 16, 24], "stem_width": 8},
        "input_size": 16, "batch_size": 8, "lr": 0.01, "num_threads": 1}


def _data(n, seed, size=16):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), np.arange(n) % 2


def test_precision_key_is_checked_and_bf16_needs_cuda(tmp_path):
    (xt, yt), (xv, yv) = _data(16, 0), _data(8, 1)
    with pytest.raises(InputError, match="classifier.precision: one of auto, fp32, bf16"):
        train_classifier(xt, yt, xv, yv, dict(TINY, precision="fp16"), tmp_path / "a", 0, "cpu", LOG)
    with pytest.raises(InputError, match="classifier.precision: bf16 needs a CUDA device"):
        train_classifier(xt, yt, xv, yv, dict(TINY, precision="bf16"), tmp_path / "b", 0, "cpu", LOG)
    with pytest.raises(InputError, match="unknown key"):  # the former switch is gone, not silently ignored
        train_classifier(xt, yt, xv, yv, dict(TINY, amp=True), tmp_path / "c", 0, "cpu", LOG)
    assert not list(tmp_path.iterdir())  # rejected before anything is written


def test_model_file_records_precision_and_prediction_follows_it(tmp_path):
    (xt, yt), (xv, yv) = _data(16, 0), _data(8, 1)
    train_classifier(xt, yt, xv, yv, dict(TINY, epochs=1, precision="fp32"), tmp_path, 0, "cpu", LOG)
    _, info = load_classifier(tmp_path / "model.pt", "cpu")
    assert info.precision == "fp32"
    assert load_torch(tmp_path / "model.pt")["info"]["precision"] == "fp32"
    assert [inference_precision(p, "cpu") for p in ("auto", "fp32", "bf16", None)] == ["fp32"] * 4
    assert [inference_precision(p, "cuda") for p in ("auto", "fp32", "bf16")] == ["bf16", "fp32", "bf16"]
    with pytest.raises(InputError, match="precision"):
        inference_precision("half", "cpu")


def test_epoch_draws_equal_per_batch_draws():
    """Why CPU results are unchanged: one draw of the epoch's parameters gives, row for row, what one
    draw per batch gave (a generator stream concatenates; keyed draws depend on the key only)."""
    aug = BatchAugment(None, (0.5,) * 3, (0.5,) * 3, 16)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    whole = aug.sample_params(37, g1)
    parts = [aug.sample_params(n, g2) for n in (16, 16, 5)]
    for k in whole:
        assert torch.equal(whole[k], torch.cat([p[k] for p in parts])), k
    keys = np.arange(37, dtype=np.uint64) * np.uint64(7919)
    whole = aug.params_from_uniforms(keyed_uniforms(keys))
    parts = [aug.params_from_uniforms(keyed_uniforms(keys[s:s + 16])) for s in (0, 16, 32)]
    for k in whole:
        assert torch.equal(whole[k], torch.cat([p[k] for p in parts])), k


@pytest.mark.parametrize("keyed", [False, True])
def test_augmentation_drawn_once_per_epoch(tmp_path, monkeypatch, keyed):
    """40 images in batches of 8: five steps per epoch, but one draw of parameters per epoch."""
    (xt, yt), (xv, yv) = _data(40, 0), _data(8, 1)
    calls = []
    name = "params_from_uniforms" if keyed else "sample_params"
    original = getattr(BatchAugment, name)

    def spy(self, *a, **k):
        calls.append(1)
        return original(self, *a, **k)

    monkeypatch.setattr(BatchAugment, name, spy)
    ids = [f"i{i}" for i in range(40)] if keyed else None
    train_classifier(xt, yt, xv, yv, dict(TINY, epochs=3), tmp_path, 0, "cpu", LOG, sample_ids=ids)
    assert len(calls) == 3


def test_host_syncs_per_epoch_do_not_grow_with_steps(tmp_path, monkeypatch):
    """.item() reads (host syncs on a GPU) per run: the same for 2 or 8 training steps and 1 or 4
    validation batches per epoch."""
    count = {"n": 0}
    original = torch.Tensor.item

    def spy(self):
        count["n"] += 1
        return original(self)

    monkeypatch.setattr(torch.Tensor, "item", spy)
    runs = []
    for n_train, n_val, eval_bs in ((16, 8, 8), (64, 32, 8)):
        (xt, yt), (xv, yv) = _data(n_train, 0), _data(n_val, 1)
        count["n"] = 0
        train_classifier(xt, yt, xv, yv, dict(TINY, epochs=2, eval_batch_size=eval_bs),
                         tmp_path / str(n_train), 0, "cpu", LOG)
        runs.append(count["n"])
    assert runs[0] == runs[1]


def test_tta_reads_the_device_once_per_call(monkeypatch):
    """TTA probabilities stay on the device until the call ends: one device-to-host copy, not one per
    batch."""
    (x, _) = _data(12, 3)
    torch.manual_seed(0)
    model, info = tr.build_model(tr.complete_config(dict(TINY)), 0)
    copies = {"n": 0}
    original = torch.Tensor.cpu

    def spy(self, *a, **k):
        copies["n"] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    p = pr.predict_proba(model, info, x, "cpu", tta=4, seed=1, batch_size=8)  # 6 forward passes
    assert copies["n"] == 1 and p.shape == (12,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is used on CUDA only; no GPU here")
def test_bf16_trains_close_to_fp32_on_cuda(tmp_path):
    (xt, yt), (xv, yv) = _data(64, 0), _data(16, 1)
    losses = {}
    for p in ("fp32", "bf16"):
        train_classifier(xt, yt, xv, yv, dict(TINY, epochs=2, precision=p), tmp_path / p, 0, "cuda", LOG)
        hist = load_torch(tmp_path / p / "checkpoint.pt")["state"]["history"]
        losses[p] = [h["train_loss"] for h in hist]
    assert np.isfinite(losses["bf16"]).all()
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.1, atol=0.05)
