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
"""

from __future__ import annotations

import logging
from pathlib import Path

from .downloads import ChecksumError, DownloadError, download, filename_for
from .io import InputError, sha256_file

__all__ = ["ChecksumError", "DownloadError", "fetch", "resolve_weights"]

log = logging.getLogger("ganaug")

_filename_for = filename_for  # kept for callers of the former private helper


def fetch(url: str, sha256: str | None, cache_dir, filename: str | None = None, timeout: float = 30,
          retries: int = 2, backoff: float = 0.5) -> Path:
    """Return the local path of `url`'s file in `cache_dir`, downloading and verifying it as needed."""
    dest = Path(cache_dir) / (filename or filename_for(url))
    return download(url, dest, sha256=sha256, record=True, retries=retries, backoff=backoff,
                    timeout=timeout, replace_bad=True)


def resolve_weights(path=None, url=None, sha256=None, cache_dir="results/cache/weights",
                    timeout: float = 30) -> Path | None:
    """A local `path` if given (must exist; checked against `sha256` when given), else `url` fetched into
    the cache, else None (no weights configured)."""
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: weights file not found")
        if sha256:
            actual = sha256_file(p)
            if actual != sha256.lower().strip():
                raise ChecksumError(f"{p}: checksum mismatch: expected sha256 {sha256}, got {actual}")
        return p
    if url:
        return fetch(url, sha256, cache_dir, timeout=timeout)
    return None
