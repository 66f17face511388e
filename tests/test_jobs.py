"""core.jobs: background jobs with a cap, stop, failure reporting and copy-on-read snapshots."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from core import jobs as jobs_mod
from core.checkpoint import load
from core.errors import LabError
from core.jobs import JobBusyError, JobRegistry, registry, start_training_job
from tests.test_train import CFG, corpus_ids, settings


def _wait_for_stop(job):
    job.update(progress=0.4, message="working")
    job.stop_event.wait(10)
    return None


def test_cap_busy_error_and_stop():
    reg = JobRegistry(max_jobs=1)
    first = reg.start("xyz", _wait_for_stop)
    try:
        with pytest.raises(LabError, match="already running"):
            reg.start("xyz", _wait_for_stop)
        for _ in range(100):  # wait until the target has reported its progress
            if first.snapshot()["progress"] == 0.4:
                break
            first.wait(0.01)
        with pytest.raises(JobBusyError) as info:
            reg.start("other", _wait_for_stop)
        assert str(info.value) == (
            "Another training job (run 'xyz', 40% done) is using this machine; wait for it to finish or stop it, "
            "then try again."
        )
        assert isinstance(info.value, LabError)
        assert first.snapshot()["status"] == "running" and reg.active() == [first]
    finally:
        first.stop()
    assert first.wait(5)
    snap = first.snapshot()
    assert snap["status"] == "stopped" and snap["finished"] is not None and snap["message"] == "working"
    second = reg.start("other", lambda job: 42)  # a slot is free again
    assert second.wait(5) and second.status == "finished" and second.result == 42 and second.progress == 1.0


def test_env_raises_the_cap(monkeypatch):
    monkeypatch.setenv("LLMLAB_MAX_JOBS", "2")
    reg = JobRegistry()
    assert reg.max_jobs == 2
    a, b = reg.start("a", _wait_for_stop), reg.start("b", _wait_for_stop)
    with pytest.raises(JobBusyError):
        reg.start("c", _wait_for_stop)
    a.stop(), b.stop()
    assert a.wait(5) and b.wait(5)
    monkeypatch.setenv("LLMLAB_MAX_JOBS", "lots")
    assert JobRegistry().max_jobs == 1


def test_failures_become_status_failed_with_message():
    reg = JobRegistry(max_jobs=3)

    def lab_error(job):
        raise LabError("The corpus is empty; choose a text.")

    def crash(job):
        raise RuntimeError("boom")

    a, b = reg.start("a", lab_error), reg.start("b", crash)
    assert a.wait(5) and b.wait(5)
    assert a.snapshot()["status"] == "failed" and a.snapshot()["message"] == "The corpus is empty; choose a text."
    snap = b.snapshot()
    assert snap["status"] == "failed" and snap["message"] == "Training failed: RuntimeError: boom"
    assert "RuntimeError" in snap["traceback"]


def test_snapshot_is_a_copy():
    reg = JobRegistry()
    gate = threading.Event()

    def target(job):
        job.update(record={"step": 1, "train_loss": 5.0}, progress=0.5)
        gate.wait(5)

    job = reg.start("copy", target)
    for _ in range(100):
        if job.snapshot()["n_records"]:
            break
        job.wait(0.01)
    snap = job.snapshot()
    snap["records"].append({"step": 99})
    snap["records"][0]["train_loss"] = -1.0
    snap["status"] = "hacked"
    again = job.snapshot()
    assert again["records"] == [{"step": 1, "train_loss": 5.0}] and again["status"] == "running"
    assert job.snapshot(last_n=0)["records"] == []
    gate.set()
    assert job.wait(5)


def test_cleanup_and_registry_singleton():
    reg = JobRegistry(max_jobs=1, keep_finished=2)
    for name in "abcd":
        assert reg.start(name, lambda job: None).wait(5)
    assert len(reg.list()) <= 3  # start() keeps at most keep_finished finished jobs (plus the new one)
    assert reg.cleanup(max_age_s=0) >= 1 and reg.list() == []
    assert registry() is registry()
    with pytest.raises(LabError, match="run id"):
        reg.start("../escape", lambda job: None)


def test_start_training_job_runs_stops_and_resumes(tmp_path):
    reg = JobRegistry()
    ids = corpus_ids()
    s = settings(max_steps=6, eval_every=2)
    job = start_training_job(CFG, s, ids, runs_dir=tmp_path, run_id="page", jobs=reg)
    assert job.wait(60)
    snap = job.snapshot()
    assert snap["status"] == "finished" and snap["outcome"] == "finished" and snap["progress"] == 1.0
    assert [r["step"] for r in snap["records"]] == list(range(1, 7))
    data = json.loads((tmp_path / "page" / "run.json").read_text())
    assert [m["train_loss"] for m in data["metrics"]] == [r["train_loss"] for r in snap["records"]]

    # Stop a second run part-way: the trainer writes a checkpoint at the step it stopped at.
    slow = settings(max_steps=1000, eval_every=1000)
    job2 = start_training_job(CFG, slow, ids, runs_dir=tmp_path, run_id="stopme", jobs=reg)
    for _ in range(500):
        if job2.snapshot()["n_records"] >= 3:
            break
        job2.wait(0.01)
    job2.stop()
    assert job2.wait(30)
    snap2 = job2.snapshot()
    assert snap2["status"] == "stopped" and 3 <= snap2["n_records"] < 1000
    assert load(tmp_path / "stopme" / "model.safetensors").extra["step"] == snap2["n_records"]
    resumed = start_training_job(CFG, slow.replace(max_steps=snap2["n_records"] + 2), ids, runs_dir=tmp_path,
                                 run_id="stopme", resume=True, jobs=reg)
    assert resumed.wait(30) and resumed.snapshot()["status"] == "finished"
    assert [r["step"] for r in resumed.snapshot()["records"]] == [snap2["n_records"] + 1, snap2["n_records"] + 2]


def test_start_training_job_errors_surface_immediately(tmp_path):
    reg = JobRegistry()
    with pytest.raises(LabError, match="validation split"):
        start_training_job(CFG, settings(), corpus_ids()[:100], runs_dir=tmp_path, run_id="short", jobs=reg)
    assert reg.list() == []
    blocker = reg.start("busy", _wait_for_stop)
    try:
        with pytest.raises(JobBusyError):
            start_training_job(CFG, settings(), corpus_ids(), runs_dir=tmp_path, run_id="x", jobs=reg)
        assert not (tmp_path / "x").exists()
    finally:
        blocker.stop()
        blocker.wait(5)


def test_diverged_training_is_a_failed_job(tmp_path):
    reg = JobRegistry()
    job = start_training_job(CFG, settings(lr=1e4, max_steps=30), corpus_ids(), runs_dir=tmp_path, run_id="nan",
                             jobs=reg)
    assert job.wait(30)
    snap = job.snapshot()
    assert snap["status"] == "failed" and snap["outcome"] == "diverged"
    assert re.search(r"became (NaN|infinite)", snap["message"])
    assert jobs_mod.ACTIVE == ("queued", "running")


def test_simultaneous_starts_build_one_trainer(tmp_path, monkeypatch):
    """Three Start presses at once: one job, one trainer built; the others get the busy sentence at once."""
    import core.train as train_mod

    built, real = [], train_mod.make_trainer

    def counting(*a, **kw):
        built.append(kw.get("owner"))
        time.sleep(0.3)  # building a trainer takes a while: the window the presses used to race through
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "make_trainer", counting)
    reg, outcomes = JobRegistry(max_jobs=1), []

    def press(i: int) -> None:
        try:
            outcomes.append(start_training_job(CFG, settings(max_steps=2), corpus_ids(), tmp_path, f"r{i}", jobs=reg))
        except JobBusyError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=press, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    jobs = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(jobs) == 1 and len(built) == 1 and sum(isinstance(o, JobBusyError) for o in outcomes) == 2
    assert jobs[0].wait(60) and jobs[0].status == "finished"


def test_a_failed_build_gives_the_slot_back(tmp_path):
    reg = JobRegistry(max_jobs=1)
    with pytest.raises(LabError):
        start_training_job(CFG, settings(), corpus_ids()[:10], tmp_path, "short", jobs=reg)
    assert reg.active() == [] and reg.get("short") is None


def test_the_demo_note_tells_the_job_cap_that_runs(monkeypatch):
    from core.limits import Limits

    monkeypatch.setenv("LLMLAB_MAX_JOBS", "3")
    assert JobRegistry().max_jobs == 3 and "3 training jobs at a time for everyone" in Limits.hosted().describe()
    monkeypatch.setenv("LLMLAB_MAX_JOBS", "lots")
    assert JobRegistry().max_jobs == 1 == Limits.hosted().max_jobs
