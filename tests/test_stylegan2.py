"""StyleGAN2 building blocks and networks: shapes, conditioning, equalised lr, modulation, FIR, ADA."""

import math

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from ganaug.gans import ABBREVIATIONS, GAN_NAMES, IMPLEMENTED, require_implemented
from ganaug.gans.augment import AdaController, augment
from ganaug.gans.layers import (
    EqualConv2d,
    EqualLinear,
    MinibatchStd,
    ModulatedConv2d,
    downsample2x,
    fir_filter,
    modulated_weight,
    upsample2x,
)
from ganaug.gans.stylegan2 import Generator, build_networks, channels_at
from ganaug.io import InputError

SMALL = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
             num_classes=2)



def test_registry():
    assert GAN_NAMES == ("stylegan2", "pgan", "pix2pixhd", "spade")
    assert ABBREVIATIONS["stylegan2"] == "sgn" and ABBREVIATIONS["all"] == "all"
    assert IMPLEMENTED == set(GAN_NAMES) | {"diffusion"}  # the study's four GANs and the diffusion model
    assert require_implemented("stylegan2") == "stylegan2"
    with pytest.raises(InputError, match=r"gans\.x: unknown GAN 'stylegan3'"):
        require_implemented("stylegan3", key="gans.x")
    with pytest.raises(InputError, match="unknown GAN 'foo'"):
        require_implemented("foo")


def test_shapes_and_channels():
    G, D = build_networks(SMALL, seed=0)
    assert G.num_ws == 2 * int(math.log2(16)) - 2
    z = torch.randn(6, 16)
    c = torch.tensor([0, 1, 0, 1, 1, 0])
    img = G(z, c)
    assert img.shape == (6, 3, 16, 16)
    assert D(img, c).shape == (6, 1)
    assert channels_at(32, 4096, 64) == 64 and channels_at(4, 4096, 512) == 512
    assert channels_at(32, 1024, 64) == 32
    # the 4x4 constant has min(base/4, max) channels
    assert G.synthesis.blocks[0].const.shape == (16, 4, 4)
    # one-hot and integer labels are the same conditioning
    assert torch.allclose(G(z, c, noise_mode="const"), G(z, F.one_hot(c, 2).float(), noise_mode="const"))


