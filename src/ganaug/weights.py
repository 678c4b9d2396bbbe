"""Model weights from the network: download into a local cache, resume partial downloads, check sha256.

``fetch(url, sha256, cache_dir)`` keeps ``cache_dir/<file>`` and a record ``cache_dir/<file>.sha256``; the
transfer itself is ``ganaug.downloads.download`` (the project's one download implementation):
- First download: streamed into ``<file>.part`` (a partial file from an interrupted run is resumed with an
  HTTP Range request when the server honours it, else restarted; network errors and 5xx are retried
  `retries` times with exponential backoff), hashed, checked against `sha256` when given, renamed
  atomically into place, and its checksum recorded.
- Every later use re-hashes the cached file and checks it against `sha256` (when given) or the recorded
  checksum. A cached file that fails is removed and downloaded again (the cache is disposable); a download
  that fails the check is removed and raises ChecksumError naming the url, the file and both checksums.

``resolve_weights(..., name_hash=True)`` also checks a file whose full sha256 is not configured against the
hash prefix in its name, the torch.hub convention (``<name>-<first 8+ hex digits of the sha256>.<ext>``,
e.g. ``weights-inception-2015-12-05-6726825d.pth``): a download that fails it is removed with its record.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .downloads import (
    ChecksumError, DownloadError, download, filename_for, record_path, recorded_sha256, stamp_path,
)
from .io import InputError, sha256_file

__all__ = ["ChecksumError", "DownloadError", "fetch", "name_hash_prefix", "resolve_weights"]

log = logging.getLogger("ganaug")

_filename_for = filename_for  # kept for callers of the former private helper


def fetch(url: str, sha256: str | None, cache_dir, filename: str | None = None, timeout: float = 30,
          retries: int = 2, backoff: float = 0.5) -> Path:
    """Return the local path of `url`'s file in `cache_dir`, downloading and verifying it as needed."""
    dest = Path(cache_dir) / (filename or filename_for(url))
    return download(url, dest, sha256=sha256, record=True, retries=retries, backoff=backoff,
                    timeout=timeout, replace_bad=True)


def name_hash_prefix(name) -> str | None:
    """The sha256 prefix a file name carries by the torch.hub convention ('<stem>-<8 to 64 hex>.<ext>'),
    lower case, or None."""
    m = re.search(r"-([0-9a-fA-F]{8,64})\.[A-Za-z0-9]+$", Path(str(name)).name)
    return m.group(1).lower() if m else None


def resolve_weights(path=None, url=None, sha256=None, cache_dir="results/cache/weights",
                    timeout: float = 30, name_hash: bool = False) -> Path | None:
    """A local `path` if given (must exist; checked against `sha256` when given), else `url` fetched into
    the cache, else None (no weights configured).

    name_hash: when no `sha256` is given, check the file's sha256 against the prefix in the name of the
    url's file (else of the local file), if the name has one (see name_hash_prefix)."""
    want = sha256.lower().strip() if sha256 else None
    prefix = None
    if name_hash and not want and (path or url):
        prefix = name_hash_prefix(filename_for(url) if url else path)
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: weights file not found")
        if want or prefix:
            actual = sha256_file(p)
            if want and actual != want:
                raise ChecksumError(f"{p}: checksum mismatch: expected sha256 {sha256}, got {actual}")
            if prefix and not actual.startswith(prefix):
                raise ChecksumError(f"{p}: checksum mismatch: sha256 {actual} does not start with {prefix}, "
                                    f"the hash prefix in the name of {filename_for(url) if url else p.name}")
        return p
    if url:
        p = fetch(url, sha256, cache_dir, timeout=timeout)
        if prefix:
            actual = recorded_sha256(p) or sha256_file(p)
            if not actual.startswith(prefix):
                p.unlink()
                record_path(p).unlink(missing_ok=True)
                stamp_path(p).unlink(missing_ok=True)
                raise ChecksumError(f"{url}: checksum mismatch for {p}: sha256 {actual} does not start with "
                                    f"{prefix}, the hash prefix in the file's name; the bad download was removed")
        return p
    return None
