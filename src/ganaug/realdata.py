"""The study's real datasets: where each comes from, and its preprocessing into an index CSV.

One function per dataset kind turns a release folder (downloaded and extracted, or placed by hand) into an
index (``ganaug.datasets.INDEX_COLUMNS`` + ``image_id``, the release's own image id):

- ``index_isic2019``: GroundTruth one-hot CSV + Metadata CSV (``lesion_id``); keeps MEL (label 1), NV,
  BKL, AK, DF and VASC (label 0); drops BCC, SCC (carcinomas) and UNK. With ``label_maps`` (ISIC 2018
  Task 1/2 masks made into label maps by ``build_isic2018_label_maps``) the ``mask`` column is filled by
  ISIC id.
- ``index_isic2020``: the study's ``isic20`` test set, 1,743 images (581 melanoma + 1,162 benign): the
  authors' list when given (exact), else a seeded selection with the same counts per diagnosis
  (``ISIC2020_SUBSET``).
- ``index_derm7pt``: meta/meta.csv, dermoscopic (``derm``) or clinical (``clinic``) images; keeps every
  nevus subtype, every melanoma subtype and seborrheic keratosis; near duplicates removed (exact duplicate
  files, then a pHash rule, see ``drop_near_duplicates``) unless the authors' list is given, which then
  defines the set exactly.
- ``index_dermofit``: one folder per class; drops BCC and SCC (973 of 1,300 images).

Manual datasets (derm7pt, Dermofit) are checked by ``check_manual_dataset``, which says what to obtain,
from where and where to put it. ``check_images`` decodes every image once (integrity); ``check_splits``
counts every part per class and fails on any training / test overlap (same image id or lesion id).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets import INDEX_COLUMNS, image_id, import_split_lists, validate_index, write_index
from .io import InputError, atomic_path, seed_from, write_csv, write_json

log_default = logging.getLogger("ganaug")

ISIC_BUCKET = "https://isic-challenge-data.s3.amazonaws.com"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# Public files per kind: role -> url (+ archive: extracted before use; masks: only with `masks: true`).
PUBLIC_FILES = {
    "isic2019": {
        "images": {"url": f"{ISIC_BUCKET}/2019/ISIC_2019_Training_Input.zip", "archive": True},
        "ground_truth": {"url": f"{ISIC_BUCKET}/2019/ISIC_2019_Training_GroundTruth.csv"},
        "metadata": {"url": f"{ISIC_BUCKET}/2019/ISIC_2019_Training_Metadata.csv"},
        "masks_task1": {
            "url": f"{ISIC_BUCKET}/2018/ISIC2018_Task1_Training_GroundTruth.zip",
            "archive": True,
            "masks": True,
        },
        "masks_task2": {
            "url": f"{ISIC_BUCKET}/2018/ISIC2018_Task2_Training_GroundTruth_v3.zip",
            "archive": True,
            "masks": True,
        },
    },
    "isic2020": {
        "images": {"url": f"{ISIC_BUCKET}/2020/ISIC_2020_Training_JPEG.zip", "archive": True},
        "ground_truth": {"url": f"{ISIC_BUCKET}/2020/ISIC_2020_Training_GroundTruth.csv"},
    },
}
MANUAL_KINDS = ("derm7pt", "derm7pt_clinic", "dermofit")
REAL_KINDS = tuple(PUBLIC_FILES) + MANUAL_KINDS

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
# derm7pt: 1,011 cases in meta/meta.csv; its image columns per kind.
DERM7PT_CASES = 1011
DERM7PT_COLUMN = {"derm7pt": "derm", "derm7pt_clinic": "clinic"}
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

MANUAL_SOURCES = {
    "derm7pt": {
        "title": "the derm7pt (Seven-point checklist) dataset",
        "url": "https://derm.cs.sfu.ca",
        "why": "free registration required",
        "layout": "{path}/meta/meta.csv and {path}/images/ (the release's folders, unchanged)",
    },
    "dermofit": {
        "title": "the Dermofit Image Library",
        "url": "https://licensing.edinburgh-innovations.ed.ac.uk/product/dermofit-image-library",
        "why": "licence required",
        "layout": "{path}/AK, {path}/BCC, ..., {path}/VASC (one folder per class: AK, BCC, DF, IEC, MEL, ML, "
        "PYO, SCC, SK, VASC, 1,300 images)",
    },
}
MANUAL_SOURCES["derm7pt_clinic"] = MANUAL_SOURCES["derm7pt"]


# --- where the files come from -----------------------------------------------------------------------
def data_dir(name: str, cfg: dict) -> str:
    """Folder for a public dataset's downloads and extracted archives."""
    return str(cfg.get("data_dir") or f"results/data/raw/{name}").rstrip("/")