def test_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    G1, G2 = Generator(**SMALL, seed=5), Generator(**SMALL, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    for a, b in zip(G1.state_dict().values(), G2.state_dict().values()):
        assert torch.equal(a, b)
    G3 = Generator(**SMALL, seed=6)
    assert not torch.equal(G1.synthesis.blocks[0].const, G3.synthesis.blocks[0].const)


def test_conditioning_changes_output():
    G, D = build_networks(SMALL, seed=0)
    # make the class embedding matter strongly enough to see at init
    z = torch.randn(4, 16).repeat(2, 1)
    c = torch.tensor([0] * 4 + [1] * 4)
    img = G(z, c, noise_mode="const")
    assert (img[:4] - img[4:]).abs().mean() > 1e-3
    x = torch.randn(4, 3, 16, 16).repeat(2, 1, 1, 1)
    out = D(x, c)
    assert (out[:4] - out[4:]).abs().mean() > 1e-4


def test_truncation_moves_towards_w_avg():
    G = Generator(**SMALL, seed=0)
    z = torch.randn(8, 16)
    c = torch.zeros(8, dtype=torch.long)
    G.mapping.w_avg.copy_(torch.randn(16))
    w0 = G.map(z, c, truncation_psi=0.0)
    assert torch.allclose(w0, G.mapping.w_avg.expand_as(w0))
    w1 = G.map(z, c, truncation_psi=1.0)
    wh = G.map(z, c, truncation_psi=0.5)
    assert torch.allclose(wh, 0.5 * (w0 + w1), atol=1e-5)


def test_equalised_lr_gain():
    torch.manual_seed(0)
    lin = EqualLinear(256, 128, lr_mul=0.01)
    assert lin.weight_gain == pytest.approx(0.01 / 16)
    assert lin.weight.std().item() == pytest.approx(100, rel=0.05)  # stored as randn / lr_mul
    y = lin(torch.randn(4096, 256))
    assert y.std().item() == pytest.approx(1.0, rel=0.1)  # effective weight ~ N(0, 1/fan_in)
    conv = EqualConv2d(32, 16, 3)
    assert conv.weight_gain == pytest.approx(1 / math.sqrt(32 * 9))
    assert conv.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert conv(torch.randn(8, 32, 16, 16)).std().item() == pytest.approx(1.0, rel=0.15)
    # the affine of a modulated conv starts with styles ~ 1 (bias init 1)
    mc = ModulatedConv2d(8, 8, 3, w_dim=16)
    assert torch.all(mc.affine.bias == 1.0)


def test_modulated_conv_demodulation_and_reference():
    torch.manual_seed(0)
    mc = ModulatedConv2d(32, 48, 3, w_dim=16)
    x = torch.randn(6, 32, 16, 16)
    w = torch.randn(6, 16) * 3  # strong, varied styles
    y = mc(x, w)
    assert y.shape == (6, 48, 16, 16)
    assert y.std(dim=[1, 2, 3]).min().item() > 0.7 and y.std(dim=[1, 2, 3]).max().item() < 1.3
    # equals the textbook per-sample modulated + demodulated weight as a grouped conv
    styles = mc.affine(w)
    wt = modulated_weight(mc.weight * mc.weight_gain, styles)
    ref = F.conv2d(x.reshape(1, -1, 16, 16), wt.reshape(-1, 32, 3, 3), padding=1, groups=6).reshape(6, 48, 16, 16)
    assert torch.allclose(y, ref, atol=1e-4)
    # without demodulation the output scales with the styles
    mc2 = ModulatedConv2d(32, 48, 3, w_dim=16, demodulate=False)
    assert mc2(x, w).std() > 1.5 * mc2(x, w * 0).std()


@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_modulated_conv_equals_scaled_input_conv(channels_last):
    """A 1x1 ModulatedConv2d (ToRGB) multiplies by the per-sample modulated weight (one matmul per sample):
    the same function as the non-fused form (input times styles, shared 1x1 conv, times the demodulation
    coefficients or the gain, plus `add`), in values, gradients and the double backward of the penalties,
    in both memory formats."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, 6, 5, 5, dtype=torch.double).contiguous(memory_format=fmt)
    w = torch.randn(3, 8, dtype=torch.double)
    add = torch.randn(3, 1, 5, 5, dtype=torch.double)
    for demodulate, gain in ((False, 1.0), (True, 1.7), (False, 0.5)):
        mc = ModulatedConv2d(6, 4, 1, w_dim=8, demodulate=demodulate).double().to(memory_format=fmt)

        def ref(a):
            styles = mc.affine(w)
            weight = mc.weight * mc.weight_gain
            y = F.conv2d(a * styles[:, :, None, None], weight)
            if demodulate:
                y = y * (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()[:, :, None, None]
            return y * gain + add

        got = _value_grad_gradgrad(lambda a: mc(a, w, out_gain=gain, add=add), x)
        assert got[0].is_contiguous(memory_format=fmt)
        for a, b in zip(got, _value_grad_gradgrad(ref, x)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        # and the gradient reaching w (through the styles) is the same too
        ga = torch.autograd.grad(mc(x, w.requires_grad_(True), out_gain=gain, add=add).tanh().sum(), w)[0]
        gb = torch.autograd.grad(ref(x).tanh().sum(), w)[0]
        w = w.detach()
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)


def test_fir_resampling():
    f = fir_filter()
    assert f.shape == (4, 4) and f.sum().item() == pytest.approx(1.0)
    x = torch.ones(2, 3, 8, 8)
    up = upsample2x(x, f)
    assert up.shape == (2, 3, 16, 16)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1))  # constant preserved away from borders
    down = downsample2x(x, f)
    assert down.shape == (2, 3, 4, 4)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.ones(1))
    # up then down of a smooth image ~ identity in the interior
    g = torch.linspace(-1, 1, 16)
    smooth = (g[None, :] * g[:, None]).expand(1, 1, 16, 16)
    rt = downsample2x(upsample2x(smooth, f), f)
    assert (rt - smooth)[..., 3:-3, 3:-3].abs().max() < 0.05
    # modulated conv with up=True doubles the size; D conv with down halves it
    mc = ModulatedConv2d(4, 5, 3, w_dim=8, up=True)
    assert mc(torch.randn(2, 4, 8, 8), torch.randn(2, 8)).shape == (2, 5, 16, 16)
    dc = EqualConv2d(4, 5, 3, down=True)
    assert dc(torch.randn(2, 4, 8, 8)).shape == (2, 5, 4, 4)
    sk = EqualConv2d(4, 5, 1, down=True, bias=False)
    assert sk(torch.randn(2, 4, 8, 8)).shape == (2, 5, 4, 4)


def test_minibatch_std():
    m = MinibatchStd(4, 1)
    x = torch.randn(8, 5, 4, 4)
    y = m(x)
    assert y.shape == (8, 6, 4, 4)
    assert torch.equal(y[:, :5], x)
    same = x[:1].repeat(8, 1, 1, 1)
    assert m(same)[:, 5].abs().max() < 1e-3
    # groups are samples i, i + n/g, ...: sample 0 and 2 share a group for n=8, g=4
    assert torch.allclose(y[0, 5], y[2, 5]) and torch.allclose(y[1, 5], y[3, 5])
    assert m(torch.randn(6, 5, 4, 4)).shape == (6, 6, 4, 4)  # group size adapts to the batch


def test_augment_identity_determinism_and_gradient():
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    assert augment(x, 0.0) is x
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a1, a2 = augment(x, 0.7, g1), augment(x, 0.7, g2)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, x)
    # x-flip only with p = 1 is an exact flip
    flip = augment(x, 1.0, torch.Generator().manual_seed(0), rotate90=False, xint=False, scale=False,
                   color=False, cutout=False)
    assert torch.allclose(flip, x.flip(3), atol=1e-5)
    # 90-degree rotations permute pixels exactly (no interpolation blur)
    rot = augment(x, 1.0, torch.Generator().manual_seed(0), xflip=False, xint=False, scale=False,
                  color=False, cutout=False)
    assert not torch.allclose(rot, x)
    assert torch.allclose(rot.flatten(1).sort().values, x.flatten(1).sort().values, atol=1e-5)
    xr = x.clone().requires_grad_(True)
    augment(xr, 0.5, torch.Generator().manual_seed(3)).square().sum().backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0


def test_ada_controller():
    ada = AdaController(target=0.6, ada_kimg=1.0, interval=4)
    for _ in range(8):
        ada.accumulate(torch.ones(16, 1))  # D very sure on reals: overfitting -> raise p
        ada.step(16)
    assert ada.p == pytest.approx(2 * 16 * 4 / 1000)
    for _ in range(4):
        ada.accumulate(-torch.ones(16, 1))
        ada.step(16)
    assert ada.p == pytest.approx(16 * 4 / 1000)
    s = ada.state_dict()
    b = AdaController(target=0.6, ada_kimg=1.0, interval=4)
    b.load_state_dict(s)
    assert b.state_dict() == s
    for _ in range(40):
        ada.accumulate(-torch.ones(2, 1))
        ada.step(16)
    assert ada.p == 0.0  # clamped


def test_augment_warp_is_twice_differentiable_like_grid_sample():
    """R1 on augmented reals differentiates through the warp twice; CUDA's grid_sample cannot, ours can."""
    import torch.nn.functional as F

    from ganaug.gans.augment import grid_sample

    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.double, requires_grad=True)
    theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.1, 1.1, 0.05]]] * 2, dtype=torch.double)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    assert torch.equal(grid_sample(x, grid), ref)
    assert torch.autograd.gradcheck(lambda a: grid_sample(a, grid), (x,))
    assert torch.autograd.gradgradcheck(lambda a: grid_sample(a, grid), (x,))


