"""Class-conditional StyleGAN2 (Karras et al. 2020) generator and discriminator in plain PyTorch.

Generator: mapping network (z and a class embedding, both normalised, concatenated; `mapping_layers`
FC layers with lr multiplier 0.01; w_avg tracked for truncation) and a skip-architecture synthesis
network (learned 4x4 constant; per resolution two modulated/demodulated 3x3 convs with per-pixel
noise and learned noise strength, FIR [1,3,3,1] upsampling; a modulated 1x1 ToRGB per resolution,
summed over upsampled resolutions).
Discriminator: residual architecture (FromRGB at full resolution; per resolution conv3x3, conv3x3
down, 1x1 down skip; branches summed times sqrt(0.5)); epilogue with minibatch-stddev (group 4, one
channel), conv3x3, FC, output FC to cmap_dim; projection conditioning
out = sum(x * cmap(c)) / sqrt(cmap_dim).
Channels per resolution: min(channel_base // res, channel_max). Equalised lr everywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    EqualConv2d,
    EqualLinear,
    MinibatchStd,
    ModulatedConv2d,
    bias_act,
    fir_filter,
    normalize_2nd_moment,
    upsample2x,
)

ARCH_KEYS = ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "num_classes")
ARCH_DEFAULTS = dict(resolution=32, z_dim=128, w_dim=128, mapping_layers=2, channel_base=4096,
                     channel_max=64, num_classes=2)


def arch_config(cfg: dict) -> dict:
    """The architecture keys of a (training) config, with defaults filled in."""
    out = {k: cfg.get(k, ARCH_DEFAULTS[k]) for k in ARCH_KEYS}
    out = {k: int(v) for k, v in out.items()}
    r = out["resolution"]
    if r < 4 or r & (r - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {r}")
    return out


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    return int(min(channel_base // res, channel_max))


# ------------------------------------------------------------------------------------------ mapping


class MappingNetwork(nn.Module):
    """z, c -> w. z_dim 0 gives a label-only mapping (used by D for the projection)."""

    def __init__(self, z_dim, c_dim, w_dim, num_layers, lr_mul=0.01, w_avg_beta=0.995, embed_dim=None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.w_avg_beta = w_avg_beta
        embed_dim = embed_dim or w_dim
        self.embed = EqualLinear(c_dim, embed_dim) if c_dim > 0 else None
        dims = [(z_dim if z_dim else 0) + (embed_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activation="lrelu") for i in range(num_layers))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c, truncation_psi=1.0, update_w_avg=False):
        parts = []
        if self.z_dim:
            parts.append(normalize_2nd_moment(z))
        if self.c_dim:
            parts.append(normalize_2nd_moment(self.embed(c)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if self.w_avg_beta is not None:
            if update_w_avg:
                with torch.no_grad():
                    self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
            if truncation_psi != 1:
                x = self.w_avg.lerp(x, truncation_psi)
        return x


# ---------------------------------------------------------------------------------------- synthesis


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, up=False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, demodulate=True, up=up)
        self.resolution = resolution
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))

    def forward(self, x, w, noise_mode="random", generator=None):
        x = self.conv(x, w)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype, generator=generator)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"unknown noise_mode {noise_mode!r}")
        return bias_act(x, self.bias, "lrelu")


class ToRGB(nn.Module):
    def __init__(self, in_channels, w_dim, img_channels=3):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x, w):
        return bias_act(self.conv(x, w), self.bias, "linear")


class SynthesisBlock(nn.Module):
    """One resolution: (const | upsampling conv0) + conv1 + ToRGB added to the upsampled image."""

    def __init__(self, in_channels, out_channels, w_dim, resolution):
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, w_dim)
        self.num_conv = 1 if resolution == 4 else 2
        self.register_buffer("fir", fir_filter(), persistent=False)

    def forward(self, x, img, ws, noise_mode="random", generator=None):
        i = 0
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, i], noise_mode, generator)
            i += 1
        x = self.conv1(x, ws[:, i], noise_mode, generator)
        i += 1
        y = self.torgb(x, ws[:, i])
        img = y if img is None else upsample2x(img, self.fir) + y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim, resolution, channel_base, channel_max):
        super().__init__()
        self.resolutions = [2 ** i for i in range(2, int(math.log2(resolution)) + 1)]
        blocks = []
        for res in self.resolutions:
            cin = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            cout = channels_at(res, channel_base, channel_max)
            blocks.append(SynthesisBlock(cin, cout, w_dim, res))
        self.blocks = nn.ModuleList(blocks)
        # ws per block: its convs + its ToRGB; the ToRGB w is shared with the next block's first conv
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def forward(self, ws, noise_mode="random", generator=None):
        x = img = None
        i = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i:i + block.num_conv + 1], noise_mode, generator)
            i += block.num_conv
        return img


class Generator(nn.Module):
    """G(z, c) -> image in [-1, 1]-ish NCHW. `c` is one-hot float [N, num_classes] (or int labels)."""

    def __init__(self, resolution=32, z_dim=128, w_dim=128, mapping_layers=2, channel_base=4096,
                 channel_max=64, num_classes=2, seed: int | None = 0):
        super().__init__()
        self.config = arch_config(dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim,
                                       mapping_layers=mapping_layers, channel_base=channel_base,
                                       channel_max=channel_max, num_classes=num_classes))
        self.z_dim, self.w_dim, self.num_classes, self.resolution = z_dim, w_dim, num_classes, resolution
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.synthesis = SynthesisNetwork(w_dim, resolution, channel_base, channel_max)
            self.num_ws = self.synthesis.num_ws
            self.mapping = MappingNetwork(z_dim, num_classes, w_dim, mapping_layers)

    def labels_to_c(self, c):
        if c.dtype in (torch.int64, torch.int32, torch.long):
            return F.one_hot(c.long(), self.num_classes).float()
        return c

    def map(self, z, c, truncation_psi=1.0, update_w_avg=False):
        w = self.mapping(z, self.labels_to_c(c), truncation_psi, update_w_avg)
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random", generator=None):
        return self.synthesis(self.map(z, c, truncation_psi), noise_mode, generator)


# ------------------------------------------------------------------------------------ discriminator


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels, tmp_channels, out_channels, first=False, img_channels=3):
        super().__init__()
        self.fromrgb = EqualConv2d(img_channels, tmp_channels, 1, activation="lrelu") if first else None
        self.conv0 = EqualConv2d(tmp_channels, tmp_channels, 3, activation="lrelu")
        self.conv1 = EqualConv2d(tmp_channels, out_channels, 3, activation="lrelu", down=True,
                                 gain=math.sqrt(0.5))
        self.skip = EqualConv2d(tmp_channels, out_channels, 1, bias=False, down=True, gain=math.sqrt(0.5))

    def forward(self, x, img):
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return y + x


class Discriminator(nn.Module):
    """D(img, c) -> logits [N, 1] with projection conditioning."""

    def __init__(self, resolution=32, channel_base=4096, channel_max=64, num_classes=2, mapping_layers=2,
                 mbstd_group=4, seed: int | None = 1, **_ignored):
        super().__init__()
        self.num_classes = num_classes
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            ch = lambda r: channels_at(r, channel_base, channel_max)
            res_list = [2 ** i for i in range(int(math.log2(resolution)), 2, -1)]  # resolution .. 8
            self.blocks = nn.ModuleList(
                DiscriminatorBlock(ch(r), ch(r), ch(r // 2), first=(i == 0)) for i, r in enumerate(res_list))
            c4 = ch(4)
            self.cmap_dim = c4
            self.mapping = MappingNetwork(0, num_classes, c4, mapping_layers, w_avg_beta=None)
            self.mbstd = MinibatchStd(mbstd_group, 1)
            self.conv = EqualConv2d(c4 + 1, c4, 3, activation="lrelu")
            self.fc = EqualLinear(c4 * 16, c4, activation="lrelu")
            self.out = EqualLinear(c4, self.cmap_dim)
            if resolution == 4:
                self.fromrgb4 = EqualConv2d(3, c4, 1, activation="lrelu")

    def forward(self, img, c):
        if c.dtype in (torch.int64, torch.int32):
            c = F.one_hot(c.long(), self.num_classes).float()
        x = None
        for block in self.blocks:
            x = block(x, img)
        if x is None:
            x = self.fromrgb4(img)
        x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        cmap = self.mapping(None, c)
        return (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)


def build_networks(cfg: dict, seed: int = 0):
    """(G, D) from a config dict with the architecture keys (see ARCH_KEYS)."""
    a = arch_config(cfg)
    G = Generator(**a, seed=seed)
    D = Discriminator(resolution=a["resolution"], channel_base=a["channel_base"],
                      channel_max=a["channel_max"], num_classes=a["num_classes"],
                      mapping_layers=a["mapping_layers"], seed=seed + 1)
    return G, D


def count_params(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


__all__ = [
    "ARCH_KEYS",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "arch_config",
    "build_networks",
    "channels_at",
    "count_params",
]
