"""ganaug.downloads against a local HTTP server on 127.0.0.1 (no network): checksums, resume, retries,
safe and atomic extraction, mirrors and local copies, the stamped check before every read. Archives are
tiny files made here."""

import hashlib
import io
import json
import logging
import os
import re
import time
import tarfile
import zipfile

import pytest
from http_server import FileServer

from ganaug.downloads import (
    EXTRACT_MARKER,
    ChecksumError,
    DownloadError,
    download,
    extract,
    extracted_sha256,
    fetch_archive,
    fetch_file,
    filename_for,
    recorded_sha256,
    stamp_path,
    verify_file,
)
from ganaug.io import InputError

PAYLOAD = bytes(range(256)) * 6000 + b"tail"  # ~1.5 MiB: more than one 1 MiB chunk, not a multiple of it
SHA = hashlib.sha256(PAYLOAD).hexdigest()
FAST = dict(backoff=0.01, timeout=5)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(entries, mode="w:gz") -> bytes:
    """entries: (name, bytes) for files, (name, ('sym' | 'hard', target)) for links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type = tarfile.SYMTYPE if data[0] == "sym" else tarfile.LNKTYPE
                info.linkname = data[1]
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD_ZIP = make_zip({"set/a.txt": b"alpha", "set/sub/b.txt": b"beta" * 1000})


@pytest.fixture
def server():
    s = FileServer({"/f/data.bin": PAYLOAD, "/f/good.zip": GOOD_ZIP})
    yield s
    s.close()


def _no_temp_left(folder):
    return not [p.name for p in folder.iterdir() if p.name.endswith((".part", ".extracting", ".old", ".tmp"))]


# ------------------------------------------------------------------------------------------ download


def test_download_records_checksum_verifies_later_and_logs_progress(server, tmp_path, caplog):
    url = server.url + "/f/data.bin"
    dest = tmp_path / "dl" / "data.bin"
    with caplog.at_level(logging.INFO, logger="ganaug"):
        assert download(url, dest, progress_every=0, **FAST) == dest
    assert dest.read_bytes() == PAYLOAD and recorded_sha256(dest) == SHA
    assert (tmp_path / "dl" / "data.bin.sha256").read_text() == f"{SHA}  data.bin\n"
    assert _no_temp_left(dest.parent)
    progress = [r.getMessage() for r in caplog.records if "MB/s" in r.getMessage()]
    assert len(progress) >= 3  # >= 2 chunks of 1 MiB, each logged with progress_every=0, then the end
    assert all("data.bin" in m and "MB (" in m and "ETA" in m for m in progress)
    assert "/ 1.5 MB (100.0%)" in progress[-1] and "done in" in progress[-1]
    # later uses: no request, checked against the record and against a configured checksum
    n = len(server.requests)
    assert download(url, dest, **FAST) == dest
    assert download(url, dest, sha256=SHA.upper(), **FAST) == dest
    assert len(server.requests) == n
    # at most every progress_every seconds: only the final line in a fast download
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ganaug"):
        download(url, tmp_path / "slowlog.bin", progress_every=3600, **FAST)
    assert len([r for r in caplog.records if "MB/s" in r.getMessage()]) == 1
    # progress=None: quiet
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ganaug"):
        download(url, tmp_path / "quiet.bin", progress=None, progress_every=0, **FAST)
    assert not [r for r in caplog.records if "MB/s" in r.getMessage()]


def test_corrupted_download_is_rejected_and_never_renamed(server, tmp_path):
    url = server.url + "/f/data.bin"
    server.files["/f/data.bin"] = PAYLOAD[:-1] + b"X"  # the server hands out a corrupted file
    dest = tmp_path / "data.bin"
    with pytest.raises(ChecksumError) as e:
        download(url, dest, sha256=SHA, **FAST)
    msg = str(e.value)
    assert "checksum mismatch" in msg and url in msg and str(dest) in msg and SHA in msg
    assert list(tmp_path.iterdir()) == []  # no dest, no .part, no record


def test_existing_file_with_wrong_checksum_is_an_error_and_kept(server, tmp_path):
    url = server.url + "/f/data.bin"
    dest = tmp_path / "data.bin"
    download(url, dest, **FAST)
    n = len(server.requests)
    # a configured checksum the finished file does not have: error naming the file, file untouched
    with pytest.raises(ChecksumError, match=re.escape(str(dest))):
        download(url, dest, sha256="0" * 64, **FAST)
    assert dest.read_bytes() == PAYLOAD
    # the file changes on disk: the recorded checksum catches it; nothing is downloaded over it
    dest.write_bytes(b"damaged")
    with pytest.raises(ChecksumError, match="recorded in") as e:
        download(url, dest, **FAST)
    assert str(dest) in str(e.value) and "delete it" in str(e.value)
    assert dest.read_bytes() == b"damaged" and len(server.requests) == n
    # replace_bad=True (the weights cache): removed and downloaded again, checked against the record
    assert download(url, dest, replace_bad=True, **FAST).read_bytes() == PAYLOAD
    # a file placed by hand with no record: accepted and its checksum recorded
    hand = tmp_path / "hand.bin"
    hand.write_bytes(b"by hand")
    assert download(url, hand, **FAST) == hand and recorded_sha256(hand) == sha(b"by hand")


def test_recorded_checksum_applies_to_a_new_download(server, tmp_path):
    url = server.url + "/f/data.bin"
    dest = tmp_path / "data.bin"
    download(url, dest, **FAST)
    dest.unlink()
    server.files["/f/data.bin"] = b"changed upstream"
    with pytest.raises(ChecksumError, match="recorded in"):
        download(url, dest, **FAST)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()


def test_dropped_connection_resumes_with_range(server, tmp_path):
    url = server.url + "/f/data.bin"
    dest = tmp_path / "data.bin"
    server.cut_after, server.cut_times = 300_000, 1
    with pytest.raises(DownloadError, match="resumed") as e:
        download(url, dest, sha256=SHA, retries=0, **FAST)
    assert url in str(e.value)
    part = tmp_path / "data.bin.part"
    assert part.stat().st_size == 300_000 and not dest.exists()  # a partial file is never the result
    assert download(url, dest, sha256=SHA, **FAST).read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/f/data.bin", "bytes=300000-")
    assert not part.exists()


def test_dropped_connections_are_retried_and_resumed_within_one_call(server, tmp_path, caplog):
    url = server.url + "/f/data.bin"
    server.cut_after, server.cut_times = 200_000, 2
    with caplog.at_level(logging.WARNING, logger="ganaug"):
        got = download(url, tmp_path / "data.bin", retries=3, **FAST)
    assert got.read_bytes() == PAYLOAD and recorded_sha256(got) == SHA
    assert [r for _, r in server.requests] == [None, "bytes=200000-", "bytes=400000-"]
    assert any("retrying in" in r.getMessage() for r in caplog.records)


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    url = server.url + "/f/data.bin"
    server.norange.add("/f/data.bin")
    junk = b"not a prefix of the file at all"
    (tmp_path / "data.bin.part").write_bytes(junk)
    assert download(url, tmp_path / "data.bin", sha256=SHA, **FAST).read_bytes() == PAYLOAD
    assert server.requests == [("/f/data.bin", f"bytes={len(junk)}-")]  # answered 200 with the whole file


def test_stale_part_from_another_version_is_restarted_on_mismatch(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(b"x" * 1000)  # resumable, but not this file's first bytes
    got = download(server.url + "/f/data.bin", tmp_path / "data.bin", sha256=SHA, **FAST)
    assert got.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=1000-", None]


def test_complete_part_left_before_rename_is_verified(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)  # server answers 416 'bytes */size'
    url = server.url + "/f/data.bin"
    assert download(url, tmp_path / "data.bin", sha256=SHA, **FAST).read_bytes() == PAYLOAD
    assert server.requests == [("/f/data.bin", f"bytes={len(PAYLOAD)}-")]
    (tmp_path / "b.bin.part").write_bytes(PAYLOAD + b"extra")  # longer than the file: restart
    assert download(url, tmp_path / "b.bin", sha256=SHA, **FAST).read_bytes() == PAYLOAD


def test_5xx_is_retried_then_succeeds(server, tmp_path, caplog):
    server.fail_times = 2
    with caplog.at_level(logging.WARNING, logger="ganaug"):
        got = download(server.url + "/f/data.bin", tmp_path / "data.bin", retries=3, **FAST)
    assert got.read_bytes() == PAYLOAD and len(server.requests) == 3
    assert sum("HTTP 500" in r.getMessage() for r in caplog.records) == 2
    server.fail_times, server.fail_code = 10, 503
    with pytest.raises(DownloadError, match=r"HTTP 503.*after 2 attempts"):
        download(server.url + "/f/data.bin", tmp_path / "other.bin", retries=1, **FAST)


def test_404_and_403_fail_at_once_naming_the_url(server, tmp_path):
    for path, code in (("/f/missing.zip", "404"), ("/private/x.zip", "403")):
        n = len(server.requests)
        with pytest.raises(DownloadError, match=code) as e:
            download(server.url + path, tmp_path / "x.zip", retries=5, backoff=5, timeout=5)
        assert server.url + path in str(e.value)
        assert len(server.requests) == n + 1  # no retry
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match="cannot download"):  # nothing listens on port 9
        download("http://127.0.0.1:9/none.zip", tmp_path / "none.zip", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(InputError, match="64 hex"):
        download(server.url + "/f/data.bin", tmp_path / "d.bin", sha256="abc")
    with pytest.raises(InputError, match="unsupported URL scheme"):
        download("ftp://example.org/x.zip", tmp_path / "d.bin")


def test_size_check(server, tmp_path):
    with pytest.raises(DownloadError, match="expected 5"):
        download(server.url + "/f/data.bin", tmp_path / "d.bin", size=5, **FAST)
    assert list(tmp_path.iterdir()) == []
    assert download(server.url + "/f/data.bin", tmp_path / "d.bin", size=len(PAYLOAD), **FAST).exists()


# ------------------------------------------------------------------------------------------ extract


def test_extract_zip_atomic_marker_and_skip(tmp_path):
    arc = tmp_path / "good.zip"
    arc.write_bytes(GOOD_ZIP)
    target = tmp_path / "out"
    assert extract(arc, target) == target
    assert (target / "set" / "a.txt").read_bytes() == b"alpha"
    assert (target / "set" / "sub" / "b.txt").read_bytes() == b"beta" * 1000
    assert extracted_sha256(target) == sha(GOOD_ZIP) and (target / EXTRACT_MARKER).is_file()
    (target / "set" / "a.txt").write_bytes(b"touched")  # a re-run skips a finished extraction
    extract(arc, target)
    assert (target / "set" / "a.txt").read_bytes() == b"touched"
    assert _no_temp_left(tmp_path)


def test_extract_tar_gz(tmp_path):
    arc = tmp_path / "good.tar.gz"
    arc.write_bytes(make_tar([("d/x.txt", b"x"), ("d/link", ("sym", "x.txt")),
                              ("d/hard", ("hard", "d/x.txt"))]))
    target = extract(arc, tmp_path / "out")
    assert (target / "d" / "x.txt").read_bytes() == b"x"
    assert (target / "d" / "link").is_symlink() and (target / "d" / "link").read_bytes() == b"x"
    assert (target / "d" / "hard").read_bytes() == b"x"


UNSAFE = [
    ("evil.zip", make_zip({"ok.txt": b"ok", "../evil.txt": b"bad"}), "../evil.txt"),
    ("evil2.zip", make_zip({"ok.txt": b"ok", "a/../../evil.txt": b"bad"}), "a/../../evil.txt"),
    ("abs.zip", make_zip({"ok.txt": b"ok", "/tmp/abs.txt": b"bad"}), "/tmp/abs.txt"),
    ("abs.tar.gz", make_tar([("ok.txt", b"ok"), ("/tmp/abs.txt", b"bad")]), "/tmp/abs.txt"),
    ("dots.tar", make_tar([("ok.txt", b"ok"), ("../evil.txt", b"bad")], mode="w"), "../evil.txt"),
    ("symout.tar.gz", make_tar([("ok.txt", b"ok"), ("d/link", ("sym", "../../outside"))]), "d/link"),
    ("symabs.tar.gz", make_tar([("ok.txt", b"ok"), ("link", ("sym", "/etc"))]), "link"),
    ("through.tar.gz", make_tar([("sub/ok.txt", b"ok"), ("link", ("sym", "sub")), ("link/x.txt", b"x")]),
     "link/x.txt"),
    ("hardout.tar.gz", make_tar([("ok.txt", b"ok"), ("h", ("hard", "../outside"))]), "h"),
    ("hardsym.tar.gz", make_tar([("a/b/l", ("sym", "../..")), ("l2", ("hard", "a/b/l"))]), "l2"),
]


@pytest.mark.parametrize("name, data, member", UNSAFE, ids=[c[0] for c in UNSAFE])
def test_unsafe_members_are_rejected_before_anything_is_written(tmp_path, name, data, member):
    work = tmp_path / "work"
    work.mkdir()
    arc = work / name
    arc.write_bytes(data)
    target = work / "out"
    with pytest.raises(InputError) as e:
        extract(arc, target)
    msg = str(e.value)
    assert str(arc) in msg and f"'{member}'" in msg and "nothing was extracted" in msg
    assert not target.exists() and _no_temp_left(work)
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["work", name])  # nothing escaped


def test_truncated_and_corrupt_archives_name_the_archive(tmp_path):
    bad = {
        "trunc.zip": GOOD_ZIP[: len(GOOD_ZIP) // 2],
        "trunc.tar.gz": make_tar([("a.txt", bytes(range(256)) * 400)])[:300],
        "notarchive.zip": b"hello",
    }
    # a CRC error: flip a byte inside a stored (uncompressed) member's data
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"A" * 100)
    raw = bytearray(buf.getvalue())
    raw[raw.index(b"A" * 100) + 50] = ord("B")
    bad["crc.zip"] = bytes(raw)
    for name, data in bad.items():
        arc = tmp_path / name
        arc.write_bytes(data)
        with pytest.raises(InputError, match=re.escape(str(arc))) as e:
            extract(arc, tmp_path / f"out-{name}")
        assert "truncated or corrupt" in str(e.value), name
        assert not (tmp_path / f"out-{name}").exists()
    assert _no_temp_left(tmp_path)


def test_finished_extraction_is_not_overwritten_by_a_bad_archive(tmp_path):
    good, bad = tmp_path / "a.zip", tmp_path / "b.zip"
    good.write_bytes(GOOD_ZIP)
    bad.write_bytes(GOOD_ZIP[:100])
    target = extract(good, tmp_path / "out")
    with pytest.raises(InputError, match="truncated or corrupt"):
        extract(bad, target)
    assert extracted_sha256(target) == sha(GOOD_ZIP) and (target / "set" / "a.txt").read_bytes() == b"alpha"
    # another good archive replaces the earlier extraction
    other = tmp_path / "c.zip"
    other.write_bytes(make_zip({"new.txt": b"new"}))
    extract(other, target)
    assert (target / "new.txt").read_bytes() == b"new" and not (target / "set").exists()
    # a folder not made by extract is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("keep")
    with pytest.raises(InputError, match="not made by extracting"):
        extract(good, mine)
    assert (mine / "keep.txt").read_text() == "keep"
    assert _no_temp_left(tmp_path)


# ------------------------------------------------------------------------------------------ fetch


def test_fetch_file_mirror_and_local(server, tmp_path):
    url = "https://example.invalid/2019/data.bin"  # never contacted
    assert filename_for(url) == "data.bin"
    # mirror: base URL
    got = fetch_file(url, tmp_path / "a" / "data.bin", sha256=SHA, mirror=server.url + "/f/", **FAST)
    assert got.read_bytes() == PAYLOAD and server.requests[-1][0] == "/f/data.bin"
    # mirror: folder
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "data.bin").write_bytes(PAYLOAD)
    got = fetch_file(url, tmp_path / "b" / "data.bin", mirror=mirror)
    assert got == tmp_path / "b" / "data.bin" and got.read_bytes() == PAYLOAD and recorded_sha256(got) == SHA
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no file 'data.bin'"):
        fetch_file(url, tmp_path / "c" / "data.bin", mirror=tmp_path / "empty")
    with pytest.raises(InputError, match="mirror folder not found"):
        fetch_file(url, tmp_path / "c" / "data.bin", mirror=tmp_path / "nothing-here")
    # local: the file itself, or a folder holding it; used in place, checksum recorded beside dest
    dest = tmp_path / "d" / "data.bin"
    assert fetch_file(url, dest, local=mirror / "data.bin") == mirror / "data.bin"
    assert recorded_sha256(dest) == SHA and not dest.exists()
    assert fetch_file(url, dest, local=mirror) == mirror / "data.bin"
    (mirror / "data.bin").write_bytes(b"changed")  # checked against the record on later use
    with pytest.raises(ChecksumError, match=re.escape(str(mirror / "data.bin"))):
        fetch_file(url, dest, local=mirror)
    with pytest.raises(ChecksumError):
        fetch_file(url, tmp_path / "e" / "data.bin", sha256=SHA, local=mirror)
    with pytest.raises(InputError, match="local copy not found"):
        fetch_file(url, dest, local=tmp_path / "nope.bin")
    with pytest.raises(InputError, match="no URL"):
        fetch_file(None, dest)
    # file:// URLs copy with the same checks
    assert fetch_file((mirror / "data.bin").as_uri(), tmp_path / "f" / "x.bin").read_bytes() == b"changed"


def test_fetch_archive_end_to_end(server, tmp_path):
    url = server.url + "/f/good.zip"
    dest, target = tmp_path / "dl" / "good.zip", tmp_path / "data" / "good"
    assert fetch_archive(url, dest, target, sha256=sha(GOOD_ZIP), **FAST) == target
    assert (target / "set" / "a.txt").read_bytes() == b"alpha"
    n = len(server.requests)
    dest.unlink()  # the archive may be deleted once extracted: the marker still matches the record
    assert fetch_archive(url, dest, target, **FAST) == target and len(server.requests) == n
    # an already-extracted local folder is used as is
    assert fetch_archive(url, tmp_path / "x.zip", tmp_path / "y", local=target) == target
    # a truncated archive served as complete: downloaded, then a clear error naming it; nothing extracted
    server.files["/f/trunc.zip"] = GOOD_ZIP[:-40]
    with pytest.raises(InputError, match=r"trunc\.zip.*truncated or corrupt"):
        fetch_archive(server.url + "/f/trunc.zip", tmp_path / "dl" / "trunc.zip", tmp_path / "data" / "t",
                      **FAST)
    assert not (tmp_path / "data" / "t").exists()
    # an unsafe archive over HTTP
    server.files["/f/evil.zip"] = make_zip({"../evil.txt": b"bad"})
    with pytest.raises(InputError, match=r"evil\.zip.*'\.\./evil\.txt'"):
        fetch_archive(server.url + "/f/evil.zip", tmp_path / "dl" / "evil.zip", tmp_path / "data" / "e",
                      **FAST)
    assert not (tmp_path / "data" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


# ------------------------------------------------------------------------------ verify_file (stamps)
@pytest.fixture
def hashes(monkeypatch):
    """Counts the full hashes ganaug.downloads computes."""
    import ganaug.downloads as downloads

    calls = []
    real = downloads.sha256_file

    def counting(path, *a, **kw):
        calls.append(str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(downloads, "sha256_file", counting)
    return calls


def _age(path, seconds_ago: float) -> int:
    """Set the file's mtime to `seconds_ago` before now (a file written long before it is checked)."""
    ns = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(ns, ns))
    return ns


