"""core.train and core.runs: settings, schedule, data order, loss, exact resume, NaN guard, crash-safe files."""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from core import runs, train_memory
from core import train as train_mod
from core.checkpoint import load
from core.config import GPTConfig
from core.errors import LabError
from core.model import GPTModel, count_parameters
from core.train import (
    Trainer,
    TrainSettings,
    batch_indices,
    calc_loss_batch,
    calc_loss_loader,
    calc_loss_windows,
    estimate_training_memory,
    list_runs,
    lr_at,
    probe_speed,
    probe_speeds,
    split_token_ids,
)
from tests.conftest import ROOT

SENTENCES = [
    "The lighthouse keeper counts the ships at dusk.",
    "The baker counts the loaves at dawn.",
    "A river carries small boats past the old mill.",
    "Every lantern on the pier is lit before the rain.",
]


def corpus_ids(repeats: int = 40) -> torch.Tensor:
    """A small, repetitive, original text as byte ids (vocab 256): fast to learn, deterministic."""
    parts = []
    for i in range(repeats):
        for j, sentence in enumerate(SENTENCES):
            parts.append(sentence if (i + j) % 3 else sentence.replace("the", "a"))
    return torch.tensor(list(" ".join(parts).encode("utf-8")))


CFG = GPTConfig(vocab_size=256, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


def settings(**kw) -> TrainSettings:
    base = dict(max_steps=8, batch_size=4, warmup_steps=2, eval_every=4, eval_batches=2, device="cpu", lr=3e-3)
    base.update(kw)
    return TrainSettings(**base)


# ------------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "bad",
    [
        {"device": "cuda:x"}, {"max_steps": 0}, {"batch_size": 2.5}, {"lr": -1.0}, {"lr": float("nan")},
        {"val_ratio": 1.0}, {"min_lr_ratio": 2.0}, {"grad_clip": 0.0}, {"device": "tpu"}, {"precision": "fp8"},
        {"eval_every": 0}, {"context_length": 0}, {"warmup_steps": True},
    ],
)  # fmt: skip
def test_bad_settings_raise_one_sentence(bad):
    with pytest.raises(LabError) as info:
        TrainSettings(**bad)
    msg = str(info.value)
    assert msg.endswith(".") and msg.count(". ") == 0


def test_settings_round_trip_and_unknown_keys():
    s = settings(seed=7)
    assert TrainSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(LabError, match="Unknown training setting"):
        TrainSettings.from_dict({"max_step": 3})


