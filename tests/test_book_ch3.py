"""Chapter 3's attention classes, typed as the book prints them, give the book's printed numbers (core.book_ch3)."""

from __future__ import annotations

import pytest
import torch

from core.attention import book_example_inputs
from core.book_ch3 import (
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
)
from core.errors import LabError


@pytest.fixture
def inputs():
    return book_example_inputs()[1]


def close(a, b):
    torch.testing.assert_close(a, torch.tensor(b), atol=1e-4, rtol=0)


def test_self_attention_v1_and_v2_print_the_books_vectors(inputs):
    torch.manual_seed(123)
    v1 = SelfAttention_v1(3, 2)(inputs)
    close(v1[:2].detach(), [[0.2996, 0.8053], [0.3061, 0.8210]])
    torch.manual_seed(789)
    v2 = SelfAttention_v2(3, 2)(inputs)
    close(v2[0].detach(), [-0.0739, 0.0713])


def test_causal_and_multi_head_classes_print_the_books_numbers(inputs):
    batch = torch.stack((inputs, inputs), dim=0)  # (2, 6, 3), the book's batch of two copies
    torch.manual_seed(123)
    ca = CausalAttention(3, 2, batch.shape[1], 0.0)
    out = ca(batch)
    assert out.shape == (2, 6, 2)
    close(out[0, 0].detach(), [-0.4519, 0.2216])
    torch.manual_seed(123)
    wrapped = MultiHeadAttentionWrapper(3, 2, batch.shape[1], 0.0, num_heads=2)(batch)
    assert wrapped.shape == (2, 6, 4)
    close(wrapped[0, 0].detach(), [-0.4519, 0.2216, 0.4772, 0.1063])
    torch.manual_seed(123)
    mha = MultiHeadAttention(3, 2, batch.shape[1], 0.0, num_heads=2)
    out = mha(batch)
    assert out.shape == (2, 6, 2)
    close(out[0, 0].detach(), [0.3190, 0.4858])
    assert set(mha.state_dict()) == {"W_query.weight", "W_key.weight", "W_value.weight", "out_proj.weight",
                                     "out_proj.bias", "mask"}  # the book's names, its mask buffer included


def test_causality_and_bad_arguments(inputs):
    torch.manual_seed(0)
    mha = MultiHeadAttention(3, 4, 6, 0.0, num_heads=2)
    x = torch.rand(1, 6, 3)
    y = x.clone()
    y[0, 4:] = 9.0  # later tokens change: earlier outputs must not
    torch.testing.assert_close(mha(x)[0, :4], mha(y)[0, :4])
    with pytest.raises(LabError, match="divisible"):
        MultiHeadAttention(3, 3, 6, 0.0, num_heads=2)
    with pytest.raises(LabError, match="context_length is 6"):
        mha(torch.rand(1, 7, 3))
    with pytest.raises(LabError, match="dropout"):
        CausalAttention(3, 2, 6, 1.5)