def test_verify_file_hashes_again_only_when_size_or_mtime_changed(tmp_path, hashes):
    f = tmp_path / "gt.csv"
    f.write_bytes(b"image,MEL\nISIC_1,1\nISIC_2,0\n")
    _age(f, 60)
    digest = verify_file(f, url="https://example.org/gt.csv")  # first use: hashed, recorded, stamped
    assert digest == sha(f.read_bytes()) == recorded_sha256(f) and len(hashes) == 1
    stamp = json.loads(stamp_path(f).read_text())
    assert stamp["sha256"] == digest and stamp["size"] == f.stat().st_size
    assert stamp["mtime_ns"] == f.stat().st_mtime_ns and stamp["file"] == str(f)

    assert verify_file(f) == digest and len(hashes) == 1  # unchanged: the stamp is trusted, no hash

    touched = _age(f, 30)  # same bytes, new mtime: hashed again, passes, stamp refreshed
    assert verify_file(f) == digest and len(hashes) == 2
    assert json.loads(stamp_path(f).read_text())["mtime_ns"] == touched
    assert verify_file(f) == digest and len(hashes) == 2

    with open(f, "r+b") as fh:  # damaged in place, same size: the new mtime gives it away
        fh.write(b"IMAGE")
    _age(f, 10)
    with pytest.raises(ChecksumError) as e:
        verify_file(f, url="https://example.org/gt.csv")
    msg = str(e.value)
    assert len(hashes) == 3 and msg.startswith(f"{f}: checksum mismatch") and f"recorded in {f}.sha256" in msg
    assert "delete it and run again to download it again from https://example.org/gt.csv" in msg

    with open(f, "r+b") as fh:  # truncated in place (the case): size and mtime change
        fh.truncate(12)
    with pytest.raises(ChecksumError, match=re.escape(f"{f}: checksum mismatch")):
        verify_file(f)
    assert len(hashes) == 4 and f.stat().st_size == 12  # left as it is