def test_lr_schedule_warmup_peak_cosine_min():
    s = TrainSettings(max_steps=110, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    warm = [lr_at(i, s) for i in range(1, 11)]
    assert warm == pytest.approx([1e-4 * i for i in range(1, 11)])  # linear, peak exactly at the warmup end
    assert lr_at(10, s) == pytest.approx(1e-3)
    assert lr_at(60, s) == pytest.approx(0.5 * (1e-3 + 1e-4))  # halfway through the cosine: the mean
    assert lr_at(110, s) == pytest.approx(1e-4)
    assert lr_at(500, s) == pytest.approx(1e-4)
    decay = [lr_at(i, s) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # monotone down
    assert lr_at(0, s) == 0.0
    flat = TrainSettings(max_steps=5, lr=4e-4, warmup_steps=0, min_lr_ratio=1.0)
    assert [lr_at(i, flat) for i in range(6)] == pytest.approx([4e-4] * 6)  # chapter 5: constant


# ------------------------------------------------------------------------------------------------ data
def test_split_before_windowing_and_short_splits():
    train, val = split_token_ids(torch.arange(100), 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    with pytest.raises(LabError) as info:
        Trainer(CFG, settings(val_ratio=0.1), torch.arange(200) % 256)
    msg = str(info.value)
    assert "The validation split has 20 tokens but needs at least context_length + 1 = 33" in msg
    assert "larger validation ratio" in msg
    with pytest.raises(LabError, match="training split has 20 tokens"):
        Trainer(CFG, settings(val_ratio=0.9), torch.arange(200) % 256)
    with pytest.raises(LabError, match="only 1 window but batch_size is 4"):
        Trainer(CFG, settings(val_ratio=0.4), torch.arange(100) % 256)
    with pytest.raises(LabError, match="vocabulary has only 256"):
        Trainer(CFG, settings(), torch.arange(2000))
    with pytest.raises(LabError, match="longer than the model's 32 positions"):
        Trainer(CFG, settings(context_length=64), corpus_ids())


def test_batch_order_is_a_function_of_seed_and_step():
    n, b = 10, 3  # 3 full batches per epoch, one window left over each epoch (drop_last)
    first = [batch_indices(s, n, b, seed=5).tolist() for s in range(6)]
    assert first == [batch_indices(s, n, b, seed=5).tolist() for s in range(6)]
    epoch0 = sum(first[:3], [])
    assert len(set(epoch0)) == 9 and all(0 <= i < n for i in epoch0)  # a permutation, no repeats in an epoch
    assert sum(first[3:], []) != epoch0  # a new order each epoch
    assert batch_indices(0, n, b, seed=6).tolist() != first[0]


def test_calc_loss_loader_matches_batches():
    torch.manual_seed(0)
    model = GPTModel(CFG).eval()
    x = torch.randint(0, 256, (5, 8))
    y = torch.randint(0, 256, (5, 8))
    per_batch = [calc_loss_batch(x[i : i + 2], y[i : i + 2], model, "cpu").item() for i in (0, 2, 4)]
    assert calc_loss_windows(model, x, y, batch_size=2) == pytest.approx(sum(per_batch) / 3)
    assert calc_loss_windows(model, x, y, batch_size=2, max_batches=1) == pytest.approx(per_batch[0])
    assert math.isnan(calc_loss_windows(model, x[:0], y[:0], batch_size=2))
    # The book's calc_loss_loader(data_loader, model, device, num_batches) over a loader of the same batches.
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=2)
    assert calc_loss_loader(loader, model, "cpu") == pytest.approx(sum(per_batch) / 3)
    assert calc_loss_loader(loader, model, "cpu", num_batches=1) == pytest.approx(per_batch[0])
    assert calc_loss_loader(loader, model, "cpu", num_batches=99) == pytest.approx(sum(per_batch) / 3)
    assert math.isnan(calc_loss_loader([], model, "cpu"))


# --------------------------------------------------------------------------------------------- training
def test_loss_starts_at_ln_vocab_and_drops(tmp_path):
    ids = corpus_ids()
    trainer = Trainer(CFG, settings(max_steps=60, batch_size=8, eval_every=30, warmup_steps=5, lr=1e-2), ids)
    with torch.no_grad():
        start = calc_loss_windows(trainer.model.eval(), trainer.val_x, trainer.val_y, 8)
    assert abs(start - math.log(256)) < 0.1  # small random init: every byte about equally likely
    result = trainer.run()
    assert result.status == "finished" and result.step == 60 and len(result.records) == 60
    assert [r.step for r in result.records if r.val_loss is not None] == [1, 30, 60]
    assert result.records[-1].train_loss < 2.5 and result.final_val_loss < 2.5
    rec = result.records[-1]
    assert rec.tokens_seen == 60 * 8 * 32 and rec.epoch >= 1 and rec.tokens_per_s > 0
    assert rec.perplexity == pytest.approx(math.exp(rec.train_loss))


def test_same_seed_same_curve_different_seed_differs():
    def curve(seed):
        return [r.train_loss for r in Trainer(CFG, settings(seed=seed), corpus_ids()).run().records]

    assert curve(1) == curve(1)
    assert curve(1) != curve(2)


def _state(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}, trainer.optimizer.state_dict()


def test_exact_resume_equals_uninterrupted(tmp_path):
    cfg = CFG.replace(drop_rate=0.1)  # dropout draws from the global RNG, so its state must be restored too
    s = settings(max_steps=8, eval_every=3, checkpoint_every=0, sample_every=0)
    ids = corpus_ids()
    full = Trainer(cfg, s, ids, run_dir=tmp_path / "full")
    full_losses = [r.train_loss for r in full.run().records]

    first = Trainer(cfg, s, ids, run_dir=tmp_path / "split")
    stop = threading.Event()
    result = first.run(on_record=lambda r: stop.set() if r.step == 4 else None, stop_event=stop)
    assert result.status == "stopped" and result.step == 4 and result.checkpoint_step == 4
    assert "Stopped at step 4 of 8" in result.message
    assert load(tmp_path / "split" / "model.safetensors").extra["step"] == 4
    torch.manual_seed(999)  # whatever happens to the global RNG in between must not matter
    second = Trainer.resume(tmp_path / "split", ids)
    rest = second.run()
    assert rest.status == "finished" and [r.step for r in rest.records] == [5, 6, 7, 8]
    assert [r.train_loss for r in result.records + rest.records] == full_losses

    (w_full, o_full), (w_split, o_split) = _state(full), _state(second)
    assert w_full.keys() == w_split.keys() and all(torch.equal(w_full[k], w_split[k]) for k in w_full)
    for i, st in o_full["state"].items():
        for key, value in st.items():
            assert torch.equal(value, o_split["state"][i][key]), (i, key)
    data = json.loads((tmp_path / "split" / "run.json").read_text())
    assert [m["step"] for m in data["metrics"]] == list(range(1, 9)) and data["status"] == "finished"


def test_closing_the_generator_stops_with_a_checkpoint(tmp_path):
    trainer = Trainer(CFG, settings(max_steps=8, checkpoint_every=0), corpus_ids(), run_dir=tmp_path / "g")
    records = trainer.iter_records()
    assert [next(records).step, next(records).step] == [1, 2]
    records.close()
    assert trainer.status == "stopped" and trainer.checkpoint_step == 2
    assert json.loads((tmp_path / "g" / "run.json").read_text())["status"] == "stopped"
    with pytest.raises(LabError, match="already run"):
        next(trainer.iter_records())


def test_unexpected_errors_mark_the_run_failed(tmp_path, monkeypatch):
    trainer = Trainer(CFG, settings(), corpus_ids(), run_dir=tmp_path / "f")

    def boom(*args, **kwargs):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(train_mod, "calc_loss_batch", boom)
    with pytest.raises(RuntimeError):
        trainer.run()
    data = json.loads((tmp_path / "f" / "run.json").read_text())
    assert data["status"] == "failed" and data["message"] == "Training failed: RuntimeError: out of cheese"
    assert {r.run_id: r.status for r in list_runs(tmp_path)} == {"f": "failed"}


def test_existing_run_needs_resume_and_same_corpus(tmp_path):
    ids = corpus_ids()
    Trainer(CFG, settings(max_steps=2), ids, run_dir=tmp_path / "r").run()
    with pytest.raises(LabError, match="already exists"):
        Trainer(CFG, settings(max_steps=2), ids, run_dir=tmp_path / "r")
    with pytest.raises(LabError, match="corpus differs"):
        Trainer.resume(tmp_path / "r", ids[:-1], max_steps=4)
    with pytest.raises(LabError, match="another model configuration"):
        Trainer(CFG.replace(emb_dim=64), settings(max_steps=4), ids, run_dir=tmp_path / "r", resume=True)


def test_nan_loss_diverges_and_keeps_last_good_checkpoint(tmp_path):
    ids, run = corpus_ids(), tmp_path / "nan"
    good = Trainer(CFG, settings(max_steps=4, checkpoint_every=2), ids, run_dir=run).run()
    assert good.status == "finished"
    before = (run / "model.safetensors").read_bytes()
    bad = Trainer.resume(run, ids, max_steps=40, lr=1e4, checkpoint_every=0)
    result = bad.run()
    assert result.status == "diverged"
    # lr=1e4 blows up within a step or two of the resume at step 4; whether the loss or the gradient norm turns
    # non-finite first (and at step 5, 6 or 7) depends on the CPU's float kernels, so the step is a range.
    found = re.search(r"(loss|gradient norm) became (NaN|infinite) at step (\d+)", result.message)
    assert found and 5 <= int(found.group(3)) <= 8, result.message
    assert "the learning rate 10000 is too high; lower it (try 0.0004) and resume from the last good " \
           "checkpoint at step 4." in result.message
    assert result.checkpoint_step == 4
    assert (run / "model.safetensors").read_bytes() == before  # never overwritten
    ckpt = load(run / "model.safetensors")
    assert ckpt.extra["step"] == 4 and all(torch.isfinite(p).all() for p in ckpt.model.parameters())
    data = json.loads((run / "run.json").read_text())
    assert data["status"] == "diverged" and data["message"] == result.message


def test_non_finite_weights_are_never_saved(tmp_path):
    ids, run = corpus_ids(), tmp_path / "w"
    trainer = Trainer(CFG, settings(max_steps=2), ids, run_dir=run)
    trainer.run()
    before = (run / "model.safetensors").read_bytes()
    with torch.no_grad():
        trainer.model.tok_emb.weight[0, 0] = float("inf")
    assert trainer._save() is False and trainer.status == "diverged"
    assert (run / "model.safetensors").read_bytes() == before


def test_bf16_autocast_trains_or_falls_back():
    result = Trainer(CFG, settings(max_steps=2, precision="bf16-autocast"), corpus_ids()).run()
    assert result.status == "finished" and all(math.isfinite(r.train_loss) for r in result.records)


def test_samples_use_the_tokenizer():
    class Bytes:
        name = "bytes"

        def encode(self, text, allowed_special=None):
            return list(text.encode())

        def decode(self, ids):
            return bytes(ids).decode(errors="replace")

    s = settings(max_steps=3, eval_every=1, sample_every=2, sample_tokens=5, sample_prompt="The ")
    trainer = Trainer(CFG, s, corpus_ids(), tokenizer=Bytes())
    samples = [r.sample for r in trainer.run().records]
    assert samples[0] is None and samples[1].startswith("The ") and samples[2].startswith("The ")  # 2 and end
    assert [x["step"] for x in trainer.samples] == [2, 3]


# -------------------------------------------------------------------------------------- memory / speed
def test_memory_estimate_and_refusal(monkeypatch):
    cfg = GPTConfig.preset("tiny")
    est = estimate_training_memory(cfg, TrainSettings(batch_size=8), device="cpu")
    assert est["n_params"] == count_parameters(GPTModel(cfg))
    assert est["weights_bytes"] == 4 * est["n_params"] and est["optimizer_bytes"] == 8 * est["n_params"]
    # blocks + one 256-row block of the fused head's logits + the head's gradient (B·L = 512 rows here)
    head = 256 * 50257 * 12 + 50257 * 64 * 8
    assert est["activations_bytes"] == 8 * 64 * 64 * 2 * 48 + head and est["attention_bytes"] == 0
    monkeypatch.setattr(train_memory, "available_memory", lambda device: 1000)
    with pytest.raises(LabError, match=r"but only 0\.00 GB is free on cpu; use a smaller batch size"):
        Trainer(CFG, settings(), corpus_ids())
    assert estimate_training_memory(CFG, settings(), "cpu")["fits"] is False


def test_probe_speed_positive_and_global_rng_untouched():
    before = torch.get_rng_state()
    assert probe_speed(CFG, settings(), steps=1) > 0
    assert torch.equal(before, torch.get_rng_state())


def test_probe_speed_times_more_steps_until_min_seconds_but_never_past_max_steps(monkeypatch):
    import core.train_speed as speed

    calls = []
    monkeypatch.setattr(speed, "train_step", lambda *a, **k: (calls.append(1), time.sleep(0.05)))
    tokens_per_s = probe_speed(CFG, settings(), steps=2, min_seconds=0.3)
    assert 1 + 6 <= len(calls) <= 1 + 8  # a warm-up, then ~0.3 s of 0.05 s steps
    assert tokens_per_s == pytest.approx(settings().batch_size * CFG.context_length / 0.05, rel=0.3)
    calls.clear()
    probe_speed(CFG, settings(), steps=2, min_seconds=100, max_steps=5)
    assert len(calls) == 1 + 5
    calls.clear()
    probe_speed(CFG, settings(), steps=3)
    assert len(calls) == 1 + 3  # no min_seconds: exactly the steps asked for


# ------------------------------------------------------------------------------------------- run folders
@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x" * 65, "a b", "..", None, "a\\b"])
def test_run_id_validation(bad, tmp_path):
    with pytest.raises(LabError, match="run id"):
        runs.validate_run_id(bad)
    if isinstance(bad, str):
        with pytest.raises(LabError, match="run id"):
            train_mod.make_trainer(CFG, settings(), corpus_ids(), runs_dir=tmp_path, run_id=bad)


def test_default_run_id_is_valid():
    rid = runs.default_run_id("mini", now=0)
    assert runs.validate_run_id(rid) == rid and rid.endswith("-mini") and len(rid) == len("19700101-000000-mini")


def test_list_runs_reports_broken_runs_without_raising(tmp_path):
    ids = corpus_ids()
    for name in ("ok", "badjson", "truncated", "nofiles"):
        Trainer(CFG, settings(max_steps=2), ids, run_dir=tmp_path / name).run()
    (tmp_path / "badjson" / "run.json").write_text("{not json")
    model = tmp_path / "truncated" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])
    (tmp_path / "nofiles" / "model.safetensors").unlink()
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file.txt").write_text("not a run")
    by_id = {r.run_id: r for r in list_runs(tmp_path)}
    assert set(by_id) == {"ok", "badjson", "truncated", "nofiles", "empty"}
    assert by_id["ok"].status == "finished" and by_id["ok"].checkpoint_step == 2 and by_id["ok"].reason is None
    for name in ("badjson", "truncated", "nofiles", "empty"):
        assert by_id[name].status == "broken" and by_id[name].reason, name
    assert list_runs(tmp_path / "missing") == []


