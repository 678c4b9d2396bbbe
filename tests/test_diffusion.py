"""The EDM diffusion model (ganaug.gans.diffusion): its formulas against hand computations, the Heun sampler
on data whose ideal denoiser is known, shapes and value range, class conditioning and classifier-free
guidance, training on toy images lowers FID, exact resume, config errors."""

import json
import math

import gan_helpers as gh
import numpy as np
import pytest
import torch

from ganaug import toyderm
from ganaug.design import experiment_id, format_label
from ganaug.fid import fid_from_features
from ganaug.gans import ABBREVIATIONS, CONDITIONING, GAN_NAMES, BUILTIN, IMPLEMENTED, gan_of_format
from ganaug.gans.diffusion import (
    DEFAULTS,
    FORMAT,
    Denoiser,
    Generator,
    Trainer,
    arch_config,
    heun_sample,
    initial_noise,
    loss_weight,
    preconditioning,
    resolve_config,
    sampling_sigmas,
    training_sigmas,
)
from ganaug.gans.training import generate, load_generator, load_snapshot, train_gan
from ganaug.io import InputError

SMALL = dict(resolution=16, model_channels=8, channel_mult=[1, 2], num_blocks=1, num_steps=4)
# tiny but complete: label dropout (a draw of its own), dropout (the global RNG), lr and EMA ramp-ups
CFG = dict(SMALL, batch=8, p_uncond=0.25, dropout=0.1, lr_rampup_kimg=0.05, ema_halflife_kimg=0.02,
           total_kimg=0.096, snapshot_kimg=0.032)


def toy_images(n, size, seed):
    """toyderm images (half melanoma) and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    return np.stack([toyderm.generate_image(rng, int(lab), size, difficulty=0.2)[0] for lab in labels]), labels


def denoiser(**kw):
    return Denoiser(**arch_config(dict(resolve_config({**SMALL, **kw}), num_classes=2)), seed=0)


def randomise_zero_layers(net, std=0.2):
    """Give the zero-initialised layers (block outputs, output conv) random weights: an untrained network whose
    class embedding reaches the output."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return net


def generator(net, **kw):
    settings = dict(num_steps=4, sigma_min=0.002, sigma_max=80.0, rho=7.0, guidance=1.0, precision="auto")
    return Generator(net, **{**settings, **kw}).eval()


def test_registry_and_edm_defaults():
    assert "diffusion" in IMPLEMENTED and "diffusion" in BUILTIN and "diffusion" not in GAN_NAMES
    assert gan_of_format(FORMAT) == "diffusion" and ABBREVIATIONS["diffusion"] == "dif"
    assert CONDITIONING["diffusion"] == "class"
    assert format_label("1:1/2", "diffusion") == "1:1/2 dif" and experiment_id("1:1/2", "diffusion") == "1x1-2_dif"
    cfg = resolve_config({})
    # EDM Table 1 / NVlabs edm: sigma_data, P_mean, P_std, sampler; train.py: betas
    assert (cfg["sigma_data"], cfg["p_mean"], cfg["p_std"]) == (0.5, -1.2, 1.2)
    assert (cfg["num_steps"], cfg["sigma_min"], cfg["sigma_max"], cfg["rho"]) == (18, 0.002, 80.0, 7.0)
    assert cfg["betas"] == [0.9, 0.999] and cfg["guidance"] == 1 and cfg["p_uncond"] == 0
    assert set(CFG) <= set(DEFAULTS)


def test_preconditioning_by_hand():
    sigma, sd = torch.tensor([2.0]), 0.5
    c_skip, c_out, c_in, c_noise = preconditioning(sigma, sd)
    assert c_skip.item() == pytest.approx(0.25 / 4.25)
    assert c_out.item() == pytest.approx(1.0 / math.sqrt(4.25))
    assert c_in.item() == pytest.approx(1 / math.sqrt(4.25))
    assert c_noise.item() == pytest.approx(math.log(2) / 4)
    # the network's output layer starts at zero: D(x) = c_skip x; with F(y) = 3 y: D = c_skip x + c_out 3 c_in x
    net = denoiser()
    x = torch.randn(3, 3, 16, 16)
    s = torch.tensor([0.1, 2.0, 50.0])
    c_skip, c_out, c_in, _ = preconditioning(s.reshape(-1, 1, 1, 1), sd)
    onehot = torch.eye(2)[[0, 1, 0]]
    assert torch.allclose(net(x, s, onehot), c_skip * x, atol=1e-6)
    net.unet.forward = lambda y, c_noise, c, gen: 3 * y
    assert torch.allclose(net(x, s, onehot), c_skip * x + c_out * 3 * c_in * x, atol=1e-5)


