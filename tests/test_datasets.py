import numpy as np
import pandas as pd
import pytest

from ganaug import datasets
from ganaug.io import InputError
from authors_splits import SPLITS, needs_splits


def _index(n_ben, n_mel, groups_of_two=0, seed=0):
    labels = np.array([0] * n_ben + [1] * n_mel)
    rng = np.random.default_rng(seed)
    labels = labels[rng.permutation(len(labels))]
    lesion = [f"L{i}" for i in range(len(labels))]
    # make `groups_of_two` pairs of same-label rows share a lesion id
    made = 0
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        for k in range(0, len(idx) - 1, 2):
            if made >= groups_of_two:
                break
            lesion[idx[k + 1]] = lesion[idx[k]]
            made += 1
    return pd.DataFrame(
        {
            "image": [f"img/ISIC_{i:07d}.jpg" for i in range(len(labels))],
            "label": labels,
            "diagnosis": np.where(labels == 1, "melanoma", "nevus"),
            "dataset": "toy",
            "lesion_id": lesion,
            "mask": "",
        }
    )


def test_read_index_validates(tmp_path):
    good = _index(5, 3)
    p = tmp_path / "good.csv"
    datasets.write_index(p, good.drop(columns=["mask", "lesion_id"]))
    df = datasets.read_index(p)
    assert list(df.columns[:6]) == datasets.INDEX_COLUMNS
    assert df["label"].dtype == np.int64 and (df["lesion_id"] == "").all()

    p2 = tmp_path / "nolabel.csv"
    good.drop(columns=["label"]).to_csv(p2, index=False)
    with pytest.raises(InputError, match=r"nolabel\.csv.*label"):
        datasets.read_index(p2)

    p3 = tmp_path / "badlabel.csv"
    bad = good.copy()
    bad.loc[2, "label"] = 2
    bad.to_csv(p3, index=False)
    with pytest.raises(InputError, match=r"badlabel\.csv.*0 \(benign\) or 1"):
        datasets.read_index(p3)
    with pytest.raises(InputError, match="not found"):
        datasets.read_index(tmp_path / "missing.csv")


def _check_stratified(parts, index, fractions):
    for c in (0, 1):
        n_c = int((index["label"] == c).sum())
        for name, f in fractions.items():
            got = int((parts[name]["label"] == c).sum())
            assert abs(got - f * n_c) <= 1, (name, c, got, f * n_c)


def test_split_stratified_within_one_and_complete():
    index = _index(700, 180)
    fractions = {"train": 0.7, "val": 0.1, "test": 0.2}
    parts = datasets.split_dataset(index, fractions, seed=1)
    _check_stratified(parts, index, fractions)
    allimgs = pd.concat(parts.values())["image"]
    assert sorted(allimgs) == sorted(index["image"]) and not allimgs.duplicated().any()


def test_split_keeps_groups_and_is_seeded():
    index = _index(600, 200, groups_of_two=150)
    fractions = {"train": 0.6, "val": 0.15, "test": 0.25}
    parts = datasets.split_dataset(index, fractions, seed=3)
    where = {}
    for name, df in parts.items():
        for lid in df["lesion_id"]:
            assert where.setdefault(lid, name) == name, f"lesion {lid} in two parts"
    _check_stratified(parts, index, fractions)
    again = datasets.split_dataset(index, fractions, seed=3)
    other = datasets.split_dataset(index, fractions, seed=4)
    assert all(parts[k]["image"].tolist() == again[k]["image"].tolist() for k in parts)
    assert parts["test"]["image"].tolist() != other["test"]["image"].tolist()


def test_split_empty_group_rows_are_own_groups():
    index = _index(50, 50)
    index["lesion_id"] = ""
    parts = datasets.split_dataset(index, {"a": 0.5, "b": 0.5}, seed=0)
    assert len(parts["a"]) == 50 and parts["a"]["label"].sum() == 25


def test_split_study_proportions():
    index = _index(20599 - 3741, 3741)
    parts = datasets.split_dataset(index, datasets.STUDY_FRACTIONS, seed=0, group_col="none")
    sizes = {k: len(v) for k, v in parts.items()}
    for k, n in datasets.STUDY_COUNTS.items():
        assert abs(sizes[k] - n) <= 1


def test_split_rejects_bad_fractions():
    with pytest.raises(InputError, match="sum to 1"):
        datasets.split_dataset(_index(5, 5), {"train": 0.5, "test": 0.4}, seed=0)


def test_image_id():
    assert datasets.image_id("ISIC_2019_Training_Input/ISIC_0000004") == "ISIC_0000004"
    assert datasets.image_id("data/x/ISIC_0000004.jpg") == "ISIC_0000004"
    assert datasets.image_id("D226b") == "D226b"


