"""What the two mask-to-image GANs (pix2pixHD, SPADE) share.

- Label-map encoding: one-hot of the NUM_LABELS (8) labels of ganaug.masks plus a one-channel edge map
  (1 where a 4-neighbour has a different label; the label map stands in for pix2pixHD's instance map,
  as skin-lesion maps have no instances) -> NUM_LABELS + 1 channels.
- Multiscale PatchGAN discriminator: `num_D` discriminators, each on the input average-pooled once more
  (AvgPool2d(3, 2, 1, count_include_pad=False)); each returns the outputs of all its layers (the last is
  the patch logit map) for feature matching. Layers: conv k4 s2 + leaky 0.2; `n_down - 1` more conv k4
  s2 + norm + leaky; conv k4 s1 + norm + leaky; conv k4 s1 -> 1 channel (padding 2 throughout, as the
  reference code). norm "instance" (pix2pixHD: InstanceNorm, conv with bias) or "spectralinstance" (SPADE:
  spectral norm on the conv, no bias, then InstanceNorm); first and last conv plain in both.
  pix2pixHD's n_layers_D = 3 and SPADE's n_layers_D = 4 both mean n_down = 3 (the papers count differently).
- Losses: LSGAN (pix2pixHD: summed over scales, D loss halved), hinge (SPADE: averaged over scales),
  feature matching (L1 between D features of fake and real, all layers but the output, / num_D), and the
  VGG19 perceptual loss (L1 on relu1_1 .. relu5_1 with weights 1/32, 1/16, 1/8, 1/4, 1).
- VGG19 weights: torchvision's vgg19 architecture with a state dict from a file; the file comes from the
  config keys vgg_weights (a local path), vgg_url (+ vgg_sha256, cached in cache_dir) through
  ganaug.weights.resolve_weights. torchvision's ImageNet file is
  https://download.pytorch.org/models/vgg19-dcbb9e9d.pth (a state dict of the whole network; only
  `features.0` .. `features.28` are used). Without weights (or with lambda_vgg = 0) the VGG loss is off
  and the log says so. Images are mapped from [-1, 1] to ImageNet-normalised input (the reference code
  feeds [-1, 1] unnormalised; torchvision's weights expect normalised input).
- TranslationTrainer: the Trainer protocol of ganaug.gans.training for both (data order, flips of image
  and label map together, one G step then one D step per batch, snapshots state, metrics); several
  processes (ganaug.gans.distributed) for pix2pixHD; SPADE's BatchNorm refuses them. D sees the reals
  once per step: D(real) serves the G step's feature matching (detached) and the D step's real term, as
  in pix2pixHD's reference (D does not change between the two; for SPADE only the spectral norm's power
  iteration, one iteration per D forward, then runs once less per step).
- Precision (`precision`, ganaug.gans.accel): bf16 autocast on CUDA by default (auto), fp32 on CPU. D's
  outputs go to the losses in fp32 (every loss, its means and sums run in fp32), and the spectral norm's
  power iteration and sigma stay fp32; InstanceNorm / BatchNorm keep fp32 statistics under autocast.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganaug.io import InputError, seed_from, sha256_file
from ganaug.masks import NUM_LABELS

from . import accel, distributed
from .data import RealSampler, load_rng_state, real_data, real_images, rng_state
from .settings.translation import (  # noqa: F401 (re-exported)
    COMMON_DEFAULTS,
    as_float,
    as_int,
    as_optional_str,
    check_common,
)
from .snapshots import plain

LABEL_CHANNELS = NUM_LABELS + 1  # one-hot labels + edge map

# ----------------------------------------------------------------------------------- label maps


def edge_map(label_map: torch.Tensor) -> torch.Tensor:
    """float N x 1 x H x W: 1 where a pixel's 4-neighbour has a different label (pix2pixHD get_edges)."""
    m = label_map
    e = torch.zeros(m.shape, dtype=torch.bool, device=m.device)
    dx = m[:, :, 1:] != m[:, :, :-1]
    e[:, :, 1:] |= dx
    e[:, :, :-1] |= dx
    dy = m[:, 1:, :] != m[:, :-1, :]
    e[:, 1:, :] |= dy
    e[:, :-1, :] |= dy
    return e.unsqueeze(1).float()


