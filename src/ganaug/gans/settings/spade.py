"""SPADE's settings (ganaug.gans.spade): defaults and their checks, without torch."""

from __future__ import annotations

import math

from ganaug.io import InputError

from . import check_keys
from .translation import COMMON_DEFAULTS, as_float, as_int, check_common

CFG_KEY = "gans.spade"

DEFAULTS = dict(
    resolution=32,
    ngf=16,                    # paper 64 (widest layers 16 * ngf)
    n_up=None,                 # None: min(5, log2(R) - 2) upsamplings (paper 5: start at 1/32)
    spade_hidden=64,           # paper 128
    z_dim=0,                   # 0: like the reference without VAE; > 0: linear z -> initial features
    ndf=16,                    # paper 64
    num_D=2,
    n_layers_D=4,
    batch=8,
    lr_G=0.0001, lr_D=0.0004, betas=[0.0, 0.9],
    **COMMON_DEFAULTS,     # loss weights, VGG weights, mirroring, run length: see translation.py
)


def resolve_config(cfg: dict) -> dict:
    """DEFAULTS updated by cfg; unknown keys and bad values raise InputError naming the key."""
    out = check_keys(cfg, DEFAULTS, CFG_KEY)
    check_common(out, CFG_KEY, min_resolution=16)
    if out["n_layers_D"] < 2:
        raise InputError(f"{CFG_KEY}.n_layers_D: must be >= 2 (SPADE counts the stride-1 layer), "
                         f"got {out['n_layers_D']}")
    as_int(out, "spade_hidden", CFG_KEY)
    as_int(out, "z_dim", CFG_KEY, minimum=0)
    as_int(out, "n_up", CFG_KEY, minimum=1, optional=True)
    for k in ("lr_G", "lr_D"):
        as_float(out, k, CFG_KEY, positive=True)
    r = out["resolution"]
    if out["n_up"] is None:
        out["n_up"] = min(5, int(math.log2(r)) - 2)
    if r >> out["n_up"] < 1:
        raise InputError(f"{CFG_KEY}.n_up: {out['n_up']} upsamplings need a resolution >= "
                         f"{2 ** out['n_up']}, got {r}")
    return out
