"""The GPT model of the book's chapter 4, with a fast path, a teaching path and a KV cache.

Module names follow the book (``tok_emb``, ``pos_emb``, ``trf_blocks``, ``att.W_query`` …, ``ff.layers``,
``norm1``/``norm2``, ``final_norm``, ``out_head``) so parameter counts, LoRA counts and weight-loading code line
up with the book's listings.

Shape legend: B batch, T new tokens, S tokens attended to (cached + new), C ``emb_dim``, H ``n_heads``,
D ``head_dim`` (C // H), V ``vocab_size``.

Example:
    >>> import torch
    >>> model = GPTModel(GPTConfig.preset("tiny"))
    >>> model(torch.tensor([[1, 2, 3]])).shape
    torch.Size([1, 3, 50257])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from core.config import GPTConfig
from core.errors import LabError

AttnImpl = Literal["sdpa", "manual"]


class LayerNorm(nn.Module):
    """Layer normalisation with the book's parameter names (``scale``, ``shift``)."""

    def __init__(self, emb_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The fused kernel computes exactly mean/biased-variance normalisation, as the book writes it out.
        return F.layer_norm(x, (x.shape[-1],), self.scale, self.shift, self.eps)


class GELU(nn.Module):
    """GELU with the tanh approximation GPT-2 was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class FeedForward(nn.Module):
    """Two linear layers around a GELU: C → ff_mult·C → C."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        hidden = cfg.ff_mult * cfg.emb_dim
        self.layers = nn.Sequential(nn.Linear(cfg.emb_dim, hidden), GELU(), nn.Linear(hidden, cfg.emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, preallocated per layer so each step writes in place.

    Create one with :meth:`GPTModel.new_cache`; pass it to every forward call of one generation.
    """

    keys: list[torch.Tensor]  # per layer: (B, H, max_len, D)
    values: list[torch.Tensor]
    length: int = 0
    max_len: int = field(init=False)

    def __post_init__(self) -> None:
        self.max_len = self.keys[0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys/values of ``layer`` after the cached ones; return all of them (B, H, S, D)."""
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with separate Q/K/V projections, as in the book."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        c = cfg.emb_dim
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.W_query = nn.Linear(c, c, bias=cfg.qkv_bias)
        self.W_key = nn.Linear(c, c, bias=cfg.qkv_bias)
        self.W_value = nn.Linear(c, c, bias=cfg.qkv_bias)
        self.out_proj = nn.Linear(c, c)
        self.drop_rate = cfg.drop_rate
        self.dropout = nn.Dropout(cfg.drop_rate)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, T, C) -> (B, H, T, D)

    def forward(
        self,
        x: torch.Tensor,
        *,
        layer: int = 0,
        cache: KVCache | None = None,
        impl: AttnImpl = "sdpa",
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from each of the T new tokens to itself and every earlier token.

        Returns the output (B, T, C) and, when ``need_weights``, the attention weights (B, H, T, S).
        """
        b, t, c = x.shape
        q, k, v = self._heads(self.W_query(x)), self._heads(self.W_key(x)), self._heads(self.W_value(x))
        offset = cache.length if cache is not None else 0
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, H, S, D)
        s = k.shape[2]

        weights = None
        if impl == "manual" or need_weights:
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, T, S)
            # Token i (at absolute position offset + i) may see positions 0 … offset + i.
            future = torch.ones(t, s, dtype=torch.bool, device=x.device).triu(diagonal=offset + 1)
            scores = scores.masked_fill(future, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            ctx = self.dropout(weights) @ v  # (B, H, T, D)
        else:
            p = self.drop_rate if self.training else 0.0
            if t == 1:  # one new token attends to everything cached: no mask needed
                ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
            elif offset == 0:
                ctx = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:
                allowed = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(diagonal=offset)
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        ctx = ctx.transpose(1, 2).reshape(b, t, c)  # (B, H, T, D) -> (B, T, C)
        return self.out_proj(ctx), weights


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + feed-forward(norm(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.att = MultiHeadAttention(cfg)
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim, cfg.ln_eps)
        self.norm2 = LayerNorm(cfg.emb_dim, cfg.ln_eps)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x: torch.Tensor, **att_kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        h, weights = self.att(self.norm1(x), **att_kwargs)
        x = x + self.drop_shortcut(h)
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x, weights


class BlockStack(nn.ModuleList):
    """The transformer blocks: a list (``trf_blocks[-1]``, ``trf_blocks.0.att`` in state dicts) that can also be
    called on (B, T, emb_dim) embeddings as the book's ``nn.Sequential`` is, returning the hidden states only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x, _ = block(x)
        return x


def _drop_book_masks(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """A state dict the book's code saved holds each block's causal mask (``trf_blocks.N.att.mask``): a constant
    this model builds on the fly, so it is dropped rather than refused as an unexpected key."""
    for key in [k for k in state_dict if k.startswith(prefix + "trf_blocks.") and k.endswith(".att.mask")]:
        del state_dict[key]


class GPTModel(nn.Module):
    """A GPT-2-style decoder: embeddings → N transformer blocks → final norm → output head.

    Args:
        cfg: the architecture; see :class:`core.config.GPTConfig`. The book's dict (``GPT_CONFIG_124M``, with
            ``vocab_size``, ``context_length``, ``emb_dim``, ``n_heads``, ``n_layers``, ``drop_rate``,
            ``qkv_bias``) works too.

    Call it with token ids ``idx`` (B, T) to get logits (B, T, V). ``attn_impl="manual"`` runs the book's explicit
    attention (same numbers, slower); :meth:`forward_with_attention` also returns every layer's weights.
    """

    def __init__(self, cfg: GPTConfig | dict) -> None:
        super().__init__()
        if isinstance(cfg, dict):  # the book's GPT_CONFIG_124M dict: its keys are GPTConfig's field names
            cfg = GPTConfig.from_dict(dict(cfg))
        if not isinstance(cfg, GPTConfig):
            raise LabError(f"GPTModel needs a GPTConfig (or the book's config dict), got {type(cfg).__name__}; "
                           "try GPTConfig.preset('tiny').")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = BlockStack(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = LayerNorm(cfg.emb_dim, cfg.ln_eps)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        self.attn_impl: AttnImpl = "sdpa"
        self.reset_parameters()
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        self.register_load_state_dict_pre_hook(_drop_book_masks)

    def reset_parameters(self, seed: int | None = None) -> None:
        """GPT-2's initialisation: N(0, 0.02), residual output projections scaled by 1/sqrt(2·n_layers).

        Small initial weights make every token about equally likely, so the loss at init is close to ln(V).
        """
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith(("scale",)):
                    p.fill_(1.0)
                elif name.endswith(("bias", "shift")):
                    p.zero_()
                else:
                    std = residual_std if name.endswith(("out_proj.weight", "ff.layers.2.weight")) else 0.02
                    p.copy_(torch.randn(p.shape, generator=gen) * std)

    @property
    def device(self) -> torch.device:
        return self.tok_emb.weight.device

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences of up to ``max_len`` tokens (default: the context)."""
        max_len = max_len or self.cfg.context_length
        w = self.tok_emb.weight
        shape = (batch_size, self.cfg.n_heads, max_len, self.cfg.head_dim)
        return KVCache(
            keys=[torch.empty(shape, device=w.device, dtype=w.dtype) for _ in self.trf_blocks],
            values=[torch.empty(shape, device=w.device, dtype=w.dtype) for _ in self.trf_blocks],
        )

    def _check_input(self, idx: torch.Tensor, cache: KVCache | None) -> None:
        offset = cache.length if cache is not None else 0
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            got = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise LabError(
                f"The model expects token ids shaped (batch, tokens), got {got}; wrap one sequence as [ids]."
            )
        if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise LabError(f"Token ids must be integers, got a tensor of {idx.dtype}.")
        if idx.shape[1] == 0:
            raise LabError("The input has no tokens; give the model at least one token id.")
        total = offset + idx.shape[1]
        if total > self.cfg.context_length:
            raise LabError(
                f"The input has {total} tokens but this model's context length is {self.cfg.context_length}; "
                f"shorten the text or keep only its last {self.cfg.context_length} tokens."
            )
        if cache is not None:
            if idx.shape[0] != cache.keys[0].shape[0]:
                raise LabError(
                    f"The KV cache holds {cache.keys[0].shape[0]} sequence(s) but the input has {idx.shape[0]}; "
                    "make the cache with model.new_cache(batch_size) for this batch."
                )
            if total > cache.max_len:
                raise LabError(
                    f"The KV cache has room for {cache.max_len} tokens but would need {total}; "
                    "make a larger cache with model.new_cache(batch_size, max_len)."
                )
        if idx.is_meta or offset > 0:
            # Meta tensors have no values, and ids after a cached prompt come from the decoding loop: reading
            # min/max is a host sync, so it is paid once per prompt, not once per generated token.
            return
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.cfg.vocab_size:
            bad = hi if hi >= self.cfg.vocab_size else lo
            raise LabError(
                f"Token id {bad} is outside this model's vocabulary of {self.cfg.vocab_size:,} ids; "
                "use the tokenizer the model was built for."
            )

    def forward(
        self,
        idx: torch.Tensor,
        cache: KVCache | None = None,
        attn_impl: AttnImpl | None = None,
        *,
        return_hidden: bool = False,
    ) -> torch.Tensor:
        """Logits (B, T, V) for token ids ``idx`` (B, T); with ``return_hidden`` the final-norm output (B, T, C)."""
        logits, _ = self._run(idx, cache, attn_impl or self.attn_impl, False, return_hidden)
        return logits

    def forward_with_attention(self, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, V) and a list with one attention-weight tensor (B, H, T, T) per layer."""
        logits, weights = self._run(idx, None, "manual", True, False)
        return logits, weights

    def _run(self, idx, cache, impl, need_weights, return_hidden):
        self._check_input(idx, cache)
        offset = cache.length if cache is not None else 0
        t = idx.shape[1]
        pos = torch.arange(offset, offset + t, device=idx.device)
        x = self.drop_emb(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C)
        all_weights = []
        for i, block in enumerate(self.trf_blocks):
            x, w = block(x, layer=i, cache=cache, impl=impl, need_weights=need_weights)
            if need_weights:
                all_weights.append(w)
        if cache is not None:
            cache.length += t
        x = self.final_norm(x)
        return (x if return_hidden else self.out_head(x)), all_weights


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters; a tied (shared) tensor counts once, as ``model.parameters()`` yields it once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
