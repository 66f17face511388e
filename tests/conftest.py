"""Shared fixtures: tiny seeded models and paths to optional real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from core.config import GPTConfig
from core.model import GPTModel

ROOT = Path(__file__).resolve().parents[1]
# Copies of the book's real data files live beside the repository on dev machines and in CI; never committed.
SHARED_DATA = Path(os.environ.get("LLMLAB_SHARED_DATA", ROOT.parent / "shared" / "data"))

# One thread: most test tensors are tiny, where thread start-up costs more than the math saves.
torch.set_num_threads(1)


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    """Small enough for a forward pass in milliseconds, big enough to have several heads and blocks."""
    return GPTConfig(vocab_size=101, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture
def tiny_model(tiny_cfg) -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(tiny_cfg).eval()


@pytest.fixture
def shared_data() -> Path:
    return SHARED_DATA
