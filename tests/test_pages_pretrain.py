"""AppTest of the Pretraining page: defaults, a tiny run to the end, stop + reattach + resume, bad input, busy.

Each test gets its own runs and data folders (``LLMLAB_RUNS_DIR`` is read on every call). Training jobs live in
the process-wide registry, so every test stops and waits for its jobs at the end.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from streamlit.testing.v1 import AppTest

from core import guided
from core.jobs import registry
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
PAGE = "views/pretrain.py"


def open_page(preset: str | None = "tiny") -> AppTest:
    """The page in a new session, on ``preset`` (None: the page's default, the guided path's mini)."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE)
    at.run()
    if preset is not None:
        at.selectbox(key="pt_preset").set_value(preset).run()
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def configure(at: AppTest, steps: int, batch: int = 2, eval_every: int = 2, sample_every: int = 2,
              lr: float | None = None, warmup: int = 1) -> AppTest:
    for key, value in (("pt_steps", steps), ("pt_batch", batch), ("pt_eval_every", eval_every),
                       ("pt_sample_every", sample_every), ("pt_warmup", warmup)):
        at.number_input(key=key).set_value(value)
    if lr is not None:
        at.number_input(key="pt_lr").set_value(lr)
    return at.run()


def progress_text(at: AppTest) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def wait_for(at: AppTest, done, timeout: float = 90.0) -> AppTest:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1.0)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if done(at):
            return at
    pytest.fail(f"gave up after {timeout:.0f} s; progress: {progress_text(at)!r}")


def fake_running_run(folder, age_s: float) -> None:
    """A run.json that says "running" although no job of this app trains it, last written age_s ago."""
    from core.config import GPTConfig
    from core.runs import RUN_FORMAT
    from core.train import TrainSettings

    folder.mkdir(parents=True)
    record = {"format": RUN_FORMAT, "run_id": folder.name, "status": "running", "created": "2026-01-01T00:00:00",
              "model_config": GPTConfig.preset("tiny").to_dict(), "settings": TrainSettings(max_steps=9).to_dict(),
              "metrics": [], "samples": [], "checkpoint_step": None}
    (folder / "run.json").write_text(json.dumps(record))
    stamp = time.time() - age_s
    os.utime(folder / "run.json", (stamp, stamp))


def test_defaults_render_and_list_broken_and_orphaned_runs(runs):
    (runs / "half-written").mkdir(parents=True)
    (runs / "half-written" / "run.json").write_text("{")
    fake_running_run(runs / "cli-now", age_s=5)  # e.g. `python -m core pretrain` training it right now
    fake_running_run(runs / "cut-off", age_s=3600)  # its process died an hour ago
    at = open_page(preset=None)
    assert_clean(at)
    assert at.title[0].value == "Pretraining"
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Parameters", "Training memory", "Corpus tokens", "Training windows"]
    assert at.selectbox(key="pt_preset").value == guided.PRETRAIN_PRESET == "mini"  # the guided path's defaults
    assert at.metric[0].value == "13.67 M"  # the mini preset, untied head
    g = guided.PRETRAIN
    assert [at.number_input(key=k).value for k in ("pt_steps", "pt_batch", "pt_lr", "pt_warmup", "pt_eval_every",
                                                    "pt_sample_every", "pt_seed")] == [
        g.max_steps, g.batch_size, g.lr, g.warmup_steps, g.eval_every, g.sample_every, g.seed]
    assert any("Continue 'Once upon a time'" in (n.help or "") for n in at.number_input)  # the stories' prompt
    assert any(c.value.startswith(":material/check_circle: Fits") for c in at.caption)
    table = at.dataframe[0].value
    row = table[table["run"] == "half-written"]
    assert row["status"].item() == "broken" and "not readable JSON" in row["note"].item()
    status = dict(zip(table["run"], table["status"]))
    assert status["cli-now"] == "training in another process" and status["cut-off"] == "interrupted"
    assert len(at.tabs) == 2
    assert not at.button(key="pt_start").disabled