def dataset_pattern(datasets: dict, *kinds: str) -> str:
    """Regex matching the names of the datasets of these kinds (a never-matching one if none): a wildcard
    constraint that gives each kind its rules."""
    names = [re.escape(d) for d, c in datasets.items() if c.get("kind") in kinds]
    return "|".join(names) or "^$"


def url_filename(url: str) -> str:
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(str(url)).path))
    if not name or not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise InputError(f"{url}: cannot name a file after this URL (give one that ends in a file name)")
    return name


def sources(name: str, cfg: dict) -> dict[str, dict]:
    """The files of a public dataset: {role: spec}. A spec has url, sha256, mirror, local, archive and
    - download: where the file is downloaded to (None when `local` names a copy),
    - source: the file to read or extract (download or local),
    - path: what the preprocessing reads (the file, or the folder an archive is extracted into; a `local`
      folder is a folder holding the file under its name, or for an archive without it there, the
      archive's content already extracted).
    - record: the download's path (for a `local` copy: where its checksum is recorded, <record>.sha256).
    `datasets.<name>.files.<role>` overrides url / sha256 / mirror / local of the defaults (PUBLIC_FILES)."""
    kind = cfg.get("kind")
    if kind not in PUBLIC_FILES:
        return {}
    defaults = PUBLIC_FILES[kind]
    user = cfg.get("files") or {}
    unknown = sorted(set(user) - set(defaults))
    if unknown:
        raise InputError(
            f"datasets.{name}.files.{unknown[0]}: unknown file for kind '{kind}' "
            f"(known: {', '.join(defaults)})"
        )
    ddir = data_dir(name, cfg)
    out = {}
    for role, spec in defaults.items():
        if spec.get("masks") and not cfg.get("masks", False):
            continue
        s = {"url": spec["url"], "sha256": None, "mirror": None, "local": None}
        s.update({k: v for k, v in (user.get(role) or {}).items() if v is not None})
        s["role"] = role
        s["dataset"] = name
        s["archive"] = bool(spec.get("archive"))
        fname = url_filename(s["url"])
        local = s["local"]
        s["record"] = f"{ddir}/downloads/{fname}"  # the download, or the checksum record
        s["download"] = None if local else s["record"]
        extracted = False
        if local and Path(local).is_dir():
            if s["archive"] and not (Path(local) / fname).is_file():
                extracted = True  # a folder without the archive: its content, already extracted
            else:
                local = str(Path(local) / fname)  # a folder holding the file under its name
        s["source"] = str(local) if local else s["download"]
        if s["archive"]:
            s["path"] = str(s["local"]) if extracted else f"{ddir}/extracted/{role}"
        else:
            s["path"] = s["source"]
        out[role] = s
    return out


def fetch_source(spec: dict, log=None) -> Path:
    """The verified file of a source spec (see `sources`): downloaded to spec['record'] from its url or
    mirror, or a `local` copy checked in place (ganaug.downloads: checksum given or recorded, resume,
    retries)."""
    from . import downloads

    return downloads.fetch_file(
        spec["url"],
        spec["record"],
        sha256=spec.get("sha256"),
        mirror=spec.get("mirror"),
        local=spec.get("local"),
        progress=log or log_default,
    )


def extract_source(spec: dict, target_dir, log=None) -> Path:
    """The extracted folder of an archive source spec (ganaug.downloads.fetch_archive: verified, safe,
    skipped when already done; a `local` folder is the archive already extracted)."""
    from . import downloads

    target = Path(target_dir)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty folder made beforehand (not an extraction)
    return downloads.fetch_archive(
        spec["url"],
        spec["record"],
        target,
        sha256=spec.get("sha256"),
        mirror=spec.get("mirror"),
        local=spec.get("local"),
        progress=log or log_default,
    )


def verify_local_sources(specs: dict, log=None) -> None:
    """Check every `local` file copy among specs against its configured (or recorded) sha256."""
    for spec in specs.values():
        local = spec.get("local")
        if local and Path(local).is_file():
            fetch_source(spec, log=log)


# --- published split lists: a path, or a file downloaded (checksummed) like the datasets' files ---------
LIST_DATA_DIR = "results/data/raw/split-lists"
LIST_KEYS = ("file", "url", "sha256", "mirror", "local")
_PLAIN = re.compile(r"[A-Za-z0-9._+-]+")


def list_entries(config: dict) -> dict:
    """Every split list a config names, by its key: split.lists.<part>, split.reduced_lists.<fraction>[r] and
    datasets.<name>.list (null entries left out)."""
    split = config.get("split") or {}
    out = {}
    for part, entry in (split.get("lists") or {}).items():
        out[f"split.lists.{part}"] = entry
    for frac, entries in (split.get("reduced_lists") or {}).items():
        for r, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            out[f"split.reduced_lists.{frac}[{r}]"] = entry
    for name, ds in (config.get("datasets") or {}).items():
        if (ds or {}).get("list") is not None:
            out[f"datasets.{name}.list"] = ds["list"]
    return out


