"""Files and archives from the network: verified, resumable, retried downloads and safe extraction.

``download(url, dest, sha256=None, ...)`` -> dest
    HTTP(S) (or ``file://``) into ``dest``. The bytes go to ``<dest>.part``; an interrupted transfer is
    resumed with an HTTP Range request (a server that ignores Range sends the whole file and the part file
    is restarted cleanly); network errors, timeouts, truncated bodies and HTTP 5xx / 408 / 429 are retried
    with exponential backoff, other HTTP errors (404, 403, ...) fail at once naming the URL. The part file
    becomes ``dest`` (``os.replace``) only after its size (Content-Length / Content-Range / `size`) and its
    sha256 (the configured `sha256`, else the one recorded by an earlier download) are checked. The
    checksum is recorded in ``<dest>.sha256`` (``sha256sum`` format) and every later call checks `dest`
    again (``verify_file``): a mismatch is a ChecksumError naming the file; the file is left as it is,
    never downloaded over (unless ``replace_bad=True``, which the weights cache uses).
``verify_file(path, sha256=None, record_for=None, url=None)`` -> sha256
    the check every job makes before it reads a downloaded or local file: its sha256 against the
    configured one, else the recorded one. A stamp beside the record, ``<dest>.stamp`` (the file, its size,
    mtime_ns and sha256), makes it cheap: an unchanged file is not hashed again, a file whose size or mtime
    changed is.
``extract(archive, target_dir, sha256=None)`` -> target_dir
    zip or tar (.gz/.bz2/.xz). Every member is checked before anything is written: an absolute name, a
    ``..`` component, a link pointing outside the folder, a member written through a symlink, or a device
    file is an InputError naming the archive and the member. Members go into a temporary folder beside
    `target_dir`, which is renamed into place when complete, with a marker recording the archive's sha256:
    a finished extraction of the same archive is skipped, a truncated or corrupt archive is an InputError
    naming it, and nothing is left behind for a bad archive.
``fetch_file(url, dest, sha256=None, mirror=None, local=None, ...)`` -> path of the file to use
    the same as ``download`` from `url`, from a mirror (base URL or folder holding the file under its
    name), or an already-downloaded `local` file (used in place, checked).
``fetch_archive(url, dest, target_dir, sha256=None, mirror=None, local=None, ...)`` -> extracted folder
    ``fetch_file`` + ``extract``; a `local` folder that is not a folder holding the archive is taken as the
    already-extracted content.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

from .io import InputError, atomic_path, sha256_file

log = logging.getLogger("ganaug")

CHUNK = 1 << 20
STAMP_SETTLE_NS = 2_000_000_000  # see _stamped_sha256
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))
EXTRACT_MARKER = ".ganaug-extracted.json"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")


class DownloadError(InputError):
    """The file could not be downloaded (network, HTTP status, truncated transfer)."""


class ChecksumError(DownloadError):
    """A downloaded or existing file does not match its expected (configured or recorded) sha256."""


class _Transient(Exception):
    """A failure worth retrying (network error, 5xx, truncated body)."""


class _Restart(Exception):
    """The partial file cannot be extended: start the transfer again from byte 0."""


# ----------------------------------------------------------------------------------------------------
# checksums and their records


def filename_for(url: str) -> str:
    """The file name of a URL (its last path component), or a stable hashed name if it has none usable."""
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name or not re.fullmatch(r"[A-Za-z0-9._+-]+", name) or name in (".", ".."):
        name = "download-" + hashlib.sha256(url.encode()).hexdigest()[:16]
    return name


def record_path(path) -> Path:
    """The checksum record of a file: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def recorded_sha256(path) -> str | None:
    """The sha256 recorded for `path` (``<path>.sha256``), or None."""
    rec = record_path(path)
    if not rec.is_file():
        return None
    words = rec.read_text().split()
    if not words or not re.fullmatch(r"[0-9a-fA-F]{64}", words[0]):
        raise InputError(f"{rec}: not a sha256 record (expected '<64 hex digits>  <file name>'); "
                         f"delete it to record the checksum again")
    return words[0].lower()


