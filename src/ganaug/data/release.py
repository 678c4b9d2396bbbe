"""Reading a release: its CSV tables, its image files by id, and the common end of every index (column
order, class counts). Shared by the per-dataset modules (isic2019, isic2020, derm7pt, dermofit)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..datasets import INDEX_COLUMNS, import_split_lists, validate_index
from ..io import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class IncompleteRelease(InputError):
    """A hand-placed release lacks something (its module says what); ganaug.data.manual says where to
    get it."""


def read_table(path, required, what: str = "CSV", sep=None) -> pd.DataFrame:
    """A release's CSV as strings (',' or ';' guessed from its header); InputError naming the file when it is
    absent, unreadable or lacks a `required` column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        if sep is None:
            with open(path, newline="", encoding="utf-8-sig") as f:
                head = f.readline()
            sep = ";" if head.count(";") > head.count(",") else ","
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as e:
        raise InputError(f"{path}: cannot read {what} ({type(e).__name__}: {e})") from e
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: {what} lacks column(s) {missing} (columns: {list(df.columns)[:15]})")
    return df


def find_images(folder, exclude=None) -> dict[str, str]:
    """{file stem: path} of every image file under folder (sorted walk; `exclude(stem)` skips files)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: image folder not found")
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            stem, ext = os.path.splitext(f)
            if ext.lower() not in IMAGE_EXTS or f.startswith("."):
                continue
            if exclude is not None and exclude(stem):
                continue
            found.setdefault(stem, os.path.join(root, f))
    return found


def lookup_images(ids, files: dict[str, str], source, folder) -> list[str]:
    """Paths of ids (exact stem, else case-insensitive); InputError naming source and folder if absent."""
    lower: dict[str, list[str]] = {}
    for k, v in files.items():
        lower.setdefault(k.lower(), []).append(v)
    out, missing = [], []
    for i in ids:
        p = files.get(i)
        if p is None and len(lower.get(str(i).lower(), [])) == 1:
            p = lower[str(i).lower()][0]
        if p is None:
            missing.append(i)
        out.append(p)
    if missing:
        raise InputError(
            f"{source}: {len(missing)} of {len(out)} listed image(s) are not in {folder}, e.g. {missing[:5]}"
        )
    return out


def finish_index(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """The index checked (ganaug.datasets.validate_index), INDEX_COLUMNS first."""
    df = validate_index(df, source)
    return df[INDEX_COLUMNS + [c for c in df.columns if c not in INDEX_COLUMNS]].reset_index(drop=True)


def select_by_list(df: pd.DataFrame, list_path, name: str) -> pd.DataFrame:
    """The rows a published list names, in its order (ids matched as by import_split_lists)."""
    return import_split_lists(df, {name: list_path})[name]


def label_counts(df: pd.DataFrame) -> dict:
    """{n, melanoma, benign} of an index, for the reports."""
    return {
        "n": int(len(df)),
        "melanoma": int((df["label"] == 1).sum()),
        "benign": int((df["label"] == 0).sum()),
    }
