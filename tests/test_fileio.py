"""core.fileio: atomic writes keep the old file on failure; the downloader resumes, retries, checks and locks."""

from __future__ import annotations

import errno
import hashlib
import json
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core import fileio
from core.errors import LabError

PAYLOAD = random.Random(1).randbytes(150_000)
OUR_TMP = r"\.[A-Za-z0-9._-]+\.[0-9a-f]{12}\.tmp"  # core.runs._OUR_TMP: how crash recovery finds our leftovers


# ------------------------------------------------------------------------------------------- atomic writes
def test_atomic_writes_replace_the_file_and_leave_nothing_else(tmp_path):
    path = tmp_path / "sub" / "state.json"
    fileio.atomic_write_json(path, {"step": 1})
    fileio.atomic_write_json(path, {"step": 2, "loss": 3.5})
    assert json.loads(path.read_text()) == {"step": 2, "loss": 3.5}
    assert path.read_text() == json.dumps({"step": 2, "loss": 3.5}, indent=1) + "\n"
    fileio.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["b.bin", "state.json", "sub"]
    with pytest.raises(ValueError):
        fileio.atomic_write_json(path, {"loss": float("nan")})  # no NaN in JSON the UI reads back
    assert json.loads(path.read_text())["step"] == 2


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError("serialiser")])
def test_a_failing_writer_keeps_the_old_file_and_no_partial_one(tmp_path, error):
    path = tmp_path / "model.bin"
    fileio.atomic_write_bytes(path, b"old contents")
    seen: list[Path] = []

    def torn(tmp: Path) -> None:
        seen.append(tmp)
        tmp.write_bytes(b"half")  # a torn write, as a full disk leaves it
        raise error

    with pytest.raises(LabError if isinstance(error, OSError) else RuntimeError) as info:
        fileio.atomic_write(path, torn)
    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]  # the temporary file is gone
    assert re.fullmatch(OUR_TMP, seen[0].name) and seen[0].parent == tmp_path
    if isinstance(error, OSError):
        assert str(info.value) == (f"Could not write {path} (No space left on device); check the disk space and "
                                   "permissions.")
        assert fileio.is_write_failure(info.value)


def test_a_file_in_the_way_of_the_folder_is_a_write_failure(tmp_path):
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(LabError, match="Could not write") as info:
        fileio.atomic_write_bytes(tmp_path / "blocker" / "x.json", b"{}")
    assert fileio.is_write_failure(info.value)
    assert not fileio.is_write_failure(LabError("a plain refusal"))
    fileio.fsync_dir(tmp_path / "no-such-folder")  # a no-op, never an error


# --------------------------------------------------------------------------------------------- downloads
class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /f (honouring ``Range``); ``plan`` is a queue of "ok", "truncate", "404", "500"."""

    plan: list[str]
    log: list[str | None]

    def do_GET(self):  # noqa: N802 - http.server's naming
        mode = self.plan.pop(0) if self.plan else "ok"
        rng = self.headers.get("Range")
        self.log.append(rng)
        if mode in ("404", "500"):
            self.send_error(int(mode))
            return
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "truncate" else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"plan": [], "log": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/f", handler
    httpd.shutdown()
    httpd.server_close()


def _get(url: str, dest: Path, **kw) -> Path:
    return fileio.download(url, dest, backoff=0.0, chunk_bytes=32 * 1024, **kw)


def test_download_resumes_a_part_file_with_a_range_request(server, tmp_path):
    url, handler = server
    dest = tmp_path / "f.bin"
    fileio.part_path(dest).write_bytes(PAYLOAD[:1000])  # left by an earlier, interrupted call
    seen: list[tuple[int, int | None]] = []
    assert _get(url, dest, progress=lambda done, total: seen.append((done, total))) == dest
    assert dest.read_bytes() == PAYLOAD and not fileio.part_path(dest).exists()
    assert handler.log == ["bytes=1000-"]
    assert seen[0][0] > 1000 and seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_a_broken_transfer_is_retried_from_where_it_stopped(server, tmp_path):
    url, handler = server
    handler.plan = ["truncate", "500"]
    dest = _get(url, tmp_path / "f.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert dest.read_bytes() == PAYLOAD
    half = str(len(PAYLOAD) // 2)
    assert handler.log == [None, f"bytes={half}-", f"bytes={half}-"]


def test_failures_come_back_as_their_own_exceptions(server, tmp_path):
    url, handler = server
    dest = tmp_path / "f.bin"
    handler.plan = ["truncate"] * 3
    with pytest.raises(fileio.Interrupted):
        _get(url, dest, retries=2)
    assert len(handler.log) == 3 and fileio.part_path(dest).exists()  # kept, for the next call to resume
    handler.plan = ["404"]
    with pytest.raises(fileio.Refused) as info:
        _get(url, dest)
    assert (info.value.code, len(handler.log)) == (404, 4)  # a client error is not retried
    with pytest.raises(fileio.ChecksumMismatch):
        _get(url, dest, sha256="0" * 64)
    assert not dest.exists() and not fileio.part_path(dest).exists()
    with pytest.raises(fileio.TooLarge):
        _get(url, dest, max_bytes=50_000)
    assert not fileio.part_path(dest).exists()


def test_verify_and_reuse(server, tmp_path):
    url, handler = server
    dest = tmp_path / "f.bin"

    def refuse(part: Path) -> None:
        raise LabError(f"{part.name} is not what we wanted.")

    with pytest.raises(LabError, match="f.bin.part is not what we wanted"):
        _get(url, dest, verify=refuse)
    assert list(tmp_path.iterdir()) == []
    _get(url, dest)
    n = len(handler.log)
    assert _get(url, dest, reuse=lambda p: p.read_bytes() == PAYLOAD) == dest
    assert len(handler.log) == n  # nothing fetched
    dest.write_bytes(b"stale")
    assert _get(url, dest, reuse=lambda p: p.read_bytes() == PAYLOAD).read_bytes() == PAYLOAD


def test_offline_and_bad_addresses(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(fileio.Unreachable):
        _get(f"http://127.0.0.1:{port}/f", tmp_path / "f.bin", retries=1, timeout=2)
    lookups = []

    def no_dns(*args, **kwargs):
        lookups.append(args[0])
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(fileio.Offline):
        _get("http://example.invalid/f", tmp_path / "f.bin", retries=3)
    assert lookups == ["example.invalid"]  # no network: not retried
    with pytest.raises(LabError, match="http or https"):
        _get("file:///etc/passwd", tmp_path / "f.bin")
    assert fileio.lock_for(tmp_path / "f.bin") is fileio.lock_for(str(tmp_path / "f.bin"))
