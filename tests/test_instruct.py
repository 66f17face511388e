"""Instruction fine-tuning (chapter 7): Alpaca template, the book's collate example, scores, a tiny run."""

from __future__ import annotations

import json

import pytest
import torch

from core.config import GPTConfig
from core.errors import LabError
from core.instruct import (
    InstructionDataset,
    custom_collate_fn,
    exact_match,
    export_responses_json,
    format_example,
    format_input,
    format_prompt,
    generate_responses,
    loss_mask_view,
    make_instruction_loader,
    score_responses,
    similarity_score,
    token_f1,
    train_instruct,
)
from core.model import GPTModel
from core.tokenizers import get_tokenizer

P, X = 50256, -100
BOOK_INTRO = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)
NAMES = "Anna Ben Carl Dora Emil Fay Gus Hana Ivo Jana Kai Lena Milo Nora Otto Pia".split()


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer("gpt2")


def greetings(names: list[str]) -> list[dict[str, str]]:
    return [{"instruction": "Greet the person.", "input": n, "output": f"Hello, {n}!"} for n in names]


def test_format_input_matches_the_book():
    with_input = {"instruction": "Identify the correct spelling of the following word.", "input": "Ocassion",
                  "output": "The correct spelling is 'Occasion.'"}
    assert format_input(with_input) == (
        BOOK_INTRO + "\n\n### Instruction:\nIdentify the correct spelling of the following word."
        "\n\n### Input:\nOcassion"
    )
    assert format_example(with_input) == format_input(with_input) + (
        "\n\n### Response:\nThe correct spelling is 'Occasion.'"
    )
    without = {"instruction": "What is an antonym of 'complicated'?", "input": "", "output": "simple"}
    assert format_input(without) == BOOK_INTRO + "\n\n### Instruction:\nWhat is an antonym of 'complicated'?"
    assert format_input({"instruction": "Say hi."}) == BOOK_INTRO + "\n\n### Instruction:\nSay hi."


def test_missing_fields_name_the_record(tok):
    good = greetings(["Anna"])[0]
    with pytest.raises(LabError, match="Record 1 has no 'instruction'"):
        InstructionDataset([good, {"instruction": " ", "input": "", "output": "x"}], tok)
    with pytest.raises(LabError, match="Record 0 has no 'output'"):
        InstructionDataset([{"instruction": "Say hi.", "input": ""}], tok)
    with pytest.raises(LabError, match="output"):
        format_example({"instruction": "Say hi."})


def test_collate_reproduces_the_book_example():
    inputs, targets = custom_collate_fn([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, P, P, P], [7, 8, 9, P, P]]
    assert targets.tolist() == [[1, 2, 3, 4, P], [6, P, X, X, X], [8, 9, P, X, X]]
    assert inputs.dtype == targets.dtype == torch.long

    short_in, short_tg = custom_collate_fn([[0, 1, 2, 3, 4], [5, 6]], allowed_max_length=3)
    assert short_in.tolist() == [[0, 1, 2], [5, 6, P]]
    assert short_tg.tolist() == [[1, 2, 3], [6, P, X]]


def test_collate_masks_the_prompt_token_by_token():
    batch = [{"input_ids": [0, 1, 2, 3, 4], "prompt_length": 3}, {"input_ids": [5, 6], "prompt_length": 1},
             {"input_ids": [7, 8, 9], "prompt_length": 2}]
    inputs, targets = custom_collate_fn(batch, mask_prompt=True)
    assert inputs.tolist() == [[0, 1, 2, 3, 4], [5, 6, P, P, P], [7, 8, 9, P, P]]
    # Target j predicts token j + 1: prompt tokens 1, 2 (row 0) and 8 (row 2) no longer count.
    assert targets.tolist() == [[X, X, 3, 4, P], [6, P, X, X, X], [X, 9, P, X, X]]
    unmasked = custom_collate_fn(batch)[1]
    assert unmasked.tolist() == [[1, 2, 3, 4, P], [6, P, X, X, X], [8, 9, P, X, X]]
    override = custom_collate_fn([[0, 1, 2, 3, 4]], mask_prompt=True, prompt_lengths=[5])[1]
    assert override.tolist() == [[X, X, X, X, P]]  # only the end-of-text target is left
    with pytest.raises(LabError, match="prompt lengths"):
        custom_collate_fn([[1], [2]], prompt_lengths=[1])

    view = loss_mask_view(inputs, targets)
    assert [[c["counts"] for c in row] for row in view] == (targets != X).tolist()
    assert view[0][2] == {"token_id": 2, "target_id": 3, "counts": True}


def test_dataset_prompt_lengths_and_truncation(tok):
    data = greetings(["Anna", "Ben"])
    ds = InstructionDataset(data, tok)
    for i, entry in enumerate(data):
        prompt = tok.encode(format_prompt(entry))  # the instruction, its input and the response header
        assert prompt[: len(tok.encode(format_input(entry)))] == tok.encode(format_input(entry))
        assert ds.prompt_lengths[i] == len(prompt)
        assert ds.encoded_texts[i] == tok.encode(format_example(entry))
        assert ds[i]["input_ids"][: len(prompt)] == prompt
    assert ds.n_truncated == 0 and ds.notes == []

    cut = InstructionDataset(data, tok, max_length=30)
    assert cut.n_truncated == 2 and "2 of 2 examples" in cut.notes[0]
    assert all(len(ids) == 30 for ids in cut.encoded_texts) and cut.prompt_lengths == [30, 30]

    inputs, targets = next(iter(make_instruction_loader(ds, batch_size=2, mask_prompt=True)))
    view = loss_mask_view(inputs, targets, tokenizer=tok)
    counted = "".join(c["target"] for c in view[0] if c["counts"])
    assert counted == "Hello, Anna!<|endoftext|>"  # the response and its end, nothing of the template
    plain = loss_mask_view(*next(iter(make_instruction_loader(ds, batch_size=2))), tokenizer=tok)
    assert "### Response:" in "".join(c["target"] for c in plain[0] if c["counts"])  # unmasked: all of it


