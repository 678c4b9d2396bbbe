"""Snapshot files of a GAN run: names, schedule, listing, and the metrics.jsonl that goes with them.

Progress is counted in kimg (thousands of real images shown to D). Snapshot points are nominal image
counts k * snapshot_kimg * 1000 (k = 1, 2, ...) below total_kimg * 1000, plus the total itself. A
snapshot is written at the first step whose image count reaches the point (it may exceed it by less
than a batch) and is named after the NOMINAL point, so the names are known in advance:
    whole kimg     -> snapshot-{kimg:06d}.pt            e.g. snapshot-000012.pt
    fractional     -> snapshot-{kimg:06d}_{frac:03d}.pt e.g. snapshot-000000_032.pt (0.032 kimg)
Names sort lexically in kimg order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ganaug.io import InputError, atomic_path

_NAME_RE = re.compile(r"^snapshot-(\d{6})(?:_(\d{3}))?\.pt$")


def snapshot_name(nimg: int) -> str:
    """File name of the snapshot at the nominal image count `nimg` (see module doc)."""
    k, rest = divmod(int(nimg), 1000)
    return f"snapshot-{k:06d}.pt" if rest == 0 else f"snapshot-{k:06d}_{rest:03d}.pt"


def snapshot_kimg(path) -> float:
    """Nominal kimg of a snapshot file name."""
    m = _NAME_RE.match(Path(path).name)
    if not m:
        raise InputError(f"{path}: not a snapshot file name (snapshot-KKKKKK[_FFF].pt)")
    return int(m.group(1)) + (int(m.group(2)) / 1000 if m.group(2) else 0.0)


def snapshot_schedule(cfg: dict) -> list[tuple[int, str]]:
    """[(nominal images, file name)] of the snapshots a run with cfg's total_kimg / snapshot_kimg writes."""
    total = round(float(cfg["total_kimg"]) * 1000)
    step = float(cfg["snapshot_kimg"]) * 1000
    if total <= 0 or step <= 0:
        raise InputError("snapshot_kimg/total_kimg: must be > 0")
    pts, k = [], 1
    while round(k * step) < total:
        pts.append(round(k * step))
        k += 1
    pts.append(total)
    return [(p, snapshot_name(p)) for p in pts]


def list_snapshots(out_dir) -> list[tuple[float, Path]]:
    """[(kimg, path)] of the snapshot files in out_dir, in kimg order."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(snapshot_kimg(p), p) for p in out_dir.iterdir() if _NAME_RE.match(p.name)]
    return sorted(found)


def plain(obj):
    """obj with numpy scalars turned into Python numbers and tuples into lists (for snapshots and JSON)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def truncate_metrics(path: Path, images_seen: int) -> None:
    """Drop the metrics.jsonl lines written after `images_seen` (and torn lines): a resume rewrites them."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("images_seen", 0) <= images_seen:
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(s + "\n" for s in keep))
