"""python -m core data list | fetch | add | show, with the book's real files (skipped where they are absent)."""

from __future__ import annotations

import functools
import io
import os
import socket
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import core.datasets.fetch as fetch
from core.cli import main
from core.cli_data import ByteProgress
from core.datasets import DATASETS
from tests.conftest import ROOT, SHARED_DATA

VERDICT_SHA = "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f"
HTML = b"<!DOCTYPE html>\n<html><head><title>LLMs-from-scratch/the-verdict.txt at main</title></head></html>\n"


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present (set LLMLAB_SHARED_DATA to the folder with the book's data files)")
    return path


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    """An empty data folder of this test's own, no mirror, no pause between download retries."""
    folder = tmp_path / "data"
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(folder))
    monkeypatch.delenv("LLMLAB_DATASET_BASE_URL", raising=False)
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.0)
    return folder


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_sentence(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _left_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _sms_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


# ------------------------------------------------------------------------------------------------------ list
def test_list_shows_every_registry_entry(data, capsys):
    code, out, _ = _run(capsys, "data", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "kind", "title", "source", "here", "size", "path"]
    for name, info in DATASETS.items():
        row = next(line for line in lines if line.startswith(name + " "))
        assert info.title in row and info.size in row and info.kind in row
        if info.source == "download":
            assert " download " in row and " no " in row and str(data / info.filename) in row
        else:
            assert " built-in " in row and " yes " in row
    kind_at, path_at = lines[0].index("kind"), lines[0].index("path")  # aligned columns
    assert all(line[kind_at - 2:kind_at] == "  " and line[kind_at] != " " for line in lines[1:len(DATASETS) + 1])
    assert lines[1][path_at:].startswith(str(ROOT / "assets"))
    code, out, _ = _run(capsys, "data", "list", "--kind", "instruction")
    assert code == 0 and "book-instructions" in out and "the-verdict" not in out


def test_list_in_a_real_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "LLMLAB_DATA_DIR": str(tmp_path / "d")}
    out = subprocess.run([sys.executable, "-m", "core", "data", "list"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in DATASETS) and out.stderr == ""


# ------------------------------------------------------------------------------------------- add and show
def test_add_and_show_the_verdict(data, capsys):
    code, out, _ = _run(capsys, "data", "add", "the-verdict", str(_shared("the-verdict.txt")))
    assert code == 0
    assert f"sha256 {VERDICT_SHA}" in out and str(data / "the-verdict.txt") in out
    assert (data / "the-verdict.txt").read_bytes() == _shared("the-verdict.txt").read_bytes()
    code, out, _ = _run(capsys, "data", "show", "the-verdict", "--rows", "1")
    assert code == 0 and "20,479 characters, 5,145 GPT-2 tokens" in out
    assert out.rstrip().endswith("…") and "I HAD always thought Jack Gisburn" in out
    code, out, _ = _run(capsys, "data", "list", "--kind", "corpus")
    assert " yes " in next(line for line in out.splitlines() if line.startswith("the-verdict"))


def test_add_and_show_sms_spam(data, capsys):
    code, out, _ = _run(capsys, "data", "add", "sms-spam", str(_shared("SMSSpamCollection.tsv")))
    assert code == 0 and "sha256 7d039a24" in out and str(data / "SMSSpamCollection.tsv") in out
    assert fetch.read_manifest()["SMSSpamCollection.tsv"]["verified"] == "structure"
    code, out, _ = _run(capsys, "data", "show", "sms-spam")
    assert code == 0
    assert "5,574 rows in the file (4,827 ham, 747 spam)" in out
    assert "5,572 rows read as the book does (pandas defaults: 4,825 ham, 747 spam)" in out
    assert "1,045 / 149 / 300" in out and "Go until jurong point" in out


def test_add_sms_spam_from_the_uci_zip(data, capsys, tmp_path):
    tsv = _shared("SMSSpamCollection.tsv").read_bytes()
    archive = _sms_zip(tmp_path / "sms+spam+collection.zip", {"readme": b"about", "SMSSpamCollection": tsv})
    code, out, _ = _run(capsys, "data", "add", "sms-spam", str(archive))
    assert code == 0 and (data / "SMSSpamCollection.tsv").read_bytes() == tsv
    assert _left_in(data) == ["SMSSpamCollection.tsv", "manifest.json"]  # only the member, not the readme
    assert main(["data", "show", "sms-spam"]) == 0
    assert "4,827 ham, 747 spam" in capsys.readouterr().out


def test_add_and_show_book_instructions(data, capsys):
    assert main(["data", "add", "book-instructions", str(_shared("instruction-data.json"))]) == 0
    code, out, _ = _run(capsys, "data", "show", "book-instructions")
    assert code == 0 and "1,100 records; the book's split: 935 / 55 / 110" in out
    assert '"instruction": "Evaluate the following phrase' in out


def test_show_builtins_needs_no_download(data, capsys):
    code, out, _ = _run(capsys, "data", "show", "builtin-spam", "--rows", "2")
    assert code == 0 and "368 rows in the file" in out
    code, out, _ = _run(capsys, "data", "show", "builtin-instructions", "--rows", "0")
    assert code == 0 and "498 records" in out and "{" not in out


# ---------------------------------------------------------------------------------------------- bad inputs
def _tampered(tmp: Path) -> Path:
    text = bytearray(_shared("the-verdict.txt").read_bytes())
    text[100] ^= 1
    (tmp / "the-verdict.txt").write_bytes(bytes(text))
    return tmp / "the-verdict.txt"


BAD = {
    "missing path": (lambda t: ["add", "the-verdict", str(t / "nope.txt")], "There is no file at"),
    "directory": (lambda t: ["add", "the-verdict", str(t)], "is a folder, not a file"),
    "html page": (lambda t: ["add", "the-verdict", _write(t / "page.txt", HTML)], "is a web page (HTML)"),
    "html as sms": (lambda t: ["add", "sms-spam", _write(t / "page.html", HTML)], "is a web page (HTML)"),
    "wrong structure": (lambda t: ["add", "sms-spam", _write(t / "s.tsv", b"ham\thi\nspam\twin\n")],
                        "has 2 lines but UCI SMS Spam Collection has 5,574"),
    "zip without member": (lambda t: ["add", "sms-spam", str(_sms_zip(t / "x.zip", {"readme": b"hi"}))],
                           "does not contain SMSSpamCollection"),
    "binary file": (lambda t: ["add", "book-instructions", _write(t / "x.png", b"\x89PNG\r\n\x1a\n" + bytes(99))],
                    "has the sha256"),
    "tampered checksum": (lambda t: ["add", "the-verdict", str(_tampered(t))], "not the b41e41a68f03… of The"),
    "unknown name": (lambda t: ["show", "the-verdit"], "no dataset called 'the-verdit' (did you mean the-verdict?)"),
    "built-in add": (lambda t: ["add", "builtin-spam", str(t)], "ships with the lab"),
    "not downloaded": (lambda t: ["show", "the-verdict"], "run 'python -m core data fetch the-verdict'"),
    "bad rows": (lambda t: ["show", "builtin-spam", "--rows", "-1"], "--rows must be"),
    "no subcommand": (lambda t: [], "required: list|fetch|add|show"),
}  # fmt: skip


def _write(path: Path, payload: bytes) -> str:
    path.write_bytes(payload)
    return str(path)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_sentence_and_leaves_nothing(case, data, capsys, tmp_path):
    make_argv, expected = BAD[case]
    src = tmp_path / "src"
    src.mkdir()
    code, out, err = _run(capsys, "data", *make_argv(src))
    assert code == 2 and out == ""
    assert expected in _one_sentence(err), err
    assert _left_in(data) == []


def test_a_bad_copy_keeps_the_good_one(data, capsys, tmp_path):
    assert main(["data", "add", "the-verdict", str(_shared("the-verdict.txt"))]) == 0
    assert main(["data", "add", "the-verdict", str(_tampered(tmp_path))]) == 2
    _one_sentence(capsys.readouterr().err)
    assert fetch.sha256_of(data / "the-verdict.txt") == VERDICT_SHA
    assert _left_in(data) == ["manifest.json", "the-verdict.txt"]


# --------------------------------------------------------------------------------------------------- fetch
def test_fetch_offline_says_how_to_add_a_local_copy(data, capsys):
    code, out, err = _run(capsys, "data", "fetch", "the-verdict", "--url", "http://127.0.0.1:9/the-verdict.txt")
    assert code == 2 and out == ""
    err = _one_sentence(err)
    assert err.startswith("error: Could not reach 127.0.0.1 (no internet connection?); on a machine with internet")
    assert err.endswith("run 'python -m core data add the-verdict the-verdict.txt' here instead.")
    assert _left_in(data) == []


def test_fetch_without_dns_names_the_zip(data, capsys, monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    code, _, err = _run(capsys, "data", "fetch", "sms-spam", "--quiet")
    assert code == 2
    err = _one_sentence(err)
    assert "Could not reach archive.ics.uci.edu" in err and DATASETS["sms-spam"].url in err
    assert "'python -m core data add sms-spam sms+spam+collection.zip'" in err


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 serving ``tmp_path/www``."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_from_a_server_then_from_the_cache(data, capsys, server):
    www, base = server
    (www / "the-verdict.txt").write_bytes(_shared("the-verdict.txt").read_bytes())
    code, out, _ = _run(capsys, "data", "fetch", "the-verdict", "--url", f"{base}/the-verdict.txt")
    assert code == 0 and f"sha256 {VERDICT_SHA}" in out and str(data / "the-verdict.txt") in out
    (www / "the-verdict.txt").unlink()  # a second fetch must not need the server
    code, out, _ = _run(capsys, "data", "fetch", "the-verdict")
    assert code == 0 and "already here, checked" in out
    (www / "bad.txt").write_bytes(b"not the verdict")
    (data / "the-verdict.txt").unlink()
    code, _, err = _run(capsys, "data", "fetch", "the-verdict", "--url", f"{base}/bad.txt")
    assert code == 2 and "does not match the expected checksum" in _one_sentence(err)
    assert _left_in(data) == ["manifest.json"]


def test_byte_progress_draws_a_tqdm_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    bar = ByteProgress("the-verdict.txt", stream=stream)
    for done in (8_192, 16_384, 20_479):
        bar(done, 20_479)
    bar.close()
    assert "the-verdict.txt" in stream.getvalue() and "100%" in stream.getvalue()
    log = io.StringIO()  # not a terminal: no bar, nothing written
    quiet = ByteProgress("x", stream=log)
    quiet(1, 2)
    quiet.close()
    assert log.getvalue() == ""
