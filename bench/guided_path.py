"""The guided path's training stages with the pages' default settings, timed: does every stage visibly learn?

Runs, through the same ``core`` calls the pages' Start buttons make and with the settings in ``core.guided``:
pretraining (``mini`` on the built-in stories), classification fine-tuning from that run (built-in spam), and
instruction fine-tuning from that run (built-in instructions). It prints each stage's figure next to its peer —
validation loss against the uniform ln(V), test accuracy against the majority baseline, the instruction score
against the same model before fine-tuning — and the compute time of each stage. ``--short`` is CI's variant: the
same path on ``tiny`` with a few steps, checking that it runs end to end (its figures mean nothing).

Usage:
    python bench/guided_path.py [--short] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def wait(job, label: str):
    last = ""
    while not job.wait(5):
        message = job.snapshot().get("message") or ""
        if message != last:
            print(f"  [{label}] {message}", flush=True)
            last = message
    if job.status not in ("finished",):
        raise SystemExit(f"{label} ended as {job.status}: {job.message}")
    return job.result


def pretrain(args, runs_dir: Path):
    from core import guided
    from core.config import GPTConfig
    from core.datasets import load_corpus
    from core.pretrain_job import Corpus, start_pretraining

    preset = "tiny" if args.short else guided.PRETRAIN_PRESET
    settings = guided.PRETRAIN if not args.short else dataclasses.replace(guided.PRETRAIN, max_steps=6, eval_every=3,
                                                                          sample_every=3, warmup_steps=2)
    corpus = Corpus(load_corpus(guided.PRETRAIN_CORPUS), guided.PRETRAIN_CORPUS, "Built-in stories")
    start = time.perf_counter()
    job = start_pretraining(GPTConfig.preset(preset), settings, corpus, "guided-pretrain", runs_dir)
    result = wait(job, "pretrain")
    elapsed = time.perf_counter() - start
    vals = [r.val_loss for r in result.records if r.val_loss is not None]
    samples = [(r.step, r.sample) for r in result.records if r.sample]
    figure = (f"val loss {vals[0]:.2f} → {vals[-1]:.2f} (ln V = {math.log(50257):.2f}); "
              f"sample at step {samples[-1][0]}: {samples[-1][1][:90]!r}")
    return result, elapsed, figure, f"{preset}, {settings.max_steps} steps, lr {settings.lr:g}"


def classify(args, model, tok):
    from core import classify_job as ft
    from core import guided
    from core.datasets import load_classification

    settings = guided.CLASSIFY if not args.short else dataclasses.replace(guided.CLASSIFY, max_steps=4)
    start = time.perf_counter()
    job = ft.start_classify_job(model, tok, load_classification(settings.dataset), settings, run_id="guided-cls")
    result = wait(job, "classify")
    d = result.details
    acc, majority = d["evaluation"]["accuracy"], d["majority"]
    figure = f"test accuracy {acc:.1%} vs majority baseline {majority:.1%} ({(acc - majority) * 100:+.1f} points)"
    how = f"{settings.mode}, {d['steps']} steps, lr {settings.lr:g}"
    return time.perf_counter() - start, figure, how, acc - majority


def instruct(args, model, tok):
    from core import guided
    from core import instruct_job as ft
    from core.datasets import load_instructions

    settings = guided.instruct_settings(from_scratch=True)
    if args.short:
        settings = dataclasses.replace(settings, max_steps=4, n_eval=3, max_new_tokens=4)
    start = time.perf_counter()
    job = ft.start_instruct_job(model, tok, load_instructions(settings.dataset), settings, run_id="guided-ins")
    result = wait(job, "instruct")
    d = result.details
    b, a = d["score_before"], d["score_after"]
    non_empty = sum(bool(x.strip()) for x in d["after"]) / max(len(d["after"]), 1)
    figure = (f"exact match {b['exact_match']:.1%} → {a['exact_match']:.1%}, token F1 {b['token_f1']:.2f} → "
              f"{a['token_f1']:.2f}; {non_empty:.0%} of answers non-empty")
    return time.perf_counter() - start, figure, f"{d['steps']} steps, lr {settings.lr:g}, prompt masked", d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="CI's variant: tiny, a few steps")
    parser.add_argument("--runs-dir", type=Path, help="where the pretraining run goes (default: a temporary folder)")
    args = parser.parse_args()

    import torch

    from core.model_spec import build_model
    from core.tokenizers import get_tokenizer

    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="guided-"))
    print(f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; runs in {runs_dir}")
    rows = []
    result, t, figure, how = pretrain(args, runs_dir)
    rows.append(("Pretraining", how, t, figure))
    model = build_model({"kind": "run", "run_id": result.run_id, "runs_dir": str(runs_dir)})
    tok = get_tokenizer("gpt2")
    t, figure, how, margin = classify(args, model, tok)
    rows.append(("Classification", how, t, figure))
    t, figure, how, details = instruct(args, model, tok)
    rows.append(("Instructions", how, t, figure))
    print("\n| stage | settings | compute | figure |\n|---|---|---|---|")
    for stage, how, t, figure in rows:
        print(f"| {stage} | {how} | {t / 60:.1f} min | {figure} |")
    print(f"\ntotal compute {sum(r[2] for r in rows) / 60:.1f} min")
    print("\nSome answers after fine-tuning (reference → answer):")
    for entry, answer in list(zip(details["entries"], details["after"]))[:8]:
        print(f"  {entry['instruction'][:40]!r} {entry.get('input', '')[:20]!r}: {entry['output']!r} → {answer!r}")


if __name__ == "__main__":
    main()
