"""Ownership in the hosted demo (core.access), enforced in core: jobs, run folders, the runs table, resume."""

from __future__ import annotations

import json

import pytest

from core.access import check_access, may_access, new_visitor_token, owner_tag
from core.config import GPTConfig
from core.datasets import load_corpus
from core.errors import LabError
from core.finetune_job import job_state
from core.jobs import JobRegistry, registry
from core.pretrain_job import Corpus, resume_pretraining, start_pretraining
from core.run_view import dashboard_state, visible_runs
from core.train import TrainSettings

ALICE, BOB = new_visitor_token(), new_visitor_token()
TINY = GPTConfig.preset("tiny", context_length=16, emb_dim=16, n_heads=2, n_layers=1)
QUICK = TrainSettings(max_steps=2, batch_size=2, eval_every=2, eval_batches=1, sample_every=0, device="cpu")


@pytest.fixture
def demo(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLAB_DEMO", "1")
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "data"))
    yield tmp_path
    for job in registry().list():
        job.stop()
        job.wait(60)


def test_tags_hide_the_token_and_only_the_owner_passes():
    tag = owner_tag(ALICE)
    assert len(tag) == 32 and ALICE not in tag and owner_tag(ALICE) == tag != owner_tag(BOB)
    assert owner_tag(None) is None and owner_tag("") is None
    assert may_access(tag, ALICE, demo=True) and not may_access(tag, BOB, demo=True)
    assert not may_access(None, ALICE, demo=True), "a run nobody owns (the CLI's) is no visitor's"
    assert not may_access(tag, None, demo=True) and may_access(tag, BOB, demo=False)
    with pytest.raises(LabError, match="belongs to another visitor") as err:
        check_access(tag, BOB, demo=True)
    assert tag not in str(err.value)


def test_another_visitor_can_neither_see_nor_stop_a_job(demo):
    jobs = JobRegistry(max_jobs=2)
    job = jobs.start("alices-job", lambda j: j.stop_event.wait(30), kind="classify", owner=owner_tag(ALICE))
    try:
        assert job_state("alices-job", "classify", jobs, visitor=BOB) == (None, None)
        assert job_state("alices-job", "classify", jobs, visitor=ALICE)[0]["run_id"] == "alices-job"
        with pytest.raises(LabError, match="belongs to another visitor"):
            jobs.stop("alices-job", BOB)
        assert job.active and not job.stop_event.is_set()
        assert jobs.stop("alices-job", ALICE) and job.wait(10)
    finally:
        job.stop()


def test_the_busy_sentence_names_no_run_in_the_demo(demo):
    jobs = JobRegistry(max_jobs=1)
    job = jobs.start("alices-secret-run", lambda j: j.stop_event.wait(30), owner=owner_tag(ALICE))
    try:
        with pytest.raises(LabError) as err:
            jobs.check_can_start("bobs-run")
        assert "alices-secret-run" not in str(err.value) and "Another training job" in str(err.value)
    finally:
        job.stop()


def test_a_run_folder_belongs_to_its_starter_through_resume(demo):
    runs = demo / "runs"
    corpus = Corpus(load_corpus("builtin-corpus"), "builtin-corpus", "Built-in stories")
    job = start_pretraining(TINY, QUICK, corpus, "alices-run", runs, visitor=ALICE)
    assert job.wait(120) and job.status == "finished", job.message
    record = json.loads((runs / "alices-run" / "run.json").read_text())
    assert record["owner"] == owner_tag(ALICE) and ALICE not in json.dumps(record)
    assert [r.run_id for r in visible_runs(runs, ALICE)] == ["alices-run"] and visible_runs(runs, BOB) == []
    assert dashboard_state("alices-run", runs, BOB) is None
    assert dashboard_state("alices-run", runs, ALICE).checkpoint_step == 2
    with pytest.raises(LabError, match="belongs to another visitor"):
        resume_pretraining("alices-run", runs, max_steps=4, visitor=BOB)
    again = resume_pretraining("alices-run", runs, max_steps=4, visitor=ALICE)
    assert again.wait(120) and again.status == "finished", again.message
    record = json.loads((runs / "alices-run" / "run.json").read_text())
    assert record["checkpoint_step"] == 4 and record["owner"] == owner_tag(ALICE)


def test_a_hand_made_run_id_never_reaches_outside_the_runs_folder(tmp_path):
    """``?pt_run=..`` (or a path) is not a run id: the dashboard shows nothing, even where a run.json lies there."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (tmp_path / "run.json").write_text("{}")  # what ``runs/..`` would read
    for bad in ("..", "../x", "/etc", ".hidden", "", None, 5, "a" * 65):
        assert dashboard_state(bad, runs, ALICE) is None
