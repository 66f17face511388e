"""``python -m core classify | instruct | lora``: the pages' jobs from a terminal, saved as run folders."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch.distributed as dist

from core.cli import main
from tests.conftest import ROOT

FAST = ["--max-steps", "6", "--eval-every", "3", "--batch-size", "8", "--quiet"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _accuracy(text: str) -> float:
    return float(re.search(r"test accuracy ([\d.]+)%", text).group(1))


def test_classify_train_evaluate_predict_and_list(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    code, out, err = _run(capsys, "classify", "train", *FAST, "--run-id", "c1", "--runs-dir", runs)
    assert code == 0, err
    trained = _accuracy(out)
    assert (tmp_path / "runs" / "c1" / "model.safetensors").is_file()
    record = json.loads((tmp_path / "runs" / "c1" / "run.json").read_text())
    assert record["task"] == "classify" and record["base"] == "preset:tiny:123" and record["step"] == 6
    assert abs(record["details"]["accuracy"] * 100 - trained) < 0.05
    code, out, _ = _run(capsys, "classify", "evaluate", "--run-id", "c1", "--runs-dir", runs)
    assert code == 0 and abs(_accuracy(out) - trained) < 0.05  # the saved classifier gives the same score
    code, out, _ = _run(capsys, "classify", "predict", "--run-id", "c1", "--runs-dir", runs, "--text", "hello")
    assert code == 0 and out.split("\t")[0] in ("ham", "spam")
    code, out, _ = _run(capsys, "runs", "--runs-dir", runs)
    assert re.search(r"c1\s+classify\s+finished\s+6/1?6?", out), out
    code, _, err = _run(capsys, "generate", "--run-id", "c1", "--runs-dir", runs)
    assert code == 2 and "classifier" in err and "Traceback" not in err


def test_a_fine_tuned_run_never_overwrites_a_run(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    code, _, err = _run(capsys, "pretrain", "--preset", "tiny", "--steps", "2", "--run-id", "p1",
                        "--runs-dir", runs, "--quiet")
    assert code == 0, err
    before = {f.name: f.read_bytes() for f in (tmp_path / "runs" / "p1").iterdir() if f.is_file()}
    for task in ("classify", "instruct"):
        code, out, err = _run(capsys, task, "train", "--max-steps", "2", "--quiet", "--run-id", "p1",
                              "--runs-dir", runs)  # fmt: skip
        assert code == 2 and "A run named p1 already exists" in err and "Traceback" not in err, err
    after = {f.name: f.read_bytes() for f in (tmp_path / "runs" / "p1").iterdir() if f.is_file()}
    assert after == before


def test_cli_and_page_job_give_the_same_numbers(tmp_path, capsys):
    from core.classify_job import ClassifySettings, start_classify_job
    from core.datasets import load_classification
    from core.jobs import JobRegistry
    from core.model_spec import build_model
    from core.tokenizers import get_tokenizer

    code, out, err = _run(capsys, "classify", "train", *FAST, "--run-id", "c2", "--runs-dir", str(tmp_path))
    assert code == 0, err
    cli = json.loads((tmp_path / "c2" / "run.json").read_text())
    model = build_model({"kind": "preset", "name": "tiny", "seed": 123})
    job = start_classify_job(model, get_tokenizer("gpt2"), load_classification("builtin-spam"),
                             ClassifySettings(max_steps=6, eval_every=3, batch_size=8), jobs=JobRegistry())
    assert job.wait(120)
    page = job.result
    assert [r["train_loss"] for r in page.records] == pytest.approx([m["train_loss"] for m in cli["metrics"]],
                                                                    abs=1e-6)
    assert page.details["evaluation"]["accuracy"] == pytest.approx(cli["details"]["accuracy"])


def test_instruct_train_generate_score(tmp_path, capsys):
    from core.lab_state import parse_spec_param
    from core.train_plan import resume_spec

    runs, answers = str(tmp_path / "runs"), tmp_path / "a.json"
    code, out, err = _run(capsys, "instruct", "train", "--max-steps", "4", "--eval-every", "2", "--n-eval", "2",
                          "--max-new-tokens", "6", "--quiet", "--run-id", "i1", "--runs-dir", runs, "--json",
                          str(answers))  # fmt: skip
    assert code == 0, err
    assert "before fine-tuning: exact match" in out and "after  fine-tuning" in out
    saved = json.loads(answers.read_text())
    assert len(saved) == 2 and all("model_response" in r for r in saved)
    assert json.loads((tmp_path / "runs" / "i1" / "responses.json").read_text()) == saved
    code, out, _ = _run(capsys, "instruct", "score", "--responses", str(answers))
    assert code == 0 and "over 2 responses" in out
    code, out, err = _run(capsys, "generate", "--run-id", "i1", "--runs-dir", runs, "--max-new-tokens", "3")
    assert code == 0 and out.startswith("Every effort moves you"), err
    assert parse_spec_param("run:i1", None, runs)["run_id"] == "i1"  # the app's picker can use it
    with pytest.raises(Exception, match="not a pretraining run"):
        resume_spec(tmp_path / "runs" / "i1")


def test_a_classifier_cannot_be_the_active_model(tmp_path, capsys):
    from core.errors import LabError
    from core.lab_state import parse_spec_param

    assert _run(capsys, "classify", "train", *FAST, "--run-id", "c3", "--runs-dir", str(tmp_path))[0] == 0
    with pytest.raises(LabError, match="is a classifier"):
        parse_spec_param("run:c3", None, tmp_path)


@pytest.mark.parametrize("argv, expected", [
    (["classify", "train", "--data", "no-such-set"], "There is no data set or file called no-such-set"),
    (["classify", "train", "--data", "the-verdict"], "is not a classification data set"),
    (["classify", "train", "--base", "huge-model"], "is not available here"),
    (["classify", "train", "--max-steps", "0"], "max_steps"),
    (["classify", "predict", "--run-id", "nope", "--text", "x"], "nope"),
    (["instruct", "train", "--data", "builtin-spam"], "is not an instruction data set"),
    (["instruct", "score", "--responses", "missing.json"], "There is no data set or file called"),
    (["lora", "counts", "--classes", "1"], "--classes"),
])  # fmt: skip
def test_bad_input_is_one_sentence(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, *argv)
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert err.count("\n") == 1


def test_lora_counts_and_merge(capsys):
    code, out, _ = _run(capsys, "lora", "counts", "--qkv-bias", "--classes", "2")
    assert code == 0 and "2,666,528" in out  # the book's appendix E figure
    code, out, _ = _run(capsys, "lora", "merge", "--rank", "4")
    assert code == 0
    init = float(re.search(r"at init \(B = 0\):\s+(\S+)", out).group(1))
    merged = float(re.search(r"rounding only\):\s+(\S+)", out).group(1))
    assert init == 0 and merged < 1e-4


@pytest.mark.slow
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
def test_torchrun_classify_matches_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    base = [*FAST, "--runs-dir", str(tmp_path)]
    one = subprocess.run([sys.executable, "-m", "core", "classify", "train", *base, "--run-id", "one"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                          "core", "classify", "train", *base, "--run-id", "two"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / r / "run.json").read_text()) for r in ("one", "two"))
    assert [m["train_loss"] for m in b["metrics"]] == pytest.approx([m["train_loss"] for m in a["metrics"]], abs=1e-5)
    assert b["details"]["accuracy"] == pytest.approx(a["details"]["accuracy"])
    assert two.stdout.count("saved ") == 1  # only rank 0 prints and writes
