"""The compact class-conditional U-Net of ganaug.gans.diffusion: F(x, c_noise, class) -> same-shape output.

Layout after EDM's DDPM++ network (NVlabs/edm training/networks.py, SongUNet and UNetBlock), reduced to
what a small model needs:
- noise embedding: sinusoidal positional embedding of c_noise (max_positions 10000, endpoint=True as
  SongUNet's 'positional' embedding), plus a class embedding: a bias-free linear map of the one-hot
  class scaled by sqrt(num_classes) (SongUNet's map_label); an all-zero one-hot is the "no class" input of
  classifier-free guidance. Two linear layers with SiLU give the per-block embedding (4 x model_channels).
- residual blocks: GroupNorm (32 groups, at least 4 channels per group) -> SiLU -> conv3x3, plus a linear map
  of the embedding added per channel, GroupNorm -> SiLU -> dropout (its masks drawn from the generator
  given to forward: the trainer's, so that a resumed run draws the same) -> conv3x3 (initialised at zero), a 1x1
  skip where the channels change, the sum scaled by sqrt(1/2) (SongUNet's skip_scale).
- optional single-head self-attention after each block at the resolutions `attn_resolutions` (the middle
  block's first one too when the lowest resolution is among them).
- encoder: per resolution `num_blocks` blocks (channels model_channels * channel_mult[level]), 2x average
  pooling between resolutions; a middle block pair; decoder: num_blocks + 1 blocks per resolution, each
  on the concatenation with the matching encoder activation, nearest 2x upsampling + conv3x3 between
  resolutions; GroupNorm -> SiLU -> conv3x3 (zero-initialised) to the output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SKIP_SCALE = math.sqrt(0.5)


def group_norm(channels: int) -> nn.GroupNorm:
    """EDM's GroupNorm: 32 groups, fewer when a group would have under 4 channels."""
    return nn.GroupNorm(min(32, channels // 4), channels, eps=1e-5)


def zero_init(module: nn.Module) -> nn.Module:
    """A layer whose output starts at zero: each block starts close to the identity (EDM's init_zero)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def positional_embedding(x: torch.Tensor, channels: int, max_positions: int = 10000) -> torch.Tensor:
    """[N] -> [N, channels]: cos and sin of x at geometrically spaced frequencies 1 .. 1/max_positions."""
    half = channels // 2
    freqs = (1.0 / max_positions) ** (torch.arange(half, dtype=torch.float32, device=x.device) / (half - 1))
    arg = x.float()[:, None] * freqs[None]
    return torch.cat([arg.cos(), arg.sin()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_channels: int, dropout: float, attention: bool):
        super().__init__()
        self.norm0, self.conv0 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb_channels, cout)
        self.norm1, self.conv1 = group_norm(cout), zero_init(nn.Conv2d(cout, cout, 3, padding=1))
        self.dropout = dropout
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.attention = attention
        if attention:
            self.norm_attn, self.qkv = group_norm(cout), nn.Conv2d(cout, 3 * cout, 1)
            self.proj = zero_init(nn.Conv2d(cout, cout, 1))

    def forward(self, x, emb, gen):
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.affine(emb)[:, :, None, None].to(h.dtype)
        h = F.silu(self.norm1(h))
        if self.training and self.dropout > 0:
            keep = torch.rand(h.shape, generator=gen, device=h.device) >= self.dropout
            h = h * keep.to(h.dtype) / (1 - self.dropout)
        h = self.conv1(h)
        x = (h + (self.skip(x) if self.skip is not None else x)) * SKIP_SCALE
        if self.attention:
            n, c, hh, ww = x.shape
            q, k, v = self.qkv(self.norm_attn(x)).reshape(n, 3, c, hh * ww).unbind(1)
            a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            x = (x + self.proj(a.transpose(1, 2).reshape(n, c, hh, ww))) * SKIP_SCALE
        return x


class UNet(nn.Module):
    """F(x [N, 3, R, R], c_noise [N], class_onehot [N, num_classes] or None, dropout generator) -> [N, 3, R, R]."""

    def __init__(self, resolution: int, num_classes: int, model_channels: int, channel_mult, num_blocks: int,
                 attn_resolutions, dropout: float):
        super().__init__()
        self.num_classes, self.model_channels = int(num_classes), int(model_channels)
        emb = 4 * self.model_channels
        self.map_label = nn.Linear(self.num_classes, self.model_channels, bias=False)
        self.map0, self.map1 = nn.Linear(self.model_channels, emb), nn.Linear(emb, emb)
        self.conv_in = nn.Conv2d(3, self.model_channels, 3, padding=1)
        chans = [self.model_channels * int(m) for m in channel_mult]
        attn = {int(r) for r in attn_resolutions}
        self.enc, skips, c, res = nn.ModuleList(), [self.model_channels], self.model_channels, int(resolution)
        for level, cout in enumerate(chans):
            for _ in range(num_blocks):
                self.enc.append(ResBlock(c, cout, emb, dropout, res in attn))
                c = cout
                skips.append(c)
            if level < len(chans) - 1:
                self.enc.append(nn.AvgPool2d(2))
                res //= 2
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb, dropout, res in attn), ResBlock(c, c, emb, dropout, False)])
        self.dec = nn.ModuleList()
        for level in reversed(range(len(chans))):
            for _ in range(num_blocks + 1):
                self.dec.append(ResBlock(c + skips.pop(), chans[level], emb, dropout, res in attn))
                c = chans[level]
            if level > 0:
                self.dec.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(c, c, 3, padding=1)))
                res *= 2
        self.norm_out, self.conv_out = group_norm(c), zero_init(nn.Conv2d(c, 3, 3, padding=1))

    def embedding(self, c_noise, class_onehot):
        e = positional_embedding(c_noise, self.model_channels)
        if class_onehot is not None:
            e = e + self.map_label(class_onehot.float() * math.sqrt(self.num_classes))
        return F.silu(self.map1(F.silu(self.map0(e))))

    def forward(self, x, c_noise, class_onehot, gen: torch.Generator | None = None):
        emb = self.embedding(c_noise, class_onehot)
        h = self.conv_in(x)
        skips = [h]
        for m in self.enc:
            h = m(h, emb, gen) if isinstance(m, ResBlock) else m(h)
            skips.append(h)
        for m in self.mid:
            h = m(h, emb, gen)
        for m in self.dec:
            h = m(torch.cat([h, skips.pop()], dim=1), emb, gen) if isinstance(m, ResBlock) else m(h)
        return self.conv_out(F.silu(self.norm_out(h)))