def _plain_path(path: str, what: str) -> str:
    """A relative POSIX path of plain names (no '..', no absolute path): safe to join under a folder."""
    parts = str(path).split("/")
    if str(path).startswith("/") or any(p in ("", ".", "..") or not _PLAIN.fullmatch(p) for p in parts):
        raise InputError(f"{what}: '{path}' is not a relative path of plain names (letters, digits, '._+-')")
    return str(path)


def _list_role(key: str) -> str:
    """A rule-name-safe role of a list key: split.lists.train -> train, split.reduced_lists.1/4[3] ->
    reduced_1_4_rep3, datasets.isic2020.list -> isic2020."""
    m = re.fullmatch(r"split\.reduced_lists\.(.+)\[(\d+)\]", key)
    if m:
        role = f"reduced_{m.group(1)}_rep{m.group(2)}"
    elif key.startswith("split.lists."):
        role = key[len("split.lists."):]
    else:
        role = key[len("datasets."):-len(".list")]
    return re.sub(r"[^A-Za-z0-9_]", "_", role)


def list_spec(key: str, entry, source: dict | None = None) -> dict:
    """Where one split list comes from (config key `key`), as a source spec (see `sources`).

    A path (string) is read as it is (no download, no checksum). A mapping is a file to download (by
    `fetch_source`: checksummed, resumable, retried) into `source.data_dir` (split.list_source; default
    results/data/raw/split-lists):
    - file: a path relative to `source.base_url` (e.g. the authors' repository at a pinned commit); it is
      downloaded to <data_dir>/<file>; `source.mirror` (base URL or folder) and `source.local` (folder, used
      in place) hold the files at the same relative paths;
    - url: a full URL, downloaded to <data_dir>/<host>/<path of the URL>;
    - sha256: the expected checksum (else recorded at the first download and checked at every later use);
    - mirror, local: as for a dataset's file (a base URL or folder holding the file under its name; a copy
      on disk), overriding split.list_source's."""
    source = source or {}
    if isinstance(entry, (str, os.PathLike)):
        if not str(entry):
            raise InputError(f"{key}: empty path")
        return {"key": key, "role": _list_role(key), "dataset": "lists", "url": None, "sha256": None,
                "mirror": None, "local": None, "record": None, "download": None, "archive": False,
                "source": str(entry), "path": str(entry)}
    if not isinstance(entry, dict):
        raise InputError(f"{key}: a path or a mapping {{file or url, sha256}}, got {entry!r}")
    unknown = sorted(set(entry) - set(LIST_KEYS))
    if unknown:
        raise InputError(f"{key}.{unknown[0]}: unknown key (known: {', '.join(LIST_KEYS)})")
    if (entry.get("file") is None) == (entry.get("url") is None):
        raise InputError(f"{key}: give exactly one of file (a path relative to split.list_source.base_url) "
                         "or url (a full URL)")
    sha = entry.get("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", str(sha)):
        raise InputError(f"{key}.sha256: '{sha}' is not 64 hex digits")
    ddir = str(source.get("data_dir") or LIST_DATA_DIR).rstrip("/")
    mirror, local = entry.get("mirror"), entry.get("local")
    if entry.get("file") is not None:
        rel = _plain_path(entry["file"], f"{key}.file")
        base = source.get("base_url")
        if not base:
            raise InputError(f"{key}.file: a relative file needs split.list_source.base_url (the URL it is "
                             "relative to), or give url instead")
        url = str(base).rstrip("/") + "/" + urllib.parse.quote(rel)
        dest = f"{ddir}/{rel}"
        folder = posixpath.dirname(rel)
        if mirror is None and local is None and source.get("mirror"):
            m = str(source["mirror"]).rstrip("/")
            mirror = f"{m}/{urllib.parse.quote(folder)}" if re.match(r"^(https?|file)://", m) else (
                str(Path(m) / folder) if folder else m)
        if mirror is None and local is None and source.get("local"):
            local = str(Path(source["local"]) / rel)
    else:
        url = str(entry["url"])
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme.lower() not in ("http", "https", "file"):
            raise InputError(f"{key}.url: '{url}' is not an http(s) or file URL")
        url_filename(url)  # ends in a usable file name
        host = re.sub(r"[^A-Za-z0-9._+-]", "_", parsed.netloc) or "local"
        dest = f"{ddir}/{host}/" + _plain_path(urllib.parse.unquote(parsed.path).lstrip("/"), f"{key}.url")
    name = posixpath.basename(dest)
    path = dest
    if local:
        path = str(Path(local) / name) if Path(local).is_dir() else str(local)
    return {"key": key, "role": _list_role(key), "dataset": "lists", "url": url,
            "sha256": str(sha).lower() if sha else None, "mirror": str(mirror) if mirror else None,
            "local": str(local) if local else None, "record": dest, "download": None if local else dest,
            "archive": False, "source": path, "path": path}


