"""Where the published split lists come from (split.lists, split.reduced_lists, datasets.<name>.list): a
path read as it is, or a file downloaded (checksummed, resumable) from split.list_source like the datasets'
files. Each list becomes a source spec (see ``ganaug.data.sources.sources``) keyed by its config key."""

from __future__ import annotations

import os
import posixpath
import re
import urllib.parse
from pathlib import Path

from ..io import InputError
from .sources import url_filename

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


def list_origin(url: str) -> str:
    """'github.com/<owner>/<repo> at commit <c>' for a raw.githubusercontent.com URL, else the URL's folder."""
    m = re.match(r"https://raw\.githubusercontent\.com/([^/]+)/([^/]+)/([^/]+)(/.*)?$", str(url))
    if m:
        ref = m.group(3)
        what = f"commit {ref}" if re.fullmatch(r"[0-9a-f]{40}", ref) else f"ref {ref}"
        return f"github.com/{m.group(1)}/{m.group(2)} at {what}"
    return str(url).rsplit("/", 1)[0]
