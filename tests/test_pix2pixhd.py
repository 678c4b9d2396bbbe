"""pix2pixHD and the shared translation-GAN parts: label encoding, multiscale D, losses, VGG loss,
training (FID goes down), exact resume after a crash, config checks."""

import functools
import json
import logging

import gan_helpers as gh
import numpy as np
import pytest
import torch

from ganaug.gans import pix2pixhd
from ganaug.gans.pix2pixhd import DEFAULTS, Generator, build_networks, lr_at, resolve_config
from ganaug.gans.training import generate, load_generator, load_snapshot, sample_grid, train_gan
from ganaug.gans.translation import (
    LABEL_CHANNELS,
    MultiscaleDiscriminator,
    VGGLoss,
    edge_map,
    encode_label_map,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    load_vgg19_features,
    lsgan_d_loss,
    lsgan_g_loss,
)
from ganaug.io import InputError
from ganaug.weights import ChecksumError

R = 16
# small but complete: lr decay over the last 0.48 of 0.96 kimg, so a resume lands inside the decay
CFG = dict(resolution=R, ngf=16, ndf=8, n_blocks=2, batch=8, decay_kimg=0.48, total_kimg=0.96,
           snapshot_kimg=0.32)


@pytest.fixture(scope="module")
def data():
    return gh.label_map_data(r=R)


_cfg = functools.partial(gh.resolved_cfg, pix2pixhd, CFG)  # resolved CFG updated by keywords


# ---------------------------------------------------------------------------------- shared parts


def test_edge_map_and_encoding():
    m = torch.tensor([[[1, 1, 2, 2],
                       [1, 1, 2, 2],
                       [1, 1, 1, 1],
                       [0, 1, 1, 1]]])
    expect = torch.tensor([[0, 1, 1, 0],
                           [0, 1, 1, 1],
                           [1, 0, 1, 1],
                           [1, 1, 0, 0]], dtype=torch.float32)
    assert torch.equal(edge_map(m)[0, 0], expect)
    enc = encode_label_map(m)
    assert enc.shape == (1, LABEL_CHANNELS, 4, 4) and LABEL_CHANNELS == 9
    assert torch.equal(enc[:, :8].argmax(1), m) and torch.equal(enc[:, :8].sum(1), torch.ones(1, 4, 4))
    assert torch.equal(enc[0, 8], expect)
    assert edge_map(torch.full((2, 5, 5), 3)).sum() == 0


def test_multiscale_discriminator_features():
    x = torch.randn(3, LABEL_CHANNELS + 3, R, R)
    for norm in ("instance", "spectralinstance"):
        D = MultiscaleDiscriminator(LABEL_CHANNELS + 3, ndf=8, n_down=3, num_D=2, norm=norm).eval()
        out = D(x)  # (eval: spectral norm does no power-iteration step, so calls are repeatable)
        assert len(out) == 2 and all(len(f) == 5 for f in out)  # 3 stride-2, 1 stride-1, output
        assert [t.shape[1] for t in out[0]] == [8, 16, 32, 64, 1]
        assert out[0][-1].shape == (3, 1, 5, 5) and out[1][-1].shape == (3, 1, 4, 4)
        # scale 1 sees the input average-pooled once
        pooled = torch.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        assert torch.allclose(D.scales[1](pooled)[-1], out[1][-1])
    D = MultiscaleDiscriminator(12, ndf=8, n_down=3, num_D=3, norm="instance")
    assert len(D(x)) == 3


