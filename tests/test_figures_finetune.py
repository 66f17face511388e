"""The fine-tuning pages' figure builders: traces, shapes and HTML for known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from ui.figures_finetune import (
    classify_curves,
    confusion_figure,
    instruct_curves,
    lora_matrix_heatmap,
    lora_shapes_figure,
    loss_mask_html,
)


def _cls_records():
    eval_rec = {"kind": "eval", "step": 1, "examples_seen": 8, "train_loss": 0.7, "val_loss": 0.72,
                "train_acc": None, "val_acc": None}
    epoch_rec = {"kind": "epoch", "step": 10, "examples_seen": 80, "train_loss": 0.4, "val_loss": 0.5,
                 "train_acc": 0.9, "val_acc": 0.8}
    return [eval_rec, epoch_rec]


def test_classify_curves_has_loss_and_accuracy_traces():
    fig = classify_curves(_cls_records())
    names = [t.name for t in fig.data]
    assert names == ["train loss", "val loss", "train accuracy", "val accuracy"]
    assert list(fig.data[0].x) == [8, 80] and list(fig.data[1].y) == [0.72, 0.5]
    assert list(fig.data[2].x) == [80] and list(fig.data[3].y) == [0.8]  # accuracies only at epoch ends
    assert classify_curves([]).data[0].x == ()


def test_instruct_curves():
    recs = [{"step": 1, "tokens_seen": 100, "train_loss": 10.0, "val_loss": 10.1},
            {"step": 5, "tokens_seen": 500, "train_loss": 6.0, "val_loss": 6.5}]
    fig = instruct_curves(recs)
    assert [t.name for t in fig.data] == ["train loss", "val loss"]
    assert list(fig.data[0].x) == [100, 500] and list(fig.data[1].y) == [10.1, 6.5]


def test_confusion_figure_cells_and_labels():
    fig = confusion_figure([[30, 4], [2, 26]], ["ham", "spam"])
    heat = fig.data[0]
    assert heat.type == "heatmap"
    assert np.asarray(heat.z).tolist() == [[30, 4], [2, 26]]
    assert [list(r) for r in heat.text] == [["30", "4"], ["2", "26"]]
    assert list(fig.layout.xaxis.ticktext) == ["ham", "spam"]
    with pytest.raises(ValueError):
        confusion_figure([[1, 2]], ["ham", "spam"])


def test_lora_heatmap_is_centred_on_zero():
    fig = lora_matrix_heatmap(np.zeros((4, 2)), "B")
    assert fig.data[0].zmid == 0 and fig.data[0].zmax == 1.0  # an all-zero B still gets a valid scale
    fig = lora_matrix_heatmap(np.array([[-2.0, 1.0]]), "A")
    assert fig.data[0].zmin == -2.0 and fig.data[0].zmax == 2.0
    with pytest.raises(ValueError):
        lora_matrix_heatmap(np.zeros(3), "bad")


def test_lora_shapes_figure_labels_every_matrix():
    fig = lora_shapes_figure(64, 256, 8)
    assert len(fig.layout.shapes) == 3
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "64×256" in texts and "64×8" in texts and "8×256" in texts
    assert "2,560" in texts  # 8 · (64 + 256)


def test_loss_mask_html_colours_and_escapes():
    rows = [[{"token_id": 1, "target_id": 2, "counts": True, "token": "<b>", "target": " x"},
             {"token_id": 50256, "target_id": -100, "counts": False, "token": "<|endoftext|>", "target": None}]]
    out = loss_mask_html(rows)
    assert "&lt;b&gt;" in out and "<b><" not in out.replace("<b>row", "")  # token text is escaped
    assert "⟨eot⟩" in out and "1 of 2 targets count" in out
    assert "ignored (-100)" in out and "predicts" in out
