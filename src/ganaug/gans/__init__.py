"""Generator registry: the study's four GANs (GAN_NAMES, what an experiment's `gan: all` means), the
trainable generators beyond them (TRAINABLE adds the diffusion model), their label abbreviations, their
conditioning, and which are implemented.

Each trainable generator lives in its own module (ganaug.gans.<name>) with the protocol described in
ganaug.gans.training; `gan_module(name)` imports it on demand.
"""

from __future__ import annotations

import importlib
import importlib.util

from ganaug.io import InputError

GAN_NAMES = ("stylegan2", "pgan", "pix2pixhd", "spade")
TRAINABLE = GAN_NAMES + ("diffusion",)
ABBREVIATIONS = {"stylegan2": "sgn", "pgan": "pgn", "pix2pixhd": "p2p", "spade": "spd", "diffusion": "dif",
                 "all": "all"}
# what a generator is conditioned on: a class label, or a label map (the class follows the map's real image)
CONDITIONING = {"stylegan2": "class", "pgan": "class", "pix2pixhd": "mask", "spade": "mask", "diffusion": "class"}
IMPLEMENTED = {name for name in TRAINABLE if importlib.util.find_spec(f"ganaug.gans.{name}") is not None}


def require_implemented(name: str, key: str = "gan") -> str:
    """Return `name` if it is an implemented GAN, else raise InputError naming the config `key`."""
    if name in IMPLEMENTED:
        return name
    implemented = ", ".join(sorted(IMPLEMENTED))
    if name in TRAINABLE:
        raise InputError(f"{key}: GAN '{name}' is not implemented yet (implemented: {implemented})")
    raise InputError(f"{key}: unknown GAN '{name}' (known: {', '.join(TRAINABLE)}; implemented: {implemented})")


def gan_module(name: str):
    """The module implementing GAN `name`."""
    return importlib.import_module(f"ganaug.gans.{require_implemented(name)}")


def gan_of_format(fmt) -> str | None:
    """The GAN whose snapshots carry format string `fmt` ('ganaug-<name>-v1'), or None."""
    if isinstance(fmt, str) and fmt.startswith("ganaug-") and fmt.endswith("-v1"):
        name = fmt[len("ganaug-"):-len("-v1")]
        return name if name in TRAINABLE else None
    return None
