"""pix2pixHD (Wang et al. 2018): label map -> image, in plain PyTorch.

Input: the label-map encoding of ganaug.gans.translation (one-hot of the 8 labels + edge map).
Global generator: c7s1-ngf (reflect pad 3, conv 7x7, InstanceNorm, ReLU); `n_downsample` stride-2 conv3x3
downsamples doubling the channels; `n_blocks` residual blocks (reflect pad 1, conv3x3, InstanceNorm, ReLU,
reflect pad 1, conv3x3, InstanceNorm; x + block(x)); transposed-conv3x3 stride-2 upsamples halving the
channels; reflect pad 3, conv 7x7 -> 3, tanh. InstanceNorm without affine parameters, as the reference.
Local enhancer (option `local_enhancer`, as the paper's G = {G1, G2}): the global generator (width 2 *
ngf, without its output layer) runs on the input average-pooled to half resolution; the enhancer's
front-end (c7s1-ngf, conv3x3 stride 2 -> 2 * ngf) runs at full resolution; their sum goes through
`n_blocks_local` residual blocks, a transposed-conv upsample to ngf and c7 + tanh. (The reference code
first trains the global generator alone and then fine-tunes jointly; here both train jointly.)
Discriminator: 2-scale PatchGAN (translation.MultiscaleDiscriminator, 3 stride-2 layers, k4, ndf,
InstanceNorm except on the first layer, leaky 0.2) on concat(label encoding, image).
Loss: LSGAN + feature matching (lambda_feat 10, layer weight 4 / (n_layers_D + 1), / num_D) + VGG19
perceptual (lambda_vgg 10, only when VGG weights are configured). Adam lr 2e-4, betas (0.5, 0.999); lr
constant, then linear decay to 0 over the last `decay_kimg` of total_kimg (a pure function of cur_nimg,
so a resume continues the schedule exactly). No latent: z_dim = 0, the image is a function of the map.
"""

from __future__ import annotations

import torch
from torch import nn

from ganaug.io import InputError

from . import accel
from .settings.pix2pixhd import CFG_KEY, DEFAULTS, auto_downsample, resolve_config  # noqa: F401 (re-exported)
from .translation import (
    LABEL_CHANNELS,
    MultiscaleDiscriminator,
    TranslationTrainer,
    check_label_map_tensor,
    downsample,
    encode_label_map,
    lsgan_d_terms,
    lsgan_g_loss,
)

FORMAT = "ganaug-pix2pixhd-v1"
CONDITIONING = "mask"
RESUMABLE_CHANGES = ("total_kimg", "snapshot_kimg", "num_threads")
ARCH_KEYS = ("resolution", "ngf", "n_downsample", "n_blocks", "local_enhancer", "n_blocks_local",
             "num_classes")


# ------------------------------------------------------------------------------------- networks


class ResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.block(x)


def global_generator_layers(in_channels, ngf, n_downsample, n_blocks, output=True):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for i in range(n_downsample):
        m = 2 ** i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * m * 2),
                   nn.ReLU(True)]
    m = 2 ** n_downsample
    layers += [ResnetBlock(ngf * m) for _ in range(n_blocks)]
    for i in range(n_downsample):
        m = 2 ** (n_downsample - i)
        layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
    if output:
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class Generator(nn.Module):
    """G(label encoding float N x 9 x R x R) -> image N x 3 x R x R in [-1, 1]."""

    conditioning = "mask"
    z_dim = 0

    def __init__(self, resolution=32, ngf=32, n_downsample=2, n_blocks=3, local_enhancer=False,
                 n_blocks_local=3, num_classes=2, seed: int | None = 0):
        super().__init__()
        self.resolution, self.num_classes = int(resolution), int(num_classes)
        self.local_enhancer = bool(local_enhancer)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            if not self.local_enhancer:
                self.model = global_generator_layers(LABEL_CHANNELS, ngf, n_downsample, n_blocks)
            else:
                self.model_global = global_generator_layers(LABEL_CHANNELS, 2 * ngf, n_downsample, n_blocks,
                                                            output=False)
                self.model_downsample = nn.Sequential(
                    nn.ReflectionPad2d(3), nn.Conv2d(LABEL_CHANNELS, ngf, 7), nn.InstanceNorm2d(ngf),
                    nn.ReLU(True),
                    nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * ngf),
                    nn.ReLU(True))
                self.model_upsample = nn.Sequential(
                    *[ResnetBlock(2 * ngf) for _ in range(n_blocks_local)],
                    nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1),
                    nn.InstanceNorm2d(ngf), nn.ReLU(True),
                    nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh())

    def forward(self, seg, z=None):
        if not self.local_enhancer:
            return self.model(seg)
        prev = self.model_global(downsample(seg))
        return self.model_upsample(self.model_downsample(seg) + prev)

    def sample(self, z, c, label_map=None, truncation_psi=1.0):
        """Generation entry shared by the GANs: the image of each label map (z, c and psi are unused)."""
        if label_map is None:
            raise InputError("pix2pixhd: sample() needs label_map (N x R x R)")
        n = label_map.shape[0] if torch.is_tensor(label_map) and label_map.ndim == 3 else -1
        m = check_label_map_tensor(label_map, n, self.resolution)
        dev = next(self.parameters()).device
        return self(encode_label_map(m.to(dev)))


