"""The instruction job behind the Instructions page: records → the book's split → before/after responses around
a fine-tuning job, scored and kept in the job's result.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from torch import nn

from core.access import owner_tag
from core.datasets import split_instructions
from core.errors import LabError, check_int
from core.finetune_job import (
    FinetuneResult,
    SaveTo,
    check_finetune_settings,
    check_planned_steps,
    check_save_target,
    release_old_models,
    save_result,
)
from core.instruct import (
    InstructionDataset,
    custom_collate_fn,
    export_responses_json,
    generate_responses,
    loss_mask_view,
    make_instruction_loader,
    score_responses,
    train_instruct,
)
from core.instruct_score import SCORE_HELP  # noqa: F401  (the page shows the definitions)
from core.jobs import Job, JobRegistry, registry
from core.limits import current_limits
from core.model import GPTModel
from core.model_spec import untie_output_head
from core.runs import default_run_id

MAX_NEW_TOKENS = 1024  # per answer, outside the demo (which has its own, lower cap)


@dataclass(frozen=True)
class InstructSettings:
    """Everything an instruction run needs besides the model and the data (all plain values)."""

    dataset: str = "builtin-instructions"
    epochs: int = 2
    max_steps: int | None = 30
    lr: float = 5e-4
    batch_size: int = 8
    max_length: int | None = None  # default: the model's context length
    mask_prompt: bool = False
    n_eval: int = 10
    max_new_tokens: int = 32
    eval_every: int = 5
    seed: int = 123
    untie_head: bool = False  # a tied model (GPT-2 as shipped) gets its own output head first, as in the book


def instruction_splits(records: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[dict], list[dict], list[str]]:
    """The book's 85/5/10 split, with small data kept usable: ``(train, val, test, notes)``."""
    if not isinstance(records, Sequence) or isinstance(records, str) or len(records) < 3:
        raise LabError("Instruction fine-tuning needs at least 3 records (training, validation and test); "
                       "load or upload more.")
    train, val, test = split_instructions(records)
    notes = []
    if not test:
        test, train = train[-1:], train[:-1]
        notes.append("The data is too small for a 10 % test split; the last training record is the test set.")
    if not val:
        val = train[-1:]
        notes.append("The data is too small for a 5 % validation split; validation reuses a training record.")
    return list(train), list(val), list(test), notes


def xray_batch(records: Sequence[Mapping[str, Any]], tokenizer: Any, mask_prompt: bool,
               max_length: int | None = None, n: int = 2) -> list[list[dict[str, Any]]]:
    """The first ``n`` records collated exactly as in training, as :func:`core.instruct.loss_mask_view` rows."""
    ds = InstructionDataset(list(records[:n]), tokenizer, max_length)
    inputs, targets = custom_collate_fn([ds[i] for i in range(len(ds))], mask_prompt=mask_prompt,
                                        allowed_max_length=max_length)  # (n, T) each
    return loss_mask_view(inputs, targets, tokenizer)


def _respond(job: Job, model: nn.Module, tokenizer: Any, entries: list[dict], max_new_tokens: int,
             lo: float, hi: float, what: str) -> list[str]:
    """Greedy answers one entry at a time, so progress moves and Stop is honoured between examples."""
    out = []
    for i, entry in enumerate(entries):
        if job.stop_event.is_set():
            break
        job.update(progress=lo + (hi - lo) * i / max(len(entries), 1),
                   message=f"Generating {what} responses: {i + 1}/{len(entries)}")
        out += generate_responses(model, tokenizer, [entry], max_new_tokens=max_new_tokens)
    return out  # shorter than entries when Stop came first


