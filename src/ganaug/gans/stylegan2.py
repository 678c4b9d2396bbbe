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

Training (`Trainer`, run by ganaug.gans.training.train_gan): non-saturating logistic loss for G and D;
lazy R1 on reals (gamma/2 * |grad|^2, every `r1_interval` D steps, as a separate optimiser step with
the loss scaled by the interval); optional lazy path-length regulariser (weight `pl_weight`, every
`pl_interval` G steps, half batch); style mixing; Adam with the lazy-regularisation correction of lr
and betas (c / (c + 1)); EMA of G with half-life `ema_kimg` (ramped up: ema_nimg <= cur_nimg *
ema_rampup); optional ADA. A snapshot holds G, G_ema, D, both optimisers, images_seen, the step, all
RNG states (device generator for z/noise/augmentation, CPU generator of the data order and the current
permutation), ADA state and pl_mean. Trains on several processes too (ganaug.gans.distributed).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.io import seed_from

from . import accel, distributed
from .augment import AdaController, augment
from .data import ClassConditionalBatches, RealSampler, load_rng_state, real_data, rng_state
from .layers import (
    EqualConv2d,
    SQRT2,
    EqualLinear,
    MinibatchStd,
    ModulatedConv2d,
    bias_act,
    fir_filter,
    normalize_2nd_moment,
    set_resample,
    upsample2x,
)
from .settings.stylegan2 import CFG_KEY, DEFAULTS, resolve_config  # noqa: F401 (re-exported)
from .snapshots import plain

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
        with accel.full_precision(c.device):  # w sets every style: kept in float32 under bf16 autocast
            return self._forward(z, c, truncation_psi, update_w_avg)

    def _forward(self, z, c, truncation_psi, update_w_avg):
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

    def draw_noise(self, n, device, generator=None):
        """This layer's per-pixel noise for a batch of n ([n, 1, res, res], float32)."""
        shape = (n, 1, self.resolution, self.resolution)
        if generator is None or isinstance(generator, torch.Generator):
            return torch.randn(shape, device=device, dtype=torch.float32, generator=generator)
        return generator.randn(shape, device=device, dtype=torch.float32)  # distributed.Context.noise_generator

    def forward(self, x, w, noise_mode="random", generator=None, noise=None):
        """`noise`: this layer's random noise drawn beforehand (noise_mode "random"; else drawn here)."""
        # lrelu(v) * sqrt 2 = lrelu(sqrt 2 * v): the gain goes into the demodulation and the (small) noise
        # and bias terms, and the output is touched by one fused multiply-add, the bias add and the
        # activation, both in place (neither the add nor the conv keeps its output for backward)
        if noise_mode == "random":
            if noise is None:
                noise = self.draw_noise(x.shape[0], x.device, generator)
            noise = noise * (self.noise_strength * SQRT2)
        elif noise_mode == "const":
            noise = (self.noise_const * (self.noise_strength * SQRT2))[None, None]
        elif noise_mode == "none":
            noise = None
        else:
            raise ValueError(f"unknown noise_mode {noise_mode!r}")
        x = self.conv(x, w, out_gain=SQRT2, add=noise)
        x = x.add_((self.bias * SQRT2).to(x.dtype).reshape(1, -1, 1, 1))
        return F.leaky_relu(x, 0.2, inplace=True)


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
        self.resample = "auto"
        self.register_buffer("fir", fir_filter(), persistent=False)

    def layers(self):
        return [self.conv1] if self.conv0 is None else [self.conv0, self.conv1]

    def forward(self, x, img, ws, noise_mode="random", generator=None, noises=None):
        i = 0
        noises = noises or [None] * self.num_conv
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, i], noise_mode, generator, noises[i])
            i += 1
        x = self.conv1(x, ws[:, i], noise_mode, generator, noises[i])
        i += 1
        y = self.torgb(x, ws[:, i])
        img = y if img is None else upsample2x(img, self.fir, self.resample) + y
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

    def draw_noise(self, n, device, generator=None) -> list:
        """Every layer's random noise for a batch of n, in the order forward() would draw it (so the same
        numbers): the input `noises` of a compiled synthesis, which cannot trace a torch.Generator."""
        return [layer.draw_noise(n, device, generator) for block in self.blocks for layer in block.layers()]

    def forward(self, ws, noise_mode="random", generator=None, noises=None):
        x = img = None
        i = j = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i:i + block.num_conv + 1], noise_mode, generator,
                           None if noises is None else noises[j:j + block.num_conv])
            i += block.num_conv
            j += block.num_conv
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

    conditioning = "class"

    def sample(self, z, c, label_map=None, truncation_psi=1.0):
        """Generation entry shared by the four GANs: constant noise inputs, so (z, c) fixes the image."""
        return self(z, c, truncation_psi=truncation_psi, noise_mode="const")


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
                 mbstd_group=4, seed: int | None = 1):
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
        with accel.full_precision(img.device):  # the 4x4 epilogue (batch statistics, logits) in float32
            x = self.mbstd(x.to(self.out.weight.dtype))
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



