"""The Pretraining page's figure builders: traces, axes, perplexity, LR overlay, comparison, sample timeline."""

from __future__ import annotations

import math

import pytest

from ui.figures_train import compare_figure, continuation_html, loss_figure, samples_html


def records(n: int = 6, every: int = 2) -> list[dict]:
    return [{"step": s, "tokens_seen": 128 * s, "train_loss": 10.8 - 0.3 * s, "lr": 1e-4 * s,
             "val_loss": (10.9 - 0.25 * s) if s == 1 or s % every == 0 else None} for s in range(1, n + 1)]


def trace(fig, name_start: str):
    return next(t for t in fig.data if t.name.startswith(name_start))


def test_loss_curves_against_steps_and_tokens():
    recs = records()
    fig = loss_figure(recs)
    train, val = trace(fig, "train loss"), trace(fig, "val loss")
    assert list(train.x) == [1, 2, 3, 4, 5, 6]
    assert list(train.y) == pytest.approx([10.8 - 0.3 * s for s in range(1, 7)])
    assert list(val.x) == [1, 2, 4, 6]  # only evaluated steps
    assert fig.layout.xaxis.title.text == "step"
    assert fig.layout.yaxis.type == "linear"
    fig = loss_figure(recs, x="tokens_seen", log_y=True)
    assert list(trace(fig, "train loss").x) == [128 * s for s in range(1, 7)]
    assert fig.layout.xaxis.title.text == "tokens seen"
    assert fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError):
        loss_figure(recs, x="epoch")


def test_perplexity_lr_overlay_and_uniform_guess():
    recs = records()
    fig = loss_figure(recs, perplexity=True, vocab_size=50257)
    assert list(trace(fig, "train perplexity").y) == pytest.approx([math.exp(r["train_loss"]) for r in recs])
    assert set(trace(fig, "uniform guess").y) == {50257.0}
    fig = loss_figure(recs, show_lr=True, vocab_size=50257)
    lr = trace(fig, "learning rate")
    assert lr.yaxis == "y2" and list(lr.y) == pytest.approx([1e-4 * s for s in range(1, 7)])
    assert fig.layout.yaxis2.title.text == "learning rate"
    guess = trace(fig, "uniform guess")
    assert guess.yaxis == "y" and guess.y[0] == pytest.approx(10.8249, abs=1e-3)  # ln(50257)
    assert "10.82" in guess.name


def test_non_finite_and_empty_and_long_runs():
    recs = records()
    recs[2]["train_loss"] = float("nan")
    recs[3]["train_loss"] = float("inf")
    assert len(trace(loss_figure(recs), "train loss").x) == 4
    empty = loss_figure([])
    assert [len(t.x) for t in empty.data] == [0, 0]
    assert "No steps yet" in empty.layout.annotations[0].text
    long = [{"step": s, "tokens_seen": s, "train_loss": 5.0, "val_loss": None, "lr": 1e-3} for s in range(1, 10_001)]
    x = trace(loss_figure(long, max_points=1000), "train loss").x
    assert len(x) <= 1001 and x[0] == 1 and x[-1] == 10_000


def test_compare_overlays_validation_curves():
    fig = compare_figure({"run-a": records(6), "run-b": records(8, every=4)}, vocab_size=50257)
    names = [t.name for t in fig.data]
    assert names[:2] == ["run-a", "run-b"] and names[2].startswith("uniform guess")
    assert list(fig.data[1].x) == [1, 4, 8]
    assert fig.layout.yaxis.title.text.startswith("validation")
    assert "Pick runs" in compare_figure({}).layout.annotations[0].text


def test_samples_timeline_newest_first_escaped_with_bold_prompt():
    samples = [{"step": 5, "text": "Every effort moves you <b>&"}, {"step": 25, "text": "Every effort moves you on"},
               {"step": 15, "text": "other"}]
    out = samples_html(samples, "Every effort moves you")
    assert out.index("step 25") < out.index("step 15") < out.index("step 5")
    assert "&lt;b&gt;&amp;" in out and "<b>&" not in out
    assert "<b>Every effort moves you</b> on" in out
    assert "step 5" not in samples_html(samples, limit=2)
    assert "No samples yet." in samples_html([])
    assert "off &lt;here&gt;" in samples_html([], empty="off <here>")
    assert "<b>Hi</b> there &lt;3" in continuation_html("Hi there <3", "Hi")
