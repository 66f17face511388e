"""The book's chapter 3 attention classes under their own names and signatures, written by this project.

Each class creates its parameters in the book's order, so after the same ``torch.manual_seed`` it holds the
book's weights and prints the book's numbers; state dicts use the book's names (``W_query``, ``W_key``,
``W_value``, ``out_proj``, and the ``mask`` buffer), so weights saved from the book's classes load here.

- ``SelfAttention_v1(d_in, d_out)``: three ``torch.rand`` matrices (§3.4.1);
- ``SelfAttention_v2(d_in, d_out, qkv_bias=False)``: three ``nn.Linear`` (§3.4.2);
- ``CausalAttention(d_in, d_out, context_length, dropout, qkv_bias=False)``: batched, masked, dropout (§3.5);
- ``MultiHeadAttentionWrapper(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)``: heads side by
  side, ``num_heads · d_out`` features out (§3.6.1);
- ``MultiHeadAttention(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)``: one set of projections
  split into heads, then ``out_proj`` (§3.6.2).

The step-by-step views of the same computations (every intermediate) are in :mod:`core.attention`; the model's
own attention is :class:`core.model.MultiHeadAttention`, which takes a :class:`core.config.GPTConfig`.

Example:
    >>> from core.attention import book_example_inputs
    >>> _, inputs = book_example_inputs()
    >>> _ = torch.manual_seed(123)
    >>> SelfAttention_v1(3, 2)(inputs)[1]  # the book's second context vector
    tensor([0.3061, 0.8210], grad_fn=<SelectBackward0>)
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import LabError, check_int, check_number


def _scaled_softmax(scores: torch.Tensor, d_k: int) -> torch.Tensor:
    return torch.softmax(scores / d_k**0.5, dim=-1)


class SelfAttention_v1(nn.Module):  # noqa: N801 - the book's name
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, d_in) → context vectors (T, d_out)."""
        keys, queries, values = x @ self.W_key, x @ self.W_query, x @ self.W_value
        return _scaled_softmax(queries @ keys.T, keys.shape[-1]) @ values


class SelfAttention_v2(nn.Module):  # noqa: N801 - the book's name
    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, d_in) → context vectors (T, d_out)."""
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)
        return _scaled_softmax(queries @ keys.T, keys.shape[-1]) @ values


def _check(context_length: int, dropout: float) -> None:
    check_int(context_length, "context_length", low=1)
    check_number(dropout, "dropout", low=0, high=1, high_open=True)


class CausalAttention(nn.Module):
    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False) -> None:
        super().__init__()
        _check(context_length, dropout)
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_in) → (B, T, d_out); position t attends to positions ≤ t only."""
        _, t, _ = x.shape
        if t > self.mask.shape[0]:
            raise LabError(f"The input has {t} tokens but this attention's context_length is {self.mask.shape[0]}.")
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)
        scores = (queries @ keys.transpose(1, 2)).masked_fill(self.mask.bool()[:t, :t], -torch.inf)
        return self.dropout(_scaled_softmax(scores, keys.shape[-1])) @ values


class MultiHeadAttentionWrapper(nn.Module):
    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False) -> None:
        super().__init__()
        check_int(num_heads, "num_heads", low=1)
        self.heads = nn.ModuleList(CausalAttention(d_in, d_out, context_length, dropout, qkv_bias)
                                   for _ in range(num_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_in) → (B, T, num_heads · d_out): the heads' outputs side by side."""
        return torch.cat([head(x) for head in self.heads], dim=-1)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False) -> None:
        super().__init__()
        _check(context_length, dropout)
        check_int(num_heads, "num_heads", low=1)
        if d_out % num_heads:
            raise LabError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads}).")
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_in) → (B, T, d_out)."""
        b, t, _ = x.shape
        if t > self.mask.shape[0]:
            raise LabError(f"The input has {t} tokens but this attention's context_length is {self.mask.shape[0]}.")

        def heads(z: torch.Tensor) -> torch.Tensor:  # (B, T, d_out) → (B, H, T, head_dim)
            return z.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        keys, queries, values = heads(self.W_key(x)), heads(self.W_query(x)), heads(self.W_value(x))
        scores = (queries @ keys.transpose(2, 3)).masked_fill(self.mask.bool()[:t, :t], -torch.inf)
        weights = self.dropout(_scaled_softmax(scores, self.head_dim))
        context = (weights @ values).transpose(1, 2).contiguous().view(b, t, self.d_out)
        return self.out_proj(context)