def start_instruct_job(model: GPTModel, tokenizer: Any, records: Sequence[Mapping[str, Any]],
                       settings: InstructSettings, run_id: str | None = None,
                       jobs: JobRegistry | None = None, visitor: str | None = None,
                       save: SaveTo | None = None) -> Job:
    """Answer ``n_eval`` test prompts, fine-tune a deep copy of ``model``, answer them again — in one job.

    ``job.result`` is a :class:`FinetuneResult` with ``details``: ``entries`` (the scored test records),
    ``before``/``after`` (responses), ``score_before``/``score_after`` (:func:`core.instruct.score_responses`),
    ``notes``, ``sizes``, ``json`` (the book's response file).
    """
    s = settings
    check_finetune_settings(s.epochs, s.max_steps, s.lr, s.batch_size)
    check_int(s.n_eval, "The number of test examples to answer", low=1)
    caps = current_limits()
    check_int(s.max_new_tokens, "max_new_tokens", low=1, high=caps.max_new_tokens or MAX_NEW_TOKENS,
              fix="answers in the book's data are well under 256 tokens")
    jobs = jobs or registry()
    run_id = run_id or default_run_id("instruct")
    jobs.check_can_start(run_id)
    train, val, test, notes = instruction_splits(records)
    max_length = min(s.max_length or model.cfg.context_length, model.cfg.context_length)
    train_ds, val_ds = InstructionDataset(train, tokenizer, max_length), InstructionDataset(val, tokenizer, max_length)
    notes += train_ds.notes
    planned = check_planned_steps(len(train_ds), s.batch_size, s.epochs, s.max_steps)
    check_save_target(save, run_id, model, jobs)
    entries = test[: s.n_eval]

    def target(job: Job) -> FinetuneResult:
        m = copy.deepcopy(model)
        if s.untie_head:
            untie_output_head(m)
        m.requires_grad_(True)
        before = _respond(job, m, tokenizer, entries, s.max_new_tokens, 0.0, 0.1, "'before'")
        train_loader = make_instruction_loader(train_ds, s.batch_size, shuffle=True,
                                               drop_last=len(train_ds) > s.batch_size, mask_prompt=s.mask_prompt,
                                               seed=s.seed)
        val_loader = make_instruction_loader(val_ds, s.batch_size, mask_prompt=s.mask_prompt)
        total = len(train_loader) * s.epochs if s.max_steps is None else min(s.max_steps, len(train_loader) * s.epochs)

        def on_record(r: dict[str, Any]) -> None:
            job.update(record=r, progress=0.1 + 0.8 * r["step"] / max(total, 1),
                       message=f"Step {r['step']}/{total}: train loss {r['train_loss']:.3f}, "
                               f"val loss {r['val_loss']:.3f}")

        run = train_instruct(m, train_loader, val_loader, s.epochs, s.max_steps, s.lr, eval_every=s.eval_every,
                             on_record=on_record, stop_event=job.stop_event, seed=s.seed)
        after = _respond(job, m, tokenizer, entries, s.max_new_tokens, 0.9, 1.0, "'after'")
        details = {"entries": entries, "before": before, "after": after, "notes": notes,
                   "sizes": (len(train), len(val), len(test)), "steps": run.steps, "tokens_seen": run.tokens_seen,
                   **_scores(entries, before, after)}
        status = "stopped" if job.stop_event.is_set() else "finished"
        result = FinetuneResult("instruct", status, asdict(s), run.records, m, details, _summary(run.steps, details))
        return save_result(result, save, run_id, owner_tag(visitor))

    job = jobs.start(run_id, target, kind="instruct", owner=owner_tag(visitor), info={"planned_steps": planned})
    release_old_models(jobs, "instruct")
    return job


def _scores(entries: list[dict], before: list[str], after: list[str]) -> dict[str, Any]:
    """Before/after scores over the test examples answered both times (Stop can leave the answers short):
    ``score_before``, ``score_after`` (None when nothing was answered after training), ``answered`` (how many
    of the ``entries`` were answered before and after) and ``json`` (the answered records, the book's format)."""
    k = min(len(before), len(after))
    refs = [e["output"] for e in entries[:k]]
    return {"answered": {"before": len(before), "after": len(after), "of": len(entries)},
            "score_before": score_responses(before[:k], refs) if k else None,
            "score_after": score_responses(after[:k], refs) if k else None,
            "json": export_responses_json(entries[: len(after)], after)}


def _summary(steps: int, details: Mapping[str, Any]) -> str:
    sa, answered = details["score_after"], details["answered"]
    if sa is None:
        return (f"Stopped after {steps} steps, before it answered the test prompts again: there is no "
                "after-fine-tuning score. Start again and let the job finish to compare.")
    part = "" if answered["after"] == answered["of"] else f" (on the {sa['n']} of {answered['of']} prompts answered " \
        "before Stop)"
    return f"After {steps} steps: exact match {sa['exact_match']:.0%}, token F1 {sa['token_f1']:.2f}{part}."


EMPTY = "∅ (empty: it stopped at once)"
NOT_ANSWERED = "— (not answered: the job was stopped first)"


def responses_table(details: Mapping[str, Any]) -> pd.DataFrame:
    """Instruction, reference and the responses before and after fine-tuning, one row per test example (an empty
    response is shown as :data:`EMPTY`; the scores use the raw text)."""
    from core.instruct import exact_match, token_f1

    rows = []
    before, after = details["before"], details["after"]
    for i, e in enumerate(details["entries"][: len(before)]):
        b, a = before[i], after[i] if i < len(after) else None
        rows.append({"instruction": e["instruction"] + (f"\n{e['input']}" if e.get("input") else ""),
                     "reference": e["output"], "before": b or EMPTY,
                     "after": NOT_ANSWERED if a is None else a or EMPTY,
                     "exact match after": None if a is None else bool(exact_match(a, e["output"])),
                     "token F1 after": None if a is None else token_f1(a, e["output"])})
    return pd.DataFrame(rows)

