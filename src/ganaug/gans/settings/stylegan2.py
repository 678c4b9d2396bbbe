"""StyleGAN2's settings (ganaug.gans.stylegan2): defaults and their checks, without torch."""

from __future__ import annotations

import math

import numpy as np

from ganaug.io import InputError

from . import RESAMPLE_IMPLS, check_keys, check_precision

CFG_KEY = "gans.stylegan2"

DEFAULTS = dict(
    resolution=32, z_dim=128, w_dim=128, mapping_layers=2, channel_base=4096, channel_max=64,
    num_classes=None,          # None: max(label) + 1 (at least 2)
    batch=16, lr=0.0025, betas=[0.0, 0.99],
    r1_gamma=0.05, r1_interval=16,
    pl_weight=0.0, pl_interval=4, pl_batch_shrink=2, pl_decay=0.01,
    style_mixing=0.9,
    ema_kimg=1.0, ema_rampup=0.05,
    ada=True, ada_target=0.6, ada_kimg=20.0, ada_interval=4,
    mirror=True,               # random x-flips of the reals (dataset mirroring)
    total_kimg=12.0, snapshot_kimg=2.0,
    num_threads=None,          # torch.set_num_threads (not part of the science)
    # speed only (the same function up to float rounding): see config/README.md
    precision="auto",          # auto (bf16 on CUDA, fp32 elsewhere) | fp32 | bf16 (CUDA only)
    channels_last=True,        # NHWC activations (faster convs on CPU and on tensor cores)
    resample="auto",           # FIR resampling kernels: auto | depthwise | native (ganaug.gans.layers)
    compile=False,             # torch.compile of the main G and D passes (not the R1 / path-length ones)
)


def resolve_config(cfg: dict) -> dict:
    """DEFAULTS updated by cfg; unknown keys and bad values raise InputError naming the key."""
    out = check_keys(cfg, DEFAULTS, CFG_KEY)

    def is_number(v):
        return not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating)) \
            and math.isfinite(v)

    for k in ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "batch",
              "r1_interval", "pl_interval", "pl_batch_shrink", "ada_interval", "num_classes", "num_threads"):
        if out[k] is None and k in ("num_classes", "num_threads"):
            continue
        if not is_number(out[k]) or int(out[k]) != out[k] or int(out[k]) < 1:
            raise InputError(f"{CFG_KEY}.{k}: must be a positive integer, got {out[k]!r}")
        out[k] = int(out[k])
    for k in ("lr", "r1_gamma", "pl_weight", "pl_decay", "style_mixing", "ema_kimg", "ada_target",
              "ada_kimg", "total_kimg", "snapshot_kimg"):
        if not is_number(out[k]) or out[k] < 0:
            raise InputError(f"{CFG_KEY}.{k}: must be a number >= 0, got {out[k]!r}")
        out[k] = float(out[k])
    if out["snapshot_kimg"] <= 0 or out["total_kimg"] <= 0:
        raise InputError(f"{CFG_KEY}.snapshot_kimg/total_kimg: must be > 0")
    for k in ("style_mixing", "ada_target"):
        if out[k] > 1:
            raise InputError(f"{CFG_KEY}.{k}: must be in [0, 1], got {out[k]!r}")
    betas = out["betas"]
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or \
            not all(is_number(b) and 0 <= b < 1 for b in betas):
        raise InputError(f"{CFG_KEY}.betas: must be two numbers in [0, 1), got {betas!r}")
    out["betas"] = [float(b) for b in betas]
    r = out["resolution"]
    if r < 4 or r & (r - 1):
        raise InputError(f"{CFG_KEY}.resolution: must be a power of two >= 4, got {r}")
    if out["ema_rampup"] is not None:  # null: no ramp-up (StyleGAN2); a number: StyleGAN2-ADA's ramp-up
        if not is_number(out["ema_rampup"]) or out["ema_rampup"] <= 0:
            raise InputError(f"{CFG_KEY}.ema_rampup: must be a number > 0 or null, got {out['ema_rampup']!r}")
        out["ema_rampup"] = float(out["ema_rampup"])
    check_precision(out["precision"], f"{CFG_KEY}.precision")  # the device is checked by the Trainer
    if out["resample"] not in RESAMPLE_IMPLS:
        raise InputError(f"{CFG_KEY}.resample: must be one of {', '.join(RESAMPLE_IMPLS)}, "
                         f"got {out['resample']!r}")
    for k in ("ada", "mirror", "channels_last", "compile"):
        if not isinstance(out[k], (bool, np.bool_)):
            raise InputError(f"{CFG_KEY}.{k}: must be true or false, got {out[k]!r}")
        out[k] = bool(out[k])
    return out
