"""Dermofit Image Library -> index: one folder per class; drops BCC and SCC (973 of 1,300 images kept);
MEL is label 1. The release is placed by hand: ``check_release`` says what is missing
(ganaug.data.manual)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..datasets import INDEX_COLUMNS
from ..io import InputError
from .release import IncompleteRelease, finish_index, find_images, label_counts, select_by_list

# Dermofit Image Library: class folders, (diagnosis, label) or None (dropped), and the release's counts.
DERMOFIT_CLASSES = {
    "AK": ("actinic_keratosis", 0),
    "BCC": None,
    "DF": ("dermatofibroma", 0),
    "IEC": ("intraepithelial_carcinoma", 0),
    "MEL": ("melanoma", 1),
    "ML": ("nevus", 0),
    "PYO": ("pyogenic_granuloma", 0),
    "SCC": None,
    "SK": ("seborrheic_keratosis", 0),
    "VASC": ("vascular", 0),
}
DERMOFIT_COUNTS = {
    "AK": 45,
    "BCC": 239,
    "DF": 65,
    "IEC": 78,
    "MEL": 76,
    "ML": 331,
    "PYO": 24,
    "SCC": 88,
    "SK": 257,
    "VASC": 97,
}


def dermofit_root(release_dir) -> tuple[Path, dict[str, Path]]:
    """(folder holding the class folders, {class: folder}); class names matched case-insensitively,
    the release folder itself or one folder inside it."""
    root = Path(release_dir)
    cands = [root] + (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    best: tuple[Path, dict[str, Path]] = (root, {})
    for c in cands:
        if not c.is_dir():
            continue
        sub = {p.name.upper(): p for p in c.iterdir() if p.is_dir()}
        found = {k: sub[k] for k in DERMOFIT_CLASSES if k in sub}
        if len(found) > len(best[1]):
            best = (c, found)
    return best


def _dermofit_images(folder: Path) -> dict[str, str]:
    return find_images(folder, exclude=lambda stem: stem.lower().endswith("mask"))


def index_dermofit(
    release_dir, subset_list=None, dataset: str = "dermofit", report: dict | None = None
) -> pd.DataFrame:
    """Dermofit class folders -> index; BCC and SCC dropped; MEL label 1. Lesion masks (files ending in
    'mask') are not images. With `subset_list` the index is exactly the listed images."""
    report = report if report is not None else {}
    root, folders = dermofit_root(release_dir)
    if not folders:
        raise InputError(f"{release_dir}: no Dermofit class folder ({', '.join(DERMOFIT_CLASSES)}) found")
    rows = []
    report["classes"] = {}
    for cls, folder in folders.items():
        imgs = _dermofit_images(folder)
        report["classes"][cls] = len(imgs)
        spec = DERMOFIT_CLASSES[cls]
        if spec is None:
            continue
        for stem, p in imgs.items():
            rows.append(
                {
                    "image": p,
                    "label": spec[1],
                    "diagnosis": spec[0],
                    "dataset": dataset,
                    "lesion_id": f"dermofit_{stem}",
                    "mask": "",
                    "image_id": stem,
                    "category": cls,
                }
            )
    df = pd.DataFrame(rows, columns=INDEX_COLUMNS + ["image_id", "category"])
    dup = df["image_id"].duplicated(keep=False)
    if dup.any():
        raise InputError(
            f"{root}: image id(s) in several class folders: {sorted(set(df['image_id'][dup]))[:5]}"
        )
    if subset_list is not None:
        df = select_by_list(df, subset_list, dataset)
        report["selection"] = f"list {subset_list}"
    report["kept"] = label_counts(df)
    return finish_index(df, str(root))


def check_release(root: Path, name: str, check_counts: bool) -> dict:
    """Inventory of a hand-placed release ({root, classes, images}); IncompleteRelease (ganaug.data.manual
    adds where to get it) when a class folder is absent or empty, or (check_counts) the image counts differ
    from the release's."""
    root_found, folders = dermofit_root(root)
    absent = [c for c in DERMOFIT_CLASSES if c not in folders]
    if absent:
        raise IncompleteRelease(f"class folder(s) {absent} not found")
    counts = {c: len(_dermofit_images(f)) for c, f in folders.items()}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise IncompleteRelease(f"class folder(s) {empty} hold no image")
    if check_counts:
        off = {c: f"{counts[c]} (expected {n})" for c, n in DERMOFIT_COUNTS.items() if counts[c] != n}
        if off:
            raise IncompleteRelease(
                f"image counts differ from the release's: {off} (set datasets.{name}.check_counts: false "
                "to use a partial copy)"
            )
    return {"root": str(root_found), "classes": counts, "images": int(sum(counts.values()))}
