"""Class-conditional diffusion model after EDM (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", arXiv 2206.00364), in plain PyTorch, under the GANs' protocol
(ganaug.gans.training): a fifth generator, `diffusion` (abbreviation `dif`).

Sources: "Table 1" is the paper's Table 1 (column "Ours"), where the paper lists these choices; every
constant was checked against the authors' code, NVlabs/edm at commit 008a4e5, whose files "loss.py",
"networks.py", "generate.py", "train.py", "training_loop.py" and README are named below (the abstract's
"35 network evaluations per image" for CIFAR-10 is generate.py's 18 Heun steps).
- Denoiser D(x; sigma, class) = c_skip x + c_out F(c_in x; c_noise, class), with c_skip = sd^2 / (sigma^2 +
  sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4,
  sd = sigma_data = 0.5 (Table 1; networks.py EDMPrecond). F is the U-Net of ganaug.gans.diffusion_unet.
  The preconditioning and the loss run in fp32; only F runs under bf16 autocast.
- Training (Table 1; loss.py EDMLoss): ln(sigma) ~ N(P_mean = -1.2, P_std = 1.2) per image, y + n with
  n ~ N(0, sigma^2 I), loss lambda(sigma) |D(y + n; sigma) - y|^2 with lambda = (sigma^2 + sd^2) /
  (sigma sd)^2, summed over pixels and averaged over the batch (training_loop.py). Adam betas (0.9, 0.999),
  eps 1e-8 (train.py), lr ramped up linearly over lr_rampup_kimg, NaN/inf gradients replaced as in
  training_loop.py. EMA of the weights with a half-life of ema_halflife_kimg, ramped up as
  min(half-life, images seen x ema_rampup_ratio) (training_loop.py; EDM: 500 kimg, ratio 0.05 for CIFAR-10).
  Random x-flips of the reals (`mirror`); EDM's augmentation pipeline is not implemented.
- Classifier-free guidance (Ho & Salimans 2022; an option beyond EDM, off by default): during training the
  class of each image is dropped (all-zero one-hot, networks.py's label_dropout) with probability
  p_uncond; at sampling D = D(x; no class) + guidance (D(x; class) - D(x; no class)); guidance 1 is plain
  conditional sampling (one network evaluation per step).
- Sampling (Table 1; generate.py edm_sampler with S_churn = 0): the deterministic Heun 2nd-order ODE
  solver from sigma_max = 80 to sigma_min = 0.002 on the steps sigma_i = (sigma_max^(1/rho) + i / (N - 1)
  (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, rho = 7, then sigma_N = 0; the last step is Euler, so N
  steps cost 2N - 1 evaluations (N = 18 for CIFAR-10: 35). The ODE state is float64 as in generate.py.
- Latent: `z_dim` = 8 numbers that only seed the initial noise (each image's N(0, I) noise comes from a CPU
  generator seeded by a hash of its z): generation stays seeded and sharded like the GANs' (a latent of
  3 x R x R numbers would make ganaug.gans.training.generate hold every image's noise at once).
"""

from __future__ import annotations

import copy
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.io import InputError, seed_from

from . import accel
from .data import RealSampler, load_rng_state, real_data, real_images, rng_state
from .diffusion_unet import UNet
from .settings.diffusion import CFG_KEY, DEFAULTS, resolve_config  # noqa: F401 (re-exported)
from .snapshots import plain

FORMAT = "ganaug-diffusion-v1"
CONDITIONING = "class"
Z_DIM = 8
RESUMABLE_CHANGES = ("total_kimg", "snapshot_kimg", "num_threads")
ARCH_KEYS = ("resolution", "num_classes", "model_channels", "channel_mult", "num_blocks", "attn_resolutions",
             "dropout", "sigma_data")
SAMPLER_KEYS = ("num_steps", "sigma_min", "sigma_max", "rho", "guidance", "precision")


# --------------------------------------------------------------------------------------- EDM formulas


def preconditioning(sigma: torch.Tensor, sigma_data: float):
    """(c_skip, c_out, c_in, c_noise) of noise levels sigma (Table 1; networks.py EDMPrecond)."""
    s2 = sigma ** 2 + sigma_data ** 2
    return sigma_data ** 2 / s2, sigma * sigma_data / s2.sqrt(), 1 / s2.sqrt(), sigma.log() / 4


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 = 1 / c_out^2 (Table 1; loss.py EDMLoss)."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def training_sigmas(n: int, p_mean: float, p_std: float, gen: torch.Generator, device) -> torch.Tensor:
    """n training noise levels [n, 1, 1, 1]: ln(sigma) ~ N(p_mean, p_std^2) (Table 1; loss.py EDMLoss)."""
    return (torch.randn((n, 1, 1, 1), generator=gen, device=device) * p_std + p_mean).exp()


def sampling_sigmas(num_steps: int, sigma_min: float, sigma_max: float, rho: float) -> list[float]:
    """The num_steps EDM noise levels from sigma_max down to sigma_min, then 0 (Table 1; generate.py)."""
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(hi + i / (num_steps - 1) * (lo - hi)) ** rho for i in range(num_steps)] + [0.0]


