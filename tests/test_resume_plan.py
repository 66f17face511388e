"""A resumed run keeps its plan: its own learning-rate schedule, a step count beyond where it is, and a run
that died before its first checkpoint can simply be started again."""

from __future__ import annotations

import json

import pytest

from core import runs
from core.errors import LabError
from core.train import Trainer, lr_at
from core.train_plan import resume_spec
from tests.test_train import CFG, corpus_ids, settings


def test_a_longer_resume_keeps_the_schedule_it_was_planned_with(tmp_path):
    s = settings(max_steps=6, warmup_steps=2, eval_every=2)
    Trainer(CFG, s, corpus_ids(), run_dir=tmp_path / "r").run()
    longer = Trainer.resume(tmp_path / "r", corpus_ids(), max_steps=9)
    assert longer.settings.schedule_steps == 6 and longer.settings.max_steps == 9
    result = longer.run()
    assert result.status == "finished" and [r.step for r in result.records] == [7, 8, 9]
    assert [r.lr for r in result.records] == pytest.approx([s.lr * s.min_lr_ratio] * 3)
    planned = [lr_at(k, s) for k in range(1, 7)]  # what the first six steps were trained with, unchanged
    data = json.loads((tmp_path / "r" / runs.RUN_FILE).read_text())
    assert [m["lr"] for m in data["metrics"][:6]] == pytest.approx(planned)


def test_asking_for_fewer_steps_than_done_is_one_sentence(tmp_path):
    Trainer(CFG, settings(max_steps=4), corpus_ids(), run_dir=tmp_path / "r").run()
    with pytest.raises(LabError, match=r"Run 'r' is already at step 4; ask for more steps than that \(e\.g\. 8\)"):
        resume_spec(tmp_path / "r", max_steps=4)
    with pytest.raises(LabError, match="already at step 4"):
        Trainer.resume(tmp_path / "r", corpus_ids(), max_steps=2)


def test_a_run_that_died_before_its_first_checkpoint_starts_again(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / runs.RUN_FILE).write_text(json.dumps({"format": runs.RUN_FORMAT, "run_id": "r", "status": "running",
                                                 "checkpoint_step": None, "metrics": [], "settings": {},
                                                 "model_config": CFG.to_dict()}))
    result = Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=run).run()
    assert result.status == "finished" and result.checkpoint_step == 2
    assert any("stopped before its first checkpoint" in n for n in result.notes)
    finished = tmp_path / "done"
    Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=finished).run()
    with pytest.raises(LabError, match="already exists"):  # a run with a checkpoint is never replaced
        Trainer(CFG, settings(max_steps=2), corpus_ids(), run_dir=finished)
