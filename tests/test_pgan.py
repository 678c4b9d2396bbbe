"""PGAN: networks at every level and during fade-in, class conditioning and the AC head, the growing
schedule, the optimiser reset at a new level, training lowers FID, exact resume (also inside a transition
and right before a level change), generation at the stored level, config errors."""

import json
import shutil

import gan_helpers as gh
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganaug.fid import fid_from_features
from ganaug.gans import IMPLEMENTED, gan_of_format
from ganaug.gans.pgan import (
    DEFAULTS,
    FORMAT,
    Generator,
    Trainer,
    build_networks,
    process_reals,
    resolve_config,
    schedule,
)
from ganaug.gans.training import generate, load_generator, load_snapshot, train_gan
from ganaug.io import InputError

SMALL = dict(resolution=16, z_dim=16, channel_base=256, channel_max=16)
# schedule in images (batch 8): 4 px [0, 32); fade-in to 8 px [32, 96), 8 px [96, 128);
# fade-in to 16 px [128, 192), 16 px from 192 on (growing ends at 224; training goes on at 16 px)
CFG = dict(SMALL, batch=8, stable_kimg=0.032, transition_kimg=0.064, ema_beta=0.9, total_kimg=0.256,
           snapshot_kimg=0.032)


def discs(n, seed):
    """Class-coloured discs (0 red, 1 blue) of random position and radius on a dark background."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    yy, xx = np.mgrid[:16, :16] + 0.5
    imgs = np.full((n, 16, 16, 3), 40, np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(5, 11, 2)
        r = rng.uniform(3, 5)
        imgs[i][(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (230, 60, 40) if labels[i] == 0 else (50, 90, 230)
    return imgs, labels


def features(imgs):
    """A cheap fixed feature: 4x4 average-pooled pixels (48-d)."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    return F.avg_pool2d(x, 4).flatten(1).numpy()


@pytest.fixture(scope="module")
def data():
    return discs(32, 0)


def _nets(**kw):
    return build_networks(resolve_config({**SMALL, "num_classes": 2, **kw}), seed=0)


def test_registry_and_defaults():
    assert "pgan" in IMPLEMENTED and gan_of_format(FORMAT) == "pgan"
    cfg = resolve_config({})
    assert cfg["resolution"] == 32 and cfg["start_resolution"] == 4 and cfg["lr"] == 0.001
    assert cfg["betas"] == [0.0, 0.99] and cfg["gp_lambda"] == 10 and cfg["drift"] == 0.001
    assert cfg["ema_beta"] == 0.999
    assert set(CFG) <= set(DEFAULTS)


def test_networks_at_every_level_and_fade_in():
    G, D = _nets()
    z, c = torch.randn(6, 16), torch.tensor([0, 1, 0, 1, 1, 0])
    with torch.no_grad():
        for level in range(3):
            r = 4 * 2 ** level
            for alpha in ((1.0,) if level == 0 else (0.0, 0.3, 1.0)):
                img = G(z, c, level, alpha)
                assert img.shape == (6, 3, r, r)
                assert torch.isfinite(img).all() and img.abs().max() < 10 and 0.2 < img.std() < 3
                out = D(img, alpha)
                assert out.shape == (6, 1 + 2) and torch.isfinite(out).all()
            if level == 0:
                continue
            lo, hi = G(z, c, level, 0.0), G(z, c, level, 1.0)
            # alpha 0: exactly the nearest-upsampled output of the level below; in between: the blend
            assert torch.allclose(lo, F.interpolate(G(z, c, level - 1, 1.0), scale_factor=2), atol=1e-6)
            assert torch.allclose(G(z, c, level, 0.3), 0.7 * lo + 0.3 * hi, atol=1e-5)
            # D mirrors it: alpha 0 equals D on the 2x average-pooled image at the level below
            x = torch.randn(6, 3, r, r)
            assert torch.allclose(D(x, 0.0), D(F.avg_pool2d(x, 2), 1.0), atol=1e-5)
            assert not torch.allclose(D(x, 0.5), D(x, 1.0))
    # the reals follow the same fade-in: pooled to the level, blended with their coarser version
    x = torch.rand(4, 3, 16, 16)
    x8 = F.avg_pool2d(x, 2)
    assert torch.allclose(process_reals(x, 1, 1.0), x8)
    assert torch.allclose(process_reals(x, 1, 0.0), F.interpolate(F.avg_pool2d(x8, 2), scale_factor=2))
    assert torch.allclose(process_reals(x, 0, 1.0), F.avg_pool2d(x, 4))
    assert torch.equal(process_reals(x, 2, 1.0), x)
    # sample() generates at the stored level/alpha and always returns full-resolution images
    G.eval()
    G.level, G.alpha = 1, 0.5
    with torch.no_grad():
        s = G.sample(z, c)
        assert s.shape == (6, 3, 16, 16)
        assert torch.equal(s, F.interpolate(G(z, c, 1, 0.5), scale_factor=2))
        assert torch.equal(s, G.sample(z, c))  # deterministic
    with pytest.raises(InputError, match="truncation"):
        G.sample(z, c, truncation_psi=0.5)


