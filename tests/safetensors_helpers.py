"""Helpers the checkpoint, safetensors-check and Hugging Face GPT-2 tests share (no tests here)."""

from __future__ import annotations

import json
import struct

import torch


def _noisy(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter so norms and biases aren't 1/0 and any mapping mistake shows in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _ids(vocab: int, t: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (2, t), generator=torch.Generator().manual_seed(seed))


def _write_raw(path, header: dict, data: bytes = b"") -> None:
    """A safetensors file byte by byte: 8-byte little-endian header length, JSON header, data."""
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)

