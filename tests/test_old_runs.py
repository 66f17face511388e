"""A run written before the redesign (commit f3d28ba, by its own CLI) still lists, loads and resumes exactly.

The fixture in tests/fixtures/run_f3d28ba/ is a 4-step run of a 2-wide, 1-block, tied-weights GPT-2-vocabulary
model on the corpus below, checkpointed at step 4. That commit's code, resumed to step 6, wrote the losses in
``OLD_CODE_RESUMED``. Step 5's loss (measured before step 5's update) must be the same today; step 6 differs
on purpose: the old code stretched the learning-rate schedule to the new step count, today a resumed run keeps
its own schedule (4 steps) and trains on at the minimum rate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from core.checkpoint import load
from core.model_spec import build_model
from core.runs import list_runs
from tests.conftest import ROOT
from tests.test_train import SENTENCES

FIXTURE = ROOT / "tests" / "fixtures" / "run_f3d28ba"
OLD_CODE_RESUMED = [(5, 10.824844360351562, None), (6, 10.826578140258789, 10.8243727684021)]


@pytest.fixture
def old_run(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "runs" / "old-format")
    (tmp_path / "corpus.txt").write_text(" ".join(SENTENCES[(i * 7) % 4] + f" Day {i}." for i in range(300)))
    return tmp_path


def test_the_old_run_is_listed_and_loads(old_run):
    [summary] = list_runs(old_run / "runs")
    assert (summary.run_id, summary.status, summary.checkpoint_step) == ("old-format", "finished", 4)
    ckpt = old_run / "runs" / "old-format" / "model.safetensors"
    model = build_model({"kind": "run", "run_id": "old-format", "runs_dir": str(old_run / "runs")})
    assert model.cfg.emb_dim == 2 and model.cfg.tie_weights
    assert torch.equal(model.tok_emb.weight, load(ckpt).model.tok_emb.weight)


def test_the_old_run_resumes_to_the_numbers_the_old_code_gave(old_run):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "core", "pretrain", "--resume", "--run-id", "old-format",
                          "--runs-dir", "runs", "--steps", "6", "--corpus", "corpus.txt", "--device", "cpu"],
                         cwd=old_run, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads((old_run / "runs" / "old-format" / "run.json").read_text())
    assert data["status"] == "finished" and data["checkpoint_step"] == 6
    resumed = [(m["step"], m["train_loss"], m["val_loss"]) for m in data["metrics"] if m["step"] > 4]
    assert [r[0] for r in resumed] == [5, 6]
    # 1e-5: today's fused head sums the loss in another order than the old F.cross_entropy (a float32 ulp at 10.8
    # is 1e-6); a wrong resume (other weights, batch or RNG state) moves it by far more
    assert resumed[0][1] == pytest.approx(OLD_CODE_RESUMED[0][1], abs=1e-5) and resumed[0][2] is None
    assert data["settings"]["schedule_steps"] == 4 and data["metrics"][-1]["lr"] == pytest.approx(1e-4)
