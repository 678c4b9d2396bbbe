"""SPADE: SPADE layer, generator (label map and z), spectral norm and BatchNorm state, multiscale D,
VGG loss switch, training (FID goes down), exact resume after a crash, config checks."""

import functools
import json
import logging

import gan_helpers as gh
import numpy as np
import pytest
import torch

from ganaug.gans import spade
from ganaug.gans.spade import DEFAULTS, SPADE, Generator, build_networks, resolve_config
from ganaug.gans.training import generate, load_generator, load_snapshot, sample_grid, train_gan
from ganaug.gans.translation import LABEL_CHANNELS, encode_label_map
from ganaug.io import InputError

R = 16
CFG = dict(resolution=R, ngf=8, ndf=8, spade_hidden=16, batch=8, total_kimg=0.64, snapshot_kimg=0.16)


@pytest.fixture(scope="module")
def data():
    return gh.label_map_data(r=R)


_cfg = functools.partial(gh.resolved_cfg, spade, CFG)  # resolved CFG updated by keywords


# ----------------------------------------------------------------------------------- networks


def test_spade_layer():
    torch.manual_seed(0)
    layer = SPADE(4, nhidden=8)
    x = torch.randn(6, 4, 8, 8) * 3 + 1
    seg = encode_label_map(torch.randint(0, 8, (6, 16, 16)))
    for conv in (layer.mlp_gamma, layer.mlp_beta):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    bn = torch.nn.functional.batch_norm(x, None, None, training=True)
    assert torch.allclose(layer(x, seg), bn, atol=1e-5)  # gamma = beta = 0: the parameter-free norm
    assert not any(p.requires_grad for p in layer.param_free_norm.parameters())
    assert layer.param_free_norm.running_mean.abs().sum() > 0  # running stats are kept
    torch.nn.init.constant_(layer.mlp_beta.bias, 0.5)
    torch.nn.init.constant_(layer.mlp_gamma.bias, 1.0)
    assert torch.allclose(layer(x, seg), bn * 2 + 0.5, atol=1e-5)  # norm(x) * (1 + gamma) + beta


def test_generator_shapes_range_label_map_and_determinism(data):
    _, _, masks = data
    G, D = build_networks(_cfg(), seed=0)
    assert G.z_dim == 0 and G.conditioning == "mask" and G.resolution == R and G.s0 == 4 and G.n_up == 2
    assert [b.conv_1.out_channels for b in G.blocks] == [32, 16, 16, 8]  # head, 2 middle, 1 per level
    m = torch.from_numpy(masks[:4]).long()
    G.eval()
    img = G.sample(None, torch.zeros(4, dtype=torch.long), label_map=m)
    assert img.shape == (4, 3, R, R) and img.abs().max() <= 1
    # eval: deterministic, and the class is not used
    assert torch.equal(img, G.sample(None, torch.ones(4, dtype=torch.long), label_map=m))
    assert (img - G.sample(None, None, label_map=m.flip(1))).abs().mean() > 1e-3
    out = D(torch.cat([encode_label_map(m), img], 1))
    assert len(out) == 2 and all(len(f) == 5 for f in out)  # n_layers_D 4 = 3 stride-2 + 1 stride-1, + output
    assert out[0][-1].shape == (4, 1, 5, 5)
    # spectral norm: u/v and the original weight are state; the effective weight has sigma ~ 1
    keys = list(G.state_dict())
    assert any(k.endswith("parametrizations.weight.original") for k in keys)
    assert any(k.endswith("_u") for k in keys) and any(k.endswith("_v") for k in keys)
    assert any(k.endswith("_u") for k in D.state_dict())
    assert any(k.endswith("param_free_norm.running_var") for k in keys)
    w = G.blocks[0].conv_0.weight
    assert torch.linalg.matrix_norm(w.flatten(1), 2).item() == pytest.approx(1.0, abs=0.05)
    with pytest.raises(InputError, match="0..7"):
        G.sample(None, None, label_map=m + 7)
    # defaults: the paper's start at 1/32 at 256 px, 1/8 at 32 px
    assert resolve_config({"resolution": 256})["n_up"] == 5 and resolve_config({})["n_up"] == 3


def test_z_variant():
    G = Generator(resolution=R, ngf=8, n_up=2, spade_hidden=8, z_dim=6, seed=0).eval()
    assert isinstance(G.fc, torch.nn.Linear) and G.fc.out_features == 32 * 4 * 4
    m = torch.randint(1, 3, (3, R, R))
    z = torch.randn(3, 6)
    a = G.sample(z, None, label_map=m)
    assert a.shape == (3, 3, R, R)
    assert (a - G.sample(torch.randn(3, 6), None, label_map=m)).abs().mean() > 1e-4
    assert torch.equal(G.sample(z, None, label_map=m, truncation_psi=0.0),
                       G.sample(z * 5, None, label_map=m, truncation_psi=0.0))
    with pytest.raises(InputError, match="z"):
        G.sample(None, None, label_map=m)


def test_trainer_state_roundtrip_with_z(data):
    """Two steps, state_dict into a fresh trainer, one more step each: identical (z RNG, spectral-norm u/v,
    BatchNorm running stats, Adam state all restored)."""
    cfg = _cfg(z_dim=4, batch=4)
    a = spade.Trainer(*data, cfg, seed=5, device="cpu", log=None)
    a.train_step()
    a.train_step()
    b = spade.Trainer(*data, cfg, seed=5, device="cpu", log=None)
    b.load_state_dict(a.state_dict())
    bn = next(k for k in a.G.state_dict() if k.endswith("running_mean"))
    assert a.G.state_dict()[bn].abs().sum() > 0
    a.train_step()
    b.train_step()
    sa, sb = a.state_dict(), b.state_dict()
    for key in ("G", "D"):
        for k in sa[key]:
            assert torch.equal(sa[key][k], sb[key][k]), (key, k)
    assert torch.equal(sa["rng"]["gen"], sb["rng"]["gen"]) and a.metrics() != {}
    assert sa["G_ema"] is sa["G"]  # no EMA: the generator under both names


