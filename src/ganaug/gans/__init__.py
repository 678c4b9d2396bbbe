"""GAN registry: the study's four generators, their label abbreviations, and which are implemented."""

from __future__ import annotations

from ganaug.io import InputError

GAN_NAMES = ("stylegan2", "pgan", "pix2pixhd", "spade")
ABBREVIATIONS = {"stylegan2": "sgn", "pgan": "pgn", "pix2pixhd": "p2p", "spade": "spd", "all": "all"}
IMPLEMENTED = {"stylegan2"}


def require_implemented(name: str, key: str = "gan") -> str:
    """Return `name` if it is an implemented GAN, else raise InputError naming the config `key`."""
    if name in IMPLEMENTED:
        return name
    implemented = ", ".join(sorted(IMPLEMENTED))
    if name in GAN_NAMES:
        raise InputError(f"{key}: GAN '{name}' is not implemented yet (implemented: {implemented})")
    raise InputError(f"{key}: unknown GAN '{name}' (known: {', '.join(GAN_NAMES)}; implemented: {implemented})")