# ------------------------------------------------------------------------------------- crash safety
_WRITER = r"""
import os, sys, torch
torch.set_num_threads(1)  # no OpenMP pool before fork()
from pathlib import Path
from core import runs
from core.checkpoint import save
from core.config import GPTConfig
from core.model import GPTModel
run_dir = Path(sys.argv[1])
model = GPTModel(GPTConfig(vocab_size=8192, context_length=64, emb_dim=256, n_heads=4, n_layers=1, drop_rate=0.0))
opt = torch.optim.AdamW(model.parameters())
model(torch.tensor([[1, 2]])).sum().backward()
opt.step()
names = [n for n, _ in model.named_parameters()]
for line in sys.stdin:
    if line.strip() != "go":
        break
    pid = os.fork()
    if pid == 0:  # the writer: checkpoints in a tight loop until it is killed
        state = run_dir / "trainer_state.json"
        step = runs.read_json(state)["step"] if state.exists() else 0
        while True:
            step += 1
            with torch.no_grad():
                model.tok_emb.weight.fill_(step)
            runs.commit_checkpoint(
                run_dir, lambda p: save(model, p, extra={"step": step}),
                lambda p: runs.save_optimizer(p, opt, names, step, runs.rng_states(torch.device("cpu"))),
                {"step": step})
            record = {"format": runs.RUN_FORMAT, "run_id": "k", "status": "running", "settings": {},
                      "model_config": model.cfg.to_dict(), "metrics": [{"step": step}], "checkpoint_step": step}
            runs.atomic_write_json(run_dir / "run.json", record)
            print("ready", step, flush=True)
    print("pid", pid, flush=True)
    os.waitpid(pid, 0)
"""


