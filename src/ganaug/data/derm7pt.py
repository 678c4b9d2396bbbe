"""derm7pt (Seven-point checklist) -> index: meta/meta.csv, dermoscopic (``derm``) or clinical (``clinic``)
images; keeps every nevus subtype, every melanoma subtype and seborrheic keratosis; near duplicates removed
(ganaug.data.near_duplicates) unless the authors' list is given, which then defines the set exactly. The
release is placed by hand: ``check_release`` says what is missing (ganaug.data.manual)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..io import InputError
from .near_duplicates import drop_near_duplicates
from .release import IncompleteRelease, finish_index, label_counts, read_table, select_by_list

# derm7pt: 1,011 cases in meta/meta.csv; its image columns per kind.
DERM7PT_CASES = 1011
DERM7PT_COLUMN = {"derm7pt": "derm", "derm7pt_clinic": "clinic"}


def derm7pt_category(diagnosis: str) -> tuple[str, int] | None:
    """('melanoma', 1) for every melanoma subtype, ('nevus', 0) for every nevus subtype,
    ('seborrheic_keratosis', 0); None for the classes the study leaves out."""
    d = str(diagnosis).strip().lower()
    if d.startswith("melanoma"):
        return "melanoma", 1
    if "nevus" in d:
        return "nevus", 0
    if d == "seborrheic keratosis":
        return "seborrheic_keratosis", 0
    return None


def derm7pt_meta(release_dir) -> Path:
    """meta/meta.csv of a derm7pt release (the release folder, or one folder inside it, e.g. release_v0)."""
    root = Path(release_dir)
    for cand in [root / "meta" / "meta.csv", *sorted(root.glob("*/meta/meta.csv"))]:
        if cand.is_file():
            return cand
    raise InputError(f"{root}: derm7pt meta/meta.csv not found")


def index_derm7pt(
    release_dir,
    image_type: str = "derm",
    subset_list=None,
    near_duplicate_bits: int = 4,
    dataset: str = "derm7pt",
    report: dict | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """derm7pt -> index of its dermoscopic (image_type 'derm') or clinical ('clinic') images.

    Keeps every nevus and melanoma subtype and seborrheic keratosis (derm7pt_category). With
    `subset_list` (the authors' list) the index is exactly the listed images (exact duplicate files
    merged first); otherwise duplicates are removed by drop_near_duplicates(max_bits=near_duplicate_bits).
    lesion_id = 'derm7pt_<case_num>' (the clinical and dermoscopic images of a case share it)."""
    report = report if report is not None else {}
    if image_type not in ("derm", "clinic"):
        raise InputError(f"derm7pt: image_type must be 'derm' or 'clinic', got {image_type!r}")
    meta_path = derm7pt_meta(release_dir)
    meta = read_table(meta_path, ["case_num", "diagnosis", image_type], "derm7pt meta CSV")
    images_root = meta_path.parent.parent / "images"
    cat = meta["diagnosis"].map(derm7pt_category)
    report["cases"] = int(len(meta))
    report["dropped_diagnoses"] = {k: int(v) for k, v in meta["diagnosis"][cat.isna()].value_counts().items()}
    meta, cat = meta[cat.notna()].reset_index(drop=True), cat[cat.notna()].reset_index(drop=True)
    rel = meta[image_type].str.strip()
    if (rel == "").any():
        raise InputError(
            f"{meta_path}: empty '{image_type}' image path for case(s) "
            f"{list(meta['case_num'][rel == ''][:5])}"
        )
    paths = [str(images_root / r) for r in rel]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise InputError(
            f"{meta_path}: {len(missing)} of {len(paths)} '{image_type}' image(s) it lists are not in "
            f"{images_root}, e.g. {missing[:3]}"
        )
    df = pd.DataFrame(
        {
            "image": paths,
            "label": [c[1] for c in cat],
            "diagnosis": meta["diagnosis"].str.strip(),
            "dataset": dataset,
            "lesion_id": "derm7pt_" + meta["case_num"].str.strip(),
            "mask": "",
            "image_id": [Path(r).stem for r in rel],
            "category": [c[0] for c in cat],
        }
    )
    report["kept_classes"] = label_counts(df)
    if subset_list is not None:
        df, gone = drop_near_duplicates(df, max_bits=-1)
        report["exact_duplicates"] = int(len(gone))
        df = select_by_list(df, subset_list, dataset)
        report["selection"] = f"list {subset_list}"
    else:
        df, gone = drop_near_duplicates(df, max_bits=int(near_duplicate_bits), workers=workers)
        report["selection"] = {"near_duplicate_bits": int(near_duplicate_bits)}
        report["duplicates"] = [
            {"image": a, "duplicate_of": b, "distance": int(d)}
            for a, b, d in zip(gone["image"], gone["duplicate_of"], gone["distance"])
        ]
    report["kept"] = label_counts(df)
    return finish_index(df, str(meta_path))


def check_release(root: Path, column: str, name: str, check_counts: bool) -> dict:
    """Inventory of a hand-placed release ({meta, cases, images}); IncompleteRelease (ganaug.data.manual
    adds where to get it) when meta/meta.csv is absent or unreadable, an image of `column` it lists is
    absent, or (check_counts) it has another number of cases than the release."""
    try:
        meta_path = derm7pt_meta(root)
    except InputError:
        raise IncompleteRelease("meta/meta.csv not found") from None
    try:
        meta = read_table(meta_path, ["case_num", "diagnosis", "clinic", "derm"], "derm7pt meta CSV")
    except InputError as e:
        raise IncompleteRelease(str(e)) from None
    images_root = meta_path.parent.parent / "images"
    listed = [str(images_root / r.strip()) for r in meta[column] if r.strip()]
    missing = [p for p in listed if not os.path.isfile(p)]
    if missing:
        raise IncompleteRelease(
            f"{len(missing)} of {len(listed)} '{column}' image(s) listed in {meta_path} are absent, "
            f"e.g. {missing[:3]}"
        )
    if check_counts and len(meta) != DERM7PT_CASES:
        raise IncompleteRelease(
            f"{meta_path} has {len(meta)} cases, the release has {DERM7PT_CASES} (set "
            f"datasets.{name}.check_counts: false to use a partial copy)"
        )
    return {"meta": str(meta_path), "cases": int(len(meta)), "images": len(listed)}
