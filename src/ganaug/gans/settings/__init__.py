"""A generator's settings: its defaults and their checks (`resolve_config`), one module per generator
(ganaug.gans.settings.<name>, re-exported by ganaug.gans.<name>), and here the checks they share: the config
merged over the module's defaults (unknown keys refused), flags, Adam betas, the precision key; each error
names the config key.

Nothing in this package imports torch: the workflow checks a config's settings before any job runs, in
every Snakemake invocation (ganaug.config_check), and importing torch costs about 2 s of CPU."""

from __future__ import annotations

import numpy as np

from ganaug.io import InputError

__all__ = ["PRECISIONS", "RESAMPLE_IMPLS", "as_betas", "as_bool", "check_keys", "check_precision"]

# the values of settings implemented by modules all generators share: precision (accel), resample (layers)
PRECISIONS = ("auto", "fp32", "bf16")
RESAMPLE_IMPLS = ("auto", "depthwise", "native")


def check_precision(value, key: str = "precision") -> str:
    """A precision setting (auto, fp32, bf16) as written in a config, before a device is known."""
    if value not in PRECISIONS:
        raise InputError(f"{key}: must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


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
