"""Where each real dataset comes from: the public files of each kind (URL, archive or not) and the
datasets placed by hand, turned into source specs the download, extraction and preprocessing jobs share.

A spec (``sources``) names the URL, the expected sha256 (configured, else recorded at the first download),
a mirror or a `local` copy, where the download goes and what the preprocessing reads. ``fetch_source`` and
``extract_source`` obtain the verified file or the extracted folder through ``ganaug.downloads``;
``verify_sources`` checks the files a job reads again, before it reads them.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from pathlib import Path

from ..io import InputError

log_default = logging.getLogger("ganaug")

ISIC_BUCKET = "https://isic-challenge-data.s3.amazonaws.com"

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

# Datasets that cannot be downloaded: where to obtain them, and the layout the release must have.
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
    from .. import downloads

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
    from .. import downloads

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


def verify_sources(specs: dict, log=None) -> None:
    """Check the files among specs that a job reads as they are, before it reads them: each download or
    `local` copy against its configured (else recorded) sha256 (ganaug.downloads.verify_file: hashed again
    only when its size or mtime changed since the last check). Archives are left to their extraction, which
    checks them first; a list given as a plain path has no checksum."""
    from .. import downloads

    log = log or log_default
    for spec in specs.values():
        if spec.get("archive") or not spec.get("record"):
            continue
        digest = downloads.verify_file(spec["source"], sha256=spec.get("sha256"), record_for=spec["record"],
                                       url=spec.get("url"))
        log.info("%s: sha256 %s verified", spec["source"], digest)
