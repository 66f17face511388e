"""The hosted-demo mode: how it is switched on, the caps themselves, and what the pages do under them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.config import GPTConfig
from core.errors import LabError
from core.jobs import JobRegistry
from core.limits import Limits, current_limits, demo_requested
from core.stats import total_parameters
from core.train import TrainSettings
from tests.conftest import ROOT

APP = str(ROOT / "app.py")


# ------------------------------------------------------------------------------------------------ switching on
@pytest.mark.parametrize("raw, on", [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False),
                                     ("false", False), ("", False), ("demo", False)])
def test_environment_switch(raw, on):
    assert demo_requested(env={"LLMLAB_DEMO": raw}) is on
    assert current_limits(env={"LLMLAB_DEMO": raw}).demo is on


def test_secrets_switch_and_environment_wins():
    assert demo_requested(env={}, secrets={"LLMLAB_DEMO": True})
    assert demo_requested(env={}, secrets={"LLMLAB_DEMO": "1"})
    assert not demo_requested(env={"LLMLAB_DEMO": "0"}, secrets={"LLMLAB_DEMO": "1"})
    assert not demo_requested(env={}, secrets={})


def test_unreadable_secrets_mean_off():
    class Broken:
        def get(self, key):
            raise FileNotFoundError("no secrets.toml")

    assert not demo_requested(env={}, secrets=Broken())


def test_local_has_no_caps():
    caps = Limits.local()
    assert caps.demo is False
    caps.check_model(GPTConfig.preset("gpt2-small"))
    caps.check_steps(10**6)
    caps.check_gpt2()
    assert caps.cap("max_steps", 123_456) == 123_456
    assert caps.describe() == []


# ---------------------------------------------------------------------------------------------------- the caps
def test_demo_caps_allow_the_small_presets_only():
    caps = Limits.hosted()
    for name in ("tiny", "mini"):
        caps.check_model(GPTConfig.preset(name))
    for name in ("gpt2-small", "gpt2-medium"):
        with pytest.raises(LabError, match="hosted demo"):
            caps.check_model(GPTConfig.preset(name))


def test_demo_refuses_a_wide_custom_model_by_its_parameter_count():
    cfg = GPTConfig.preset("mini", emb_dim=512, n_heads=8)
    assert total_parameters(cfg) > 20_000_000
    with pytest.raises(LabError, match=r"M parameters.*tiny or mini"):
        Limits.hosted().check_model(cfg)
    with pytest.raises(LabError, match="context length of at most 256"):
        Limits.hosted().check_model(GPTConfig.preset("tiny", context_length=512))


@pytest.mark.parametrize("check, value", [("check_steps", 2_001), ("check_batch", 33), ("check_upload", 5_000_001)])
def test_demo_numeric_caps(check, value):
    caps = Limits.hosted()
    getattr(caps, check)(value - 1)  # just under is fine
    with pytest.raises(LabError) as err:
        getattr(caps, check)(value)
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_demo_refuses_gpt2_and_describes_itself():
    caps = Limits.hosted()
    with pytest.raises(LabError, match="GPT-2"):
        caps.check_gpt2()
    text = ", ".join(caps.describe())
    for phrase in ("20 M parameters", "2,000 steps", "5 MB", "no GPT-2"):
        assert phrase in text
    assert caps.cap("max_steps", 1_000_000) == 2_000 and caps.cap("max_steps", 50) == 50


# ------------------------------------------------------------------------------------- enforcement in the code
@pytest.fixture
def demo(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMLAB_DEMO", "1")
    monkeypatch.setenv("LLMLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "data"))
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)  # the app set it for the whole (test) process


def test_pretraining_start_refuses_runs_above_the_caps(demo):
    from core.pretrain_job import Corpus, check_caps, start_pretraining

    check_caps(GPTConfig.preset("mini"), TrainSettings(max_steps=2_000, batch_size=8))
    check_caps(GPTConfig.preset("mini"), TrainSettings(max_steps=2_000, batch_size=32))  # the fused head: 0.5 GB
    wide = GPTConfig.preset("tiny", n_heads=16, context_length=256, drop_rate=0.1, n_layers=4)  # L×L per head
    with pytest.raises(LabError, match=r"would need about 2\.0 GB of memory at its peak .* allows 1\.2 GB per run"):
        check_caps(wide, TrainSettings(max_steps=2_000, batch_size=32))
    with pytest.raises(LabError, match="2,000 steps"):
        start_pretraining(GPTConfig.preset("tiny"), TrainSettings(max_steps=5_000), Corpus("x " * 5000, "", "t"),
                          "too-long", demo / "runs")
    with pytest.raises(LabError, match="parameters"):
        start_pretraining(GPTConfig.preset("gpt2-small"), TrainSettings(max_steps=10), Corpus("x " * 5000, "", "t"),
                          "too-big", demo / "runs")
    assert not (demo / "runs").exists() or not any((demo / "runs").iterdir()), "nothing may be written"


def test_finetune_start_refuses_too_many_planned_steps(demo, tiny_model):
    from core import classify_job as ft
    from core.tokenizers import get_tokenizer

    tok = get_tokenizer("gpt2")
    rows = [("ham" if i % 2 else "spam", f"message number {i}") for i in range(400)]
    df = pd.DataFrame(rows, columns=["label", "text"])
    settings = ft.ClassifySettings(epochs=50, batch_size=2, balance=False)  # 140 batches × 50 epochs
    with pytest.raises(LabError, match="steps per run"):
        ft.start_classify_job(tiny_model, tok, df, settings, jobs=JobRegistry())
    with pytest.raises(LabError, match="batches of at most 32"):
        ft.start_classify_job(tiny_model, tok, df, ft.ClassifySettings(batch_size=64), jobs=JobRegistry())


def test_demo_jobs_train_on_one_thread(demo):
    """Training must leave a core for the other visitors' pages (the thread count is per thread under OpenMP)."""
    seen = []
    torch.set_num_threads(2)  # the fixture restores the test process's setting
    job = JobRegistry().start("threads", lambda job: seen.append(torch.get_num_threads()))
    assert job.wait(30) and seen == [1]


