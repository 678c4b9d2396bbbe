"""The split and its check: the authors' reduced training sets, the image counts a config expects, the
counts per part and class, and the leakage check (no image or lesion shared between training and test)."""

from __future__ import annotations

import logging
import os
import re

import pandas as pd

from ..datasets import image_id, import_split_lists, write_index
from ..io import InputError, write_csv, write_json
from .isic2019 import isic_id
from .split_lists import list_origin, list_sources

log_default = logging.getLogger("ganaug")


def fraction_id(fraction: str) -> str:
    """File-safe form of a fraction in the paper's notation: '1/4' -> '1-4'."""
    s = str(fraction).strip().replace("/", "-")
    if not re.fullmatch(r"[0-9.\-]+", s):
        raise InputError(f"split.reduced_lists: '{fraction}' is not a fraction like 1/4")
    return s


def import_reduced_lists(train: pd.DataFrame, lists: dict) -> dict[str, list[pd.DataFrame]]:
    """The authors' reduced real training sets: {fraction: [list file of replicate 0, 1, ...]} ->
    {fraction: [rows of `train` per replicate]}. An id outside the training part is an InputError naming
    the file."""
    out = {}
    for frac, files in lists.items():
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        parts = []
        for r, f in enumerate(files):
            part = f"reduced {frac} replicate {r} (within the training part)"
            parts.append(import_split_lists(train, {part: f})[part])
        out[str(frac)] = parts
    return out


def expected_counts(config: dict) -> dict[str, dict]:
    """The image counts a config states, per part of the split check: {part: {images, key}} with parts
    train / val / test, reduced:<fraction id> (every replicate) and testset:<name>; key is the config key."""
    out = {}
    for part, n in ((config.get("split") or {}).get("expected") or {}).items():
        if n is None:
            continue
        name = part if part in ("train", "val", "test") else f"reduced:{fraction_id(part)}"
        out[name] = {"images": int(n), "key": f"split.expected.{part}"}
    for name, ts in (config.get("testsets") or {}).items():
        if (ts or {}).get("expected") is not None:
            out[f"testset:{name}"] = {"images": int(ts["expected"]), "key": f"testsets.{name}.expected"}
    return out


def split_description(config: dict) -> dict:
    """What the study's split is, from the config alone (no file is read, nothing downloaded): its source
    (the published lists and where they come from, or the seeded split) and the counts it is expected to
    have. Returns {dataset, source ('lists' or 'seeded'), origins, lists {key: url or path}, expected
    {part: images}, text (one paragraph)}."""
    split = config["split"]
    specs = list_sources(config)
    origins = []
    for s in specs.values():
        o = list_origin(s["url"]) if s["url"] else "local files"
        if o not in origins:
            origins.append(o)
    src = "lists" if split.get("lists") else "seeded"
    if src == "lists":
        text = f"Split of {split['dataset']}: the published lists ({', '.join(split['lists'])})"
    else:
        fr = split.get("fractions") or {}
        text = (f"Split of {split['dataset']}: seeded (seed {config.get('seed', 2021)}), stratified by label, "
                f"grouped by {split.get('group_by', 'lesion_id')}, fractions "
                + " / ".join(f"{k} {v:g}" for k, v in fr.items()))
    reduced = {f: len(v) for f, v in (split.get("reduced_lists") or {}).items()}
    if reduced:
        text += "; real subsets from published lists: " + ", ".join(f"{f} x{n}" for f, n in reduced.items())
    tests = [k.split(".")[1] for k in specs if k.startswith("datasets.")]
    if tests:
        text += "; the datasets " + ", ".join(tests) + " from published lists"
    if specs:
        pinned = all(s["sha256"] for s in specs.values() if s["url"])
        text += f". Lists from {'; '.join(origins)}" + (", each pinned by sha256" if pinned and any(
            s["url"] for s in specs.values()) else "")
    exp = expected_counts(config)
    if exp:
        def label(part):
            if part.startswith("reduced:"):
                return f"{part.split(':', 1)[1].replace('-', '/')} subset (each replicate)"
            return part.split(":", 1)[-1]

        text += ". Expected images: " + ", ".join(f"{label(p)} {e['images']:,}" for p, e in exp.items())
    text += "."
    return {
        "dataset": split["dataset"],
        "source": src,
        "origins": origins,
        "lists": {k: s["url"] or s["path"] for k, s in specs.items()},
        "expected": {p: e["images"] for p, e in exp.items()},
        "text": text,
    }


def _ids(df: pd.DataFrame) -> pd.Series:
    ids = df["image_id"] if "image_id" in df.columns else df["image"].map(image_id)
    return ids.astype(str).map(isic_id).str.lower()


def split_counts(parts: dict[str, pd.DataFrame], roles: dict[str, str] | None = None) -> pd.DataFrame:
    """Per part: role, images, benign, melanoma, with a label map, distinct lesions."""
    rows = []
    for name, df in parts.items():
        lab = pd.to_numeric(df["label"]).to_numpy()
        lesions = df["lesion_id"].astype(str) if "lesion_id" in df.columns else pd.Series([], dtype=str)
        masks = df["mask"].astype(str) if "mask" in df.columns else pd.Series([], dtype=str)
        rows.append(
            {
                "part": name,
                "role": (roles or {}).get(name, ""),
                "n": int(len(df)),
                "benign": int((lab == 0).sum()),
                "melanoma": int((lab == 1).sum()),
                "with_mask": int((masks.str.len() > 0).sum()),
                "lesions": int(lesions[lesions != ""].nunique()),
            }
        )
    return pd.DataFrame(rows, columns=["part", "role", "n", "benign", "melanoma", "with_mask", "lesions"])


