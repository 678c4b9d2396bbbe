"""Real datasets: preprocessing of each release layout (fixture folders the tests make), the manual-dataset
check, the integrity check, the split import on the authors' published lists and the split check."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from ganaug import datasets
from ganaug.data import (
    derm7pt, dermofit, integrity, isic2019, isic2020, label_maps, manual, prepare, sources, splits,
)
from ganaug.io import InputError

REPO = Path(__file__).resolve().parents[1]
SPLITS = Path(
    os.environ.get(
        "GANAUG_AUTHORS_SPLITS",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "authors-splits",
    )
)
needs_splits = pytest.mark.skipif(
    not (SPLITS / "isic2019-val.csv").exists(),
    reason=f"the authors' published split lists are not at {SPLITS} (set GANAUG_AUTHORS_SPLITS)",
)
CLASSES = list(isic2019.ISIC2019_CLASSES)


def _img(path: Path, seed: int, size=(12, 10), fmt=None, quality=90) -> np.ndarray:
    """A smooth random RGB image (distinct seeds give pHashes far apart), saved at path."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BILINEAR))
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or ("JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    Image.fromarray(arr).save(path, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return arr


def _mask(path: Path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode="L").save(path)


def _onehot(cls: str) -> list[str]:
    return ["1.0" if c == cls else "0.0" for c in CLASSES]


# --- ISIC 2019 + ISIC 2018 masks -----------------------------------------------------------------------
ISIC19 = [  # id, class, lesion_id
    ("ISIC_0000001", "MEL", "HAM_1"),
    ("ISIC_0000002", "MEL", "HAM_1"),
    ("ISIC_0000003", "NV", "HAM_2"),
    ("ISIC_0000004", "NV", "HAM_3"),
    ("ISIC_0000005", "BCC", "HAM_4"),
    ("ISIC_0000006", "SCC", "HAM_5"),
    ("ISIC_0000007", "BKL", "HAM_6"),
    ("ISIC_0000008", "AK", "BCN_7"),
    ("ISIC_0000009", "DF", "BCN_8"),
    ("ISIC_0000010", "VASC", ""),
    ("ISIC_0000011", "NV", None),  # not in the metadata
    ("ISIC_0000013_downsampled", "MEL", "MSK_9"),
]


def make_isic2019(root: Path) -> dict:
    """The ISIC 2019 layout (GroundTruth, Metadata, ISIC_2019_Training_Input/) + ISIC 2018 Task 1/2 masks."""
    images = root / "extracted" / "images" / "ISIC_2019_Training_Input"
    rows = []
    for k, (iid, cls, _) in enumerate(ISIC19):
        size = (10, 8) if iid.endswith("downsampled") else (12, 10)
        _img(images / f"{iid}.jpg", k, size)
        rows.append(",".join([iid] + _onehot(cls)))
    (images / "LICENSE.txt").write_text("CC-BY-NC\n")
    gt = root / "ISIC_2019_Training_GroundTruth.csv"
    gt.write_text(",".join(["image"] + CLASSES) + "\n" + "\n".join(rows) + "\n")
    meta = root / "ISIC_2019_Training_Metadata.csv"
    meta.write_text(
        "image,age_approx,anatom_site_general,lesion_id,sex\n"
        + "".join(f"{iid},45.0,torso,{lid},male\n" for iid, _, lid in ISIC19 if lid is not None)
    )
    t1 = root / "extracted" / "masks_task1" / "ISIC2018_Task1_Training_GroundTruth"
    t2 = root / "extracted" / "masks_task2" / "ISIC2018_Task2_Training_GroundTruth_v3"
    lesion = np.zeros((10, 12), np.uint8)
    lesion[2:8, 3:9] = 255
    _mask(t1 / "ISIC_0000001_segmentation.png", lesion)
    pn = np.zeros((10, 12), np.uint8)
    pn[3:5, 4:6] = 255
    gl = np.zeros((10, 12), np.uint8)
    gl[6, 7] = 255
    _mask(t2 / "ISIC_0000001_attribute_pigment_network.png", pn)
    _mask(t2 / "ISIC_0000001_attribute_globules.png", gl)
    _mask(t2 / "ISIC_0000001_attribute_streaks.png", np.zeros((10, 12), np.uint8))
    big = np.zeros((16, 20), np.uint8)  # the original size of the downsampled image (10 x 8)
    big[4:12, 5:15] = 255
    _mask(t1 / "ISIC_0000013_segmentation.png", big)
    _mask(t1 / "ISIC_0000003_segmentation.png", np.full((30, 12), 255, np.uint8))  # other aspect ratio
    _mask(t1 / "ISIC_0000099_segmentation.png", lesion)  # not an ISIC 2019 image
    return {
        "ground_truth": gt,
        "metadata": meta,
        "images": root / "extracted" / "images",
        "task1": root / "extracted" / "masks_task1",
        "task2": root / "extracted" / "masks_task2",
    }


def test_isic2019_index_filters_and_joins(tmp_path):
    rel = make_isic2019(tmp_path)
    table = label_maps.write_label_maps(
        rel["task1"], rel["images"], tmp_path / "maps", tmp_path / "maps.csv", task2_dir=rel["task2"]
    )
    assert sorted(table["image_id"]) == [
        "ISIC_0000001",
        "ISIC_0000013",
    ]  # 0003: aspect differs; 0099: no image
    report = {}
    df = isic2019.index_isic2019(
        rel["ground_truth"],
        rel["images"],
        rel["metadata"],
        tmp_path / "maps.csv",
        dataset="isic2019",
        report=report,
    )
    assert list(df.columns[:6]) == datasets.INDEX_COLUMNS
    assert len(df) == 10 and df["label"].sum() == 3  # BCC and SCC dropped
    assert report["dropped"] == {"BCC": 1, "SCC": 1} and report["kept"] == {
        "n": 10,
        "melanoma": 3,
        "benign": 7,
    }
    by = df.set_index("image_id")
    assert by.loc["ISIC_0000009", "diagnosis"] == "dermatofibroma" and by.loc["ISIC_0000010", "label"] == 0
    assert by.loc["ISIC_0000001", "lesion_id"] == by.loc["ISIC_0000002", "lesion_id"] == "HAM_1"
    assert by.loc["ISIC_0000011", "lesion_id"] == "" and report["without_metadata"] == 1
    assert by.loc["ISIC_0000013_downsampled", "image"].endswith("ISIC_0000013_downsampled.jpg")
    assert set(df["mask"].str.len() > 0) == {True, False} and report["label_maps"]["joined"] == 2
    # label map values: 1 skin, 2 lesion, 3 pigment network, 7 globules; resized to the downsampled image
    lm = np.asarray(Image.open(by.loc["ISIC_0000001", "mask"]))
    assert lm.shape == (10, 12) and lm[0, 0] == 1 and lm[2, 3] == 2 and lm[3, 4] == 3 and lm[6, 7] == 7
    small = Image.open(by.loc["ISIC_0000013_downsampled", "mask"])
    assert small.size == Image.open(by.loc["ISIC_0000013_downsampled", "image"]).size == (10, 8)
    assert set(np.unique(np.asarray(small))) == {1, 2}


def test_isic2019_bad_input_names_the_file(tmp_path):
    rel = make_isic2019(tmp_path)
    gt = pd.read_csv(rel["ground_truth"], dtype=str)
    gt.drop(columns=["VASC"]).to_csv(tmp_path / "nocol.csv", index=False)
    with pytest.raises(InputError, match=r"nocol\.csv.*VASC"):
        isic2019.index_isic2019(tmp_path / "nocol.csv", rel["images"])
    two = gt.copy()
    two.loc[3, "MEL"] = "1.0"
    two.to_csv(tmp_path / "twohot.csv", index=False)
    with pytest.raises(InputError, match=r"twohot\.csv.*one-hot.*line\(s\) \[5\]"):
        isic2019.index_isic2019(tmp_path / "twohot.csv", rel["images"])
    os.remove(next(Path(rel["images"]).rglob("ISIC_0000004.jpg")))
    with pytest.raises(
        InputError, match=r"GroundTruth\.csv: 1 of 10 listed image\(s\) are not in .*ISIC_0000004"
    ):
        isic2019.index_isic2019(rel["ground_truth"], rel["images"])


# --- ISIC 2020 -----------------------------------------------------------------------------------------
def make_isic2020(root: Path, extra_ids=(), n_unknown=10) -> Path:
    rows = []
    diag = (
        ["melanoma"] * 6
        + ["unknown"] * n_unknown
        + ["nevus"] * 4
        + ["seborrheic keratosis"] * 2
        + ["lichenoid keratosis", "lentigo NOS", "solar lentigo"]
    )
    ids = [f"ISIC_{1000000 + i}" for i in range(len(diag))] + list(extra_ids)
    diag += ["unknown"] * len(extra_ids)
    img_dir = root / "extracted" / "images" / "train"
    img_dir.mkdir(parents=True)
    for k, (iid, d) in enumerate(zip(ids, diag)):
        target = int(d == "melanoma")
        rows.append(
            f"{iid},IP_{k % 5},IL_{k},female,50.0,torso,{d},{'malignant' if target else 'benign'},{target}"
        )
        (img_dir / f"{iid}.jpg").write_bytes(b"")  # preprocessing needs the files, not their content
    gt = root / "ISIC_2020_Training_GroundTruth.csv"
    gt.write_text(
        "image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,diagnosis,"
        "benign_malignant,target\n" + "\n".join(rows) + "\n"
    )
    return gt


def test_isic2020_seeded_subset(tmp_path):
    gt = make_isic2020(tmp_path)
    spec = {"melanoma": 3, "benign": {"unknown": 4, "nevus": 2, "Seborrheic Keratosis": 1}}
    report = {}
    a = isic2020.index_isic2020(gt, tmp_path / "extracted" / "images", subset=spec, seed=1, report=report)
    assert len(a) == 10 and a["label"].sum() == 3
    assert report["diagnoses"] == {"unknown": 4, "melanoma": 3, "nevus": 2, "seborrheic keratosis": 1}
    assert a["lesion_id"].str.startswith("IL_").all() and a["image"].map(os.path.isfile).all()
    b = isic2020.index_isic2020(gt, tmp_path / "extracted" / "images", subset=spec, seed=1)
    c = isic2020.index_isic2020(gt, tmp_path / "extracted" / "images", subset=spec, seed=2)
    assert a["image"].tolist() == b["image"].tolist() and a["image"].tolist() != c["image"].tolist()
    with pytest.raises(InputError, match=r"asks for 5 'nevus' image\(s\), there are 4"):
        isic2020.index_isic2020(
            gt, tmp_path / "extracted" / "images", subset={"melanoma": 1, "benign": {"nevus": 5}}
        )


def test_isic2020_default_subset_counts():
    assert (
        isic2020.ISIC2020_SUBSET["melanoma"] == 581
        and sum(isic2020.ISIC2020_SUBSET["benign"].values()) == 1162
    )


@needs_splits
def test_isic2020_authors_list(tmp_path):
    lst = SPLITS / "testsets" / "isic2020-subset-test.csv"
    ids = datasets.read_split_list(lst)
    gt = make_isic2020(tmp_path, extra_ids=ids["image"].tolist(), n_unknown=0)
    # the list's labels: make the GroundTruth agree (the fixture has 'unknown' benign for every listed id)
    g = pd.read_csv(gt, dtype=str)
    lab = dict(zip(ids["image"], ids["label"]))
    g["target"] = [lab.get(i, t) for i, t in zip(g["image_name"], g["target"])]
    g.to_csv(gt, index=False)
    df = isic2020.index_isic2020(gt, tmp_path / "extracted" / "images", subset_list=lst)
    assert len(df) == 1743 and df["label"].sum() == 581
    assert df["image_id"].tolist() == ids["image"].tolist()


# --- derm7pt ---------------------------------------------------------------------------------------------
DERM7PT = [  # case, diagnosis, clinic file, derm file
    (1, "clark nevus", "Aaa/Aaa001.jpg", "Aaa/Aaa002.jpg"),
    (2, "blue nevus", "Aaa/Aaa003.jpg", "Aaa/Aaa004.jpg"),
    (3, "reed or spitz nevus", "Aaa/Aaa003.jpg", "Aaa/Aaa006.jpg"),  # same clinical file as case 2
    (4, "melanoma (in situ)", "Bbb/Bbb007.jpg", "Bbb/Bbb008.jpg"),
    (5, "melanoma (less than 0.76 mm)", "Bbb/Bbb009.png", "Bbb/Bbb010.jpg"),  # near copy of case 4's
    (6, "melanoma metastasis", "Bbb/Bbb011.jpg", "Bbb/Bbb012.jpg"),
    (7, "seborrheic keratosis", "Ccc/Ccc013.jpg", "Ccc/Ccc014.jpg"),
    (8, "basal cell carcinoma", "Ccc/Ccc015.jpg", "Ccc/Ccc016.jpg"),
    (9, "dermatofibroma", "Ccc/Ccc017.jpg", "Ccc/Ccc018.jpg"),
    (10, "lentigo", "Ddd/Ddd019.jpg", "Ddd/Ddd020.jpg"),
    (11, "melanosis", "Ddd/Ddd021.jpg", "Ddd/Ddd022.jpg"),
    (12, "vascular lesion", "Ddd/Ddd023.jpg", "Ddd/Ddd024.jpg"),
    (13, "miscellaneous", "Ddd/Ddd025.jpg", "Ddd/Ddd026.jpg"),
]


def _write_meta(root: Path, rows) -> Path:
    meta = root / "meta" / "meta.csv"
    meta.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["case_num", "diagnosis", "clinic", "derm"]).assign(
        seven_point_score=0, notes=""
    ).to_csv(meta, index=False)
    return meta


