"""Classification fine-tuning (chapter 6) on a tiny model and a trivially separable synthetic spam set."""

from __future__ import annotations

import random
import threading

import pandas as pd
import pytest
import torch

from core.classify import (
    ClassificationDataset,
    calc_accuracy_loader,
    classify_logits,
    evaluate,
    make_loader,
    predict,
    prepare_classifier,
    train_classifier,
    trainable_summary,
)
from core.config import GPTConfig
from core.errors import LabError
from core.lora import lora_layers
from core.model import GPTModel
from core.tokenizers import get_tokenizer

CFG = GPTConfig(vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
FILLER = "red blue green big small happy fast slow tall warm cold bright".split()


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer("gpt2")


def synthetic(n: int, seed: int) -> pd.DataFrame:
    """Balanced spam/ham messages of varying length: spam starts with 'win prize', ham with 'see you'."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        fill = " ".join(rng.choice(FILLER) for _ in range(rng.randint(0, 4)))
        spam = i % 2 == 0
        rows.append({"text": f"win prize {fill} now" if spam else f"see you {fill} soon",
                     "label": "spam" if spam else "ham"})
    return pd.DataFrame(rows)


def tiny_classifier(mode: str = "last-block") -> GPTModel:
    torch.manual_seed(0)
    return prepare_classifier(GPTModel(CFG), n_classes=2, mode=mode).eval()


def test_dataset_pads_to_longest_and_records_lengths(tok):
    df = pd.DataFrame({"text": ["see you", "win a big prize now"], "label": ["ham", "spam"]})
    ds = ClassificationDataset(df, tok, context_length=64)
    assert ds.label_names == ["ham", "spam"] and ds.labels == [0, 1]  # the book's ham=0, spam=1
    assert ds.max_length == len(tok.encode("win a big prize now")) == 5
    ids, label, length = ds[0]
    assert ids.tolist() == tok.encode("see you") + [50256] * 3
    assert int(label) == 0 and int(length) == 2
    assert ds.n_truncated == 0 and ds.notes == []


def test_per_batch_padding_and_truncation(tok):
    df = synthetic(6, seed=3)
    ds = ClassificationDataset(df, tok, padding="per-batch", context_length=64)
    ids, labels, lengths = next(iter(make_loader(ds, batch_size=2)))
    assert ids.shape == (2, int(lengths.max()))  # padded to the batch's longest, not the dataset's
    assert all(ids[r, int(lengths[r]) :].eq(50256).all() for r in range(2))

    short = ClassificationDataset(df, tok, max_length=3, context_length=64)
    assert short.n_truncated == 6 and "6 of 6 texts" in short.notes[0]
    assert short[0][0].shape == (3,)
    capped = ClassificationDataset(df, tok, max_length=500, context_length=64)
    assert capped.max_length == 64 and "context length 64" in capped.notes[0]


@pytest.mark.parametrize(
    "df, labels, match",
    [
        (pd.DataFrame({"text": ["a", "b"], "label": ["ham", "ham"]}), None, "only one label"),
        (pd.DataFrame({"text": ["a", "b"], "label": ["ham", "eggs"]}), ["ham", "spam"], "Row 1 .*'eggs'"),
        (pd.DataFrame({"text": ["a", "  "], "label": [0, 1]}), None, "Row 1 has an empty text"),
        (pd.DataFrame({"message": ["a"], "label": [0]}), None, "columns 'text' and 'label'"),
    ],
)
def test_dataset_validation(tok, df, labels, match):
    with pytest.raises(LabError, match=match):
        ClassificationDataset(df, tok, labels=labels)


def test_integer_labels_and_given_names(tok):
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": [0, 2, 1]})
    assert ClassificationDataset(df, tok).label_names == ["0", "1", "2"]
    one_class = pd.DataFrame({"text": ["a"], "label": ["spam"]})  # fine for a validation split
    assert ClassificationDataset(one_class, tok, labels=["ham", "spam"]).labels == [1]


def test_prepare_classifier_modes():
    modes = ("last-block", "all", "head-only", "lora")
    counts = {mode: trainable_summary(tiny_classifier(mode)) for mode in modes}
    model = tiny_classifier("last-block")
    head = 32 * 2 + 2
    last = sum(p.numel() for p in model.trf_blocks[-1].parameters())
    assert counts["last-block"]["trainable"] == last + 2 * 32 + head  # + final_norm scale/shift
    assert counts["head-only"]["trainable"] == head
    assert counts["all"]["trainable"] == counts["all"]["total"]
    lora_model = tiny_classifier("lora")
    lora = sum(m.A.numel() + m.B.numel() for m in lora_layers(lora_model).values())
    assert len(lora_layers(lora_model)) == 2 * 6 and counts["lora"]["trainable"] == lora + head
    parts = {p["name"]: p for p in counts["last-block"]["parts"]}
    assert parts["trf_blocks.0"]["trainable"] == 0 and parts["out_head"]["trainable"] == head
    torch.manual_seed(123)  # the book seeds the global RNG right before building the head
    book_head = torch.nn.Linear(32, 2)
    assert torch.equal(model.out_head.weight, book_head.weight)
    assert torch.equal(model.out_head.bias, book_head.bias)
    with pytest.raises(LabError, match="mode"):
        prepare_classifier(GPTModel(CFG), 2, mode="everything")


def test_token_positions_on_padded_input():
    model = tiny_classifier()
    ids = torch.tensor([[11, 12, 13, 14, 15], [21, 22, 23, 50256, 50256]])
    lengths = torch.tensor([5, 3])
    with torch.no_grad():
        last = classify_logits(model, ids, lengths, "last")
        real = classify_logits(model, ids, lengths, "last-real")
        first = classify_logits(model, ids, lengths, "first")
        alone = classify_logits(model, ids[1:, :3], None, "last")  # row 1 without its padding
        assert torch.allclose(last[0], real[0])  # no padding: the same position
        assert torch.allclose(real[1], alone[0], atol=1e-5)  # causal: padding after it changes nothing
        assert not torch.allclose(last[1], real[1], atol=1e-4)  # the book's -1 reads a pad token
        assert torch.allclose(first, classify_logits(model, ids[:, :1], None, "last"), atol=1e-5)
        assert torch.allclose(model.out_head(model(ids, return_hidden=True))[:, -1], last, atol=1e-6)
    with pytest.raises(LabError, match="position"):
        classify_logits(model, ids, lengths, "middle")


def test_training_beats_majority_and_keeps_early_blocks_frozen(tok):
    train = ClassificationDataset(synthetic(48, seed=0), tok, context_length=64)
    test = ClassificationDataset(synthetic(24, seed=1), tok, max_length=train.max_length, context_length=64,
                                 labels=train.label_names)
    model = tiny_classifier("last-block")
    frozen_before = {k: v.clone() for k, v in model.trf_blocks[0].state_dict().items()}
    emb_before = model.tok_emb.weight.clone()
    train_loader = make_loader(train, batch_size=8, shuffle=True, drop_last=True)
    test_loader = make_loader(test, batch_size=8)
    seen = []
    result = train_classifier(model, train_loader, test_loader, epochs=3, lr=1e-3, eval_every=5,
                              on_record=seen.append)

    assert result.steps == 18 and result.examples_seen == 144 and not result.stopped
    assert seen == result.records and [r["kind"] for r in seen].count("epoch") == 3
    assert seen[-1]["val_loss"] < seen[0]["val_loss"]
    majority = 0.5
    report = evaluate(model, test_loader, train.label_names)
    assert report["accuracy"] > majority + 0.2
    assert sum(map(sum, report["confusion"])) == len(test) == len(report["per_example"])
    assert report["per_example"][0]["text"].startswith("win prize")
    assert abs(sum(report["per_example"][0]["probs"]) - 1) < 1e-4
    assert all(not p.requires_grad for p in model.trf_blocks[0].parameters())
    for k, v in model.trf_blocks[0].state_dict().items():
        assert torch.equal(v, frozen_before[k]), k
    assert torch.equal(model.tok_emb.weight, emb_before)

    answer = predict(model, tok, "win prize cold now", max_length=train.max_length, labels=train.label_names)
    assert answer["label"] == "spam" and set(answer["probs"]) == {"ham", "spam"}
    with pytest.raises(LabError, match="empty"):
        predict(model, tok, "   ", labels=train.label_names)


def test_stop_event_and_nan_guard(tok):
    ds = ClassificationDataset(synthetic(16, seed=2), tok, context_length=64)
    loader = make_loader(ds, batch_size=4)
    stop = threading.Event()
    stop.set()
    model = tiny_classifier("head-only")
    result = train_classifier(model, loader, loader, epochs=2, stop_event=stop)
    assert result.stopped and result.steps == 0 and len(result.records) == 1

    with torch.no_grad():
        model.out_head.weight.fill_(float("nan"))
    with pytest.raises(LabError, match="NaN.*learning rate"):
        train_classifier(model, loader, loader, epochs=1)
    assert calc_accuracy_loader(loader, tiny_classifier(), num_batches=1) >= 0.0