def test_vgg_loss_switch(data, tmp_path, caplog):
    import torchvision

    log = logging.getLogger("test_spade")
    with caplog.at_level(logging.INFO, logger="test_spade"):
        tr = spade.Trainer(*data, _cfg(), seed=0, device="cpu", log=log)
    assert tr.vgg is None and "gans.spade: VGG19 perceptual loss off" in caplog.text
    with pytest.raises(InputError, match=r"gans\.spade\.vgg_weights"):
        spade.Trainer(*data, _cfg(vgg_weights=str(tmp_path / "missing.pth")), seed=0, device="cpu", log=log)
    torch.manual_seed(0)
    sd = torchvision.models.vgg19(weights=None).state_dict()
    sd = {k: v for k, v in sd.items() if k.startswith("features.")}  # ~80 MB; the classifier is not used
    torch.save(sd, tmp_path / "vgg19.pth")
    cfg = _cfg(vgg_weights=str(tmp_path / "vgg19.pth"), batch=4)
    tr = spade.Trainer(*data, cfg, seed=0, device="cpu", log=log)
    tr.train_step()
    assert tr.metrics()["loss_G_vgg"] > 0 and "VGG loss on" in tr.describe()


# ----------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    return gh.train_straight(tmp_path_factory, "spade", *data[:2], CFG, masks=data[2])


def test_training_lowers_fid(straight, data):
    out, summary = straight
    assert len(summary["snapshots"]) == 4
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in recs:
        for k in ("loss_G", "loss_D", "loss_G_gan", "loss_G_feat", "loss_D_real", "loss_D_fake"):
            assert np.isfinite(r[k]), k
        assert r["lr_G"] == 0.0001 and r["lr_D"] == 0.0004  # TTUR, constant
    gh.assert_fid_falls(Generator, out, summary["snapshots"], *data)


def test_generate_from_snapshot(straight, data):
    out, summary = straight
    _, labels, masks = data
    path = out / summary["snapshots"][-1]
    s = load_snapshot(path)
    assert s["format"] == "ganaug-spade-v1" and s["arch"]["n_up"] == 2 and s["num_classes"] == 2
    G = load_generator(path, "cpu")
    assert not G.training
    a = generate(G, labels[:6], seed=1, device="cpu", batch_size=4, masks=masks[:6])
    b = generate(G, labels[:6], seed=2, device="cpu", masks=masks[:6])
    assert a.shape == (6, R, R, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, generate(G, labels[:6], seed=1, device="cpu", masks=masks[6:12]))
    assert sample_grid(G, 2, seed=0, device="cpu", masks=masks, mask_labels=labels).shape == (2 * R, 2 * R, 3)


def test_killed_and_resumed_equals_straight(straight, data, tmp_path):
    # killed before step 50: between the snapshots at 40 and 60 steps
    gh.assert_killed_run_resumes(spade, 50, straight, tmp_path, CFG, *data, kept=straight[1]["snapshots"][:2])


# -------------------------------------------------------------------------------------- config


def test_bad_config_and_inputs(data, tmp_path):
    imgs, labels, masks = data
    assert set(CFG) <= set(DEFAULTS)
    for key in ("resolution", "batch", "num_classes", "total_kimg", "snapshot_kimg", "num_threads", "z_dim"):
        assert key in DEFAULTS
    assert spade.CONDITIONING == "mask" and spade.FORMAT == "ganaug-spade-v1" and DEFAULTS["z_dim"] == 0
    bad = [(dict(foo=1), "foo"), (dict(resolution=12), "resolution"), (dict(n_up=5), "n_up"),
           (dict(n_up=0), "n_up"), (dict(z_dim=-1), "z_dim"), (dict(lr_G=0), "lr_G"),
           (dict(lr_D="a"), "lr_D"),
           (dict(betas=[0, 1.5]), "betas"), (dict(spade_hidden=0), "spade_hidden"),
           (dict(n_layers_D=1), "n_layers_D"),
           (dict(lambda_vgg=None), "lambda_vgg"), (dict(cache_dir=""), "cache_dir")]
    for cfg, key in bad:
        with pytest.raises(InputError, match=rf"gans\.spade\.{key}"):
            resolve_config(dict(CFG, **cfg))
    with pytest.raises(InputError, match=r"gans\.spade\.foo"):
        train_gan("spade", imgs, labels, tmp_path, dict(CFG, foo=1), seed=0, device="cpu", masks=masks)
    bad_masks = masks.copy()
    bad_masks[3, 5, 5] = 9
    with pytest.raises(InputError, match="label value 9"):
        train_gan("spade", imgs, labels, tmp_path, CFG, seed=0, device="cpu", masks=bad_masks)
    with pytest.raises(InputError, match="no masks"):
        train_gan("spade", imgs, labels, tmp_path, CFG, seed=0, device="cpu")
    assert LABEL_CHANNELS == 9


def test_batch_of_one_trains(data, tmp_path):
    """The paper config's batch 1 (SPADE's default batchSize): the generator's batch norm then normalises
    over one image's positions, and training runs with finite losses."""
    imgs, labels, masks = data
    cfg = dict(CFG, batch=1, total_kimg=0.002, snapshot_kimg=0.002)
    out = train_gan("spade", imgs, labels, tmp_path, cfg, seed=0, device="cpu", masks=masks)
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert out["images"] == len(imgs) and rec["images_seen"] == 2
    assert all(np.isfinite(rec[k]) for k in ("loss_G", "loss_D"))