def _write_record(path: Path, digest: str) -> None:
    with atomic_path(record_path(path)) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")


def _norm_sha(sha256, what) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    want = str(sha256).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", want):
        raise InputError(f"{what}: expected sha256 '{sha256}' is not 64 hex digits")
    return want


def stamp_path(path) -> Path:
    """The stamp beside a file's checksum record: ``<path>.stamp``."""
    path = Path(path)
    return path.with_name(path.name + ".stamp")


def _stamped_sha256(path: Path, record_for: Path) -> str | None:
    """The sha256 the stamp of `record_for` holds for `path` if the file is unchanged since it was hashed
    (same path, size and mtime_ns, last written well before it was hashed), else None."""
    try:
        info = json.loads(stamp_path(record_for).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    sha = info.get("sha256")
    checked = info.get("checked_ns")
    unchanged = (info.get("file") == os.path.abspath(path) and info.get("size") == st.st_size
                 and info.get("mtime_ns") == st.st_mtime_ns)
    # a file written less than STAMP_SETTLE_NS before it was hashed may have been written again within the
    # same mtime tick, unseen: such a stamp is not trusted (the next check hashes it again)
    settled = isinstance(checked, int) and st.st_mtime_ns < checked - STAMP_SETTLE_NS
    if unchanged and settled and isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
        return sha
    return None


def _write_stamp(path: Path, record_for: Path, st: os.stat_result, checked_ns: int, digest: str) -> None:
    stamp = {"file": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "checked_ns": checked_ns, "sha256": digest}
    with atomic_path(stamp_path(record_for)) as tmp:
        tmp.write_text(json.dumps(stamp, indent=1) + "\n")


def _current_sha256(path: Path, record_for: Path, stamp: bool) -> str:
    """The sha256 of `path`: the stamp's when the file is unchanged since, else hashed (and, with `stamp`,
    the stamp refreshed; the stat is taken before hashing, so a change while hashing shows later)."""
    if stamp:
        digest = _stamped_sha256(path, record_for)
        if digest is not None:
            return digest
    checked_ns = time.time_ns()
    st = path.stat()
    digest = sha256_file(path)
    if stamp:
        _write_stamp(path, record_for, st, checked_ns, digest)
    return digest


def _check_existing(path: Path, want: str | None, recorded: str | None, record: bool, url: str | None,
                    replace_bad: bool, record_for: Path | None = None) -> str | None:
    """Check an existing file against the configured or recorded sha256 (hashed again only when its size or
    mtime changed since its stamp; no stamp without `record`).

    Returns its digest when it passes; None when it failed and was removed (replace_bad); raises
    ChecksumError otherwise. A file with no expected checksum is accepted and its checksum recorded."""
    record_for = record_for or path
    expected = want or recorded
    actual = _current_sha256(path, record_for, stamp=record)
    if expected is None or actual == expected:
        if record and recorded != actual:
            _write_record(record_for, actual)
        return actual
    source = "configured" if want else f"recorded in {record_path(record_for)}"
    if replace_bad:
        log.warning("%s: sha256 %s does not match the %s checksum %s; removing it and downloading again",
                    path, actual, source, expected)
        path.unlink()
        stamp_path(record_for).unlink(missing_ok=True)
        return None
    if Path(path) != Path(record_for):  # a local copy, used in place
        hint = "replace it with the right file" + (f" (a copy of {url})" if url else "")
    elif url:
        hint = f"delete it and run again to download it again from {url}"
    else:
        hint = "replace it with the right file"
    if not want:
        hint += f" (or delete {record_path(record_for)} if this file is the one intended)"
    raise ChecksumError(f"{path}: checksum mismatch: sha256 is {actual}, expected {expected} ({source}); "
                        f"the file is left as it is: {hint}")


def verify_file(path, sha256: str | None = None, record_for=None, url: str | None = None) -> str:
    """Check a downloaded or local file before reading it; returns its sha256.

    Expected: `sha256` (configured), else the checksum recorded in ``<record_for>.sha256`` (record_for: the
    file's download path, default `path`; recorded there when none is). The stamp ``<record_for>.stamp``
    holds the file's size, mtime_ns and sha256 when last hashed: an unchanged file is not hashed again, a
    changed one is (and the stamp refreshed). A mismatch is a ChecksumError naming the file and saying how
    to obtain it again (from `url`); an absent file an InputError."""
    path = Path(path)
    record_for = Path(record_for) if record_for else path
    if not path.is_file():
        raise InputError(f"{path}: file not found" + (f" (it comes from {url}; run again to download it)"
                                                      if url and path == record_for else ""))
    want = _norm_sha(sha256, path)
    return _check_existing(path, want, recorded_sha256(record_for), True, url, False, record_for=record_for)


# ----------------------------------------------------------------------------------------------------
# progress


def _fmt_eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Progress:
    """Log 'name: done / total MB (pct), MB/s, ETA' at most every `every` seconds (and once at the end)."""

    def __init__(self, logger, name: str, total: int | None, start: int, every: float):
        self.logger, self.name, self.total, self.every = logger, name, total, every
        self.start = start
        self.done = start
        self.t0 = self.last = time.monotonic()

    def _line(self, now: float) -> str:
        mb = self.done / 1e6
        rate = (self.done - self.start) / max(now - self.t0, 1e-9) / 1e6
        if self.total:
            pct = 100.0 * self.done / self.total
            left = (self.total - self.done) / 1e6
            eta = _fmt_eta(left / rate) if rate > 0 else "?"
            return (f"{self.name}: {mb:,.1f} / {self.total / 1e6:,.1f} MB ({pct:.1f}%), "
                    f"{rate:.2f} MB/s, ETA {eta}")
        return f"{self.name}: {mb:,.1f} MB, {rate:.2f} MB/s"

    def update(self, n: int) -> None:
        self.done += n
        if self.logger is None:
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.logger.info(self._line(now))

    def finish(self) -> None:
        if self.logger is not None:
            now = time.monotonic()
            self.logger.info("%s (done in %s)", self._line(now), _fmt_eta(now - self.t0))


# ----------------------------------------------------------------------------------------------------
# transfers


def _hash_prefix(part: Path):
    h = hashlib.sha256()
    with open(part, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header ('bytes 10-99/100' or 'bytes */100')."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    first = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return first, total


def _http_attempt(session, url: str, part: Path, timeout: float, progress, every: float, state: dict):
    """One HTTP transfer into `part`, resuming from its size. Returns (sha256 hasher, total or None)."""
    import requests
    import urllib3

    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "ganaug", "Accept-Encoding": "identity"}
    prefix = None
    if start:
        headers["Range"] = f"bytes={start}-"
        prefix = _hash_prefix(part)  # before the request: no idle connection while a large prefix is read
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
    except requests.RequestException as e:
        raise _Transient(f"connection failed ({e.__class__.__name__}: {e})") from e
    with resp:
        code = resp.status_code
        if code == 416 and start:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total is not None and total == start:  # the part file is already complete
                state["resumed"] = True
                return prefix, total
            log.warning("%s: server refused to resume at byte %d; restarting the download", url, start)
            part.unlink()
            raise _Restart()
        if code in RETRY_STATUS:
            retry_after = resp.headers.get("Retry-After", "")
            state["retry_after"] = float(retry_after) if retry_after.isdigit() else None
            raise _Transient(f"HTTP {code} {resp.reason}")
        if code >= 400:
            raise DownloadError(f"{url}: download failed with HTTP {code} {resp.reason}; check the URL "
                                f"(or set a mirror or a local copy in the config)")
        mode = "wb"
        if start and code == 206:
            first, total = _content_range(resp.headers.get("Content-Range"))
            if first != start:
                log.warning("%s: unexpected Content-Range '%s' for a resume at byte %d; restarting",
                            url, resp.headers.get("Content-Range"), start)
                part.unlink()
                raise _Restart()
            mode = "ab"
            state["resumed"] = True
            log.info("%s: resuming the download at byte %d", url, start)
            hasher = prefix
        else:
            if start:
                log.info("%s: the server does not support resuming (HTTP %d to a Range request); "
                         "downloading again from the start", url, code)
                start = 0
            hasher = hashlib.sha256()
            length = resp.headers.get("Content-Length", "")
            total = int(length) if length.isdigit() else None
        if mode == "ab" and total is None:
            length = resp.headers.get("Content-Length", "")
            total = start + int(length) if length.isdigit() else None
        meter = _Progress(progress, filename_for(url), total, start, every)
        written = start
        try:
            with open(part, mode) as f:
                # raw bytes as sent: a server that labels a .gz file 'Content-Encoding: gzip' must not
                # get it decompressed on the way (the checksum and the size are of the file as served)
                for block in resp.raw.stream(CHUNK, decode_content=False):
                    if not block:
                        continue
                    f.write(block)
                    hasher.update(block)
                    written += len(block)
                    meter.update(len(block))
        except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
            raise _Transient(f"download interrupted after {written} bytes "
                             f"({e.__class__.__name__}: {e})") from e
        if total is not None and written != total:
            raise _Transient(f"download incomplete: {written} of {total} bytes")
        meter.finish()
        return hasher, total


def _copy_attempt(src: Path, part: Path, progress, every: float):
    """Copy a local file (file:// URL or mirror folder) into `part`."""
    if not src.is_file():
        raise DownloadError(f"{src}: file not found")
    total = src.stat().st_size
    hasher = hashlib.sha256()
    meter = _Progress(progress, src.name, total, 0, every)
    with open(src, "rb") as fin, open(part, "wb") as fout:
        for block in iter(lambda: fin.read(CHUNK), b""):
            fout.write(block)
            hasher.update(block)
            meter.update(len(block))
    meter.finish()
    return hasher, total


def _transfer(url: str, part: Path, retries: int, backoff: float, timeout: float, progress, every: float,
              state: dict):
    """Fill `part` with url's bytes (resuming, retrying); returns (hasher, total size or None)."""
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme == "file":
        return _copy_attempt(Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)), part,
                             progress, every)
    if scheme not in ("http", "https"):
        raise InputError(f"{url}: unsupported URL scheme '{scheme}' (use http, https or file)")
    import requests

    attempt = restarts = 0
    with requests.Session() as session:
        while True:
            try:
                return _http_attempt(session, url, part, timeout, progress, every, state)
            except _Restart:
                restarts += 1
                if restarts > 3:
                    raise DownloadError(f"{url}: the server keeps refusing to resume; giving up") from None
            except _Transient as e:
                if attempt >= retries:
                    kept = part.stat().st_size if part.exists() else 0
                    tail = (f"the partial file {part} ({kept} bytes) is kept and will be resumed by the "
                            f"next call" if kept else
                            "place the file by hand or set a mirror or a local copy in the config")
                    raise DownloadError(f"{url}: cannot download: {e} (after {attempt + 1} attempt"
                                        f"{'s' if attempt else ''}); {tail}") from e
                delay = backoff * 2 ** attempt
                if state.get("retry_after"):
                    delay = min(max(delay, state.pop("retry_after")), 300.0)
                log.warning("%s: %s; retrying in %.1f s (retry %d of %d)", url, e, delay, attempt + 1,
                            retries)
                time.sleep(delay)
                attempt += 1