def encode_label_map(label_map: torch.Tensor, num_labels: int = NUM_LABELS) -> torch.Tensor:
    """N x H x W integer label map -> float N x (num_labels + 1) x H x W (one-hot, then the edge map)."""
    m = label_map.long()
    onehot = F.one_hot(m, num_labels).permute(0, 3, 1, 2).float()
    return torch.cat([onehot, edge_map(m)], dim=1)


def check_label_map_tensor(label_map, n: int, resolution: int) -> torch.Tensor:
    """label_map as a LongTensor N x R x R with values 0..NUM_LABELS-1, else InputError."""
    if not torch.is_tensor(label_map) or label_map.dtype.is_floating_point or label_map.dtype == torch.bool:
        raise InputError(f"label_map: expected an integer tensor N x {resolution} x {resolution}, "
                         f"got {getattr(label_map, 'dtype', type(label_map))}")
    if tuple(label_map.shape) != (n, resolution, resolution):
        raise InputError(f"label_map: expected shape {n} x {resolution} x {resolution}, "
                         f"got {tuple(label_map.shape)}")
    if label_map.numel() and (int(label_map.min()) < 0 or int(label_map.max()) >= NUM_LABELS):
        raise InputError(f"label_map: values must be in 0..{NUM_LABELS - 1}")
    return label_map.long()


def downsample(x: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's input pyramid step: AvgPool2d(3, stride 2, padding 1, count_include_pad=False)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


# -------------------------------------------------------------------------------- discriminator


class _SpectralNormFP32(nn.utils.parametrizations._SpectralNorm):
    """torch's spectral-norm parametrization with its power iteration and sigma out of autocast (in bf16
    they would carry 8-bit mantissas into the persistent u, v vectors)."""

    def forward(self, weight):
        with torch.autocast(weight.device.type, enabled=False):
            return super().forward(weight)


def spectral_norm(module: nn.Module) -> nn.Module:
    """nn.utils.parametrizations.spectral_norm(module) (same state dict, same random init of u and v),
    computed in fp32 under autocast."""
    w = module.weight
    dim = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
    nn.utils.parametrize.register_parametrization(module, "weight", _SpectralNormFP32(w, 1, dim, 1e-12))
    return module


class PatchDiscriminator(nn.Module):
    """PatchGAN returning the outputs of all its layers (last = logit map). See the module doc."""

    def __init__(self, in_channels: int, ndf: int = 64, n_down: int = 3, norm: str = "instance",
                 max_channels: int = 512):
        super().__init__()
        if norm not in ("instance", "spectralinstance"):
            raise ValueError(f"unknown norm {norm!r}")
        kw, pad = 4, 2

        def normed(cin, cout, stride):
            if norm == "instance":
                return nn.Sequential(nn.Conv2d(cin, cout, kw, stride, pad), nn.InstanceNorm2d(cout),
                                     nn.LeakyReLU(0.2))
            conv = spectral_norm(nn.Conv2d(cin, cout, kw, stride, pad, bias=False))
            return nn.Sequential(conv, nn.InstanceNorm2d(cout), nn.LeakyReLU(0.2))

        layers = [nn.Sequential(nn.Conv2d(in_channels, ndf, kw, 2, pad), nn.LeakyReLU(0.2))]
        nf = ndf
        for _ in range(1, n_down):
            nf_prev, nf = nf, min(nf * 2, max_channels)
            layers.append(normed(nf_prev, nf, 2))
        nf_prev, nf = nf, min(nf * 2, max_channels)
        layers.append(normed(nf_prev, nf, 1))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, kw, 1, pad)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """num_D PatchGANs on the input at full, 1/2, 1/4 ... resolution; returns [per scale: [features]]."""

    def __init__(self, in_channels: int, ndf: int = 64, n_down: int = 3, num_D: int = 2,
                 norm: str = "instance"):
        super().__init__()
        self.num_D = num_D
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_down, norm) for _ in range(num_D))

    def forward(self, x):
        out = []
        for i, d in enumerate(self.scales):
            if i > 0:
                x = downsample(x)
            out.append(d(x))
        return out