def make_derm7pt(root: Path) -> Path:
    images = root / "images"
    for case, _, clinic, derm in DERM7PT:
        if case == 5:  # the clinical image of case 4, re-saved as PNG at another size: a near duplicate
            arr = np.asarray(Image.open(images / DERM7PT[3][2]))
            Image.fromarray(arr).resize((96, 80), Image.Resampling.BILINEAR).save(images / clinic)
        elif not (images / clinic).exists():
            _img(images / clinic, 100 + case, (48, 40))
        _img(images / derm, 200 + case, (48, 40))
    _write_meta(root, DERM7PT)
    return root


def test_derm7pt_keeps_study_classes_and_removes_duplicates(tmp_path):
    rel = make_derm7pt(tmp_path / "derm7pt")
    report = {}
    derm = derm7pt.index_derm7pt(rel, "derm", dataset="derm7pt_derm", report=report)
    assert len(derm) == 7 and derm["label"].sum() == 3  # 3 nevi, 3 melanomas, 1 SK; 6 others dropped
    assert report["duplicates"] == [] and set(report["dropped_diagnoses"]) == {
        "basal cell carcinoma",
        "dermatofibroma",
        "lentigo",
        "melanosis",
        "vascular lesion",
        "miscellaneous",
    }
    assert derm["lesion_id"].tolist()[:2] == ["derm7pt_1", "derm7pt_2"]
    report = {}
    clinic = derm7pt.index_derm7pt(rel, "clinic", dataset="derm7pt_clinic", report=report)
    assert (
        len(clinic) == 5 and clinic["label"].sum() == 2
    )  # case 3 (same file) and case 5 (near copy) dropped
    dups = {
        Path(d["image"]).name: (Path(d["duplicate_of"]).name, d["distance"]) for d in report["duplicates"]
    }
    assert dups["Aaa003.jpg"] == ("Aaa003.jpg", 0) and dups["Bbb009.png"][0] == "Bbb007.jpg"
    assert 0 < dups["Bbb009.png"][1] <= 4
    exact_only = derm7pt.index_derm7pt(rel, "clinic", near_duplicate_bits=-1)
    assert len(exact_only) == 6