def list_sources(config: dict) -> dict[str, dict]:
    """{config key: list_spec} of every split list of a config (split.lists, split.reduced_lists, the
    datasets' list); reads no file. Two keys downloading to one file must agree on its source."""
    source = (config.get("split") or {}).get("list_source") or {}
    out, by_dest = {}, {}
    for key, entry in list_entries(config).items():
        spec = list_spec(key, entry, source)
        d = spec["download"]
        if d:
            other = by_dest.setdefault(d, spec)
            if (other["url"], other["sha256"]) != (spec["url"], spec["sha256"]):
                raise InputError(f"{key}: downloads to {d} like {other['key']}, but from another source or "
                                 "with another sha256")
        out[key] = spec
    return out


def list_path(config: dict, key: str) -> str | None:
    """The file a job reads for the split list at `key` (its download, local copy or path), or None."""
    spec = list_sources(config).get(key)
    return spec["path"] if spec else None


def _origin(url: str) -> str:
    """'github.com/<owner>/<repo> at commit <c>' for a raw.githubusercontent.com URL, else the URL's folder."""
    m = re.match(r"https://raw\.githubusercontent\.com/([^/]+)/([^/]+)/([^/]+)(/.*)?$", str(url))
    if m:
        ref = m.group(3)
        what = f"commit {ref}" if re.fullmatch(r"[0-9a-f]{40}", ref) else f"ref {ref}"
        return f"github.com/{m.group(1)}/{m.group(2)} at {what}"
    return str(url).rsplit("/", 1)[0]


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
        o = _origin(s["url"]) if s["url"] else "local files"
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


# --- helpers ------------------------------------------------------------------------------------------
def _read_table(path, required, what: str = "CSV", sep=None) -> pd.DataFrame:
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


def _lookup(ids, files: dict[str, str], source, folder) -> list[str]:
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


def isic_id(s: str) -> str:
    """ISIC image id without the '_downsampled' suffix some ISIC 2019 file names carry."""
    s = image_id(s)
    return s[: -len("_downsampled")] if s.endswith("_downsampled") else s


def _finish(df: pd.DataFrame, source: str) -> pd.DataFrame:
    df = validate_index(df, source)
    return df[INDEX_COLUMNS + [c for c in df.columns if c not in INDEX_COLUMNS]].reset_index(drop=True)


def _select_by_list(df: pd.DataFrame, list_path, name: str) -> pd.DataFrame:
    """The rows a published list names, in its order (ids matched as by import_split_lists)."""
    return import_split_lists(df, {name: list_path})[name]


def _counts(df: pd.DataFrame) -> dict:
    return {
        "n": int(len(df)),
        "melanoma": int((df["label"] == 1).sum()),
        "benign": int((df["label"] == 0).sum()),
    }


# --- ISIC 2019 ----------------------------------------------------------------------------------------
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
    gt = _read_table(ground_truth, required, "ISIC 2019 GroundTruth CSV")
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
    paths = _lookup(ids, find_images(images_dir), ground_truth, images_dir)

    lesion = [""] * len(ids)
    if metadata is not None:
        meta = _read_table(metadata, ["image", "lesion_id"], "ISIC 2019 Metadata CSV")
        by_id = dict(zip(meta["image"].str.strip(), meta["lesion_id"].str.strip()))
        lesion = [by_id.get(i, "") for i in ids]
        report["without_metadata"] = int(sum(i not in by_id for i in ids))
        report["without_lesion_id"] = int(sum(v == "" for v in lesion))
    mask = [""] * len(ids)
    if label_maps is not None:
        lm = _read_table(label_maps, ["image_id", "mask"], "label-map table")
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
    report["kept"] = _counts(df)
    return _finish(df, str(ground_truth))