def test_sigkill_during_checkpoint_writes_never_breaks_the_latest(tmp_path):
    run_dir = tmp_path / "k"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(run_dir)], cwd=ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    rng = random.Random(0)
    steps = []
    try:
        for _ in range(5):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            pid = None
            while True:  # wait until this writer has committed at least one checkpoint
                line = proc.stdout.readline().split()
                assert line, "the writer process died"
                if line[0] == "pid":
                    pid = int(line[1])
                elif line[0] == "ready" and pid is not None:
                    break
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(pid, signal.SIGKILL)
            # Every file at its final path loads, before any recovery …
            model = load(run_dir / "model.safetensors")
            opt = torch.optim.AdamW(model.model.parameters())
            names = [n for n, _ in model.model.named_parameters()]
            runs.load_optimizer(run_dir / "optimizer.safetensors", opt, names)
            runs.read_run(run_dir)
            # … and after recovery the three agree on one step, whose weights are what was written then.
            state = runs.recover_checkpoint(run_dir)
            model = load(run_dir / "model.safetensors")
            assert model.extra["step"] == state["step"]
            assert torch.all(model.model.tok_emb.weight == state["step"])
            assert runs.load_optimizer(run_dir / "optimizer.safetensors", opt, names)["step"] == state["step"]
            assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") or ".next." in p.name]
            steps.append(state["step"])
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    # Each round commits at least one new checkpoint after the recovered one, whatever the machine load.
    assert steps == sorted(steps) and steps[-1] >= 5


