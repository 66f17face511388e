""""Download as script" on the Pretraining and Generation pages: the script prints the page's numbers and text."""

from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
import time

import pytest

from core.errors import LabError
from core.jobs import registry
from core.page_scripts import page_script, parse_printed
from tests.conftest import ROOT
from tests.script_check import open_page, page_metrics, run_script
from ui.widgets import SCRIPT_TEXT, code_key

PREFLIGHT = ["Parameters", "Training memory", "Corpus tokens", "Training windows"]


def preflight_printed(at, folder) -> dict[str, str]:
    """Run the page's pretraining script with ``--preflight`` (the figures, no training)."""
    path = folder / "exported.py"
    path.write_text(at.session_state[SCRIPT_TEXT + "pretrain"], encoding="utf-8")
    done = subprocess.run([sys.executable, str(path), "--preflight"], cwd=folder, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return parse_printed(done.stdout)


def assert_preflight_matches(at, folder) -> dict[str, str]:
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    printed, shown = preflight_printed(at, folder), page_metrics(at)
    for label in PREFLIGHT:
        assert printed.get(label) == shown[label], (label, printed.get(label), shown[label])
    assert "Train loss" not in printed  # --preflight stops before training
    return shown


def test_pretrain_preflight_matches_the_page_and_the_gpt2_panel_shows_the_mapping(runs, tmp_path):
    at = open_page("views/pretrain.py")  # the guided defaults: mini on the built-in stories
    first = assert_preflight_matches(at, tmp_path)
    assert first["Parameters"] == "13.67 M"
    at.selectbox(key="pt_preset").set_value("tiny").run()
    at.number_input(key="pt_batch").set_value(24).run()
    at.slider(key="pt_val_ratio").set_value(0.3).run()
    changed = assert_preflight_matches(at, tmp_path)
    assert changed["Training windows"] != first["Training windows"]
    assert changed["Training memory"] != first["Training memory"]
    at.radio(key="pt_split").set_value("characters").run()  # the book's §5.1 cut, by the text's characters
    assert "split='characters'" in at.session_state[SCRIPT_TEXT + "pretrain"]
    assert_preflight_matches(at, tmp_path)

    from core.hf_gpt2 import gpt2_state_from_hf, load_hf_gpt2

    key = code_key(gpt2_state_from_hf, load_hf_gpt2, label="Show the code: GPT-2's weights mapped into GPTModel "
                   "(book §5.5)")
    at.session_state[key] = True
    at.run()
    assert any("def gpt2_state_from_hf" in c.value for c in at.code), "the GPT-2 panel does not show the mapping"


def test_pretrain_tiny_run_gives_the_page_s_losses(runs, tmp_path):
    at = open_page("views/pretrain.py")
    at.selectbox(key="pt_preset").set_value("tiny").run()
    for key, value in (("pt_steps", 3), ("pt_batch", 2), ("pt_eval_every", 2), ("pt_sample_every", 2),
                       ("pt_warmup", 1)):
        at.number_input(key=key).set_value(value)
    at.run()
    script = at.session_state[SCRIPT_TEXT + "pretrain"]
    assert "make_trainer(" in script and "# §5.2 training loop" in script and "appendix D" in script
    printed = run_script(script, tmp_path)

    at.text_input(key="pt_run_id_0").set_value("t-page").run()
    at.button(key="pt_start").click().run()
    deadline = time.time() + 90
    while registry().active() and time.time() < deadline:
        time.sleep(0.5)
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    shown = page_metrics(at)
    record = json.loads((runs / "t-page" / "run.json").read_text())
    assert record["status"] == "finished", record.get("message")
    last = record["metrics"][-1]
    vals = [m["val_loss"] for m in record["metrics"] if m.get("val_loss") is not None]
    assert last["step"] == 3 and len(vals) == 3  # evaluated at steps 1, 2 and 3
    assert float(printed["Train loss (unrounded)"]) == pytest.approx(last["train_loss"], abs=1e-4)
    assert float(printed["Val loss (unrounded)"]) == pytest.approx(vals[-1], abs=1e-4)
    for label in ("Train loss", "Val loss"):  # the dashboard's format, from the script's own value
        assert printed[label] == f"{float(printed[label + ' (unrounded)']):.3f}"
        assert float(printed[label]) == pytest.approx(float(shown[label]), abs=1.1e-3), (label, shown[label])
    assert float(printed["Val loss (book's calc_loss_loader)"]) == pytest.approx(vals[-1], abs=1e-3)
    script_runs = [p for p in runs.iterdir() if p.name.endswith("-script")]
    assert len(script_runs) == 1 and (script_runs[0] / "model.safetensors").exists()


def page_texts(at) -> list[str]:
    """The plain text of the page's coloured continuations (output, greedy, your settings)."""
    bodies = [h.proto.body for h in at.get("html") if "white-space:pre-wrap" in h.proto.body]
    return [html.unescape(re.sub(r"<[^>]+>", "", b)) for b in bodies]


@pytest.mark.parametrize("changes", [
    {},  # the defaults: temperature 1, top-k 50, seed 123
    {"gen_temperature": 0.7, "gen_top_k": 0, "gen_top_p": 0.9, "gen_seed": 7, "gen_max_new": 12,
     "gen_prompt": "The river ran\nquietly"},
    {"gen_temperature": 0.0},
])
def test_generate_script_prints_the_page_s_text(changes, tmp_path):
    at = open_page("views/generate.py")
    for key, value in changes.items():
        widget = {"gen_prompt": at.text_area, "gen_top_k": at.number_input, "gen_seed": at.number_input}.get(
            key, at.slider)(key=key)
        widget.set_value(value)
    at.run()
    at.button(key="gen_go").click().run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    printed = run_script(at.session_state[SCRIPT_TEXT + "generate"], tmp_path)
    output, greedy, yours = page_texts(at)
    assert ast.literal_eval(printed["Output"]) == output == yours
    run = at.session_state["gen_result"]["run"]
    assert json.loads(printed["New token ids"]) == run.trace.new_ids
    assert any(c.value.endswith(f"with {printed['Settings']}.") for c in at.caption), printed["Settings"]
    if changes.get("gen_temperature") == 0.0:
        assert "Greedy" not in printed and greedy == output
    else:
        assert ast.literal_eval(printed["Greedy"]) == greedy != output
    assert printed["Book's generate"] == "the same tokens"


def test_bad_settings_are_one_sentence():
    from core.config import GPTConfig

    train = {"max_steps": 3}
    with pytest.raises(LabError, match="needs the setting 'source'"):
        page_script("pretrain", {"model_config": GPTConfig.preset("tiny").to_dict(), "train": train})
    with pytest.raises(LabError, match="divisible by n_heads"):
        page_script("pretrain", {"model_config": {"emb_dim": 65, "n_heads": 4}, "train": train,
                                 "source": "builtin-corpus"})
    with pytest.raises(LabError, match="lr must be a positive number"):
        page_script("pretrain", {"model_config": {}, "train": {"lr": -1}, "source": "builtin-corpus"})
    with pytest.raises(LabError, match="not one the page offers"):
        page_script("pretrain", {"model_config": {}, "train": train, "source": "nope"})
    good = {"spec": {"kind": "preset", "name": "tiny", "seed": 1}, "prompt": "Hi", "max_new_tokens": 3,
            "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 1}
    with pytest.raises(LabError, match="prompt is empty"):
        page_script("generate", {**good, "prompt": "  "})
    with pytest.raises(LabError, match="kind 'preset', 'run' or 'hf'"):
        page_script("generate", {**good, "spec": {"kind": "mystery"}})
    with pytest.raises(LabError, match="whole numbers"):
        page_script("generate", {**good, "top_k": "many"})
    hostile = 'x"""; import os; os.system("echo pwned"); """'
    script = page_script("generate", {**good, "prompt": hostile})
    assert f"PROMPT = {hostile!r}" in script