def _download(url: str, dest, sha256=None, record: bool = True, retries: int = 5, backoff: float = 1.0,
              timeout: float = 60, progress=log, size: int | None = None, replace_bad: bool = False,
              progress_every: float = 5.0) -> tuple[Path, str]:
    dest = Path(dest)
    want = _norm_sha(sha256, url)
    recorded = recorded_sha256(dest) if record else None
    if dest.exists():
        if not dest.is_file():
            raise InputError(f"{dest}: exists and is not a file")
        digest = _check_existing(dest, want, recorded, record, url, replace_bad)
        if digest is not None:
            return dest, digest
    expected = want or recorded
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for fresh in (False, True):
        state: dict = {}
        hasher, total = _transfer(url, part, retries, backoff, timeout, progress, progress_every, state)
        got = part.stat().st_size
        if size is not None and got != int(size):
            part.unlink()
            raise DownloadError(f"{url}: downloaded {got} bytes for {dest}, expected {size}; "
                                f"the bad download was removed")
        digest = hasher.hexdigest()
        if expected is None or digest == expected:
            break
        if state.get("resumed") and not fresh:  # the old part may come from another version of the file
            log.warning("%s: checksum mismatch after resuming a partial download; downloading it again "
                        "from the start", url)
            part.unlink()
            continue
        part.unlink()
        source = "configured" if want else f"recorded in {record_path(dest)}"
        hint = "" if want else f" (if the file changed upstream on purpose, delete {record_path(dest)})"
        raise ChecksumError(f"{url}: checksum mismatch for {dest}: expected sha256 {expected} ({source}), "
                            f"got {digest}; the bad download was removed{hint}")
    if record:
        _write_record(dest, digest)  # before the rename: a crash in between leaves a record to check against
    os.replace(part, dest)
    log.info("%s: downloaded to %s (%d bytes, sha256 %s)", url, dest, got, digest)
    return dest, digest