def test_an_empty_answer_never_matches_a_reference_of_articles():
    """A reference such as "The." normalises to nothing under SQuAD's rules; an empty answer must still score 0."""
    for ref in ("the", "The.", "A", "!!"):
        assert exact_match("", ref) == 0.0 and token_f1("", ref) == 0.0 and similarity_score("", ref) == 0.0
        assert exact_match(ref, ref) == 1.0
    assert exact_match("a", "the") == 0.0
    assert score_responses(["", ""], ["the", "Paris"])["exact_match"] == 0.0


def test_scores_on_hand_examples():
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Paris", "London") == 0.0
    assert token_f1("The cat sat", "a cat sat down") == pytest.approx(0.8)  # P = 2/2, R = 2/3
    assert token_f1("dog", "") == 0.0 and token_f1("x y", "z") == 0.0
    # An empty or whitespace-only answer never matches, not even an empty reference.
    for blank in ("", "   ", "\n\t"):
        for ref in ("", " ", "Paris"):
            assert exact_match(blank, ref) == token_f1(blank, ref) == similarity_score(blank, ref) == 0.0
    scores = score_responses(["Paris", "blue sky"], ["paris.", "The sky is blue"])
    assert scores["exact_match"] == 0.5 and scores["token_f1"] == pytest.approx(0.9) and scores["n"] == 2
    assert similarity_score("Hello, Anna!", "hello anna") == 1.0
    assert similarity_score("xyz", "abc") == 0.0
    assert 0.0 < similarity_score("the colour red", "the color red") < 1.0
    with pytest.raises(LabError):
        score_responses(["a"], [])


def test_export_responses_json():
    entries = greetings(["Anna", "Ben"])
    records = json.loads(export_responses_json(entries, ["Hi Anna", "Hi Ben"]))
    assert records[1] == {**entries[1], "model_response": "Hi Ben"}
    with pytest.raises(LabError):
        export_responses_json(entries, ["only one"])


def test_tiny_model_learns_to_greet(tok):
    train, val = greetings(NAMES[:12]), greetings(NAMES[12:])
    cfg = GPTConfig(vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    torch.manual_seed(0)
    model = GPTModel(cfg)
    train_loader = make_instruction_loader(InstructionDataset(train, tok, max_length=64), 4, shuffle=True)
    val_loader = make_instruction_loader(InstructionDataset(val, tok, max_length=64), 4)
    refs = [e["output"] for e in val]
    before = score_responses(generate_responses(model, tok, val, max_new_tokens=10), refs)

    result = train_instruct(model, train_loader, val_loader, epochs=20, max_steps=24, lr=1e-2, eval_every=8,
                            eval_batches=1)
    assert result.steps == 24 and result.tokens_seen > 0 and not result.stopped
    assert [r["step"] for r in result.records] == [1, 8, 16, 24]
    assert result.records[-1]["val_loss"] < 0.3 * result.records[0]["val_loss"]

    answers = generate_responses(model, tok, val, max_new_tokens=10)
    assert all(isinstance(a, str) and "###" not in a for a in answers)
    after = score_responses(answers, refs)
    assert after["token_f1"] > before["token_f1"] + 0.3


@pytest.mark.slow
def test_finetuning_raises_the_score_on_the_builtin_set(tok):
    """Issue 5: the runner's score after fine-tuning is measurably higher than before on the built-in set.

    The tiny preset at random init with the page's suggested settings (prompt masked, lr 1e-3), shortened to fit
    CI; bench/instruct_score.py runs the full 500 steps through the page's job (exact match 0 → 0.12).
    """
    from core.datasets import load_instructions, split_instructions

    train, val, test = split_instructions(load_instructions("builtin-instructions"))
    torch.manual_seed(123)
    model = GPTModel(GPTConfig.preset("tiny", drop_rate=0.0))
    ctx = model.cfg.context_length
    train_loader = make_instruction_loader(InstructionDataset(train, tok, ctx), 8, shuffle=True, drop_last=True,
                                           mask_prompt=True)
    val_loader = make_instruction_loader(InstructionDataset(val, tok, ctx), 8, mask_prompt=True)
    refs = [e["output"] for e in test]
    before = score_responses(generate_responses(model, tok, test, max_new_tokens=8), refs)
    result = train_instruct(model, train_loader, val_loader, epochs=50, max_steps=300, lr=1e-3, eval_every=100,
                            eval_batches=2)
    after = score_responses(generate_responses(model, tok, test, max_new_tokens=8), refs)
    # Only the answers count (the prompt and its response header are masked), so the loss falls less than when
    # the easy template tokens counted too: measured 10.72 → 7.03, with exact match 0 → 0.14.
    assert result.records[-1]["val_loss"] < 0.75 * result.records[0]["val_loss"]
    assert before["exact_match"] == 0.0
    assert after["token_f1"] >= before["token_f1"] + 0.04, (before, after)
    assert after["exact_match"] >= 2 / len(test), (before, after)