def build_isic2018_label_maps(
    task1_dir, out_dir, task2_dir=None, reference: dict | None = None, workers: int = 2, log=None
) -> pd.DataFrame:
    """ISIC 2018 Task 1 lesion masks (+ Task 2 attribute masks) -> label-map PNGs (ganaug.masks values).

    Files: ``ISIC_xxxxxxx_segmentation.png`` under task1_dir, ``ISIC_xxxxxxx_attribute_{name}.png`` under
    task2_dir. With `reference` ({ISIC id: image path}), only ids in it are built, and a map whose size
    differs from its image's (a downsampled copy) is resized to it (nearest) when the aspect ratios agree
    within 2%, else left out. Writes out_dir/ISIC_xxxxxxx.png (one channel); returns a table of
    image_id, mask (path), attributes (how many attribute masks had pixels), resized."""
    from PIL import Image

    from .masks import ISIC_ATTRIBUTES, build_label_map

    log = log or log_default
    seg = {}
    for stem, p in find_images(task1_dir).items():
        m = re.fullmatch(r"(ISIC_\d+)_segmentation", stem, flags=re.I)
        if m:
            seg["ISIC_" + m.group(1)[5:]] = p
    if not seg:
        raise InputError(f"{task1_dir}: no ISIC 2018 Task 1 mask (ISIC_xxxxxxx_segmentation.png) found")
    attrs: dict[str, dict[str, str]] = {}
    if task2_dir is not None:
        for stem, p in find_images(task2_dir).items():
            m = re.fullmatch(r"(ISIC_\d+)_attribute_(\w+)", stem, flags=re.I)
            if m and m.group(2) in ISIC_ATTRIBUTES:
                attrs.setdefault("ISIC_" + m.group(1)[5:], {})[m.group(2)] = p
    ids = sorted(seg)
    if reference is not None:
        ids = [i for i in ids if i in reference]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(i):
        def read(p):
            try:
                with Image.open(p) as im:
                    return np.asarray(im.convert("L"))
            except Exception as e:
                raise InputError(f"{p}: cannot read mask ({type(e).__name__}: {e})") from e

        lesion = read(seg[i])
        att = {name: read(p) for name, p in attrs.get(i, {}).items()}
        for name, a in att.items():
            if a.shape != lesion.shape:
                raise InputError(
                    f"{attrs[i][name]}: attribute mask is {a.shape[1]} x {a.shape[0]}, the lesion "
                    f"mask {seg[i]} {lesion.shape[1]} x {lesion.shape[0]}"
                )
        lm = build_label_map(lesion, att)
        resized = False
        if reference is not None:
            with Image.open(reference[i]) as ref:
                w, h = ref.size
            if (h, w) != lm.shape:
                if abs((w / h) / (lm.shape[1] / lm.shape[0]) - 1) > 0.02:
                    return (
                        None,
                        f"{seg[i]}: {lm.shape[1]} x {lm.shape[0]}, its image {reference[i]} {w} x {h}",
                    )
                lm = np.asarray(Image.fromarray(lm).resize((w, h), Image.Resampling.NEAREST))
                resized = True
        dest = out_dir / f"{i}.png"
        with atomic_path(dest) as tmp:
            Image.fromarray(lm.astype(np.uint8), mode="L").save(tmp, format="PNG")
        return {
            "image_id": i,
            "mask": str(dest),
            "attributes": sum(int(a.any()) for a in att.values()),
            "resized": resized,
        }, None

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        results = list(pool.map(one, ids))
    rows = [r for r, _ in results if r is not None]
    skipped = [s for _, s in results if s is not None]
    for s in skipped[:20]:
        log.warning("label map left out (aspect ratio differs): %s", s)
    log.info(
        "label maps: %d written to %s (%d Task 1 masks, %d outside the reference, %d left out)",
        len(rows),
        out_dir,
        len(seg),
        len(seg) - len(ids),
        len(skipped),
    )
    return pd.DataFrame(rows, columns=["image_id", "mask", "attributes", "resized"])


def write_label_maps(
    task1_dir, images_dir, out_dir, out_csv, task2_dir=None, workers: int = 2, log=None
) -> pd.DataFrame:
    """Label maps of the ISIC 2018 Task 1/2 masks for the images of images_dir (by ISIC id, sized as those
    images) -> PNGs in out_dir and their table (image_id, mask, attributes, resized) in out_csv."""
    reference = {isic_id(stem): p for stem, p in find_images(images_dir).items()}
    table = build_isic2018_label_maps(
        task1_dir, out_dir, task2_dir=task2_dir, reference=reference, workers=workers, log=log
    )
    if table.empty:
        raise InputError(f"{task1_dir}: none of its masks belongs to an image of {images_dir}")
    write_csv(out_csv, table)
    return table


# --- ISIC 2020 ----------------------------------------------------------------------------------------
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
    gt = _read_table(ground_truth, ["image_name", "target", "diagnosis"], "ISIC 2020 GroundTruth CSV")
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
    report["release"] = _counts(table)
    if subset_list is not None:
        sel = _select_by_list(table, subset_list, dataset)
        report["selection"] = f"list {subset_list}"
    else:
        sel = select_isic2020_subset(table, subset, seed, str(ground_truth))
        report["selection"] = {"seed": int(seed), "subset": subset or ISIC2020_SUBSET}
    sel = sel.copy()
    sel["image"] = _lookup(sel["image_id"].tolist(), find_images(images_dir), ground_truth, images_dir)
    report["kept"] = _counts(sel)
    report["diagnoses"] = {k: int(v) for k, v in sel["diagnosis"].value_counts().items()}
    return _finish(sel, str(ground_truth))


