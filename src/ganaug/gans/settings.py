"""Checks of a generator's settings shared by the generator modules' resolve_config: the config merged over
the module's defaults (unknown keys refused), flags, Adam betas, the precision key; each error names the
config key."""

from __future__ import annotations

import numpy as np

from ganaug.io import InputError

from .accel import check_precision

__all__ = ["as_betas", "as_bool", "check_keys", "check_precision"]


def check_keys(cfg: dict, defaults: dict, cfg_key: str) -> dict:
    """`defaults` updated by `cfg`; a key of `cfg` not in `defaults` raises InputError naming it."""
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise InputError(f"{cfg_key}.{unknown[0]}: unknown key (known: {', '.join(sorted(defaults))})")
    out = dict(defaults)
    out.update(cfg)
    return out


def as_bool(out: dict, k: str, cfg_key: str) -> None:
    if not isinstance(out[k], (bool, np.bool_)):
        raise InputError(f"{cfg_key}.{k}: must be true or false, got {out[k]!r}")
    out[k] = bool(out[k])


def as_betas(out: dict, k: str, cfg_key: str) -> None:
    v = out[k]
    if not isinstance(v, (list, tuple)) or len(v) != 2 or \
            not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v):
        raise InputError(f"{cfg_key}.{k}: must be two numbers in [0, 1), got {v!r}")
    out[k] = [float(b) for b in v]
