"""How close is the memory pre-flight to real peaks? Estimated vs measured peak RSS over a grid, and a refit.

Each configuration trains two steps in a fresh process on one thread; the peak is the growth of its VmHWM after
the imports (``ru_maxrss`` would carry the parent's peak across exec). The peer is the measurement itself: the
report prints estimate ÷ peak per configuration and the least-squares coefficients (bytes per parameter, per logit
of one block of the fused head, per output-head weight, per block activation, per attention weight) that the
formula in :func:`core.train_memory.estimate_training_memory` rounds.

    python bench/memory_estimate.py            # the full grid (about a minute on 2 cores)
    python bench/memory_estimate.py --quick    # three configurations (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import GPTConfig  # noqa: E402
from core.fused_head import CHUNK_ROWS  # noqa: E402
from core.stats import total_parameters  # noqa: E402
from core.train import TrainSettings, estimate_training_memory  # noqa: E402
from tests.test_train_memory import PROBE  # noqa: E402 - the same probe the test uses

GRID = [(2, 4, 256, 4, 0.0, 64), (2, 4, 256, 4, 0.1, 64), (2, 16, 1024, 2, 0.1, 64), (2, 16, 1024, 2, 0.0, 64),
        (4, 4, 512, 8, 0.1, 128), (1, 2, 128, 16, 0.0, 32), (6, 8, 256, 4, 0.0, 256), (2, 8, 512, 4, 0.1, 64),
        (8, 4, 128, 8, 0.0, 256)]


def measure(cfg: GPTConfig, batch: int) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cfg.to_dict()), str(batch)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="three configurations only")
    grid = GRID[:3] if ap.parse_args().quick else GRID
    rows, peaks = [], []
    print(f"{'layers heads ctx batch drop emb':>34} {'estimate':>10} {'peak':>10} {'est/peak':>9}")
    for layers, heads, ctx, batch, drop, emb in grid:
        cfg = GPTConfig.preset("tiny", n_layers=layers, n_heads=heads, context_length=ctx, drop_rate=drop,
                               emb_dim=emb)
        est = estimate_training_memory(cfg, TrainSettings(batch_size=batch), device="cpu")["total_bytes"]
        peak = measure(cfg, batch)
        print(f"{layers:>6} {heads:>5} {ctx:>4} {batch:>5} {drop:>4} {emb:>4} {est / 2**20:>9,.0f}M "
              f"{peak / 2**20:>9,.0f}M {est / peak:>9.2f}")
        rows.append([total_parameters(cfg), min(batch * ctx, CHUNK_ROWS) * cfg.vocab_size, cfg.vocab_size * emb,
                     batch * ctx * emb * layers,
                     batch * heads * ctx * ctx * layers if drop > 0 else 0])
        peaks.append(peak)
    if len(rows) >= 5:
        coef, *_ = np.linalg.lstsq(np.array(rows, float), np.array(peaks, float), rcond=None)
        print("refit bytes per parameter, block logit, head weight, block activation, attention weight:",
              ", ".join(f"{c:.1f}" for c in coef))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
