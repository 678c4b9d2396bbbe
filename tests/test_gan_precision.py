"""Precision and the speed-related rewrites of PGAN, pix2pixHD and SPADE (ganaug.gans.accel): the
`precision` key, bf16 refused on CPU, the translation GANs' single discriminator pass on reals against
the two-pass step they replace, the spectral norm kept out of autocast, device-side loss statistics, and
constructors that name a misspelled keyword."""

import copy
import logging
import sys

import gan_helpers as gh
import pytest
import torch

from ganaug.gans import pgan, pix2pixhd, spade, translation
from ganaug.gans.translation import encode_label_map, feature_matching_loss
from ganaug.io import InputError

GANS = {"pgan": (pgan, dict(resolution=16, z_dim=16, channel_base=256, channel_max=16, batch=4)),
        "pix2pixhd": (pix2pixhd, dict(resolution=16, ngf=8, ndf=8, n_blocks=1, batch=4)),
        "spade": (spade, dict(resolution=16, ngf=8, ndf=8, spade_hidden=8, batch=4))}


def trainer(gan, **kw):
    mod, cfg = GANS[gan]
    images, labels, masks = gh.label_map_data(n=12, r=16)
    cfg = gh.resolved_cfg(mod, cfg, **kw)
    return mod.Trainer(images, labels, None if gan == "pgan" else masks, cfg, 3, "cpu",
                       logging.getLogger("ganaug"))


@pytest.mark.parametrize("gan", sorted(GANS))
def test_precision_key(gan):
    mod, cfg = GANS[gan]
    assert mod.DEFAULTS["precision"] == "auto"
    for ok in ("auto", "fp32", "bf16"):
        assert mod.resolve_config(dict(cfg, precision=ok))["precision"] == ok
    with pytest.raises(InputError, match=rf"gans\.{gan}\.precision: must be one of auto, fp32, bf16, got 'fp16'"):
        mod.resolve_config(dict(cfg, precision="fp16"))
    # bf16 runs on CUDA only; auto is fp32 on CPU
    with pytest.raises(InputError, match=rf"gans\.{gan}\.precision: bf16 needs a CUDA device"):
        trainer(gan, precision="bf16")
    assert trainer(gan).precision == "fp32"


@pytest.mark.parametrize("gan", sorted(GANS))
def test_statistics_stay_on_the_device_until_metrics(gan, monkeypatch):
    tr = trainer(gan)
    calls = []
    item, tolist = torch.Tensor.item, torch.Tensor.tolist

    def spy(fn):
        def wrapped(t):
            caller = sys._getframe(1).f_code.co_filename
            if "ganaug" in caller:  # not torch's own (CPU Adam reads its step count)
                calls.append(caller)
            return fn(t)
        return wrapped

    monkeypatch.setattr(torch.Tensor, "item", spy(item))
    monkeypatch.setattr(torch.Tensor, "tolist", spy(tolist))
    monkeypatch.setattr(torch.Tensor, "__float__", spy(torch.Tensor.__float__))
    for _ in range(2):
        tr.train_step()
    assert not calls  # no .item() / float() / .tolist() (a host sync on a GPU) in a training step
    monkeypatch.undo()
    m = tr.metrics()
    assert all(isinstance(m[k], float) for k in ("loss_G", "loss_D", "real_score", "fake_score")), m
    tr.reset_stats()
    assert tr.metrics()["loss_G"] is None


def two_pass_step(tr):
    """The translation step as it was before D(real) was shared: the G step's feature matching takes
    D(real) under no_grad, the D step runs D on the reals again (the oracle of the test below)."""
    cfg, G, D = tr.cfg, tr.G, tr.D
    tr.set_lrs()
    real, maps, _ = tr.real_batch()
    seg = encode_label_map(maps)
    z = tr.draw_z(tr.B)
    G.requires_grad_(True)
    D.requires_grad_(False)
    tr.G_opt.zero_grad(set_to_none=True)
    fake = G(seg, z)
    pred_fake = D(torch.cat([seg, fake], dim=1))
    with torch.no_grad():
        pred_real = D(torch.cat([seg, real], dim=1))
    loss_G = tr.g_adv_loss(pred_fake) + feature_matching_loss(pred_fake, pred_real, tr.fm_layer_weight) * \
        cfg["lambda_feat"]
    loss_G.backward()
    tr.G_opt.step()
    G.requires_grad_(False)
    D.requires_grad_(True)
    tr.D_opt.zero_grad(set_to_none=True)
    if tr.regenerate_for_D:
        with torch.no_grad():
            fake = G(seg, z)
    pred_fake = D(torch.cat([seg, fake.detach()], dim=1))
    pred_real = D(torch.cat([seg, real], dim=1))
    loss_D = sum(tr.d_adv_terms(pred_real, pred_fake))
    loss_D.backward()
    tr.D_opt.step()
    tr.cur_nimg += tr.B
    tr.step += 1
    return float(loss_G.detach()), float(loss_D.detach())