def test_verify_file_distrusts_a_stamp_taken_just_after_a_write(tmp_path, hashes):
    """A file hashed right after it was written may be written again within the same mtime tick: its stamp
    is not trusted until the file is checked again well after its last write."""
    f = tmp_path / "fresh.csv"
    f.write_bytes(b"a,b\n1,2\n")
    verify_file(f)
    verify_file(f)
    assert len(hashes) == 2
    _age(f, 60)
    verify_file(f)
    verify_file(f)
    assert len(hashes) == 3


def test_verify_file_of_a_local_copy_and_a_configured_checksum(tmp_path, hashes):
    """A local copy is stamped beside its download path's record; a configured sha256 wins over the record."""
    copy = tmp_path / "copies" / "meta.csv"
    copy.parent.mkdir()
    copy.write_bytes(b"image,lesion_id\nISIC_1,HAM_1\n")
    _age(copy, 60)
    dest = tmp_path / "raw" / "downloads" / "meta.csv"
    dest.parent.mkdir(parents=True)
    want = sha(copy.read_bytes())
    assert verify_file(copy, sha256=want, record_for=dest) == want
    assert stamp_path(dest).is_file() and recorded_sha256(dest) == want and not dest.exists()
    verify_file(copy, sha256=want, record_for=dest)
    assert len(hashes) == 1
    with pytest.raises(ChecksumError, match="expected 0{64} \\(configured\\)"):
        verify_file(copy, sha256="0" * 64, record_for=dest)  # from the stamp: no hash needed
    assert len(hashes) == 1
    copy.write_bytes(b"image,lesion_id\n")
    with pytest.raises(ChecksumError) as e:
        verify_file(copy, record_for=dest, url="https://example.org/meta.csv")
    assert str(e.value).startswith(f"{copy}: checksum mismatch")
    assert "replace it with the right file (a copy of https://example.org/meta.csv)" in str(e.value)
    with pytest.raises(InputError, match="file not found"):
        verify_file(tmp_path / "absent.csv")
