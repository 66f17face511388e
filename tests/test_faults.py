"""Faults a training run meets on disk: an unusable or full runs folder, damaged run folders, dead trainers.

- **Unusable runs/** (a path below a regular file, or a file where the folder should be): the trainer, the job
  helper, the CLI and the Pretraining page refuse to start with one sentence; nothing is trained in vain.
- **Full disk mid-training** (``OSError(ENOSPC)`` injected where safetensors and JSON files are written): the run
  stops cleanly as ``failed`` with one sentence, the last good checkpoint stays loadable and resumable.
- **Damaged run folders** (truncated or pickled ``model.safetensors``, garbage or impossible ``run.json``, an
  empty folder): :func:`core.runs.list_runs` lists each as ``broken`` with a one-sentence reason, and the page
  renders its run list without an exception.
- **A dead trainer**: a run.json that says "running" but names a process that has ended (a server restart) is
  shown as cut off at once, with a resume option; one naming a live process is "training in another process".

Tests run as root, so read-only permissions would not stop a write: the faults are made with files in the way
and by monkeypatching the functions that write. Server restarts and closed tabs are in tests/e2e/test_faults.py.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import core.checkpoint as ck
from core import optim_state, run_process, runs
from core.checkpoint import load
from core.cli import main as cli_main
from core.errors import LabError
from core.jobs import JobRegistry, registry, start_training_job
from core.train import Trainer
from tests.test_pages_pretrain import assert_clean, configure, open_page, progress_text, wait_for
from tests.test_train import CFG, corpus_ids, settings

FULL = "No space left on device"


def one_sentence(text: str) -> None:
    """A message a learner can act on: one sentence, no traceback, no bare exception class name."""
    assert text and text.endswith("."), text
    assert "Traceback" not in text and "Error:" not in text and "\n" not in text, text
    assert text.count(". ") == 0, f"more than one sentence: {text}"


class Disk:
    """Makes the writes of checkpoints and JSON files fail with ENOSPC, as a full disk does.

    ``fail_from`` counts checkpoint-file writes (model and optimizer, 1-based): the ones from then on fail;
    ``full = True`` makes every write fail, run.json included. A failing write leaves a torn temporary file
    behind first, as a real full disk would.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_from: int | None = None) -> None:
        self.fail_from, self.full, self.calls = fail_from, False, 0
        real_ck, real_runs, real_write = ck.save_file, optim_state.save_file, Path.write_bytes

        def save(real):
            def write(tensors, filename, metadata=None):
                self.calls += 1
                if self.full or (self.fail_from is not None and self.calls >= self.fail_from):
                    self._torn(filename)
                return real(tensors, filename, metadata=metadata)

            return write

        def write_bytes(path, data):
            if self.full and path.name.endswith(".tmp"):  # only the atomic writes of core.runs
                self._torn(path)
            return real_write(path, data)

        monkeypatch.setattr(ck, "save_file", save(real_ck))
        monkeypatch.setattr(optim_state, "save_file", save(real_runs))
        monkeypatch.setattr(Path, "write_bytes", write_bytes)

    @staticmethod
    def _torn(filename) -> None:
        with open(filename, "wb") as f:
            f.write(b"\0" * 64)
        raise OSError(errno.ENOSPC, FULL)


def assert_checkpoint_loads(run_dir: Path, step: int) -> None:
    """The committed checkpoint of ``run_dir`` is whole: weights, optimizer and state agree on ``step``."""
    state = runs.recover_checkpoint(run_dir)
    assert state["step"] == step
    model = load(run_dir / runs.MODEL_FILE)
    assert model.extra["step"] == step and all(torch.isfinite(p).all() for p in model.model.parameters())
    opt = torch.optim.AdamW(model.model.parameters())
    names = [n for n, _ in model.model.named_parameters()]
    assert runs.load_optimizer(run_dir / runs.OPTIMIZER_FILE, opt, names)["step"] == step
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") or ".next." in p.name]


# ------------------------------------------------------------------------------------- unusable runs folder
@pytest.fixture
def blocked(tmp_path) -> dict[str, Path]:
    """Two runs folders that can never be folders: one below a regular file, one that is a regular file."""
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "runs-file").write_text("not a folder either")
    return {"below a file": tmp_path / "a-file" / "runs", "a file": tmp_path / "runs-file"}


