"""The active model as a small JSON-able spec: which model every page after Pretraining uses, and how to build it.

A spec is a plain dict (never a tensor), so it survives reruns, can be shown, put in a URL and hashed cheaply:

- ``{"kind": "preset", "name": "tiny", "seed": 123}``: a randomly initialised preset
- ``{"kind": "run", "run_id": "...", "runs_dir": "runs"}``: a checkpoint trained in the app or the CLI
- ``{"kind": "hf", "path": ".../model.safetensors"}``: GPT-2 weights in Hugging Face's layout

The Streamlit layer caches :func:`build_model` keyed by the spec and :func:`spec_stamp`; the CLI and the tests
call it directly, so a spec means the same model everywhere.

Example:
    >>> model = build_model(DEFAULT_MODEL)
    >>> model.cfg.context_length, model.training
    (64, False)
    >>> describe_spec(DEFAULT_MODEL)
    'tiny preset, random init (seed 123)'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from core.config import GPTConfig
from core.model import GPTModel
from core.tokenizers import tokenizer_for_model

DEFAULT_MODEL: dict[str, Any] = {"kind": "preset", "name": "tiny", "seed": 123}
KINDS = ("preset", "run", "hf")


def default_runs_dir() -> Path:
    """Where runs live unless a spec names its own folder (``LLMLAB_RUNS_DIR``, default ``runs``)."""
    return Path(os.environ.get("LLMLAB_RUNS_DIR", "runs"))


def run_checkpoint(spec: dict[str, Any]) -> Path:
    """The checkpoint file of a ``"run"`` spec."""
    return Path(spec.get("runs_dir") or default_runs_dir()) / spec["run_id"] / "model.safetensors"


def spec_file(spec: dict[str, Any]) -> Path | None:
    """The file a spec loads (None for presets)."""
    kind = spec.get("kind")
    return run_checkpoint(spec) if kind == "run" else Path(spec["path"]) if kind == "hf" else None


def spec_stamp(spec: dict[str, Any]) -> float:
    """When the spec's file last changed (0 for presets and missing files): part of a cache key, so a run that
    wrote a new checkpoint is loaded again."""
    path = spec_file(spec)
    return path.stat().st_mtime if path is not None and path.exists() else 0.0


def build_model(spec: dict[str, Any]) -> GPTModel:
    """The model a spec describes, in eval mode.

    Raises:
        ValueError: an unknown kind. The loaders raise LabError for missing or damaged files.
    """
    kind = spec.get("kind")
    if kind == "preset":
        with torch.random.fork_rng(devices=[]):  # the book's seeded init, without reseeding anyone else's RNG
            torch.manual_seed(int(spec.get("seed", 123)))
            model = GPTModel(GPTConfig.preset(spec["name"], drop_rate=0.0))
    elif kind == "run":
        from core.checkpoint import load

        model = load(run_checkpoint(spec)).model
    elif kind == "hf":
        from core.checkpoint import load_hf_gpt2

        model = load_hf_gpt2(spec["path"])
    else:
        raise ValueError(f"Unknown model kind {kind!r}.")
    return model.eval()


def spec_tokenizer(spec: dict[str, Any], vocab_size: int) -> Any:
    """The tokenizer the model's ids mean: the one a run's checkpoint records, GPT-2's for presets and GPT-2."""
    recorded = None
    if spec.get("kind") == "run":
        from core.checkpoint import checkpoint_info

        recorded = checkpoint_info(run_checkpoint(spec))["extra"].get("tokenizer")
    return tokenizer_for_model(recorded, vocab_size)


def describe_spec(spec: dict[str, Any]) -> str:
    """One line for the sidebar and the pages: which model this is."""
    kind = spec.get("kind")
    if kind == "preset":
        return f"{spec['name']} preset, random init (seed {spec.get('seed', 123)})"
    if kind == "run":
        return f"trained run '{spec['run_id']}'"
    if kind == "hf":
        return f"GPT-2 weights from {Path(spec['path']).name}"
    return "unknown model"


def untie_output_head(model: GPTModel) -> bool:
    """Give a tied model its own output head, a copy of the token embedding (the book's GPT-2: ``load_weights_into_gpt``
    copies ``wte`` into ``out_head``); True when it was tied. Fine-tuning then moves the two apart, as in the book."""
    if model.out_head.weight is not model.tok_emb.weight:
        return False
    model.out_head.weight = torch.nn.Parameter(model.tok_emb.weight.detach().clone())
    model.cfg = model.cfg.replace(tie_weights=False)
    return True


def tied_head_note(model: GPTModel) -> str | None:
    """A sentence for the Instructions page when the model's output head shares the token embedding's weights
    (GPT-2 as OpenAI ships it, and as :func:`core.checkpoint.load_hf_gpt2` loads it): the book keeps a separate
    copy, so fine-tuning every layer moves both at once here and the curves drift from the book's."""
    if model.out_head.weight is not model.tok_emb.weight:
        return None
    return ("This model's output head shares its weights with the token embedding (GPT-2 ships it tied); the book "
            "loads a separate copy, so when every layer trains, both move together here and the curves drift "
            "from the book's after the first steps; switch on “Untie the output head” below to train as the book does. "
            "(Classification replaces the head, so it is not affected.)")
