"""Generator registry: the study's four GANs, the other built-in trainable generators, and the generators a
config declares (``gans.<name>``), with their label abbreviations and conditioning.

Each built-in generator lives in its own module (ganaug.gans.<name>) with the protocol described in
ganaug.gans.training; `gan_module(name)` imports it on demand, `gan_settings(name)` only its settings
(ganaug.gans.settings.<name>, no torch). A config entry with ``kind: external`` is a pool of synthetic images
the user already has (ganaug.external): no training, no checkpoint choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import re

from ganaug.io import InputError

GAN_NAMES = ("stylegan2", "pgan", "pix2pixhd", "spade")  # the study's four: what an experiment's `all` means
ABBREVIATIONS = {"stylegan2": "sgn", "pgan": "pgn", "pix2pixhd": "p2p", "spade": "spd", "diffusion": "dif",
                 "all": "all"}
# what a generator is conditioned on: a class label, or a label map (the class follows the map's real image)
CONDITIONING = {"stylegan2": "class", "pgan": "class", "pix2pixhd": "mask", "spade": "mask", "diffusion": "class"}
BUILTIN = tuple(name for name in ABBREVIATIONS if name != "all")  # trainable modules ganaug.gans.<name>
IMPLEMENTED = {name for name in BUILTIN if importlib.util.find_spec(f"ganaug.gans.{name}") is not None}
EXTERNAL = "external"
# a configured generator's name becomes a path component and a wildcard value; its abbreviation a label word
NAME_PATTERN = r"[a-z][a-z0-9_]*"
ABBREVIATION_PATTERN = r"[a-z0-9]+"


def require_implemented(name: str, key: str = "gan") -> str:
    """Return `name` if it is an implemented GAN, else raise InputError naming the config `key`."""
    if name in IMPLEMENTED:
        return name
    implemented = ", ".join(sorted(IMPLEMENTED))
    if name in BUILTIN:
        raise InputError(f"{key}: GAN '{name}' is not implemented yet (implemented: {implemented})")
    raise InputError(f"{key}: unknown GAN '{name}' (known: {', '.join(BUILTIN)}; implemented: {implemented})")


def gan_module(name: str):
    """The module implementing GAN `name`."""
    return importlib.import_module(f"ganaug.gans.{require_implemented(name)}")


def gan_settings(name: str):
    """The module of GAN `name`'s settings (DEFAULTS, resolve_config): gan_module(name) without torch."""
    return importlib.import_module(f"ganaug.gans.settings.{require_implemented(name)}")


def gan_of_format(fmt) -> str | None:
    """The GAN whose snapshots carry format string `fmt` ('ganaug-<name>-v1'), or None."""
    if isinstance(fmt, str) and fmt.startswith("ganaug-") and fmt.endswith("-v1"):
        name = fmt[len("ganaug-"):-len("-v1")]
        return name if name in BUILTIN else None
    return None


def _entry(name: str, gans_cfg: dict | None) -> dict:
    entry = (gans_cfg or {}).get(name)
    if entry is not None and not isinstance(entry, dict):
        raise InputError(f"gans.{name}: expected a mapping of settings, got {type(entry).__name__}")
    return entry or {}


def generator_kind(name: str, gans_cfg: dict | None = None, key: str | None = None) -> str:
    """'external' for a ``kind: external`` entry of ``gans``, else `name` itself when it is a built-in
    generator (stylegan2, pgan, pix2pixhd, spade, diffusion). Anything else raises InputError naming `key`
    (default ``gans.<name>``)."""
    key = key or f"gans.{name}"
    kind = _entry(name, gans_cfg).get("kind")
    if kind == EXTERNAL:
        if name in BUILTIN or name == "all":
            raise InputError(f"gans.{name}.kind: '{name}' is a built-in generator; give the external pool "
                             f"another name")
        return EXTERNAL
    if kind is not None:
        raise InputError(f"gans.{name}.kind: {kind!r} is not a kind; the one kind is '{EXTERNAL}' (a built-in "
                         f"generator's entry, named after it, gives no kind)")
    if name in BUILTIN:
        return name
    externals = [n for n in (gans_cfg or {}) if _entry(n, gans_cfg).get("kind") == EXTERNAL]
    raise InputError(f"{key}: unknown generator '{name}' (built in: {', '.join(BUILTIN)}, or 'all'; "
                     f"external pools declared under gans: {', '.join(externals) or 'none'}; an external pool "
                     f"needs gans.{name}.kind: external)")


def is_external(name: str, gans_cfg: dict | None = None) -> bool:
    return name != "all" and generator_kind(name, gans_cfg) == EXTERNAL


def abbreviation(name: str, gans_cfg: dict | None = None) -> str:
    """The generator's short label in experiment labels and ids, figures and tables ('sgn', 'dif', 'all',
    or an external pool's ``abbreviation``)."""
    if name == "all":
        return ABBREVIATIONS["all"]
    if generator_kind(name, gans_cfg) == EXTERNAL:
        return check_abbreviation(name, _entry(name, gans_cfg).get("abbreviation"))
    return ABBREVIATIONS[name]


def check_abbreviation(name: str, abbr) -> str:
    """An external pool's abbreviation: lowercase letters and digits, none of the built-in ones."""
    key = f"gans.{name}.abbreviation"
    if abbr is None:
        raise InputError(f"{key}: required for an external pool (its short label in experiment ids and figures, "
                         f"e.g. 'ext')")
    if not isinstance(abbr, str) or not re.fullmatch(ABBREVIATION_PATTERN, abbr):
        raise InputError(f"{key}: {abbr!r} must be lowercase letters and digits, e.g. 'ext'")
    if abbr in ABBREVIATIONS.values():
        raise InputError(f"{key}: '{abbr}' is the label of a built-in generator (taken: "
                         f"{', '.join(ABBREVIATIONS.values())})")
    return abbr


def conditioning(name: str, gans_cfg: dict | None = None) -> str:
    """'class' or 'mask': what a built-in generator is driven by. An external pool is 'class': its images come
    labelled (a `source_image` column, if any, is provenance that the sampling and the audit use)."""
    kind = generator_kind(name, gans_cfg)
    return "class" if kind == EXTERNAL else CONDITIONING[kind]


def configured_generators(gans_cfg: dict | None = None) -> list[str]:
    """Every generator a config can name: the built-in ones and its external pools (config order)."""
    externals = [n for n in (gans_cfg or {}) if n not in BUILTIN and is_external(n, gans_cfg)]
    return list(BUILTIN) + externals


def expand_gan(gan: str | None) -> list[str]:
    """The generators an experiment's `gan` draws from: `all` is the study's four GANs, never an external pool."""
    if gan is None:
        return []
    return list(GAN_NAMES) if gan == "all" else [gan]


def check_generator_names(gans_cfg: dict | None) -> list[str]:
    """Problems with the `gans` section's entries (names, kinds, abbreviations), one message each."""
    problems = []
    seen = {}
    for name in gans_cfg or {}:
        try:
            if not re.fullmatch(NAME_PATTERN, str(name)):
                raise InputError(f"gans.{name}: a generator's name must be lowercase letters, digits and '_', "
                                 f"starting with a letter")
            abbr = abbreviation(name, gans_cfg)
        except InputError as e:
            problems.append(str(e))
            continue
        if abbr in seen and seen[abbr] != name:
            problems.append(f"gans.{name}.abbreviation: '{abbr}' is already the label of gans.{seen[abbr]}")
        seen[abbr] = name
    return problems
