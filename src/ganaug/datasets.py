"""Index CSVs (one row per image), grouped stratified splits, and import of the authors' split lists.

An index CSV has the columns ``INDEX_COLUMNS``: ``image`` (path), ``label`` (1 = melanoma, 0 = benign),
``diagnosis``, ``dataset``, ``lesion_id`` and ``mask`` (the last two may be empty). Every test set, the
training pool and the validation set are written in this format.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from .io import InputError, write_csv

INDEX_COLUMNS = ["image", "label", "diagnosis", "dataset", "lesion_id", "mask"]
REQUIRED_COLUMNS = ["image", "label", "diagnosis", "dataset"]

# The study's split of ISIC 2019 (train 14,805 / val 1,931 / test 3,863 of 20,599 images).
STUDY_COUNTS = {"train": 14805, "val": 1931, "test": 3863}
STUDY_FRACTIONS = {k: v / sum(STUDY_COUNTS.values()) for k, v in STUDY_COUNTS.items()}


def _empty(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and v.strip() == "")


def validate_index(df: pd.DataFrame, source: str = "index") -> pd.DataFrame:
    """Check the required columns and labels; return a copy with label int64, optional columns filled ('')."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; an index needs {REQUIRED_COLUMNS}")
    df = df.copy()
    if df["image"].isna().any() or (df["image"].astype(str).str.strip() == "").any():
        rows = list(np.flatnonzero(df["image"].isna() | (df["image"].astype(str).str.strip() == ""))[:5] + 2)
        raise InputError(f"{source}: empty 'image' value in line(s) {rows}")
    lab = pd.to_numeric(df["label"], errors="coerce")
    bad = lab.isna() | ~lab.isin([0, 1])
    if bad.any():
        idx = np.flatnonzero(bad.to_numpy())[:5]
        vals = [df["label"].iloc[i] for i in idx]
        raise InputError(
            f"{source}: column 'label' must be 0 (benign) or 1 (melanoma); bad values {vals} in line(s) "
            f"{[int(i) + 2 for i in idx]}"
        )
    df["label"] = lab.astype(np.int64)
    for col in ("lesion_id", "mask"):
        if col not in df.columns:
            df[col] = ""
    for col in ("image", "diagnosis", "dataset", "lesion_id", "mask"):
        df[col] = df[col].fillna("").astype(str)
    return df


def read_index(path) -> pd.DataFrame:
    """Read and validate an index CSV (InputError naming the file and the problem)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: index CSV not found")
    try:
        df = pd.read_csv(
            path,
            dtype={"lesion_id": str, "mask": str, "diagnosis": str, "dataset": str, "image": str},
            keep_default_na=False,
            na_values=[""],
        )
    except Exception as e:
        raise InputError(f"{path}: cannot read index CSV ({type(e).__name__}: {e})") from e
    return validate_index(df, str(path))


def write_index(path, df: pd.DataFrame) -> None:
    """Validate and write an index CSV atomically (INDEX_COLUMNS first, any extra columns after)."""
    df = validate_index(df, str(path))
    cols = INDEX_COLUMNS + [c for c in df.columns if c not in INDEX_COLUMNS]
    write_csv(path, df[cols])


# --- splits -------------------------------------------------------------------------------------------
def _apportion(n: int, fractions: list[float]) -> list[int]:
    """Integer counts summing to n, proportional to fractions (largest remainder, ties to the first part)."""
    raw = [Fraction(f).limit_denominator(10**9) * n for f in fractions]
    base = [math.floor(r) for r in raw]
    rest = n - sum(base)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


def split_dataset(
    index: pd.DataFrame, fractions: dict[str, float], seed: int, group_col: str = "lesion_id"
) -> dict[str, pd.DataFrame]:
    """Seeded split stratified by label that keeps every group (e.g. lesion) inside one part.

    Rows with an empty group value form their own group. Per class, the number of images in each part is
    the largest-remainder rounding of fraction * class size; groups of several images are placed first
    (largest first, random order among equals), each into the part with the largest remaining need,
    then single images fill the remaining needs exactly. Returns {part: rows in original order}.
    With only single-image groups (or enough of them) every part/class count is within +-1 of
    fraction * class size.
    """
    if not fractions:
        raise InputError("split: fractions must name at least one part")
    names = list(fractions)
    fr = [float(fractions[k]) for k in names]
    if any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise InputError(f"split: fractions {fractions} must be >= 0 and sum to 1")
    index = validate_index(index, "split input")
    n = len(index)
    if group_col in index.columns:
        groups = index[group_col].fillna("").astype(str).to_numpy()
    else:
        groups = np.array([""] * n, dtype=object)
    keys = np.array([g if g.strip() else f"\x00row{i}" for i, g in enumerate(groups)], dtype=object)
    labels = index["label"].to_numpy()

    # one entry per group: its rows and its label counts; a group is filed under its majority label
    _, inv = np.unique(keys, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.flatnonzero(np.diff(inv[order])) + 1
    members = np.split(order, bounds)
    rng = np.random.default_rng(int(seed))
    perm = rng.permutation(len(members))  # random order among groups of the same size
    need = {}
    for c in (0, 1):
        cnt = _apportion(int((labels == c).sum()), fr)
        need[c] = np.array(cnt, dtype=np.int64)
    assign = np.empty(n, dtype=np.int64)
    sizes = np.array([len(m) for m in members])
    for g in sorted(perm, key=lambda g: -sizes[g]):  # stable: larger groups first, random among equals
        rows = members[g]
        n1 = int(labels[rows].sum())
        n0 = len(rows) - n1
        # the part that can take most of this group without overshooting; then the one needing most
        fit = np.minimum(np.maximum(need[0], 0), n0) + np.minimum(np.maximum(need[1], 0), n1)
        want = need[0] * (n0 > 0) + need[1] * (n1 > 0)
        best = int(np.lexsort((-want, -fit))[0])
        assign[rows] = best
        need[0][best] -= n0
        need[1][best] -= n1
    out = {}
    for i, name in enumerate(names):
        out[name] = index.iloc[np.flatnonzero(assign == i)].reset_index(drop=True)
    return out


# --- the authors' split lists ------------------------------------------------------------------------
def image_id(ref) -> str:
    """The id of an image reference: file stem, any folder prefix removed ('a/ISIC_1.jpg' -> 'ISIC_1')."""
    s = str(ref).strip()
    name = PureWindowsPath(PurePosixPath(s).name).name
    stem = name
    for ext in (
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".JPG",
        ".JPEG",
        ".PNG",
        ".BMP",
        ".TIF",
        ".TIFF",
    ):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return stem


def read_split_list(path) -> pd.DataFrame:
    """Read one published split list (comma or semicolon separated, optional leading index column)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: split list not found")
    try:
        with open(path, newline="") as f:
            head = f.readline()
        sep = ";" if head.count(";") > head.count(",") else ","
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as e:
        raise InputError(f"{path}: cannot read split list ({type(e).__name__}: {e})") from e
    df = df.loc[:, [c for c in df.columns if not (str(c).startswith("Unnamed:") or str(c).strip() == "")]]
    if "image" not in df.columns:
        raise InputError(f"{path}: split list has no 'image' column (columns: {list(df.columns)[:12]})")
    return df