def check_splits(
    parts: dict[str, pd.DataFrame],
    testsets: dict[str, pd.DataFrame],
    reduced: dict[str, list[pd.DataFrame]] | None = None,
    training: tuple[str, ...] = ("train", "val"),
    expected: dict[str, dict] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Counts per part and class, the leakage check and the expected counts.

    Every training-side part (`training`: the training pool and the validation set, which selects models)
    is compared with every other part and test set: a shared image id (file stem, case-insensitive, ISIC
    '_downsampled' ignored) or a shared non-empty lesion_id is an InputError listing them. Every reduced
    training set must lie within 'train'. `expected` ({part: {images, key}}, see `expected_counts`; a
    'reduced:<fraction id>' part is every replicate of that fraction): a part with another number of
    images is an InputError naming the part and the config key. Returns (counts table, report)."""
    roles = {k: ("training" if k in training else "test") for k in parts}
    tables = dict(parts)
    for k, df in testsets.items():
        tables[f"testset:{k}"] = df
        roles[f"testset:{k}"] = "test"
    for frac, reps in (reduced or {}).items():
        for r, df in enumerate(reps):
            tables[f"reduced:{frac}:rep{r}"] = df
            roles[f"reduced:{frac}:rep{r}"] = "reduced"
    counts = split_counts(tables, roles)
    ids = {k: set(_ids(df)) for k, df in tables.items()}
    les = {
        k: set(df["lesion_id"].astype(str)) - {""} if "lesion_id" in df.columns else set()
        for k, df in tables.items()
    }
    problems, checked = [], []
    names = [k for k in tables if roles[k] != "reduced"]
    for a in [k for k in names if roles[k] == "training"]:
        for b in names:
            if b == a or (roles[b] == "training" and names.index(b) < names.index(a)):
                continue
            shared_ids = sorted(ids[a] & ids[b])
            shared_les = sorted(les[a] & les[b])
            checked.append(
                {"a": a, "b": b, "shared_images": len(shared_ids), "shared_lesions": len(shared_les)}
            )
            if shared_ids:
                problems.append(f"{a} and {b} share {len(shared_ids)} image(s), e.g. {shared_ids[:5]}")
            if shared_les:
                problems.append(f"{a} and {b} share {len(shared_les)} lesion(s), e.g. {shared_les[:5]}")
    for frac, reps in (reduced or {}).items():
        for r, df in enumerate(reps):
            extra = sorted(ids[f"reduced:{frac}:rep{r}"] - ids.get("train", set()))
            if extra:
                problems.append(
                    f"reduced {frac} replicate {r} has {len(extra)} image(s) outside 'train', "
                    f"e.g. {extra[:5]}"
                )
    if problems:
        raise InputError(
            "split check: training and test data overlap (or a reduced set leaves the training "
            "part):\n  " + "\n  ".join(problems)
        )
    n_of = dict(zip(counts["part"], counts["n"]))
    wrong = []
    for part, want in (expected or {}).items():
        names = [k for k in n_of if k.startswith(f"{part}:rep")] if part.startswith("reduced:") else (
            [part] if part in n_of else [])
        if not names:
            wrong.append(f"{part}: no such part in the split check (set by {want['key']})")
        for k in names:
            if int(n_of[k]) != int(want["images"]):
                wrong.append(f"{k}: {int(n_of[k]):,} images, expected {int(want['images']):,} ({want['key']})")
    if wrong:
        raise InputError(
            "split check: counts differ from the study's (set the expected counts to null for a split "
            "that is not the study's):\n  " + "\n  ".join(wrong)
        )
    report = {
        "counts": counts.to_dict(orient="records"),
        "overlap_checks": checked,
        "expected": {k: int(v["images"]) for k, v in (expected or {}).items()},
        "ok": True,
    }
    return counts, report


def check_split_files(
    parts: dict, testsets: dict, reduced: dict | None, out_json, out_csv, log=None, expected=None
) -> dict:
    """check_splits on CSV files ({name: path}; reduced {fraction: [path per replicate]}; expected as for
    check_splits); writes the counts table and the JSON report (nothing on failure)."""
    from ..datasets import read_index

    log = log or log_default
    read = {}

    def load(p):
        if str(p) not in read:
            read[str(p)] = read_index(p)
        return read[str(p)]

    counts, report = check_splits(
        {k: load(v) for k, v in parts.items()},
        {k: load(v) for k, v in testsets.items()},
        {f: [load(p) for p in ps] for f, ps in (reduced or {}).items()},
        expected=expected,
    )
    for row in counts.itertuples():
        log.info(
            "%-28s %-9s %6d images: %6d benign, %5d melanoma, %5d with a label map",
            row.part,
            row.role,
            row.n,
            row.benign,
            row.melanoma,
            row.with_mask,
        )
    write_csv(out_csv, counts)
    write_json(out_json, report)
    return report


def write_reduced_list(train_csv, list_path, out_csv, fraction: str, replicate: int) -> pd.DataFrame:
    """One replicate's reduced real training set from the authors' list (rows of train_csv, list order)."""
    from ..datasets import read_index

    name = f"reduced {fraction} replicate {replicate} (within the training part)"
    part = import_split_lists(read_index(train_csv), {name: list_path})[name]
    write_index(out_csv, part)
    return part
