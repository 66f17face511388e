"""Low-rank adaptation (LoRA), the book's appendix E, in the composition style of torchtune/peft.

A frozen ``nn.Linear`` with weight W (out × in) learns an update ΔW = scale · B · A through two small
matrices: A (rank × in) and B (out × rank), scale = alpha / rank. Only A and B train, so a 768 → 768 layer
learns rank · (768 + 768) numbers instead of 768 · 768. B starts at zero, so at initialisation the wrapped
model computes exactly what the original did.

Shapes follow ``nn.Linear`` (weight is out × in), so ``B @ A`` has the weight's shape and merging is one add.
The book writes A as (in × rank) and B as (rank × out), i.e. the transposes of ours; the numbers are the same.

Example:
    >>> import torch
    >>> from torch import nn
    >>> layer = LoRALinear(nn.Linear(8, 4), rank=2, alpha=4)
    >>> layer.A.shape, layer.B.shape, layer.delta_weight().shape
    (torch.Size([2, 8]), torch.Size([4, 2]), torch.Size([4, 8]))
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch
from torch import nn

from core.errors import LabError, check_int, check_number

ALL_LINEAR = "all-linear"


class LoRALinear(nn.Module):
    """An ``nn.Linear`` plus a trainable low-rank update: ``y = base(x) + scale · x Aᵀ Bᵀ``.

    Args:
        base: the linear layer to adapt; it is kept as ``self.base`` (not copied).
        rank: inner dimension r of the update.
        alpha: scaling numerator; the update is multiplied by ``alpha / rank``.

    Shapes: x (…, in) → y (…, out); A (r, in); B (out, r).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise LabError(f"LoRALinear wraps an nn.Linear layer, got {type(base).__name__}.")
        _check_rank_alpha(rank, alpha)
        self.base = base
        self.rank, self.alpha = int(rank), float(alpha)
        self.scale = self.alpha / self.rank
        w = base.weight
        # The book initialises its A as (in, rank) with kaiming_uniform_(a=sqrt(5)), whose bound then depends
        # on fan_in = rank. We draw in the book's layout and transpose, so A has the book's values and scale.
        a_book = torch.empty(base.in_features, self.rank, device=w.device, dtype=w.dtype)
        nn.init.kaiming_uniform_(a_book, a=math.sqrt(5))
        self.A = nn.Parameter(a_book.T.contiguous())  # (r, in)
        b = torch.zeros(base.out_features, self.rank, device=w.device, dtype=w.dtype)
        self.B = nn.Parameter(b)  # (out, r)
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The learned update ``scale · B @ A`` (out, in), the same shape as ``base.weight``."""
        return self.scale * (self.B @ self.A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged:  # the update already lives inside base.weight
            return self.base(x)
        # Two thin matmuls (in → r → out) rather than forming the (out, in) update: cheaper when r is small.
        return self.base(x) + self.scale * ((x @ self.A.T) @ self.B.T)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into ``base.weight`` in place, so inference costs the same as the plain layer."""
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again, restoring the original base weight (up to float rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scale={self.scale:g}, merged={self.merged}"


# ---------------------------------------------------------------------------------- the book's classes (E.3)
class LoRALayer(nn.Module):
    """The book's bare adapter: ``alpha · (x @ A @ B)`` with A (in_dim × rank), B (rank × out_dim).

    As in the book, the update is scaled by ``alpha`` itself; :class:`LoRALinear` (what the app uses) scales by
    ``alpha / rank`` as the LoRA paper and peft do, so the two agree when ``rank == 1``. A is drawn like the
    book's (Kaiming-uniform, ``a = √5``), B starts at zero: at initialisation the adapter adds nothing.

    Example:
        >>> LoRALayer(8, 4, rank=2, alpha=4)(torch.ones(3, 8)).abs().sum().item()
        0.0
    """

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float) -> None:
        super().__init__()
        _check_rank_alpha(rank, alpha)
        self.A = nn.Parameter(torch.empty(int(in_dim), int(rank)))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = nn.Parameter(torch.zeros(int(rank), int(out_dim)))
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * (x @ self.A @ self.B)