def test_linked_run_folder_is_refused_before_anything_is_touched(tmp_path):
    """A run folder that is a symlink would make training write, and crash recovery delete, files elsewhere."""
    ids, outside = corpus_ids(), tmp_path / "outside"
    Trainer(CFG, settings(max_steps=2), ids, run_dir=tmp_path / "runs" / "real").run()
    shutil.copytree(tmp_path / "runs" / "real", outside)
    stale = outside / ".model.safetensors.0123456789ab.tmp"
    stale.write_text("someone's file")
    (tmp_path / "runs" / "link").symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(LabError, match="symbolic link"):
        Trainer.resume(tmp_path / "runs" / "link", ids, max_steps=4)
    with pytest.raises(LabError, match="symbolic link"):
        runs.recover_checkpoint(tmp_path / "runs" / "link")
    with pytest.raises(LabError, match="symbolic link"):
        train_mod.make_trainer(CFG, settings(max_steps=2), ids, runs_dir=tmp_path / "runs", run_id="link")
    assert sorted(p.name for p in outside.iterdir()) == before and stale.exists()
    # Reading a linked run is still fine: the listing shows it like any other.
    assert {r.run_id: r.status for r in list_runs(tmp_path / "runs")} == {"real": "finished", "link": "finished"}


def test_damaged_step_numbers_in_checkpoint_files_are_lab_errors(tmp_path):
    """run.json / trainer_state.json / file headers with absurd or malformed numbers never raise ValueError."""
    ids, run = corpus_ids(), tmp_path / "r"
    Trainer(CFG, settings(max_steps=2), ids, run_dir=run).run()
    (run / runs.STATE_FILE).write_text('{"step": ' + "7" * 5000 + "}")
    with pytest.raises(LabError, match="more than 4,300 digits"):
        Trainer.resume(run, ids, max_steps=4)
    (run / runs.STATE_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LabError, match="nested far too deeply"):
        Trainer.resume(run, ids, max_steps=4)
    assert runs.file_step(tmp_path / "missing.safetensors") is None


