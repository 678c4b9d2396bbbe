"""Building blocks of StyleGAN2 in plain PyTorch: equalised-lr layers, FIR resampling, modulated conv.

Equalised learning rate: parameters are stored with unit-variance init (divided by the lr multiplier)
and scaled at run time by `lr_mul / sqrt(fan_in)`, so Adam sees every layer at the same scale.
FIR resampling uses the separable [1,3,3,1] filter, as depthwise convolutions or as PyTorch's native
pooling / bilinear kernels (the same function; see the FIR section), no custom kernels; all ops here are
deterministic on CPU. A layer that resamples has a `resample` attribute (set_resample).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .settings import RESAMPLE_IMPLS

SQRT2 = math.sqrt(2.0)


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str = "linear", dim: int = 1) -> torch.Tensor:
    """x + b (broadcast along `dim`), then 'lrelu' (slope 0.2, times sqrt 2) or 'linear'."""
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    if act == "lrelu":
        return F.leaky_relu(x, 0.2) * SQRT2
    if act == "linear":
        return x
    raise ValueError(f"unknown activation {act!r}")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# --------------------------------------------------------------------------------------------- FIR
#
# Two implementations of the same [1,3,3,1] resampling, chosen per call by `impl`:
# - "depthwise": the filter as a depthwise conv2d / conv_transpose2d (groups=C), with its own backward
#   (_FirConv) for a cheap double backward. Fastest on CPU in channels_last (oneDNN); the reference the
#   other is tested against.
# - "native": the filter expressed through PyTorch's own resampling kernels, no grouped convs:
#   * [1,3,3,1]/8 = [1,1]/2 * [1,1]/2 * [1,1]/2 (1 2 1 -> 1 3 3 1), so the 2-D blur is three chained
#     stride-1 2x2 avg_pool2d of the zero-padded input (avg_pool2d's 1/4 per step: 1/64 = 1/sum(f)).
#   * 2x down-sampling keeps every second sample of the blur: the last of the three pools takes stride 2.
#   * 2x up-sampling (zero insertion, then the filter with gain 2 per axis, taps [1,3,3,1]/4): output 2m
#     is 3/4 x[m] + 1/4 x[m-1], output 2m+1 is 3/4 x[m] + 1/4 x[m+1], x zero outside. Bilinear
#     interpolation (scale 2, align_corners=False) samples output 2m at source m - 1/4 and 2m+1 at
#     m + 1/4: the same weights 3/4, 1/4. Its border clamps instead of reading zeros, so the input is
#     zero-padded by one first and the two outer outputs on each side (the only ones that read the
#     clamp) are cropped.
# "auto" is native on CUDA and depthwise elsewhere (measured on CPU; see dev/sg2_step_bench.py).
# RESAMPLE_IMPLS lives with the settings' checks (ganaug.gans.settings, no torch).


def fir_filter(taps=(1, 3, 3, 1), device=None) -> torch.Tensor:
    """Separable 2-D FIR filter (outer product of `taps`), normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32, device=device)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def _native(x: torch.Tensor, impl: str) -> bool:
    if impl == "auto":
        return x.is_cuda
    if impl not in RESAMPLE_IMPLS:
        raise ValueError(f"unknown resampling implementation {impl!r} (one of {', '.join(RESAMPLE_IMPLS)})")
    return impl == "native"