def test_tiny_run_shows_progress_curves_samples_and_becomes_active(runs):
    at = configure(open_page(), steps=6)
    at.text_input(key="pt_run_id_0").set_value("t-finish")
    at.button(key="pt_start").click().run()
    assert_clean(at)
    assert any(s.value == "Run t-finish" for s in at.subheader)
    wait_for(at, lambda a: progress_text(a).endswith("finished"))
    assert_clean(at)
    assert progress_text(at) == "Step 6 of 6 · finished"
    metrics = {m.label: m.value for m in at.metric}
    assert 0 < float(metrics["Train loss"]) < 11 and 0 < float(metrics["Val loss"]) < 11
    assert metrics["Tokens/s"] != "—"
    assert any(s.value.startswith("Finished 6 steps") for s in at.success)
    assert len(at.get("plotly_chart")) >= 2  # the run's curves + the comparison of past runs
    table = at.dataframe[0].value
    assert table.loc[table["run"] == "t-finish", "status"].item() == "finished"
    data = json.loads((runs / "t-finish" / "run.json").read_text())
    assert [s["step"] for s in data["samples"]] == [2, 4, 6]
    assert data["corpus"]["source"] == "builtin-corpus"

    at.button(key="pt_use_run").click().run()
    assert_clean(at)
    assert at.session_state["active_model"] == {"kind": "run", "run_id": "t-finish", "runs_dir": str(runs)}
    assert any("is now the active model" in t.value for t in at.toast)
    at.button(key="pt_check").click().run()  # the book's check with the trained run
    assert_clean(at)
    who, text = at.session_state["pt_check_out"]
    assert who == "trained run 't-finish'" and text.startswith("Every effort moves you")


def test_stop_reattach_and_resume(runs):
    at = configure(open_page(), steps=400, sample_every=0)
    at.text_input(key="pt_run_id_0").set_value("t-stop")
    at.button(key="pt_start").click().run()
    wait_for(at, lambda a: (runs / "t-stop" / "model.safetensors").exists())

    other = open_page()  # a new browser session (e.g. after a refresh) reattaches to the running job
    assert any(s.value == "Run t-stop" for s in other.subheader)
    assert "training" in progress_text(other)

    at.button(key="pt_stop").click().run()
    wait_for(at, lambda a: any(i.value.startswith("Stopped at step") for i in a.info), timeout=60)
    assert_clean(at)
    data = json.loads((runs / "t-stop" / "run.json").read_text())
    assert data["status"] == "stopped"
    step = data["checkpoint_step"]
    assert step == data["step"] >= 2

    at.number_input(key="pt_until").set_value(step + 2)
    at.button(key="pt_resume").click().run()
    wait_for(at, lambda a: progress_text(a).endswith("finished"))
    assert_clean(at)
    assert progress_text(at) == f"Step {step + 2} of {step + 2} · finished"
    data = json.loads((runs / "t-stop" / "run.json").read_text())
    assert [m["step"] for m in data["metrics"]] == list(range(1, step + 3))  # no gap, no repeat


def test_too_high_learning_rate_diverges_and_keeps_the_last_good_checkpoint(runs):
    at = configure(open_page(), steps=20, lr=100.0, warmup=0, sample_every=0)
    at.text_input(key="pt_run_id_0").set_value("t-diverge")
    at.button(key="pt_start").click().run()
    wait_for(at, lambda a: bool(a.error))
    message = at.error[0].value
    assert "too high" in message and "lower it" in message
    assert not at.exception
    data = json.loads((runs / "t-diverge" / "run.json").read_text())
    assert data["status"] == "diverged"
    assert data["checkpoint_step"] >= 2  # evaluated (and saved) at step 2, before it blew up
    assert f"last good checkpoint at step {data['checkpoint_step']}" in message
    assert (runs / "t-diverge" / "model.safetensors").exists()


def test_bad_input_gets_one_sentence(runs, monkeypatch):
    at = open_page()
    at.radio(key="pt_corpus").set_value("paste").run()
    at.text_area(key="pt_paste").set_value("Far too short to train on.").run()
    assert not at.exception
    assert any("needs at least context_length + 1 = 65" in w.value for w in at.warning)  # pre-flight
    at.button(key="pt_start").click().run()
    assert not at.exception
    assert any("needs at least context_length + 1 = 65" in e.value for e in at.error)
    assert not (runs / "t").exists() and registry().active() == []

    at.radio(key="pt_corpus").set_value("builtin").run()
    at.text_input(key="pt_run_id_0").set_value("../escape").run()
    at.button(key="pt_start").click().run()
    assert any("is not allowed" in e.value for e in at.error)

    import core.train_memory

    monkeypatch.setattr(core.train_memory, "available_memory", lambda device: 100 * 2**20)  # 100 MiB free
    at.text_input(key="pt_run_id_0").set_value("t-memory").run()
    assert any(w.value.startswith("Does not fit") for w in at.warning)
    assert at.button(key="pt_measure").disabled
    at.button(key="pt_start").click().run()
    assert not at.exception
    assert any("only 0.10 GB is free" in e.value for e in at.error)
    assert not (runs / "t-memory").exists()

    at.radio(key="pt_corpus").set_value("verdict").run()  # not downloaded in this fresh data folder
    assert_clean(at)
    assert at.button(key="pt_verdict_download")