# --- derm7pt ------------------------------------------------------------------------------------------
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


def _image_hash(path, size: int = 256):
    """pHash of an image decoded at reduced size (None if it cannot be decoded)."""
    from PIL import Image

    from .phash import phash_batch

    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (size, size))
            im = im.convert("RGB")
            im.thumbnail((size, size))
            return int(phash_batch(np.asarray(im, dtype=np.uint8)[None], workers=1)[0])
    except Exception:
        return None


def drop_near_duplicates(
    df: pd.DataFrame, max_bits: int = 4, workers: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove duplicate images, keeping the first in table order.

    1. exact duplicates: rows naming the same file;
    2. near duplicates: pHash Hamming distance <= max_bits (max_bits < 0: step 2 off) to an image kept
       before it. Images that cannot be decoded are never called duplicates (the integrity check reports
       them). Returns (kept rows, dropped rows with `duplicate_of` and `distance`)."""
    df = df.reset_index(drop=True)
    dropped = []
    same = df["image"].duplicated(keep="first").to_numpy()
    first = {}
    for i, p in enumerate(df["image"]):
        first.setdefault(p, i)
        if same[i]:
            dropped.append((i, df["image"].iloc[first[p]], 0))
    todo = np.flatnonzero(~same)
    if max_bits >= 0 and len(todo):
        with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
            hashes = list(pool.map(_image_hash, df["image"].iloc[todo]))
        kept_h: list[int] = []
        kept_i: list[int] = []
        for i, h in zip(todo, hashes):
            if h is not None and kept_h:
                d = np.bitwise_count(np.asarray(kept_h, dtype=np.uint64) ^ np.uint64(h))
                j = int(np.argmin(d))
                if int(d[j]) <= max_bits:
                    dropped.append((int(i), df["image"].iloc[kept_i[j]], int(d[j])))
                    continue
            if h is not None:
                kept_h.append(h)
                kept_i.append(int(i))
    drop_rows = sorted(r for r, _, _ in dropped)
    info = {r: (twin, dist) for r, twin, dist in dropped}
    gone = df.iloc[drop_rows].copy()
    gone["duplicate_of"] = [info[r][0] for r in drop_rows]
    gone["distance"] = [info[r][1] for r in drop_rows]
    kept = df.drop(index=drop_rows).reset_index(drop=True)
    return kept, gone.reset_index(drop=True)


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
    meta = _read_table(meta_path, ["case_num", "diagnosis", image_type], "derm7pt meta CSV")
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
    report["kept_classes"] = _counts(df)
    if subset_list is not None:
        df, gone = drop_near_duplicates(df, max_bits=-1)
        report["exact_duplicates"] = int(len(gone))
        df = _select_by_list(df, subset_list, dataset)
        report["selection"] = f"list {subset_list}"
    else:
        df, gone = drop_near_duplicates(df, max_bits=int(near_duplicate_bits), workers=workers)
        report["selection"] = {"near_duplicate_bits": int(near_duplicate_bits)}
        report["duplicates"] = [
            {"image": a, "duplicate_of": b, "distance": int(d)}
            for a, b, d in zip(gone["image"], gone["duplicate_of"], gone["distance"])
        ]
    report["kept"] = _counts(df)
    return _finish(df, str(meta_path))


# --- Dermofit -----------------------------------------------------------------------------------------
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
        df = _select_by_list(df, subset_list, dataset)
        report["selection"] = f"list {subset_list}"
    report["kept"] = _counts(df)
    return _finish(df, str(root))


# --- manual datasets ----------------------------------------------------------------------------------
def manual_message(name: str, kind: str, path, problem: str) -> str:
    src = MANUAL_SOURCES[kind]
    layout = src["layout"].format(path=path)
    return (
        f"datasets.{name}: {src['title']} is missing or incomplete at '{path}': {problem}. "
        f"It cannot be downloaded automatically ({src['why']}): obtain it from {src['url']} and place it so "
        f"that {layout} exist, or set datasets.{name}.path to the folder that holds it; then run the "
        "workflow again."
    )


def check_manual_dataset(name: str, cfg: dict, check_counts: bool | None = None) -> dict:
    """Check a hand-placed dataset (derm7pt, Dermofit) is there and complete; return its inventory.

    InputError (manual_message: what to obtain, from where, where to put it) when the folder, meta.csv or
    class folders are missing, an image the release lists is absent, or (check_counts, default
    cfg['check_counts'] or True) the release's counts differ from the published ones."""
    kind = cfg.get("kind")
    if kind not in MANUAL_KINDS:
        raise InputError(f"datasets.{name}: kind '{kind}' is not placed by hand")
    path = cfg.get("path")
    if not path:
        raise InputError(manual_message(name, kind, "<datasets." + name + ".path>", "no path configured"))
    if check_counts is None:
        check_counts = bool(cfg.get("check_counts", True))
    root = Path(path)
    if not root.is_dir():
        raise InputError(manual_message(name, kind, path, "the folder does not exist"))
    if kind in DERM7PT_COLUMN:
        try:
            meta_path = derm7pt_meta(root)
        except InputError:
            raise InputError(manual_message(name, kind, path, "meta/meta.csv not found")) from None
        try:
            meta = _read_table(meta_path, ["case_num", "diagnosis", "clinic", "derm"], "derm7pt meta CSV")
        except InputError as e:
            raise InputError(manual_message(name, kind, path, str(e))) from None
        images_root = meta_path.parent.parent / "images"
        col = DERM7PT_COLUMN[kind]
        listed = [str(images_root / r.strip()) for r in meta[col] if r.strip()]
        missing = [p for p in listed if not os.path.isfile(p)]
        if missing:
            raise InputError(
                manual_message(
                    name,
                    kind,
                    path,
                    f"{len(missing)} of {len(listed)} '{col}' image(s) "
                    f"listed in {meta_path} are absent, e.g. {missing[:3]}",
                )
            )
        if check_counts and len(meta) != DERM7PT_CASES:
            raise InputError(
                manual_message(
                    name,
                    kind,
                    path,
                    f"{meta_path} has {len(meta)} cases, the release "
                    f"has {DERM7PT_CASES} (set datasets.{name}.check_counts: false to "
                    "use a partial copy)",
                )
            )
        return {
            "dataset": name,
            "kind": kind,
            "path": str(path),
            "meta": str(meta_path),
            "cases": int(len(meta)),
            "images": len(listed),
        }
    root_found, folders = dermofit_root(root)
    absent = [c for c in DERMOFIT_CLASSES if c not in folders]
    if absent:
        raise InputError(manual_message(name, kind, path, f"class folder(s) {absent} not found"))
    counts = {c: len(_dermofit_images(f)) for c, f in folders.items()}
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise InputError(manual_message(name, kind, path, f"class folder(s) {empty} hold no image"))
    if check_counts:
        off = {c: f"{counts[c]} (expected {n})" for c, n in DERMOFIT_COUNTS.items() if counts[c] != n}
        if off:
            raise InputError(
                manual_message(
                    name,
                    kind,
                    path,
                    f"image counts differ from the release's: {off} (set "
                    f"datasets.{name}.check_counts: false to use a partial copy)",
                )
            )
    return {
        "dataset": name,
        "kind": kind,
        "path": str(path),
        "root": str(root_found),
        "classes": counts,
        "images": int(sum(counts.values())),
    }


def manual_stamp(cfg: dict) -> str:
    """A cheap fingerprint of a hand-placed release (sizes and mtimes of its key files and folders), so the
    workflow re-checks and re-indexes it when it changes."""
    root = Path(cfg.get("path") or "")
    parts = []
    cands = [root / "meta" / "meta.csv", *root.glob("*/meta/meta.csv"), root] if root.is_dir() else []
    if cfg.get("kind") == "dermofit" and root.is_dir():
        cands += [p for p in root.iterdir() if p.is_dir()]
    for p in cands:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_size}:{int(st.st_mtime)}")
        except OSError:
            continue
    return "|".join(parts) or "absent"