# the authors' hierarchical diagnosis codes -> a derm7pt diagnosis (for fixtures made from their lists)
CODE_DIAGNOSIS = {
    "1.1.1.1.": "dermal nevus",
    "1.1.2.": "congenital nevus",
    "1.1.3.": "clark nevus",
    "1.1.4.": "combined nevus",
    "1.1.5.": "blue nevus",
    "1.1.6.": "recurrent nevus",
    "1.1.7.": "reed or spitz nevus",
    "1.5.": "seborrheic keratosis",
    "3.2.": "melanoma",
    "3.2.1.": "melanoma (in situ)",
    "3.2.3.": "melanoma metastasis",
}


@needs_splits
@pytest.mark.parametrize(
    "kind,col,lst,n,n_mel",
    [
        ("derm7pt", "derm", "derm7pt_dermato.csv", 872, 252),
        ("derm7pt_clinic", "clinic", "derm7pt_clinical.csv", 839, 248),
    ],
)
def test_derm7pt_authors_lists(tmp_path, kind, col, lst, n, n_mel):
    listed = datasets.read_split_list(SPLITS / "testsets" / lst)
    root = tmp_path / "derm7pt"
    rows = []
    for k, (iid, code) in enumerate(zip(listed["image"], listed["diagnosis"])):
        f = f"{iid[:3].capitalize()}/{iid.upper()}.JPG"  # file names differ in case from the authors' ids
        other = f"Zzz/zz{k:05d}.jpg"
        rows.append((k, CODE_DIAGNOSIS[code], f if col == "clinic" else other, f if col == "derm" else other))
    rows += [
        (9000, "basal cell carcinoma", "Yyy/y1.jpg", "Yyy/y2.jpg"),
        (9001, "clark nevus", "Yyy/y3.jpg", "Yyy/y4.jpg"),
    ]
    for r in rows:
        for f in r[2:]:
            (root / "images" / f).parent.mkdir(parents=True, exist_ok=True)
            (root / "images" / f).write_bytes(b"")
    _write_meta(root, rows)
    df = prepare.prepare_dataset(
        kind,
        {"kind": kind, "path": str(root), "list": str(SPLITS / "testsets" / lst)},
        {},
        tmp_path / "out.csv",
        tmp_path / "out.json",
    )
    assert len(df) == n and df["label"].sum() == n_mel
    assert df["image_id"].str.lower().tolist() == listed["image"].str.lower().tolist()
    # a list naming an image the release does not have: a clear error naming the list
    bad = tmp_path / "bad.csv"
    listed.assign(image=listed["image"].where(listed.index != 3, "nosuch99")).to_csv(
        bad, sep=";", index=False
    )
    with pytest.raises(InputError, match=r"bad\.csv: 1 of .* not in the index, e\.g\. \['nosuch99'\]"):
        derm7pt.index_derm7pt(root, col, subset_list=bad)


