"""AppTest of the LoRA, Classification and Instruction pages: defaults, a tiny run each, bad input."""

from __future__ import annotations

import json
import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.jobs import ACTIVE, registry
from tests.conftest import ROOT
from tests.script_check import open_page

APP = str(ROOT / "app.py")


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def metric(at: AppTest, label_start: str) -> str:
    hits = [m.value for m in at.metric if m.label.startswith(label_start)]
    assert hits, f"no metric {label_start!r}; have {[m.label for m in at.metric]}"
    return hits[0]


def run_to_end(at: AppTest, run_key: str, timeout: float = 60.0) -> None:
    """Poll as the page's fragment would: rerun until the job is done, then once more to draw its results."""
    end = time.time() + timeout
    run_id = at.session_state[run_key]
    while time.time() < end:
        job = registry().get(run_id)
        if job is not None and job.status not in ACTIVE:
            break
        time.sleep(1.0)
        at.run()
    at.run()
    assert registry().get(run_id).status == "finished", registry().get(run_id).message


def upload(at: AppTest, key: str, name: str, data: bytes, mime: str) -> None:
    next(w for w in at.get("file_uploader") if w.key == key).set_value((name, data, mime))
    at.run()


# --- LoRA lab ---------------------------------------------------------------------------------------------------
def test_lora_defaults_step_and_bad_rank():
    at = open_page("views/lora.py")
    assert_clean(at)
    assert any(m.value.startswith("**Shapes** — W: 64 × 64 · A: 8 × 64 · B: 64 × 8") for m in at.markdown)
    assert metric(at, "Trainable in this layer") == "1,024"
    assert metric(at, "Book: GPT-2 small") == "2,666,528"
    assert float(metric(at, "max |merged − unmerged|")) < 1e-5
    assert float(metric(at, "max |LoRA − base| at init")) == 0.0
    assert float(metric(at, "max |ΔW|")) == 0.0
    at.button(key="lora_step").click().run()
    assert_clean(at)
    assert float(metric(at, "max |ΔW|")) > 0 and metric(at, "rank of ΔW") == "8"
    at.number_input(key="lora_rank").set_value(0).run()
    assert not at.exception
    assert len(at.error) == 1 and "positive whole number" in at.error[0].value
    at.number_input(key="lora_rank").set_value(100).run()
    assert not at.exception
    assert len(at.error) == 1 and "larger than the layer" in at.error[0].value


# --- Classification ---------------------------------------------------------------------------------------------
def test_classify_tiny_run_end_to_end(runs):
    from ui.cache import preset_model

    cached = preset_model("tiny")
    w_before = cached.trf_blocks[-1].att.W_query.weight.detach().clone()
    at = open_page("views/classify.py")
    assert_clean(at)
    assert any("random weights" in i.value for i in at.info)
    assert len(at.dataframe) >= 2  # preview and class counts
    at.number_input(key="cls_max_steps").set_value(4)
    at.number_input(key="cls_batch").set_value(4)
    at.button(key="cls_start").click().run()
    assert_clean(at)
    run_to_end(at, "cls_run_id")
    assert_clean(at)
    acc = float(metric(at, "Test accuracy").rstrip("%"))
    base = float(metric(at, "Majority-class baseline").rstrip("%"))
    assert 0 <= acc <= 100 and 50 <= base < 100
    charts = at.get("plotly_chart")
    assert len(charts) >= 2  # curves + confusion matrix
    assert any("Misclassified test messages" in m.value for m in at.markdown)
    assert any(m.value.startswith("→ **") for m in at.markdown)  # the "type a message" prediction
    assert len(at.session_state["cls_ablation"]) == 1
    run_id = at.session_state["cls_run_id"]  # the classifier is saved as a run folder the CLI can score again
    saved = json.loads((runs / run_id / "run.json").read_text())
    assert saved["task"] == "classify" and saved["base"] == "preset:tiny:123"
    assert saved["details"]["accuracy"] * 100 == pytest.approx(acc, abs=0.06)
    assert any(f"Saved as run **{run_id}**" in c.value for c in at.caption)
    assert cached.out_head.out_features == cached.cfg.vocab_size  # the cached model is untouched
    assert torch.equal(cached.trf_blocks[-1].att.W_query.weight, w_before)
    # A browser refresh starts a new session: the run id in the URL brings the results back.
    fresh = AppTest.from_file(APP, default_timeout=120)
    fresh.run()
    fresh.switch_page("views/classify.py")
    fresh.query_params["cls_run"] = at.session_state["cls_run_id"]
    fresh.run()
    assert_clean(fresh)
    assert metric(fresh, "Test accuracy") == metric(at, "Test accuracy")


