"""Faults around a live training run, in a real browser against real `streamlit run` servers this module starts.

- **Tab closed during training**: a run started in one browser context keeps training after that context is
  closed; a fresh context opening the Pretraining page reattaches to it (by its run id) and watches its step
  count rise, then stops it.
- **Server restart during training**: the server is killed (SIGKILL) once the run has a checkpoint; a new server
  on the same runs folder lists the run as cut off, the dashboard offers "Resume from step N" (N = the last
  committed checkpoint), and the resumed run goes on from step N, not from step 0.

Each test starts its own server on its own port, with its own runs and data folders, and stops it at the end.
Runs are tiny (the tiny preset, batch size 1, no samples); timeouts are generous for a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import _free_port, screenshot, wait_for_app

STEP = re.compile(r"Step ([\d,]+) of ([\d,]+) · (.+)")


class Server:
    """One `streamlit run app.py` process on ``port`` with LLMLAB_RUNS_DIR / LLMLAB_DATA_DIR under ``work``."""

    def __init__(self, work: Path, port: int) -> None:
        self.work, self.port, self.url = work, port, f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = work / f"server-{port}-{time.time_ns()}.log"

    def start(self, timeout_s: float = 120.0) -> Server:
        # One math thread: on a busy 2-core machine, two threads per training step mostly wait for each other.
        env = dict(os.environ, LLMLAB_RUNS_DIR=str(self.work / "runs"), LLMLAB_DATA_DIR=str(self.work / "data"),
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        pytest.fail(f"streamlit did not start within {timeout_s:.0f} s: " + self.log_path.read_text()[-2000:])

    def stop(self, kill: bool = False) -> None:
        """Terminate (or SIGKILL, as a crash or an OOM kill would) and reap the process."""
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.send_signal(signal.SIGKILL)
            else:
                self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None


@contextmanager
def running_server(work: Path, port: int | None = None):
    server = Server(work, port or _free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def new_page(browser):
    """A fresh browser context (its own cookies and Streamlit session), closed on exit like a closed tab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def open_pretraining(page, url: str, live: bool = False) -> None:
    """Open "/" and click through to Pretraining. ``live``: a run is training, so the dashboard reruns every
    second and the page never goes quiet; wait for its title instead."""
    page.goto(url + "/")
    wait_for_app(page)
    page.get_by_role("link", name="Pretraining").first.click()
    if live:
        page.locator("h1", has_text="Pretraining").first.wait_for(timeout=120_000)
        return
    wait_for_app(page)
    assert page.locator("h1").first.inner_text().strip() == "Pretraining"


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")
    wait_for_app(page)


def start_run(page, run_id: str, steps: int, eval_every: int) -> None:
    """Fill the start form with a tiny, sample-free run and press Start training."""
    for label, value in (("Steps", steps), ("Batch size", 1), ("Evaluate every", eval_every), ("Sample every", 0)):
        set_number(page, label, value)
    box = page.get_by_label(re.compile(r"^Run id"))
    box.fill(run_id)
    box.press("Tab")
    wait_for_app(page)
    page.get_by_role("button", name="Start training").click()


def progress(page, timeout_s: float = 120.0) -> tuple[int, int, str]:
    """(step, max steps, status label) from the dashboard's progress bar."""
    bar = page.locator('[data-testid="stProgress"]').first
    bar.wait_for(timeout=timeout_s * 1000)
    text = bar.inner_text().strip()
    match = STEP.search(text)
    assert match, f"unexpected progress text {text!r}"
    return int(match[1].replace(",", "")), int(match[2].replace(",", "")), match[3].strip()


def wait_progress(page, done, timeout_s: float = 180.0, what: str = "") -> tuple[int, int, str]:
    deadline = time.time() + timeout_s
    seen = None
    while time.time() < deadline:
        seen = progress(page)
        if done(*seen):
            return seen
        time.sleep(0.5)
    pytest.fail(f"gave up waiting for {what or 'progress'} after {timeout_s:.0f} s; last seen {seen}")


