"""The diffusion model's settings (ganaug.gans.diffusion): defaults and their checks, without torch."""

from __future__ import annotations

import math

import numpy as np

from ganaug.io import InputError

from . import as_betas, as_bool, check_keys, check_precision

CFG_KEY = "gans.diffusion"
DEFAULTS = dict(
    resolution=32,
    model_channels=32, channel_mult=[1, 2, 2], num_blocks=1, attn_resolutions=[], dropout=0.0,
    num_classes=None,          # None: max(label) + 1 (at least 2), set by the training loop
    batch=16, lr=0.001,        # EDM CIFAR-10: batch 512, lr 10e-4 (train.py)
    betas=[0.9, 0.999],        # train.py
    lr_rampup_kimg=0.5,        # EDM: 10000 (training_loop.py)
    ema_halflife_kimg=0.5,     # EDM CIFAR-10: 500 (train.py --ema 0.5 Mimg)
    ema_rampup_ratio=0.05,     # training_loop.py; null: no ramp-up
    sigma_data=0.5, p_mean=-1.2, p_std=1.2,  # Table 1; loss.py EDMLoss
    p_uncond=0.0,              # classifier-free guidance: probability of dropping the class in training
    num_steps=18, sigma_min=0.002, sigma_max=80.0, rho=7.0,  # Table 1; generate.py edm_sampler
    guidance=1.0,              # classifier-free guidance weight at sampling (1: none)
    mirror=True,               # random x-flips of the reals
    precision="auto",          # ganaug.gans.accel: bf16 on CUDA, fp32 elsewhere
    total_kimg=12.0, snapshot_kimg=2.0,
    num_threads=None,          # torch.set_num_threads (not part of the science)
)


def _number(out, k, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, integer=False):
    v = out[k]
    ok = not isinstance(v, (bool, np.bool_)) and isinstance(v, (int, float, np.integer, np.floating)) \
        and math.isfinite(v) and (not integer or int(v) == v)
    if ok:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        kind = "an integer" if integer else "a number"
        raise InputError(f"{CFG_KEY}.{k}: must be {kind} in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                         f"{')' if hi_open else ']'}, got {v!r}")
    out[k] = int(v) if integer else float(v)


def _int_list(out, k, lo, allow_empty=False):
    v = out[k]
    if not isinstance(v, (list, tuple)) or (not v and not allow_empty) or not all(
            not isinstance(x, (bool, np.bool_)) and isinstance(x, (int, np.integer)) and x >= lo for x in v):
        raise InputError(f"{CFG_KEY}.{k}: must be a {'' if allow_empty else 'non-empty '}list of integers "
                         f">= {lo}, got {v!r}")
    out[k] = [int(x) for x in v]


def resolve_config(cfg: dict) -> dict:
    """DEFAULTS updated by cfg; unknown keys and bad values raise InputError naming gans.diffusion.<key>."""
    out = check_keys(cfg, DEFAULTS, CFG_KEY)
    for k in ("resolution", "model_channels", "num_blocks", "batch", "num_steps"):
        _number(out, k, lo=1, integer=True)
    for k in ("num_classes", "num_threads"):
        if out[k] is not None:
            _number(out, k, lo=1, integer=True)
    for k in ("lr", "sigma_data", "p_std", "sigma_min", "rho", "total_kimg", "snapshot_kimg"):
        _number(out, k, lo=0, lo_open=True)
    for k in ("lr_rampup_kimg", "ema_halflife_kimg", "guidance"):
        _number(out, k, lo=0)
    _number(out, "p_mean")
    _number(out, "dropout", 0, 1, hi_open=True)
    _number(out, "p_uncond", 0, 1, hi_open=True)
    if out["ema_rampup_ratio"] is not None:
        _number(out, "ema_rampup_ratio", lo=0, lo_open=True)
    _number(out, "sigma_max", lo=out["sigma_min"], lo_open=True)
    if out["num_steps"] < 2:
        raise InputError(f"{CFG_KEY}.num_steps: must be at least 2, got {out['num_steps']}")
    if out["guidance"] != 1 and out["p_uncond"] == 0:
        raise InputError(f"{CFG_KEY}.guidance: {out['guidance']:g} needs a model trained without classes part "
                         "of the time (p_uncond > 0); use guidance 1 or set p_uncond")
    if out["model_channels"] % 4:
        raise InputError(f"{CFG_KEY}.model_channels: must be a multiple of 4, got {out['model_channels']}")
    _int_list(out, "channel_mult", 1)
    _int_list(out, "attn_resolutions", 1, allow_empty=True)
    r, levels = out["resolution"], len(out["channel_mult"])
    if r & (r - 1) or r < 2 ** (levels + 1):
        raise InputError(f"{CFG_KEY}.resolution: must be a power of two >= {2 ** (levels + 1)} (4 px at the "
                         f"lowest of the {levels} resolutions of channel_mult), got {r}")
    unet_res = [r >> i for i in range(levels)]
    stray = [a for a in out["attn_resolutions"] if a not in unet_res]
    if stray:
        raise InputError(f"{CFG_KEY}.attn_resolutions: {stray[0]} is not one of the U-Net's resolutions {unet_res}")
    as_betas(out, "betas", CFG_KEY)
    as_bool(out, "mirror", CFG_KEY)
    check_precision(out["precision"], f"{CFG_KEY}.precision")
    return out