# ------------------------------------------------------------------------------------------------- the pages
def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if path != "views/home.py":
        at.switch_page(path)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_every_page_shows_the_demo_note(demo):
    at = _page("views/home.py")
    notes = [i.value for i in at.sidebar.info]
    assert any("Hosted demo" in n and "2,000 steps" in n for n in notes), notes


def test_sidebar_offers_only_small_presets_and_no_gpt2_file(demo):
    at = _page("views/home.py")
    assert "GPT-2 weights file" not in at.sidebar.radio(key="frame_source").options
    assert at.sidebar.selectbox(key="frame_preset").options == ["tiny", "mini"]


def test_pretraining_page_caps_its_widgets_and_hides_gpt2(demo):
    at = _page("views/pretrain.py")
    assert at.number_input(key="pt_steps").max == 2_000
    assert at.number_input(key="pt_batch").max == 32
    presets = at.selectbox(key="pt_preset").options
    assert presets and all(not p.startswith("gpt2") for p in presets)
    assert any("does not load GPT-2 weights" in i.value for i in at.info)
    assert not at.error, [e.value for e in at.error]


def test_without_demo_the_pages_have_no_note_and_all_presets(monkeypatch):
    monkeypatch.delenv("LLMLAB_DEMO", raising=False)
    at = _page("views/pretrain.py")
    assert not any("Hosted demo" in i.value for i in at.sidebar.info)
    assert any(p.startswith("gpt2") for p in at.selectbox(key="pt_preset").options)


def test_demo_switched_on_by_streamlit_secrets(monkeypatch, tmp_path):
    """On Community Cloud the switch comes from the app's secrets; the app carries it into the environment."""
    import os

    monkeypatch.setenv("LLMLAB_DEMO", "placeholder")  # so that teardown restores the variable's absence
    monkeypatch.delenv("LLMLAB_DEMO")
    threads = torch.get_num_threads()
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["LLMLAB_DEMO"] = "1"
    at.run()
    torch.set_num_threads(threads)
    assert not at.exception, [e.value for e in at.exception]
    assert any("Hosted demo" in i.value for i in at.sidebar.info)
    assert os.environ.get("LLMLAB_DEMO") == "1"


def test_demo_refuses_an_upload_over_its_cap_with_one_sentence(demo):
    at = _page("views/classify.py")
    at.radio(key="cls_source").set_value("upload").run()
    big = b"text,label\n" + b"hello there,ham\n" * 400_000  # 6.4 MB: under the server's 50 MB, over the demo's 5
    next(w for w in at.get("file_uploader") if w.key == "cls_upload").set_value(("big.csv", big, "text/csv"))
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["That file (big.csv) is 6.4 MB and the limit here is 5 MB; upload a "
                                           "smaller file."]


def test_demo_only_the_starter_sees_and_may_stop_a_run(demo):
    """In the demo a run is its starter's: another visitor sees neither its dashboard nor its id, not even in the
    busy message, and gets no Stop."""
    import time

    from core.jobs import registry

    owner = _page("views/pretrain.py")
    for key, value in (("pt_steps", 2_000), ("pt_batch", 1), ("pt_eval_every", 1_000), ("pt_sample_every", 0)):
        owner.number_input(key=key).set_value(value)
    owner.button(key="pt_start").click().run()
    try:
        deadline = time.time() + 60
        while not [j for j in registry().active() if j.kind == "pretrain"] and time.time() < deadline:
            time.sleep(0.2)
        owner.run()
        assert [b for b in owner.button if b.key == "pt_stop"], "the owner can stop the run"
        run_id = registry().active()[0].run_id
        visitor = _page("views/pretrain.py")
        assert not [b for b in visitor.button if b.key == "pt_stop"]
        assert not any(run_id in h.value for h in visitor.subheader), "another visitor's dashboard is shown"
        visitor.button(key="pt_start").click().run()
        busy = [w.value for w in visitor.warning if "Another training job" in w.value]
        assert busy and run_id not in busy[0], (busy, [e.value for e in visitor.error])
    finally:
        for job in registry().list():
            job.stop()
        for job in registry().list():
            assert job.wait(60)


def test_pasted_text_has_the_upload_cap_in_core_and_on_the_page(demo):
    """A paste is not a way around the 5 MB upload cap: refused by core.pretrain_job, never stored."""
    from core.pretrain_job import Corpus, store_corpus

    big = "word " * 1_300_000  # 6.5 MB
    with pytest.raises(LabError, match=r"The pasted text is 6\.5 MB and the limit here is 5 MB"):
        Corpus(big, "", "pasted text")
    with pytest.raises(LabError, match="limit here is 5 MB"):
        store_corpus(big)
    assert Corpus(big, "builtin-corpus", "a registry corpus is not a paste").text is big
    assert Corpus("é" * 1_300_000, "", "2.6 MB of two-byte characters").source == ""
    at = _page("views/pretrain.py")
    at.radio(key="pt_corpus").set_value("paste").run()
    at.text_area(key="pt_paste").set_value(big).run()
    assert not at.exception
    assert any("The pasted text is 6.5 MB" in e.value for e in at.error)
    assert at.button(key="pt_start").disabled
    assert not (demo / "data" / "corpora").exists() or not any((demo / "data" / "corpora").iterdir())