def heun_sample(denoise, noise: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """Solve the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma from x = noise * sigmas[0]
    along `sigmas` with Heun's method, Euler on the last step (to sigma 0); float64 state (generate.py)."""
    x = noise.double() * sigmas[0]
    for t, t_next in zip(sigmas[:-1], sigmas[1:]):
        d = (x - denoise(x, t)) / t
        x_next = x + (t_next - t) * d
        if t_next > 0:
            d_next = (x_next - denoise(x_next, t_next)) / t_next
            x_next = x + (t_next - t) * 0.5 * (d + d_next)
        x = x_next
    return x


def initial_noise(z: torch.Tensor, resolution: int) -> torch.Tensor:
    """N(0, I) noise [N, 3, R, R] on the CPU, image i's drawn from a generator seeded by a hash of z[i]:
    the same z gives the same noise on any device and in any batch."""
    rows = []
    for row in z.detach().to("cpu", torch.float32).contiguous():
        seed = int.from_bytes(hashlib.sha256(row.numpy().tobytes()).digest()[:8], "little") >> 1
        rows.append(torch.randn((3, resolution, resolution), generator=torch.Generator().manual_seed(seed)))
    return torch.stack(rows) if rows else torch.zeros((0, 3, resolution, resolution))


# ------------------------------------------------------------------------------------------ networks


class Denoiser(nn.Module):
    """D(x; sigma, class one-hot): the U-Net F wrapped in EDM's preconditioning (module doc)."""

    def __init__(self, resolution: int, num_classes: int, model_channels: int, channel_mult, num_blocks: int,
                 attn_resolutions, dropout: float, sigma_data: float, seed: int | None = 0):
        super().__init__()
        self.resolution, self.num_classes, self.sigma_data = int(resolution), int(num_classes), float(sigma_data)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.unet = UNet(resolution, num_classes, model_channels, channel_mult, num_blocks, attn_resolutions,
                             dropout)

    def forward(self, x, sigma, class_onehot, precision: str = "fp32", gen: torch.Generator | None = None):
        """D(x; sigma, class); `gen` draws the dropout masks in training."""
        x = x.float()
        sigma = sigma.float().reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, self.sigma_data)
        with accel.autocast(x.device, precision):
            f = self.unet(c_in * x, c_noise.flatten(), class_onehot, gen)
        return c_skip * x + c_out * f.float()


class Generator(nn.Module):
    """The generator protocol of ganaug.gans.training around a Denoiser and the Heun sampler."""

    conditioning = "class"
    z_dim = Z_DIM

    def __init__(self, denoiser: Denoiser, num_steps: int, sigma_min: float, sigma_max: float, rho: float,
                 guidance: float, precision: str):
        super().__init__()
        self.denoiser = denoiser
        self.resolution, self.num_classes = denoiser.resolution, denoiser.num_classes
        self.sigmas = sampling_sigmas(int(num_steps), float(sigma_min), float(sigma_max), float(rho))
        self.guidance, self.precision = float(guidance), precision

    @torch.no_grad()
    def sample(self, z, c, label_map=None, truncation_psi=1.0):
        """Images [N, 3, R, R] in [-1, 1] of classes c from the noise that z seeds (module doc)."""
        if truncation_psi != 1:
            raise InputError(f"{CFG_KEY}: a diffusion model has no truncation trick; use truncation_psi = 1")
        device = c.device
        # bf16 only where it pays (CUDA); a bf16 run's snapshot still samples on the CPU, in fp32
        precision = "bf16" if self.precision in ("auto", "bf16") and device.type == "cuda" else "fp32"
        onehot = F.one_hot(c.long(), self.num_classes).float()
        guided = self.guidance != 1

        def denoise(x, sigma):
            s = torch.full((len(x),), sigma, device=device)
            if not guided:
                return self.denoiser(x, s, onehot, precision).double()
            both = self.denoiser(torch.cat([x, x]), torch.cat([s, s]), torch.cat([onehot, 0 * onehot]),
                                 precision).double()
            cond, uncond = both.chunk(2)
            return uncond + self.guidance * (cond - uncond)

        x = heun_sample(denoise, initial_noise(z, self.resolution).to(device), self.sigmas)
        return x.float().clamp(-1, 1)


def arch_config(cfg: dict) -> dict:
    """The arguments of Denoiser (without seed) from a config."""
    return {k: plain(cfg[k]) for k in ARCH_KEYS}