# --- one entry point per kind for the workflow --------------------------------------------------------
def prepare_dataset(
    name: str, cfg: dict, inputs: dict, out_csv, out_report=None, seed: int = 2021, workers: int = 2, log=None
) -> pd.DataFrame:
    """Index one real dataset from its inputs ({role: path}: ground_truth, metadata, images, label_maps,
    list) and write it (atomically: a failure leaves any earlier output untouched) with a JSON report."""
    log = log or log_default
    kind = cfg.get("kind")
    report: dict = {"dataset": name, "kind": kind}
    lst = inputs.get("list")
    if lst is None and cfg.get("list") is not None:
        if not isinstance(cfg["list"], (str, os.PathLike)):
            raise InputError(f"datasets.{name}.list: a list to download ({cfg['list']}) must be passed as the "
                             "input 'list' (the workflow downloads it)")
        lst = cfg["list"]
    if kind == "isic2019":
        df = index_isic2019(
            inputs["ground_truth"],
            inputs["images"],
            inputs.get("metadata"),
            inputs.get("label_maps"),
            dataset=name,
            report=report,
        )
    elif kind == "isic2020":
        df = index_isic2020(
            inputs["ground_truth"],
            inputs["images"],
            subset_list=lst,
            subset=cfg.get("subset"),
            seed=int(cfg.get("seed", seed_from(seed, name))),
            dataset=name,
            report=report,
        )
    elif kind in DERM7PT_COLUMN:
        df = index_derm7pt(
            cfg["path"],
            DERM7PT_COLUMN[kind],
            subset_list=lst,
            near_duplicate_bits=int(cfg.get("near_duplicate_bits", 4)),
            dataset=name,
            report=report,
            workers=workers,
        )
    elif kind == "dermofit":
        df = index_dermofit(cfg["path"], subset_list=lst, dataset=name, report=report)
    else:
        raise InputError(f"datasets.{name}: kind '{kind}' is not a real dataset ({', '.join(REAL_KINDS)})")
    write_index(out_csv, df)
    if out_report is not None:
        write_json(out_report, report)
    log.info(
        "%s: %d images (%d melanoma, %d benign) -> %s",
        name,
        len(df),
        int(df["label"].sum()),
        int((df["label"] == 0).sum()),
        out_csv,
    )
    return df


