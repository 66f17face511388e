"""The memory pre-flight against real peaks: within ±25 % of the measured peak RSS of two training steps.

Each configuration trains in a fresh process (its VmHWM, the peak resident memory of that process image; not
``ru_maxrss``, which Linux carries over from the parent across exec); the grid mixes what dominates: the
logits, the parameters, the blocks, and (with dropout on the CPU) the L×L attention matrices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.config import GPTConfig
from core.train import TrainSettings, estimate_training_memory
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux's /proc to measure peaks")

PROBE = """
import json, sys, torch
from core.config import GPTConfig
from core.model import GPTModel
from core.train_data import calc_loss_batch
from core.train_step import train_step
def high_water():  # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across exec
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
cfg = GPTConfig.from_dict(json.loads(sys.argv[1])); b, t = int(sys.argv[2]), cfg.context_length
torch.set_num_threads(1)
base = high_water()
model = GPTModel(cfg).train(); opt = torch.optim.AdamW(model.parameters())
x, y = torch.randint(0, cfg.vocab_size, (b, t)), torch.randint(0, cfg.vocab_size, (b, t))
for _ in range(2):
    train_step(model, opt, x, y, loss_fn=calc_loss_batch, device="cpu")
print(high_water() - base)
"""
GRID = [  # (n_layers, n_heads, context, batch, dropout, emb_dim)
    (2, 4, 256, 4, 0.0, 64),     # logits
    (2, 16, 1024, 2, 0.1, 64),   # attention matrices (dropout on the CPU)
    (6, 8, 256, 4, 0.0, 256),    # parameters and blocks
    (1, 2, 128, 16, 0.0, 32),    # a wide batch
]


@pytest.mark.parametrize("layers, heads, context, batch, dropout, emb", GRID)
def test_the_estimate_is_within_25_percent_of_the_measured_peak(layers, heads, context, batch, dropout, emb):
    cfg = GPTConfig.preset("tiny", n_layers=layers, n_heads=heads, context_length=context, drop_rate=dropout,
                           emb_dim=emb)
    est = estimate_training_memory(cfg, TrainSettings(batch_size=batch), device="cpu")["total_bytes"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cfg.to_dict()), str(batch)], env=env,
                         capture_output=True, text=True, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    peak = int(out.stdout.strip())
    assert 0.75 <= est / peak <= 1.25, f"estimated {est / 2**20:,.0f} MiB, measured {peak / 2**20:,.0f} MiB"


def test_dropout_on_the_cpu_adds_the_attention_matrices():
    cfg = GPTConfig.preset("tiny", n_heads=16, context_length=1024)
    plain = estimate_training_memory(cfg, TrainSettings(batch_size=2), device="cpu")
    dropped = estimate_training_memory(cfg.replace(drop_rate=0.1), TrainSettings(batch_size=2), device="cpu")
    assert plain["attention_bytes"] == 0 and dropped["attention_bytes"] == 2 * 16 * 1024 * 1024 * 2 * 12
    assert dropped["total_bytes"] - plain["total_bytes"] == dropped["attention_bytes"]