def _fake_index_from_lists(files):
    rows = {}
    for f in files:
        df = datasets.read_split_list(f)
        for img, lab in zip(df["image"], df["label"]):
            iid = datasets.image_id(img)
            rows[iid] = int(float(lab))
    ids = sorted(rows)
    return pd.DataFrame(
        {
            "image": [f"data/images/{i}.jpg" for i in ids],
            "label": [rows[i] for i in ids],
            "diagnosis": "x",
            "dataset": "fake",
        }
    )


@needs_splits
def test_import_authors_lists():
    lists = {
        "train": SPLITS / "isic2019-full-train-pool.csv",
        "val": SPLITS / "isic2019-val.csv",
        "isic19": SPLITS / "testsets" / "isic2019-test.csv",
        "isic20": SPLITS / "testsets" / "isic2020-subset-test.csv",
        "derm7pt_derm": SPLITS / "testsets" / "derm7pt_dermato.csv",
        "dermofit": SPLITS / "testsets" / "dermofit.csv",
        "reduced0": SPLITS / "reduced-1_4" / "train_0.csv",
    }
    index = _fake_index_from_lists(lists.values())
    parts = datasets.import_split_lists(index, lists)
    expect = {
        "train": (14805, 3121),
        "val": (1931, 224),
        "isic19": (3863, 396),
        "isic20": (1743, 581),
        "derm7pt_derm": (872, 252),
        "dermofit": (973, 76),
        "reduced0": (3701, 780),
    }
    for k, (n, n_mel) in expect.items():
        assert len(parts[k]) == n and parts[k]["label"].sum() == n_mel, k
    # list order is kept; the reduced quarter is a subset of the training pool
    first = datasets.read_split_list(lists["val"])["image"].iloc[0]
    assert datasets.image_id(parts["val"]["image"].iloc[0]) == datasets.image_id(first)
    assert set(parts["reduced0"]["image"]) <= set(parts["train"]["image"])
    assert not set(parts["train"]["image"]) & set(parts["isic19"]["image"])


@needs_splits
def test_import_missing_ids_and_label_mismatch(tmp_path):
    lst = SPLITS / "testsets" / "dermofit.csv"
    index = _fake_index_from_lists([lst])
    short = index[~index["image"].str.contains("D226b")]
    with pytest.raises(InputError, match=r"dermofit\.csv.*D226b"):
        datasets.import_split_lists(short, {"dermofit": lst})
    flipped = index.copy()
    flipped.loc[flipped["image"].str.contains("D226b"), "label"] = 1
    with pytest.raises(InputError, match=r"dermofit\.csv.*label disagrees.*D226b"):
        datasets.import_split_lists(flipped, {"dermofit": lst})
    assert len(datasets.import_split_lists(flipped, {"d": lst}, check_labels=False)["d"]) == 973


def test_import_list_formats(tmp_path):
    index = _index(3, 2)
    lab = index["label"].tolist()
    (tmp_path / "semi.csv").write_text(
        f"dataset;image;label\nx;ISIC_0000001;{lab[1]}\nx;ISIC_0000003;{lab[3]}\n"
    )
    (tmp_path / "idx.csv").write_text(f",image,label\n7,ISIC_0000004,{lab[4]}\n")
    (tmp_path / "noimg.csv").write_text("id,label\n1,0\n")
    out = datasets.import_split_lists(index, {"a": tmp_path / "semi.csv", "b": tmp_path / "idx.csv"})
    assert out["a"]["image"].tolist() == ["img/ISIC_0000001.jpg", "img/ISIC_0000003.jpg"]
    assert out["b"]["image"].tolist() == ["img/ISIC_0000004.jpg"]
    with pytest.raises(InputError, match=r"noimg\.csv.*'image'"):
        datasets.import_split_lists(index, {"c": tmp_path / "noimg.csv"})


def test_import_matches_image_id_column_and_isic_downsampled(tmp_path):
    """A real-data index carries the release id in `image_id`; ISIC 2019 file names may end in '_downsampled'
    where the authors' lists give the bare id."""
    index = pd.DataFrame(
        {
            "image": ["raw/a.jpg", "raw/b.jpg", "raw/c.jpg"],
            "label": [1, 0, 0],
            "diagnosis": "x",
            "dataset": "isic",
            "image_id": ["ISIC_0000013_downsampled", "ISIC_0000014", "ISIC_0000015"],
        }
    )
    (tmp_path / "l.csv").write_text(
        "image,label\nISIC_2019_Training_Input/ISIC_0000013,1\nisic_0000015,0\n"
    )
    out = datasets.import_split_lists(index, {"p": tmp_path / "l.csv"})["p"]
    assert out["image"].tolist() == ["raw/a.jpg", "raw/c.jpg"]
    (tmp_path / "u.csv").write_text("image\nISIC_0000099\n")
    with pytest.raises(InputError, match=r"u\.csv: 1 of 1 image id\(s\) of split 'q' are not in the index.*ISIC_0000099"):
        datasets.import_split_lists(index, {"q": tmp_path / "u.csv"})