def test_config_validation_names_the_key():
    """The published settings of the original StyleGAN2 (no ADA, no mirroring, no EMA ramp-up, 8 mapping
    layers) are ordinary keys; a bad value fails naming its key instead of being coerced (bool("false") is
    True, so a quoted "false" would have switched ADA on)."""
    from ganaug.gans.stylegan2 import resolve_config

    cfg = resolve_config(dict(ada=False, mirror=False, ema_rampup=None, mapping_layers=8, batch=32, lr=0.002,
                              r1_gamma=10, ema_kimg=10, betas=[0, 0.99]))
    assert (cfg["ada"], cfg["mirror"], cfg["ema_rampup"], cfg["mapping_layers"]) == (False, False, None, 8)
    assert cfg["betas"] == [0.0, 0.99] and cfg["r1_gamma"] == 10.0
    bad = [(dict(ada="false"), "ada"), (dict(mirror="no"), "mirror"), (dict(mirror=1), "mirror"),
           (dict(betas=[0.5]), "betas"), (dict(betas="x"), "betas"), (dict(betas=[0, 1]), "betas"),
           (dict(ema_rampup=0), "ema_rampup"), (dict(ema_rampup="x"), "ema_rampup"), (dict(lr="x"), "lr"),
           (dict(r1_gamma=-1), "r1_gamma"), (dict(mapping_layers=0), "mapping_layers"),
           (dict(batch=True), "batch"), (dict(style_mixing=2), "style_mixing"),
           (dict(num_threads=0), "num_threads"), (dict(foo=1), "foo")]
    for kw, key in bad:
        with pytest.raises(InputError, match=rf"gans\.stylegan2\.{key}"):
            resolve_config(kw)