def _depthwise(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return f.to(x.dtype)[None, None].expand(x.shape[1], 1, *f.shape)


class _FirConv(torch.autograd.Function):
    """Depthwise conv2d / conv_transpose2d with a constant filter whose backward is again a _FirConv (the
    adjoint filtering), so it can be differentiated again at the cost of one more filtering.

    Same values and gradients as F.conv2d / F.conv_transpose2d with groups=C. Why: PyTorch's double
    backward of a grouped convolution also computes the gradient of the (constant) filter, one group at a
    time with copies of the activations; in R1 and the path-length penalty that was three times the cost
    of the filtering itself."""

    @staticmethod
    def forward(ctx, x, weight, stride: int, padding: int, transposed: bool, output_padding=0):
        ctx.save_for_backward(weight)
        ctx.geometry = (stride, padding, transposed, x.shape[-2:])
        # under autocast the backward runs in the forward's precision (the engine does not re-enter it)
        ctx.autocast = torch.is_autocast_enabled(x.device.type), torch.get_autocast_dtype(x.device.type)
        if transposed:
            return F.conv_transpose2d(x, weight, stride=stride, padding=padding, output_padding=output_padding,
                                      groups=x.shape[1])
        return F.conv2d(x, weight, stride=stride, padding=padding, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        stride, padding, transposed, (h, w) = ctx.geometry
        enabled, dtype = ctx.autocast
        with torch.autocast(grad.device.type, dtype=dtype, enabled=enabled):
            if transposed:  # adjoint of a transposed conv: the conv
                gx = _FirConv.apply(grad, weight, stride, padding, False)
            elif stride == 1:  # adjoint of a stride-1 correlation: correlation with the flipped filter
                gx = _FirConv.apply(grad, weight.flip([2, 3]), 1, weight.shape[-1] - 1 - padding, False)
            else:  # adjoint of a strided conv: the transposed conv, sized back to the input
                k = weight.shape[-1]
                out_pad = tuple(n - ((m - 1) * stride - 2 * padding + k) for n, m in zip((h, w), grad.shape[-2:]))
                gx = _FirConv.apply(grad, weight, stride, padding, True, out_pad)
        return gx, None, None, None, None, None


def _pool121(x: torch.Tensor) -> torch.Tensor:
    """[1,2,1]/4 per axis (two stride-1 2x2 mean pools): H -> H - 2."""
    return F.avg_pool2d(F.avg_pool2d(x, 2, 1), 2, 1)


def blur(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], gain: float = 1.0,
         impl: str = "auto") -> torch.Tensor:
    """The [1,3,3,1] filter `f` (fir_filter()) with zero padding (pad_before, pad_after) on both axes:
    H -> H + pad_before + pad_after - 3."""
    if _native(x, impl):
        y = F.avg_pool2d(_pool121(F.pad(x, [pad[0], pad[1], pad[0], pad[1]])), 2, 1)
        return y * gain if gain != 1.0 else y
    if pad[0] == pad[1]:  # the conv pads by itself: no padded copy
        return _FirConv.apply(x, _depthwise(f * gain, x), 1, pad[0], False)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return _FirConv.apply(x, _depthwise(f * gain, x), 1, 0, False)


def upsample2x(x: torch.Tensor, f: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """2x up-sampling: zero insertion + the filter with gain 4. H -> 2H."""
    if _native(x, impl):
        y = F.interpolate(F.pad(x, [1, 1, 1, 1]), scale_factor=2, mode="bilinear", align_corners=False)
        return y[:, :, 2:-2, 2:-2]
    # conv_transpose2d(stride 2) == insert zeros, pad k-1-p = 2 per side, correlate with the (symmetric)
    # filter: the same alignment as upfirdn2d(up=2, pad=(2, 1)) of the reference formulation.
    return _FirConv.apply(x, _depthwise(f * 4.0, x), 2, 1, True)


def downsample2x(x: torch.Tensor, f: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    """2x down-sampling: the filter (zero padding 1), then every second sample. H -> H/2."""
    if _native(x, impl):
        return F.avg_pool2d(_pool121(F.pad(x, [1, 1, 1, 1])), 2, 2)
    return _FirConv.apply(x, _depthwise(f, x), 2, 1, False)


def set_resample(module: nn.Module, impl: str) -> None:
    """Use resampling implementation `impl` (RESAMPLE_IMPLS) in every layer of `module`."""
    if impl not in RESAMPLE_IMPLS:
        raise ValueError(f"unknown resampling implementation {impl!r} (one of {', '.join(RESAMPLE_IMPLS)})")
    for m in module.modules():
        if hasattr(m, "resample"):
            m.resample = impl


# ------------------------------------------------------------------------------ equalised-lr layers


class EqualLinear(nn.Module):
    """Fully connected layer with equalised lr: y = act(x @ (W * lr_mul/sqrt(in)).T + b * lr_mul)."""

    def __init__(self, in_features, out_features, bias=True, bias_init=0.0, lr_mul=1.0, activation="linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x):
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)

    def extra_repr(self):
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, act={self.activation}"


class EqualConv2d(nn.Module):
    """Conv layer with equalised lr, optional FIR 2x down-sampling (blur then stride-2 conv).

    y = act(conv(x, W) + b) * gain. The leaky ReLU is positively homogeneous (lrelu(a v) = a lrelu(v) for
    a > 0), so its sqrt 2 and the output gain are folded into the (small) weight and bias, the bias goes
    into the conv, and the activation runs in place: one pass over the output instead of four."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", down=False,
                 gain=1.0):
        super().__init__()
        if activation not in ("linear", "lrelu"):
            raise ValueError(f"unknown activation {activation!r}")
        if not gain > 0:
            raise ValueError(f"the output gain must be > 0, got {gain}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.down = down
        self.gain = gain  # output gain applied after the activation (residual branches)
        self.k = kernel_size
        self.resample = "auto"
        self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x):
        g = self.gain * (SQRT2 if self.activation == "lrelu" else 1.0)
        w = self.weight * (self.weight_gain * g)
        b = self.bias * g if self.bias is not None and g != 1.0 else self.bias
        if self.down:
            if self.k == 1:
                x = downsample2x(x, self.fir, self.resample)
                x = F.conv2d(x, w, b)
            else:
                # blur so that the following stride-2 'valid' conv returns exactly H/2
                p = (self.k - 1) // 2 + 1  # k=3: pad 2 -> H+1, then stride-2 conv3x3 -> H/2
                x = blur(x, self.fir, (p, p), impl=self.resample)
                x = F.conv2d(x, w, b, stride=2)
        else:
            x = F.conv2d(x, w, b, padding=self.k // 2)
        # in place on the conv's fresh output (the conv does not keep it for its backward)
        return F.leaky_relu(x, 0.2, inplace=True) if self.activation == "lrelu" else x


class ModulatedConv2d(nn.Module):
    """Style-modulated conv: per-sample input-channel scales from w, optional demodulation, optional 2x up.

    Implemented in the 'non-fused' form: scale the input by the styles, run a shared conv, scale the
    output by the demodulation coefficients. Mathematically identical to convolving with the
    per-sample modulated+demodulated weight, and fast (no grouped conv; on the CPU at 64 channels a grouped
    conv is no faster, and its transposed form for up=True twice as slow). A 1x1 kernel (ToRGB) does
    use the per-sample weight, as one matmul per sample.

    up=True does what the StyleGAN2 reference does: a stride-2 transposed conv at the input resolution
    (= zero insertion, then the k x k conv), then the [1,3,3,1] filter with gain 4. Filtering first and
    convolving at the doubled resolution is the same function away from the borders (both are linear
    filters of the zero-inserted input, which commute) but costs four times the conv.

    The styles and the demodulation coefficients are computed in the parameters' precision (float32), outside
    any autocast.
    """

    def __init__(self, in_channels, out_channels, kernel_size, w_dim, demodulate=True, up=False):
        super().__init__()
        if up and kernel_size != 3:
            raise ValueError(f"an up-sampling modulated conv has a 3x3 kernel, got {kernel_size}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.up = up
        self.k = kernel_size
        self.resample = "auto"
        self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x, w, out_gain: float = 1.0, add: torch.Tensor | None = None):
        """conv(x modulated by the styles of w), demodulated, times out_gain, plus `add` (broadcast)."""
        weight = self.weight * self.weight_gain
        with torch.autocast(x.device.type, enabled=False):
            styles = self.affine(w.to(self.weight.dtype))  # [N, in]
            if self.demodulate:
                # sum_{i,kh,kw} (W_oi * s_i)^2 = sum_i s_i^2 * sum_{kh,kw} W_oi^2
                dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
                scale = dcoefs * out_gain if out_gain != 1.0 else dcoefs
        n = x.shape[0]
        if self.k == 1 and not self.up:
            # 1x1 (ToRGB): one matmul per sample with the modulated (and demodulated) weight instead of
            # a pass over the (wide) input to scale it, and in backward two more
            wmod = weight[None, :, :, 0, 0] * styles[:, None, :]  # [N, out, in]
            if self.demodulate:
                wmod = wmod * scale[:, :, None]
            elif out_gain != 1.0:
                wmod = wmod * out_gain
            x = _pointwise(x, wmod)
            return x + add.to(x.dtype) if add is not None else x
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        if self.up:
            # conv_transpose2d(stride 2) with the flipped, in/out-swapped kernel == zero insertion, zero
            # padding 2, conv2d with `weight`: H -> 2H + 1; the filter with padding (1, 1) brings it to 2H
            x = F.conv_transpose2d(x, weight.flip([2, 3]).transpose(0, 1), stride=2)
            x = blur(x, self.fir, (1, 1), gain=4.0, impl=self.resample)
        else:
            x = F.conv2d(x, weight, padding=self.k // 2)
        if self.demodulate:  # one pass: x * scale + add
            scale = scale.to(x.dtype).reshape(n, -1, 1, 1)
            return torch.addcmul(add.to(x.dtype), x, scale) if add is not None else x * scale
        x = x * out_gain if out_gain != 1.0 else x
        return x + add.to(x.dtype) if add is not None else x


def _pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv with a weight per sample: x [N, in, H, W], weight [N, out, in] -> [N, out, H, W] in the
    memory format of x (channels_last: pixels x channels matrices, else channels x pixels)."""
    n, c, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        y = torch.bmm(x.permute(0, 2, 3, 1).reshape(n, h * w, c), weight.transpose(1, 2).to(x.dtype))
        return y.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    return torch.bmm(weight.to(x.dtype), x.reshape(n, c, h * w)).reshape(n, -1, h, w)


def modulated_weight(weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True) -> torch.Tensor:
    """Reference per-sample weight [N, out, in, k, k] (for tests of the non-fused form)."""
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).rsqrt()
    return w


class MinibatchStd(nn.Module):
    """Append the mean over features of the per-group standard deviation (group size <= 4)."""

    def __init__(self, group_size=4, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:  # a group size that divides the batch
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # groups: samples i, i + n/g, ...
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])  # [n/g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)
