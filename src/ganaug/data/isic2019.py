"""ISIC 2019 training set -> index: the GroundTruth one-hot CSV + the Metadata CSV (lesion_id); keeps MEL
(label 1), NV, BKL, AK, DF and VASC (label 0); drops BCC, SCC (carcinomas) and UNK. Label maps made from
the ISIC 2018 Task 1/2 masks (ganaug.data.label_maps) fill the mask column by ISIC id."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets import image_id
from ..io import InputError
from .release import finish_index, find_images, label_counts, lookup_images, read_table

# ISIC 2019: one-hot classes; the study keeps these (label 1 = MEL) and drops BCC, SCC and UNK.
ISIC2019_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ISIC2019_KEEP = {
    "MEL": "melanoma",
    "NV": "nevus",
    "BKL": "benign_keratosis",
    "AK": "actinic_keratosis",
    "DF": "dermatofibroma",
    "VASC": "vascular",
}


def isic_id(s: str) -> str:
    """ISIC image id without the '_downsampled' suffix some ISIC 2019 file names carry."""
    s = image_id(s)
    return s[: -len("_downsampled")] if s.endswith("_downsampled") else s


def index_isic2019(
    ground_truth,
    images_dir,
    metadata=None,
    label_maps=None,
    dataset: str = "isic2019",
    report: dict | None = None,
) -> pd.DataFrame:
    """ISIC 2019 training set -> index (MEL, NV, BKL, AK, DF, VASC; BCC, SCC, UNK dropped).

    `metadata` (image, lesion_id) fills lesion_id; `label_maps` (image_id, mask; see
    build_isic2018_label_maps) fills mask by ISIC id. Every kept image must be in images_dir."""
    report = report if report is not None else {}
    required = ["image"] + [c for c in ISIC2019_CLASSES if c != "UNK"]
    gt = read_table(ground_truth, required, "ISIC 2019 GroundTruth CSV")
    classes = [c for c in ISIC2019_CLASSES if c in gt.columns]
    onehot = gt[classes].apply(lambda c: pd.to_numeric(c, errors="coerce"))
    bad = onehot.isna().any(axis=1) | ~onehot.isin([0, 1]).all(axis=1) | (onehot.sum(axis=1) != 1)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        raise InputError(
            f"{ground_truth}: {len(rows)} row(s) are not one-hot over {classes}, e.g. line(s) "
            f"{[int(r) + 2 for r in rows[:5]]} ({list(gt['image'].iloc[rows[:3]])})"
        )
    gt["image"] = gt["image"].str.strip()
    if gt["image"].duplicated().any():
        raise InputError(
            f"{ground_truth}: duplicate image id(s) {list(gt['image'][gt['image'].duplicated()][:5])}"
        )
    cls = onehot.idxmax(axis=1)
    report["classes"] = {c: int((cls == c).sum()) for c in classes}
    keep = cls.isin(list(ISIC2019_KEEP)).to_numpy()
    report["dropped"] = {
        c: int((cls == c).sum()) for c in classes if c not in ISIC2019_KEEP and (cls == c).any()
    }
    gt, cls = gt[keep].reset_index(drop=True), cls[keep].reset_index(drop=True)
    ids = gt["image"].tolist()
    paths = lookup_images(ids, find_images(images_dir), ground_truth, images_dir)

    lesion = [""] * len(ids)
    if metadata is not None:
        meta = read_table(metadata, ["image", "lesion_id"], "ISIC 2019 Metadata CSV")
        by_id = dict(zip(meta["image"].str.strip(), meta["lesion_id"].str.strip()))
        lesion = [by_id.get(i, "") for i in ids]
        report["without_metadata"] = int(sum(i not in by_id for i in ids))
        report["without_lesion_id"] = int(sum(v == "" for v in lesion))
    mask = [""] * len(ids)
    if label_maps is not None:
        lm = read_table(label_maps, ["image_id", "mask"], "label-map table")
        by_id = dict(zip(lm["image_id"].map(isic_id), lm["mask"]))
        mask = [by_id.get(isic_id(i), "") for i in ids]
        report["label_maps"] = {"available": int(len(lm)), "joined": int(sum(m != "" for m in mask))}
    df = pd.DataFrame(
        {
            "image": paths,
            "label": (cls == "MEL").astype(np.int64).to_numpy(),
            "diagnosis": cls.map(ISIC2019_KEEP).to_numpy(),
            "dataset": dataset,
            "lesion_id": lesion,
            "mask": mask,
            "image_id": ids,
        }
    )
    report["kept"] = label_counts(df)
    return finish_index(df, str(ground_truth))
