"""The fine-tuning glue: LoRA-lab helpers, classification and instruction jobs on the tiny preset."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from core.classify_job import (
    ClassifySettings,
    misclassified,
    prepare_classification,
    start_classify_job,
    upload_columns,
)
from core.config import GPTConfig
from core.datasets import load_classification, load_instructions
from core.errors import LabError
from core.finetune_job import FinetuneResult, job_state
from core.instruct_job import InstructSettings, instruction_splits, responses_table, start_instruct_job, xray_batch
from core.jobs import JobRegistry
from core.lora_lab import book_lora_reference, lora_count_table, lora_layer_demo, merge_check
from core.model import GPTModel
from core.tokenizers import get_tokenizer


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer("gpt2")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(123)
    return GPTModel(GPTConfig.preset("tiny", drop_rate=0.0)).eval()


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, {n: p.requires_grad for n, p in
                                                                    model.named_parameters()}


def _assert_unchanged(model, before):
    state, grads = before
    after = model.state_dict()
    assert set(after) == set(state)
    assert all(torch.equal(after[k], v) for k, v in state.items())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == grads
    assert model.out_head.out_features == model.cfg.vocab_size


# ------------------------------------------------------------------------------------------------- LoRA lab
def test_lora_layer_demo_starts_at_zero_and_learns(tiny):
    before = _snapshot(tiny)
    demo = lora_layer_demo(tiny, "trf_blocks.0.att.W_query", rank=4, alpha=8)
    assert demo.shapes == {"W": (64, 64), "A": (4, 64), "B": (64, 4), "ΔW": (64, 64)}
    assert demo.scale == 2.0 and demo.lora_params == 4 * 128 and demo.full_params == 64 * 64
    assert not demo.B.any() and demo.max_abs_delta == 0.0 and demo.delta_rank == 0
    stepped = lora_layer_demo(tiny, "trf_blocks.0.att.W_query", rank=4, alpha=8, steps=2)
    assert stepped.grad_norms[0]["|∇A|"] == 0.0 and stepped.grad_norms[0]["|∇B|"] > 0  # B = 0: only B moves
    assert stepped.max_abs_delta > 0 and 1 <= stepped.delta_rank <= 4
    assert (lora_layer_demo(tiny, "trf_blocks.0.att.W_query", 4, 8).A == demo.A).all()  # seeded
    one = lora_layer_demo(tiny, "trf_blocks.0.att.W_query", rank=4, alpha=8, steps=1)
    assert (one.A == demo.A).all() and one.B.any()  # the first step moves B only
    _assert_unchanged(tiny, before)


def test_lora_layer_demo_bad_input(tiny):
    with pytest.raises(LabError, match="positive whole number"):
        lora_layer_demo(tiny, "trf_blocks.0.att.W_query", rank=0, alpha=8)
    with pytest.raises(LabError, match="larger than the layer"):
        lora_layer_demo(tiny, "trf_blocks.0.att.W_query", rank=65, alpha=8)
    with pytest.raises(LabError, match="not a linear layer"):
        lora_layer_demo(tiny, "trf_blocks.0", rank=4, alpha=8)


def test_lora_counts_and_book_reference(tiny):
    assert book_lora_reference() == {"full": 124_441_346, "lora": 2_666_528, "rank": 16}
    rows = {r["LoRA on"]: r for r in lora_count_table(tiny.cfg, rank=8, alpha=16)}
    per_block_att, per_block_ff = 4 * 8 * (64 + 64), 8 * (64 + 256) * 2
    assert rows["attention only (query, key, value, out)"]["trainable with LoRA"] == 2 * per_block_att
    assert rows["feed-forward only"]["trainable with LoRA"] == 2 * per_block_ff
    all_linear = rows["all linear layers (the book, appendix E)"]
    assert all_linear["trainable with LoRA"] == 2 * (per_block_att + per_block_ff) + 8 * (64 + 50257)
    assert all_linear["full fine-tuning"] == sum(p.numel() for p in tiny.parameters())


def test_merge_check_is_exact_at_init_and_close_after_merge(tiny):
    before = _snapshot(tiny)
    chk = merge_check(tiny, rank=8, alpha=16)
    assert chk["init_diff"] == 0.0 and chk["lora_vs_base"] > 1e-3 and chk["merge_diff"] < 1e-5
    assert chk["layers"] == 13
    _assert_unchanged(tiny, before)


# ------------------------------------------------------------------------------------------- classification
def test_classify_job_trains_a_copy(tiny, tok):
    before = _snapshot(tiny)
    jobs = JobRegistry(max_jobs=1)
    df = load_classification("builtin-spam")
    job = start_classify_job(tiny, tok, df, ClassifySettings(max_steps=4, batch_size=4, eval_every=2),
                             run_id="test-classify", jobs=jobs)
    assert job.wait(60)
    snap = job.snapshot()
    assert snap["status"] == "finished", snap["message"]
    res = job.result
    assert isinstance(res, FinetuneResult) and res.details["steps"] == 4
    ev = res.details["evaluation"]
    assert 0 <= ev["accuracy"] <= 1 and sum(map(sum, ev["confusion"])) == res.details["sizes"][2]
    assert 0.5 <= res.details["majority"] < 1 and res.details["labels"] == ["ham", "spam"]
    assert snap["records"] and snap["records"][-1]["kind"] == "epoch"
    assert res.model is not tiny and res.model.out_head.out_features == 2
    assert set(misclassified(ev).columns) == {"text", "true label", "predicted", "confidence"}
    _assert_unchanged(tiny, before)  # the cached model never trains


def test_classify_job_stops_and_still_evaluates(tiny, tok):
    jobs = JobRegistry(max_jobs=1)
    df = load_classification("builtin-spam")
    job = start_classify_job(tiny, tok, df, ClassifySettings(epochs=50, batch_size=2, eval_every=1000),
                             run_id="test-stop", jobs=jobs)
    while not job.snapshot()["records"] and not job.wait(0.05):
        pass  # the first record comes after the first step
    job.stop()
    assert job.wait(60)
    assert job.snapshot()["status"] == "stopped"
    assert job.result.status == "stopped" and job.result.details["steps"] < 50 * 107
    assert "accuracy" in job.result.details["evaluation"]
    assert job_state("test-stop", "classify", jobs)[0]["status"] == "stopped"
    assert job_state("test-stop", "instruct", jobs) == (None, None)  # another page's kind is not shown


def test_classification_bad_data(tiny, tok):
    one_label = pd.DataFrame({"text": [f"message {i}" for i in range(20)], "label": ["ham"] * 20})
    with pytest.raises(LabError, match="two"):
        start_classify_job(tiny, tok, one_label, ClassifySettings(), jobs=JobRegistry())
    tiny_df = pd.DataFrame({"text": ["a b", "c d", "e f"], "label": ["x", "y", "x"]})
    with pytest.raises(LabError, match="too few"):
        prepare_classification(tiny_df, tok, 64, ClassifySettings(balance=False))
    with pytest.raises(LabError, match="learning rate"):
        start_classify_job(tiny, tok, one_label, ClassifySettings(lr=0.0), jobs=JobRegistry())
    assert upload_columns(b"id;message;class\n1;hi;ham\n", "x.csv") == ["id", "message", "class"]
    assert upload_columns(b"text\tlabel\n", "x.tsv") == ["text", "label"]
    assert upload_columns(b"", "x.csv") == []


# ---------------------------------------------------------------------------------------------- instructions
def test_instruct_job_before_after(tiny, tok):
    before = _snapshot(tiny)
    jobs = JobRegistry(max_jobs=1)
    data = load_instructions("builtin-instructions")
    settings = InstructSettings(max_steps=2, batch_size=2, n_eval=2, max_new_tokens=4, eval_every=1)
    job = start_instruct_job(tiny, tok, data, settings, run_id="test-instruct", jobs=jobs)
    assert job.wait(60)
    assert job.snapshot()["status"] == "finished", job.snapshot()["message"]
    d = job.result.details
    assert len(d["before"]) == len(d["after"]) == 2 and d["steps"] == 2
    assert d["score_before"]["n"] == 2 and 0 <= d["score_after"]["token_f1"] <= 1
    assert len(job.result.records) == 2
    table = responses_table(d)
    assert list(table.columns[:4]) == ["instruction", "reference", "before", "after"] and len(table) == 2
    assert '"model_response"' in d["json"]
    _assert_unchanged(tiny, before)


@pytest.mark.parametrize("untie", [False, True])
def test_instruct_job_on_a_tied_model_unties_the_head_only_when_asked(untie, tok, tmp_path):
    from core.checkpoint import is_tied, load
    from core.finetune_job import SaveTo

    torch.manual_seed(123)
    tied = GPTModel(GPTConfig.preset("tiny", drop_rate=0.0, tie_weights=True)).eval()
    emb = tied.tok_emb.weight.detach().clone()
    settings = InstructSettings(max_steps=2, batch_size=2, n_eval=1, max_new_tokens=2, eval_every=1,
                                untie_head=untie)
    job = start_instruct_job(tied, tok, load_instructions("builtin-instructions"), settings, run_id="u",
                             jobs=JobRegistry(max_jobs=1), save=SaveTo(str(tmp_path), "preset:tiny:123"))
    assert job.wait(60) and job.snapshot()["status"] == "finished", job.snapshot()["message"]
    tuned = job.result.model
    assert is_tied(tuned) is not untie and tuned.cfg.tie_weights is not untie
    if untie:  # both moved, apart: the head started as a copy of the embedding
        assert not torch.equal(tuned.out_head.weight, tuned.tok_emb.weight)
        assert not torch.equal(tuned.out_head.weight, emb)
    assert is_tied(load(tmp_path / "u" / "model.safetensors").model) is not untie  # saved as it trained
    assert torch.equal(tied.tok_emb.weight, emb) and is_tied(tied)  # the page's model is untouched


def test_a_failed_save_keeps_the_result_and_says_why_once(tiny, tok, tmp_path):
    from core.finetune_job import SaveTo

    blocked = tmp_path / "runs"
    blocked.write_text("a file where the runs folder should be")
    settings = ClassifySettings(max_steps=2, batch_size=4, eval_every=1)
    job = start_classify_job(tiny, tok, load_classification("builtin-spam"), settings, run_id="c",
                             jobs=JobRegistry(max_jobs=1), save=SaveTo(str(blocked), "preset:tiny:123"))
    assert job.wait(60) and job.snapshot()["status"] == "finished", job.snapshot()["message"]
    d = job.result.details
    assert d["save_error"].startswith("The fine-tuned model could not be saved: ") and "saved" not in d
    assert not any("could not be saved" in str(n) for n in d["notes"])  # said once, not also among the notes
    assert job.result.model is not None and 0 <= d["evaluation"]["accuracy"] <= 1


def test_instruct_job_refuses_unbounded_answers_and_bad_counts(tiny, tok, monkeypatch):
    data = load_instructions("builtin-instructions")
    for bad, match in ((dict(max_new_tokens=100_000), "max_new_tokens must be at most 1,024, got 100000"),
                       (dict(max_new_tokens=True), "max_new_tokens must be a whole number"),
                       (dict(n_eval=0), "test examples to answer must be a positive whole number"),
                       (dict(epochs=1.5), "epochs must be a whole number")):
        with pytest.raises(LabError, match=match):
            start_instruct_job(tiny, tok, data, InstructSettings(**bad), jobs=JobRegistry())
    monkeypatch.setenv("LLMLAB_DEMO", "1")  # the hosted demo's own, lower cap
    with pytest.raises(LabError, match="at most 200"):
        start_instruct_job(tiny, tok, data, InstructSettings(max_new_tokens=201), jobs=JobRegistry())


def test_instruction_splits_and_xray(tok):
    recs = [{"instruction": f"Say {i}.", "input": "", "output": str(i)} for i in range(5)]
    train, val, test, notes = instruction_splits(recs)
    assert train and val and test and notes
    with pytest.raises(LabError, match="at least 3"):
        instruction_splits(recs[:2])
    plain = xray_batch(recs, tok, mask_prompt=False)
    masked = xray_batch(recs, tok, mask_prompt=True)
    assert len(plain) == 2 and len(plain[0]) == len(masked[0])
    assert sum(c["counts"] for c in masked[0]) < sum(c["counts"] for c in plain[0])
    assert sum(c["counts"] for c in masked[0]) >= 2  # the answer and the end-of-text still count


def test_stop_frees_the_job_slot_within_seconds(tiny, tok):
    """Stop during training: the 'after' answers are skipped, so the slot is free at once, not after 40 answers."""
    import time

    jobs = JobRegistry(max_jobs=1)
    settings = InstructSettings(max_steps=400, n_eval=40, max_new_tokens=200, eval_every=1)
    job = start_instruct_job(tiny, tok, load_instructions("builtin-instructions"), settings, jobs=jobs)
    while not job.records and job.active:
        time.sleep(0.02)
    start = time.perf_counter()
    job.stop()
    assert job.wait(30) and time.perf_counter() - start < 10.0
    assert job.status == "stopped" and jobs.active() == []
    d = job.result.details  # nothing was answered after training: no "after" score, and the result says why
    assert d["answered"] == {"before": 40, "after": 0, "of": 40} and d["score_after"] is None
    assert "before it answered the test prompts again" in job.result.message
    table = responses_table(d)
    assert len(table) == 40 and table["after"].str.startswith("— (not answered").all()
    assert table["exact match after"].isna().all() and d["json"] == "[]"


def test_the_misclassified_list_holds_every_mistake_most_confident_first():
    per = [{"text": f"m{i}", "label": "ham", "pred": "spam" if i < 152 else "ham", "probs": [0.4 - i / 1e4, 0.6]}
           for i in range(300)]
    per[7]["probs"] = [0.01, 0.99]
    wrong = misclassified({"per_example": per})
    assert len(wrong) == 152 and wrong.iloc[0]["text"] == "m7" and list(wrong["confidence"])[0] == 0.99
    assert len(misclassified({"per_example": per}, limit=5)) == 5