def test_losses_on_hand_cases():
    feat = torch.zeros(1, 1, 2, 2)
    real = [[feat, torch.tensor([1.0, 0.0])], [feat, torch.tensor([3.0, 1.0])]]
    fake = [[feat, torch.tensor([0.0, 1.0])], [feat, torch.tensor([0.0, -2.0])]]
    # LSGAN (pix2pixHD): D = 0.5 * sum_scales [mean((r-1)^2) + mean(f^2)]; G = sum_scales mean((f-1)^2)
    assert lsgan_d_loss(real, fake).item() == pytest.approx(0.5 * ((0.5 + 0.5) + (2.0 + 2.0)))
    assert lsgan_g_loss(fake).item() == pytest.approx(0.5 + (1 + 9) / 2)
    # hinge (SPADE): D = mean_scales mean(relu(1-r)) + mean_scales mean(relu(1+f)); G = -mean_scales mean(f)
    assert hinge_d_loss(real, fake).item() == pytest.approx((0.5 + 0.0) / 2 + (1.5 + 0.5) / 2)
    assert hinge_g_loss(fake).item() == pytest.approx(-(0.5 - 1.0) / 2)
    # perfect D: zero loss
    assert hinge_d_loss([[torch.full((4,), 2.0)]], [[torch.full((4,), -1.5)]]).item() == 0
    assert lsgan_d_loss([[torch.ones(4)]], [[torch.zeros(4)]]).item() == 0
    # feature matching: L1 per layer (not the output), / num_D, times the layer weight
    ff = [[torch.zeros(2, 3), torch.ones(2, 2), torch.tensor([5.0])]] * 2
    fr = [[torch.full((2, 3), 2.0), torch.ones(2, 2), torch.tensor([-5.0])]] * 2
    assert feature_matching_loss(ff, fr).item() == pytest.approx(2.0)
    assert feature_matching_loss(ff, fr, layer_weight=0.5).item() == pytest.approx(1.0)
    x = torch.zeros(2, 3, requires_grad=True)
    r = torch.full((2, 3), 2.0, requires_grad=True)
    feature_matching_loss([[x, torch.zeros(1)]], [[r, torch.zeros(1)]]).backward()
    assert x.grad is not None and r.grad is None  # the real features are targets


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A fake VGG19 weights file: torchvision's randomly initialised vgg19 state dict (features only, to
    keep it ~80 MB instead of ~550 MB; the loader ignores classifier entries anyway)."""
    import torchvision

    torch.manual_seed(0)
    sd = torchvision.models.vgg19(weights=None).state_dict()
    sd = {k: v for k, v in sd.items() if k.startswith("features.")}
    sd["classifier.6.bias"] = torch.zeros(1000)  # a full-network state dict has these: ignored
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(sd, path)
    return path, sd


def test_vgg_loss_loading_and_values(vgg_file, tmp_path):
    path, sd = vgg_file
    feats = load_vgg19_features(path)
    assert torch.equal(feats[28].weight, sd["features.28.weight"]) and len(feats) == 30
    loss = VGGLoss(feats)
    x = torch.rand(2, 3, R, R) * 2 - 1
    y = torch.rand(2, 3, R, R) * 2 - 1
    assert loss(x, x).item() == 0
    xr = x.clone().requires_grad_(True)
    v = loss(xr, y)
    assert v.item() > 0
    v.backward()
    assert xr.grad.abs().sum() > 0 and all(p.grad is None for p in loss.parameters())
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, bad)
    with pytest.raises(InputError, match=r"gans\.x\.vgg_weights: .*features\.0\.bias"):
        load_vgg19_features(bad, "gans.x.vgg_weights")


def test_vgg_loss_off_on_and_missing(data, vgg_file, tmp_path, caplog):
    path, _ = vgg_file
    log = logging.getLogger("test_p2p")
    with caplog.at_level(logging.INFO, logger="test_p2p"):
        tr = pix2pixhd.Trainer(*data, _cfg(), seed=0, device="cpu", log=log)
    assert tr.vgg is None and "VGG loss off" in tr.describe()
    assert "VGG19 perceptual loss off: no weights" in caplog.text
    with pytest.raises(InputError, match=r"gans\.pix2pixhd\.vgg_weights: .*not found"):
        pix2pixhd.Trainer(*data, _cfg(vgg_weights=str(tmp_path / "none.pth")), seed=0, device="cpu", log=log)
    with pytest.raises(ChecksumError):
        pix2pixhd.Trainer(*data, _cfg(vgg_weights=str(path), vgg_sha256="0" * 64), seed=0, device="cpu",
                          log=log)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="test_p2p"):
        tr = pix2pixhd.Trainer(*data, _cfg(vgg_weights=str(path), batch=4), seed=0, device="cpu", log=log)
    assert tr.vgg is not None and "VGG loss on" in tr.describe()
    assert "VGG19 perceptual loss on" in caplog.text
    tr.train_step()
    m = tr.metrics()
    assert m["loss_G_vgg"] is not None and m["loss_G_vgg"] > 0
    assert m["loss_G"] == pytest.approx(m["loss_G_gan"] + m["loss_G_feat"] + m["loss_G_vgg"], rel=1e-5)
    assert tr.state_dict()["vgg"]["on"] and "vgg" not in "".join(tr.state_dict()["G"])
    # lambda_vgg = 0 switches it off even with weights
    assert pix2pixhd.Trainer(*data, _cfg(vgg_weights=str(path), lambda_vgg=0), seed=0, device="cpu",
                             log=log).vgg is None


# ----------------------------------------------------------------------------------- networks


def test_generator_shapes_range_and_label_map_matters(data):
    _, _, masks = data
    G, D = build_networks(_cfg(), seed=0)
    assert G.z_dim == 0 and G.conditioning == "mask" and G.resolution == R
    m = torch.from_numpy(masks[:4]).long()
    G.eval()
    img = G.sample(None, torch.zeros(4, dtype=torch.long), label_map=m)
    assert img.shape == (4, 3, R, R) and img.abs().max() <= 1
    assert torch.equal(img, G.sample(None, torch.ones(4, dtype=torch.long), label_map=m))  # class unused
    other = G.sample(None, None, label_map=m.flip(1))
    assert (img - other).abs().mean() > 1e-3
    seg = encode_label_map(m)
    out = D(torch.cat([seg, img], 1))
    assert len(out) == 2 and len(out[0]) == 3 + 2
    with pytest.raises(InputError, match="label_map"):
        G.sample(None, None, label_map=m.float())
    with pytest.raises(InputError, match="0..7"):
        G.sample(None, None, label_map=m + 7)
    # local enhancer: global G (2 * ngf) at half resolution inside the full-resolution enhancer
    c = _cfg(local_enhancer=True, ngf=8, n_blocks=1, n_blocks_local=1)
    assert c["n_downsample"] == 0
    GL = Generator(**{k: c[k] for k in pix2pixhd.ARCH_KEYS}, seed=0)
    assert GL.model_global[1].out_channels == 16 and GL.model_downsample[1].out_channels == 8
    y = GL.sample(None, None, label_map=m)
    assert y.shape == (4, 3, R, R) and y.abs().max() <= 1
    assert (y - GL.sample(None, None, label_map=m.flip(1))).abs().mean() > 1e-3
    # auto downsampling: bottleneck >= 8 px, at most 4 (the paper's at 256 px)
    assert resolve_config({"resolution": 32})["n_downsample"] == 2
    assert resolve_config({"resolution": 256})["n_downsample"] == 4
    assert resolve_config({"resolution": 256, "local_enhancer": True})["n_downsample"] == 4


def test_lr_schedule_is_a_function_of_nimg():
    c = resolve_config(dict(lr=0.001, total_kimg=10, decay_kimg=4))
    assert lr_at(c, 0) == lr_at(c, 6000) == 0.001
    assert lr_at(c, 8000) == pytest.approx(0.0005)
    assert lr_at(c, 10000) == 0.0
    assert lr_at(dict(c, decay_kimg=0), 9999) == 0.001
    assert lr_at(dict(c, decay_kimg=20), 0) == 0.001  # longer than the run: decays over all of it


# ----------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    return gh.train_straight(tmp_path_factory, "pix2pixhd", *data[:2], CFG, masks=data[2])


def test_training_lowers_fid(straight, data):
    out, summary = straight
    assert summary["snapshots"] == ["snapshot-000000_320.pt", "snapshot-000000_640.pt",
                                    "snapshot-000000_960.pt"]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in recs:
        for k in ("loss_G", "loss_D", "loss_G_gan", "loss_G_feat", "loss_D_real", "loss_D_fake", "lr_G"):
            assert np.isfinite(r[k]), k
        assert r["loss_G_vgg"] is None
    assert recs[0]["lr_G"] == 0.0002 and recs[-1]["lr_G"] < 0.0002 * 0.1  # decayed towards 0
    gh.assert_fid_falls(Generator, out, summary["snapshots"], *data)


def test_generate_from_snapshot(straight, data):
    out, summary = straight
    _, labels, masks = data
    G = load_generator(out / summary["snapshots"][-1], "cpu")
    s = load_snapshot(out / summary["snapshots"][-1])
    assert s["format"] == "ganaug-pix2pixhd-v1" and s["num_classes"] == 2 and s["arch"]["n_downsample"] == 1
    a = generate(G, labels[:6], seed=1, device="cpu", batch_size=4, masks=masks[:6])
    b = generate(G, labels[:6], seed=2, device="cpu", masks=masks[:6])
    assert a.shape == (6, R, R, 3) and a.dtype == np.uint8 and np.array_equal(a, b)  # a function of the map
    c = generate(G, labels[:6], seed=1, device="cpu", masks=masks[6:12])
    assert not np.array_equal(a, c)
    grid = sample_grid(G, 3, seed=0, device="cpu", masks=masks, mask_labels=labels)
    assert grid.shape == (2 * R, 3 * R, 3)


def test_killed_and_resumed_equals_straight(straight, data, tmp_path):
    # killed before step 70: between the snapshots at 40 and 80 steps, inside the lr decay
    gh.assert_killed_run_resumes(pix2pixhd, 70, straight, tmp_path, CFG, *data, kept=["snapshot-000000_320.pt"])


# -------------------------------------------------------------------------------------- config


def test_bad_config_and_inputs(data, tmp_path):
    imgs, labels, masks = data
    assert set(CFG) <= set(DEFAULTS)
    for key in ("resolution", "batch", "num_classes", "total_kimg", "snapshot_kimg", "num_threads"):
        assert key in DEFAULTS
    assert pix2pixhd.CONDITIONING == "mask" and pix2pixhd.FORMAT == "ganaug-pix2pixhd-v1"
    bad = [(dict(foo=1), "foo"), (dict(resolution=24), "resolution"), (dict(resolution=8), "resolution"),
           (dict(ngf=0), "ngf"), (dict(n_downsample=3), "n_downsample"),
           (dict(local_enhancer="yes"), "local_enhancer"),
           (dict(betas=[0.5]), "betas"), (dict(lr=-1), "lr"), (dict(decay_kimg="x"), "decay_kimg"),
           (dict(num_D=4), "num_D"), (dict(mirror=1), "mirror"), (dict(vgg_url=3), "vgg_url"),
           (dict(lambda_feat=-1), "lambda_feat"), (dict(n_blocks=1.5), "n_blocks")]
    for cfg, key in bad:
        with pytest.raises(InputError, match=rf"gans\.pix2pixhd\.{key}"):
            resolve_config(dict(CFG, **cfg))
    with pytest.raises(InputError, match=r"gans\.pix2pixhd\.foo"):
        train_gan("pix2pixhd", imgs, labels, tmp_path, dict(CFG, foo=1), seed=0, device="cpu", masks=masks)
    with pytest.raises(InputError, match="no masks"):
        train_gan("pix2pixhd", imgs, labels, tmp_path, CFG, seed=0, device="cpu")
    bad_masks = masks.copy()
    bad_masks[0, 0, 0] = 8
    with pytest.raises(InputError, match="label value 8"):
        train_gan("pix2pixhd", imgs, labels, tmp_path, CFG, seed=0, device="cpu", masks=bad_masks)
    with pytest.raises(InputError, match="uint8"):
        train_gan("pix2pixhd", imgs, labels, tmp_path, CFG, seed=0, device="cpu", masks=masks[:, :8, :8])
    assert not list(tmp_path.glob("snapshot-*"))


def test_batch_of_one_and_two_train(data, tmp_path):
    """The paper config's batch (2, Bissoto et al.'s --batchSize; pix2pixHD's default is 1): instance
    norm works per image, so both train with finite losses."""
    imgs, labels, masks = data
    for batch in (1, 2):
        cfg = dict(CFG, batch=batch, total_kimg=0.002 * batch, snapshot_kimg=0.002 * batch, decay_kimg=0.001)
        out = train_gan("pix2pixhd", imgs, labels, tmp_path / str(batch), cfg, seed=0, device="cpu",
                        masks=masks)
        rec = json.loads((tmp_path / str(batch) / "metrics.jsonl").read_text().splitlines()[-1])
        assert out["images"] == len(imgs) and rec["images_seen"] == 2 * batch
        assert all(np.isfinite(rec[k]) for k in ("loss_G", "loss_D"))