@pytest.mark.parametrize("gan", ["pix2pixhd", "spade"])
def test_one_discriminator_pass_on_reals(gan):
    """The step with one D(real) equals the two-pass step: exactly for pix2pixHD; for SPADE up to the
    spectral norm's power iteration (one fewer per step, so sigma moves by a little)."""
    new = trainer(gan)
    old = trainer(gan)
    calls = {"new": 0, "old": 0}
    for name, tr in (("new", new), ("old", old)):
        tr.D.register_forward_pre_hook(lambda m, a, name=name: calls.__setitem__(name, calls[name] + 1))
    for step in range(3):
        new.reset_stats()
        new.train_step()
        m = new.metrics()
        loss_G, loss_D = two_pass_step(old)
        if gan == "pix2pixhd":
            assert (m["loss_G"], m["loss_D"]) == pytest.approx((loss_G, loss_D), rel=1e-6), step
        else:
            assert (m["loss_G"], m["loss_D"]) == pytest.approx((loss_G, loss_D), rel=2e-3), step
    assert (calls["new"], calls["old"]) == (9, 12)  # D forwards in 3 steps: fake, real, fake vs 4 per step
    for net in ("G", "D"):
        a, b = getattr(new, net).state_dict(), getattr(old, net).state_dict()
        for k in a:
            if gan == "pix2pixhd":
                assert torch.equal(a[k], b[k]), (net, k)
            elif not k.endswith(("._u", "._v")):  # the power iteration's vectors: 9 vs 12 iterations
                assert torch.allclose(a[k], b[k], rtol=1e-2, atol=1e-3), (net, k)


def test_spectral_norm_out_of_autocast(monkeypatch):
    """The power iteration and sigma run with autocast off inside an autocast region (torch's own
    spectral norm runs them under it); the state dict and the random init of u, v are torch's."""
    seen = []
    mv = torch.mv
    monkeypatch.setattr(torch, "mv", lambda *a, **k: seen.append(torch.is_autocast_enabled("cpu")) or mv(*a, **k))
    torch.manual_seed(0)
    plain = torch.nn.utils.parametrizations.spectral_norm(torch.nn.Conv2d(4, 8, 3))
    torch.manual_seed(0)
    ours = translation.spectral_norm(torch.nn.Conv2d(4, 8, 3))
    sa, sb = plain.state_dict(), ours.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    seen.clear()  # the 15 power iterations at construction ran outside autocast
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w_plain = plain.weight
        assert seen and all(seen)
        seen.clear()
        w = ours.weight
    assert seen and not any(seen) and w.dtype == torch.float32
    assert torch.allclose(w, w_plain)  # (CPU autocast leaves mv in fp32: same values here)


def test_pgan_low_resolution_parts_in_fp32():
    """Under autocast (bf16, CPU here) D's 4x4 epilogue and G's 4x4 head run in fp32: D's scores and
    logits, the losses' inputs, come out fp32; the layers between run in bf16."""
    torch.manual_seed(0)
    G, D = pgan.build_networks(gh.resolved_cfg(pgan, GANS["pgan"][1]))
    z, c = torch.randn(4, 16), torch.tensor([0, 1, 0, 1])
    autocast_on = {}
    for name, m in (("G.dense", G.dense), ("G.conv4", G.conv4), ("G.block", G.blocks[0].conv0),
                    ("D.block", D.blocks[0].conv0), ("D.conv", D.conv), ("D.fc", D.fc), ("D.out", D.out)):
        m.register_forward_pre_hook(
            lambda m, a, name=name: autocast_on.__setitem__(name, torch.is_autocast_enabled("cpu")))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = D(G(z, c))
    assert out.dtype == torch.float32
    assert {k for k, on in autocast_on.items() if on} == {"G.block", "D.block"}, autocast_on


@pytest.mark.parametrize("ctor, kw", [
    (pgan.Generator, dict(chanel_base=64)), (pgan.Discriminator, dict(mbstd_grup=4)),
    (pix2pixhd.Generator, dict(n_block=2)), (spade.Generator, dict(spade_hiden=8)),
    (translation.MultiscaleDiscriminator, dict(in_channels=12, num_d=2)),
    (translation.PatchDiscriminator, dict(in_channels=12, n_layer=3)),
])
def test_constructors_name_a_misspelled_keyword(ctor, kw):
    bad = [k for k in kw if k != "in_channels"][0]
    with pytest.raises(TypeError, match=rf"unexpected keyword argument '{bad}'"):
        ctor(**kw)


def test_trainer_copies_are_independent():
    """A trainer deep-copies (what tests and tools do with them) with its device statistics."""
    tr = trainer("pix2pixhd")
    tr.train_step()
    cp = copy.deepcopy(tr)
    tr.train_step()
    assert cp.metrics()["loss_G"] is not None and cp.step == 1 and tr.step == 2


def test_training_job_configures_the_backends(tmp_path, monkeypatch):
    from ganaug.gans import training

    seen = []
    monkeypatch.setattr(training.accel, "configure_backends", lambda device: seen.append(device))
    images, labels, masks = gh.label_map_data(n=8, r=16)
    training.train_gan("pix2pixhd", images, labels, tmp_path, dict(GANS["pix2pixhd"][1], total_kimg=0.004,
                                                                      snapshot_kimg=0.004), 3, "cpu", masks=masks)
    assert seen == [torch.device("cpu")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast runs on CUDA only (refused on CPU)")
@pytest.mark.parametrize("gan", sorted(GANS))
def test_bf16_trains_like_fp32_on_cuda(gan):
    """A few steps in bf16 and in fp32 from the same state: finite losses, close to the fp32 ones."""
    mod, cfg = GANS[gan]
    images, labels, masks = gh.label_map_data(n=12, r=16)
    losses = {}
    for precision in ("fp32", "bf16"):
        c = gh.resolved_cfg(mod, cfg, precision=precision)
        tr = mod.Trainer(images, labels, None if gan == "pgan" else masks, c, 3, "cuda", logging.getLogger("x"))
        for _ in range(3):
            tr.train_step()
        losses[precision] = tr.metrics()
    for k in ("loss_G", "loss_D"):
        a, b = losses["fp32"][k], losses["bf16"][k]
        assert abs(b) < float("inf") and b == pytest.approx(a, rel=0.1, abs=0.05), (k, a, b)