# ----------------------------------------------------------------------------------------- losses


def float_outputs(pred):
    """A multiscale D's outputs (per scale, per layer) in fp32: what the losses below see under autocast
    (the same tensors in fp32)."""
    return [[f.float() for f in scale] for scale in pred]


def lsgan_d_terms(pred_real, pred_fake) -> tuple[torch.Tensor, torch.Tensor]:
    """pix2pixHD's D loss as (real term, fake term): 0.5 * sum over scales of mean((D(real) - 1)^2), and
    of mean(D(fake)^2)."""
    real = 0.5 * sum((r[-1] - 1).square().mean() for r in pred_real)
    fake = 0.5 * sum(f[-1].square().mean() for f in pred_fake)
    return real, fake


def lsgan_d_loss(pred_real, pred_fake) -> torch.Tensor:
    real, fake = lsgan_d_terms(pred_real, pred_fake)
    return real + fake


def lsgan_g_loss(pred_fake) -> torch.Tensor:
    """pix2pixHD: sum over scales of mean((D(fake) - 1)^2)."""
    loss = 0.0
    for f in pred_fake:
        loss = loss + (f[-1] - 1).square().mean()
    return loss


def hinge_d_terms(pred_real, pred_fake) -> tuple[torch.Tensor, torch.Tensor]:
    """SPADE's D loss as (real term, fake term): mean over scales of mean(relu(1 - D(real))), and of
    mean(relu(1 + D(fake)))."""
    real = sum(F.relu(1 - r[-1]).mean() for r in pred_real) / len(pred_real)
    fake = sum(F.relu(1 + f[-1]).mean() for f in pred_fake) / len(pred_fake)
    return real, fake


def hinge_d_loss(pred_real, pred_fake) -> torch.Tensor:
    real, fake = hinge_d_terms(pred_real, pred_fake)
    return real + fake


def hinge_g_loss(pred_fake) -> torch.Tensor:
    """SPADE: mean over scales of -mean(D(fake))."""
    return sum(-f[-1].mean() for f in pred_fake) / len(pred_fake)


def feature_matching_loss(pred_fake, pred_real, layer_weight: float = 1.0) -> torch.Tensor:
    """sum over scales and layers (all but the output) of layer_weight * L1(fake, real.detach()) / num_D."""
    num_D = len(pred_fake)
    loss = 0.0
    for f, r in zip(pred_fake, pred_real):
        for j in range(len(f) - 1):
            loss = loss + layer_weight * F.l1_loss(f[j], r[j].detach()) / num_D
    return loss


# ------------------------------------------------------------------------------------- VGG loss

VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # -> relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
VGG_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


