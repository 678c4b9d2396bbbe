"""Batched on-device image augmentation for classifier training and test-time augmentation (TTA).

Defaults (``DEFAULT_AUGMENT``) follow the paper's text (Sec. 3.2): horizontal + vertical flips,
resized crops of 75-100% of the area (RandomResizedCrop, ratio 3/4-4/3), rotations of -45 to 45 deg
and hue changes of -10 to 10% (of the hue circle); no brightness, contrast or saturation change. The
authors' code (gan-aug-analysis, train_comet_csv.py lines 203-224) also applied
ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.05): keys ``brightness``, ``contrast``,
``saturation`` and ``hue`` reproduce it (config/README.md). Here every geometric op of a sample is
composed into ONE 2x3 affine matrix and a whole batch is warped by a single ``affine_grid`` +
``grid_sample`` (bilinear; the resize to the output size happens in the same sampling step). Colour
jitter follows torchvision's semantics (fixed order brightness, contrast, saturation, hue; clamp to
[0, 1] after each).

Padding: ``zeros`` by default. It matches the study (torchvision's RandomRotation fills uncovered
corners with black), and dermoscopic images commonly have dark corners anyway. ``reflection`` and
``border`` are available (config key ``padding``) for data where black corners would be a shortcut.

Random parameters come from N_DRAWS uniforms per sample, drawn on the CPU from an explicit
``torch.Generator`` (``sample_params``) or computed from per-sample integer keys (``keyed_uniforms``,
counter-based: the draws of a sample depend only on its key), so augmentations are reproducible,
independent of the device, and, for TTA, the same for an (image, replica) pair whatever the batching.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io import InputError

DEFAULT_AUGMENT = {
    "hflip": True,
    "vflip": True,
    "scale": [0.75, 1.0],
    "ratio": [3 / 4, 4 / 3],
    "rotation": 45.0,
    "brightness": 0.0,  # the authors' code: 0.4 (the paper's text: none)
    "contrast": 0.0,  # idem
    "saturation": 0.0,  # idem
    "hue": 0.1,  # the paper's text: -10..10%; the authors' code: 0.05 (ColorJitter(hue=0.5 * 0.1))
    "padding": "zeros",
}

NO_AUGMENT = {
    "hflip": False, "vflip": False, "scale": [1.0, 1.0], "ratio": [1.0, 1.0], "rotation": 0.0,
    "brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "padding": "zeros",
}

_CROP_TRIES = 10
# columns of the per-sample uniform draws
_C_HFLIP, _C_VFLIP, _C_ROT, _C_POSX, _C_POSY, _C_BRI, _C_CON, _C_SAT, _C_HUE = range(9)
_C_CROP = 9  # then 2 * _CROP_TRIES columns: (scale, log-ratio) per try
N_DRAWS = _C_CROP + 2 * _CROP_TRIES

_GRAY = (0.2989, 0.587, 0.114)  # as torchvision (tensor path)


def augment_config(cfg=None, key: str = "classifier.augment") -> dict:
    """Complete an augmentation config with the defaults (the paper's text) and validate it.

    None -> defaults; False -> no augmentation; a dict overrides defaults.
    """
    if cfg is None or cfg is True:
        return dict(DEFAULT_AUGMENT)
    if cfg is False:
        return dict(NO_AUGMENT)
    if not isinstance(cfg, dict):
        raise InputError(f"{key}: expected a mapping, true/false or null, got {cfg!r}")
    unknown = sorted(set(cfg) - set(DEFAULT_AUGMENT))
    if unknown:
        raise InputError(f"{key}: unknown key(s) {unknown}; known: {sorted(DEFAULT_AUGMENT)}")
    out = dict(DEFAULT_AUGMENT)
    out.update(cfg)
    for k in ("hflip", "vflip"):
        out[k] = bool(out[k])
    for k in ("scale", "ratio"):
        v = out[k]
        if not (isinstance(v, (list, tuple)) and len(v) == 2):
            raise InputError(f"{key}.{k}: expected [low, high], got {v!r}")
        lo, hi = float(v[0]), float(v[1])
        if not (0 < lo <= hi) or (k == "scale" and hi > 1):
            raise InputError(f"{key}.{k}: need 0 < low <= high{' <= 1' if k == 'scale' else ''}, got {v!r}")
        out[k] = [lo, hi]
    for k in ("rotation", "brightness", "contrast", "saturation", "hue"):
        out[k] = float(out[k])
        if out[k] < 0:
            raise InputError(f"{key}.{k}: must be >= 0, got {out[k]}")
    if out["hue"] > 0.5:
        raise InputError(f"{key}.hue: must be <= 0.5, got {out['hue']}")
    if out["padding"] not in ("zeros", "reflection", "border"):
        raise InputError(f"{key}.padding: one of zeros, reflection, border; got {out['padding']!r}")
    return out


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (or float NHWC in [0,1]) -> float32 NCHW in [0,1] (a channels-last view, no copy
    of layout work)."""
    if x.dim() != 4 or x.shape[-1] != 3:
        raise InputError(f"images must be N x H x W x 3, got shape {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x.float()


_NORM_CONSTANTS: dict = {}


def _norm_constants(mean, std, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """mean and std as (1, 3, 1, 1) tensors on `device`, made once per (values, dtype, device): a new
    small tensor on a GPU every batch would be a host-to-device copy per step."""
    key = (tuple(float(v) for v in mean), tuple(float(v) for v in std), dtype, str(device))
    if key not in _NORM_CONSTANTS:
        _NORM_CONSTANTS[key] = (torch.tensor(key[0], dtype=dtype, device=device).view(1, 3, 1, 1),
                                torch.tensor(key[1], dtype=dtype, device=device).view(1, 3, 1, 1))
    return _NORM_CONSTANTS[key]


def normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    m, s = _norm_constants(mean, std, x.dtype, x.device)
    return (x - m) / s


def normalise_only(x: torch.Tensor, mean, std, out_size: int | None = None) -> torch.Tensor:
    """Evaluation without augmentation: uint8 NHWC -> normalised float NCHW, resized (bilinear,
    antialiased) only when the images are not already out_size x out_size."""
    x = to_unit_float(x)
    if out_size is not None and tuple(x.shape[-2:]) != (out_size, out_size):
        x = F.interpolate(x, size=(out_size, out_size), mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0, 1)
    return normalise(x, mean, std)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` (fraction of the colour circle, per sample) in HSV space.

    RGB -> (h, s, v), h += shift, then back with the closed form c_n = v - v*s*clamp(min(k, 4-k), 0, 1),
    k = (n + 6h) mod 6 for n = 5, 3, 1 (R, G, B): no per-sector branching.
    """
    # elementwise ops on contiguous channel planes (reductions over dim 1 and `where` are slow on CPU)
    x = x.contiguous()
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)  # = v * s
    inv = delta.clamp_min(1e-12).reciprocal_()  # grey pixels: numerator 0 -> hue 0, as torchvision
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~(is_r | is_g)
    # hue in sextants: max r -> (g-b)/d, max g -> (b-r)/d + 2, max b -> (r-g)/d + 4
    h6 = ((g - b) * is_r + (b - r) * is_g + (r - g) * is_b).mul_(inv)
    h6 = torch.remainder(h6.add_(2.0 * is_g + 4.0 * is_b).add_(6.0 * shift.view(-1, 1, 1)), 6.0)
    out = torch.empty_like(x)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        k = torch.remainder(h6 + n, 6.0)
        torch.addcmul(maxc, delta, torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0), value=-1.0, out=out[:, c])
    return out


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a counter-based hash."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def keyed_uniforms(keys, n_draws: int = N_DRAWS) -> torch.Tensor:
    """Uniforms in [0, 1) (len(keys), n_draws), float64, that depend only on each sample's 64-bit key:
    the same key gives the same row whatever the other keys, the batch or the order."""
    k = np.asarray(keys, dtype=np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        ctr = mix64(k) + np.arange(n_draws, dtype=np.uint64)[None, :] * np.uint64(0xD1B54A32D192ED03)
    bits = mix64(ctr) >> np.uint64(11)  # 53 random bits
    return torch.from_numpy(bits.astype(np.float64) * (1.0 / (1 << 53)))


class BatchAugment(nn.Module):
    """Per-sample random augmentation of a batch, on the batch's device.

    ``forward(x, generator)``: x is uint8 NHWC (or float NHWC in [0,1]); returns float NCHW at
    ``out_size``, normalised with mean/std. Equivalent to ``apply(x, sample_params(len(x), generator))``.
    """

    def __init__(self, cfg: dict | None, mean, std, out_size: int):
        super().__init__()
        self.cfg = augment_config(cfg)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.out_size = int(out_size)
        c = self.cfg
        self.geometric = (c["hflip"] or c["vflip"] or c["rotation"] > 0 or c["scale"] != [1.0, 1.0]
                          or c["ratio"] != [1.0, 1.0])

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> dict:
        """Draw parameters for n samples (on the CPU): theta (n,2,3) in normalised coordinates for a
        square image, and colour factors. Always N_DRAWS uniforms per sample."""
        return self.params_from_uniforms(torch.rand(n, N_DRAWS, generator=generator, dtype=torch.float64))

    def params_from_uniforms(self, u: torch.Tensor) -> dict:
        """Parameters from given uniforms u (n, N_DRAWS) in [0, 1), float64 (see sample_params)."""
        c = self.cfg
        if u.dim() != 2 or u.shape[1] != N_DRAWS:
            raise InputError(f"augmentation draws: expected shape (n, {N_DRAWS}), got {tuple(u.shape)}")
        u = u.to(torch.float64)
        n = u.shape[0]
        # RandomResizedCrop: side fractions of the crop; first valid of _CROP_TRIES tries, else whole
        lo, hi = c["scale"]
        area = lo + (hi - lo) * u[:, _C_CROP::2]
        lr0, lr1 = math.log(c["ratio"][0]), math.log(c["ratio"][1])
        ratio = torch.exp(lr0 + (lr1 - lr0) * u[:, _C_CROP + 1::2])
        fw, fh = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
        valid = (fw <= 1.0) & (fh <= 1.0)
        first = torch.argmax(valid.to(torch.int8), dim=1, keepdim=True)
        anyvalid = valid.any(dim=1)
        fw = torch.where(anyvalid, fw.gather(1, first).squeeze(1), torch.ones(n, dtype=torch.float64))
        fh = torch.where(anyvalid, fh.gather(1, first).squeeze(1), torch.ones(n, dtype=torch.float64))
        cx = (2 * u[:, _C_POSX] - 1) * (1 - fw)
        cy = (2 * u[:, _C_POSY] - 1) * (1 - fh)
        angle = math.radians(c["rotation"]) * (2 * u[:, _C_ROT] - 1)
        fx = torch.where((u[:, _C_HFLIP] < 0.5) & c["hflip"], -1.0, 1.0).double()
        fy = torch.where((u[:, _C_VFLIP] < 0.5) & c["vflip"], -1.0, 1.0).double()
        # output coords o -> crop coords S o + t -> source coords Flip * Rot(angle) * (S o + t)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.empty(n, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = fx * cos * fw
        theta[:, 0, 1] = -fx * sin * fh
        theta[:, 0, 2] = fx * (cos * cx - sin * cy)
        theta[:, 1, 0] = fy * sin * fw
        theta[:, 1, 1] = fy * cos * fh
        theta[:, 1, 2] = fy * (sin * cx + cos * cy)

        def factor(col, amount):
            return 1.0 + amount * (2 * u[:, col] - 1) if amount > 0 else torch.ones(n, dtype=torch.float64)

        return {
            "theta": theta.float(),
            "brightness": factor(_C_BRI, c["brightness"]).clamp_min(0).float(),
            "contrast": factor(_C_CON, c["contrast"]).clamp_min(0).float(),
            "saturation": factor(_C_SAT, c["saturation"]).clamp_min(0).float(),
            "hue": (c["hue"] * (2 * u[:, _C_HUE] - 1)).float(),
        }

    @staticmethod
    def index_params(params: dict, idx) -> dict:
        return {k: v[idx] for k, v in params.items()}

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """Augment batch x with pre-drawn params (one row per sample)."""
        x = to_unit_float(x)
        dev = x.device
        n = x.shape[0]
        if self.geometric:
            theta = params["theta"].to(dev, non_blocking=True)
            h, w = x.shape[-2:]
            if h != w:  # rotation is drawn for square images: correct for the aspect ratio
                a = torch.tensor([[w / 2, 0.0], [0.0, h / 2]], device=dev)
                ainv = torch.linalg.inv(a)
                m = ainv @ theta[:, :, :2] @ a
                theta = torch.cat([m, (ainv @ theta[:, :, 2:])], dim=2)
            grid = F.affine_grid(theta, [n, 3, self.out_size, self.out_size], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.cfg["padding"], align_corners=False)
        elif tuple(x.shape[-2:]) != (self.out_size, self.out_size):
            x = F.interpolate(x, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False,
                              antialias=True).clamp_(0, 1)
        c = self.cfg
        if c["brightness"] > 0:
            x = (x * params["brightness"].to(dev).view(-1, 1, 1, 1)).clamp_(0, 1)
        if c["contrast"] > 0:
            f = params["contrast"].to(dev).view(-1, 1, 1, 1)
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            x = (f * x + (1 - f) * mean).clamp_(0, 1)
        if c["saturation"] > 0:
            f = params["saturation"].to(dev).view(-1, 1, 1, 1)
            x = (f * x + (1 - f) * _gray(x)).clamp_(0, 1)
        if c["hue"] > 0:
            x = _shift_hue(x, params["hue"].to(dev))
        return normalise(x, self.mean, self.std)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample_params(x.shape[0], generator))

    def normalise_only(self, x: torch.Tensor) -> torch.Tensor:
        return normalise_only(x, self.mean, self.std, self.out_size)
