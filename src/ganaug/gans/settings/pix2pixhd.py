"""pix2pixHD's settings (ganaug.gans.pix2pixhd): defaults and their checks, without torch."""

from __future__ import annotations

import math

from ganaug.io import InputError

from . import as_bool, check_keys
from .translation import COMMON_DEFAULTS, as_float, as_int, check_common

CFG_KEY = "gans.pix2pixhd"

DEFAULTS = dict(
    resolution=32,
    ngf=32,                    # paper 64
    n_downsample=None,         # None: min(4, log2(R_global) - 3) (paper: 4 at 256+ px; bottleneck >= 8 px)
    n_blocks=3,                # paper 9
    local_enhancer=False,      # G1 at half resolution inside G2 at full resolution
    n_blocks_local=3,          # paper 3
    ndf=16,                    # paper 64
    num_D=2,
    n_layers_D=3,
    batch=8,
    lr=0.0002, betas=[0.5, 0.999],
    decay_kimg=5.0,            # linear decay to 0 over the last decay_kimg of total_kimg (0: constant)
    **COMMON_DEFAULTS,     # loss weights, VGG weights, mirroring, run length: see translation.py
)


def auto_downsample(resolution: int, local_enhancer: bool) -> int:
    rg = resolution // 2 if local_enhancer else resolution
    return max(0, min(4, int(math.log2(rg)) - 3))


def resolve_config(cfg: dict) -> dict:
    """DEFAULTS updated by cfg; unknown keys and bad values raise InputError naming the key."""
    out = check_keys(cfg, DEFAULTS, CFG_KEY)
    as_bool(out, "local_enhancer", CFG_KEY)
    check_common(out, CFG_KEY, min_resolution=16)
    as_int(out, "n_blocks", CFG_KEY, minimum=0)
    as_int(out, "n_blocks_local", CFG_KEY, minimum=0)
    as_int(out, "n_downsample", CFG_KEY, minimum=0, optional=True)
    as_float(out, "lr", CFG_KEY, positive=True)
    as_float(out, "decay_kimg", CFG_KEY)
    r = out["resolution"]
    if out["n_downsample"] is None:
        out["n_downsample"] = auto_downsample(r, out["local_enhancer"])
    rg = r // 2 if out["local_enhancer"] else r
    if rg >> out["n_downsample"] < 4:
        raise InputError(f"{CFG_KEY}.n_downsample: {out['n_downsample']} downsamples would shrink the "
                         f"{rg} px input of the global generator below 4 px")
    return out
