"""Model configuration: one frozen dataclass and named presets.

The field names follow the book (``vocab_size, context_length, emb_dim, n_heads, n_layers, drop_rate,
qkv_bias``) so code on a page, in the book and here reads the same.

Example:
    >>> cfg = GPTConfig.preset("gpt2-small")
    >>> cfg.emb_dim, cfg.n_layers
    (768, 12)
    >>> GPTConfig.preset("tiny", context_length=32).context_length
    32
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from core.errors import LabError, check_choice, check_int, check_known_keys, check_number, shown

GPT2_VOCAB_SIZE = 50257

#: The largest value each size may take. They comfortably include GPT-2 XL (50,257 × 1,024 × 1,600, 25 heads,
#: 48 blocks) and typical research models, and keep a damaged or hostile file (a checkpoint header, a run.json,
#: a config.json) from describing a model so large that merely planning it takes hours or all the memory.
MAX_SIZES: dict[str, int] = {
    "vocab_size": 2_000_000,
    "context_length": 1_048_576,
    "emb_dim": 65_536,
    "n_heads": 1_024,
    "n_layers": 1_024,
    "ff_mult": 64,
}


@dataclass(frozen=True)
class GPTConfig:
    """Architecture of a GPT model. Frozen: make a changed copy with :meth:`replace`.

    Attributes:
        vocab_size: number of token ids the embedding and output head know.
        context_length: the longest sequence the model accepts (size of the positional embedding).
        emb_dim: width of every token vector (``d_model``).
        n_heads: attention heads per block; must divide ``emb_dim``.
        n_layers: number of transformer blocks.
        drop_rate: dropout probability for embeddings, attention weights and shortcuts.
        qkv_bias: whether the query/key/value projections have a bias (GPT-2 weights need ``True``).
        tie_weights: share the token-embedding matrix with the output head (GPT-2 does; the book's
            163M figure is untied).
        ff_mult: hidden width of the feed-forward network as a multiple of ``emb_dim``.
        ln_eps: epsilon of LayerNorm.
    """

    vocab_size: int = GPT2_VOCAB_SIZE
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_weights: bool = False
    ff_mult: int = 4
    ln_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name, limit in MAX_SIZES.items():
            fix = f"sizes run from 1 to {limit:,}, far beyond GPT-2 XL, so anything else is a typo or a damaged file"
            object.__setattr__(self, name, check_int(getattr(self, name), name, low=1, high=limit, fix=fix))
        if self.emb_dim % self.n_heads:
            raise LabError(
                f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads}) so every head gets "
                f"the same width; try n_heads = {_divisor_hint(self.emb_dim, self.n_heads)}."
            )
        for name in ("qkv_bias", "tie_weights"):  # "no" or 0 must not silently mean True or False
            if not isinstance(getattr(self, name), bool):
                raise LabError(f"{name} must be True or False, got {shown(getattr(self, name))}.")
        check_number(self.drop_rate, "drop_rate", low=0, high=1, high_open=True, fix="0.1 is GPT-2's, 0 turns it off")
        check_number(self.ln_eps, "ln_eps", low=0, high=1, low_open=True, high_open=True, fix="use e.g. 1e-5")

    @property
    def head_dim(self) -> int:
        """Width of one attention head (``emb_dim // n_heads``)."""
        return self.emb_dim // self.n_heads

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed (validated again)."""
        _check_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPTConfig:
        """Build a config from a dict, ignoring nothing silently: unknown keys are an error."""
        if not isinstance(data, dict):
            raise LabError(
                f"A model configuration must be a mapping of field names to values, got {type(data).__name__}."
            )
        _check_keys(data)
        return cls(**data)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """A named configuration, optionally with some fields overridden.

        Args:
            name: one of :data:`PRESETS` (``"gpt2-small"``, ``"gpt2-medium"``, ``"gpt2-large"``, ``"gpt2-xl"``,
                ``"tiny"``, ``"mini"``).
            **overrides: fields to change, e.g. ``context_length=256``.
        """
        base = dict(PRESETS[check_choice(name, "preset", PRESETS)]["config"])
        _check_keys(overrides)
        base.update(overrides)
        return cls(**base)


def _check_keys(data: dict[str, Any]) -> None:
    check_known_keys(data, (f.name for f in dataclasses.fields(GPTConfig)), "configuration field")


def _divisor_hint(emb_dim: int, n_heads: int) -> int:
    """The divisor of ``emb_dim`` closest to ``n_heads`` (the smaller one on a tie), found in O(√emb_dim)."""
    divisors = set()
    d = 1
    while d * d <= emb_dim:
        if emb_dim % d == 0:
            divisors.update((d, emb_dim // d))
        d += 1
    return min(divisors, key=lambda x: (abs(x - n_heads), x))


_GPT2 = {"vocab_size": GPT2_VOCAB_SIZE, "context_length": 1024, "drop_rate": 0.1, "qkv_bias": False}

#: Named presets. ``about`` is shown in the UI. The GPT-2 sizes are the book's (Table 4.x / appendix).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "about": "2 blocks, 64-wide, 64-token context: trains in about a minute on a laptop CPU.",
        "config": {**_GPT2, "context_length": 64, "emb_dim": 64, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0},
    },
    "mini": {
        "about": "4 blocks, 128-wide, 128-token context: learns real words in a few minutes on 2 CPU cores.",
        "config": {**_GPT2, "context_length": 128, "emb_dim": 128, "n_heads": 4, "n_layers": 4, "drop_rate": 0.0},
    },
    "gpt2-small": {
        "about": "GPT-2 small (124M with tied weights): 12 blocks, 768-wide, 12 heads.",
        "config": {**_GPT2, "emb_dim": 768, "n_heads": 12, "n_layers": 12},
    },
    "gpt2-medium": {
        "about": "GPT-2 medium (355M): 24 blocks, 1024-wide, 16 heads.",
        "config": {**_GPT2, "emb_dim": 1024, "n_heads": 16, "n_layers": 24},
    },
    "gpt2-large": {
        "about": "GPT-2 large (774M): 36 blocks, 1280-wide, 20 heads.",
        "config": {**_GPT2, "emb_dim": 1280, "n_heads": 20, "n_layers": 36},
    },
    "gpt2-xl": {
        "about": "GPT-2 XL (1558M): 48 blocks, 1600-wide, 25 heads.",
        "config": {**_GPT2, "emb_dim": 1600, "n_heads": 25, "n_layers": 48},
    },
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
