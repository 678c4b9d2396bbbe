import logging

import numpy as np
import pandas as pd
import pytest
import torch

from ganaug.classifier import training as tr
from ganaug.classifier.predict import predict_proba
from ganaug.classifier.training import load_classifier, train_classifier
from ganaug.io import InputError, load_torch
from ganaug.metrics import roc_auc

LOG = logging.getLogger("ganaug.test")
TINY = {"model": "timm:test_resnet", "model_kwargs": {"channels": [8, 16, 16, 24], "stem_width": 8},
        "input_size": 16, "batch_size": 16, "lr": 0.01, "num_threads": 1}


def make_data(n, seed, size=16):
    """Separable toy data: a coloured disc, reddish for benign, bluish for melanoma, on noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    rng.shuffle(y)
    x = rng.normal(140, 30, (n, size, size, 3))
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cx, cy = rng.uniform(size * 0.35, size * 0.65, 2)
        m = (xx - cx) ** 2 + (yy - cy) ** 2 < (size * 0.25) ** 2
        col = np.array([120, 70, 50]) if y[i] == 0 else np.array([60, 70, 120])
        x[i][m] = col + rng.normal(0, 20, (m.sum(), 3))
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    return make_data(96, 0), make_data(48, 1), make_data(64, 2)


def test_short_run_learns_and_writes_outputs(tmp_path, data):
    (xt, yt), (xv, yv), (xs, ys) = data
    cfg = dict(TINY, epochs=6)
    res = train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG)
    assert res["epochs_run"] == 6 and 1 <= res["best_epoch"] <= 6
    hist = pd.read_csv(tmp_path / "history.csv")
    assert list(hist.columns) == ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds"]
    assert hist["epoch"].tolist() == list(range(1, 7))
    assert res["best_val_loss"] == pytest.approx(hist["val_loss"].min())
    assert (tmp_path / "checkpoint.pt").exists()
    model, info = load_classifier(tmp_path / "model.pt", "cpu")
    assert info.input_size == 16 and info.name == "timm:test_resnet"
    saved = load_torch(tmp_path / "model.pt")
    assert saved["epoch"] == res["best_epoch"] and saved["config"]["augment"]["rotation"] == 45.0
    p = predict_proba(model, info, xs, "cpu")
    assert roc_auc(ys, p) > 0.8
    # calling again after completion does not train
    again = train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG)
    assert again["epochs_run"] == 6 and len(pd.read_csv(tmp_path / "history.csv")) == 6


def _state(path):
    return load_torch(path)


def test_resume_after_kill_equals_uninterrupted(tmp_path, data, monkeypatch):
    (xt, yt), (xv, yv), _ = data
    # a high lr and no plateau patience make the scheduler act within 4 epochs
    cfg = dict(TINY, epochs=4, lr=0.3, plateau_patience=0, augment={"padding": "reflection"})
    straight = tmp_path / "straight"
    train_classifier(xt, yt, xv, yv, cfg, straight, seed=7, device="cpu", log=LOG)

    killed = tmp_path / "killed"
    real_update = tr.Progress.update

    def update_then_die(self, done, **kw):
        real_update(self, done, **kw)
        if done == 2:
            raise KeyboardInterrupt("simulated kill after epoch 2")

    monkeypatch.setattr(tr.Progress, "update", update_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(xt, yt, xv, yv, cfg, killed, seed=7, device="cpu", log=LOG)
    monkeypatch.setattr(tr.Progress, "update", real_update)
    assert len(pd.read_csv(killed / "history.csv")) == 2
    # Snakemake deletes the outputs of an interrupted job before running it again
    (killed / "model.pt").unlink()
    (killed / "history.csv").unlink()
    torch.manual_seed(12345)  # the resumed process's global RNG state must not matter
    res = train_classifier(xt, yt, xv, yv, cfg, killed, seed=7, device="cpu", log=LOG)
    assert res["epochs_run"] == 4

    a, b = _state(straight / "checkpoint.pt"), _state(killed / "checkpoint.pt")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ma, mb = _state(straight / "model.pt"), _state(killed / "model.pt")
    assert ma["epoch"] == mb["epoch"]
    for k in ma["state_dict"]:
        assert torch.equal(ma["state_dict"][k], mb["state_dict"][k]), k
    ha = pd.read_csv(straight / "history.csv").drop(columns="seconds")
    hb = pd.read_csv(killed / "history.csv").drop(columns="seconds")
    pd.testing.assert_frame_equal(ha, hb)
    assert ha["lr"].nunique() > 1  # the plateau scheduler acted, and its state was resumed too

    # extending a finished run (more epochs) continues from its checkpoint
    two = tmp_path / "two"
    train_classifier(xt, yt, xv, yv, dict(cfg, epochs=2), two, seed=7, device="cpu", log=LOG)
    train_classifier(xt, yt, xv, yv, cfg, two, seed=7, device="cpu", log=LOG)
    c = _state(two / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], c["model"][k]) for k in a["model"])

    # a finished run whose outputs were deleted writes them again from its checkpoint, without training
    (killed / "model.pt").unlink()
    (killed / "history.csv").unlink()
    again = train_classifier(xt, yt, xv, yv, cfg, killed, seed=7, device="cpu", log=LOG)
    assert again["epochs_run"] == 4
    mc = _state(killed / "model.pt")
    assert all(torch.equal(ma["state_dict"][k], mc["state_dict"][k]) for k in ma["state_dict"])
    pd.testing.assert_frame_equal(ha, pd.read_csv(killed / "history.csv").drop(columns="seconds"))


def test_early_stopping_and_config_change(tmp_path, data):
    (xt, yt), (xv, yv), _ = data
    # lr 0: only batch-norm statistics move, so the val loss soon stops improving -> training stops
    # `patience` epochs after the best one
    cfg = dict(TINY, epochs=10, lr=0.0, early_stopping_patience=2, augment=False)
    res = train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG)
    assert res["stopped_early"] and res["epochs_run"] == res["best_epoch"] + 2 < 10
    # another configuration does not resume the stale checkpoint
    res2 = train_classifier(xt, yt, xv, yv, dict(cfg, lr=0.01, epochs=1), tmp_path, seed=0, device="cpu", log=LOG)
    assert res2["epochs_run"] == 1 and not res2["stopped_early"]


def test_balanced_order_and_input_errors(tmp_path, data):
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 90 + [1] * 10)
    order = tr._epoch_order(g, labels, balanced=True)
    assert len(order) == 100
    frac = labels[torch.cat([tr._epoch_order(g, labels, True) for _ in range(20)])].float().mean()
    assert 0.4 < frac < 0.6
    assert sorted(tr._epoch_order(g, labels, balanced=False).tolist()) == list(range(100))
    (xt, yt), (xv, yv), _ = data
    with pytest.raises(InputError, match="train images"):
        train_classifier(xt.astype(np.float32), yt, xv, yv, TINY, tmp_path / "unused", 0, "cpu", LOG)
    with pytest.raises(InputError, match="validation labels"):
        train_classifier(xt, yt, xv, yv[:-1], TINY, tmp_path / "unused", 0, "cpu", LOG)
    with pytest.raises(InputError, match="classifier: unknown key"):
        train_classifier(xt, yt, xv, yv, dict(TINY, learning_rate=1), tmp_path / "unused", 0, "cpu", LOG)
    assert not (tmp_path / "unused").exists()  # bad input is rejected before anything is written


def test_checkpoint_of_other_code_or_architecture_is_not_resumed(tmp_path, data, caplog):
    """Snakemake re-runs a job whose code changed; its checkpoint (not an output, so not deleted) must not
    be reloaded as if the run were finished, nor crash when the network's parameters changed."""
    (xt, yt), (xv, yv), _ = data
    cfg = dict(TINY, epochs=2)
    first = train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG, code_version="a")
    assert first["epochs_run"] == 2
    caplog.set_level(logging.INFO, logger=LOG.name)
    same = train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG, code_version="a")
    assert same["epochs_run"] == 2 and "resumed" in caplog.text and "afresh" not in caplog.text
    caplog.clear()
    train_classifier(xt, yt, xv, yv, cfg, tmp_path, seed=0, device="cpu", log=LOG, code_version="b")
    assert "starting afresh" in caplog.text and "resumed" not in caplog.text
    caplog.clear()
    # same settings key, other parameters: the model of a checkpoint that does not fit is never loaded
    wider = dict(cfg, model_kwargs={"channels": [8, 16, 16, 32], "stem_width": 8})
    res = train_classifier(xt, yt, xv, yv, wider, tmp_path, seed=0, device="cpu", log=LOG, code_version="b")
    assert res["epochs_run"] == 2 and "starting afresh" in caplog.text


def test_warns_when_the_lr_is_never_lowered_before_early_stopping(tmp_path, data, caplog):
    """The plateau schedule lowers the lr after plateau_patience + 1 epochs without improvement: with early
    stopping at that count or sooner, it never acts (the toy config had 3 and 4: 1 run in 81 lowered it)."""
    (xt, yt), (xv, yv), _ = data
    caplog.set_level(logging.WARNING, logger=LOG.name)
    for plateau, warned in ((3, True), (2, False)):
        caplog.clear()
        cfg = dict(TINY, epochs=5, plateau_patience=plateau, early_stopping_patience=4)
        train_classifier(xt[:8], yt[:8], xv, yv, cfg, tmp_path / str(plateau), seed=0, device="cpu", log=LOG)
        assert ("never lowered before early stopping" in caplog.text) == warned, caplog.text
