"""ISIC 2020 -> the study's isic20 test set, 1,743 images (581 melanoma + 1,162 benign): the authors' list
when given (exact), else a seeded selection with the same counts per diagnosis (ISIC2020_SUBSET)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets import validate_index
from ..io import InputError, seed_from
from .release import finish_index, find_images, label_counts, lookup_images, read_table, select_by_list

# ISIC 2020: the study's isic20 subset (1,743 images), counts per diagnosis of the GroundTruth CSV.
ISIC2020_SUBSET = {
    "melanoma": 581,
    "benign": {
        "unknown": 978,
        "nevus": 176,
        "seborrheic keratosis": 4,
        "lichenoid keratosis": 3,
        "lentigo NOS": 1,
    },
}


def select_isic2020_subset(
    table: pd.DataFrame, subset: dict | None = None, seed: int = 2021, source: str = "ISIC 2020"
) -> pd.DataFrame:
    """Seeded selection with the study's counts: `subset` = {melanoma: n, benign: {diagnosis: n, ...}}
    (default ISIC2020_SUBSET; diagnoses matched case-insensitively). Each group is drawn without
    replacement with its own seed (seed, 'isic2020-subset', group); rows keep the table's order."""
    subset = subset or ISIC2020_SUBSET
    diag = table["diagnosis"].astype(str).str.strip().str.lower().to_numpy()
    labels = table["label"].to_numpy()
    groups = [("melanoma", labels == 1, int(subset.get("melanoma", 0)))]
    groups += [
        (d, (labels == 0) & (diag == d.lower()), int(n)) for d, n in (subset.get("benign") or {}).items()
    ]
    keep = []
    for what, mask, n in groups:
        pos = np.flatnonzero(mask)
        if n > len(pos):
            raise InputError(f"{source}: the subset asks for {n} '{what}' image(s), there are {len(pos)}")
        rng = np.random.default_rng(seed_from(seed, "isic2020-subset", what))
        keep.append(pos[rng.permutation(len(pos))[:n]])
    rows = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return table.iloc[rows].reset_index(drop=True)


def index_isic2020(
    ground_truth,
    images_dir,
    subset_list=None,
    subset: dict | None = None,
    seed: int = 2021,
    dataset: str = "isic2020",
    report: dict | None = None,
) -> pd.DataFrame:
    """The isic20 test set: the rows of `subset_list` (the authors' list, exact) or a seeded selection
    (select_isic2020_subset). label = target (1 = melanoma), lesion_id from the GroundTruth CSV."""
    report = report if report is not None else {}
    gt = read_table(ground_truth, ["image_name", "target", "diagnosis"], "ISIC 2020 GroundTruth CSV")
    gt["image_name"] = gt["image_name"].str.strip()
    if gt["image_name"].duplicated().any():
        raise InputError(
            f"{ground_truth}: duplicate image_name(s) "
            f"{list(gt['image_name'][gt['image_name'].duplicated()][:5])}"
        )
    table = pd.DataFrame(
        {
            "image": gt["image_name"],  # replaced by the file path below
            "label": gt["target"].str.strip(),
            "diagnosis": gt["diagnosis"].str.strip(),
            "dataset": dataset,
            "lesion_id": gt["lesion_id"].str.strip() if "lesion_id" in gt.columns else "",
            "mask": "",
            "image_id": gt["image_name"],
        }
    )
    table = validate_index(table, str(ground_truth))
    report["release"] = label_counts(table)
    if subset_list is not None:
        sel = select_by_list(table, subset_list, dataset)
        report["selection"] = f"list {subset_list}"
    else:
        sel = select_isic2020_subset(table, subset, seed, str(ground_truth))
        report["selection"] = {"seed": int(seed), "subset": subset or ISIC2020_SUBSET}
    sel = sel.copy()
    sel["image"] = lookup_images(sel["image_id"].tolist(), find_images(images_dir), ground_truth, images_dir)
    report["kept"] = label_counts(sel)
    report["diagnoses"] = {k: int(v) for k, v in sel["diagnosis"].value_counts().items()}
    return finish_index(sel, str(ground_truth))