def download(url: str, dest, sha256: str | None = None, record: bool = True, retries: int = 5,
             backoff: float = 1.0, timeout: float = 60, progress=log, *, size: int | None = None,
             replace_bad: bool = False, progress_every: float = 5.0) -> Path:
    """Download `url` into the file `dest` (verified, resumable, retried); returns `dest`.

    sha256: expected checksum (64 hex digits) or None. record: keep ``<dest>.sha256`` and check against it
    on later calls. retries: how many times a network error / 5xx / 408 / 429 / truncated body is retried,
    sleeping ``backoff * 2**i`` seconds (or the server's Retry-After, at most 300 s) before retry i.
    timeout: seconds for connecting and for each read. progress: a logging.Logger for progress lines (at
    most every `progress_every` seconds), or None. size: expected size in bytes, if known. replace_bad: an
    existing `dest` failing its check is removed and downloaded again (default: ChecksumError, file kept).
    Raises DownloadError (HTTP error, network failure after the retries) or ChecksumError, both InputError.
    """
    return _download(url, dest, sha256, record, retries, backoff, timeout, progress, size, replace_bad,
                     progress_every)[0]


def _is_url(s: str) -> bool:
    return urllib.parse.urlparse(str(s)).scheme.lower() in ("http", "https", "file")


