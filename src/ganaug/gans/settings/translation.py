"""The settings pix2pixHD and SPADE share (ganaug.gans.translation): their common defaults and
checks, without torch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ganaug.io import InputError

from . import as_betas, as_bool, check_precision

# the keys at the end of both GANs' DEFAULTS (validated, with resolution, ngf, ndf, num_D, n_layers_D,
# batch and betas, by check_common)
COMMON_DEFAULTS = dict(
    lambda_feat=10.0, lambda_vgg=10.0,
    vgg_weights=None,          # local torchvision vgg19 state dict; else vgg_url (+ vgg_sha256),
                               # downloaded into cache_dir; neither: no VGG loss
    vgg_url=None, vgg_sha256=None, cache_dir="results/cache/weights",
    mirror=True,               # random x-flips of image and label map together
    total_kimg=10.0, snapshot_kimg=2.0,
    num_classes=None,          # None: max(label) + 1 (at least 2); carried, not used by the networks
    num_threads=None,
    precision="auto",          # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32 / bf16 (ganaug.gans.accel)
)


def as_int(out: dict, k: str, cfg_key: str, minimum: int = 1, optional: bool = False) -> None:
    v = out[k]
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or int(v) != v \
            or int(v) < minimum:
        null = " or null" if optional else ""
        raise InputError(f"{cfg_key}.{k}: must be an integer >= {minimum}{null}, got {v!r}")
    out[k] = int(v)


def as_float(out: dict, k: str, cfg_key: str, positive: bool = False) -> None:
    v = out[k]
    number = not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))
    if not number or not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise InputError(f"{cfg_key}.{k}: must be a number {'> 0' if positive else '>= 0'}, got {v!r}")
    out[k] = float(v)


def as_optional_str(out: dict, k: str, cfg_key: str) -> None:
    v = out[k]
    if v is not None and not isinstance(v, (str, Path)):
        raise InputError(f"{cfg_key}.{k}: must be a string or null, got {v!r}")
    out[k] = str(v) if v not in (None, "") else None


def check_common(out: dict, cfg_key: str, min_resolution: int = 16) -> dict:
    """Validate the keys both translation GANs have (in place); returns out."""
    as_int(out, "resolution", cfg_key, minimum=1)
    r = out["resolution"]
    if r < min_resolution or r & (r - 1):
        raise InputError(f"{cfg_key}.resolution: must be a power of two >= {min_resolution}, got {r}")
    for k in ("ngf", "ndf", "num_D", "n_layers_D", "batch"):
        as_int(out, k, cfg_key)
    if r >> (out["num_D"] - 1) < 8:
        raise InputError(f"{cfg_key}.num_D: {out['num_D']} scales would shrink the {r} px input below 8 px")
    as_int(out, "num_classes", cfg_key, optional=True)
    as_int(out, "num_threads", cfg_key, optional=True)
    for k in ("lambda_feat", "lambda_vgg", "total_kimg", "snapshot_kimg"):
        as_float(out, k, cfg_key, positive=k in ("total_kimg", "snapshot_kimg"))
    as_betas(out, "betas", cfg_key)
    as_bool(out, "mirror", cfg_key)
    for k in ("vgg_weights", "vgg_url", "vgg_sha256"):
        as_optional_str(out, k, cfg_key)
    if not isinstance(out["cache_dir"], (str, Path)) or not str(out["cache_dir"]):
        raise InputError(f"{cfg_key}.cache_dir: must be a directory path, got {out['cache_dir']!r}")
    out["cache_dir"] = str(out["cache_dir"])
    check_precision(out["precision"], f"{cfg_key}.precision")
    return out