def count_params(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


# ------------------------------------------------------------------------------------------ training


class Trainer:
    """One diffusion training run's state and step (the protocol of ganaug.gans.training). G is the
    denoiser being trained, G_ema its EMA; there is no discriminator. One process only (no `dist`)."""

    def __init__(self, images, labels, masks, cfg, seed, device, log):
        self.cfg = cfg = dict(cfg)
        self.device = torch.device(device)
        self.log = log
        self.B = cfg["batch"]
        self.images, self.labels = real_data(images, labels, device)
        self.N = len(images)
        if cfg.get("num_classes") is None:
            cfg["num_classes"] = max(int(self.labels.max()) + 1, 2)
        self.precision = accel.resolve_precision(cfg["precision"], device, f"{CFG_KEY}.precision")
        accel.configure_backends(device)
        self.G = Denoiser(**arch_config(cfg), seed=seed % (2 ** 31 - 2)).to(device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.G_opt = accel.adam(self.G.parameters(), lr=cfg["lr"], betas=cfg["betas"], eps=1e-8)
        self.gen = torch.Generator(device=device).manual_seed(seed_from(seed, "diffusion", "train"))
        self.sampler = RealSampler(self.N, seed_from(seed, "diffusion", "data"), device)
        self.cur_nimg = 0
        self.step = 0
        self.seconds = 0.0
        self.stats = accel.DeviceStats()  # losses summed on the device, read at snapshot time

    # --------------------------------------------------------------------------------- bookkeeping
    def reset_stats(self):
        self.stats.reset()

    def lr(self) -> float:
        """The learning rate of the next step: ramped up linearly over lr_rampup_kimg (training_loop.py)."""
        ramp = float(self.cfg["lr_rampup_kimg"]) * 1000
        return self.cfg["lr"] * (min(self.cur_nimg / ramp, 1.0) if ramp > 0 else 1.0)

    def ema_beta(self) -> float:
        """EMA decay of the next step from the half-life in images, ramped up (training_loop.py)."""
        half_life = self.cfg["ema_halflife_kimg"] * 1000
        if self.cfg["ema_rampup_ratio"] is not None:
            half_life = min(half_life, self.cur_nimg * self.cfg["ema_rampup_ratio"])
        return 0.5 ** (self.B / max(half_life, 1e-8))

    def metrics(self):
        return dict(self.stats.means(), lr=self.lr(), ema_beta=self.ema_beta())

    def describe(self) -> str:
        c = self.cfg
        return (f"EDM denoiser {count_params(self.G)} params (channels {c['model_channels']} x {c['channel_mult']}, "
                f"{c['num_blocks']} blocks per resolution, attention at {c['attn_resolutions'] or 'none'}), "
                f"{c['num_classes']} classes, Heun sampler {c['num_steps']} steps "
                f"({2 * c['num_steps'] - 1} evaluations), precision {self.precision}")

    def state_dict(self):
        return dict(
            format=FORMAT, cfg=plain(self.cfg), arch=arch_config(self.cfg), num_classes=self.cfg["num_classes"],
            sampler={k: plain(self.cfg[k]) for k in SAMPLER_KEYS},
            G=self.G.state_dict(), G_ema=self.G_ema.state_dict(), G_opt=self.G_opt.state_dict(),
            images_seen=self.cur_nimg, kimg=self.cur_nimg / 1000, step=self.step, seconds=self.seconds,
            **rng_state(self.gen, self.sampler),
        )

    def load_state_dict(self, s):
        self.G.load_state_dict(s["G"])
        self.G_ema.load_state_dict(s["G_ema"])
        self.G_opt.load_state_dict(s["G_opt"])
        self.cur_nimg, self.step, self.seconds = int(s["images_seen"]), int(s["step"]), float(s["seconds"])
        load_rng_state(s, self.gen, self.sampler)

    # ---------------------------------------------------------------------------------------- step
    def train_step(self):
        cfg, B, dev = self.cfg, self.B, self.device
        idx, flip = self.sampler.next(B)
        y = real_images(self.images, idx, flip if cfg["mirror"] else None)
        onehot = F.one_hot(self.labels[idx], cfg["num_classes"]).float()
        if cfg["p_uncond"] > 0:  # classifier-free guidance: learn D(x; no class) too
            onehot = onehot * (torch.rand((B, 1), generator=self.gen, device=dev) >= cfg["p_uncond"])
        sigma = training_sigmas(B, cfg["p_mean"], cfg["p_std"], self.gen, dev)
        noisy = y + torch.randn(y.shape, generator=self.gen, device=dev) * sigma
        denoised = self.G(noisy, sigma, onehot, self.precision, self.gen)
        loss = loss_weight(sigma, cfg["sigma_data"]) * (denoised - y).square()  # fp32
        self.G_opt.zero_grad(set_to_none=True)
        loss.sum().div(B).backward()
        for g in self.G_opt.param_groups:
            g["lr"] = self.lr()
        for p in self.G.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
        self.G_opt.step()
        accel.ema_update(self.G_ema, self.G, self.ema_beta())
        self.stats.add("loss_edm", loss)
        self.cur_nimg += B
        self.step += 1


def build_generator(snapshot: dict, ema: bool = True) -> Generator:
    """The generator of a snapshot dict (EMA weights by default) with the snapshot's sampler settings."""
    denoiser = Denoiser(**snapshot["arch"], seed=None)
    denoiser.load_state_dict(snapshot["G_ema" if ema else "G"])
    return Generator(denoiser, **snapshot["sampler"])