def test_classify_bad_uploads():
    at = open_page("views/classify.py")
    at.radio(key="cls_source").set_value("upload").run()
    assert_clean(at)
    upload(at, "cls_upload", "no_label.csv", b"message\nhello there\nwin a prize\n", "text/csv")
    assert not at.exception and len(at.error) == 1
    upload(at, "cls_upload", "one_label.csv", b"text,label\nhello,ham\nhi there,ham\nhey,ham\n", "text/csv")
    assert not at.exception and len(at.error) == 1 and "label" in at.error[0].value
    good = (ROOT / "tests" / "fixtures" / "upload_messages.csv").read_bytes()
    upload(at, "cls_upload", "upload_messages.csv", good, "text/csv")
    assert_clean(at)
    assert any("label column **category**" in c.value for c in at.caption)


# --- Instructions -----------------------------------------------------------------------------------------------
def test_instruct_tiny_run_end_to_end(runs):
    at = open_page("views/instruct.py")
    assert_clean(at)
    assert any("### Response:" in c.value for c in at.code)
    assert at.get("html"), "the loss-mask X-ray is missing"
    assert at.toggle(key="ins_mask").value, "a small model gets the suggested settings: prompt masked"
    assert at.number_input(key="ins_max_steps").value == 400 and at.select_slider(key="ins_lr").value == 1e-3
    masked = at.get("html")[0].proto.body
    at.toggle(key="ins_mask").set_value(False).run()
    assert_clean(at)
    assert at.get("html")[0].proto.body.count("ignored (-100)") < masked.count("ignored (-100)")
    at.number_input(key="ins_max_steps").set_value(3)
    at.number_input(key="ins_batch").set_value(2)
    at.number_input(key="ins_n_eval").set_value(2)
    at.number_input(key="ins_max_new").set_value(6)
    at.button(key="ins_start").click().run()
    assert_clean(at)
    run_to_end(at, "ins_run_id")
    assert_clean(at)
    assert metric(at, "Exact match").endswith("%")
    assert 0.0 <= float(metric(at, "Token F1")) <= 1.0
    table = at.dataframe[-1].value
    assert list(table.columns[:4]) == ["instruction", "reference", "before", "after"] and len(table) == 2
    assert at.get("download_button")
    # Saved as a run: one press makes it the active model, which every page (Generation…) then uses.
    run_id = at.session_state["ins_run_id"]
    assert (runs / run_id / "responses.json").is_file()
    at.button(key="ins_use_saved").click().run()
    assert_clean(at)
    assert at.query_params["model"] == f"run:{run_id}"


def test_instruct_bad_uploads():
    at = open_page("views/instruct.py")
    at.radio(key="ins_source").set_value("upload").run()
    assert_clean(at)
    upload(at, "ins_upload", "one.json", json.dumps({"instruction": "x", "output": "y"}).encode(), "application/json")
    assert not at.exception and len(at.error) == 1 and "list" in at.error[0].value
    upload(at, "ins_upload", "missing.json", json.dumps([{"instruction": "x"}]).encode(), "application/json")
    assert not at.exception and len(at.error) == 1 and "output" in at.error[0].value
    few = (ROOT / "tests" / "fixtures" / "upload_instructions.jsonl").read_bytes()
    upload(at, "ins_upload", "upload_instructions.jsonl", few, "application/jsonl")
    assert not at.exception and len(at.error) == 1 and "at least 3 records" in at.error[0].value
    good = "\n".join(json.dumps({"instruction": f"Say {w}.", "output": w}) for w in "abcdef").encode()
    upload(at, "ins_upload", "good.jsonl", good, "application/jsonl")
    assert_clean(at)
    assert any("### Instruction:\nSay a." in c.value for c in at.code)


def test_fine_tuning_pages_list_the_registry_and_offer_missing_downloads(tmp_path, monkeypatch):
    """The dataset pickers come from core.datasets: every dataset of the page's kind, then an upload."""
    from core.datasets import is_available, list_datasets

    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "empty"))  # nothing downloaded
    for page, kind, key in (("views/classify.py", "classification", "cls"), ("views/instruct.py", "instruction",
                                                                            "ins")):
        at = open_page(page)
        radio = at.radio(key=f"{key}_source")
        assert radio.options == [i.title for i in list_datasets(kind)] + [radio.options[-1]]
        missing = next(i for i in list_datasets(kind) if not is_available(i.name))
        radio.set_value(missing.name).run()
        assert_clean(at)
        assert at.button(key=f"{key}_download").label == f"Download {missing.title}"