def _loose_id(k: str) -> str:
    """Lower-case id without ISIC 2019's '_downsampled' file-name suffix (the authors' lists omit it)."""
    k = k.lower()
    return k[: -len("_downsampled")] if k.endswith("_downsampled") else k


def import_split_lists(
    index: pd.DataFrame, lists: dict[str, str | Path], check_labels: bool = True
) -> dict[str, pd.DataFrame]:
    """Replicate a published split: {part: index rows listed in that part's file, in the file's order}.

    The index's ids are its `image_id` column when it has one (the real datasets' release ids), else the
    file stems of `image`. A list's ids (its `image` column, any folder prefix and extension removed) are
    matched exactly, else case-insensitively, else with ISIC 2019's '_downsampled' file-name suffix
    ignored. A missing id raises InputError naming the list file and a few ids; with check_labels, a list's
    `label` column (when it has one) must agree with the index.
    """
    index = validate_index(index, "index")
    if "image_id" in index.columns:
        ids = index["image_id"].fillna("").astype(str).map(image_id)
    else:
        ids = index["image"].map(image_id)
    exact: dict[str, int] = {}
    dup = set()
    for i, k in enumerate(ids):
        if k in exact:
            dup.add(k)
        exact[k] = i
    lower: dict[str, list[int]] = {}
    loose: dict[str, list[int]] = {}
    for i, k in enumerate(ids):
        lower.setdefault(k.lower(), []).append(i)
        loose.setdefault(_loose_id(k), []).append(i)
    out = {}
    for part, path in lists.items():
        df = read_split_list(path)
        wanted = df["image"].map(image_id)
        rows, missing, ambiguous = [], [], []
        for k in wanted:
            if k in exact:
                if k in dup:
                    ambiguous.append(k)
                rows.append(exact[k])
            elif len(lower.get(k.lower(), [])) == 1:
                rows.append(lower[k.lower()][0])
            elif len(loose.get(_loose_id(k), [])) == 1:
                rows.append(loose[_loose_id(k)][0])
            else:
                missing.append(k)
        if missing:
            raise InputError(
                f"{path}: {len(missing)} of {len(wanted)} image id(s) of split '{part}' are not in the index, "
                f"e.g. {missing[:5]}"
            )
        if ambiguous:
            raise InputError(f"{path}: image id(s) {sorted(set(ambiguous))[:5]} match several index rows")
        if wanted.duplicated().any():
            raise InputError(
                f"{path}: duplicate image id(s) {list(wanted[wanted.duplicated()].unique()[:5])}"
            )
        sel = index.iloc[rows].reset_index(drop=True)
        if check_labels and "label" in df.columns:
            given = pd.to_numeric(df["label"], errors="coerce").to_numpy()
            bad = np.flatnonzero(~np.isnan(given) & (given != sel["label"].to_numpy()))
            if bad.size:
                raise InputError(
                    f"{path}: label disagrees with the index for {bad.size} image(s), e.g. "
                    f"{[wanted.iloc[i] for i in bad[:5]]}"
                )
        out[part] = sel
    return out
