"""core.hf_export: a run as a zip that transformers loads with the same logits; its one-sentence refusals."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import zipfile

import pytest
import torch
import transformers

import core.hf_export
from core.access import new_visitor_token, owner_tag
from core.checkpoint import load
from core.config import GPTConfig
from core.errors import LabError
from core.hf_export import hf_export_zip
from core.jobs import JobRegistry, start_training_job
from core.limits import Limits
from core.runs import RUN_FORMAT
from core.tokenizers import get_tokenizer
from core.train import TrainSettings
from tests.test_train import SENTENCES

# A GPT-2-vocabulary model small enough to train a few steps in about a second (as in tests/test_cli.py).
CFG = GPTConfig.preset("tiny", context_length=16, emb_dim=16, n_heads=2, n_layers=1)
SETTINGS = TrainSettings(max_steps=4, batch_size=4, eval_every=2, eval_batches=2, sample_every=0, lr=1e-3,
                         warmup_steps=1, seed=7, device="cpu")  # fmt: skip
OWNER = new_visitor_token()
FILES = ["t-export-hf-gpt2/config.json", "t-export-hf-gpt2/model.safetensors", "t-export-hf-gpt2/README.md"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One finished tiny run, started by the visitor OWNER (which matters only in the hosted demo)."""
    runs = tmp_path_factory.mktemp("hf-export") / "runs"
    text = " ".join(SENTENCES[(i * 7) % 4] + f" Day {i}." for i in range(300))
    tok = get_tokenizer("gpt2")
    job = start_training_job(CFG, SETTINGS, tok.encode(text), runs_dir=runs, run_id="t-export", tokenizer=tok,
                             jobs=JobRegistry(), owner=owner_tag(OWNER))  # fmt: skip
    assert job.wait(120) and job.status == "finished", job.message
    return runs / "t-export"


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setenv("LLMLAB_DEMO", "1")


@pytest.fixture(autouse=True)
def no_demo(monkeypatch):
    monkeypatch.delenv("LLMLAB_DEMO", raising=False)


def one_sentence(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text.endswith(".") and "\n" not in text and "Traceback" not in text, text
    return text


def test_the_zip_loads_in_transformers_with_the_same_logits(run_dir, tmp_path):
    data, name = hf_export_zip(run_dir)
    assert name == "t-export-hf-gpt2.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == FILES
        zf.extractall(tmp_path)
    folder = tmp_path / "t-export-hf-gpt2"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == 16 and config["n_positions"] == 16
    readme = (folder / "README.md").read_text()
    assert 'GPT2LMHeadModel.from_pretrained("t-export-hf-gpt2")' in readme
    assert 'AutoTokenizer.from_pretrained("gpt2")' in readme and "GPT-2's tokenizer" in readme
    assert "at step 4" in readme and "1 block," in readme

    hf_model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ours = load(run_dir / "model.safetensors").model
    ids = torch.tensor([[15496, 11, 466, 345, 588, 50256], [40, 1101, 257, 3797, 13, 0]])
    with torch.no_grad():
        theirs, mine = hf_model(ids).logits, ours(ids)
    assert theirs.shape == mine.shape == (2, 6, 50257)
    assert torch.allclose(theirs, mine, atol=1e-4), (theirs - mine).abs().max()


def test_in_the_demo_the_starter_may_export_and_nobody_else(run_dir, demo):
    data, name = hf_export_zip(run_dir, visitor=OWNER)
    assert name == "t-export-hf-gpt2.zip" and zipfile.ZipFile(io.BytesIO(data)).namelist() == FILES
    for stranger in (new_visitor_token(), None):
        with pytest.raises(LabError) as err:
            hf_export_zip(run_dir, visitor=stranger)
        assert "belongs to another visitor of this demo" in one_sentence(err)


def test_the_demo_caps_the_size_before_reading_any_weight(run_dir, demo, monkeypatch):
    small = dataclasses.replace(Limits.hosted(), max_params=1_000_000)
    monkeypatch.setattr(core.hf_export, "current_limits", lambda: small)
    monkeypatch.setattr("core.checkpoint.load", lambda *a, **k: pytest.fail("the weights were read"))
    with pytest.raises(LabError) as err:
        hf_export_zip(run_dir, visitor=OWNER)
    text = one_sentence(err)
    assert "has 1.6 M parameters and the hosted demo exports at most 1 M" in text and "python -m core export" in text
    monkeypatch.delenv("LLMLAB_DEMO")
    core.hf_export.check_export_size(10**9, Limits.local())  # no cap on your own machine


def test_no_checkpoint_a_damaged_run_a_damaged_checkpoint_and_a_classifier_are_one_sentence(run_dir, tmp_path):
    fresh = tmp_path / "runs" / "t-fresh"
    fresh.mkdir(parents=True)
    record = {"format": RUN_FORMAT, "run_id": "t-fresh", "status": "running", "created": "2026-01-01T00:00:00",
              "model_config": CFG.to_dict(), "settings": SETTINGS.to_dict(), "metrics": [], "samples": [],
              "checkpoint_step": None}  # fmt: skip
    (fresh / "run.json").write_text(json.dumps(record))
    with pytest.raises(LabError) as err:
        hf_export_zip(fresh)
    assert one_sentence(err) == ("Run 't-fresh' has no checkpoint yet; export it once training has saved one (at "
                                 "its first evaluation).")

    (fresh / "run.json").write_text("{")
    with pytest.raises(LabError) as err:
        hf_export_zip(fresh)
    assert one_sentence(err).startswith("Run 't-fresh' cannot be exported because it is damaged: ")

    cut = tmp_path / "runs" / "t-cut"
    shutil.copytree(run_dir, cut)
    model = cut / "model.safetensors"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(LabError) as err:
        hf_export_zip(cut)
    assert one_sentence(err).startswith("The checkpoint of run 't-cut' cannot be exported: ")

    classifier = tmp_path / "runs" / "t-classify"
    shutil.copytree(run_dir, classifier)
    record = json.loads((classifier / "run.json").read_text())
    (classifier / "run.json").write_text(json.dumps({**record, "run_id": "t-classify", "task": "classify"}))
    with pytest.raises(LabError) as err:
        hf_export_zip(classifier)
    assert one_sentence(err).startswith("Run 't-classify' is a classifier, whose class head GPT-2's")

    with pytest.raises(LabError, match="is not allowed"):
        hf_export_zip(tmp_path / "runs" / "..")
