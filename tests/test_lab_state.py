"""The active model outlives a session: its URL form, the per-visitor file on the server, and every bad value."""

from __future__ import annotations

import json
import shutil

import pytest

from core.access import new_visitor_token, owner_tag
from core.datasets import load_corpus
from core.errors import LabError
from core.lab_state import (
    MAX_PARAM_CHARS,
    load_choice,
    parse_spec_param,
    save_choice,
    spec_param,
    state_file,
)
from core.pretrain_job import Corpus, start_pretraining
from tests.test_access import QUICK, TINY


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One real 2-step run folder (run.json + checkpoint), copied by :func:`make_run` under other ids."""
    runs = tmp_path_factory.mktemp("runs")
    corpus = Corpus(load_corpus("builtin-corpus"), "builtin-corpus", "Built-in stories")
    job = start_pretraining(TINY, QUICK, corpus, "seed-run", runs)
    assert job.wait(120) and job.status == "finished", job.message
    return runs / "seed-run"


@pytest.fixture
def make_run(trained):
    def make(runs_dir, run_id, owner=None):
        folder = runs_dir / run_id
        shutil.copytree(trained, folder)
        record = json.loads((folder / "run.json").read_text())
        record["run_id"] = run_id
        if owner is not None:
            record["owner"] = owner
        (folder / "run.json").write_text(json.dumps(record))
        return folder
    return make


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setenv("LLMLAB_DEMO", "1")


def test_specs_round_trip_through_their_url_form(tmp_path, make_run):
    make_run(tmp_path, "20261202-101500-tiny")
    for spec in ({"kind": "preset", "name": "tiny", "seed": 123}, {"kind": "preset", "name": "mini", "seed": 0},
                 {"kind": "run", "run_id": "20261202-101500-tiny", "runs_dir": str(tmp_path)}):
        assert parse_spec_param(spec_param(spec), visitor=None, runs_dir=tmp_path) == spec
    assert parse_spec_param("preset:tiny", None) == {"kind": "preset", "name": "tiny", "seed": 123}


@pytest.mark.parametrize("bad, says", [
    ("", "not one this lab knows"), ("x" * (MAX_PARAM_CHARS + 1), "not one this lab knows"),
    ("tiny", "expects preset:…, run:… or hf:…"), ("preset:huge:1", "not available here"),
    ("preset:tiny:-1", "not a whole number"), ("preset:tiny:1e9", "not a whole number"),
    ("preset:tiny:١٢٣", "not a whole number"), ("preset:tiny:" + "9" * 30, "not a whole number"),
    ("run:../etc", "is not allowed"), ("run:.hidden", "is not allowed"), ("run:nope", "no such trained run"),
    ("hf:/no/such/file", "no file at"),
])
def test_bad_links_get_one_sentence(tmp_path, bad, says):
    with pytest.raises(LabError, match=says):
        parse_spec_param(bad, visitor=None, runs_dir=tmp_path)


def test_in_the_demo_a_link_to_another_visitors_run_reads_as_no_run(tmp_path, make_run, demo):
    alice, bob = new_visitor_token(), new_visitor_token()
    make_run(tmp_path, "20261202-101500-tiny-ab12", owner=owner_tag(alice))
    assert parse_spec_param("run:20261202-101500-tiny-ab12", alice, tmp_path)["run_id"] == "20261202-101500-tiny-ab12"
    with pytest.raises(LabError) as theirs:
        parse_spec_param("run:20261202-101500-tiny-ab12", bob, tmp_path)
    with pytest.raises(LabError) as none:
        parse_spec_param("run:20261202-101500-tiny-zz99", bob, tmp_path)
    assert str(theirs.value) == str(none.value)  # nothing tells Bob the run exists
    assert "ab12" not in str(theirs.value)
    with pytest.raises(LabError, match="does not load GPT-2"):
        parse_spec_param("hf:/some/model.safetensors", bob, tmp_path)
    with pytest.raises(LabError, match="not available here"):
        parse_spec_param("preset:gpt2-small:1", bob, tmp_path)


def test_the_choice_survives_a_restart_and_is_checked_again(tmp_path, make_run):
    make_run(tmp_path, "r1")
    spec = {"kind": "run", "run_id": "r1", "runs_dir": str(tmp_path)}
    assert load_choice("tok", tmp_path) is None
    assert save_choice("tok", spec, tmp_path)
    assert load_choice("someone-else", tmp_path) == spec  # outside the demo: one learner, one file
    (tmp_path / "r1" / "model.safetensors").unlink()  # the run lost its checkpoint: back to the default
    assert load_choice("tok", tmp_path) is None
    state_file("tok", tmp_path).write_text("{not json")
    assert load_choice("tok", tmp_path) is None
    state_file("tok", tmp_path).write_text(json.dumps({"model": "preset:tiny:5"}))
    assert load_choice("tok", tmp_path) == {"kind": "preset", "name": "tiny", "seed": 5}


def test_in_the_demo_each_visitor_keeps_their_own_choice(tmp_path, demo, monkeypatch):
    alice, bob = new_visitor_token(), new_visitor_token()
    save_choice(alice, {"kind": "preset", "name": "tiny", "seed": 7}, tmp_path)
    assert load_choice(alice, tmp_path) == {"kind": "preset", "name": "tiny", "seed": 7}
    assert load_choice(bob, tmp_path) is None
    assert state_file(alice, tmp_path) != state_file(bob, tmp_path)
    monkeypatch.setattr("core.lab_state.MAX_STATE_FILES", 3)
    for i in range(5):
        save_choice(new_visitor_token(), {"kind": "preset", "name": "tiny", "seed": i}, tmp_path)
    assert len(list(state_file(alice, tmp_path).parent.glob("*.json"))) == 3  # the oldest went first


def test_a_read_only_disk_keeps_the_session_going(tmp_path):
    (tmp_path / ".lab_state").write_text("a file where the folder should be")
    assert save_choice("tok", {"kind": "preset", "name": "tiny", "seed": 1}, tmp_path) is False