def test_class_conditioning_and_ac_head():
    G, D = _nets(num_classes=3)
    z = torch.randn(4, 16).repeat(2, 1)
    c = torch.tensor([0] * 4 + [2] * 4)
    with torch.no_grad():
        for level, alpha in ((0, 1.0), (1, 0.5), (2, 1.0)):
            img = G(z, c, level, alpha)
            assert (img[:4] - img[4:]).abs().mean() > 1e-2
        # D takes no label; it returns the Wasserstein score and 3 class logits
        assert D(img, 1.0).shape == (8, 4)
    assert G.dense.weight.shape[1] == 16 + 3  # one-hot label concatenated to z


def test_schedule():
    cfg = resolve_config(dict(resolution=32, stable_kimg=1, transition_kimg=2))
    expect = {0: (0, 1.0), 999: (0, 1.0), 1000: (1, 0.0), 2000: (1, 0.5), 3000: (1, 1.0), 3999: (1, 1.0),
              4000: (2, 0.0), 7000: (3, 0.0), 7500: (3, 0.25), 9000: (3, 1.0), 10000: (3, 1.0),
              10 ** 7: (3, 1.0)}
    for n, la in expect.items():
        assert schedule(n, cfg) == la, n
    assert schedule(7500, cfg) == schedule(7500, dict(cfg))  # a pure function of the image count
    # a later start, no transitions, no growing
    start8 = dict(cfg, start_resolution=8)
    assert schedule(0, start8) == (1, 1.0) and schedule(1000, start8) == (2, 0.0)
    assert schedule(10 ** 7, start8) == (3, 1.0)
    no_fade = dict(cfg, transition_kimg=0)
    assert schedule(1000, no_fade) == (1, 1.0) and schedule(2000, no_fade) == (2, 1.0)
    assert schedule(0, dict(cfg, start_resolution=32)) == (3, 1.0)


def _adam_steps(opt):
    """Adam's step count (the largest: the previous level's ToRGB/FromRGB stop once alpha reaches 1)."""
    return max(int(st["step"]) for st in opt.state.values())


def test_optimiser_reset_at_level_change(data):
    cfg = resolve_config(dict(SMALL, batch=8, stable_kimg=0.016, transition_kimg=0.016, num_classes=2))
    tr = Trainer(*data, None, cfg, seed=1, device=torch.device("cpu"), log=None)
    opts = (tr.G_opt, tr.D_opt)
    since_reset = 0
    for _ in range(8):  # level (alpha) per step: 0 0 | 1(0) 1(.5) 1 1 | 2(0) 2(.5)
        level, alpha = schedule(tr.cur_nimg, cfg)
        changed = level != tr.level
        tr.train_step()
        assert (tr.level, tr.alpha) == (level, alpha)
        since_reset = 1 if changed else since_reset + 1
        assert ((tr.G_opt, tr.D_opt) != opts) == changed
        opts = (tr.G_opt, tr.D_opt)
        assert _adam_steps(tr.G_opt) == since_reset and _adam_steps(tr.D_opt) == since_reset
    assert tr.level == 2 and since_reset == 2
    # the level is part of the state (a resume must not miss a reset)
    s = tr.state_dict()
    assert (s["level"], s["alpha"]) == (2, 0.5)
    tr2 = Trainer(*data, None, cfg, seed=1, device=torch.device("cpu"), log=None)
    tr2.load_state_dict(s)
    assert tr2.level == 2 and _adam_steps(tr2.G_opt) == 2


def test_training_lowers_fid(tmp_path):
    imgs, labels = discs(64, 0)
    ref, ref_labels = discs(512, 1)
    cfg = dict(SMALL, batch=16, stable_kimg=0.16, transition_kimg=0.16, ema_beta=0.9, total_kimg=1.92,
               snapshot_kimg=0.48)
    summary = train_gan("pgan", imgs, labels, tmp_path, cfg, seed=0, device="cpu")
    assert len(summary["snapshots"]) == 4
    feat_r = features(ref)

    def fid(G):
        return fid_from_features(feat_r, features(generate(G.eval(), ref_labels, seed=0, device="cpu")))

    untrained = fid(Generator(**load_snapshot(tmp_path / summary["snapshots"][0])["arch"], seed=0))
    fids = [fid(load_generator(tmp_path / name, "cpu")) for name in summary["snapshots"]]
    assert fids[-1] < 0.5 * fids[0] and fids[-1] < 0.5 * untrained, (untrained, fids)
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["level"], r["alpha"]) for r in recs] == [(1, 1.0), (2, 1.0), (2, 1.0), (2, 1.0)]
    for r in recs:
        for k in ("loss_G", "loss_D", "gp", "drift", "ac_real", "ac_fake", "real_score", "fake_score"):
            assert r[k] is not None and np.isfinite(r[k]), k


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    return gh.train_straight(tmp_path_factory, "pgan", *data, CFG)


