"""One process at a time per run: a run that trains is locked; a dead process's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from core.run_process import LOCK_FILE, acquire_run_lock, release_run_lock
from tests.conftest import ROOT

MODEL = ["--preset", "tiny", "--emb-dim", "2", "--n-heads", "1", "--n-layers", "1", "--tie-weights",
         "--context-length", "8"]
COMMON = ["--batch-size", "2", "--eval-every", "50", "--checkpoint-every", "5", "--sample-every", "0",
          "--corpus", "builtin", "--device", "cpu", "--run-id", "r"]


def _cli(runs, *args, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "core", "pretrain", *args, *COMMON, "--runs-dir", str(runs)]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def _wait_for_checkpoint(run, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if json.loads((run / "trainer_state.json").read_text()).get("step", 0) >= 5:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("the first checkpoint never came")


def test_a_second_process_cannot_resume_a_run_that_trains_and_a_killed_ones_lock_is_taken_over(tmp_path):
    runs = tmp_path / "runs"
    trainer = _cli(runs, *MODEL, "--steps", "100000", wait=False)
    try:
        _wait_for_checkpoint(runs / "r")
        assert (runs / "r" / LOCK_FILE).exists()
        second = _cli(runs, "--resume", "--steps", "100010")
        assert second.returncode == 2 and "is being trained by another process right now" in second.stderr
        fresh = _cli(runs, *MODEL, "--steps", "10")
        assert fresh.returncode == 2 and "Traceback" not in fresh.stderr, fresh.stderr
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
    done = json.loads((runs / "r" / "trainer_state.json").read_text())["step"]
    resumed = _cli(runs, "--resume", "--steps", str(done + 2))  # the dead process's lock is stale: taken over
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert json.loads((runs / "r" / "run.json").read_text())["status"] == "finished"
    assert not (runs / "r" / LOCK_FILE).exists(), "the lock is released when training ends"


def test_an_unreadable_lock_is_stale_and_this_process_may_retake_its_own(tmp_path):
    (tmp_path / LOCK_FILE).write_text("{half")
    lock = acquire_run_lock(tmp_path)
    assert acquire_run_lock(tmp_path) == lock  # the same process: taken over (the registry guards jobs)
    release_run_lock(lock)
    assert not lock.exists()
