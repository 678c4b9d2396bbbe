"""PGAN's settings (ganaug.gans.pgan): defaults and their checks, without torch."""

from __future__ import annotations

import math

import numpy as np

from ganaug.io import InputError

from . import check_keys, check_precision

CFG_KEY = "gans.pgan"
DEFAULTS = dict(
    resolution=32, start_resolution=4, z_dim=128, channel_base=2048, channel_max=64,
    num_classes=None,          # None: max(label) + 1 (at least 2), set by the training loop
    batch=16, lr=0.001, betas=[0.0, 0.99],
    gp_lambda=10.0, drift=0.001, ac_weight=1.0, ema_beta=0.999, mbstd_group=4,
    stable_kimg=1.0, transition_kimg=1.0,   # per resolution (the first level only has a stable phase)
    mirror=True,               # random x-flips of the reals
    total_kimg=12.0, snapshot_kimg=2.0,
    num_threads=None,          # torch.set_num_threads (not part of the science)
    precision="auto",          # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32 / bf16 (ganaug.gans.accel)
)


def resolve_config(cfg: dict) -> dict:
    """DEFAULTS updated by cfg; unknown keys and bad values raise InputError naming the key."""
    out = check_keys(cfg, DEFAULTS, CFG_KEY)

    def positive_int(k, v):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or int(v) != v or int(v) < 1:
            raise InputError(f"{CFG_KEY}.{k}: must be a positive integer, got {v!r}")
        return int(v)

    def number(k, lo=0.0, hi=math.inf, lo_open=False, hi_open=False):
        try:
            v = float(out[k])
        except (TypeError, ValueError):
            raise InputError(f"{CFG_KEY}.{k}: must be a number, got {out[k]!r}") from None
        if not (v > lo if lo_open else v >= lo) or not (v < hi if hi_open else v <= hi):
            raise InputError(f"{CFG_KEY}.{k}: must be in {'(' if lo_open else '['}{lo}, {hi}"
                             f"{')' if hi_open else ']'}, got {out[k]!r}")
        out[k] = v

    for k in ("resolution", "start_resolution", "z_dim", "channel_base", "channel_max", "batch",
              "mbstd_group"):
        out[k] = positive_int(k, out[k])
    for k in ("num_classes", "num_threads"):
        if out[k] is not None:
            out[k] = positive_int(k, out[k])
    for k in ("resolution", "start_resolution"):
        r = out[k]
        if r < 4 or r & (r - 1):
            raise InputError(f"{CFG_KEY}.{k}: must be a power of two >= 4, got {r}")
    if out["start_resolution"] > out["resolution"]:
        raise InputError(f"{CFG_KEY}.start_resolution: {out['start_resolution']} exceeds resolution "
                         f"{out['resolution']}")
    number("lr", lo_open=True)
    for k in ("gp_lambda", "drift", "ac_weight", "stable_kimg", "transition_kimg"):
        number(k)
    number("ema_beta", 0.0, 1.0, hi_open=True)
    number("total_kimg", lo_open=True)
    number("snapshot_kimg", lo_open=True)
    betas = out["betas"]
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise InputError(f"{CFG_KEY}.betas: must be two numbers in [0, 1), got {betas!r}")
    try:
        out["betas"] = [float(b) for b in betas]
    except (TypeError, ValueError):
        raise InputError(f"{CFG_KEY}.betas: must be two numbers in [0, 1), got {betas!r}") from None
    if not all(0 <= b < 1 for b in out["betas"]):
        raise InputError(f"{CFG_KEY}.betas: must be two numbers in [0, 1), got {betas!r}")
    if not isinstance(out["mirror"], (bool, np.bool_)):
        raise InputError(f"{CFG_KEY}.mirror: must be true or false, got {out['mirror']!r}")
    out["mirror"] = bool(out["mirror"])
    check_precision(out["precision"], f"{CFG_KEY}.precision")  # the device is checked by the Trainer
    return out