def load_vgg19_features(path, key: str = "vgg_weights") -> nn.Sequential:
    """torchvision vgg19(weights=None).features[:30] (up to relu5_1) with the weights of a state-dict file
    (the whole network's, or only its `features.*` entries). A file that is not such a state dict is an
    InputError naming the file and the config key."""
    import torchvision

    path = Path(path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{key}: cannot load VGG19 weights from {path} ({type(e).__name__}: {e})") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"{key}: {path} is not a state dict of torchvision's vgg19")
    with torch.device("meta"):  # the architecture only: no init cost, no RNG use
        features = torchvision.models.vgg19(weights=None).features[:30]
    want = features.state_dict().keys()
    sub = {}
    for k in want:
        v = sd.get(f"features.{k}")
        if v is None:
            raise InputError(f"{key}: {path} is not a state dict of torchvision's vgg19 (no 'features.{k}')")
        sub[k] = v
    features = features.to_empty(device="cpu")
    try:
        features.load_state_dict(sub, strict=True)
    except RuntimeError as e:
        raise InputError(f"{key}: {path} does not fit torchvision's vgg19: {e}") from e
    return features


class VGGLoss(nn.Module):
    """sum_i w_i * L1(vgg_i(x), vgg_i(y).detach()) over relu1_1 .. relu5_1 of VGG19; x, y in [-1, 1]."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.slices = nn.ModuleList(features[a:b] for a, b in VGG_SLICES)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True):  # always eval (no dropout/BN in these layers, but be explicit)
        return super().train(False)

    def features(self, x):
        x = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for s in self.slices:
            x = s(x)
            out.append(x)
        return out

    def forward(self, x, y):
        fx = self.features(x)
        with torch.no_grad():
            fy = self.features(y)
        return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(VGG_WEIGHTS, fx, fy))


def make_vgg_loss(cfg: dict, cfg_key: str, log, device) -> tuple[VGGLoss | None, str | None]:
    """(VGGLoss on device, sha256 of the weights file) from the config, or (None, None) with a log line
    saying why the VGG loss is off. A configured local file that is missing is an InputError naming the
    key."""
    from ganaug.weights import resolve_weights

    if float(cfg["lambda_vgg"]) == 0:
        log.info(f"{cfg_key}: VGG19 perceptual loss off (lambda_vgg = 0)")
        return None, None
    path = cfg.get("vgg_weights")
    if path and not Path(path).is_file():
        raise InputError(f"{cfg_key}.vgg_weights: VGG19 weights file {path} not found")
    if not path and not cfg.get("vgg_url"):
        log.info(f"{cfg_key}: VGG19 perceptual loss off: no weights (set {cfg_key}.vgg_weights to a local "
                 f"torchvision vgg19 state dict, or {cfg_key}.vgg_url, e.g. {VGG_URL})")
        return None, None
    p = resolve_weights(path, cfg.get("vgg_url"), cfg.get("vgg_sha256"), cfg["cache_dir"])
    key = f"{cfg_key}.vgg_weights" if path else f"{cfg_key}.vgg_url"
    loss = VGGLoss(load_vgg19_features(p, key)).to(device)
    digest = sha256_file(p)
    log.info(f"{cfg_key}: VGG19 perceptual loss on (weight {cfg['lambda_vgg']:g}, weights {p}, "
             f"sha256 {digest[:12]})")
    return loss, digest


def count_params(m: nn.Module) -> int:
    return int(sum(p.numel() for p in m.parameters()))


# ------------------------------------------------------------------------------------- trainer


class TranslationTrainer:
    """The Trainer protocol of ganaug.gans.training for a label map -> image GAN.

    A subclass sets NAME, FORMAT, and implements build(cfg, seed) -> (G, D), make_optimisers(),
    arch(), set_lrs() (from cur_nimg only), g_adv_loss(pred_fake), d_adv_terms(pred_real, pred_fake) ->
    (real, fake), and sets fm_layer_weight and regenerate_for_D (SPADE draws the fake for the D step anew
    after the G step; pix2pixHD reuses the G step's fake).
    """

    NAME = "translation"
    FORMAT = "ganaug-translation-v1"
    regenerate_for_D = False
    fm_layer_weight = 1.0

    def __init__(self, images, labels, masks, cfg, seed, device, log):
        import logging

        if masks is None:
            raise InputError(f"gans.{self.NAME}: translates label maps into images, but no masks were given")
        self.cfg = cfg
        self.cfg_key = f"gans.{self.NAME}"
        self.device = device = torch.device(device)
        self.precision = accel.resolve_precision(cfg["precision"], device, f"{self.cfg_key}.precision")
        # channels_last: the layout cuDNN's convolutions are fastest in (CPU keeps the default layout)
        self.memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        self.log = log or logging.getLogger("ganaug")
        self.B = cfg["batch"]
        self.images, self.labels = real_data(images, labels, device)
        self.masks = torch.from_numpy(np.ascontiguousarray(masks)).to(device)    # uint8 NHW, once
        self.N = len(images)
        self.G, self.D = self.build(cfg, seed % (2 ** 31 - 2))
        self.G.to(device, memory_format=self.memory_format).train()
        self.D.to(device, memory_format=self.memory_format).train()
        self.G_opt, self.D_opt = self.make_optimisers()
        self.vgg, self.vgg_sha256 = make_vgg_loss(cfg, self.cfg_key, self.log, device)
        if self.vgg is not None:
            self.vgg.to(memory_format=self.memory_format)
        self.gen = torch.Generator(device=device).manual_seed(seed_from(seed, self.NAME, "train"))
        self.sampler = RealSampler(self.N, seed_from(seed, self.NAME, "data"), device)
        self.dist = distributed.context()  # several processes: every draw for the global batch
        self.cur_nimg = 0
        self.step = 0
        self.seconds = 0.0
        self.reset_stats()

    # ------------------------------------------------------------------------- subclass interface
    def build(self, cfg, seed):  # pragma: no cover - abstract
        raise NotImplementedError

    def make_optimisers(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def arch(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_lrs(self) -> None:
        pass

    def g_adv_loss(self, pred_fake):  # pragma: no cover - abstract
        raise NotImplementedError

    def d_adv_terms(self, pred_real, pred_fake):  # pragma: no cover - abstract
        """(real term, fake term) of the D loss."""
        raise NotImplementedError

    def extra_state(self) -> dict:
        return {}

    def describe_extra(self) -> str:
        return ""

    # ------------------------------------------------------------------------------ bookkeeping
    STAT_KEYS = ("loss_G", "loss_D", "loss_G_gan", "loss_G_feat", "loss_G_vgg", "loss_D_real", "loss_D_fake",
                 "real_score", "fake_score")

    def reset_stats(self):
        self.stats = accel.DeviceStats()  # summed on the device; metrics() reads them (one host sync)

    def add_stat(self, key, value):
        self.stats.add(key, value)

    def metrics(self):
        means = self.stats.means()
        out = {k: means.get(k) for k in self.STAT_KEYS}
        out["lr_G"] = self.G_opt.param_groups[0]["lr"]
        out["lr_D"] = self.D_opt.param_groups[0]["lr"]
        return out

    def describe(self) -> str:
        extra = self.describe_extra()
        return (f"G {count_params(self.G)} / D {count_params(self.D)} params, "
                f"VGG loss {'on' if self.vgg is not None else 'off'}" + (f", {extra}" if extra else ""))

    def state_dict(self):
        G = self.G.state_dict()
        return dict(
            format=self.FORMAT, cfg=plain(self.cfg), arch=self.arch(), num_classes=self.cfg["num_classes"],
            G=G, G_ema=G,  # no EMA in these GANs: the generator is stored under both names
            D=self.D.state_dict(), G_opt=self.G_opt.state_dict(), D_opt=self.D_opt.state_dict(),
            images_seen=self.cur_nimg, kimg=self.cur_nimg / 1000, step=self.step, seconds=self.seconds,
            vgg=dict(on=self.vgg is not None, sha256=self.vgg_sha256),
            **rng_state(self.gen, self.sampler), **self.extra_state(),
        )

    def load_state_dict(self, s):
        vgg = s.get("vgg") or {}
        on = self.vgg is not None
        if bool(vgg.get("on")) != on or (on and vgg.get("sha256") != self.vgg_sha256):
            was = f"on (weights sha256 {vgg.get('sha256')})" if vgg.get("on") else "off"
            now = f"on (weights sha256 {self.vgg_sha256})" if on else "off"
            raise InputError(f"{self.cfg_key}.vgg_weights: the run was trained with the VGG loss {was}, "
                             f"now it is {now}; restore the weights or delete the snapshots to start over")
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        # deep copies: Optimizer.load_state_dict keeps the given tensors (no copy on the same device)
        self.G_opt.load_state_dict(copy.deepcopy(s["G_opt"]))
        self.D_opt.load_state_dict(copy.deepcopy(s["D_opt"]))
        self.cur_nimg, self.step, self.seconds = int(s["images_seen"]), int(s["step"]), float(s["seconds"])
        load_rng_state(s, self.gen, self.sampler)
        self.set_lrs()

    # ---------------------------------------------------------------------------------- batches
    def real_batch(self):
        """(images float NCHW in [-1, 1], label maps long N x R x R, classes); image and map x-flipped
        together."""
        idx, flip = self.sampler.next(self.B)
        idx, flip = self.dist.shard(idx), self.dist.shard(flip)
        flip = flip if self.cfg["mirror"] else None
        m = self.masks[idx].long()
        if flip is not None:
            m = torch.where(flip.reshape(-1, 1, 1), m.flip(2), m)
        return real_images(self.images, idx, flip), m, self.labels[idx]

    def draw_z(self, n):
        """Latents of n fakes (n: the global batch; this process's rows of it), None without z."""
        z_dim = getattr(self.G, "z_dim", 0)
        if not z_dim:
            return None
        return self.dist.randn((n, z_dim), self.gen, self.device)

    # ------------------------------------------------------------------------------------- step
    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """x in the networks' memory format on CUDA (channels_last); on CPU x as it is."""
        return x.contiguous(memory_format=self.memory_format) if self.device.type == "cuda" else x

    def train_step(self):
        cfg = self.cfg
        G, D = self.G, self.D
        self.set_lrs()
        real, maps, _ = self.real_batch()  # the class is carried, not used: the map fixes the image
        real = self.layout(real)
        seg = self.layout(encode_label_map(maps))
        z = self.draw_z(self.B)
        autocast = accel.autocast(self.device, self.precision)

        # G: adversarial + feature matching (+ VGG)
        G.requires_grad_(True)
        D.requires_grad_(False)
        self.G_opt.zero_grad(set_to_none=True)
        with autocast:
            fake = G(seg, z)
            pred_fake = float_outputs(D(torch.cat([seg, fake], dim=1)))
        # D(real) once per step, with D's graph: detached for the feature matching here, the real term
        # of the D step below (only G's optimiser steps in between, D is the same network)
        D.requires_grad_(True)
        with autocast:
            pred_real = float_outputs(D(torch.cat([seg, real], dim=1)))
        D.requires_grad_(False)
        loss_gan = self.g_adv_loss(pred_fake)
        loss_feat = feature_matching_loss(pred_fake, pred_real, self.fm_layer_weight) * cfg["lambda_feat"]
        loss_G = loss_gan + loss_feat
        if self.vgg is not None:
            with autocast:
                loss_vgg = self.vgg(fake, real).float() * cfg["lambda_vgg"]
            loss_G = loss_G + loss_vgg
            self.add_stat("loss_G_vgg", loss_vgg)
        loss_G.backward()
        self.dist.reduce_grads(G)
        self.G_opt.step()
        self.add_stat("loss_G", loss_G)
        self.add_stat("loss_G_gan", loss_gan)
        self.add_stat("loss_G_feat", loss_feat)

        # D
        G.requires_grad_(False)
        D.requires_grad_(True)
        self.D_opt.zero_grad(set_to_none=True)
        if self.regenerate_for_D:
            with torch.no_grad(), autocast:
                fake = G(seg, z)
        fake = fake.detach()
        with autocast:
            pred_fake = float_outputs(D(torch.cat([seg, fake], dim=1)))
        loss_D_real, loss_D_fake = self.d_adv_terms(pred_real, pred_fake)
        loss_D = loss_D_real + loss_D_fake
        loss_D.backward()
        self.dist.reduce_grads(D)
        self.D_opt.step()
        self.add_stat("loss_D", loss_D)
        self.add_stat("loss_D_real", loss_D_real)
        self.add_stat("loss_D_fake", loss_D_fake)
        self.add_stat("real_score", torch.stack([p[-1].detach().mean() for p in pred_real]).mean())
        self.add_stat("fake_score", torch.stack([p[-1].detach().mean() for p in pred_fake]).mean())

        self.cur_nimg += self.B
        self.step += 1
