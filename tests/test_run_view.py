"""What the dashboard computes from a run's records: the time left and the overfitting warning."""

from __future__ import annotations

import pytest

from core.run_view import OVERFIT_EPOCHS, RunView


def view(records, step, max_steps=200, **kw) -> RunView:
    return RunView("r", "running", "", active=True, step=step, max_steps=max_steps, records=records,
                   settings={"batch_size": 8}, model_config={"context_length": 128}, **kw)


def steps(first_s: float, per_step: float, n: int, eval_every: int = 25, eval_s: float = 0.0):
    """Records of steps 1…n: step 1 takes first_s, every other step per_step, each evaluation eval_s more."""
    out, t = [], 0.0
    for s in range(1, n + 1):
        t += first_s if s == 1 else per_step + (eval_s if s % eval_every == 0 else 0.0)
        out.append({"step": s, "elapsed_s": t, "tokens_per_s": s * 8 * 128 / t, "train_loss": 5.0})
    return out


def test_time_left_follows_the_recent_pace_not_the_slow_first_step():
    v = view(steps(first_s=5.0, per_step=0.8, n=3), step=3)
    assert v.eta_s == pytest.approx(197 * 0.8)  # the warm-up step's 5 s are not a pace
    cumulative = 197 * 8 * 128 / v.records[-1]["tokens_per_s"]  # what tokens/s over all steps would say
    assert cumulative > 2.5 * v.eta_s


def test_time_left_includes_the_evaluations_over_a_long_enough_window():
    v = view(steps(first_s=5.0, per_step=0.8, n=100, eval_s=4.0), step=100)
    window = v.records[-60:]
    expected = 100 * (window[-1]["elapsed_s"] - window[0]["elapsed_s"]) / (window[-1]["step"] - window[0]["step"])
    assert v.eta_s == pytest.approx(expected)
    assert 100 * 0.8 * 1.1 < v.eta_s < 100 * (0.8 + 4.0 / 25) * 1.1  # evaluations counted, at their share


def test_time_left_falls_back_to_tokens_per_s_and_is_none_when_done_or_unknown():
    one = view(steps(first_s=2.0, per_step=1.0, n=1), step=1)
    assert one.eta_s == pytest.approx(199 * 8 * 128 / one.records[0]["tokens_per_s"])
    assert view([], step=0).eta_s is None
    finished = view(steps(2.0, 1.0, 5), step=5)
    finished.active = False
    assert finished.eta_s is None


def test_overfitting_warning_after_five_passes_over_the_corpus():
    corpus = {"train_windows": 100}
    assert view([], step=60, corpus=corpus).overfit_note is None  # 60 × 8 / 100 = 4.8 passes
    note = view([], step=70, corpus=corpus).overfit_note  # 5.6 passes
    assert note is not None and f"past ~{OVERFIT_EPOCHS} passes" in note and "6 times over" in note
