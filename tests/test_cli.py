"""python -m core: pretrain/generate/export/runs from a terminal, page ↔ CLI equality, torchrun (DDP) equality."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch.distributed as dist

from core.cli import ProgressBar, main
from core.config import GPTConfig
from core.jobs import JobRegistry, start_training_job
from core.tokenizers import get_tokenizer
from core.train import MetricRecord, TrainSettings
from tests.conftest import ROOT
from tests.test_train import SENTENCES

# A GPT-2-vocabulary model small enough for a few steps per second on 2 CPU cores.
MODEL_FLAGS = ["--preset", "tiny", "--context-length", "16", "--emb-dim", "16", "--n-heads", "2", "--n-layers", "1"]
TRAIN_FLAGS = ["--steps", "4", "--batch-size", "4", "--eval-every", "2", "--eval-batches", "4", "--sample-every", "0",
               "--lr", "1e-3", "--warmup", "1", "--seed", "7", "--device", "cpu"]  # fmt: skip
CFG = GPTConfig.preset("tiny", context_length=16, emb_dim=16, n_heads=2, n_layers=1)
SETTINGS = TrainSettings(max_steps=4, batch_size=4, eval_every=2, eval_batches=4, sample_every=0, lr=1e-3,
                         warmup_steps=1, seed=7, device="cpu")  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _cli(*args: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def _losses(run_dir) -> list[tuple[int, float, float | None]]:
    data = json.loads((run_dir / "run.json").read_text())
    assert data["status"] == "finished", data["message"]
    return [(m["step"], m["train_loss"], m["val_loss"]) for m in data["metrics"]]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A corpus file, one CLI run and the same run through the app's job helper."""
    root = tmp_path_factory.mktemp("cli")
    text = " ".join(SENTENCES[(i * 7) % 4] + f" Day {i}." for i in range(300))
    (root / "corpus.txt").write_text(text, encoding="utf-8")
    out = _cli("pretrain", *MODEL_FLAGS, *TRAIN_FLAGS, "--corpus", "corpus.txt", "--run-id", "cli", cwd=root)
    assert out.returncode == 0, out.stderr
    tok = get_tokenizer("gpt2")
    job = start_training_job(CFG, SETTINGS, tok.encode(text), runs_dir=root / "runs", run_id="page",
                             tokenizer=tok, jobs=JobRegistry())  # fmt: skip
    assert job.wait(120) and job.status == "finished", job.message
    return root, out


def test_pretrain_writes_the_run_folder(workspace):
    root, out = workspace
    run = root / "runs" / "cli"
    assert {p.name for p in run.iterdir()} == {"model.safetensors", "optimizer.safetensors", "run.json",
                                               "trainer_state.json"}
    data = json.loads((run / "run.json").read_text())
    assert data["model_config"]["emb_dim"] == 16 and data["settings"]["max_steps"] == 4
    assert data["corpus"]["source"] == str(root / "corpus.txt") and data["checkpoint_step"] == 4
    assert "Finished 4 steps" in out.stdout and "Traceback" not in out.stderr


def test_page_and_cli_give_the_same_loss_curve(workspace):
    root, _ = workspace
    cli, page = _losses(root / "runs" / "cli"), _losses(root / "runs" / "page")
    assert [s for s, _, _ in cli] == [1, 2, 3, 4]
    assert cli == page  # exactly equal, not approximately


