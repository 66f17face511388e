""""Download as script" on the LoRA lab, Classification and Instructions pages: the script prints the page's
numbers (metrics, the classifier's prediction, the answers before and after fine-tuning)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from core.classify_job import ClassifySettings
from core.errors import LabError
from core.instruct_job import EMPTY, InstructSettings
from core.page_scripts import page_script
from tests.script_check import assert_script_matches_page, open_page, run_script
from tests.test_pages_finetune import run_to_end, upload
from ui.widgets import SCRIPT_TEXT

SPEC = {"kind": "preset", "name": "tiny", "seed": 123}
BOOK = "Book: GPT-2 small (2-class head), LoRA r = 16 on all linear layers"  # a colon: printed as "Book (…)"
LORA_FIGURES = ["Trainable in this layer with LoRA", "…with full fine-tuning", "max |ΔW|", "rank of ΔW",
                "…instead of full fine-tuning", "Layers wrapped", "max |LoRA − base| at init (B = 0)",
                "max |LoRA − base| with random B", "max |merged − unmerged|"]  # fmt: skip
CLASSIFY_FIGURES = ["Test accuracy", "Majority-class baseline", "Steps · examples seen", "Trainable parameters"]
INSTRUCT_FIGURES = ["Exact match", "Token F1", "Similarity (heuristic)"]


def test_lora_script_matches_page(tmp_path):
    at = open_page("views/lora.py")
    printed = assert_script_matches_page(at, "lora", tmp_path, LORA_FIGURES)
    assert printed["max |ΔW|"] == "0.00e+00" and printed["Layers wrapped"] == "13"
    shown = next(m.value for m in at.metric if m.label == BOOK)
    assert printed["Book (GPT-2 small, 2-class head, LoRA r = 16 on all linear layers)"] == shown == "2,666,528"
    layer = at.selectbox(key="lora_layer").options[5]  # another layer, rank, alpha, steps and merge targets
    at.selectbox(key="lora_layer").set_value(layer).run()
    at.number_input(key="lora_rank").set_value(3).run()
    at.number_input(key="lora_alpha").set_value(5.0).run()
    at.button(key="lora_step").click().run()
    at.button(key="lora_step").click().run()
    at.selectbox(key="lora_merge_targets").set_value("feed-forward only").run()
    printed = assert_script_matches_page(at, "lora", tmp_path, LORA_FIGURES)
    assert float(printed["max |ΔW|"]) > 0 and printed["rank of ΔW"] == "3" and printed["Layers wrapped"] == "4"
    assert printed["Step 1 gradient norms"].startswith("|∇A| 0,")  # B = 0 at the first step: A gets no gradient
    assert float(printed["max |LoRA − base| with random B"]) > 0 and float(printed["max |merged − unmerged|"]) < 1e-5
    assert run_script(at.session_state[SCRIPT_TEXT + "lora"], tmp_path) == printed  # the script repeats itself


def _prediction(at) -> str:
    shown = next(m.value for m in at.markdown if m.value.startswith("→ **"))
    return shown.removeprefix("→ **").replace("**", "", 1)


def test_classify_script_matches_page(runs, tmp_path):
    at = open_page("views/classify.py")
    at.number_input(key="cls_max_steps").set_value(4)
    at.number_input(key="cls_batch").set_value(4)
    at.selectbox(key="cls_position").set_value("last-real")
    at.button(key="cls_start").click().run()
    run_to_end(at, "cls_run_id")
    printed = assert_script_matches_page(at, "classify", tmp_path, CLASSIFY_FIGURES)
    assert printed["Prediction"] == _prediction(at)  # the same classifier: its probabilities to 0.1 %
    assert printed["Steps · examples seen"] == "4 · 16"


def test_classify_upload_script_reads_the_file_the_user_names(runs, tmp_path):
    rows = [f"{i},Lunch at {i} in the park with Sam,ham" for i in range(20)]
    rows += [f"{i + 20},WIN cash prize {i} now call 0800 {i}!,spam" for i in range(20)]
    data = ("id,message,category\n" + "\n".join(rows) + "\n").encode()
    at = open_page("views/classify.py")
    at.radio(key="cls_source").set_value("upload").run()
    upload(at, "cls_upload", "my_messages.csv", data, "text/csv")
    at.number_input(key="cls_max_steps").set_value(3)
    at.number_input(key="cls_batch").set_value(4)
    at.button(key="cls_start").click().run()
    run_to_end(at, "cls_run_id")
    script = at.session_state[SCRIPT_TEXT + "classify"]
    assert "UPLOAD_PATH = 'my_messages.csv'  # <- fill in" in script and "WIN cash" not in script
    with pytest.raises(AssertionError, match="Set UPLOAD_PATH at the top of this script"):
        run_script(script, tmp_path)  # the file is not there yet
    (tmp_path / "my_messages.csv").write_bytes(data)
    printed = assert_script_matches_page(at, "classify", tmp_path, CLASSIFY_FIGURES)
    assert printed["Prediction"] == _prediction(at)


def test_instruct_script_matches_page(runs, tmp_path):
    at = open_page("views/instruct.py")
    at.number_input(key="ins_max_steps").set_value(3)
    at.number_input(key="ins_batch").set_value(2)
    at.number_input(key="ins_n_eval").set_value(2)
    at.number_input(key="ins_max_new").set_value(6)
    at.button(key="ins_start").click().run()
    run_to_end(at, "ins_run_id")
    printed = assert_script_matches_page(at, "instruct", tmp_path, INSTRUCT_FIGURES)
    table = at.dataframe[-1].value
    for i, (before, after) in enumerate(zip(table["before"], table["after"]), 1):  # the same greedy answers
        assert printed[f"Answer {i} before"] == repr("" if before == EMPTY else before)
        assert printed[f"Answer {i} after"] == repr("" if after == EMPTY else after)
    assert printed["Steps"] == "3"


def test_bad_settings_get_one_sentence():
    lora = {"spec": SPEC, "layer": "trf_blocks.0.att.W_query", "rank": 8, "alpha": 16.0, "steps": 0,
            "merge_targets": "feed-forward only"}
    assert "RUN_MERGE_CHECK = True" in page_script("lora", lora)
    for bad, match in (({"rank": 0}, "LoRA rank"), ({"alpha": 0.0}, "Alpha"), ({"merge_targets": "x"}, "merge"),
                       ({"spec": {"kind": "zip"}}, "model spec")):
        with pytest.raises(LabError, match=match):
            page_script("lora", {**lora, **bad})
    cls = {"spec": SPEC, "settings": asdict(ClassifySettings())}
    for bad, match in (({"mode": "most"}, "fine-tuning mode"), ({"dataset": "nope"}, "data set"),
                       ({"lr": 0.0}, "learning rate"), ({"colour": 1}, "do not fit ClassifySettings"),
                       ({"dataset": "upload"}, "needs the setting 'name'")):
        with pytest.raises(LabError, match=match):
            page_script("classify", {**cls, "settings": {**cls["settings"], **bad}})
    with pytest.raises(LabError, match="test examples"):
        page_script("instruct", {"spec": SPEC, "settings": asdict(InstructSettings(n_eval=0))})


def test_upload_names_and_messages_stay_data():
    hostile = 'x.json\nimport os; os.system("echo pwned")\n'
    script = page_script("instruct", {"spec": {"kind": "run", "run_id": "r1", "runs_dir": "runs"},
                                      "settings": asdict(InstructSettings(dataset="upload")),
                                      "upload": {"name": hostile}})
    assert "\nimport os" not in script
    assert f"'runs_dir': {str(Path('runs').resolve())!r}" in script  # found from any folder the script runs in
    script = page_script("classify", {"spec": SPEC, "settings": asdict(ClassifySettings()),
                                      "message": 'hi"""\nimport os'})
    namespace: dict = {}
    exec(compile(script.split("from core.model_spec", 1)[0], "s", "exec"), namespace)  # the settings part
    assert namespace["MESSAGE"] == 'hi"""\nimport os' and namespace["SETTINGS"]["dataset"] == "builtin-spam"