@pytest.mark.parametrize("case", ["below a file", "a file"])
def test_unusable_runs_folder_is_refused_before_training(blocked, case, capsys):
    folder = blocked[case]
    with pytest.raises(LabError) as info:
        Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=folder / "r")
    message = str(info.value)
    one_sentence(message)
    assert f"The runs folder {folder} cannot be used" in message and "LLMLAB_RUNS_DIR" in message
    assert runs.folder_problem(folder) == message and runs.list_runs(folder) == []

    jobs = JobRegistry()  # the page's path: the job is refused before its thread starts
    with pytest.raises(LabError, match="cannot be used"):
        start_training_job(CFG, settings(max_steps=2), corpus_ids(), folder, "r", jobs=jobs)
    assert jobs.list() == []

    code = cli_main(["pretrain", "--preset", "tiny", "--context-length", "16", "--emb-dim", "16", "--n-heads", "2",
                     "--n-layers", "1", "--steps", "2", "--batch-size", "2", "--device", "cpu", "--corpus", "builtin",
                     "--runs-dir", str(folder), "--run-id", "r"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: The runs folder") and "Traceback" not in err, err


def test_a_folder_that_refuses_files_is_refused_with_the_reason(tmp_path, monkeypatch):
    """A disk that refuses new files (full, read-only) is found by a test write before the run starts."""
    real_open = open

    def refusing_open(file, mode="r", *args, **kwargs):
        if "x" in mode and ".write-check." in str(file):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(LabError) as info:
        Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=tmp_path / "runs" / "r")
    one_sentence(str(info.value))
    assert str(info.value).startswith(f"Cannot write into {tmp_path / 'runs'} (Read-only file system)")
    assert list((tmp_path / "runs").iterdir()) == []  # no probe file, no run folder left behind


# ------------------------------------------------------------------------------------- full disk mid-run
def test_full_disk_at_a_checkpoint_stops_cleanly_and_keeps_the_last_one(tmp_path, monkeypatch):
    run_dir, ids = tmp_path / "runs" / "full", corpus_ids()
    disk = Disk(monkeypatch, fail_from=3)  # checkpoint 1 (model + optimizer) is written, checkpoint 2 is not
    result = Trainer(CFG, settings(max_steps=12, checkpoint_every=3, sample_every=0), ids, run_dir=run_dir).run()
    assert disk.calls == 3
    assert result.status == "failed" and result.step == 6 and result.checkpoint_step == 3
    one_sentence(result.message)
    assert result.message == (
        f"Training stopped at step 6 because the run folder {run_dir} could not be written ({FULL}); free some "
        "disk space or fix the folder, then resume from its checkpoint at step 3."
    )
    data = json.loads((run_dir / runs.RUN_FILE).read_text())
    assert data["status"] == "failed" and data["message"] == result.message and data["checkpoint_step"] == 3
    assert {r.run_id: (r.status, r.checkpoint_step) for r in runs.list_runs(tmp_path / "runs")} == {
        "full": ("failed", 3)}
    assert_checkpoint_loads(run_dir, 3)

    disk.fail_from = None  # space freed: the run resumes from step 3 and finishes
    rest = Trainer.resume(run_dir, ids).run()
    assert rest.status == "finished" and [r.step for r in rest.records] == list(range(4, 13))
    data = json.loads((run_dir / runs.RUN_FILE).read_text())
    assert [m["step"] for m in data["metrics"]] == list(range(1, 13))


def test_disk_full_for_every_file_stops_cleanly_through_the_job(tmp_path, monkeypatch):
    """Nothing can be written any more, run.json included: the job ends "failed" with the sentence, no traceback."""
    run_dir, ids = tmp_path / "runs" / "j", corpus_ids()
    disk = Disk(monkeypatch)
    jobs = JobRegistry()
    s = settings(max_steps=40, checkpoint_every=2, sample_every=0)
    job = start_training_job(CFG, s, ids, tmp_path / "runs", "j", jobs=jobs)
    deadline = time.time() + 60
    while job.snapshot()["n_records"] < 5 and time.time() < deadline:
        time.sleep(0.05)
    disk.full = True
    assert job.wait(60)
    snap = job.snapshot()
    assert snap["status"] == "failed" and snap["traceback"] is None, snap["traceback"]
    one_sentence(snap["message"])
    assert f"({FULL})" in snap["message"] and snap["message"].startswith("Training stopped at step ")
    state = runs.read_json(run_dir / runs.STATE_FILE)
    assert f"resume from its checkpoint at step {state['step']}." in snap["message"]
    assert job.result.checkpoint_step == state["step"] >= 4 and job.result.step < s.max_steps
    disk.full = False
    assert_checkpoint_loads(run_dir, state["step"])


def test_full_disk_while_stopping_ends_cleanly(tmp_path, monkeypatch):
    """Stop writes a checkpoint; if the disk refuses it, the run still ends (failed) without raising."""
    run_dir = tmp_path / "s"
    disk = Disk(monkeypatch)
    trainer = Trainer(CFG, settings(max_steps=8, checkpoint_every=0), corpus_ids(), run_dir=run_dir)
    records = trainer.iter_records()
    assert [next(records).step, next(records).step] == [1, 2]
    disk.full = True
    records.close()  # the consumer stops iterating: the same as pressing Stop
    assert trainer.status == "failed" and trainer.checkpoint_step is None
    one_sentence(trainer.message)
    assert trainer.message.endswith(f"({FULL}); free some disk space or fix the folder, then start the run again.")

    stop = threading.Event()
    disk.full = False
    second = Trainer(CFG, settings(max_steps=8, checkpoint_every=2), corpus_ids(), run_dir=tmp_path / "t")
    result = second.run(on_record=lambda r: (stop.set(), setattr(disk, "full", True)) if r.step == 3 else None,
                        stop_event=stop)
    assert result.status == "failed" and result.checkpoint_step == 2
    one_sentence(result.message)
    disk.full = False
    assert_checkpoint_loads(tmp_path / "t", 2)


def test_run_folder_replaced_by_a_file_mid_run_stops_cleanly(tmp_path):
    """Someone deletes the run folder and a file takes its name: the next write fails, the run ends in one sentence."""
    run_dir = tmp_path / "gone"

    def vandalise(record):
        if record.step == 2:
            shutil.rmtree(run_dir)
            run_dir.write_text("not a folder any more")

    result = Trainer(CFG, settings(max_steps=8, eval_every=3, sample_every=0), corpus_ids(), run_dir=run_dir).run(
        on_record=vandalise)
    assert result.status == "failed" and result.step == 3 and result.checkpoint_step is None
    one_sentence(result.message)
    assert result.message.startswith(f"Training stopped at step 3 because the run folder {run_dir} could not be "
                                      "written (")
    assert run_dir.read_text() == "not a folder any more"


class Killed(BaseException):
    """What a SIGKILL looks like from inside: nothing after it runs (no except Exception, no finally writes)."""


def test_a_kill_right_after_a_checkpoint_leaves_run_json_caught_up(tmp_path, monkeypatch):
    """Killed just after committing step 4: run.json already holds the metrics up to 4, so a resume has no gap."""
    run_dir, ids = tmp_path / "k", corpus_ids()
    real_commit = runs.commit_checkpoint

    def commit_then_die(folder, write_model, write_optimizer, state):
        real_commit(folder, write_model, write_optimizer, state)
        if state["step"] == 4:
            raise Killed

    monkeypatch.setattr(runs, "commit_checkpoint", commit_then_die)
    with pytest.raises(Killed):
        Trainer(CFG, settings(max_steps=8, eval_every=3, checkpoint_every=2, sample_every=0), ids,
                run_dir=run_dir).run()
    data = json.loads((run_dir / runs.RUN_FILE).read_text())
    assert data["status"] == "running" and data["process"]["pid"] == os.getpid()
    assert [m["step"] for m in data["metrics"]] == [1, 2, 3, 4]  # evaluations were at 1 and 3 only
    monkeypatch.setattr(runs, "commit_checkpoint", real_commit)
    rest = Trainer.resume(run_dir, ids).run()
    assert rest.status == "finished" and [r.step for r in rest.records] == [5, 6, 7, 8]
    data = json.loads((run_dir / runs.RUN_FILE).read_text())
    assert [m["step"] for m in data["metrics"]] == list(range(1, 9))


# ---------------------------------------------------------------------------------------- damaged run folders
def damaged_runs(root: Path) -> dict[str, str]:
    """A healthy run and a zoo of damaged copies of it; returns {run id: a phrase its reason must contain}."""
    Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=root / "ok").run()
    good = json.loads((root / "ok" / runs.RUN_FILE).read_text())

    def clone(name: str, text: str | None = None, **changes) -> Path:
        shutil.copytree(root / "ok", root / name)
        record = json.dumps({**good, "run_id": name, **changes}) if text is None else text
        (root / name / runs.RUN_FILE).write_text(record)
        return root / name

    model = clone("truncated-model") / runs.MODEL_FILE
    model.write_bytes(model.read_bytes()[:500])
    (clone("pickle-as-safetensors") / runs.MODEL_FILE).write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    (clone("garbage-run-json") / runs.RUN_FILE).write_bytes(os.urandom(2048) + b"\xff")
    clone("run-json-a-list", "[1, 2, 3]")
    clone("run-json-cut", json.dumps(good)[:300])
    (root / "empty-folder").mkdir()
    clone("huge-step", metrics=[{**good["metrics"][-1], "step": 10**300}])
    clone("huge-max-steps", settings={**good["settings"], "max_steps": 10**40})
    clone("step-1e400", json.dumps(good).replace('"checkpoint_step": 2', '"checkpoint_step": 1e400'))
    clone("digits-5000", json.dumps(good).replace('"checkpoint_step": 2', '"checkpoint_step": ' + "9" * 5000))
    clone("loss-1e400", json.dumps(good).replace(f'"train_loss": {good["metrics"][-1]["train_loss"]}',
                                                 '"train_loss": 1e400'))
    clone("layers-1e6", model_config={**good["model_config"], "n_layers": 10**6})
    clone("metrics-not-a-list", metrics="many")
    clone("status-unknown", status=7)
    (clone("no-optimizer") / runs.OPTIMIZER_FILE).unlink()
    clone("samples-strings", samples=["x"])
    clone("corpus-a-string", corpus="the verdict")
    clone("elapsed-a-string", metrics=[{**good["metrics"][-1], "elapsed_s": "an hour"}])
    clone("notes-dicts", notes=[{"a": 1}])
    clone("message-a-number", message=12)
    return {
        "samples-strings": "impossible samples entry", "corpus-a-string": "impossible corpus record",
        "elapsed-a-string": "impossible metrics entry", "notes-dicts": "impossible notes entry",
        "message-a-number": "impossible message",
        "truncated-model": "not a valid safetensors file", "pickle-as-safetensors": "pickle",
        "garbage-run-json": "not readable JSON", "run-json-a-list": "does not hold a JSON object",
        "run-json-cut": "not readable JSON", "empty-folder": "There is no run.json",
        "huge-step": "impossible metrics entry", "huge-max-steps": "max_steps must be at most 9,223,372,036",
        "step-1e400": "impossible checkpoint step", "digits-5000": "more than 4,300 digits",
        "loss-1e400": "impossible train loss", "layers-1e6": "impossible model config",
        "metrics-not-a-list": "impossible list of metrics", "status-unknown": "impossible status",
        "no-optimizer": "There is no file at",
    }


