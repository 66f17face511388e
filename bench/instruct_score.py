"""Does instruction fine-tuning raise the score? Before/after on the built-in instruction set, the page's way.

Runs :func:`core.instruct_job.start_instruct_job` — exactly what the Instruction runner's Start button calls — on
a randomly initialised preset (no pretrained weights are needed, so it works offline): it answers the test
prompts greedily, fine-tunes a copy of the model, and answers them again. The peer is the same model before
fine-tuning; the script prints both scores (exact match, token F1, character 3-gram similarity) and the time.

The built-in set mixes tasks a model trained from scratch can pick up in minutes (copying a word, yes/no and
positive/negative labels) with ones it cannot (capitals, sums) — so the score after a short CPU run is far from
perfect, but clearly above the 0 of the untrained model.

Usage:
    python bench/instruct_score.py [--preset tiny] [--steps 500] [--lr 1e-3] [--batch-size 8] [--no-mask]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-mask", action="store_true", help="let the prompt tokens count in the loss too")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()

    import torch

    from core import instruct_job as ft
    from core.config import GPTConfig
    from core.datasets import load_instructions
    from core.jobs import JobRegistry
    from core.model import GPTModel
    from core.tokenizers import get_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = GPTModel(GPTConfig.preset(args.preset, drop_rate=0.0)).eval()
    records = load_instructions("builtin-instructions")
    _, _, test, _ = ft.instruction_splits(records)
    settings = ft.InstructSettings(epochs=100, max_steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                                   mask_prompt=not args.no_mask, n_eval=len(test), seed=args.seed,
                                   eval_every=max(5, args.steps // 20))
    print(f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"{args.preset} at random init, {len(records)} records ({len(test)} scored), {args.steps} steps, "
          f"lr {args.lr:g}, batch {args.batch_size}, prompt masking {'off' if args.no_mask else 'on'}")
    start = time.perf_counter()
    job = ft.start_instruct_job(model, get_tokenizer("gpt2"), records, settings, run_id="bench-instruct",
                                jobs=JobRegistry())
    last = ""
    while not job.wait(2):
        message = job.snapshot().get("message") or ""
        if message != last:
            print(f"  {message}", flush=True)
            last = message
    elapsed = time.perf_counter() - start
    if job.status != "finished":
        raise SystemExit(f"the run ended as {job.status}: {job.message}")
    d = job.result.details
    before, after = d["score_before"], d["score_after"]
    print("\n| | exact match | token F1 | similarity (heuristic) |\n|---|---|---|---|")
    for name, s in (("before fine-tuning", before), ("after fine-tuning", after)):
        print(f"| {name} | {s['exact_match']:.3f} | {s['token_f1']:.3f} | {s['similarity']:.3f} |")
    last_record = job.result.records[-1]
    print(f"\n{d['steps']} steps in {elapsed:.0f} s (including answering {len(test)} prompts twice); "
          f"val loss {job.result.records[0]['val_loss']:.2f} → {last_record['val_loss']:.2f}")
    rows = list(zip(d["entries"], d["before"], d["after"]))
    print("\nSome answers (instruction | input | reference | before | after):")
    for entry, b, a in rows[:12]:
        print(f"  {entry['instruction'][:45]!r} | {entry.get('input', '')[:30]!r} | {entry['output']!r} | "
              f"{b[:20]!r} | {a[:20]!r}")


if __name__ == "__main__":
    main()
