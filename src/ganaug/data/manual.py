"""Datasets placed by hand (derm7pt, Dermofit): checked present and complete before anything reads them,
with a message saying what to obtain, from where and where to put it; a cheap fingerprint re-runs the
check when the release changes."""

from __future__ import annotations

from pathlib import Path

from ..io import InputError
from . import derm7pt, dermofit
from .release import IncompleteRelease
from .sources import MANUAL_KINDS, MANUAL_SOURCES


def manual_message(name: str, kind: str, path, problem: str) -> str:
    src = MANUAL_SOURCES[kind]
    layout = src["layout"].format(path=path)
    return (
        f"datasets.{name}: {src['title']} is missing or incomplete at '{path}': {problem}. "
        f"It cannot be downloaded automatically ({src['why']}): obtain it from {src['url']} and place it so "
        f"that {layout} exist, or set datasets.{name}.path to the folder that holds it; then run the "
        "workflow again."
    )


def check_manual_dataset(name: str, cfg: dict, check_counts: bool | None = None) -> dict:
    """Check a hand-placed dataset (derm7pt, Dermofit) is there and complete; return its inventory.

    InputError (manual_message: what to obtain, from where, where to put it) when the folder, meta.csv or
    class folders are missing, an image the release lists is absent, or (check_counts, default
    cfg['check_counts'] or True) the release's counts differ from the published ones."""
    kind = cfg.get("kind")
    if kind not in MANUAL_KINDS:
        raise InputError(f"datasets.{name}: kind '{kind}' is not placed by hand")
    path = cfg.get("path")
    if not path:
        raise InputError(manual_message(name, kind, "<datasets." + name + ".path>", "no path configured"))
    if check_counts is None:
        check_counts = bool(cfg.get("check_counts", True))
    root = Path(path)
    if not root.is_dir():
        raise InputError(manual_message(name, kind, path, "the folder does not exist"))
    try:
        if kind in derm7pt.DERM7PT_COLUMN:
            inventory = derm7pt.check_release(root, derm7pt.DERM7PT_COLUMN[kind], name, check_counts)
        else:
            inventory = dermofit.check_release(root, name, check_counts)
    except IncompleteRelease as e:
        raise InputError(manual_message(name, kind, path, str(e))) from None
    return {"dataset": name, "kind": kind, "path": str(path), **inventory}


def manual_stamp(cfg: dict) -> str:
    """A cheap fingerprint of a hand-placed release (sizes and mtimes of its key files and folders), so the
    workflow re-checks and re-indexes it when it changes."""
    root = Path(cfg.get("path") or "")
    parts = []
    cands = [root / "meta" / "meta.csv", *root.glob("*/meta/meta.csv"), root] if root.is_dir() else []
    if cfg.get("kind") == "dermofit" and root.is_dir():
        cands += [p for p in root.iterdir() if p.is_dir()]
    for p in cands:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_size}:{int(st.st_mtime)}")
        except OSError:
            continue
    return "|".join(parts) or "absent"
