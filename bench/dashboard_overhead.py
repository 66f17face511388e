"""Does the live dashboard slow training down? One tiny run the page's way vs the same run from the CLI.

- ``page``: :func:`core.pretrain_job.start_pretraining` (exactly what the Start button calls) runs the job in a thread
  of this process while a simulated dashboard polls once a second, doing what the ``st.fragment`` does:
  :func:`core.run_view.dashboard_state` (``job.snapshot()`` merged with ``run.json``) and serialising the records
  the loss figure is drawn from (the benchmark imports nothing from ``ui/``).
- ``cli``: ``python -m core pretrain`` in a subprocess.

Same preset, settings, corpus and seed; one run each by default (``--rounds N`` alternates N pairs and reports the
median ratio, which is steadier on a busy machine). Tokens/s is the trainer's own figure at the last step
(tokens trained ÷ wall-clock time since training started, evaluations included), read from each run's ``run.json``.
Target: the page path at most 5 % slower.

Threads: both paths are pinned to the same number of torch threads (``--threads``, default 1; 0 = torch's
default). Without that, the comparison measures threading rather than the dashboard: on a busy 2-core machine we
saw tiny-model training in the *main* thread with 2 intra-op threads run ~3× slower than with 1, while the same
training in a background thread (as the page runs it) behaved like the 1-thread case.

On a shared machine, load from other processes moves both numbers, so read one pair of runs as a rough check,
not a precise measurement.

Usage:
    python bench/dashboard_overhead.py [--steps 60] [--batch-size 4] [--threads 1] [--rounds 1]
                                       [--order cli-first|page-first]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def settings_args(args: argparse.Namespace) -> dict:
    return {"max_steps": args.steps, "batch_size": args.batch_size, "eval_every": args.eval_every,
            "sample_every": args.eval_every, "warmup_steps": 5, "seed": 123, "device": "cpu"}


def last_tokens_per_s(run_dir: Path) -> tuple[float, int]:
    data = json.loads((run_dir / "run.json").read_text())
    assert data["status"] == "finished", data["message"]
    return data["metrics"][-1]["tokens_per_s"], data["metrics"][-1]["step"]


def run_cli(args: argparse.Namespace, runs: Path, run_id: str) -> float:
    s = settings_args(args)
    cmd = [sys.executable, "-m", "core", "pretrain", "--preset", "tiny", "--corpus", "builtin", "--quiet",
           "--steps", str(s["max_steps"]), "--batch-size", str(s["batch_size"]), "--eval-every", str(s["eval_every"]),
           "--sample-every", str(s["sample_every"]), "--warmup", str(s["warmup_steps"]), "--seed", str(s["seed"]),
           "--device", "cpu", "--runs-dir", str(runs), "--run-id", run_id]
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    return last_tokens_per_s(runs / run_id)[0]


def run_page(args: argparse.Namespace, runs: Path, run_id: str) -> tuple[float, int, float]:
    import streamlit  # noqa: F401 - configures its loggers; then silence "no runtime" (we run bare on purpose)

    logging.getLogger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)
    from core.config import GPTConfig
    from core.datasets import load_corpus
    from core.pretrain_job import Corpus, start_pretraining
    from core.run_view import dashboard_state
    from core.train import TrainSettings

    corpus = Corpus(load_corpus("builtin-corpus"), "builtin-corpus", "Built-in stories")
    job = start_pretraining(GPTConfig.preset("tiny"), TrainSettings(**settings_args(args)), corpus, run_id, runs)
    polls, poll_s = 0, 0.0
    while not job.wait(1.0):  # the fragment's run_every=1.0
        t = time.perf_counter()
        view = dashboard_state(run_id, runs)
        json.dumps(view.records)  # what the page's figure is built from and sends to the browser
        poll_s += time.perf_counter() - t
        polls += 1
    return last_tokens_per_s(runs / run_id)[0], polls, poll_s / max(polls, 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1, help="pairs of runs, alternating which goes first")
    p.add_argument("--order", choices=["cli-first", "page-first"], default="cli-first")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both paths (0 = torch's default)")
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads; tiny preset, {args.steps} steps × batch {args.batch_size}, "
          f"eval + sample every {args.eval_every}, seed 123, builtin corpus")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for r in range(args.rounds):
            results: dict[str, float] = {}
            first_cli = (args.order == "cli-first") == (r % 2 == 0)  # alternate who goes first
            for name in (["cli", "page"] if first_cli else ["page", "cli"]):
                t = time.perf_counter()
                if name == "cli":
                    results["cli"] = run_cli(args, runs, f"cli-{r}")
                    print(f"round {r + 1} cli : {results['cli']:8.1f} tokens/s  (wall {time.perf_counter() - t:.1f} s "
                          "incl. start-up)")
                else:
                    results["page"], polls, per_poll = run_page(args, runs, f"page-{r}")
                    print(f"round {r + 1} page: {results['page']:8.1f} tokens/s  (wall {time.perf_counter() - t:.1f} "
                          f"s; {polls} dashboard polls, {per_poll * 1000:.1f} ms each)")
            ratios.append(results["page"] / results["cli"])
    ratio = statistics.median(ratios)
    what = "ratio" if len(ratios) == 1 else f"median of {len(ratios)} ratios ({', '.join(f'{x:.3f}' for x in ratios)})"
    print(f"page / cli = {ratio:.3f} ({what}) → the page path is {100 * (1 - ratio):.1f} % slower "
          f"({'within' if ratio >= 0.95 else 'outside'} the 5 % target; negative = faster)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