def _fetch_file(url, dest, sha256=None, mirror=None, local=None, record: bool = True,
                **download_kw) -> tuple[Path, str]:
    dest = Path(dest)
    name = filename_for(url) if url else dest.name
    if local:
        local = Path(local)
        path = local / name if local.is_dir() else local
        if not path.is_file():
            raise InputError(f"{local}: local copy not found" if not local.is_dir() else
                             f"{local}: local folder has no file '{name}'")
        want = _norm_sha(sha256, path)
        recorded = recorded_sha256(dest) if record else None
        digest = _check_existing(path, want, recorded, record, url, False, record_for=dest)
        log.info("%s: using the local copy %s (sha256 %s)", name, path, digest)
        return path, digest
    if mirror:
        mirror = str(mirror)
        if _is_url(mirror):
            src = mirror.rstrip("/") + "/" + urllib.parse.quote(name)
        else:
            folder = Path(mirror)
            if not dest.exists():  # (an existing dest is checked by _download without the mirror)
                if not folder.is_dir():
                    raise InputError(f"{folder}: mirror folder not found")
                if not (folder / name).is_file():
                    raise InputError(f"{folder}: mirror folder has no file '{name}'")
            src = (folder / name).resolve().as_uri()
        return _download(src, dest, sha256, record, **download_kw)
    if not url:
        raise InputError(f"{dest}: no URL, mirror or local copy given to obtain it from")
    return _download(url, dest, sha256, record, **download_kw)


def fetch_file(url: str | None, dest, sha256: str | None = None, mirror=None, local=None,
               record: bool = True, **download_kw) -> Path:
    """The path of a verified copy of `url`'s file; `dest` is where a download goes.

    local: an already-downloaded file, or a folder holding it under its name (``filename_for(url)``, or
    ``dest``'s name without url): used in place (not copied), checked against `sha256` or the checksum
    recorded in ``<dest>.sha256`` (recorded there on first use); returns that path.
    mirror: a base URL (http/https/file) or a folder holding the file under its name: downloaded / copied
    into `dest` instead of `url`, with the same checks. Otherwise ``download(url, dest, sha256, ...)``.
    download_kw: retries, backoff, timeout, progress, size, replace_bad, progress_every.
    """
    return _fetch_file(url, dest, sha256, mirror, local, record, **download_kw)[0]