def n_down_D(n_layers_D: int) -> int:
    return n_layers_D  # pix2pixHD counts the stride-2 convs (the stride-1 conv and the output come on top)


def build_networks(cfg: dict, seed: int = 0):
    arch = dict({k: cfg[k] for k in ARCH_KEYS}, num_classes=cfg.get("num_classes") or 2)
    G = Generator(**arch, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        D = MultiscaleDiscriminator(LABEL_CHANNELS + 3, cfg["ndf"], n_down_D(cfg["n_layers_D"]), cfg["num_D"],
                                    norm="instance")
    return G, D


def lr_at(cfg: dict, cur_nimg: int) -> float:
    """pix2pixHD's schedule: cfg lr, then linear decay to 0 over the last decay_kimg of total_kimg."""
    total = cfg["total_kimg"] * 1000
    decay = min(cfg["decay_kimg"] * 1000, total)
    if decay <= 0:
        return cfg["lr"]
    return cfg["lr"] * min(1.0, max(0.0, (total - cur_nimg) / decay))


# ------------------------------------------------------------------------------------- training


class Trainer(TranslationTrainer):
    NAME = "pix2pixhd"
    FORMAT = FORMAT
    regenerate_for_D = False  # the reference computes all losses from one G forward

    def build(self, cfg, seed):
        self.fm_layer_weight = 4.0 / (cfg["n_layers_D"] + 1)
        return build_networks(cfg, seed)

    def make_optimisers(self):
        b = self.cfg["betas"]
        return (accel.adam(self.G.parameters(), lr=self.cfg["lr"], betas=b),
                accel.adam(self.D.parameters(), lr=self.cfg["lr"], betas=b))

    def arch(self):
        return dict({k: self.cfg[k] for k in ARCH_KEYS}, num_classes=self.cfg["num_classes"] or 2)

    def set_lrs(self):
        lr = lr_at(self.cfg, self.cur_nimg)
        for opt in (self.G_opt, self.D_opt):
            for g in opt.param_groups:
                g["lr"] = lr

    def g_adv_loss(self, pred_fake):
        return lsgan_g_loss(pred_fake)

    def d_adv_terms(self, pred_real, pred_fake):
        return lsgan_d_terms(pred_real, pred_fake)

    def describe_extra(self):
        c = self.cfg
        return (f"{c['n_downsample']} downsamples, {c['n_blocks']} blocks, local enhancer "
                f"{'on' if c['local_enhancer'] else 'off'}, lr decay over the last {c['decay_kimg']:g} kimg")


def build_generator(snapshot: dict, ema: bool = True) -> Generator:
    """The generator of a snapshot dict (pix2pixHD keeps no EMA: G and G_ema are the same weights)."""
    G = Generator(**snapshot["arch"], seed=None)
    G.load_state_dict(snapshot["G_ema" if ema else "G"])
    return G