def test_damaged_run_folders_are_listed_as_broken_with_a_reason(tmp_path):
    expected = damaged_runs(tmp_path)
    start = time.perf_counter()
    by_id = {r.run_id: r for r in runs.list_runs(tmp_path)}
    assert time.perf_counter() - start < 5.0  # header-only checks: no tensor is read
    assert set(by_id) == {"ok", *expected}
    assert by_id["ok"].status == "finished" and by_id["ok"].reason is None and by_id["ok"].checkpoint_step == 2
    for run_id, phrase in expected.items():
        summary = by_id[run_id]
        assert summary.status == "broken", (run_id, summary)
        assert phrase in summary.reason, (run_id, summary.reason)
        assert len(summary.reason) < 400, (run_id, summary.reason)
        assert "Traceback" not in summary.reason and not summary.reason.startswith(("ValueError", "TypeError"))


# ---------------------------------------------------------------------------------------- the page
@pytest.fixture
def use_runs(tmp_path, monkeypatch):
    """Point the app at a runs folder (``core.model_spec.default_runs_dir`` reads LLMLAB_RUNS_DIR on each call)."""
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "data"))

    def point(folder: Path) -> Path:
        monkeypatch.setenv("LLMLAB_RUNS_DIR", str(folder))
        return folder

    yield point
    for job in registry().list():
        job.stop()
    for job in registry().list():
        assert job.wait(60), f"job {job.run_id} did not stop"


