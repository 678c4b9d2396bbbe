"""Class-conditional Progressive GAN (Karras et al. 2018) with an auxiliary-classifier head, plain PyTorch.

Levels: level k works at 4 * 2**k px (level 0 = 4x4, the last level = `resolution`). Channels per
resolution min(channel_base // res, channel_max). Equalised lr everywhere (ganaug.gans.layers: weights
~ N(0, 1) scaled at run time by 1/sqrt(fan_in); leaky ReLU 0.2 with gain sqrt 2).

Generator: [z, one_hot(c)] concatenated and pixel-normalised; 4x4: dense -> 4x4 x C, conv3x3; each
further level: nearest 2x upsample, two conv3x3; leaky ReLU and pixelnorm after every conv; a linear 1x1
ToRGB per level (linear output, no tanh, as the original). Fade-in into level k with alpha in [0, 1]:
image = lerp(upsample_nearest(ToRGB_{k-1}(x_{k-1})), ToRGB_k(x_k), alpha).
Discriminator mirrors it: FromRGB 1x1 at the current level; per level two conv3x3 and 2x average
pooling; fade-in: x = lerp(FromRGB_{k-1}(avgpool(img)), block_k(FromRGB_k(img)), alpha); at 4x4
minibatch-stddev (group 4, one channel), conv3x3, dense, and a dense output of 1 + num_classes logits
(Wasserstein score, class logits). D takes no label.

Training (`Trainer`): WGAN-GP, D loss = D(fake) - D(real) + gp_lambda (|grad D(x_hat)| - 1)^2 + drift
D(real)^2 + ac_weight [CE(real logits, real labels) + CE(fake logits, fake labels)]; G loss = -D(fake) +
ac_weight CE(fake logits, fake labels) (the real-label CE is the same in both losses but has no gradient
w.r.t. G); one D step then one G step per batch; fake labels drawn from the training labels. Adam (lr
0.001, betas (0, 0.99), eps 1e-8), re-created (state reset) whenever the level changes; G EMA with a
fixed beta (0.999) per step.
Schedule (`schedule`, a pure function of the image count): stable phase of `stable_kimg` at
start_resolution; then per higher resolution a transition of `transition_kimg` (alpha 0 -> 1, the level
is already the new one) and a stable phase of `stable_kimg`; after the last level training continues at
full resolution. Reals are average-pooled to the level's resolution and during a fade-in blended with
their 2x-pooled + nearest-upsampled version: lerp(up(pool(x)), x, alpha), as the original.
A snapshot stores the level and the alpha of its last step; `build_generator` restores them, and
Generator.sample() generates at that level and upsamples (nearest) to the full resolution; PGAN has no
truncation trick, so truncation_psi != 1 raises InputError.
Trains on several processes too (ganaug.gans.distributed).
Precision (`precision`, ganaug.gans.accel): bf16 autocast on CUDA by default (auto), fp32 on CPU. As the
StyleGAN2-ADA reference keeps its low resolutions in fp32, G's 4x4 head and D's 4x4 epilogue
(minibatch stddev, conv, dense layers, hence every score and logit the losses see) run in fp32, and so
does the gradient penalty's norm; parameters, optimiser state and the EMA are fp32 throughout.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.io import InputError, seed_from

from . import accel, distributed
from .data import ClassConditionalBatches, RealSampler, load_rng_state, real_data, rng_state
from .layers import EqualConv2d, EqualLinear, MinibatchStd, normalize_2nd_moment
from .settings.pgan import CFG_KEY, DEFAULTS, resolve_config  # noqa: F401 (re-exported)
from .snapshots import plain

FORMAT = "ganaug-pgan-v1"
CONDITIONING = "class"
RESUMABLE_CHANGES = ("total_kimg", "snapshot_kimg", "num_threads")
ARCH_KEYS = ("resolution", "z_dim", "channel_base", "channel_max", "num_classes")


def channels_at(res: int, channel_base: int, channel_max: int) -> int:
    return int(min(channel_base // res, channel_max))


def level_of(res: int) -> int:
    """Level of a resolution (4 px -> 0)."""
    return int(math.log2(res)) - 2


def schedule(cur_nimg: int, cfg: dict) -> tuple[int, float]:
    """(level, alpha) of the step that starts at `cur_nimg` images: stable at start_resolution, then per
    higher resolution transition (alpha 0 -> 1) + stable; full resolution (alpha 1) afterwards.
    Phase lengths are whole images (round(kimg * 1000)), so the boundaries are exact."""
    first, last = level_of(cfg["start_resolution"]), level_of(cfg["resolution"])
    S, T = round(float(cfg["stable_kimg"]) * 1000), round(float(cfg["transition_kimg"]) * 1000)
    n = int(cur_nimg)
    if first == last or S + T <= 0:
        return last, 1.0
    if n < S:
        return first, 1.0
    done, t = divmod(n - S, S + T)  # completed (transition + stable) phases, images into the next
    if done >= last - first:
        return last, 1.0
    return first + done + 1, (min(t / T, 1.0) if T > 0 else 1.0)


def upsample_nearest(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


def process_reals(x: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """Reals at full resolution -> the level's resolution, blended during a fade-in (see module doc)."""
    res = 4 * 2 ** level
    if x.shape[-1] > res:
        x = F.avg_pool2d(x, x.shape[-1] // res)
    if alpha < 1:
        x = torch.lerp(upsample_nearest(F.avg_pool2d(x, 2)), x, alpha)
    return x


# ------------------------------------------------------------------------------------------ networks


class GBlock(nn.Module):
    """Nearest 2x upsample, then two conv3x3 + leaky ReLU + pixelnorm."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cout, 3, activation="lrelu")
        self.conv1 = EqualConv2d(cout, cout, 3, activation="lrelu")

    def forward(self, x):
        x = normalize_2nd_moment(self.conv0(upsample_nearest(x)))
        return normalize_2nd_moment(self.conv1(x))


class Generator(nn.Module):
    """G(z, c, level, alpha) -> NCHW image at 4 * 2**level px (linear output, about [-1, 1])."""

    conditioning = "class"

    def __init__(self, resolution=32, z_dim=128, channel_base=2048, channel_max=64, num_classes=2,
                 seed: int | None = 0):
        super().__init__()
        self.resolution, self.z_dim, self.num_classes = int(resolution), int(z_dim), int(num_classes)
        self.max_level = level_of(self.resolution)
        self.level, self.alpha = self.max_level, 1.0  # what sample() generates at
        ch = [channels_at(4 * 2 ** k, channel_base, channel_max) for k in range(self.max_level + 1)]
        self.c4 = ch[0]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.dense = EqualLinear(self.z_dim + self.num_classes, ch[0] * 16, activation="lrelu")
            self.conv4 = EqualConv2d(ch[0], ch[0], 3, activation="lrelu")
            self.blocks = nn.ModuleList(GBlock(ch[k - 1], ch[k]) for k in range(1, self.max_level + 1))
            self.torgb = nn.ModuleList(EqualConv2d(c, 3, 1) for c in ch)

    def forward(self, z, c, level=None, alpha=1.0):
        level = self.max_level if level is None else int(level)
        with accel.full_precision(z.device):  # the 4x4 head in fp32 (see the module doc)
            z = z.float()
            x = normalize_2nd_moment(torch.cat([z, F.one_hot(c.long(), self.num_classes).to(z.dtype)], dim=1))
            x = normalize_2nd_moment(self.dense(x).reshape(-1, self.c4, 4, 4))
            x = normalize_2nd_moment(self.conv4(x))
        prev = x
        for k in range(1, level + 1):
            prev, x = x, self.blocks[k - 1](x)
        img = self.torgb[level](x)
        if alpha < 1 and level > 0:
            img = torch.lerp(upsample_nearest(self.torgb[level - 1](prev)), img, alpha)
        return img

    def sample(self, z, c, label_map=None, truncation_psi=1.0):
        """At the stored level/alpha, nearest-upsampled to resolution x resolution."""
        if truncation_psi != 1:
            raise InputError("gans.pgan: PGAN has no truncation trick (it has no mapping network); "
                             "use truncation_psi = 1")
        img = self(z, c, self.level, self.alpha)
        return upsample_nearest(img, self.resolution // img.shape[-1])


class DBlock(nn.Module):
    """Two conv3x3 + leaky ReLU, then 2x average pooling."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3, activation="lrelu")
        self.conv1 = EqualConv2d(cin, cout, 3, activation="lrelu")

    def forward(self, x):
        return F.avg_pool2d(self.conv1(self.conv0(x)), 2)


class Discriminator(nn.Module):
    """D(img, alpha) -> [N, 1 + num_classes]: Wasserstein score, then class logits. The level is the
    input's size (4 * 2**level px)."""

    def __init__(self, resolution=32, channel_base=2048, channel_max=64, num_classes=2, mbstd_group=4,
                 seed: int | None = 1):
        super().__init__()
        self.resolution, self.num_classes = int(resolution), int(num_classes)
        self.max_level = level_of(self.resolution)
        ch = [channels_at(4 * 2 ** k, channel_base, channel_max) for k in range(self.max_level + 1)]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.fromrgb = nn.ModuleList(EqualConv2d(3, c, 1, activation="lrelu") for c in ch)
            self.blocks = nn.ModuleList(DBlock(ch[k], ch[k - 1]) for k in range(1, self.max_level + 1))
            self.mbstd = MinibatchStd(mbstd_group, 1)
            self.conv = EqualConv2d(ch[0] + 1, ch[0], 3, activation="lrelu")
            self.fc = EqualLinear(ch[0] * 16, ch[0], activation="lrelu")
            self.out = EqualLinear(ch[0], 1 + self.num_classes)

    def forward(self, img, alpha=1.0):
        level = level_of(img.shape[-1])
        x = self.fromrgb[level](img)
        if level > 0:
            x = self.blocks[level - 1](x)
            if alpha < 1:
                x = torch.lerp(self.fromrgb[level - 1](F.avg_pool2d(img, 2)), x, alpha)
        for k in range(level - 1, 0, -1):
            x = self.blocks[k - 1](x)
        with accel.full_precision(x.device):  # the 4x4 epilogue in fp32 (see the module doc)
            x = self.conv(self.mbstd(x.float()))
            return self.out(self.fc(x.flatten(1)))


def arch_config(cfg: dict) -> dict:
    """The keyword arguments of Generator (without seed) from a config."""
    return {k: int(cfg[k]) for k in ARCH_KEYS}


def build_networks(cfg: dict, seed: int = 0):
    G = Generator(**arch_config(cfg), seed=seed)
    D = Discriminator(cfg["resolution"], cfg["channel_base"], cfg["channel_max"], cfg["num_classes"],
                      cfg["mbstd_group"], seed=seed + 1)
    return G, D


def count_params(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


# ------------------------------------------------------------------------------------------ training


class Trainer(ClassConditionalBatches):
    """One PGAN training run's state and step (the protocol of ganaug.gans.training)."""

    def __init__(self, images, labels, masks, cfg, seed, device, log):
        self.cfg = cfg = dict(cfg)
        self.device = device = torch.device(device)
        self.precision = accel.resolve_precision(cfg["precision"], device, f"{CFG_KEY}.precision")
        # channels_last: the layout cuDNN's convolutions are fastest in (CPU keeps the default layout)
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.log = log
        self.B = cfg["batch"]
        self.images, self.labels = real_data(images, labels, device)
        self.N = len(images)
        if cfg.get("num_classes") is None:
            cfg["num_classes"] = max(int(self.labels.max()) + 1, 2)
        self.G, self.D = build_networks(cfg, seed=seed % (2 ** 31 - 2))
        self.G.to(device, memory_format=self.memory_format).train()
        self.D.to(device, memory_format=self.memory_format).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.gen = torch.Generator(device=device).manual_seed(seed_from(seed, "pgan", "train"))
        self.sampler = RealSampler(self.N, seed_from(seed, "pgan", "data"), device)
        self.dist = distributed.context()  # several processes: every draw for the global batch
        self.dist.check_groups(self.B, cfg["mbstd_group"], log)
        self.level, self.alpha = schedule(0, cfg)
        self.G_opt, self.D_opt = self.make_optimisers()
        self.cur_nimg = 0
        self.step = 0
        self.seconds = 0.0
        self.reset_stats()

    def make_optimisers(self):
        c = self.cfg
        return tuple(accel.adam(m.parameters(), lr=c["lr"], betas=c["betas"], eps=1e-8) for m in (self.G, self.D))

    # --------------------------------------------------------------------------------- bookkeeping
    STAT_KEYS = ("loss_G", "loss_D", "gp", "drift", "ac_real", "ac_fake", "real_score", "fake_score")

    def reset_stats(self):
        self.stats = accel.DeviceStats()  # summed on the device; metrics() reads them (one host sync)

    def add_stat(self, key, value: torch.Tensor):
        self.stats.add(key, value)

    def metrics(self):
        means = self.stats.means()
        out = {k: means.get(k) for k in self.STAT_KEYS}
        out.update(level=self.level, alpha=self.alpha, level_resolution=4 * 2 ** self.level)
        return out

    def describe(self) -> str:
        c = self.cfg
        return (f"G {count_params(self.G)} / D {count_params(self.D)} params, growing "
                f"{c['start_resolution']} -> {c['resolution']} px (stable {c['stable_kimg']:g} + transition "
                f"{c['transition_kimg']:g} kimg per resolution), AC head {c['num_classes']} classes")

    def state_dict(self):
        return dict(
            format=FORMAT, cfg=plain(self.cfg), arch=arch_config(self.cfg), num_classes=self.cfg["num_classes"],
            G=self.G.state_dict(), G_ema=self.G_ema.state_dict(), D=self.D.state_dict(),
            G_opt=self.G_opt.state_dict(), D_opt=self.D_opt.state_dict(),
            images_seen=self.cur_nimg, kimg=self.cur_nimg / 1000, step=self.step, seconds=self.seconds,
            level=self.level, alpha=self.alpha, level_resolution=4 * 2 ** self.level,
            **rng_state(self.gen, self.sampler),
        )

    def load_state_dict(self, s):
        self.G.load_state_dict(s["G"])
        self.G_ema.load_state_dict(s["G_ema"])
        self.D.load_state_dict(s["D"])
        self.G_opt.load_state_dict(s["G_opt"])
        self.D_opt.load_state_dict(s["D_opt"])
        self.cur_nimg, self.step, self.seconds = int(s["images_seen"]), int(s["step"]), float(s["seconds"])
        self.level, self.alpha = int(s["level"]), float(s["alpha"])
        load_rng_state(s, self.gen, self.sampler)

    # ------------------------------------------------------------------------------------ sampling
    # ---------------------------------------------------------------------------------------- step
    def train_step(self):
        cfg, B, G, D = self.cfg, self.B, self.G, self.D
        level, alpha = schedule(self.cur_nimg, cfg)
        if level != self.level:  # a new resolution: fresh optimiser state
            self.G_opt, self.D_opt = self.make_optimisers()
            self.level = level
        self.alpha = alpha
        real, real_c = self.real_batch()
        real = process_reals(real, level, alpha)
        if self.device.type == "cuda":  # on CPU the layout stays as it was (the same arithmetic)
            real = real.contiguous(memory_format=self.memory_format)
        autocast = accel.autocast(self.device, self.precision)

        # D: WGAN-GP + drift + auxiliary classifier on reals and fakes (each seen once by D; D's outputs
        # are fp32, see the module doc)
        G.requires_grad_(False)
        D.requires_grad_(True)
        self.D_opt.zero_grad(set_to_none=True)
        z, c = self.fake_inputs(B)
        with torch.no_grad(), autocast:
            fake = G(z, c, level, alpha).float()
        with autocast:
            real_out, fake_out = D(real, alpha), D(fake, alpha)
            u = self.dist.rand((B, 1, 1, 1), self.gen, self.device)
            mixed = torch.lerp(real, fake, u).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(mixed, alpha)[:, 0].sum(), mixed, create_graph=True)
        with accel.full_precision(self.device):
            gp = ((grad.float().square().sum(dim=[1, 2, 3]) + 1e-12).sqrt() - 1).square()
        drift = real_out[:, 0].square()
        ac_real = F.cross_entropy(real_out[:, 1:], real_c)
        ac_fake = F.cross_entropy(fake_out[:, 1:], c)
        loss_D = (fake_out[:, 0].mean() - real_out[:, 0].mean() + cfg["gp_lambda"] * gp.mean()
                  + cfg["drift"] * drift.mean() + cfg["ac_weight"] * (ac_real + ac_fake))
        loss_D.backward()
        self.dist.reduce_grads(D)
        self.D_opt.step()
        for k, v in (("loss_D", loss_D), ("gp", gp), ("drift", drift), ("ac_real", ac_real),
                     ("real_score", real_out[:, 0]), ("fake_score", fake_out[:, 0])):
            self.add_stat(k, v)

        # G: -D(fake) + auxiliary classifier on fakes
        G.requires_grad_(True)
        D.requires_grad_(False)
        self.G_opt.zero_grad(set_to_none=True)
        z, c = self.fake_inputs(B)
        with autocast:
            out = D(G(z, c, level, alpha), alpha)
        ac_fake_g = F.cross_entropy(out[:, 1:], c)
        loss_G = -out[:, 0].mean() + cfg["ac_weight"] * ac_fake_g
        loss_G.backward()
        self.dist.reduce_grads(G)
        self.G_opt.step()
        self.add_stat("loss_G", loss_G)
        self.add_stat("ac_fake", ac_fake_g)

        # G EMA (all parameters, fixed beta per step)
        accel.ema_update(self.G_ema, G, cfg["ema_beta"])
        self.cur_nimg += B
        self.step += 1


def build_generator(snapshot: dict, ema: bool = True) -> Generator:
    """The generator of a snapshot dict (EMA weights by default), at the snapshot's level and alpha."""
    G = Generator(**snapshot["arch"], seed=None)
    G.load_state_dict(snapshot["G_ema" if ema else "G"])
    G.level, G.alpha = int(snapshot["level"]), float(snapshot["alpha"])
    return G