# ----------------------------------------------------------------------------------------------------
# archives


def _archive_kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, tarfile.TarError, EOFError):
        pass
    raise InputError(f"{archive}: not a zip or tar archive")


def _unsafe(archive: Path, member: str, why: str) -> InputError:
    return InputError(f"{archive}: unsafe member '{member}': {why}; nothing was extracted")


def _norm_member(archive: Path, name: str) -> str:
    """A member name normalised to a relative POSIX path; escaping names raise InputError."""
    n = name.replace("\\", "/")
    if "\0" in n:
        raise _unsafe(archive, name, "NUL byte in its name")
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        raise _unsafe(archive, name, "absolute path")
    if ".." in n.split("/"):
        raise _unsafe(archive, name, "'..' in its path would escape the target folder")
    return posixpath.normpath(n)


def _escapes(path: str) -> bool:
    return path == ".." or path.startswith("../") or path.startswith("/")


def _check_link(archive: Path, member: str, norm: str, target: str, hard: bool) -> None:
    t = target.replace("\\", "/")
    if not t or t.startswith("/") or re.match(r"^[A-Za-z]:", t):
        raise _unsafe(archive, member, f"link to the absolute path '{target}'")
    base = "" if hard else posixpath.dirname(norm)  # hard link targets are archive paths
    if _escapes(posixpath.normpath(posixpath.join(base, t))):
        raise _unsafe(archive, member, f"link to '{target}' points outside the target folder")


def _check_through_links(archive: Path, members: list[tuple[str, str]], links: set[str]) -> None:
    """No member may be written through a symlink member (it could lead anywhere)."""
    if not links:
        return
    for original, norm in members:
        parts = norm.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise _unsafe(archive, original, f"it lies under the symlink '{'/'.join(parts[:i])}'")


