"""SPADE / GauGAN (Park et al. 2019): label map -> image with spatially-adaptive normalisation, plain PyTorch.

Input: the label-map encoding of ganaug.gans.translation (one-hot of the 8 labels + edge map).
SPADE layer: parameter-free BatchNorm (affine=False, running statistics kept), then from the label map
resized (nearest) to the feature size a shared conv3x3 -> `spade_hidden` + ReLU and two conv3x3 for gamma
and beta: out = norm(x) * (1 + gamma) + beta.
Residual block: [SPADE, leaky 0.2, conv3x3] x 2 (middle width min(fin, fout)); learned shortcut
[SPADE, conv1x1 without bias] when the channels change; spectral norm on the block convs (the reference
puts it there; the SPADE-layer convs, the first layer and the output conv are plain).
Generator: starts at R / 2**n_up (n_up 5 = the paper's 1/32 at 256 px) from the label map downsampled
(nearest) through a conv3x3 -- or, with z_dim > 0 (the paper's multimodal variant, here without its
VAE encoder: z ~ N(0, I)), from a linear layer on z; channels ngf * min(16, 2**(n_up - level)); blocks:
head at level 0, two at level 1, one per further level, nearest 2x upsampling between levels; then
leaky 0.2, conv3x3 -> 3, tanh.
Discriminator: 2-scale PatchGAN (translation.MultiscaleDiscriminator, n_layers_D = 4 as the reference
counts = 3 stride-2 convs + 1 stride-1 conv + output; spectral + instance norm) on concat(label encoding,
image). Loss: hinge + feature matching (lambda_feat 10) + VGG19 (lambda_vgg 10, only when VGG weights are
configured). TTUR: Adam G lr 1e-4, D lr 4e-4, betas (0, 0.9), constant. No EMA. In eval mode BatchNorm
uses its running statistics and spectral norm does no power iteration: the generator is deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.io import InputError

from . import accel
from .settings.spade import CFG_KEY, DEFAULTS, resolve_config  # noqa: F401 (re-exported)
from .translation import (
    LABEL_CHANNELS,
    MultiscaleDiscriminator,
    TranslationTrainer,
    check_label_map_tensor,
    encode_label_map,
    hinge_d_terms,
    hinge_g_loss,
    spectral_norm,
)

FORMAT = "ganaug-spade-v1"
CONDITIONING = "mask"
RESUMABLE_CHANGES = ("total_kimg", "snapshot_kimg", "num_threads")
ARCH_KEYS = ("resolution", "ngf", "n_up", "spade_hidden", "z_dim", "num_classes")


# ------------------------------------------------------------------------------------- networks


def sn(module: nn.Module) -> nn.Module:
    """Spectral norm (torch parametrization: u, v and the original weight are in the state dict), fp32
    under autocast (translation.spectral_norm)."""
    return spectral_norm(module)


class SPADE(nn.Module):
    def __init__(self, norm_nc: int, label_nc: int = LABEL_CHANNELS, nhidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.BatchNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, nhidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(nhidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(nhidden, norm_nc, 3, padding=1)

    def forward(self, x, seg):
        normalized = self.param_free_norm(x)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, nhidden: int):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = sn(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = sn(nn.Conv2d(fmiddle, fout, 3, padding=1))
        self.norm_0 = SPADE(fin, nhidden=nhidden)
        self.norm_1 = SPADE(fmiddle, nhidden=nhidden)
        if self.learned_shortcut:
            self.conv_s = sn(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADE(fin, nhidden=nhidden)

    def forward(self, x, seg):
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


def channels_at(level: int, n_up: int, ngf: int) -> int:
    return ngf * min(16, 2 ** (n_up - level))


class Generator(nn.Module):
    """G(label encoding float N x 9 x R x R, z [N, z_dim] or None) -> image N x 3 x R x R in [-1, 1]."""

    conditioning = "mask"

    def __init__(self, resolution=32, ngf=16, n_up=3, spade_hidden=64, z_dim=0, num_classes=2,
                 seed: int | None = 0):
        super().__init__()
        self.resolution, self.num_classes, self.z_dim = int(resolution), int(num_classes), int(z_dim)
        self.n_up = int(n_up)
        self.s0 = self.resolution >> self.n_up
        ch = [channels_at(level, n_up, ngf) for level in range(n_up + 1)]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            if self.z_dim:
                self.fc = nn.Linear(self.z_dim, ch[0] * self.s0 * self.s0)
            else:
                self.fc = nn.Conv2d(LABEL_CHANNELS, ch[0], 3, padding=1)
            blocks = [SPADEResBlock(ch[0], ch[0], spade_hidden),                        # level 0: head
                      SPADEResBlock(ch[0], ch[1], spade_hidden), SPADEResBlock(ch[1], ch[1], spade_hidden)]
            self.levels = [0, 1, 1]
            for level in range(2, n_up + 1):
                blocks.append(SPADEResBlock(ch[level - 1], ch[level], spade_hidden))
                self.levels.append(level)
            self.blocks = nn.ModuleList(blocks)
            self.conv_img = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def forward(self, seg, z=None):
        n = seg.shape[0]
        if self.z_dim:
            if z is None:
                raise InputError(f"spade: this generator needs z [N, {self.z_dim}]")
            x = self.fc(z).view(n, -1, self.s0, self.s0)
        else:
            x = self.fc(F.interpolate(seg, size=(self.s0, self.s0), mode="nearest"))
        level = 0
        for block, lv in zip(self.blocks, self.levels):
            if lv != level:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                level = lv
            x = block(x, seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def sample(self, z, c, label_map=None, truncation_psi=1.0):
        """Generation entry shared by the GANs: the image of each label map (and z, scaled by
        truncation_psi, when z_dim > 0); the class c is not used."""
        if label_map is None:
            raise InputError("spade: sample() needs label_map (N x R x R)")
        n = label_map.shape[0] if torch.is_tensor(label_map) and label_map.ndim == 3 else -1
        m = check_label_map_tensor(label_map, n, self.resolution)
        dev = next(self.parameters()).device
        if self.z_dim:
            if z is None or tuple(z.shape) != (n, self.z_dim):
                raise InputError(f"spade: sample() needs z [N, {self.z_dim}]")
            z = z.to(dev) * truncation_psi
        return self(encode_label_map(m.to(dev)), z)


def build_networks(cfg: dict, seed: int = 0):
    arch = dict({k: cfg[k] for k in ARCH_KEYS}, num_classes=cfg.get("num_classes") or 2)
    G = Generator(**arch, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        D = MultiscaleDiscriminator(LABEL_CHANNELS + 3, cfg["ndf"], cfg["n_layers_D"] - 1, cfg["num_D"],
                                    norm="spectralinstance")
    return G, D


# ------------------------------------------------------------------------------------- training


class Trainer(TranslationTrainer):
    NAME = "spade"
    FORMAT = FORMAT
    regenerate_for_D = True  # the reference draws the D step's fake anew (no grad) after the G update
    fm_layer_weight = 1.0

    def build(self, cfg, seed):
        return build_networks(cfg, seed)

    def make_optimisers(self):
        b = self.cfg["betas"]
        return (accel.adam(self.G.parameters(), lr=self.cfg["lr_G"], betas=b),
                accel.adam(self.D.parameters(), lr=self.cfg["lr_D"], betas=b))

    def arch(self):
        return dict({k: self.cfg[k] for k in ARCH_KEYS}, num_classes=self.cfg["num_classes"] or 2)

    def g_adv_loss(self, pred_fake):
        return hinge_g_loss(pred_fake)

    def d_adv_terms(self, pred_real, pred_fake):
        return hinge_d_terms(pred_real, pred_fake)

    def describe_extra(self):
        c = self.cfg
        return f"{c['n_up']} upsamplings from {c['resolution'] >> c['n_up']} px, z_dim {c['z_dim']}"


def build_generator(snapshot: dict, ema: bool = True) -> Generator:
    """The generator of a snapshot dict (SPADE keeps no EMA: G and G_ema are the same weights)."""
    G = Generator(**snapshot["arch"], seed=None)
    G.load_state_dict(snapshot["G_ema" if ema else "G"])
    return G