# ------------------------------------------------------------------------------------------ training

# keys that may differ between a run and its resume
RESUMABLE_CHANGES = ("total_kimg", "snapshot_kimg", "num_threads", "precision", "channels_last", "resample",
                     "compile")
FORMAT = "ganaug-stylegan2-v1"
CONDITIONING = "class"


class Trainer(ClassConditionalBatches):
    """One StyleGAN2 training run's state and step (the protocol of ganaug.gans.training)."""

    def __init__(self, images, labels, masks, cfg, seed, device, log):
        self.cfg = cfg
        self.device = device
        self.log = log
        self.B = cfg["batch"]
        self.images, self.labels = real_data(images, labels, device)
        self.N = len(images)
        self.precision = accel.resolve_precision(cfg["precision"], device, key=f"{CFG_KEY}.precision")
        accel.configure_backends(device)
        self.G, self.D = build_networks(cfg, seed=seed % (2 ** 31 - 2))
        fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
        for net in (self.G, self.D):
            # 4-D weights in NHWC: the convs then return NHWC activations (the reals already are NHWC)
            net.to(device=device, memory_format=fmt).train()
            set_resample(net, cfg["resample"])
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # compiled views of the same modules (same parameters) for the main G and D passes; R1 and the path
        # length differentiate twice, which compiled graphs (AOTAutograd) do not support, so they stay eager
        self.synthesis_main, self.D_main = self.G.synthesis, self.D
        if cfg["compile"]:
            self.synthesis_main = torch.compile(self.G.synthesis, dynamic=False)
            self.D_main = torch.compile(self.D, dynamic=False)
        self.num_ws = self.G.num_ws
        b0, b1 = cfg["betas"]

        def opt(params, interval, lazy):
            r = interval / (interval + 1) if lazy else 1.0
            return accel.adam(params, lr=cfg["lr"] * r, betas=(b0 ** r, b1 ** r), eps=1e-8)

        self.G_opt = opt(self.G.parameters(), cfg["pl_interval"], cfg["pl_weight"] > 0)
        self.D_opt = opt(self.D.parameters(), cfg["r1_interval"], cfg["r1_gamma"] > 0)
        self.gen = torch.Generator(device=device).manual_seed(seed_from(seed, "stylegan2", "train"))
        self.sampler = RealSampler(self.N, seed_from(seed, "stylegan2", "data"), device)
        self.dist = d = distributed.context()  # several processes: every draw for the global batch
        if d.active:
            if cfg["pl_weight"] > 0:
                d.check_batch(max(self.B // cfg["pl_batch_shrink"], 1), f"{CFG_KEY}.pl_batch_shrink "
                              f"(path-length batch = batch // pl_batch_shrink)")
            d.check_groups(self.B, 4, log)
        self.noise_gen = d.noise_generator(self.gen)
        self.ada = AdaController(cfg["ada_target"], cfg["ada_kimg"], cfg["ada_interval"]) if cfg["ada"] else None
        self.pl_mean = torch.zeros([], device=device)
        self.cur_nimg = 0
        self.step = 0
        self.seconds = 0.0
        self.reset_stats()

    # --------------------------------------------------------------------------------- bookkeeping
    def reset_stats(self):
        self.device_stats = accel.DeviceStats()  # sums stay on the device: no host sync per step
        self._stat_means = None

    def add_stat(self, key, value: torch.Tensor):
        self.device_stats.add(key, value)
        self._stat_means = None

    @property
    def stats(self) -> dict:
        """The logged statistics' means since the last reset, as floats (read from the device once). The
        training loop averages this dict over the processes in place before it calls metrics()."""
        if self._stat_means is None:
            self._stat_means = self.device_stats.means()
        return self._stat_means

    def state_dict(self):
        return dict(
            format=FORMAT, cfg=plain(self.cfg), arch=arch_config(self.cfg), num_classes=self.cfg["num_classes"],
            G=self.G.state_dict(), G_ema=self.G_ema.state_dict(), D=self.D.state_dict(),
            G_opt=self.G_opt.state_dict(), D_opt=self.D_opt.state_dict(),
            images_seen=self.cur_nimg, kimg=self.cur_nimg / 1000, step=self.step, seconds=self.seconds,
            ada=self.ada.state_dict() if self.ada else None, pl_mean=self.pl_mean.detach().cpu(),
            **rng_state(self.gen, self.sampler),
        )

    def load_state_dict(self, s):
        self.G.load_state_dict(s["G"])
        self.G_ema.load_state_dict(s["G_ema"])
        self.D.load_state_dict(s["D"])
        self.G_opt.load_state_dict(s["G_opt"])
        self.D_opt.load_state_dict(s["D_opt"])
        self.cur_nimg, self.step, self.seconds = int(s["images_seen"]), int(s["step"]), float(s["seconds"])
        if self.ada:
            self.ada.load_state_dict(s["ada"])
        self.pl_mean = s["pl_mean"].to(self.device)
        load_rng_state(s, self.gen, self.sampler)

    # ------------------------------------------------------------------------------------ sampling
    def run_G(self, z, c, main=False):
        """Generated images and their ws; `main`: a main G or D pass (the compiled networks, if any)."""
        G, d = self.G, self.dist
        ws = G.map(z, c, update_w_avg=not d.active)
        if d.active:  # w_avg tracks the mean w of the global batch
            with torch.no_grad():
                m = G.mapping
                m.w_avg.copy_(d.mean(ws[:, 0].mean(dim=0)).lerp(m.w_avg, m.w_avg_beta))
        # style mixing: from a random layer on, use the w of a second latent (same class)
        z2 = d.randn(d.global_shape(z), self.gen, self.device)
        cutoff = torch.randint(1, self.num_ws, (), device=self.device, generator=self.gen)
        use = torch.rand((), device=self.device, generator=self.gen) < self.cfg["style_mixing"]
        if self.cfg["style_mixing"] > 0:
            cutoff = torch.where(use, cutoff, torch.full_like(cutoff, self.num_ws))
            ws2 = G.map(z2, c)
            mix = (torch.arange(self.num_ws, device=self.device) >= cutoff).reshape(1, -1, 1)
            ws = torch.where(mix, ws2, ws)
        if main and self.synthesis_main is not G.synthesis:
            noises = G.synthesis.draw_noise(ws.shape[0], self.device, self.noise_gen)
            img = self.synthesis_main(ws, "random", None, noises)
        else:
            img = G.synthesis(ws, noise_mode="random", generator=self.noise_gen)
        return img, ws

    def run_D(self, img, c, main=False):
        if self.ada is not None and self.ada.p > 0:
            with torch.profiler.record_function("ADA augment"):
                img = augment(img, self.ada.p, self.dist.draws(self.gen))  # this rank's rows only
        return (self.D_main if main else self.D)(img, c).float()

    def autocast(self):
        """The forward passes' precision (bf16 autocast, or nothing)."""
        return accel.autocast(self.device, self.precision)

    def full_precision(self):
        return accel.full_precision(self.device)

    # ---------------------------------------------------------------------------------------- step
    def train_step(self):
        cfg, B = self.cfg, self.B
        G, D = self.G, self.D
        real, real_c = self.real_batch()
        phase = torch.profiler.record_function  # labels for dev/sg2_profile.py (free without a profiler)

        # G main: non-saturating logistic loss
        with phase("G main"):
            G.requires_grad_(True)
            D.requires_grad_(False)
            self.G_opt.zero_grad(set_to_none=True)
            z, c = self.fake_inputs(B)
            with self.autocast():
                img, _ = self.run_G(z, c, main=True)
                logits = self.run_D(img, c, main=True)
            loss_G = F.softplus(-logits).mean()
            loss_G.backward()
            self.dist.reduce_grads(G)
            self.optimiser_step(self.G_opt)
            self.add_stat("loss_G", loss_G)
            self.add_stat("fake_score", logits)

        # G reg: path-length, lazily
        if cfg["pl_weight"] > 0 and self.step % cfg["pl_interval"] == 0:
            with phase("G path length"):
                self.G_opt.zero_grad(set_to_none=True)
                n = max(B // cfg["pl_batch_shrink"], 1)
                z, c = self.fake_inputs(n)
                with self.autocast():
                    img, ws = self.run_G(z, c)
                h, w = img.shape[2:]
                pl_noise = self.dist.randn(self.dist.global_shape(img), self.gen, self.device) / math.sqrt(h * w)
                with self.full_precision():
                    (grads,) = torch.autograd.grad((img.float() * pl_noise).sum(), ws, create_graph=True)
                    lengths = grads.float().square().sum(2).mean(1).sqrt()
                pl_mean = self.pl_mean.lerp(self.dist.mean(lengths.mean().detach()), cfg["pl_decay"])
                self.pl_mean = pl_mean.detach()
                penalty = (lengths - pl_mean).square()
                (penalty.mean() * cfg["pl_weight"] * cfg["pl_interval"] + img[:, 0, 0, 0].sum() * 0).backward()
                self.dist.reduce_grads(G)
                self.optimiser_step(self.G_opt)
                self.add_stat("pl", penalty)

        # D main
        with phase("D main"):
            G.requires_grad_(False)
            D.requires_grad_(True)
            self.D_opt.zero_grad(set_to_none=True)
            z, c = self.fake_inputs(B)
            with self.autocast():
                with torch.no_grad():
                    img, _ = self.run_G(z, c, main=True)
                fake_logits = self.run_D(img, c, main=True)
                real_logits = self.run_D(real, real_c, main=True)
            loss_D = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
            loss_D.backward()
            self.dist.reduce_grads(D)
            self.optimiser_step(self.D_opt)
            self.add_stat("loss_D", loss_D)
            self.add_stat("real_score", real_logits)
            if self.ada is not None:
                self.ada.accumulate(real_logits, self.dist.sum, self.dist.world)  # stays on the device

        # D reg: R1 on reals, lazily
        if cfg["r1_gamma"] > 0 and self.step % cfg["r1_interval"] == 0:
            with phase("D R1"):
                self.D_opt.zero_grad(set_to_none=True)
                x = real.detach().requires_grad_(True)
                with self.autocast():
                    logits = self.run_D(x, real_c)
                with self.full_precision():
                    (grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
                    penalty = grads.float().square().sum(dim=[1, 2, 3])
                (penalty.mean() * (cfg["r1_gamma"] / 2) * cfg["r1_interval"] + logits.sum() * 0).backward()
                self.dist.reduce_grads(D)
                self.optimiser_step(self.D_opt)
                self.add_stat("r1", penalty)

        # G EMA
        with phase("G EMA"):
            ema_nimg = cfg["ema_kimg"] * 1000
            if cfg["ema_rampup"] is not None:
                ema_nimg = min(ema_nimg, self.cur_nimg * cfg["ema_rampup"])
            beta = 0.5 ** (B / max(ema_nimg, 1e-8))
            accel.ema_update(self.G_ema, G, beta)

        self.cur_nimg += B
        self.step += 1
        if self.ada is not None:
            self.ada.step(B)  # reads the device only at the ADA interval

    @staticmethod
    def optimiser_step(opt):
        with torch.profiler.record_function("optimiser"):
            opt.step()

    STAT_KEYS = ("loss_G", "loss_D", "r1", "pl", "real_score", "fake_score")

    def metrics(self):
        out = {k: self.stats.get(k) for k in self.STAT_KEYS}  # None: not computed in this interval
        out["augment_p"] = self.ada.p if self.ada else 0.0
        return out

    def describe(self) -> str:
        ada = "on" if self.ada else "off"
        layout = ", channels_last" if self.cfg["channels_last"] else ""
        compiled = ", compiled main passes" if self.cfg["compile"] else ""
        return (f"G {count_params(self.G)} / D {count_params(self.D)} params, ADA {ada}, {self.precision}{layout}"
                f"{compiled}")


def build_generator(snapshot: dict, ema: bool = True) -> Generator:
    """The generator of a snapshot dict (EMA weights by default)."""
    G = Generator(**snapshot["arch"], seed=0)
    G.load_state_dict(snapshot["G_ema" if ema else "G"])
    return G