def _extract_zip(archive: Path, tmp: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        members, links = [], set()
        for info in infos:
            norm = _norm_member(archive, info.filename)
            members.append((info.filename, norm))
            if stat.S_ISLNK(info.external_attr >> 16):
                _check_link(archive, info.filename, norm, zf.read(info).decode("utf-8", "replace"), False)
                links.add(norm)
        _check_through_links(archive, members, links)
        for info in infos:
            zf.extract(info, tmp)  # zipfile writes symlink members as small text files, not as links
        return len(infos)


def _extract_tar(archive: Path, tmp: Path) -> int:
    with tarfile.open(archive, "r:*") as tf:
        infos = tf.getmembers()  # reads the whole archive: a truncated one fails here, before any write
        members, links = [], set()
        for m in infos:
            norm = _norm_member(archive, m.name)
            members.append((m.name, norm))
            if m.issym():
                _check_link(archive, m.name, norm, m.linkname, False)
                links.add(norm)
            elif m.islnk():
                _check_link(archive, m.name, norm, m.linkname, True)
            elif not (m.isfile() or m.isdir()):
                raise _unsafe(archive, m.name, "device, fifo or other special file")
        _check_through_links(archive, members, links)
        for m in infos:  # a hard link to a symlink (or through one) would move the link elsewhere
            if m.islnk():
                parts = posixpath.normpath(m.linkname.replace("\\", "/")).split("/")
                if any("/".join(parts[:i]) in links for i in range(1, len(parts) + 1)):
                    raise _unsafe(archive, m.name, f"hard link to or through the symlink '{m.linkname}'")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the stdlib checks again while writing
            tf.extractall(tmp, members=infos, filter="data")
        else:  # pragma: no cover - older Pythons: our own checks above
            tf.extractall(tmp, members=infos)
        return len(infos)


def _check_tree_inside(archive: Path, root: Path) -> None:
    """After extraction: every symlink, resolved on disk (chains included), stays inside root."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                real = os.path.realpath(p)
                if os.path.commonpath([real_root, real]) != real_root:
                    raise _unsafe(archive, os.path.relpath(p, root),
                                  "its link resolves outside the target folder")


def _read_marker(target: Path) -> dict | None:
    marker = target / EXTRACT_MARKER
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def extracted_sha256(target_dir) -> str | None:
    """The sha256 of the archive a finished ``extract`` into `target_dir` came from, or None."""
    info = _read_marker(Path(target_dir))
    return info.get("sha256") if info else None


def extract(archive, target_dir, sha256: str | None = None) -> Path:
    """Extract a zip / tar(.gz, .bz2, .xz) archive into `target_dir` safely and atomically; returns it.

    sha256: the archive's checksum if already known (e.g. just verified by fetch_file), else it is computed.
    `target_dir` holds the members (as named in the archive) and a marker ``.ganaug-extracted.json``
    {archive, sha256, members}; a later call with the same archive returns at once. A `target_dir` from an
    extraction of another archive is replaced; one without a marker (not made here) is an InputError.
    Unsafe members (absolute, '..', links out of the folder, special files) and truncated or corrupt
    archives are InputErrors naming the archive; nothing is written to `target_dir` then.
    """
    archive, target = Path(archive), Path(target_dir)
    if not archive.is_file():
        raise InputError(f"{archive}: archive not found")
    digest = _norm_sha(sha256, archive) or sha256_file(archive)
    if target.exists():
        info = _read_marker(target)
        if info is None:
            raise InputError(f"{target}: exists but was not made by extracting an archive (no "
                             f"{EXTRACT_MARKER}); remove it or choose another folder for {archive.name}")
        if info.get("sha256") == digest:
            log.info("%s: already extracted into %s", archive, target)
            return target
        log.warning("%s: %s holds the extraction of another archive (sha256 %s); extracting again",
                    archive, target, info.get("sha256"))
    kind = _archive_kind(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent))
    try:
        t0 = time.monotonic()
        try:
            n = _extract_zip(archive, tmp) if kind == "zip" else _extract_tar(archive, tmp)
        except InputError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error,
                lzma.LZMAError, NotImplementedError) as e:
            raise InputError(f"{archive}: cannot extract ({e.__class__.__name__}: {e}); the archive is "
                             f"truncated or corrupt: delete it to download it again") from e
        except OSError as e:
            if e.errno is not None and e.errno != errno.EINVAL:
                raise  # a real file-system problem (disk full, permissions), not a bad archive
            raise InputError(f"{archive}: cannot extract ({e.__class__.__name__}: {e}); the archive is "
                             f"truncated or corrupt: delete it to download it again") from e
        _check_tree_inside(archive, tmp)
        (tmp / EXTRACT_MARKER).write_text(json.dumps({"archive": archive.name, "sha256": digest,
                                                      "members": n}, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        log.info("%s: extracted %d members into %s in %.1f s", archive, n, target, time.monotonic() - t0)
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_archive(url: str | None, dest, target_dir, sha256: str | None = None, mirror=None, local=None,
                  record: bool = True, **download_kw) -> Path:
    """``fetch_file`` + ``extract``: the folder holding the archive's content.

    A finished extraction whose marker matches the expected checksum (`sha256`, else the one recorded in
    ``<dest>.sha256``) is returned at once, even if the archive was deleted since. `local` may also be an
    already-extracted folder (a folder without a file of the archive's name): it is returned as is (its
    content cannot be checked against an archive checksum).
    """
    dest, target = Path(dest), Path(target_dir)
    name = filename_for(url) if url else dest.name
    if local and Path(local).is_dir() and not (Path(local) / name).is_file():
        log.info("%s: using the already-extracted folder %s", name, local)
        return Path(local)
    expected = _norm_sha(sha256, name) or (recorded_sha256(dest) if record else None)
    done = extracted_sha256(target) if target.exists() else None
    if expected is not None and done == expected:
        log.info("%s: already extracted into %s (sha256 %s)", name, target, expected)
        return target
    path, digest = _fetch_file(url, dest, sha256, mirror, local, record, **download_kw)
    return extract(path, target, sha256=digest)
