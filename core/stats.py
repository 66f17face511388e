"""Numbers about a model: parameters per component, memory, FLOPs, a shape trace, and small teaching demos.

The parameter breakdown is computed from the config alone (so the UI can show GPT-2 XL without building it) and
is tested against the real :class:`core.model.GPTModel` count.

Example:
    >>> from core.config import GPTConfig
    >>> total_parameters(GPTConfig.preset("gpt2-small"))
    163009536
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.config import GPTConfig
from core.errors import LabError, check_int

BYTES_PER_PARAM = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


def parameter_breakdown(cfg: GPTConfig) -> list[dict]:
    """One row per component: ``{"component", "per_block", "count", "params"}``.

    ``params`` is the total for that component across all blocks; ``per_block`` is True for rows that repeat in
    every transformer block. The output head has 0 parameters of its own when tied to the token embedding.
    """
    c, v, t, n = cfg.emb_dim, cfg.vocab_size, cfg.context_length, cfg.n_layers
    hidden = cfg.ff_mult * c
    qkv = 3 * (c * c + (c if cfg.qkv_bias else 0))
    rows = [
        ("Token embedding", False, 1, v * c),
        ("Positional embedding", False, 1, t * c),
        ("Attention Q/K/V", True, n, qkv),
        ("Attention output projection", True, n, c * c + c),
        ("Feed-forward (2 linear layers)", True, n, (c * hidden + hidden) + (hidden * c + c)),
        ("LayerNorms in blocks (2 each)", True, n, 2 * 2 * c),
        ("Final LayerNorm", False, 1, 2 * c),
        ("Output head" + (" (tied to token embedding)" if cfg.tie_weights else ""), False, 1,
         0 if cfg.tie_weights else c * v),
    ]
    return [
        {"component": name, "per_block": per_block, "count": count, "params": count * each}
        for name, per_block, count, each in rows
    ]


def total_parameters(cfg: GPTConfig) -> int:
    """Total parameters from the config alone (equals ``count_parameters(GPTModel(cfg))``)."""
    return sum(row["params"] for row in parameter_breakdown(cfg))


def memory_estimate(cfg: GPTConfig, dtype: str = "fp32") -> dict[str, int]:
    """Bytes needed for the weights alone and for training with AdamW (weights + grads + 2 moments).

    Training memory assumes fp32 optimizer state whatever ``dtype`` the weights use; activations depend on
    batch size and context and are not included here (see ``core.train`` for the full estimate).
    """
    if dtype not in BYTES_PER_PARAM:
        raise LabError(f"Unknown dtype {dtype!r}; choose one of {', '.join(BYTES_PER_PARAM)}.")
    n = total_parameters(cfg)
    weights = n * BYTES_PER_PARAM[dtype]
    return {"parameters": n, "weights_bytes": weights, "training_bytes": weights * 2 + n * 4 * 2}


def flops_per_token(cfg: GPTConfig, context: int | None = None) -> dict[str, int]:
    """Approximate forward FLOPs per token (a multiply-add counts as 2 FLOPs).

    Every weight matrix costs 2 FLOPs per parameter per token; attention scores and the weighted sum add
    ``2 · 2 · n_layers · context · emb_dim``. Training costs about 3× the forward pass (backward ≈ 2× forward).
    """
    t = context or cfg.context_length
    c, n = cfg.emb_dim, cfg.n_layers
    matmul_params = n * (4 * c * c + 2 * cfg.ff_mult * c * c) + c * cfg.vocab_size
    forward = 2 * matmul_params + 4 * n * t * c
    return {"forward": forward, "training": 3 * forward}


@dataclass(frozen=True)
class ShapeRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def shape_trace(model: nn.Module, idx: torch.Tensor, max_depth: int = 3) -> list[ShapeRow]:
    """Run one forward pass and record the output shape of every module down to ``max_depth`` dots.

    Example:
        >>> from core.model import GPTModel
        >>> rows = shape_trace(GPTModel(GPTConfig.preset("tiny")), torch.tensor([[1, 2, 3]]))
        >>> rows[-1].name, rows[-1].output_shape
        ('out_head', (1, 3, 50257))
    """
    rows: list[ShapeRow] = []
    hooks = []

    def record(name: str):
        def hook(module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            params = sum(p.numel() for p in module.parameters())
            rows.append(ShapeRow(name, type(module).__name__, tuple(out.shape), params))

        return hook

    for name, module in model.named_modules():
        if name and name.count(".") < max_depth:
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for h in hooks:
            h.remove()
    return rows


# --- Teaching demos for the architecture page (book §4.2–4.4) ---------------------------------------------


def layernorm_demo(x: torch.Tensor, eps: float = 1e-5) -> dict[str, torch.Tensor]:
    """Mean and variance of each row before and after normalisation (the book's §4.2 example).

    Args:
        x: (N, C) activations.
    """
    if x.dim() != 2 or x.shape[1] < 2:
        raise LabError("LayerNorm needs a 2-D input with at least 2 features per row.")
    mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
    normed = (x - mean) / torch.sqrt(var + eps)
    return {
        "input": x,
        "mean_before": mean.squeeze(-1),
        "var_before": var.squeeze(-1),
        "output": normed,
        "mean_after": normed.mean(-1),
        "var_after": normed.var(-1, unbiased=False),
    }


def activation_curves(lo: float = -3.0, hi: float = 3.0, n: int = 121) -> dict[str, list[float]]:
    """x, GELU(x) (tanh approximation) and ReLU(x) sampled on a grid, for plotting."""
    x = torch.linspace(lo, hi, n)
    return {
        "x": x.tolist(),
        "gelu": torch.nn.functional.gelu(x, approximate="tanh").tolist(),
        "relu": torch.relu(x).tolist(),
    }


def shortcut_gradient_demo(layer_sizes: list[int] | None = None, seed: int = 123) -> dict[str, list[float]]:
    """Mean |gradient| of each layer's weights with and without shortcut connections (book §4.4).

    Builds the book's five-layer network (3 → 3 → 3 → 3 → 3 → 1 with GELU), feeds ``[1, 0, -1]`` with target 0,
    and returns the mean absolute weight gradient per layer for both variants, identically initialised.
    """
    sizes = layer_sizes or [3, 3, 3, 3, 3, 1]
    grads: dict[str, list[float]] = {}
    for label, use_shortcut in (("without", False), ("with", True)):
        gen = torch.Generator().manual_seed(seed)
        layers = []
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            lin = nn.Linear(d_in, d_out)
            with torch.no_grad():  # same init for both variants, independent of the global RNG
                bound = 1 / d_in**0.5
                lin.weight.copy_(torch.rand(lin.weight.shape, generator=gen) * 2 * bound - bound)
                lin.bias.copy_(torch.rand(lin.bias.shape, generator=gen) * 2 * bound - bound)
            layers.append(lin)
        x = torch.tensor([[1.0, 0.0, -1.0]])
        for lin in layers:
            out = torch.nn.functional.gelu(lin(x), approximate="tanh")
            x = x + out if use_shortcut and out.shape == x.shape else out
        loss = nn.functional.mse_loss(x, torch.zeros_like(x))
        loss.backward()
        grads[label] = [lin.weight.grad.abs().mean().item() for lin in layers]
    grads["layer"] = [f"layer {i}" for i in range(len(sizes) - 1)]
    return grads


# --- Architecture page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchitectureReport:
    """Everything the Architecture page shows about one config (plain numbers and rows)."""

    cfg: GPTConfig
    total_untied: int
    total_tied: int
    breakdown: list[dict]  # parameter_breakdown(cfg) rows
    memory: list[dict]  # per dtype: {"dtype", "weights_bytes", "training_bytes"}
    flops: dict[str, int]  # {"forward", "training"} per token
    trace: list[dict]  # {"module", "type", "output shape", "parameters"}


def architecture_report(cfg: GPTConfig, n_tokens: int = 4, batch_size: int = 1) -> ArchitectureReport:
    """Parameter counts (tied and untied), memory, FLOPs and a shape trace of one forward pass of ``cfg``.

    The shape trace builds the model on the ``meta`` device: tensors there have shapes but no storage, so
    forward hooks see every real output shape while no memory is allocated and no arithmetic is done.

    Example:
        >>> r = architecture_report(GPTConfig.preset("gpt2-small"))
        >>> r.total_untied, r.total_tied
        (163009536, 124412160)
    """
    if not isinstance(cfg, GPTConfig):
        raise LabError(f"architecture_report needs a GPTConfig, got {type(cfg).__name__}.")
    for name, value in (("n_tokens", n_tokens), ("batch_size", batch_size)):
        check_int(value, name, low=1)
    if n_tokens > cfg.context_length:
        raise LabError(
            f"The traced input has {n_tokens} tokens but the context length is {cfg.context_length}; "
            "use fewer tokens."
        )
    untied = memory_estimate(cfg.replace(tie_weights=False))["parameters"]
    tied = memory_estimate(cfg.replace(tie_weights=True))["parameters"]
    memory = [{"dtype": d, **{k: v for k, v in memory_estimate(cfg, d).items() if k != "parameters"}}
              for d in ("fp32", "bf16")]
    trace = meta_shape_trace(cfg, n_tokens, batch_size)
    breakdown, flops = parameter_breakdown(cfg), flops_per_token(cfg)
    return ArchitectureReport(cfg, untied, tied, breakdown, memory, flops, trace)


def meta_shape_trace(
    cfg: GPTConfig, n_tokens: int = 4, batch_size: int = 1, collapse: bool = True
) -> list[dict]:
    """Output shape of every module (3 levels deep) in one forward pass, computed on the ``meta`` device.

    With ``collapse``, blocks 1…N−1 are summarised in one row (their parameters summed): they repeat block 0's
    shapes exactly.
    """
    from core.model import GPTModel

    with torch.device("meta"):
        model = GPTModel(cfg).eval()
    # The model skips its token-value check on meta tensors (they have no values), so no patching is needed.
    idx = torch.zeros(batch_size, n_tokens, dtype=torch.long, device="meta")  # (B, T)
    rows = shape_trace(model, idx)
    out: list[dict] = []
    for r in rows:
        parts = r.name.split(".")
        if collapse and parts[0] == "trf_blocks" and len(parts) > 1 and parts[1] != "0":
            if parts[1] == "1" and len(parts) == 2:
                n = cfg.n_layers - 1
                name = "trf_blocks.1" if n == 1 else f"trf_blocks.1 … trf_blocks.{n}"
                out.append({"module": name,
                            "type": f"{n} × {r.kind}",
                            "output shape": _shape(r.output_shape), "parameters": n * r.params})
            continue
        out.append(
            {"module": r.name, "type": r.kind, "output shape": _shape(r.output_shape), "parameters": r.params}
        )
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def layernorm_example(seed: int = 123) -> dict[str, np.ndarray]:
    """The book's §4.2 example: two 5-feature inputs through Linear(5, 6) + ReLU, then normalised.

    The global RNG is seeded inside a fork, as the book does with ``torch.manual_seed(123)``, then restored.

    Returns:
        ``input`` (2, 6) activations, ``output`` (2, 6) normalised, and per-row ``mean_before``,
        ``var_before``, ``mean_after`` (≈ 0) and ``var_after`` (≈ 1).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batch = torch.randn(2, 5)  # (2 examples, 5 features)
        layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
        with torch.no_grad():
            out = layer(batch)  # (2, 6)
    return {k: v.numpy() for k, v in layernorm_demo(out).items()}
