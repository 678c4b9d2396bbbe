"""A compact ResNet, built into ganaug, for the CPU-sized default study (``classifier.model: ganaug:resnet``).

The layout is the standard one (He et al. 2016, with the "deep stem" of ResNet-D, Bag of Tricks 2019):
three 3x3 stem convolutions (the first of stride 2), a 3x3 max pool, stages of basic residual blocks
(two 3x3 conv + batch norm; the first block of stages 2+ has stride 2 and a 2x2 average pool + 1x1 conv
+ BN shortcut, also ResNet-D),
global average pooling. Kaiming-normal init and the last BN of each residual branch zero-initialised, so
every block starts as the identity. No pretrained weights exist for it: it is for trained-from-scratch
toy runs, and it needs no timm import (1.8 s of CPU, torchvision included, in each of the default
study's ~110 classifier and evaluation jobs).

The network returns the pooled features; the classification head is added by ``models.Classifier``.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)]


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.branch = nn.Sequential(*_conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True),
                                    *_conv_bn(c_out, c_out, 3))
        nn.init.zeros_(self.branch[-1].weight)
        # ResNet-D shortcut: average 2x2 then 1x1 conv. A strided 1x1 conv would pass on only the top-left
        # pixel of each 2x2 cell: at 32 px the last stages are 2x2 -> 1x1, so the identity path of the
        # initial network would see an image corner and not the lesion in its centre (it then barely learns).
        pool = [nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)] if stride == 2 else []
        self.shortcut = (nn.Sequential(*pool, *_conv_bn(c_in, c_out, 1))
                         if stride != 1 or c_in != c_out else nn.Identity())
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class ResNet(nn.Module):
    """``channels[i]`` output channels and ``layers[i]`` blocks in stage i; ``stem_width`` for the stem's
    first two convolutions (the third outputs ``2 * stem_width``)."""

    def __init__(self, channels=(64, 128, 256, 512), layers=(1, 1, 1, 1), stem_width: int = 32):
        super().__init__()
        channels, layers = tuple(int(c) for c in channels), tuple(int(n) for n in layers)
        if not channels or len(channels) != len(layers) or min(channels) < 1 or min(layers) < 1:
            raise TypeError(f"channels {channels} and layers {layers}: need equal, non-empty lists of "
                            f"positive integers")
        if int(stem_width) < 1:
            raise TypeError(f"stem_width {stem_width}: need a positive integer")
        w = int(stem_width)
        self.stem = nn.Sequential(*_conv_bn(3, w, 3, 2), nn.ReLU(inplace=True), *_conv_bn(w, w, 3),
                                  nn.ReLU(inplace=True), *_conv_bn(w, 2 * w, 3), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, padding=1))
        blocks, c_in = [], 2 * w
        for i, (c, n) in enumerate(zip(channels, layers)):
            for j in range(n):
                blocks.append(BasicBlock(c_in, c, 2 if i > 0 and j == 0 else 1))
                c_in = c
        self.stages = nn.Sequential(*blocks)
        self.num_features = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean((2, 3))


MODELS = {"resnet": ResNet}
