"""A disk that refuses a checkpoint, for real: a full tmpfs (ENOSPC) and a file-size limit (EFBIG).

Either way training stops with one sentence, the half-written ``*.next*`` files are gone, and the last committed
checkpoint is intact and resumable. The tmpfs test needs permission to mount (root in a container); elsewhere it
is skipped with that reason, and the file-size test, which any user can run, still covers the path.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from core.checkpoint import load
from tests.conftest import ROOT

# A 2-wide, 1-block, tied GPT-2-vocabulary model: a checkpoint is 0.4 MB of weights + 0.8 MB of AdamW moments.
ARGS = ["pretrain", "--preset", "tiny", "--emb-dim", "2", "--n-heads", "1", "--n-layers", "1", "--tie-weights",
        "--context-length", "8", "--batch-size", "2", "--eval-every", "2", "--checkpoint-every", "2",
        "--sample-every", "0", "--corpus", "builtin", "--device", "cpu", "--run-id", "r"]
RESUME = ["pretrain", "--corpus", "builtin", "--device", "cpu", "--run-id", "r"]


def _cli(runs: Path, steps: int, *extra: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess:
    def cap() -> None:  # in the child only: EFBIG instead of a SIGXFSZ that would kill it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = RESUME if "--resume" in extra else ARGS
    return subprocess.run([sys.executable, "-m", "core", *args, "--runs-dir", str(runs), "--steps", str(steps),
                           *extra], env=env, capture_output=True, text=True, timeout=180,
                          preexec_fn=cap if limit_bytes else None)  # fmt: skip


def _assert_stopped_cleanly(run: Path, out: subprocess.CompletedProcess, why: str) -> None:
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "SafetensorError" not in out.stdout + out.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["checkpoint_step"] == 2 and why in record["message"] and "resume" in record["message"]
    assert record["message"].count(". ") == 0, record["message"]  # one sentence
    assert sorted(p.name for p in run.iterdir()) == ["model.safetensors", "optimizer.safetensors", "run.json",
                                                     "trainer_state.json"]  # no .next or temporary file left
    assert load(run / "model.safetensors").model.cfg.emb_dim == 2


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or 'not permitted'})")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_filesystem_stops_training_with_one_sentence_and_keeps_the_checkpoint(small_disk):
    """2 MB holds one checkpoint (1.2 MB) but not a second one beside it."""
    out = _cli(small_disk / "runs", steps=4)
    _assert_stopped_cleanly(small_disk / "runs" / "r", out, "No space left on device")


def test_a_file_size_limit_stops_training_and_the_run_resumes(tmp_path):
    runs = tmp_path / "runs"
    assert _cli(runs, steps=2).returncode == 0
    out = _cli(runs, 4, "--resume", limit_bytes=500_000)  # the 0.8 MB optimizer file cannot be written
    _assert_stopped_cleanly(runs / "r", out, "File too large")
    again = _cli(runs, 4, "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((runs / "r" / "run.json").read_text())["checkpoint_step"] == 4
