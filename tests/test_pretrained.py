"""GPT-2 weights: find them in a Hugging Face cache, download them (progress, resume, checks), uploads, offline."""

from __future__ import annotations

import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import core.pretrained as pre
from core.checkpoint import load_hf_gpt2
from core.errors import LabError

OFFLINE = ("(no internet connection?). Download model.safetensors on a machine with internet and give its path "
           "here.")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A tiny random GPT-2 saved by transformers (Hugging Face's own layout, `transformer.` prefix)."""
    import torch
    import transformers
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=1)
    out = tmp_path_factory.mktemp("tiny-gpt2")
    transformers.GPT2LMHeadModel(cfg).save_pretrained(out, safe_serialization=True)
    return out / "model.safetensors"


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(pre, "BACKOFF_S", 0.0)
    return tmp_path / "data"


class _Handler(BaseHTTPRequestHandler):
    """Serves files from `root`, honouring `Range: bytes=N-` like a CDN does."""

    root: Path
    requests: list[str | None] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        type(self).requests.append(rng)
        start = int(rng.removeprefix("bytes=").rstrip("-")) if rng else 0
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"root": root, "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler
    httpd.shutdown()
    httpd.server_close()


def test_sizes_and_urls():
    assert pre.GPT2_SIZES["gpt2-small"] == "openai-community/gpt2"
    assert set(pre.GPT2_SIZES) == {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"}
    assert pre.hf_url("gpt2-medium") == "https://huggingface.co/openai-community/gpt2-medium/resolve/main/model.safetensors"
    with pytest.raises(LabError, match="Unknown GPT-2 size"):
        pre.hf_url("gpt2-huge")


def test_verify_is_the_hugging_face_modules_check(tiny_gpt2):
    """core.hf_gpt2.verify_gpt2_file (tested there) is still importable from here, for the pages."""
    from core.hf_gpt2 import verify_gpt2_file

    assert pre.verify_gpt2_file is verify_gpt2_file
    assert pre.verify_gpt2_file(tiny_gpt2)["n_layers"] == 2


def test_find_local_in_a_hugging_face_cache(tiny_gpt2, tmp_path):
    hub = tmp_path / "hub"
    assert pre.find_local_gpt2("gpt2-small", hf_cache=hub) is None
    repo = hub / "models--openai-community--gpt2"
    for rev in ("aaa111", "bbb222"):
        (repo / "snapshots" / rev).mkdir(parents=True)
        shutil.copy(tiny_gpt2, repo / "snapshots" / rev / "model.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("bbb222")
    assert pre.find_local_gpt2("gpt2-small", hf_cache=hub) == repo / "snapshots" / "bbb222" / "model.safetensors"
    assert pre.find_local_gpt2("gpt2-medium", hf_cache=hub) is None
    # A broken file in the cache is skipped, not returned.
    (repo / "snapshots" / "bbb222" / "model.safetensors").write_bytes(b"\x00" * 64)
    assert pre.find_local_gpt2("gpt2-small", hf_cache=hub) == repo / "snapshots" / "aaa111" / "model.safetensors"
    # The HF_HUB_CACHE variable is honoured when no folder is given.
    legacy = tmp_path / "hub2" / "models--gpt2" / "snapshots" / "c0ffee"
    legacy.mkdir(parents=True)
    shutil.copy(tiny_gpt2, legacy / "model.safetensors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(tmp_path / "hub2"))
        mp.setenv("HOME", str(tmp_path))
        assert pre.find_local_gpt2("gpt2-small") == legacy / "model.safetensors"


def test_download_with_progress_then_resume_then_cached(tiny_gpt2, server, tmp_path):
    url, root, handler = server
    shutil.copy(tiny_gpt2, root / "model.safetensors")
    seen = []
    dest = tmp_path / "dl"
    path = pre.download_gpt2("gpt2-small", progress=lambda done, total: seen.append((done, total)), dest_dir=dest,
                             url=f"{url}/model.safetensors")
    size = tiny_gpt2.stat().st_size
    assert path == dest / "model.safetensors" and path.read_bytes() == tiny_gpt2.read_bytes()
    assert seen[-1] == (size, size)
    assert not (dest / "model.safetensors.part").exists()
    assert load_hf_gpt2(path).cfg.n_layers == 2  # the lab can use it

    # An interrupted download resumes from its .part with a Range request.
    other = tmp_path / "dl2"
    other.mkdir()
    (other / "model.safetensors.part").write_bytes(tiny_gpt2.read_bytes()[:1000])
    path = pre.download_gpt2("gpt2-small", dest_dir=other, url=f"{url}/model.safetensors")
    assert path.read_bytes() == tiny_gpt2.read_bytes()
    assert handler.requests[-1] == "bytes=1000-"

    # Once there, no network is needed.
    n = len(handler.requests)
    assert pre.download_gpt2("gpt2-small", dest_dir=dest, url=f"{url}/model.safetensors") == dest / "model.safetensors"
    assert len(handler.requests) == n


def test_download_rejects_what_is_not_gpt2(server, tmp_path):
    url, root, _ = server
    (root / "model.safetensors").write_text("<!doctype html><p>Sign in to continue</p>")
    dest = tmp_path / "dl"
    with pytest.raises(LabError, match="is not usable GPT-2 weights.*nothing was kept"):
        pre.download_gpt2("gpt2-small", dest_dir=dest, url=f"{url}/model.safetensors")
    assert not any(dest.iterdir())
    with pytest.raises(LabError, match="answered HTTP 404"):
        pre.download_gpt2("gpt2-small", dest_dir=dest, url=f"{url}/missing.safetensors", retries=0)


def test_download_offline_gives_one_sentence(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused, like no network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LabError) as err:
        pre.download_gpt2("gpt2-small", dest_dir=tmp_path, url=f"http://127.0.0.1:{port}/model.safetensors",
                          retries=1, timeout=2)
    assert str(err.value) == f"Could not reach 127.0.0.1 {OFFLINE}"
    with pytest.raises(LabError) as err:  # a host name that cannot resolve fails at once, without retries
        pre.download_gpt2("gpt2-small", dest_dir=tmp_path, url="http://no-such-host.invalid/model.safetensors")
    assert str(err.value) == f"Could not reach no-such-host.invalid {OFFLINE}"
    with pytest.raises(LabError, match="http or https"):
        pre.download_gpt2("gpt2-small", dest_dir=tmp_path, url="file:///etc/passwd")


def test_uploads_and_typed_paths(tiny_gpt2, data_dir, tmp_path):
    with open(tiny_gpt2, "rb") as f:
        stored = pre.store_gpt2_upload(f)
    assert stored.is_relative_to(data_dir / "gpt2") and stored.read_bytes() == tiny_gpt2.read_bytes()
    assert pre.store_gpt2_upload(tiny_gpt2.read_bytes()) == stored  # named by content
    with pytest.raises(LabError, match="not usable GPT-2 weights.*nothing was kept"):
        pre.store_gpt2_upload(b"PK\x03\x04 not safetensors")
    assert sorted(p.name for p in (data_dir / "gpt2").iterdir()) == [stored.parent.name]
    assert pre.resolve_gpt2_path(f"  {tiny_gpt2.parent}  ") == tiny_gpt2
    with pytest.raises(LabError, match="Give the path"):
        pre.resolve_gpt2_path(" ")
    with pytest.raises(LabError, match="There is no file"):
        pre.resolve_gpt2_path(tmp_path / "nope.safetensors")
