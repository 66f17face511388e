"""What a learner chose outlives the session (AppTest): the active model and the watched run come back in a new
session (a reload, a new tab, a restarted server), a link names them, a page's settings survive a visit to
another page, and a bad or foreign link gets one sentence in the sidebar."""

from __future__ import annotations

import pytest

from core.access import new_visitor_token
from core.datasets import load_corpus
from core.pretrain_job import Corpus, start_pretraining
from tests.conftest import app_page
from tests.test_access import QUICK, TINY


def _train(runs, run_id: str, visitor: str | None = None) -> None:
    corpus = Corpus(load_corpus("builtin-corpus"), "builtin-corpus", "Built-in stories")
    job = start_pretraining(TINY, QUICK, corpus, run_id, runs, visitor=visitor)
    assert job.wait(120) and job.status == "finished", job.message


_session = app_page


def _sidebar_model(at) -> str:
    return next(c.value for c in at.sidebar.caption if "Active model" in c.value)


def test_the_active_model_comes_back_in_a_new_session_and_in_the_url(runs):
    _train(runs, "r-kept")
    at = _session("views/pretrain.py")
    at.sidebar.radio(key="frame_source").set_value("Trained run").run()
    at.sidebar.button(key="frame_use_run").click().run()
    assert at.query_params["model"] == "run:r-kept"
    for page in ("views/generate.py", "views/classify.py", "views/instruct.py", "views/lora.py"):
        again = _session(page)  # no URL at all: the server kept the choice
        assert "trained run 'r-kept'" in _sidebar_model(again), page
        assert again.session_state["active_model"]["run_id"] == "r-kept"
        assert any("r-kept" in c.value for c in again.caption), f"{page} does not name the run"
    other = _session("views/generate.py", model="preset:tiny:7")  # a link wins over the kept choice
    assert "seed 7" in _sidebar_model(other)


def test_the_watched_run_survives_a_reload(runs):
    _train(runs, "r-watch")
    at = _session("views/pretrain.py", pt_run="r-watch")
    assert any(s.value == "Run r-watch" for s in at.subheader)
    assert at.button(key="pt_use_run")  # the stopped/finished run's dashboard and its actions are back


def test_settings_survive_a_visit_to_another_page(runs):
    at = _session("views/pretrain.py")
    at.number_input(key="pt_steps").set_value(123).run()
    at.switch_page("views/tokenizer.py").run()
    at.text_area(key="tok_text").set_value("kept text").run()
    at.switch_page("views/pretrain.py").run()
    assert at.number_input(key="pt_steps").value == 123
    at.switch_page("views/tokenizer.py").run()
    assert at.text_area(key="tok_text").value == "kept text"
    assert not at.exception


@pytest.mark.parametrize("link, says", [("run:nope", "no such trained run"), ("preset:huge:1", "not available"),
                                        ("../../etc/passwd", "not one this lab knows")])
def test_a_bad_link_gets_one_sentence_and_the_default_model(runs, link, says):
    at = _session("views/generate.py", model=link)
    assert any(says in w.value for w in at.sidebar.warning), [w.value for w in at.sidebar.warning]
    assert "tiny preset" in _sidebar_model(at)
    assert "model" not in at.query_params


def test_in_the_demo_another_visitors_run_is_never_restored(runs, monkeypatch):
    monkeypatch.setenv("LLMLAB_DEMO", "1")
    alice = new_visitor_token()
    _train(runs, "r-alice", visitor=alice)
    mine = _session("views/generate.py", v=alice, model="run:r-alice")
    assert "r-alice" in _sidebar_model(mine)
    theirs = _session("views/generate.py", model="run:r-alice")  # Bob has the link but not Alice's token
    assert "tiny preset" in _sidebar_model(theirs)
    assert any("no such trained run" in w.value for w in theirs.sidebar.warning)
    watched = _session("views/pretrain.py", pt_run="r-alice")
    assert not any("r-alice" in s.value for s in watched.subheader)