# --- Dermofit ------------------------------------------------------------------------------------------
def make_dermofit(root: Path, per_class=None, ids=None) -> Path:
    """One folder per class, one folder per lesion holding <id>.png and <id>mask.png (files may be empty)."""
    if ids is None:
        per_class = per_class or {c: 2 for c in dermofit.DERMOFIT_CLASSES}
        ids = {c: [f"{c[0]}{k}{c.lower()}" for k in range(n)] for c, n in per_class.items()}
    for cls, names in ids.items():
        for i in names:
            d = root / cls / i
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i}.png").write_bytes(b"")
            (d / f"{i}mask.png").write_bytes(b"")
    return root


def test_dermofit_drops_carcinomas(tmp_path):
    rel = make_dermofit(tmp_path / "dermofit")
    report = {}
    df = dermofit.index_dermofit(rel, report=report)
    assert len(df) == 16 and df["label"].sum() == 2  # 10 classes x 2, BCC and SCC dropped, MEL = 1
    assert not df["image"].str.contains("mask").any() and not df["category"].isin(["BCC", "SCC"]).any()
    assert report["classes"]["BCC"] == 2


DERMOFIT_CODES = {
    "1.1.": "ML",
    "1.2.": "DF",
    "1.5.": "SK",
    "1.6.2.": "VASC",
    "1.6.3.": "PYO",
    "2.1.": "AK",
    "2.2.": "IEC",
    "3.2.": "MEL",
}


@needs_splits
def test_dermofit_authors_list(tmp_path):
    lst = SPLITS / "testsets" / "dermofit.csv"
    listed = datasets.read_split_list(lst)
    ids: dict[str, list[str]] = {c: [] for c in dermofit.DERMOFIT_CLASSES}
    for iid, code in zip(listed["image"], listed["diagnosis"]):
        ids[DERMOFIT_CODES[code]].append(iid)
    ids["BCC"] = [f"Xbcc{k}" for k in range(239)]
    ids["SCC"] = [f"Xscc{k}" for k in range(88)]
    rel = make_dermofit(tmp_path / "release" / "Dermofit", ids=ids)  # one folder level inside the path
    inv = manual.check_manual_dataset("dermofit", {"kind": "dermofit", "path": str(tmp_path / "release")})
    assert inv["images"] == 1300 and inv["classes"]["MEL"] == 76
    df = dermofit.index_dermofit(tmp_path / "release", subset_list=lst)
    assert len(df) == 973 and df["label"].sum() == 76 and df["image_id"].iloc[0] == "D226b"
    assert rel.exists()