def test_killed_and_resumed_equals_straight(straight, data, tmp_path):
    out, summary = straight
    assert len(summary["snapshots"]) == 8
    # killed at 0.128 kimg: the next step starts the fade-in to 16 px (a level change + optimiser reset),
    # then killed again at 0.160 kimg, inside that transition; then run to the end
    part = train_gan("pgan", *data, tmp_path, dict(CFG, total_kimg=0.128), seed=3, device="cpu")
    assert part["snapshots"] == summary["snapshots"][:4]
    s = load_snapshot(tmp_path / "snapshot-000000_128.pt")
    assert (s["level"], s["alpha"]) == (1, 1.0)
    train_gan("pgan", *data, tmp_path, dict(CFG, total_kimg=0.160), seed=3, device="cpu")
    s = load_snapshot(tmp_path / "snapshot-000000_160.pt")
    assert (s["level"], s["alpha"]) == (2, 0.375) and len(s["G_opt"]["state"]) > 0
    resumed = train_gan("pgan", *data, tmp_path, CFG, seed=3, device="cpu")
    assert resumed["snapshots"] == summary["snapshots"]
    gh.assert_same_run(out, tmp_path, summary["snapshots"], "level", "alpha")


def test_generator_at_stored_level(straight):
    out, summary = straight
    s = load_snapshot(out / "snapshot-000000_064.pt")  # last step started at 56: fade-in to 8 px
    assert (s["level"], s["alpha"]) == (1, 0.375)
    G = load_generator(out / "snapshot-000000_064.pt", "cpu")
    assert (G.level, G.alpha, G.resolution, G.num_classes, G.z_dim) == (1, 0.375, 16, 2, 16)
    assert G.conditioning == "class" and not G.training
    for k, v in G.state_dict().items():
        assert torch.equal(v, s["G_ema"][k])
    labels = np.array([0, 1, 1, 0, 1])
    a = generate(G, labels, seed=7, device="cpu", batch_size=2)
    assert a.shape == (5, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, generate(G, labels, seed=7, device="cpu"))
    # 8 px content, nearest-upsampled: 2x2 blocks
    assert np.array_equal(a, a[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2))
    G = load_generator(out / summary["snapshots"][-1], "cpu")
    assert (G.level, G.alpha) == (2, 1.0)
    b = generate(G, labels, seed=7, device="cpu")
    assert not np.array_equal(b, b[:, ::2, ::2].repeat(2, axis=1).repeat(2, axis=2))
    G_raw = load_generator(out / summary["snapshots"][-1], "cpu", ema=False)
    assert not torch.equal(G_raw.dense.weight, G.dense.weight)


@pytest.mark.parametrize("key,value", [
    ("foo", 1), ("resolution", 24), ("resolution", 2), ("start_resolution", 32), ("start_resolution", 6),
    ("batch", 0), ("z_dim", 1.5), ("lr", 0), ("betas", [0.5]), ("betas", [0.0, 1.0]), ("ema_beta", 1.0),
    ("gp_lambda", -1), ("stable_kimg", -0.5), ("transition_kimg", "x"), ("total_kimg", 0), ("mirror", "yes"),
    ("num_classes", 0), ("num_threads", -2),
])
def test_bad_config(key, value):
    with pytest.raises(InputError, match=rf"gans\.pgan\.{key}"):
        resolve_config(dict(SMALL, **{key: value}))


def test_bad_config_via_train_gan_and_changed_resume(straight, data, tmp_path):
    with pytest.raises(InputError, match=r"gans\.pgan\.foo"):
        train_gan("pgan", *data, tmp_path, dict(CFG, foo=1), seed=3, device="cpu")
    out, summary = straight
    shutil.copy(out / summary["snapshots"][0], tmp_path / summary["snapshots"][0])
    with pytest.raises(InputError, match=r"gans\.pgan\.stable_kimg"):
        train_gan("pgan", *data, tmp_path, dict(CFG, stable_kimg=0.064), seed=3, device="cpu")
