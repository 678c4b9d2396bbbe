"""Building blocks of StyleGAN2 in plain PyTorch: equalised-lr layers, FIR resampling, modulated conv.

Equalised learning rate: parameters are stored with unit-variance init (divided by the lr multiplier)
and scaled at run time by `lr_mul / sqrt(fan_in)`, so Adam sees every layer at the same scale.
FIR resampling uses the separable [1,3,3,1] filter as a depthwise convolution (conv2d /
conv_transpose2d), no custom kernels; all ops here are deterministic on CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

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


def fir_filter(taps=(1, 3, 3, 1), device=None) -> torch.Tensor:
    """Separable 2-D FIR filter (outer product of `taps`), normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32, device=device)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def _depthwise(f: torch.Tensor, channels: int) -> torch.Tensor:
    return f[None, None].expand(channels, 1, *f.shape)


def blur(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], gain: float = 1.0) -> torch.Tensor:
    """Depthwise FIR filtering with zero padding (pad_before, pad_after) on both axes."""
    c = x.shape[1]
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, _depthwise(f * gain, c), groups=c)


def upsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling: zero insertion + FIR (gain 4), as a depthwise transposed conv. H -> 2H."""
    c = x.shape[1]
    # conv_transpose2d(stride 2) == insert zeros, pad k-1-p = 2 per side, correlate with the (symmetric)
    # filter: the same alignment as upfirdn2d(up=2, pad=(2, 1)) of the reference formulation.
    return F.conv_transpose2d(x, _depthwise(f * 4.0, c), stride=2, padding=1, groups=c)


def downsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x downsampling: FIR low-pass then keep every second sample. H -> H/2."""
    c = x.shape[1]
    return F.conv2d(x, _depthwise(f, c), stride=2, padding=1, groups=c)


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
    """Conv layer with equalised lr, optional FIR 2x down-sampling (blur then stride-2 conv)."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="linear", down=False,
                 gain=1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.down = down
        self.gain = gain  # output gain applied after the activation (residual branches)
        self.k = kernel_size
        self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x):
        w = self.weight * self.weight_gain
        if self.down:
            if self.k == 1:
                x = downsample2x(x, self.fir)
                x = F.conv2d(x, w)
            else:
                # blur so that the following stride-2 'valid' conv returns exactly H/2
                p = (self.k - 1) // 2 + 1  # k=3: pad 2 -> H+1, then stride-2 conv3x3 -> H/2
                x = blur(x, self.fir, (p, p))
                x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.k // 2)
        x = bias_act(x, self.bias, self.activation)
        return x * self.gain if self.gain != 1.0 else x


class ModulatedConv2d(nn.Module):
    """Style-modulated conv: per-sample input-channel scales from w, optional demodulation, optional 2x up.

    Implemented in the 'non-fused' form: scale the input by the styles, run a shared conv, scale the
    output by the demodulation coefficients. Mathematically identical to convolving with the
    per-sample modulated+demodulated weight, and fast on CPU (no grouped conv).
    """

    def __init__(self, in_channels, out_channels, kernel_size, w_dim, demodulate=True, up=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.up = up
        self.k = kernel_size
        self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x, w):
        styles = self.affine(w)  # [N, in]
        weight = self.weight * self.weight_gain
        n = x.shape[0]
        x = x * styles.reshape(n, -1, 1, 1)
        if self.up:
            x = upsample2x(x, self.fir)
        x = F.conv2d(x, weight, padding=self.k // 2)
        if self.demodulate:
            # sum_{i,kh,kw} (W_oi * s_i)^2 = sum_i s_i^2 * sum_{kh,kw} W_oi^2
            dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, out]
            x = x * dcoefs.reshape(n, -1, 1, 1)
        return x


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