def test_loss_weight_and_noise_level_statistics():
    sigma = torch.tensor([0.01, 0.5, 3.0, 80.0])
    _, c_out, _, _ = preconditioning(sigma, 0.5)
    assert torch.allclose(loss_weight(sigma, 0.5), (sigma ** 2 + 0.25) / (sigma * 0.5) ** 2)
    assert torch.allclose(loss_weight(sigma, 0.5), 1 / c_out ** 2)
    s = training_sigmas(20000, -1.2, 1.2, torch.Generator().manual_seed(0), "cpu")
    assert s.shape == (20000, 1, 1, 1) and (s > 0).all()
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.03)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.03)
    # EDM's point: with data of std sigma_data, the untrained network (D = c_skip x) has a weighted loss of 1
    # at every noise level
    net = denoiser()
    y = torch.randn(64, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.5
    for level in (0.01, 0.3, 5.0, 80.0):
        sig = torch.full((64, 1, 1, 1), level)
        n = torch.randn(y.shape, generator=torch.Generator().manual_seed(2)) * sig
        loss = loss_weight(sig, 0.5) * (net(y + n, sig, torch.zeros(64, 2)) - y).square()
        assert loss.mean().item() == pytest.approx(1.0, abs=0.05), level


def test_sampling_sigmas():
    s = sampling_sigmas(18, 0.002, 80, 7)
    assert len(s) == 19 and s[0] == pytest.approx(80) and s[17] == pytest.approx(0.002) and s[18] == 0
    assert all(a > b for a, b in zip(s, s[1:]))
    mid = sampling_sigmas(3, 0.002, 80, 7)[1]
    assert mid == pytest.approx(((80 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7)


def test_heun_sampler_on_gaussian_data():
    """Data ~ N(0, sd^2): the ideal denoiser is D(x; sigma) = x sd^2 / (sd^2 + sigma^2) and the exact ODE maps
    x(sigma_max) = noise sigma_max to noise sigma_max sd / sqrt(sd^2 + sigma_max^2), samples of std ~ sd.
    Heun's method gets there with an error of 2nd order in the step; 18 steps cost 35 evaluations."""
    sd, calls = 0.3, []

    def ideal(x, sigma):
        calls.append(sigma)
        return x * sd ** 2 / (sd ** 2 + sigma ** 2)

    noise = torch.randn(20000, 3, generator=torch.Generator().manual_seed(0))
    exact = noise.double() * 80 * sd / math.sqrt(sd ** 2 + 80 ** 2)
    x = heun_sample(ideal, noise, sampling_sigmas(18, 0.002, 80, 7))
    assert len(calls) == 35 and x.dtype == torch.float64
    assert x.std().item() == pytest.approx(sd, rel=0.08)

    def error(steps):
        """The largest relative error (the ODE is linear: the same for every sample)."""
        return (heun_sample(ideal, noise, sampling_sigmas(steps, 0.002, 80, 7)) / exact - 1).abs().max().item()

    assert error(18) < 0.08 and error(200) < 0.002
    assert 3 < error(18) / error(36) < 6  # halving the step quarters the error


def test_sample_shapes_range_and_determinism():
    G = generator(randomise_zero_layers(denoiser(), std=1.0))
    assert (G.resolution, G.num_classes, G.z_dim, G.conditioning) == (16, 2, 8, "class")
    z, c = torch.randn(5, 8), torch.tensor([0, 1, 1, 0, 1])
    img = G.sample(z, c)
    assert img.shape == (5, 3, 16, 16) and img.dtype == torch.float32
    assert img.min() >= -1 and img.max() <= 1 and (img.abs() == 1).any()  # clamped
    assert torch.equal(img, G.sample(z, c))
    # an image does not depend on its batch (up to float rounding: convolutions of other batch sizes)
    assert torch.allclose(img[2:4], G.sample(z[2:4], c[2:4]), atol=1e-4)
    assert torch.equal(initial_noise(z[:1], 16), initial_noise(z[:1].clone(), 16))
    assert not torch.equal(initial_noise(z[:1], 16), initial_noise(z[1:2], 16))
    labels = np.array([0, 1, 1, 0, 1, 0, 0])
    a = generate(G, labels, seed=3, device="cpu", batch_size=3)
    assert a.shape == (7, 16, 16, 3) and a.dtype == np.uint8
    b = generate(G, labels, seed=3, device="cpu")
    assert np.abs(a.astype(int) - b).max() <= 1 and (a != b).mean() < 0.01
    assert np.array_equal(b, generate(G, labels, seed=3, device="cpu"))
    with pytest.raises(InputError, match="truncation"):
        G.sample(z, c, truncation_psi=0.7)


def test_class_conditioning_and_guidance():
    net = randomise_zero_layers(denoiser())
    z = torch.randn(4, 8).repeat(2, 1)
    c = torch.tensor([0] * 4 + [1] * 4)
    img = generator(net).sample(z, c)
    assert (img[:4] - img[4:]).abs().mean() > 1e-2  # same noise, other class -> other image
    # guidance 0: only the unconditional denoiser (no class), the class does not matter
    uncond = generator(net, guidance=0.0).sample(z, c)
    assert torch.allclose(uncond[:4], uncond[4:], atol=1e-6)
    # guidance w: D = D_uncond + w (D_cond - D_uncond), both from one batched evaluation per step
    z2, c2, onehot = torch.randn(2, 8), torch.tensor([0, 1]), torch.eye(2)

    def guided(x, sigma):
        s = torch.full((2,), sigma)
        d_c, d_u = net(x, s, onehot).double(), net(x, s, torch.zeros(2, 2)).double()
        return d_u + 2 * (d_c - d_u)

    expect = heun_sample(guided, initial_noise(z2, 16), sampling_sigmas(4, 0.002, 80, 7)).float().clamp(-1, 1)
    G2 = generator(Recorder(net), guidance=2.0)
    assert torch.allclose(G2.sample(z2, c2), expect, atol=1e-4)
    calls = G2.denoiser.calls
    assert len(calls) == 2 * 4 - 1 and len(calls[0]) == 4  # 4 steps: 7 evaluations of cond + uncond
    assert not calls[0][2:].any() and torch.equal(calls[0][:2], onehot)


class Recorder(torch.nn.Module):
    """A denoiser that records the class inputs it is called with."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []
        self.resolution, self.num_classes = net.resolution, net.num_classes

    def forward(self, x, sigma, onehot, precision):
        self.calls.append(onehot)
        return self.net(x, sigma, onehot, precision)


def test_label_dropout_in_training():
    imgs, labels = gh.class_data(n=16, r=16)
    cfg = dict(resolve_config(dict(SMALL, batch=40, p_uncond=0.5)), num_classes=2)
    tr = Trainer(imgs, labels, None, cfg, seed=1, device="cpu", log=None)
    seen = []
    forward = tr.G.forward
    tr.G.forward = lambda x, s, onehot, p, g: seen.append(onehot) or forward(x, s, onehot, p, g)
    tr.train_step()
    dropped = (seen[0].sum(1) == 0).float().mean().item()
    assert 0.25 < dropped < 0.75
    cfg0 = dict(resolve_config(dict(SMALL, batch=40)), num_classes=2)
    tr0 = Trainer(imgs, labels, None, cfg0, seed=1, device="cpu", log=None)
    forward0 = tr0.G.forward
    tr0.G.forward = lambda x, s, onehot, p, g: seen.append(onehot) or forward0(x, s, onehot, p, g)
    tr0.train_step()
    assert (seen[1].sum(1) == 1).all()


def test_training_on_toy_images_lowers_fid(tmp_path):
    """1.6 kimg on 96 toyderm images (16 px): the FID (cheap features) of the last snapshot is well below the
    first's (0.4 kimg) and far below an untrained network's."""
    imgs, labels = toy_images(96, 16, 0)
    ref, ref_labels = toy_images(192, 16, 1)
    cfg = dict(SMALL, model_channels=16, num_steps=6, batch=16, lr=0.002, lr_rampup_kimg=0.1,
               ema_halflife_kimg=0.1, total_kimg=1.6, snapshot_kimg=0.4)
    summary = train_gan("diffusion", imgs, labels, tmp_path, cfg, seed=0, device="cpu")
    assert len(summary["snapshots"]) == 4
    feat_r = gh.cheap_features(ref)

    def fid(G):
        return fid_from_features(feat_r, gh.cheap_features(generate(G.eval(), ref_labels, seed=0, device="cpu")))

    first = load_snapshot(tmp_path / summary["snapshots"][0])
    untrained = fid(generator(Denoiser(**first["arch"], seed=0), num_steps=6))
    fids = [fid(load_generator(tmp_path / name, "cpu")) for name in summary["snapshots"][::3]]
    assert fids[-1] < 0.7 * fids[0] and fids[-1] < 0.3 * untrained, (untrained, fids)
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["snapshot"] for r in recs] == summary["snapshots"]
    assert all(np.isfinite(r["loss_edm"]) for r in recs) and recs[-1]["loss_edm"] < recs[0]["loss_edm"]


@pytest.fixture(scope="module")
def data():
    return gh.class_data(n=24, r=16)


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    return gh.train_straight(tmp_path_factory, "diffusion", *data, CFG)


def assert_same_state(a, b):
    """Two diffusion snapshots hold the same training state (networks, Adam, counts, RNGs, data order)."""
    for key in ("G", "G_ema"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    sa, sb = a["G_opt"]["state"], b["G_opt"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 0
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
    assert a["G_opt"]["param_groups"] == b["G_opt"]["param_groups"]
    for key in ("images_seen", "step", "arch", "sampler"):
        assert a[key] == b[key], key
    for key in ("gen", "data_gen", "torch_cpu"):
        assert torch.equal(a["rng"][key], b["rng"][key]), key
    assert torch.equal(a["data"]["perm"], b["data"]["perm"])


def test_killed_and_resumed_equals_straight(straight, data, tmp_path):
    out, summary = straight
    assert summary["snapshots"] == ["snapshot-000000_032.pt", "snapshot-000000_064.pt", "snapshot-000000_096.pt"]
    # dies at step 6 (0.048 kimg), between two snapshots: the resume repeats steps 4 and 5
    gh.train_killed(__import__("ganaug.gans.diffusion", fromlist=["x"]), 6, *data, tmp_path, CFG)
    assert sorted(p.name for p in tmp_path.glob("snapshot-*")) == ["snapshot-000000_032.pt"]
    resumed = train_gan("diffusion", *data, tmp_path, CFG, seed=3, device="cpu")
    assert resumed["snapshots"] == summary["snapshots"]
    for name in summary["snapshots"]:
        assert_same_state(load_snapshot(out / name), load_snapshot(tmp_path / name))
    assert gh.metrics_records(tmp_path / "metrics.jsonl") == gh.metrics_records(out / "metrics.jsonl")
    # the generators of the two runs sample the same images
    labels = np.array([0, 1, 1])
    last = summary["snapshots"][-1]
    assert np.array_equal(generate(load_generator(out / last, "cpu"), labels, 1, "cpu"),
                          generate(load_generator(tmp_path / last, "cpu"), labels, 1, "cpu"))


def test_generator_of_a_snapshot(straight):
    out, summary = straight
    s = load_snapshot(out / summary["snapshots"][-1])
    assert s["format"] == FORMAT and s["images_seen"] == 96 and s["sampler"]["num_steps"] == 4
    G = load_generator(out / summary["snapshots"][-1], "cpu")
    assert isinstance(G, Generator) and not G.training and len(G.sigmas) == 5
    for k, v in G.denoiser.state_dict().items():
        assert torch.equal(v, s["G_ema"][k])
    raw = load_generator(out / summary["snapshots"][-1], "cpu", ema=False)
    assert not torch.equal(raw.denoiser.unet.conv_in.weight, G.denoiser.unet.conv_in.weight)


def test_bf16_needs_cuda(data):
    cfg = dict(resolve_config(dict(SMALL, precision="bf16")), num_classes=2)
    with pytest.raises(InputError, match=r"gans\.diffusion\.precision"):
        Trainer(*data, None, cfg, seed=0, device="cpu", log=None)


@pytest.mark.parametrize("key,value", [
    ("foo", 1), ("resolution", 24), ("resolution", 4), ("model_channels", 10), ("model_channels", 0),
    ("channel_mult", []), ("channel_mult", [1, 0]), ("num_blocks", 1.5), ("attn_resolutions", [3]),
    ("attn_resolutions", 8), ("dropout", 1.0), ("batch", 0), ("lr", 0), ("betas", [0.9]), ("lr_rampup_kimg", -1),
    ("ema_halflife_kimg", "x"), ("ema_rampup_ratio", 0), ("sigma_data", 0), ("p_mean", "a"), ("p_std", -1),
    ("p_uncond", 1.0), ("num_steps", 1), ("sigma_min", 0), ("sigma_max", 0.001), ("rho", 0), ("guidance", 2.0),
    ("guidance", -1), ("mirror", "yes"), ("precision", "fp16"), ("total_kimg", 0), ("snapshot_kimg", -1),
    ("num_classes", 0), ("num_threads", True),
])
def test_bad_config(key, value):
    with pytest.raises(InputError, match=rf"gans\.diffusion\.{key}"):
        resolve_config(dict(SMALL, **{key: value}))


def test_bad_config_via_train_gan(data, tmp_path):
    with pytest.raises(InputError, match=r"gans\.diffusion\.foo"):
        train_gan("diffusion", *data, tmp_path, dict(CFG, foo=1), seed=3, device="cpu")


def test_several_processes_are_refused(data):
    """One process only: the trainer has no `dist` context, so the launcher refuses gpu > 1 with a message."""
    from ganaug.gans import distributed

    cfg = dict(resolve_config(SMALL), num_classes=2)
    with pytest.raises(InputError, match=r"gans\.diffusion: training on several GPUs"):
        distributed.check_supported("diffusion", Trainer(*data, None, cfg, seed=0, device="cpu", log=None))


def test_ema_half_life_and_lr_ramp_up(data):
    """training_loop.py: beta = 0.5 ** (batch / half-life in images), the half-life at most images seen x
    ema_rampup_ratio; lr ramps up linearly; the EMA moves by that beta at every step."""
    cfg = dict(resolve_config(dict(SMALL, batch=8, ema_halflife_kimg=0.4, ema_rampup_ratio=0.05,
                                   lr_rampup_kimg=0.08)), num_classes=2)
    tr = Trainer(*data, None, cfg, seed=0, device="cpu", log=None)
    assert tr.ema_beta() == 0 and tr.lr() == 0  # step 0: the EMA copies the network
    tr.cur_nimg = 16000  # ramp-up over: half-life 400 images
    assert tr.ema_beta() == pytest.approx(0.5 ** (8 / 400)) and tr.lr() == cfg["lr"]
    tr.cur_nimg = 4000  # 4000 x 0.05 = 200 images < 400
    assert tr.ema_beta() == pytest.approx(0.5 ** (8 / 200)) and tr.lr() == cfg["lr"]
    tr.cur_nimg = 40
    assert tr.lr() == pytest.approx(cfg["lr"] / 2)
    beta = tr.ema_beta()
    before = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    tr.train_step()
    after = tr.G.state_dict()
    for k, v in tr.G_ema.state_dict().items():
        assert torch.allclose(v, after[k].lerp(before[k], beta), atol=1e-7), k
    tr2 = Trainer(*data, None, dict(cfg, ema_rampup_ratio=None), seed=0, device="cpu", log=None)
    assert tr2.ema_beta() == pytest.approx(0.5 ** (8 / 400))
