"""How much memory training takes (weights, gradients, AdamW state, activations) and how much is free."""

from __future__ import annotations

from typing import Any

import torch

from core.config import GPTConfig
from core.distributed import _resolve_device
from core.fused_head import CHUNK_ROWS
from core.stats import total_parameters
from core.train_config import TrainSettings


# ------------------------------------------------------------------------------------------------ memory
def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new job: CUDA's free memory, Linux's MemAvailable, or None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def estimate_training_memory(
    model_cfg: GPTConfig, settings: TrainSettings, device: torch.device | str | None = None, world_size: int = 1
) -> dict[str, Any]:
    """The memory one training process needs at its peak, next to what is free.

    A fit of measured peaks (``bench/memory_estimate.py``; 0.86–1.04 of the peak on its grid, checked to ±25 % by the
    tests): 16 bytes a parameter (weights, gradients, AdamW's two moments), 12 bytes per logit of one block of the
    fused head (``min(B·L, 256)·V``: :mod:`core.fused_head` never holds the full ``B·L·V`` logits), 8 bytes per
    output-head weight (``V·C``: the head's gradient, worked out in the forward pass, and its scaled copy),
    48 bytes per block activation (``B·L·C·n_layers``) and, when
    dropout is on outside CUDA, 12 bytes per attention weight (``B·H·L²·n_layers``): PyTorch's CPU attention
    then keeps the whole L×L matrix of every head for the backward pass, which dominates long contexts.

    Args:
        model_cfg: the model. settings: batch size and context length are used.
        device: the training device (default: what ``settings.device`` resolves to).
        world_size: processes sharing the global batch (each holds ``batch_size / world_size`` windows).

    Returns:
        A dict with ``n_params``, ``weights_bytes``, ``grads_bytes``, ``optimizer_bytes``, ``activations_bytes``
        (``attention_bytes`` of it), ``total_bytes``, ``available_bytes`` (None if unknown), ``device`` (str)
        and ``fits`` (None if unknown).

    Example:
        >>> est = estimate_training_memory(GPTConfig.preset("tiny"), TrainSettings(batch_size=8))
        >>> est["total_bytes"] > est["weights_bytes"]
        True
    """
    dev = torch.device(device) if device is not None else _resolve_device(settings.device, world_size)
    n_params = total_parameters(model_cfg)
    b = max(1, settings.batch_size // max(1, world_size))
    ctx = settings.context_length or model_cfg.context_length
    blocks = b * ctx * model_cfg.emb_dim * model_cfg.n_layers * 48
    logits = min(b * ctx, CHUNK_ROWS) * model_cfg.vocab_size * 12 + model_cfg.vocab_size * model_cfg.emb_dim * 8
    full_attention = model_cfg.drop_rate > 0 and dev.type != "cuda"  # no fused kernel: the L×L matrices stay
    attention = b * model_cfg.n_heads * ctx * ctx * model_cfg.n_layers * 12 if full_attention else 0
    est = {
        "n_params": n_params,
        "weights_bytes": 4 * n_params,
        "grads_bytes": 4 * n_params,
        "optimizer_bytes": 8 * n_params,
        "activations_bytes": blocks + logits + attention,
        "attention_bytes": attention,
    }
    est["total_bytes"] = sum(v for k, v in est.items() if k.endswith("_bytes") and k != "attention_bytes")
    free = available_memory(dev)
    est.update(available_bytes=free, device=str(dev), fits=None if free is None else est["total_bytes"] <= free)
    return est


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GB"


