"""The LoRA lab's computations: one layer wrapped in :class:`core.lora.LoRALinear` (shapes, A, B, ΔW after
simulated steps), trainable-parameter counts on ``meta``-device models, and the merged-vs-unmerged check.

The model passed in is only read: layers are wrapped around frozen views of its weights.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import LabError
from core.lora import ALL_LINEAR, LoRALinear, apply_lora, lora_parameter_counts, merge_lora
from core.model import GPTModel

MAX_SHOWN = 48  # rows/columns of a LoRA matrix drawn as a heatmap

#: What "LoRA on …" means, as module-name patterns for :func:`core.lora.apply_lora`.
LORA_TARGET_SETS: dict[str, str | list[str]] = {
    "all linear layers (the book, appendix E)": ALL_LINEAR,
    "transformer blocks (no output head)": ["trf_blocks.*"],
    "attention only (query, key, value, out)": ["*.att.*"],
    "attention query + value (the LoRA paper)": ["*.att.W_query", "*.att.W_value"],
    "feed-forward only": ["*.ff.layers.*"],
}


@dataclass
class LayerDemo:
    """One linear layer with a LoRA update, as plain arrays for the page (cropped to ``MAX_SHOWN``)."""

    name: str
    in_features: int
    out_features: int
    rank: int
    alpha: float
    scale: float
    steps: int
    A: np.ndarray  # (r, in) cropped
    B: np.ndarray  # (out, r) cropped
    delta: np.ndarray  # (out, in) cropped
    max_abs_delta: float
    delta_rank: int | None  # numerical rank of ΔW (None for very large layers)
    grad_norms: list[dict[str, float]] = field(default_factory=list)  # per simulated step: |∇A|, |∇B|
    cropped: bool = False

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return {"W": (self.out_features, self.in_features), "A": (self.rank, self.in_features),
                "B": (self.out_features, self.rank), "ΔW": (self.out_features, self.in_features)}

    @property
    def lora_params(self) -> int:
        return self.rank * (self.in_features + self.out_features)

    @property
    def full_params(self) -> int:
        return self.in_features * self.out_features


def _frozen_view(layer: nn.Linear) -> nn.Linear:
    """A new ``nn.Linear`` sharing ``layer``'s weight storage, with no gradients: reading it never changes it."""
    view = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
    view.weight = nn.Parameter(layer.weight.detach(), requires_grad=False)
    if layer.bias is not None:
        view.bias = nn.Parameter(layer.bias.detach(), requires_grad=False)
    return view


def _new_lora(layer: nn.Linear, rank: int, alpha: float, seed: int) -> LoRALinear:
    """``LoRALinear(layer)`` with A drawn from ``seed`` (the global RNG state is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LoRALinear(layer, rank, alpha)


def lora_layer_demo(model: nn.Module, layer_name: str, rank: int, alpha: float, steps: int = 0,
                    seed: int = 123, lr: float = 0.1) -> LayerDemo:
    """Wrap one linear layer of ``model`` in LoRA and take ``steps`` seeded training steps on random data.

    Each simulated step is a real SGD step of A and B on the mean squared error against a random target (the
    base weight stays frozen). At the first step B is zero, so the gradient of A is zero too and only B moves:
    that is why the LoRA model starts exactly equal to the base model and still learns.

    Raises:
        LabError: unknown layer, a rank ≤ 0 or larger than the layer, alpha ≤ 0.
    """
    modules = dict(model.named_modules())
    layer = modules.get(layer_name)
    if not isinstance(layer, nn.Linear):
        raise LabError(f"{layer_name!r} is not a linear layer of this model; pick one from the list.")
    if isinstance(rank, int) and rank > max(layer.in_features, layer.out_features):
        raise LabError(f"rank {rank} is larger than the layer {layer_name} ({layer.in_features} → "
                       f"{layer.out_features}); choose a rank ≤ {max(layer.in_features, layer.out_features)}.")
    lora = _new_lora(_frozen_view(layer), rank, alpha, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    norms = []
    for _ in range(max(0, int(steps))):
        x = torch.randn(8, layer.in_features, generator=gen)  # (8, in): a random batch
        target = lora.base(x) + torch.randn(8, layer.out_features, generator=gen)  # what the update should add
        loss = torch.nn.functional.mse_loss(lora(x), target)
        lora.zero_grad(set_to_none=True)
        loss.backward()
        norms.append({"|∇A|": float(lora.A.grad.norm()), "|∇B|": float(lora.B.grad.norm())})
        with torch.no_grad():
            for p in (lora.A, lora.B):
                p -= lr * p.grad / (p.grad.norm() + 1e-12)  # normalised step: visible at any layer size
    with torch.no_grad():
        delta = lora.delta_weight()  # (out, in)
        small = delta.numel() <= 2_000_000
        delta_rank = int(torch.linalg.matrix_rank(delta)) if small else None
        a, b = lora.A.detach(), lora.B.detach()
    n = MAX_SHOWN
    return LayerDemo(
        name=layer_name, in_features=layer.in_features, out_features=layer.out_features, rank=lora.rank,
        alpha=lora.alpha, scale=lora.scale, steps=len(norms), A=a[:n, :n].numpy().copy(),
        B=b[:n, :n].numpy().copy(), delta=delta[:n, :n].numpy().copy(),
        max_abs_delta=float(delta.abs().max()), delta_rank=delta_rank, grad_norms=norms,
        cropped=max(layer.in_features, layer.out_features, lora.rank) > n,
    )


def meta_model(cfg: Any, n_classes: int | None = None) -> GPTModel:
    """A ``GPTModel`` on PyTorch's ``meta`` device (shapes, no storage), with an optional K-class head."""
    with torch.device("meta"):
        model = GPTModel(cfg)
        if n_classes is not None:
            model.out_head = nn.Linear(cfg.emb_dim, n_classes)
    return model


