"""Every st.cache_* wrapper lives here, so caching rules are in one place.

Rules: models and tokenizers go through ``st.cache_resource`` (one shared object, never trained in place: the
training pages build their own copy); arrays and tables go through ``st.cache_data``. Arguments are plain strings
and numbers — tensors are never hashed.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from core.config import GPTConfig
from core.model import GPTModel
from core.tokenizers import get_tokenizer, tokenizer_for_model
from ui.state import RUNS_DIR, active_model_spec


@st.cache_resource(max_entries=8, show_spinner=False)
def tokenizer(name: str, text: str | None = None):
    """A tokenizer by name; text-built vocabularies (simple-v1/v2, char) are keyed by their text."""
    return get_tokenizer(name, text=text)


@st.cache_resource(max_entries=3, show_spinner="Loading the model…")
def _model(spec_json: str, stamp: float) -> GPTModel:
    import torch

    spec = json.loads(spec_json)
    kind = spec["kind"]
    if kind == "preset":
        torch.manual_seed(int(spec.get("seed", 123)))
        model = GPTModel(GPTConfig.preset(spec["name"], drop_rate=0.0))
    elif kind == "run":
        from core.checkpoint import load

        model = load(_run_checkpoint(spec)).model
    elif kind == "hf":
        from core.checkpoint import load_hf_gpt2

        model = load_hf_gpt2(spec["path"])
    else:
        raise ValueError(f"Unknown model kind {kind!r}.")
    return model.eval()


@st.cache_resource(max_entries=8, show_spinner=False)
def _model_tokenizer(spec_json: str, stamp: float):
    spec = json.loads(spec_json)
    recorded = None
    if spec["kind"] == "run":
        from core.checkpoint import checkpoint_info

        recorded = checkpoint_info(_run_checkpoint(spec))["extra"].get("tokenizer")
    return tokenizer_for_model(recorded, active_model().cfg.vocab_size)


def active_tokenizer():
    """The tokenizer the active model's ids mean: the one its checkpoint records (GPT-2's for presets and GPT-2
    weights). Every page that feeds the active model text uses this, never a hard-coded name."""
    spec = active_model_spec()
    return _model_tokenizer(json.dumps(spec, sort_keys=True), _stamp(spec))


def _run_checkpoint(spec: dict) -> Path:
    return Path(spec.get("runs_dir") or RUNS_DIR) / spec["run_id"] / "model.safetensors"


def active_model() -> GPTModel:
    """The model chosen in the sidebar (cached; reloaded when its checkpoint file changes)."""
    spec = active_model_spec()
    return _model(json.dumps(spec, sort_keys=True), _stamp(spec))


def _stamp(spec: dict) -> float:
    """When the spec's checkpoint file last changed (0 for presets): part of the cache keys."""
    if spec["kind"] not in ("run", "hf"):
        return 0.0
    path = _run_checkpoint(spec) if spec["kind"] == "run" else Path(spec["path"])
    return path.stat().st_mtime if path.exists() else 0.0


def preset_model(name: str, seed: int = 123) -> GPTModel:
    """A randomly initialised preset, e.g. to compare with the trained active model."""
    return _model(json.dumps({"kind": "preset", "name": name, "seed": seed}, sort_keys=True), 0.0)
