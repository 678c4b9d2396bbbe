import hashlib

import pytest
from http_server import FileServer

from ganaug.io import InputError
from ganaug.weights import ChecksumError, DownloadError, fetch, resolve_weights

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    s = FileServer({"/w/model.pth": PAYLOAD})
    yield s
    s.close()


def test_download_records_checksum_and_uses_cache(server, tmp_path):
    p = fetch(server.url + "/w/model.pth", None, tmp_path)
    assert p == tmp_path / "model.pth" and p.read_bytes() == PAYLOAD
    assert (tmp_path / "model.pth.sha256").read_text().split()[0] == SHA
    assert not (tmp_path / "model.pth.part").exists()
    n = len(server.requests)
    assert fetch(server.url + "/w/model.pth", None, tmp_path) == p  # cached: no new request
    assert fetch(server.url + "/w/model.pth", SHA, tmp_path) == p
    assert len(server.requests) == n


def test_given_checksum_mismatch_removes_download(server, tmp_path):
    with pytest.raises(ChecksumError) as e:
        fetch(server.url + "/w/model.pth", "0" * 64, tmp_path)
    msg = str(e.value)
    assert "checksum mismatch" in msg and "/w/model.pth" in msg and SHA in msg and "0" * 64 in msg
    assert not any(tmp_path.iterdir())  # nothing bad left behind


def test_recorded_checksum_verified_on_later_use(server, tmp_path):
    url = server.url + "/w/model.pth"
    p = fetch(url, None, tmp_path)
    # the cached file gets corrupted on disk: it is removed and downloaded again, then matches the record
    p.write_bytes(b"corrupted")
    assert fetch(url, None, tmp_path).read_bytes() == PAYLOAD
    # the server now serves different content than recorded on first download: clear error, file removed
    server.files["/w/model.pth"] = b"a different file"
    p.write_bytes(b"corrupted again")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        fetch(url, None, tmp_path)
    assert not p.exists() and not (tmp_path / "model.pth.part").exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    url = server.url + "/w/model.pth"
    server.cut_after, server.cut_times = 300_000, 1
    with pytest.raises(DownloadError, match="resumed"):
        fetch(url, SHA, tmp_path, retries=0)  # retries would resume within the call (see test_downloads)
    part = tmp_path / "model.pth.part"
    assert part.stat().st_size == 300_000
    p = fetch(url, SHA, tmp_path)
    assert p.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/w/model.pth", "bytes=300000-")
    assert not part.exists()


def test_resume_without_range_support_restarts(server, tmp_path):
    url = server.url + "/w/model.pth"
    (tmp_path / "model.pth.part").write_bytes(b"garbage that is not a prefix")
    server.norange.add("/w/model.pth")
    assert fetch(url, SHA, tmp_path).read_bytes() == PAYLOAD


def test_oversized_part_restarts(server, tmp_path):
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD + b"extra")  # server answers 416
    assert fetch(server.url + "/w/model.pth", SHA, tmp_path).read_bytes() == PAYLOAD


def test_http_errors_name_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match="404") as e:
        fetch(server.url + "/missing.pth", None, tmp_path)
    assert "/missing.pth" in str(e.value)
    with pytest.raises(DownloadError, match="cannot download"):
        fetch("http://127.0.0.1:9/none.pth", None, tmp_path, timeout=2)  # nothing listens on port 9
    with pytest.raises(InputError, match="64 hex"):
        fetch(server.url + "/w/model.pth", "abc", tmp_path)


def test_resolve_weights(server, tmp_path):
    local = tmp_path / "local.pth"
    local.write_bytes(PAYLOAD)
    assert resolve_weights(path=local) == local
    assert resolve_weights(path=local, sha256=SHA) == local
    with pytest.raises(ChecksumError):
        resolve_weights(path=local, sha256="1" * 64)
    with pytest.raises(InputError, match="not found"):
        resolve_weights(path=tmp_path / "nope.pth")
    assert resolve_weights() is None
    got = resolve_weights(url=server.url + "/w/model.pth", sha256=SHA, cache_dir=tmp_path / "cache")
    assert got == tmp_path / "cache" / "model.pth"
    assert fetch(server.url + "/w/model.pth", SHA, tmp_path / "c2", filename="inc.pth").name == "inc.pth"