def lora_count_table(cfg: Any, rank: int, alpha: float, n_classes: int | None = None) -> list[dict[str, Any]]:
    """Trainable parameters with LoRA on each target set vs full fine-tuning, counted on ``meta`` models."""
    base = meta_model(cfg, n_classes)
    full = sum(p.numel() for p in base.parameters())
    rows = []
    for label, targets in LORA_TARGET_SETS.items():
        model = copy.deepcopy(base)  # meta tensors: copying costs nothing
        wrapped = apply_lora(model, rank, alpha, targets=targets)
        lora = lora_parameter_counts(model)["lora"]
        rows.append({"LoRA on": label, "layers wrapped": len(wrapped), "trainable with LoRA": lora,
                     "full fine-tuning": full, "share": lora / full})
    return rows


def book_lora_reference(rank: int = 16, alpha: float = 16) -> dict[str, int]:
    """The book's appendix E count: GPT-2 small (qkv bias, as its weights), a 2-class head, LoRA on every
    linear layer with rank 16 → 2,666,528 trainable parameters; computed on a ``meta`` model, not typed in."""
    return dict(_book_lora_reference(rank, alpha))


@functools.cache
def _book_lora_reference(rank: int, alpha: float) -> dict[str, int]:
    from core.config import GPTConfig

    model = meta_model(GPTConfig.preset("gpt2-small", qkv_bias=True), n_classes=2)
    before = sum(p.numel() for p in model.parameters())
    apply_lora(model, rank, alpha, targets=ALL_LINEAR)
    return {"full": before, "lora": lora_parameter_counts(model)["lora"], "rank": rank}


@torch.no_grad()
def merge_check(model: GPTModel, rank: int, alpha: float, targets: str | Sequence[str] = ALL_LINEAR,
                seed: int = 123, n_tokens: int = 16) -> dict[str, float]:
    """Outputs of a LoRA copy of ``model`` before/after merging, on a random batch of token ids.

    A is initialised and B set to random values from ``seed`` (B as after some training), so ΔW ≠ 0, the check
    means something and gives the same figures every time.

    Returns:
        ``init_diff`` (max |LoRA − base| with B = 0: exactly 0), ``lora_vs_base`` (after the random B),
        ``merge_diff`` (max |merged − unmerged|, float rounding only) and ``layers``.
    """
    embeddings = {id(p): p for m in (model.tok_emb, model.pos_emb) for p in m.parameters()}
    lora_model = copy.deepcopy(model, memo=dict(embeddings))  # embeddings are shared: LoRA never touches them
    # freeze_base=False: freezing would flip requires_grad on the shared embeddings of the cached model too.
    with torch.random.fork_rng(devices=[]):  # A's random init from ``seed``: the same figures on every rerun
        torch.manual_seed(seed)
        names = apply_lora(lora_model, rank, alpha, targets=targets, freeze_base=False)
    lora_model.eval()
    gen = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    ids = torch.randint(0, cfg.vocab_size, (2, min(n_tokens, cfg.context_length)), generator=gen)  # (2, T)
    base_out = model(ids)
    init = lora_model(ids)
    for name in names:
        layer = lora_model.get_submodule(name)
        layer.B.copy_(torch.randn(layer.B.shape, generator=gen) * 0.02)
    unmerged = lora_model(ids)
    merge_lora(lora_model)
    merged = lora_model(ids)
    return {"init_diff": float((init - base_out).abs().max()), "lora_vs_base": float((unmerged - base_out).abs().max()),
            "merge_diff": float((merged - unmerged).abs().max()), "layers": len(names)}