# --- manual datasets: what to obtain, from where, where to put it ---------------------------------------
def test_manual_dataset_missing_or_incomplete(tmp_path):
    cfg = {"kind": "derm7pt", "path": str(tmp_path / "data" / "derm7pt")}
    with pytest.raises(InputError) as e:
        manual.check_manual_dataset("derm7pt_derm", cfg)
    msg = str(e.value)
    assert (
        "https://derm.cs.sfu.ca" in msg
        and "data/derm7pt/meta/meta.csv" in msg
        and "datasets.derm7pt_derm.path" in msg
    )
    rel = make_derm7pt(tmp_path / "data" / "derm7pt")
    with pytest.raises(InputError, match=r"13 cases, the release has 1011"):
        manual.check_manual_dataset("derm7pt_derm", cfg)
    inv = manual.check_manual_dataset("derm7pt_derm", {**cfg, "check_counts": False})
    assert inv["cases"] == 13
    os.remove(rel / "images" / "Ccc" / "Ccc014.jpg")
    with pytest.raises(
        InputError, match=r"incomplete.*1 of 13 'derm' image\(s\).*Ccc014\.jpg.*derm\.cs\.sfu\.ca"
    ):
        manual.check_manual_dataset("derm7pt_derm", {**cfg, "check_counts": False})
    manual.check_manual_dataset("derm7pt_clinic", {**cfg, "kind": "derm7pt_clinic", "check_counts": False})

    dcfg = {"kind": "dermofit", "path": str(tmp_path / "dermofit")}
    with pytest.raises(
        InputError,
        match=r"Dermofit.*licensing\.edinburgh-innovations\.ed\.ac\.uk.*"
        r"dermofit/AK, .*datasets\.dermofit\.path",
    ):
        manual.check_manual_dataset("dermofit", dcfg)
    make_dermofit(tmp_path / "dermofit", per_class={c: 1 for c in dermofit.DERMOFIT_CLASSES if c != "PYO"})
    with pytest.raises(InputError, match=r"class folder\(s\) \['PYO'\] not found"):
        manual.check_manual_dataset("dermofit", dcfg)
    make_dermofit(tmp_path / "dermofit", per_class={"PYO": 1})
    with pytest.raises(InputError, match=r"image counts differ"):
        manual.check_manual_dataset("dermofit", dcfg)
    assert manual.check_manual_dataset("dermofit", {**dcfg, "check_counts": False})["images"] == 10


