"""Fine-tuned runs on disk: a classifier or an instruction-tuned model, saved as a run folder beside pretraining runs.

A fine-tuning job (:func:`core.classify_job.start_classify_job`, :func:`core.instruct_job.start_instruct_job`) given a
``runs_dir`` ends by calling :func:`save_finetune_run`, so the page and ``python -m core classify|instruct`` write the
same folder:

- ``model.safetensors``: the weights, LoRA adapters merged in. An instruction-tuned model is a plain GPT checkpoint
  (:func:`core.checkpoint.load` reads it; it can be the active model and ``python -m core generate`` continues text
  with it). A classifier stores its K-class head as ``classifier.weight``/``classifier.bias`` beside the GPT body
  (:func:`load_classifier` rebuilds it; it cannot generate text).
- ``run.json``: the usual run record (``core.runs``) plus ``task`` (``"classify"`` or ``"instruct"``), ``base`` (the
  model it started from, in the link form of :mod:`core.lab_state`), ``finetune`` (its settings) and ``details``
  (test accuracy and confusion matrix, or the before/after scores).
- ``responses.json`` (instruction runs): the test answers in the book's format (``instruction``, ``input``,
  ``output``, ``model_response``).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core import fileio, runs
from core.checkpoint import FORMAT, _extra_json, _lab_metadata, load_state_dict_safely, standalone, write_safetensors
from core.errors import LabError
from core.lora import remove_lora
from core.model import GPTModel
from core.model_assembly import _expected_shapes, assemble, check_tensors
from core.safetensors_check import read_header

TASKS = ("classify", "instruct")
HEAD = ("classifier.weight", "classifier.bias")
RESPONSES_FILE = "responses.json"


def plain_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every LoRA adapter merged into its base weight (the model itself is not changed)."""
    out = copy.deepcopy(model)
    remove_lora(out, merge=True)
    return out


def _classifier_tensors(model: GPTModel) -> dict[str, torch.Tensor]:
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("out_head.")}
    state[HEAD[0]], state[HEAD[1]] = model.out_head.weight, model.out_head.bias
    return {name: standalone(t) for name, t in state.items()}


def save_model_file(model: nn.Module, task: str, path: Path, extra: dict[str, Any]) -> None:
    """Write the fine-tuned weights (adapters merged) to ``path``, atomically."""
    from core.checkpoint import save

    merged = plain_model(model)
    if task == "instruct":
        save(merged, path, extra=extra)
        return
    cfg = merged.cfg.replace(tie_weights=True)  # the language-model head is gone: nothing of it to store
    meta = {"format": FORMAT, "config": cfg.to_json(), "extra": _extra_json({**extra, "task": "classify"})}
    write_safetensors(path, _classifier_tensors(merged), meta)


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[GPTModel, dict[str, Any]]:
    """A saved classifier (GPT body + K-class head) and its checkpoint ``extra`` (labels, max length, position).

    Raises:
        LabError: the file is missing or damaged, or it is not a classifier (an instruction or pretraining run).
    """
    path = Path(path)
    header = read_header(path)
    cfg, extra = _lab_metadata(path, header)
    if extra.get("task") != "classify" or HEAD[0] not in header.shapes:
        raise LabError(f"{path} is not a saved classifier; train one with 'python -m core classify train' or on "
                       "the Classification page.")
    k = header.shapes[HEAD[0]][0]
    expected = {**_expected_shapes(cfg), HEAD[0]: (k, cfg.emb_dim), HEAD[1]: (k,)}
    check_tensors(path, header, expected, strict=True)
    tensors, _ = load_state_dict_safely(path, device=device)
    weight, bias = tensors.pop(HEAD[0]).float(), tensors.pop(HEAD[1]).float()
    model = assemble(cfg, tensors, torch.device(device))
    model.out_head = nn.Linear(cfg.emb_dim, k).to(weight.device)
    model.out_head.weight, model.out_head.bias = nn.Parameter(weight), nn.Parameter(bias)
    return model.eval(), extra


def _metrics(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("kind", "step", "epoch", "examples_seen", "tokens_seen", "train_loss", "val_loss", "train_acc",
            "val_acc", "elapsed_s")  # fmt: skip
    return [{k: r[k] for k in keep if k in r} for r in records]


def _details(task: str, details: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able summary kept in run.json (the per-example lists stay out: they can be long)."""
    if task == "classify":
        ev = details["evaluation"]
        keys = ("majority", "majority_label", "labels", "max_length", "steps", "examples_seen", "sizes", "elapsed_s")
        return {"accuracy": ev["accuracy"], "loss": ev["loss"], "confusion": ev["confusion"],
                **{k: details[k] for k in keys}}  # fmt: skip
    keys = ("score_before", "score_after", "answered", "sizes", "steps", "tokens_seen")
    return {k: details[k] for k in keys}


def save_finetune_run(result: Any, runs_dir: str | Path, run_id: str, base: str, tokenizer: str = "gpt2",
                      owner: str | None = None) -> Path:
    """Write a finished (or stopped) fine-tuning job's :class:`core.finetune_job.FinetuneResult` as a run folder.

    Args:
        base: the model it started from, e.g. ``"run:20261204-101500-mini"`` or ``"preset:mini:123"``.

    Returns:
        The run folder. Raises LabError when the folder cannot be written (disk full, permissions).
    """
    task = result.kind
    if task not in TASKS or result.model is None:
        raise LabError("Only a classification or instruction job that still holds its model can be saved.")
    run_dir = runs.run_path(runs_dir, run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.check_writable(run_dir)
    steps = int(result.details.get("steps", 0))
    details = result.details
    extra = {"step": steps, "tokenizer": tokenizer, "run_id": run_id, "task": task, "base": base}
    if task == "classify":
        extra |= {"labels": details["labels"], "max_length": details["max_length"],
                  "position": result.settings["position"]}  # fmt: skip
    save_model_file(result.model, task, run_dir / runs.MODEL_FILE, extra)
    if task == "instruct":
        text = details["json"]
        fileio.atomic_write(run_dir / RESPONSES_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    cfg = result.model.cfg
    runs.atomic_write_json(run_dir / runs.RUN_FILE, {
        "format": runs.RUN_FORMAT, "task": task, "run_id": run_id, "created": now, "updated": now,
        "status": result.status, "message": result.message, "step": steps, "checkpoint_step": steps,
        "device": str(next(result.model.parameters()).device), "process": runs.process_tag(),
        "notes": [str(n) for n in details.get("notes", [])], "model_config": cfg.to_dict(),
        "settings": {"max_steps": max(steps, 1), "seed": result.settings.get("seed", 123)},
        "finetune": dict(result.settings), "base": base, "details": _details(task, details),
        "metrics": _metrics(result.records), "samples": [], "owner": owner,
    })  # fmt: skip
    return run_dir


def run_task(run_dir: str | Path) -> str:
    """``"pretrain"``, ``"classify"`` or ``"instruct"``: what made this run folder (LabError if unreadable)."""
    return str(runs.read_run(Path(run_dir)).get("task", "pretrain"))