# --- integrity ----------------------------------------------------------------------------------------
def decode_problem(path, mask: bool = False) -> str | None:
    """None if the file decodes completely, else what is wrong (absent, empty, truncated, not an image).
    JPEGs are decoded at reduced scale (DCT scaling), which still reads every byte of the stream."""
    from PIL import Image, ImageFile

    if not os.path.isfile(path):
        return "file not found"
    if os.path.getsize(path) == 0:
        return "empty file"
    def decode(draft: bool) -> str | None:
        with Image.open(path) as im:
            if mask and im.mode not in ("L", "P", "1", "I", "I;16"):
                return f"label map must be a one-channel image, got mode {im.mode}"
            if draft and im.format == "JPEG":
                im.draft(im.mode, (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
            im.load()
        return None

    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        try:
            return decode(draft=True)
        except Exception:  # decode fully: the full decoder's message (or a file only the draft fails on)
            return decode(draft=False)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


def check_images(
    index: pd.DataFrame, on_bad: str = "fail", workers: int = 2, source: str = "index", log=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every image (and label map) of an index once. Returns (good rows, report of bad files:
    image, column, file, problem). on_bad 'fail': InputError listing each bad file by path; 'drop': the
    rows with a bad file are left out (and listed in the report)."""
    from .progress import Progress

    if on_bad not in ("fail", "drop"):
        raise InputError(f"{source}: on_bad_image must be 'fail' or 'drop', got {on_bad!r}")
    log = log or log_default
    index = validate_index(index, source)
    jobs = [(i, "image", p) for i, p in enumerate(index["image"])]
    jobs += [(i, "mask", p) for i, p in enumerate(index["mask"]) if p]
    progress = Progress(len(jobs), "files", log)
    done = [0]

    def one(job):
        i, col, p = job
        res = decode_problem(p, mask=(col == "mask"))
        done[0] += 1
        if done[0] % 2000 == 0:
            progress.update(done[0], images=2000)
        return res

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        problems = list(pool.map(one, jobs))
    bad = [(i, col, p, prob) for (i, col, p), prob in zip(jobs, problems) if prob is not None]
    report = pd.DataFrame(
        [(index["image"].iloc[i], col, p, prob) for i, col, p, prob in bad],
        columns=["image", "column", "file", "problem"],
    )
    log.info("%s: %d file(s) decoded, %d bad", source, len(jobs), len(bad))
    if bad and on_bad == "fail":
        lines = "\n  ".join(f"{p} ({prob})" for _, _, p, prob in bad[:50])
        more = f"\n  ... and {len(bad) - 50} more" if len(bad) > 50 else ""
        raise InputError(
            f"{source}: {len(bad)} of {len(jobs)} file(s) cannot be decoded:\n  {lines}{more}\n"
            "Replace them, or set datasets.<name>.on_bad_image: drop to leave them out (listed in "
            "results/data/integrity/<name>.csv)."
        )
    rows = sorted({i for i, _, _, _ in bad})
    good = index.drop(index=rows).reset_index(drop=True)
    return good, report


def check_index_images(
    in_csv, out_csv, report_csv, on_bad: str = "fail", workers: int = 2, log=None
) -> pd.DataFrame:
    """check_images on an index CSV; writes the good rows and the report (atomic; nothing on failure)."""
    index = pd.read_csv(in_csv, dtype=str, keep_default_na=False)
    index = validate_index(index, str(in_csv))
    good, report = check_images(index, on_bad=on_bad, workers=workers, source=str(in_csv), log=log)
    if len(good) == 0:
        raise InputError(f"{in_csv}: no image left after the integrity check")
    write_csv(report_csv, report)
    write_index(out_csv, good)
    return good


# --- splits: published lists and the check ----------------------------------------------------------
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
    from .datasets import read_index

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
    from .datasets import read_index

    name = f"reduced {fraction} replicate {replicate} (within the training part)"
    part = import_split_lists(read_index(train_csv), {name: list_path})[name]
    write_index(out_csv, part)
    return part
