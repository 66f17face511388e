"""The book's chapter-5 calls, typed as the book prints them, run against core (core.book)."""

from __future__ import annotations

import math

import pytest
import torch

from core.book import (
    GPT_CONFIG_124M,
    GPTModel,
    calc_loss_batch,
    calc_loss_loader,
    create_dataloader_v1,
    generate,
    generate_text_simple,
    text_to_token_ids,
    token_ids_to_text,
    train_model_simple,
)
from core.datasets import load_corpus
from core.model import count_parameters
from core.tokenizers import get_tokenizer

SMALL = {**GPT_CONFIG_124M, "context_length": 32, "emb_dim": 32, "n_heads": 2, "n_layers": 2}


@pytest.fixture(scope="module")
def tokenizer():
    return get_tokenizer("gpt2")


def test_the_books_config_dict_builds_the_124m_model_on_the_meta_device():
    with torch.device("meta"):
        model = GPTModel(GPT_CONFIG_124M)
    assert count_parameters(model) == 163_009_536  # the book's §4.6 figure (untied head)
    assert model.cfg.drop_rate == 0.1 and not model.cfg.qkv_bias
    with pytest.raises(Exception, match="configuration field"):
        GPTModel({**GPT_CONFIG_124M, "n_head": 12})  # a misspelt key is an error, not ignored


def test_text_ids_round_trip_and_generation_shapes(tokenizer):
    ids = text_to_token_ids("Every effort moves you", tokenizer)
    assert ids.tolist() == [[6109, 3626, 6100, 345]]  # the book's §5.1 ids
    assert token_ids_to_text(ids, tokenizer) == "Every effort moves you"
    assert text_to_token_ids("a<|endoftext|>b", tokenizer).tolist() == [[64, 50256, 65]]
    torch.manual_seed(123)
    model = GPTModel(SMALL).eval()
    out = generate_text_simple(model, ids, max_new_tokens=6, context_size=SMALL["context_length"])
    assert out.shape == (1, 10) and out[:, :4].tolist() == ids.tolist()
    same = generate(model, ids, max_new_tokens=6, context_size=SMALL["context_length"], temperature=0.0)
    assert same.tolist() == out.tolist()  # greedy §5.3 generate = §4.7 generate_text_simple


def test_train_model_simple_returns_the_books_three_lists_and_learns(tokenizer, capsys):
    text = load_corpus("builtin-corpus")[:6000]
    split = int(0.9 * len(text))  # the book splits the text at 90 % of its characters
    kw = dict(batch_size=2, max_length=SMALL["context_length"], stride=SMALL["context_length"], num_workers=0)
    train_loader = create_dataloader_v1(text[:split], shuffle=True, drop_last=True, **kw)
    val_loader = create_dataloader_v1(text[split:], shuffle=False, drop_last=False, **kw)
    torch.manual_seed(123)
    model = GPTModel(SMALL)
    model.eval()
    with torch.no_grad():
        start = calc_loss_loader(val_loader, model, "cpu")
    assert abs(start - math.log(50257)) < 0.3  # about ln(V) at init
    x, y = next(iter(train_loader))
    assert calc_loss_batch(x, y, model, "cpu").shape == ()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    train_losses, val_losses, tokens = train_model_simple(
        model, train_loader, val_loader, optimizer, "cpu", num_epochs=2, eval_freq=5, eval_iter=2,
        start_context="Every effort moves you", tokenizer=tokenizer)
    steps = 2 * len(train_loader)
    assert len(train_losses) == len(val_losses) == len(tokens) == math.ceil(steps / 5)
    assert tokens[0] == 2 * SMALL["context_length"] and tokens == sorted(tokens)
    assert train_losses[-1] < train_losses[0] - 1.0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Ep 1 (Step 000000): Train loss ") and ", Val loss " in printed[0]
    assert sum(line.startswith("Every effort moves you") for line in printed) == 2  # a sample after each epoch


def test_the_books_lora_classes_count_and_start_as_identity():
    from core.book import LinearWithLoRA, LoRALayer, replace_linear_with_lora

    with torch.device("meta"):  # GPT-2 small with the book's 2-class head (§6.5), no memory needed
        model = GPTModel(GPT_CONFIG_124M)
        model.out_head = torch.nn.Linear(768, 2)
    for p in model.parameters():
        p.requires_grad = False
    replace_linear_with_lora(model, rank=16, alpha=16)
    assert count_parameters(model, trainable_only=True) == 2_666_528  # the book's appendix E figure
    assert isinstance(model.out_head, LinearWithLoRA) and isinstance(model.trf_blocks[0].att.W_query,
                                                                     LinearWithLoRA)
    torch.manual_seed(123)
    small = GPTModel(SMALL).eval()
    x = torch.randint(0, 50257, (2, 5))
    before = small(x)
    replace_linear_with_lora(small, rank=4, alpha=8)
    assert torch.equal(small(x), before)  # B = 0: the adapted model computes what it did
    layer = LoRALayer(6, 3, rank=2, alpha=4)
    with torch.no_grad():
        layer.B.fill_(1.0)
    v = torch.ones(1, 6)
    assert torch.allclose(layer(v), 4 * (v @ layer.A @ layer.B))  # scaled by alpha, as the book's