def test_generate_export_and_runs(workspace):
    root, _ = workspace
    out = _cli("generate", "--run-id", "cli", "--prompt", "The baker", "--max-new-tokens", "5", cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The baker") and len(out.stdout.strip()) > len("The baker")
    assert main(["export", "--checkpoint", str(root / "runs" / "cli" / "model.safetensors"),
                 "--out", str(root / "hf")]) == 0  # fmt: skip
    assert (root / "hf" / "config.json").exists() and (root / "hf" / "model.safetensors").exists()
    assert main(["runs", "--runs-dir", str(root / "runs")]) == 0


def test_resume_continues_a_cli_run(workspace, capsys):
    root, _ = workspace
    runs_dir = str(root / "runs")
    shutil.copytree(root / "runs" / "page", root / "runs" / "again")  # leave "page" as the other tests expect
    assert main(["pretrain", "--resume", "--run-id", "again", "--runs-dir", runs_dir, "--corpus",
                 str(root / "corpus.txt"), "--steps", "5", "--quiet"]) == 0  # fmt: skip
    data = json.loads((root / "runs" / "again" / "run.json").read_text())
    assert [m["step"] for m in data["metrics"]] == [1, 2, 3, 4, 5] and data["checkpoint_step"] == 5
    assert "Finished 5 steps" in capsys.readouterr().out


def test_pretrain_without_corpus_trains_on_the_built_in_stories(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["pretrain", "--preset", "tiny", "--context-length", "16", "--emb-dim", "16", "--n-layers", "1",
                 "--n-heads", "2", "--steps", "2", "--batch-size", "2", "--runs-dir", str(runs), "--run-id", "b",
                 "--quiet"]) == 0
    assert json.loads((runs / "b" / "run.json").read_text())["corpus"]["source"] == "builtin-corpus"


def test_pretrain_split_characters_cuts_the_text_as_the_book_and_resumes_with_it(tmp_path, capsys):
    from core.datasets import load_corpus
    from core.tokenizers import get_tokenizer
    from core.train_data import split_corpus

    runs = tmp_path / "runs"
    small = ["--preset", "tiny", "--context-length", "16", "--emb-dim", "16", "--n-layers", "1", "--n-heads", "2",
             "--batch-size", "2", "--runs-dir", str(runs), "--run-id", "c", "--quiet"]
    assert main(["pretrain", *small, "--steps", "2", "--split", "characters"]) == 0
    record = json.loads((runs / "c" / "run.json").read_text())
    book = split_corpus(load_corpus("builtin-corpus"), get_tokenizer("gpt2"), 0.1, "characters")
    assert record["settings"]["split"] == "characters"
    assert (record["corpus"]["train_tokens"], record["corpus"]["val_tokens"]) == book.sizes
    assert book.sizes != split_corpus(load_corpus("builtin-corpus"), get_tokenizer("gpt2"), 0.1).sizes
    assert main(["pretrain", "--resume", "--run-id", "c", "--runs-dir", str(runs), "--steps", "3", "--quiet"]) == 0
    assert json.loads((runs / "c" / "run.json").read_text())["checkpoint_step"] == 3  # the same corpus, recognised


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["pretrain", "--steps", "x"], "invalid int value: 'x'"),
        (["pretrain", "--corpus", "c.txt", "--steps", "0"], "max_steps must be a positive whole number, got 0"),
        (["pretrain", "--corpus", "/no/such/file.txt"], "no corpus file at /no/such/file.txt"),
        (["pretrain", "--corpus", "c.txt", "--preset", "huge"], "Unknown preset 'huge'"),
        (["pretrain", "--resume", "--corpus", "c.txt"], "--resume needs --run-id"),
        (["generate", "--run-id", "../etc"], "run id '../etc' is not allowed"),
        (["generate"], "One of the arguments --checkpoint --run-id is required"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["pretrain", "--corpus", "c.txt", "--seed", "18446744073709551616"], "seed must be at most"),
        (["pretrain", "--corpus", "c.txt", "--config", "deep.json"], "is not readable JSON (it is nested far too"),
        (["pretrain", "--corpus", "c.txt", "--config", "list.json"], "must hold a JSON object"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_sentence(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.txt").write_text("tiny")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("name, value", [("RANK", "two"), ("WORLD_SIZE", "-3"), ("RANK", "9" * 5000)])
def test_bad_torchrun_variables_are_one_sentence(name, value, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    assert main(["pretrain", "--corpus", "builtin", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: The environment variable {name}=") and "\n" not in err and len(err) < 300


def test_bad_arguments_in_a_real_process(tmp_path):
    out = _cli("pretrain", "--batch-size", "many", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    err = out.stderr.strip()
    assert err.startswith("error: Argument --batch-size: invalid int value") and "\n" not in err


def test_progress_bar_line():
    class Stream:
        text = ""

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Stream()
    bar = ProgressBar(10, enabled=True, stream=stream)
    rec = MetricRecord(step=5, epoch=1, tokens_seen=80, train_loss=4.25, val_loss=4.5, perplexity=70.1,
                       val_perplexity=90.0, lr=1e-3, grad_norm=1.0, tokens_per_s=1234.0, elapsed_s=1.0)  # fmt: skip
    bar.update(rec)
    line = stream.text.strip()
    assert line.startswith("step 5/10 ") and "loss 4.250 val 4.500" in line and "1,234 tok/s" in line
    assert "ETA" in line


@pytest.mark.slow
@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
def test_torchrun_two_processes_match_one(workspace):
    root, _ = workspace
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "core",
           "pretrain", *MODEL_FLAGS, *TRAIN_FLAGS, "--corpus", "corpus.txt", "--run-id", "ddp", "--quiet"]  # fmt: skip
    out = subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    ddp, single = _losses(root / "runs" / "ddp"), _losses(root / "runs" / "cli")
    assert [s for s, _, _ in ddp] == [s for s, _, _ in single]
    for (_, loss_d, val_d), (_, loss_s, val_s) in zip(ddp, single):
        assert abs(loss_d - loss_s) < 1e-5
        assert (val_d is None) == (val_s is None) and (val_d is None or abs(val_d - val_s) < 1e-5)
    data = json.loads((root / "runs" / "ddp" / "run.json").read_text())
    assert data["world_size"] == 2
    assert out.stdout.count("Finished 4 steps") == 1  # only rank 0 prints