def test_second_job_while_one_runs_is_refused_with_the_busy_sentence(runs):
    holder = registry().start("t-holder", lambda job: job.stop_event.wait(60), kind="classify")
    try:
        at = configure(open_page(), steps=3)
        at.text_input(key="pt_run_id_0").set_value("t-second")
        at.button(key="pt_start").click().run()
        assert not at.exception and not at.error
        assert any("Another training job (run 't-holder'" in w.value for w in at.warning)
        assert not (runs / "t-second").exists()
    finally:
        holder.stop()
        holder.wait(10)


def test_gpt2_weights_from_a_path_become_active_and_offline_download_says_so(runs, tmp_path, monkeypatch):
    import core.pretrained
    from core.checkpoint import export_hf_gpt2
    from core.config import GPTConfig
    from core.model import GPTModel

    folder = tmp_path / "my-gpt2"
    export_hf_gpt2(GPTModel(GPTConfig.preset("tiny", qkv_bias=True, tie_weights=True)), folder)  # HF layout
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    monkeypatch.setattr(core.pretrained, "hf_url", lambda size: "http://no-such-host.invalid/model.safetensors")
    at = open_page()
    at.button(key="pt_gpt2_download").click().run()
    assert not at.exception
    assert any(e.value == "Could not reach no-such-host.invalid (no internet connection?). Download "
               "model.safetensors on a machine with internet and give its path here." for e in at.error)

    at.radio(key="pt_gpt2_how").set_value("path").run()
    at.text_input(key="pt_gpt2_local").set_value(str(folder / "model.safetensors")).run()
    at.button(key="pt_gpt2_check").click().run()
    assert_clean(at)
    assert any(m.value.startswith("**Ready:**") and "2 blocks, 64 wide" in m.value for m in at.markdown)
    at.button(key="pt_gpt2_activate").click().run()
    assert_clean(at)
    assert at.session_state["active_model"] == {"kind": "hf", "path": str(folder / "model.safetensors")}
    at.button(key="pt_check").click().run()
    assert_clean(at)
    who, text = at.session_state["pt_check_out"]
    assert who == "GPT-2 weights from model.safetensors" and text.startswith("Every effort moves you")

    at.text_input(key="pt_gpt2_local").set_value(str(tmp_path / "missing.safetensors")).run()
    at.button(key="pt_gpt2_check").click().run()
    assert not at.exception
    assert any("There is no file at" in e.value for e in at.error)


def test_measure_speed_gives_an_estimate_with_training_and_evaluation_time():
    at = configure(open_page("tiny"), steps=40, batch=4, eval_every=10)
    at.button(key="pt_measure").click().run()
    assert_clean(at)
    [line] = [m.value for m in at.markdown if "Estimated time on this device" in m.value]
    assert "tokens/s plus" in line and "of evaluation" in line
    [speed] = at.session_state["pt_speeds"].values()
    assert set(speed) == {"train", "eval"} and speed["train"] > 0 and speed["eval"] > speed["train"]


def test_a_finished_run_downloads_as_a_hugging_face_zip(runs):
    from core.config import GPTConfig
    from core.jobs import JobRegistry, start_training_job
    from core.tokenizers import get_tokenizer
    from core.train import TrainSettings
    from tests.test_train import SENTENCES

    tok = get_tokenizer("gpt2")
    text = " ".join(SENTENCES[(i * 7) % 4] + f" Day {i}." for i in range(300))
    cfg = GPTConfig.preset("tiny", context_length=16, emb_dim=16, n_heads=2, n_layers=1)
    settings = TrainSettings(max_steps=2, batch_size=2, eval_every=2, eval_batches=1, sample_every=0, seed=7,
                             device="cpu")  # fmt: skip
    job = start_training_job(cfg, settings, tok.encode(text), runs, "t-hf", tokenizer=tok, jobs=JobRegistry())
    assert job.wait(120) and job.status == "finished", job.message

    at = open_page()
    at.selectbox(key="pt_open_pick").set_value("t-hf")
    at.button(key="pt_open").click().run()
    assert_clean(at)
    assert any(s.value == "Run t-hf" for s in at.subheader)
    assert not at.get("download_button") or all(b.proto.label != "Download as Hugging Face GPT-2 (.zip)"
                                                for b in at.get("download_button"))
    at.button(key="pt_hf_prepare").click().run()
    assert_clean(at)
    [button] = [b for b in at.get("download_button") if b.proto.label == "Download as Hugging Face GPT-2 (.zip)"]
    assert button.proto.help.startswith("t-hf-hf-gpt2.zip, ")
    key, data, name = at.session_state["pt_hf_export"]
    assert name == "t-hf-hf-gpt2.zip" and key[0] == "t-hf" and data[:2] == b"PK"
    at.run()  # a rerun keeps the prepared zip and its button
    assert_clean(at)
    assert at.session_state["pt_hf_export"][2] == name
    assert any(b.proto.label == "Download as Hugging Face GPT-2 (.zip)" for b in at.get("download_button"))