# --- integrity ---------------------------------------------------------------------------------------
def test_check_images_reports_each_bad_file(tmp_path):
    good = tmp_path / "good.jpg"
    _img(good, 1, (64, 48))
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    _img(tmp_path / "p.png", 2, (64, 48))
    png = (tmp_path / "p.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) - 40])
    names = ["good.jpg", "truncated.jpg", "empty.jpg", "text.png", "truncated.png", "missing.jpg", "p.png"]
    index = pd.DataFrame(
        {
            "image": [str(tmp_path / n) for n in names],
            "label": [0, 1, 0, 1, 0, 1, 0],
            "diagnosis": "x",
            "dataset": "d",
        }
    )
    with pytest.raises(InputError) as e:
        integrity.check_images(index, on_bad="fail", source="idx.csv")
    msg = str(e.value)
    assert "idx.csv: 5 of 7 file(s) cannot be decoded" in msg and "on_bad_image: drop" in msg
    for n in names[1:6]:
        assert str(tmp_path / n) in msg
    assert str(good) + " (" not in msg
    kept, report = integrity.check_images(index, on_bad="drop")
    assert [Path(p).name for p in kept["image"]] == ["good.jpg", "p.png"]
    assert sorted(Path(p).name for p in report["file"]) == sorted(names[1:6])
    problems = report.set_index("file")["problem"]
    assert problems[str(tmp_path / "truncated.jpg")].startswith("OSError")  # PIL's decoder's own message
    assert problems[str(tmp_path / "empty.jpg")] == "empty file"
    assert problems[str(tmp_path / "missing.jpg")] == "file not found"
    # a label map that is not one-channel is reported too
    rgb_mask = tmp_path / "m.png"
    _img(rgb_mask, 3)
    one = index.iloc[[0]].assign(mask=str(rgb_mask))
    with pytest.raises(InputError, match=r"m\.png \(label map must be a one-channel image"):
        integrity.check_images(one)


def test_check_index_images_never_overwrites_on_failure(tmp_path):
    _img(tmp_path / "a.jpg", 1)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff")
    src = tmp_path / "prepared.csv"
    pd.DataFrame({"image": [str(tmp_path / "a.jpg")], "label": [1], "diagnosis": "m", "dataset": "d"}).to_csv(
        src, index=False
    )
    out, rep = tmp_path / "index.csv", tmp_path / "integrity.csv"
    integrity.check_index_images(src, out, rep)
    before = out.read_bytes()
    pd.DataFrame(
        {
            "image": [str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")],
            "label": [1, 0],
            "diagnosis": "m",
            "dataset": "d",
        }
    ).to_csv(src, index=False)
    with pytest.raises(InputError, match=r"b\.jpg"):
        integrity.check_index_images(src, out, rep)
    assert out.read_bytes() == before and pd.read_csv(rep).empty
    integrity.check_index_images(src, out, rep, on_bad="drop")
    assert len(pd.read_csv(out)) == 1 and pd.read_csv(rep)["file"].tolist() == [str(tmp_path / "b.jpg")]


def test_prepare_never_overwrites_a_finished_index_on_bad_input(tmp_path):
    rel = make_isic2019(tmp_path)
    cfg = {"kind": "isic2019"}
    inputs = {"ground_truth": rel["ground_truth"], "images": rel["images"], "metadata": rel["metadata"]}
    out = tmp_path / "prepared.csv"
    prepare.prepare_dataset("isic2019", cfg, inputs, out, tmp_path / "prepared.json")
    before = out.read_bytes()
    pd.read_csv(rel["ground_truth"]).drop(columns=["image"]).to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(InputError, match=r"broken\.csv.*\['image'\]"):
        prepare.prepare_dataset("isic2019", cfg, {**inputs, "ground_truth": tmp_path / "broken.csv"}, out)
    assert out.read_bytes() == before


# --- splits: the authors' published lists, the split check -------------------------------------------
@needs_splits
def test_isic2019_authors_split_end_to_end(tmp_path):
    """An ISIC 2019 release holding the authors' images (+ 781 melanomas outside their parts, carcinomas and
    '_downsampled' file names) -> index -> the authors' parts and reduced sets -> the split check."""
    parts = {
        "train": SPLITS / "isic2019-full-train-pool.csv",
        "val": SPLITS / "isic2019-val.csv",
        "test": SPLITS / "testsets" / "isic2019-test.csv",
    }
    lists = {k: datasets.read_split_list(v) for k, v in parts.items()}
    rows, n = [], 0
    images = tmp_path / "images" / "ISIC_2019_Training_Input"
    images.mkdir(parents=True)
    for k, df in lists.items():
        for img, label, nv in zip(df["image"], df["label"], df["NV"]):
            iid = datasets.image_id(img)
            name = iid + ("_downsampled" if n % 97 == 0 else "")
            cls = "MEL" if label == "1" else ("NV" if nv == "1.0" else "BKL")
            rows.append((name, cls, f"L{n}"))
            n += 1
    rows += [(f"ISIC_99{k:05d}", "MEL", f"X{k}") for k in range(781)] + [("ISIC_9800001", "BCC", "Y1")]
    for name, _, _ in rows:
        (images / f"{name}.jpg").write_bytes(b"")
    gt = tmp_path / "gt.csv"
    gt.write_text(
        ",".join(["image"] + CLASSES) + "\n" + "".join(",".join([r[0]] + _onehot(r[1])) + "\n" for r in rows)
    )
    meta = tmp_path / "meta.csv"
    meta.write_text("image,lesion_id\n" + "".join(f"{r[0]},{r[2]}\n" for r in rows))
    index = isic2019.index_isic2019(gt, tmp_path / "images", meta)
    assert len(index) == 20599 + 781 and index["label"].sum() == 3741 + 781

    got = datasets.import_split_lists(index, parts)
    assert [(len(got[k]), int(got[k]["label"].sum())) for k in parts] == [
        (14805, 3121),
        (1931, 224),
        (3863, 396),
    ]
    reduced = splits.import_reduced_lists(
        got["train"], {"1/4": sorted((SPLITS / "reduced-1_4").glob("train_*.csv"))}
    )
    assert len(reduced["1/4"]) == 10
    assert all(len(r) == 3701 and r["label"].sum() == 780 for r in reduced["1/4"])
    counts, report = splits.check_splits(got, {"isic19": got["test"]}, reduced)
    c = counts.set_index("part")
    assert (
        c.loc["train", "n"] == 14805
        and c.loc["val", "melanoma"] == 224
        and c.loc["testset:isic19", "benign"] == 3467
    )
    assert report["ok"] and all(x["shared_images"] == 0 for x in report["overlap_checks"])

    # a lesion shared by a training and a test image, and a reduced set leaving the training part: both named
    leak = {k: v.copy() for k, v in got.items()}
    leak["test"].loc[0, "lesion_id"] = leak["train"]["lesion_id"].iloc[5]
    with pytest.raises(
        InputError, match=r"(?s)train and test share 1 lesion\(s\).*reduced 1/4 replicate 0 has 1 image"
    ):
        splits.check_splits(leak, {}, {"1/4": [pd.concat([reduced["1/4"][0], got["val"].iloc[:1]])]})
    # a reduced list naming an image outside the training part: the error names the file
    bad = tmp_path / "train_0.csv"
    pd.DataFrame({"image": [got["val"]["image_id"].iloc[0]], "label": [got["val"]["label"].iloc[0]]}).to_csv(
        bad, index=False
    )
    with pytest.raises(
        InputError, match=r"train_0\.csv: 1 of 1 image id\(s\) of split 'reduced 1/4 replicate 0"
    ):
        splits.import_reduced_lists(got["train"], {"1/4": [bad]})


def test_check_splits_flags_same_image_across_datasets():
    a = pd.DataFrame(
        {
            "image": ["x/ISIC_1.jpg", "x/ISIC_2.jpg"],
            "label": [0, 1],
            "diagnosis": "n",
            "dataset": "a",
            "lesion_id": ["", ""],
        }
    )
    t = pd.DataFrame(
        {
            "image": ["y/isic_2_downsampled.png"],
            "label": [1],
            "diagnosis": "n",
            "dataset": "b",
            "lesion_id": [""],
        }
    )
    with pytest.raises(InputError, match=r"train and testset:ext share 1 image"):
        splits.check_splits({"train": a, "val": a.iloc[:0], "test": a.iloc[:0]}, {"ext": t})
    # empty lesion ids never count as shared; test sets may overlap each other
    counts, _ = splits.check_splits({"train": a.iloc[:1], "val": a.iloc[:0], "test": t}, {"t1": t, "t2": t})
    assert counts["part"].tolist() == ["train", "val", "test", "testset:t1", "testset:t2"]


# --- sources: URLs, overrides, downloads through ganaug.downloads --------------------------------------
def test_sources_defaults_overrides_and_local(tmp_path):
    s = sources.sources("isic2019", {"kind": "isic2019"})
    assert set(s) == {"images", "ground_truth", "metadata"}
    assert s["images"]["url"].endswith("/2019/ISIC_2019_Training_Input.zip")
    assert s["images"]["download"] == "results/data/raw/isic2019/downloads/ISIC_2019_Training_Input.zip"
    assert s["images"]["path"] == "results/data/raw/isic2019/extracted/images"
    assert s["ground_truth"]["path"] == s["ground_truth"]["download"]
    (tmp_path / "already").mkdir()
    s = sources.sources(
        "i19",
        {
            "kind": "isic2019",
            "masks": True,
            "data_dir": str(tmp_path / "d"),
            "files": {
                "images": {"local": str(tmp_path / "already")},
                "metadata": {"url": "https://example.org/m.csv", "sha256": "ab" * 32},
            },
        },
    )
    assert set(s) == {"images", "ground_truth", "metadata", "masks_task1", "masks_task2"}
    assert s["images"]["download"] is None and s["images"]["path"] == str(tmp_path / "already")
    assert (
        s["metadata"]["download"] == f"{tmp_path}/d/downloads/m.csv" and s["metadata"]["sha256"] == "ab" * 32
    )
    with pytest.raises(InputError, match=r"datasets\.x\.files\.imgs: unknown file"):
        sources.sources("x", {"kind": "isic2020", "files": {"imgs": {}}})
    assert sources.sources("t", {"kind": "toyderm"}) == {}


def test_fetch_and_extract_through_downloads(tmp_path):
    pytest.importorskip("ganaug.downloads")
    src = tmp_path / "src"
    src.mkdir()
    (src / "gt.csv").write_text("a,b\n1,2\n")
    with zipfile.ZipFile(src / "imgs.zip", "w") as z:
        z.writestr("ISIC_2019_Training_Input/ISIC_0000001.jpg", b"jpegbytes")
    cfg = {
        "kind": "isic2020",
        "data_dir": str(tmp_path / "raw"),
        "files": {
            "images": {"url": (src / "imgs.zip").as_uri()},
            "ground_truth": {"url": (src / "gt.csv").as_uri()},
        },
    }
    s = sources.sources("d", cfg)
    p = sources.fetch_source(s["ground_truth"])
    assert p.read_text() == "a,b\n1,2\n" and Path(str(p) + ".sha256").exists()
    sources.fetch_source(s["images"])
    out = sources.extract_source(s["images"], s["images"]["path"])
    assert (out / "ISIC_2019_Training_Input" / "ISIC_0000001.jpg").read_bytes() == b"jpegbytes"


# --- the workflow: config checks, and the data stage on fixture releases -------------------------------
def _workflow_config(tmp_path):
    rel = make_isic2019(tmp_path / "isic")
    make_dermofit(tmp_path / "dermofit")
    return {
        "seed": 3,
        "replicates": 1,
        "datasets": {
            "isic": {
                "kind": "isic2019",
                "masks": True,
                "data_dir": str(tmp_path / "raw"),
                "files": {
                    "images": {"local": str(rel["images"])},
                    "ground_truth": {"local": str(rel["ground_truth"])},
                    "metadata": {"local": str(rel["metadata"])},
                    "masks_task1": {"local": str(rel["task1"])},
                    "masks_task2": {"local": str(rel["task2"])},
                },
            },
            "dfit": {
                "kind": "dermofit",
                "path": str(tmp_path / "dermofit"),
                "check_counts": False,
                "on_bad_image": "drop",
            },
        },
        "split": {"dataset": "isic", "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "testsets": {"indist": {"split": "test"}, "dermofit": {"dataset": "dfit"}},
        "classifier": {"model": "timm:test_resnet"},
        "experiments": {"augmentation": [{"ratio": "1:0", "group": "baseline"}]},
    }


def test_config_checks_real_datasets(tmp_path):
    from ganaug.config_check import ConfigError, check_config

    cfg = _workflow_config(tmp_path)
    cfg["split"]["group_by"] = "lesion_id"
    check_config(cfg, workdir=tmp_path)
    cfg["datasets"]["dfit"].pop("path")
    cfg["datasets"]["dfit"]["masks"] = True
    cfg["datasets"]["isic"]["files"]["metadata"]["local"] = "nowhere.csv"
    cfg["datasets"]["isic"]["masks"] = False
    cfg["experiments"]["augmentation"].append({"ratio": "1:1/2", "gan": "spade", "group": "gan"})
    cfg["split"]["reduced_lists"] = {"1/4": ["missing_0.csv"]}
    with pytest.raises(ConfigError) as e:
        check_config(cfg, workdir=tmp_path)
    msg = str(e.value)
    for key in (
        "datasets.dfit.path: required",
        "datasets.dfit.masks: not used by kind 'dermofit'",
        "datasets.isic.files.metadata.local: not found",
        "datasets.isic.masks: the design uses spade",
        "split.reduced_lists.1/4[0]: file not found",
    ):
        assert key in msg, msg


def test_workflow_data_stage_on_fixture_releases(tmp_path):
    """One snakemake run (prepare_data, --keep-going) on fixture releases: label maps, index, integrity (a bad
    Dermofit file dropped), split, split check, test sets; a manual dataset not in place stops its own job
    with the message saying what to obtain and where to put it."""
    cfg = _workflow_config(tmp_path)
    cfg["datasets"]["gone"] = {"kind": "derm7pt", "path": str(tmp_path / "nowhere")}
    for p in (tmp_path / "dermofit").rglob("*.png"):
        if "mask" not in p.name:
            _img(p, zlib.crc32(p.name.encode()), (8, 8), fmt="PNG")
    bad = next(p for p in (tmp_path / "dermofit" / "SK").rglob("*.png") if "mask" not in p.name)
    bad.write_bytes(b"broken")
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2"]
    run = subprocess.run(
        cmd + ["--keep-going", "prepare_data", "results/data/index/gone.csv"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0  # the missing dataset
    log = (work / "logs" / "data" / "check_manual_dataset" / "gone.log").read_text()
    assert "https://derm.cs.sfu.ca" in log and f"{tmp_path}/nowhere/meta/meta.csv" in log
    assert not (work / "results" / "data" / "index" / "gone.csv").exists()
    data = work / "results" / "data"
    idx = pd.read_csv(data / "index" / "isic.csv", keep_default_na=False)
    assert len(idx) == 10 and (idx["mask"] != "").sum() == 2, run.stderr[-3000:]
    check = pd.read_csv(data / "splits" / "check.csv").set_index("part")
    assert check.loc[["train", "val", "test"], "n"].sum() == 10 and check.loc["testset:dermofit", "n"] == 15
    assert pd.read_csv(data / "integrity" / "dfit.csv")["file"].tolist() == [str(bad)]
    assert len(pd.read_csv(data / "testsets" / "dermofit.csv")) == 15
    assert (data / "splits" / "train.csv").exists() and (data / "testsets" / "indist.csv").exists()


def test_workflow_fails_on_a_download_damaged_after_prepare_data(tmp_path):
    """The issue's case: a public ISIC 2019 release (served on 127.0.0.1) through prepare_data; then its
    GroundTruth CSV is truncated in place (its .sha256 record stays) and prepare_data runs again: the index
    job fails naming the file and saying how to fetch it again, and the split is left as it was. Doing as
    the message says (delete it, run again) downloads it again and gives the same split."""
    from http_server import FileServer

    rel = make_isic2019(tmp_path / "release")
    images = rel["images"] / "ISIC_2019_Training_Input"
    archive = tmp_path / "ISIC_2019_Training_Input.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(images.iterdir()):
            z.write(f, f"ISIC_2019_Training_Input/{f.name}")
    server = FileServer({f"/2019/{p.name}": p.read_bytes() for p in (archive, rel["ground_truth"], rel["metadata"])})
    try:
        cfg = _workflow_config(tmp_path)
        cfg["datasets"] = {"isic2019": {"kind": "isic2019", "files": {
            role: {"url": f"{server.url}/2019/{name}"} for role, name in (
                ("images", archive.name), ("ground_truth", rel["ground_truth"].name),
                ("metadata", rel["metadata"].name))}}}
        cfg["split"]["dataset"] = "isic2019"
        cfg["testsets"] = {"indist": {"split": "test"}}
        work = tmp_path / "work"
        (work / "config").mkdir(parents=True)
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2",
               "prepare_data"]

        def prepare_data():
            return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

        r = prepare_data()
        assert r.returncode == 0, r.stderr[-3000:]
        splits = work / "results" / "data" / "splits"
        pool = {p: (splits / f"{p}.csv").read_text() for p in ("train", "val", "test")}
        assert sum(len(v.splitlines()) - 1 for v in pool.values()) == 10  # the 10 images the study keeps

        gt = work / "results/data/raw/isic2019/downloads/ISIC_2019_Training_GroundTruth.csv"
        assert (work / "results/data/raw/isic2019/downloads/ISIC_2019_Training_GroundTruth.csv.sha256").exists()
        keep = sum(len(line) for line in gt.read_bytes().splitlines(keepends=True)[:6])
        with open(gt, "r+b") as f:  # truncated in place, at a line end: still a well-formed CSV
            f.truncate(keep)
        r = prepare_data()
        assert r.returncode != 0, "a damaged download was indexed: " + r.stderr[-3000:]
        log = (work / "logs/data/index_isic/isic2019.log").read_text()
        assert f"{gt}: checksum mismatch" in log or f"{gt.relative_to(work)}: checksum mismatch" in log, log[-3000:]
        assert f"delete it and run again to download it again from {server.url}/2019/{gt.name}" in log
        assert {p: (splits / f"{p}.csv").read_text() for p in pool} == pool  # nothing rewritten

        gt.unlink()  # as the message says
        r = prepare_data()
        assert r.returncode == 0, r.stderr[-3000:]
        assert {p: (splits / f"{p}.csv").read_text() for p in pool} == pool
    finally:
        server.close()
