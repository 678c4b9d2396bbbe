"""Model weights from the network: download into a local cache, resume partial downloads, check sha256.

``fetch(url, sha256, cache_dir)`` keeps ``cache_dir/<file>`` and a record ``cache_dir/<file>.sha256``.
- First download: streamed into ``<file>.part`` (a partial file from an interrupted run is resumed with an
  HTTP Range request when the server honours it, else restarted), hashed, checked against `sha256` when
  given, renamed atomically into place, and its checksum recorded.
- Every later use re-hashes the cached file and checks it against `sha256` (when given) or the recorded
  checksum. A cached file that fails is removed and downloaded again; a download that fails the check is
  removed and raises ChecksumError naming the url, the file and both checksums.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .io import InputError, atomic_path, sha256_file

log = logging.getLogger("ganaug")

CHUNK = 1 << 20


class DownloadError(InputError):
    """The file could not be downloaded (network, HTTP status, truncated transfer)."""


class ChecksumError(DownloadError):
    """A downloaded or cached file does not match its expected sha256."""


def _filename_for(url: str) -> str:
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name or not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        import hashlib

        name = "download-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    return name


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _read_record(dest: Path) -> str | None:
    rec = _record_path(dest)
    if not rec.exists():
        return None
    text = rec.read_text().split()
    return text[0].lower() if text else None


def _write_record(dest: Path, digest: str) -> None:
    with atomic_path(_record_path(dest)) as tmp:
        tmp.write_text(f"{digest}  {dest.name}\n")


def _download(url: str, part: Path, timeout: float) -> None:
    """Stream url into `part`, resuming from its current size when the server supports Range."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "ganaug"})
    if start > 0:
        req.add_header("Range", f"bytes={start}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start > 0:  # our partial file is not a prefix we can extend: start over
            log.warning("%s: server refused to resume at byte %d; restarting download", url, start)
            part.unlink()
            return _download(url, part, timeout)
        raise DownloadError(f"{url}: download failed with HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot download ({reason}); place the file in {part.parent} "
                            f"or set a local path in the config") from e
    with resp:
        status = getattr(resp, "status", 200)
        mode = "wb"
        if start > 0 and status == 206:
            cr = resp.headers.get("Content-Range", "")
            m = re.match(r"bytes (\d+)-", cr)
            if m and int(m.group(1)) == start:
                mode = "ab"
                log.info("%s: resuming download at byte %d", url, start)
            else:
                log.warning("%s: unexpected Content-Range '%s'; restarting download", url, cr)
                resp.close()
                part.unlink()
                return _download(url, part, timeout)
        elif start > 0:
            log.info("%s: server does not support resuming; downloading again from the start", url)
            start = 0
        length = resp.headers.get("Content-Length")
        expected_total = start + int(length) if length is not None and length.isdigit() else None
        written = start
        try:
            with open(part, mode) as f:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    written += len(block)
        except (OSError, http.client.HTTPException) as e:  # incl. IncompleteRead, timeouts
            raise DownloadError(f"{url}: download interrupted after {written} bytes ({e}); "
                                f"the partial file {part} is kept and will be resumed") from e
    if expected_total is not None and written != expected_total:
        raise DownloadError(f"{url}: download incomplete ({written} of {expected_total} bytes); "
                            f"the partial file {part} is kept and will be resumed")


def fetch(url: str, sha256: str | None, cache_dir, filename: str | None = None, timeout: float = 30) -> Path:
    """Return the local path of `url`'s file in `cache_dir`, downloading and verifying it as needed."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / (filename or _filename_for(url))
    part = dest.with_name(dest.name + ".part")
    want = sha256.lower().strip() if sha256 else None
    if want is not None and not re.fullmatch(r"[0-9a-f]{64}", want):
        raise InputError(f"{url}: expected sha256 '{sha256}' is not 64 hex digits")

    if dest.exists():
        expected = want or _read_record(dest)
        actual = sha256_file(dest)
        if expected is None or actual == expected:
            if _read_record(dest) != actual:  # e.g. placed in the cache by hand: record its checksum
                _write_record(dest, actual)
            return dest
        log.warning("%s: cached file has sha256 %s, expected %s; removing it and downloading again",
                    dest, actual, expected)
        dest.unlink()
        want = expected  # keep checking against the recorded checksum

    _download(url, part, timeout)
    actual = sha256_file(part)
    if want is not None and actual != want:
        part.unlink()
        raise ChecksumError(f"{url}: checksum mismatch for {dest}: expected sha256 {want}, got {actual}; "
                            f"the bad download was removed")
    os.replace(part, dest)
    _write_record(dest, actual)
    log.info("%s: downloaded to %s (sha256 %s)", url, dest, actual)
    return dest


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