def committed_step(run_dir: Path) -> int:
    """The step of the run's last committed checkpoint (0 if none yet)."""
    try:
        return int(json.loads((run_dir / "trainer_state.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def assert_no_errors(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_closed_tab_leaves_the_run_training_and_a_new_tab_reattaches(browser, tmp_path):
    with running_server(tmp_path) as server:
        with new_page(browser) as first:
            open_pretraining(first, server.url)
            start_run(first, "e2e-tab", steps=5000, eval_every=50)
            first.get_by_text("Run e2e-tab").first.wait_for(timeout=120_000)
            step_before, _, _ = wait_progress(first, lambda s, n, label: s >= 1 and label == "training",
                                              what="the first step")
        # The first tab is gone (its Streamlit session ends with it); the job lives in the server process.
        time.sleep(3)
        with new_page(browser) as second:
            open_pretraining(second, server.url, live=True)
            second.get_by_text("Run e2e-tab").first.wait_for(timeout=60_000)  # reattached by run id
            seen = [progress(second)]
            assert seen[0][2] == "training" and seen[0][0] >= step_before, seen
            deadline = time.time() + 120
            while time.time() < deadline and len({s for s, _, _ in seen}) < 3:
                time.sleep(1.0)
                seen.append(progress(second))
            steps = [s for s, _, _ in seen]
            assert len(set(steps)) >= 3 and steps == sorted(steps), f"the step count did not keep rising: {steps}"
            assert all(label == "training" for _, _, label in seen), seen
            screenshot(second, "faults_tab_reattached")
            second.get_by_role("button", name="Stop training", exact=True).click()
            second.get_by_text("Stopped at step").first.wait_for(timeout=120_000)
            assert_no_errors(second)
    data = json.loads((tmp_path / "runs" / "e2e-tab" / "run.json").read_text())
    assert data["status"] == "stopped" and data["checkpoint_step"] == data["step"] >= steps[-1]


def test_server_restart_cuts_the_run_off_and_it_resumes_from_its_checkpoint(browser, tmp_path):
    run_dir = tmp_path / "runs" / "e2e-restart"
    server = Server(tmp_path, _free_port()).start()
    try:
        with new_page(browser) as page:
            open_pretraining(page, server.url)
            start_run(page, "e2e-restart", steps=400, eval_every=2)  # a checkpoint at every evaluation
            page.get_by_text("Run e2e-restart").first.wait_for(timeout=120_000)
            deadline = time.time() + 240
            while committed_step(run_dir) < 4 and time.time() < deadline:  # at least two checkpoints
                time.sleep(0.2)
            assert committed_step(run_dir) >= 4, "no checkpoint at step 4 within 240 s"
            server.stop(kill=True)  # the server dies mid-run, as after a crash or an OOM kill
        checkpoint = committed_step(run_dir)
        before = json.loads((run_dir / "run.json").read_text())
        assert before["status"] == "running"  # nobody could say otherwise: the process just vanished

        server = Server(tmp_path, server.port).start()  # a restart: same port, same runs folder
        with new_page(browser) as page:
            open_pretraining(page, server.url)
            assert page.locator('[data-testid="stProgress"]').count() == 0  # no job runs in the new server
            table = page.locator('[data-testid="stDataFrame"]').first
            table.scroll_into_view_if_needed()
            page.get_by_role("button", name="Open a run").click()
            page.get_by_role("button", name="Show it in the dashboard").click()  # the only run is preselected
            wait_for_app(page)
            page.get_by_text("Run e2e-restart").first.wait_for(timeout=60_000)
            step, total, label = progress(page)
            assert label == "interrupted" and total == 400 and step >= checkpoint, (step, total, label)
            page.get_by_text("This run was cut off").first.wait_for(timeout=30_000)
            page.get_by_text(f"resume it from its checkpoint at step {checkpoint}.").first.wait_for(timeout=10_000)
            screenshot(page, "faults_restart_cut_off")
            assert_no_errors(page)

            page.get_by_role("button", name="Resume / continue").click()
            resume = page.get_by_role("button", name=f"Resume from step {checkpoint}")
            resume.wait_for(timeout=30_000)
            resume.click()
            first_step, _, _ = wait_progress(page, lambda s, n, lab: lab == "training", timeout_s=120,
                                             what="the resumed run to train")
            assert first_step >= checkpoint, f"the resumed run started from step {first_step}, not {checkpoint}"
            later, _, _ = wait_progress(page, lambda s, n, lab: s > max(first_step, checkpoint) + 1,
                                        what="the resumed run to take steps")
            screenshot(page, "faults_restart_resumed")
            page.get_by_role("button", name="Stop training", exact=True).click()
            page.get_by_text("Stopped at step").first.wait_for(timeout=120_000)
            assert_no_errors(page)
    finally:
        server.stop()
    after = json.loads((run_dir / "run.json").read_text())
    assert after["status"] == "stopped" and after["created"] == before["created"]
    assert after["checkpoint_step"] == after["step"] >= later > checkpoint
    assert [m["step"] for m in after["metrics"]] == list(range(1, after["step"] + 1))  # no gap, no repeat
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert state["step"] == after["step"] and state["elapsed_s"] >= after["metrics"][checkpoint - 1]["elapsed_s"]