def test_resume_refuses_absurd_model_config_in_run_json(tmp_path):
    ids, run = corpus_ids(), tmp_path / "r"
    Trainer(CFG, settings(max_steps=2), ids, run_dir=run).run()
    data = json.loads((run / runs.RUN_FILE).read_text())
    data["model_config"]["n_layers"] = 10**6
    (run / runs.RUN_FILE).write_text(json.dumps(data))
    start = time.perf_counter()
    with pytest.raises(LabError, match="n_layers must be at most 1,024"):
        Trainer.resume(run, ids, max_steps=4)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("bad", [{"lr": 10**400}, {"weight_decay": 10**400}, {"device": "d" * 10**6},
                                 {"precision": "p" * 10**6}, {"max_steps": "s" * 10**6}])
def test_settings_messages_stay_short_whatever_the_value(bad):
    with pytest.raises(LabError) as info:
        TrainSettings(**bad)
    assert len(str(info.value)) < 250, str(info.value)[:300]


def test_estimate_seconds_counts_evaluations_at_their_measured_speed():
    from core.preflight import estimate_seconds

    numbers = {"tokens_per_step": 1000, "val_windows": 30}
    s = TrainSettings(max_steps=100, eval_every=25, batch_size=8)
    # 100 steps at 500 tok/s = 200 s; evaluations at steps 1, 25, 50, 75, 100 (+1 spare) = 6 × ceil(30/8) = 24
    # batches of 1000 tokens at 2000 tok/s = 12 s; without a measured speed a batch counts 1/3 of a step (16 s)
    assert estimate_seconds(numbers, s, 500, 2000) == {"train": 200.0, "eval": 12.0, "total": 212.0}
    assert estimate_seconds(numbers, s, 500)["eval"] == pytest.approx(16.0)
    speeds = probe_speeds(CFG, settings(), steps=1)
    assert speeds["eval"] > speeds["train"] > 0  # a forward pass is cheaper than a training step