def small_model(at):
    """The tiny preset cut down further (16-wide, 1 block, 16-token context): a step takes milliseconds."""
    for name, value in (("context_length", 16), ("emb_dim", 16), ("n_heads", 2), ("n_layers", 1)):
        at.number_input(key=f"pt_{name}_tiny").set_value(value)
    return at.run()


def test_page_with_an_unusable_runs_folder_warns_and_refuses_to_start(use_runs, blocked):
    folder = use_runs(blocked["below a file"])
    at = open_page()
    assert not at.exception, [e.value for e in at.exception]
    assert [w.value for w in at.warning if "runs folder" in w.value] == [runs.folder_problem(folder)]
    at = configure(small_model(at), steps=2)
    at.button(key="pt_start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert errors == [runs.folder_problem(folder)], errors
    one_sentence(errors[0])
    assert registry().active() == [] and not blocked["below a file"].parent.is_dir()


def test_page_shows_a_full_disk_as_one_sentence_and_offers_to_resume(use_runs, tmp_path, monkeypatch):
    folder = use_runs(tmp_path / "runs")
    Disk(monkeypatch, fail_from=3)  # the checkpoint at step 2 is written; the final one at step 4 is not
    at = configure(small_model(open_page()), steps=4, eval_every=2, sample_every=0)
    at.text_input(key="pt_run_id_0").set_value("t-full")
    at.button(key="pt_start").click().run()
    wait_for(at, lambda a: bool(a.error), timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    message = at.error[0].value
    one_sentence(message)
    assert message == (f"Training stopped at step 4 because the run folder {folder / 't-full'} could not be written "
                       f"({FULL}); free some disk space or fix the folder, then resume from its checkpoint at step 2.")
    assert "failed" in progress_text(at)
    assert at.button(key="pt_resume").label == "Resume from step 2"
    table = at.dataframe[0].value
    assert table.loc[table["run"] == "t-full", "status"].item() == "failed"


def test_page_lists_damaged_runs_and_opens_only_usable_ones(use_runs, tmp_path):
    folder = use_runs(tmp_path / "runs")
    folder.mkdir()
    expected = damaged_runs(folder)
    at = open_page()
    assert_clean(at)
    table = at.dataframe[0].value
    status = dict(zip(table["run"], table["status"]))
    assert status == {"ok": "finished", **dict.fromkeys(expected, "broken")}
    notes = dict(zip(table["run"], table["note"]))
    for run_id, phrase in expected.items():
        assert phrase in notes[run_id], (run_id, notes[run_id])
    assert at.selectbox(key="pt_open_pick").options == ["ok"]  # a broken run cannot be opened
    at.selectbox(key="pt_open_pick").set_value("ok")
    at.button(key="pt_open").click().run()
    assert_clean(at)
    assert any(s.value == "Run ok" for s in at.subheader) and progress_text(at) == "Step 2 of 2 · finished"
    for run_id in ("samples-strings", "corpus-a-string", "elapsed-a-string", "message-a-number"):
        at.session_state["pt_run_id"] = run_id  # as a stale session or a hand-made link would
        at.run()
        assert not at.exception, (run_id, [e.value for e in at.exception])


# ------------------------------------------------------------------------------------------- dead trainers
def running_record(folder: Path, process: dict | None, checkpoint_step: int | None = 2) -> Path:
    """A finished tiny run rewritten to say "running" (as a killed process leaves it), written just now."""
    Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=folder).run()
    data = json.loads((folder / runs.RUN_FILE).read_text())
    data.update(status="running", message="", checkpoint_step=checkpoint_step, process=process)
    (folder / runs.RUN_FILE).write_text(json.dumps(data))
    return folder


def dead_process() -> dict:
    """The process tag of a process that has ended (and been reaped), as a server killed mid-run leaves."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    started = run_process._process_start(proc.pid)
    proc.kill()
    proc.wait(30)
    return {"pid": proc.pid, "host": runs.process_tag()["host"], "started": started}


def test_process_tags_tell_a_dead_trainer_from_a_live_one():
    me = runs.process_tag()
    assert runs.process_alive(me) is True
    assert runs.process_alive(dead_process()) is False
    if me["started"] is not None:  # Linux: a pid now used by a younger process is not the trainer
        assert runs.process_alive({**me, "started": me["started"] + 1}) is False
    for unknown in (None, {}, {"pid": "1"}, {"pid": True}, {"pid": 2**40, "host": me["host"]},
                    {**me, "host": "another-machine"}, [me]):
        assert runs.process_alive(unknown) is None, unknown


def test_run_of_a_dead_server_is_cut_off_at_once_and_resumable(use_runs, tmp_path):
    """A server killed mid-run leaves run.json saying "running": the new server shows it cut off, with Resume."""
    folder = use_runs(tmp_path / "runs")
    running_record(folder / "killed", dead_process())
    running_record(folder / "cli", {**runs.process_tag(), "pid": os.getppid(), "started": None})  # alive
    running_record(folder / "mine", runs.process_tag())  # this process, whose registry has no such job
    at = open_page()
    assert_clean(at)
    table = at.dataframe[0].value
    status = dict(zip(table["run"], table["status"]))
    assert status == {"killed": "interrupted", "mine": "interrupted", "cli": "training in another process"}
    at.selectbox(key="pt_open_pick").set_value("killed")
    at.button(key="pt_open").click().run()
    assert_clean(at)
    assert progress_text(at) == "Step 2 of 2 · interrupted"
    assert [i.value for i in at.info] == ["This run was cut off (the process training it ended without a word); "
                                          "resume it from its checkpoint at step 2."]
    assert at.button(key="pt_resume").label == "Resume from step 2"