class LinearWithLoRA(nn.Module):
    """The book's ``LinearWithLoRA(linear, rank, alpha)``: ``linear(x) + LoRALayer(x)``."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise LabError(f"LinearWithLoRA wraps an nn.Linear layer, got {type(linear).__name__}.")
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.lora(x)


def replace_linear_with_lora(model: nn.Module, rank: int, alpha: float) -> None:
    """The book's ``replace_linear_with_lora``: every ``nn.Linear`` in ``model`` (at any depth) becomes a
    :class:`LinearWithLoRA`, in place. As in the book, freeze the model first
    (``for p in model.parameters(): p.requires_grad = False``) so only the adapters train."""
    _check_rank_alpha(rank, alpha)
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)


def _check_rank_alpha(rank: int, alpha: float) -> None:
    check_int(rank, "The LoRA rank", low=1, fix="try 8 or 16")
    check_number(alpha, "The LoRA alpha", low=0, low_open=True, fix="try alpha = rank")


def lora_target_names(model: nn.Module) -> list[str]:
    """Names of the plain ``nn.Linear`` modules LoRA could wrap (layers already wrapped are left out).

    Example:
        >>> from core.config import GPTConfig
        >>> from core.model import GPTModel
        >>> lora_target_names(GPTModel(GPTConfig.preset("tiny", n_layers=1)))[:2]
        ['trf_blocks.0.att.W_query', 'trf_blocks.0.att.W_key']
    """
    inside_lora = {f"{name}.base" for name, m in model.named_modules() if isinstance(m, LoRALinear)}
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name not in inside_lora]


def _select(model: nn.Module, targets: Sequence[str] | str) -> list[str]:
    candidates = lora_target_names(model)
    if not candidates:
        raise LabError("The model has no plain nn.Linear layer left to wrap; remove the existing LoRA first.")
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns:
        raise LabError(f"No LoRA targets were given; pass e.g. '*.att.W_query' or {ALL_LINEAR!r}.")
    chosen: set[str] = set()
    for pattern in patterns:
        hits = candidates if pattern == ALL_LINEAR else fnmatch.filter(candidates, pattern)
        if not hits:
            more = f", … ({len(candidates)} in all)" if len(candidates) > 6 else ""
            shown = ", ".join(candidates[:6]) + more
            raise LabError(f"The LoRA target {pattern!r} matches no linear layer; available layers: {shown}.")
        chosen.update(hits)
    return [name for name in candidates if name in chosen]  # keep the model's order


def apply_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    targets: Sequence[str] | str = ALL_LINEAR,
    freeze_base: bool = True,
) -> list[str]:
    """Wrap the matching ``nn.Linear`` layers of ``model`` in :class:`LoRALinear`, in place.

    Args:
        model: any module, typically a ``GPTModel``.
        rank: LoRA rank r (the book uses 16).
        alpha: LoRA alpha (the book uses 16); the update is scaled by alpha / rank.
        targets: ``"all-linear"`` or module-name glob patterns such as ``"*.att.W_query"``,
            ``"*.ff.layers.*"``, ``"out_head"`` (see :func:`lora_target_names`).
        freeze_base: freeze every parameter the model had before (the book's recipe), so only A and B train.

    Returns:
        The names of the wrapped layers, in model order.

    A rank above min(in, out) of a layer adds no expressive power (B·A cannot exceed that rank) but is
    allowed, because the book itself puts rank 16 on the 768 → 2 classification head; a rank above
    max(in, out) is refused.
    """
    _check_rank_alpha(rank, alpha)
    names = _select(model, targets)
    modules = dict(model.named_modules())
    for name in names:
        lin = modules[name]
        if rank > max(lin.in_features, lin.out_features):
            limit = max(lin.in_features, lin.out_features)
            raise LabError(
                f"rank {rank} is larger than the layer {name} ({lin.in_features} → {lin.out_features}); "
                f"choose a rank ≤ {limit}."
            )
    if freeze_base:
        model.requires_grad_(False)
    for name in names:
        _set_submodule(model, name, LoRALinear(modules[name], rank, alpha))
    return names


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)  # works for ModuleList/Sequential too: their children are named "0", "1", …


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every :class:`LoRALinear` in ``model`` by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA update into its base weight; returns how many layers were merged."""
    layers = lora_layers(model)
    for layer in layers.values():
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Undo :func:`merge_lora`; returns how many layers were unmerged."""
    layers = lora_layers(model)
    for layer in layers.values():
        layer.unmerge()
    return len(layers)


def remove_lora(model: nn.Module, merge: bool = True) -> list[str]:
    """Replace every :class:`LoRALinear` by its plain ``nn.Linear`` again, in place.

    Args:
        merge: keep what was learned by merging the update into the weight first; ``False`` discards it and
            restores the original weight.

    Returns:
        The names of the layers that were unwrapped.
    """
    layers = lora_layers(model)
    for name, layer in layers.items():
        if merge:
            layer.merge()
        else:
            layer.unmerge()
        _set_submodule(model, name, layer.base)
    return list(layers)


def lora_parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts for the LoRA lab page.

    Returns:
        ``total`` (all parameters, LoRA included), ``trainable`` (requires_grad), ``lora`` (A and B
        matrices) and ``base_frozen`` (non-LoRA parameters that do not train). Works on meta-device models.
    """
    lora_ids = {id(p) for layer in lora_layers(model).values() for p in (layer.A, layer.B)}
    params = list(model.parameters())  # yields a tied tensor once
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "lora": sum(p.numel() for p in params if id(p) in lora_ids),
        "base_frozen": sum(p.numel() for p in params if id(p) not in lora_ids and not p.requires_grad),
    }