# ------------------------------------------------------------------------------ resampling kernels
# The implementations of commit 2654405, kept here as the reference the faster ones are checked against.


def _ref_blur(x, f, pad, gain=1.0):
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, (f * gain)[None, None].expand(c, 1, 4, 4), groups=c)


def _ref_up(x, f):
    c = x.shape[1]
    return F.conv_transpose2d(x, (f * 4.0)[None, None].expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def _ref_down(x, f):
    c = x.shape[1]
    return F.conv2d(x, f[None, None].expand(c, 1, 4, 4), stride=2, padding=1, groups=c)


def _value_grad_gradgrad(fn, x):
    """fn(x), the gradient of a nonlinear loss of it, and the gradient of that gradient's norm (what R1
    and the path-length penalty differentiate)."""
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    (g,) = torch.autograd.grad((y.tanh() * weights).sum(), x, create_graph=True)
    g.square().sum().backward()
    return y.detach(), g.detach(), x.grad


@pytest.mark.parametrize("channels_last", [False, True])
def test_resampling_implementations_equal_the_reference(channels_last):
    from ganaug.gans.layers import blur

    torch.manual_seed(0)
    f = fir_filter().double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    cases = [
        (lambda a, i: upsample2x(a, f, i), lambda a: _ref_up(a, f), (2, 3, 16, 16)),
        (lambda a, i: downsample2x(a, f, i), lambda a: _ref_down(a, f), (2, 3, 4, 4)),
        (lambda a, i: blur(a, f, (2, 2), impl=i), lambda a: _ref_blur(a, f, (2, 2)), (2, 3, 9, 9)),
        (lambda a, i: blur(a, f, (1, 1), 4.0, i), lambda a: _ref_blur(a, f, (1, 1), 4.0), (2, 3, 7, 7)),
        (lambda a, i: blur(a, f, (2, 1), impl=i), lambda a: _ref_blur(a, f, (2, 1)), (2, 3, 8, 8)),
    ]
    for fn, ref, shape in cases:
        expected = _value_grad_gradgrad(ref, x)
        assert expected[0].shape == shape
        for impl in ("depthwise", "native"):
            for a, b in zip(_value_grad_gradgrad(lambda t: fn(t, impl), x), expected):
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="unknown resampling implementation 'fast'"):
        upsample2x(x, f, "fast")


def test_fir_double_backward_never_differentiates_the_filter():
    """The depthwise FIR kernels' backward is the adjoint filtering (layers._FirConv), so R1 / path length
    differentiate it as one more filtering: no convolution double backward, which would also compute the
    gradient of the constant filter, one channel group at a time."""
    from ganaug.gans.layers import blur

    f = fir_filter()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    for fn in (lambda a: upsample2x(a, f, "depthwise"), lambda a: downsample2x(a, f, "depthwise"),
               lambda a: blur(a, f, (2, 2), impl="depthwise"), lambda a: blur(a, f, (2, 1), impl="depthwise")):
        (g,) = torch.autograd.grad(fn(x).square().sum(), x, create_graph=True)
        seen, todo = set(), [g.grad_fn]
        while todo:
            node = todo.pop()
            if node is not None and node not in seen:
                seen.add(node)
                todo.extend(n for n, _ in node.next_functions)
        names = {type(n).__name__ for n in seen}
        assert "_FirConvBackward" in names and not any(n.startswith("Convolution") for n in names), names


def test_auto_resampling_is_depthwise_on_cpu(monkeypatch):
    """"auto" picks the depthwise kernels on the CPU (faster there, measured) and the native ones on CUDA."""
    calls = []
    interpolate = F.interpolate
    monkeypatch.setattr(F, "interpolate", lambda *a, **k: calls.append(1) or interpolate(*a, **k))
    upsample2x(torch.randn(1, 2, 4, 4), fir_filter())
    assert calls == []
    upsample2x(torch.randn(1, 2, 4, 4), fir_filter(), "native")
    assert calls == [1]


def test_up_conv_is_zero_insertion_conv_then_filter():
    """ModulatedConv2d(up=True) is the reference's order: a stride-2 transposed conv (zero insertion +
    the 3x3 conv) at the low resolution, then the [1,3,3,1] filter with gain 4. Away from the borders it
    is the same function as filtering first and convolving at the doubled resolution (the old order)."""
    torch.manual_seed(0)
    mc = ModulatedConv2d(4, 5, 3, w_dim=8, up=True).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.double)
    w = torch.randn(2, 8, dtype=torch.double)
    styles = mc.affine(w)
    weight = mc.weight * mc.weight_gain
    dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()[:, :, None, None]
    xs = x * styles[:, :, None, None]
    zeros = torch.zeros(2, 4, 15, 15, dtype=torch.double)
    zeros[:, :, ::2, ::2] = xs  # zero insertion: 8 -> 15
    explicit = _ref_blur(F.conv2d(zeros, weight, padding=2), mc.fir.double(), (1, 1), 4.0) * dcoefs
    for impl in ("depthwise", "native"):
        mc.resample = impl
        y = mc(x, w)
        assert y.shape == (2, 5, 16, 16)
        torch.testing.assert_close(y, explicit, rtol=1e-10, atol=1e-12)
    old_order = F.conv2d(_ref_up(xs, mc.fir.double()), weight, padding=1) * dcoefs
    torch.testing.assert_close(y[..., 2:-2, 2:-2], old_order[..., 2:-2, 2:-2], rtol=1e-10, atol=1e-12)
    assert (y - old_order).abs().max() > 1e-3  # the borders differ


def test_folded_gains_equal_conv_bias_act():
    """EqualConv2d folds the activation gain and output gain into its weights and runs the activation in
    place; SynthesisLayer folds its gain into the demodulation: same values, gradients and double backward
    as the plain composition (conv, + bias, activation, gains)."""
    from ganaug.gans.layers import bias_act, blur
    from ganaug.gans.stylegan2 import SynthesisLayer

    torch.manual_seed(0)
    x = torch.randn(3, 4, 8, 8, dtype=torch.double)
    for k, down, act, gain in [(3, False, "lrelu", 1.0), (3, True, "lrelu", math.sqrt(0.5)),
                               (1, True, "linear", math.sqrt(0.5)), (1, False, "lrelu", 1.0)]:
        conv = EqualConv2d(4, 5, k, activation=act, down=down, gain=gain).double()
        with torch.no_grad():
            conv.bias.normal_()

        def ref(a):
            wt = conv.weight * conv.weight_gain
            if down and k == 1:
                a = F.conv2d(_ref_down(a, conv.fir.double()), wt)
            elif down:
                a = F.conv2d(_ref_blur(a, conv.fir.double(), (2, 2)), wt, stride=2)
            else:
                a = F.conv2d(a, wt, padding=k // 2)
            return bias_act(a, conv.bias, act) * gain

        for a, b in zip(_value_grad_gradgrad(conv, x), _value_grad_gradgrad(ref, x)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="gain must be > 0"):
        EqualConv2d(4, 5, 3, gain=0.0)

    layer = SynthesisLayer(4, 5, 8, 16, up=True).double()
    with torch.no_grad():
        layer.noise_strength.fill_(0.3)
        layer.bias.normal_()
    w = torch.randn(3, 8, dtype=torch.double)

    def ref_layer(a):
        y = layer.conv(a, w) + layer.noise_const * layer.noise_strength
        return bias_act(y, layer.bias, "lrelu")

    got = _value_grad_gradgrad(lambda a: layer(a, w, noise_mode="const"), x)
    for a, b in zip(got, _value_grad_gradgrad(ref_layer, x)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert blur  # (imported for the reference above)


def test_constructors_refuse_misspelled_arguments():
    """A misspelled architecture argument fails naming it instead of being swallowed."""
    from ganaug.gans.stylegan2 import Discriminator

    with pytest.raises(TypeError, match="chanel_max"):
        Discriminator(resolution=16, chanel_max=16)
    with pytest.raises(TypeError, match="mapping_layer"):
        Generator(**dict(SMALL, mapping_layer=2))
    with pytest.raises(TypeError, match="upp"):
        ModulatedConv2d(4, 4, 3, w_dim=8, upp=True)


# ------------------------------------------------------------------------------------ the trainer


def _trainer(**cfg):
    import gan_helpers as gh

    from ganaug.gans import stylegan2
    from ganaug.gans.stylegan2 import Trainer

    imgs, labels = gh.class_data()
    c = gh.resolved_cfg(stylegan2, dict(SMALL, batch=8, pl_weight=2.0, pl_interval=2, r1_interval=2,
                                        ada_interval=4, **cfg))
    return Trainer(imgs, labels, None, c, seed=0, device=torch.device("cpu"), log=None)


def test_precision_and_speed_switches():
    """bf16 cannot be selected on the CPU; the speed switches reach the networks; fp32 is what auto means
    on the CPU (the same training, bit for bit)."""
    from ganaug.gans.stylegan2 import resolve_config

    with pytest.raises(InputError, match=r"gans\.stylegan2\.precision: bf16 needs a CUDA device"):
        _trainer(precision="bf16")
    for kw, key in [(dict(precision="fp16"), "precision"), (dict(resample="fast"), "resample"),
                    (dict(channels_last="yes"), "channels_last")]:
        with pytest.raises(InputError, match=rf"gans\.stylegan2\.{key}"):
            resolve_config(kw)
    runs = {}
    for precision in ("auto", "fp32"):
        tr = _trainer(precision=precision)
        assert tr.precision == "fp32"
        for _ in range(2):
            tr.train_step()
        runs[precision] = tr.G.state_dict()
    for k in runs["auto"]:
        assert torch.equal(runs["auto"][k], runs["fp32"][k]), k
    tr = _trainer(channels_last=False, resample="native")
    conv = tr.D.blocks[0].conv0
    assert conv.resample == "native" and conv.weight.is_contiguous()
    tr = _trainer()
    assert tr.D.blocks[0].conv0.weight.is_contiguous(memory_format=torch.channels_last)
    assert tr.G.synthesis.blocks[1].conv0.conv.resample == "auto"


def _compile_unavailable() -> str | None:
    """Why torch.compile (inductor) cannot run here, or None."""
    try:
        torch.compile(lambda t: t * 2 + 1, dynamic=False)(torch.ones(3))
    except Exception as e:  # e.g. no C++ compiler for inductor's CPU kernels
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def test_compiled_main_passes_train_like_eager():
    """compile: true (torch.compile of the main G and D passes; R1 and path length stay eager) trains as
    the eager code does, within float tolerance: same losses, same weights after steps with both
    regularisers and ADA. Tiny networks at 8 px, so that inductor's first compile stays short."""
    reason = _compile_unavailable()
    if reason:
        pytest.skip(f"torch.compile (inductor) does not work in this environment: {reason}")
    import gan_helpers as gh

    from ganaug.gans import stylegan2

    imgs, labels = gh.class_data(n=16, r=8)
    tiny = dict(resolution=8, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8, batch=4,
                pl_weight=2.0, pl_interval=2, r1_interval=2, ada_interval=4)
    runs = {}
    for compiled in (False, True):
        cfg = gh.resolved_cfg(stylegan2, dict(tiny, compile=compiled))
        tr = stylegan2.Trainer(imgs, labels, None, cfg, seed=0, device=torch.device("cpu"), log=None)
        tr.ada.p = 0.5
        for _ in range(3):
            tr.train_step()
        runs[compiled] = tr
    eager, comp = runs[False], runs[True]
    assert comp.synthesis_main is not comp.G.synthesis and eager.synthesis_main is eager.G.synthesis
    assert "compiled" in comp.describe()
    for k, v in eager.stats.items():
        assert comp.stats[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
    for a, b in ((eager.G, comp.G), (eager.D, comp.D), (eager.G_ema, comp.G_ema)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4, msg=k)
    fresh = stylegan2.Trainer(imgs, labels, None, gh.resolved_cfg(stylegan2, tiny), seed=0,
                              device=torch.device("cpu"), log=None)
    key = "synthesis.blocks.1.conv1.conv.weight"
    assert (fresh.G.state_dict()[key] - comp.G.state_dict()[key]).abs().max() > 1e-3  # the steps did train
    with pytest.raises(InputError, match=r"gans\.stylegan2\.compile"):
        stylegan2.resolve_config(dict(compile="yes"))


def test_speed_switches_do_not_block_a_resume():
    """A run may resume with other speed settings (compile, precision, layout, resampling kernels), not with
    another science setting."""
    from ganaug.gans import stylegan2
    from ganaug.gans.snapshots import plain
    from ganaug.gans.training import _resume_problem

    started = stylegan2.resolve_config(dict(SMALL, compile=False))
    snap = dict(format=stylegan2.FORMAT, cfg=plain(started), data=dict(n=40), seed=0)
    args = (40, 0, "out", None)
    for speed in (dict(compile=True), dict(precision="fp32", channels_last=False, resample="native")):
        assert _resume_problem("stylegan2", stylegan2, snap, "s.pt", dict(started, **speed), *args) is None
    problem = _resume_problem("stylegan2", stylegan2, snap, "s.pt", dict(started, compile=True, lr=0.1), *args)
    assert problem.startswith("gans.stylegan2.lr")


def test_training_step_has_no_host_sync(monkeypatch):
    """No value is read back from the device during a step (loss statistics stay on it; ADA reads its
    statistic only every ada_interval steps), so a GPU never waits for the host."""
    import sys

    tr = _trainer()
    tr.ada.p = 0.3
    reads = []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def read(self, *a, **k):
            caller = sys._getframe(1).f_code.co_filename
            if "ganaug" in caller:
                reads.append((name, caller))
            return original(self, *a, **k)
        return read

    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    for step in range(3):  # both regularisers run (interval 2); ADA's interval is 4
        tr.train_step()
    assert reads == []
    tr.train_step()  # the ADA interval: one read
    assert [name for name, _ in reads] == ["__float__"]
    monkeypatch.undo()
    m = tr.metrics()
    assert all(np.isfinite(m[k]) for k in ("loss_G", "loss_D", "r1", "pl", "real_score", "fake_score"))
    assert tr.ada.p != 0.3  # adjusted at the interval


def test_training_lowers_fid(tmp_path):
    """A short StyleGAN2 run on toy label-map images: the FID (cheap features) of its last snapshot is
    below that of its first and below half that of an untrained generator."""
    import gan_helpers as gh

    from ganaug.gans.training import train_gan

    imgs, labels, _ = gh.label_map_data(48, 16, seed=0)
    cfg = dict(SMALL, batch=16, ada=False, pl_weight=0.0, ema_kimg=0.05, total_kimg=0.64, snapshot_kimg=0.064)
    summary = train_gan("stylegan2", imgs, labels, tmp_path, cfg, seed=0, device="cpu")
    assert len(summary["snapshots"]) == 10
    gh.assert_fid_falls(Generator, tmp_path, summary["snapshots"], imgs, labels)


def test_bf16_autocast_keeps_the_sensitive_parts_in_fp32_and_trains():
    """The bf16 code path (CUDA's; exercised here with CPU autocast, which the config refuses for speed
    reasons only): the mapping network, styles, demodulation, D's epilogue and logits and the regularisers'
    norms stay float32, the convs run in bf16, and a few training steps give losses close to fp32's."""
    G, D = build_networks(SMALL, seed=0)
    z, c = torch.randn(4, 16), torch.tensor([0, 1, 0, 1])
    seen = {}
    mc = G.synthesis.blocks[1].conv1.conv
    mc.register_forward_hook(lambda m, a, out: seen.update(conv_out=out.dtype))
    mc.affine.register_forward_hook(lambda m, a, out: seen.update(styles=out.dtype))
    D.mbstd.register_forward_hook(lambda m, a, out: seen.update(mbstd=out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ws = G.map(z, c)
        img = G.synthesis(ws, noise_mode="const")
        logits = D(img, c)
    assert (ws.dtype, logits.dtype, seen) == (torch.float32, torch.float32, dict(
        conv_out=torch.bfloat16, styles=torch.float32, mbstd=torch.float32))
    assert torch.equal(ws, G.map(z, c))  # the mapping ran in float32 (its matmuls too)
    torch.testing.assert_close(img, G.synthesis(ws, noise_mode="const"), atol=0.1, rtol=0.1)

    losses = {}
    for precision in ("fp32", "bf16"):
        tr = _trainer()
        tr.precision = precision  # bypasses the CPU refusal of resolve_precision
        for _ in range(3):
            tr.train_step()
        losses[precision] = tr.metrics()
    for k in ("loss_G", "loss_D", "r1", "pl"):
        assert np.isfinite(losses["bf16"][k]), k
        assert losses["bf16"][k] == pytest.approx(losses["fp32"][k], rel=0.1, abs=0.05), k
