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
from core.errors import LabError
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


def test_chapter_6_as_printed_on_the_books_sms_file(shared_data, tokenizer, tmp_path, capsys):
    """The book's §6.2–6.8 calls on the real SMS file: 747 + 747 balanced, 1,045 / 149 / 300, max_length 120."""
    import pandas as pd

    from core.book import (
        SpamDataset,
        calc_accuracy_loader,
        classify_review,
        create_balanced_dataset,
        random_split,
        train_classifier_simple,
    )
    from core.book_ch6 import calc_loss_loader as cls_loss_loader

    path = shared_data / "SMSSpamCollection.tsv"
    if not path.is_file():
        pytest.skip("SMSSpamCollection.tsv is not in the shared data folder")
    df = pd.read_csv(path, sep="\t", header=None, names=["Label", "Text"])
    balanced = create_balanced_dataset(df)
    assert balanced["Label"].value_counts().to_dict() == {"ham": 747, "spam": 747}
    balanced["Label"] = balanced["Label"].map({"ham": 0, "spam": 1})
    train_df, validation_df, test_df = random_split(balanced, 0.7, 0.1)
    assert (len(train_df), len(validation_df), len(test_df)) == (1045, 149, 300)
    train_df.to_csv(tmp_path / "train.csv", index=None)
    validation_df.to_csv(tmp_path / "validation.csv", index=None)
    train_dataset = SpamDataset(tmp_path / "train.csv", max_length=None, tokenizer=tokenizer)
    assert train_dataset.max_length == 120  # the book's printed figure
    val_dataset = SpamDataset(tmp_path / "validation.csv", max_length=train_dataset.max_length, tokenizer=tokenizer)
    loader = torch.utils.data.DataLoader(train_dataset, batch_size=8, shuffle=True, drop_last=True)
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=8)
    x, y = next(iter(loader))
    assert x.shape == (8, 120) and y.shape == (8,)  # the book's "Input batch dimensions: torch.Size([8, 120])"

    torch.manual_seed(123)
    model = GPTModel({**SMALL, "context_length": 128})
    model.out_head = torch.nn.Linear(SMALL["emb_dim"], 2)
    acc = calc_accuracy_loader(val_loader, model, "cpu", num_batches=2)
    assert 0.0 <= acc <= 1.0 and cls_loss_loader(val_loader, model, "cpu", num_batches=2) > 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.1)
    small = torch.utils.data.Subset(train_dataset, range(32))
    small_loader = torch.utils.data.DataLoader(small, batch_size=8, shuffle=True, drop_last=True)
    out = train_classifier_simple(model, small_loader, val_loader, optimizer, "cpu", num_epochs=2, eval_freq=2,
                                  eval_iter=1)
    train_losses, val_losses, train_accs, val_accs, examples_seen = out
    assert len(train_losses) == len(val_losses) == 4 and len(train_accs) == len(val_accs) == 2
    assert examples_seen == 64
    assert "Training accuracy: " in capsys.readouterr().out
    text = "You are a winner you have been specially selected to receive $1000 cash or a $2000 award."
    assert classify_review(text, model, tokenizer, "cpu", max_length=train_dataset.max_length) in ("spam",
                                                                                                      "not spam")


def test_load_weights_into_gpt_takes_the_books_params_and_matches_transformers():
    """The book's §5.5 params dict (OpenAI's layout, as its download_and_load_gpt2 returns it) → our GPTModel:
    the logits equal a random transformers GPT-2's."""
    import transformers

    from core.book import load_weights_into_gpt
    from core.errors import LabError

    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0)).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # not the init's zeros and ones: every tensor matters
    sd = {k.removeprefix("transformer."): v.numpy() for k, v in hf.state_dict().items()}

    def block(i):
        g = lambda n: sd[f"h.{i}.{n}"]  # noqa: E731
        return {"attn": {"c_attn": {"w": g("attn.c_attn.weight"), "b": g("attn.c_attn.bias")},
                         "c_proj": {"w": g("attn.c_proj.weight"), "b": g("attn.c_proj.bias")}},
                "mlp": {"c_fc": {"w": g("mlp.c_fc.weight"), "b": g("mlp.c_fc.bias")},
                        "c_proj": {"w": g("mlp.c_proj.weight"), "b": g("mlp.c_proj.bias")}},
                "ln_1": {"g": g("ln_1.weight"), "b": g("ln_1.bias")}, "ln_2": {"g": g("ln_2.weight"),
                                                                              "b": g("ln_2.bias")}}

    params = {"wte": sd["wte.weight"], "wpe": sd["wpe.weight"], "g": sd["ln_f.weight"], "b": sd["ln_f.bias"],
              "blocks": [block(0), block(1)]}
    cfg = {"vocab_size": 300, "context_length": 32, "emb_dim": 32, "n_heads": 4, "n_layers": 2, "drop_rate": 0.0,
           "qkv_bias": True}
    gpt = GPTModel(cfg).eval()
    load_weights_into_gpt(gpt, params)
    x = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(gpt(x), hf(x).logits, atol=1e-4, rtol=0)
    assert gpt.out_head.weight.data_ptr() != gpt.tok_emb.weight.data_ptr()  # the book's separate copy
    with pytest.raises(LabError, match="2 blocks but the model has 3"):
        load_weights_into_gpt(GPTModel({**cfg, "n_layers": 3}), params)
    with pytest.raises(LabError, match="qkv_bias=True"):
        load_weights_into_gpt(GPTModel({**cfg, "qkv_bias": False}), params)
    with pytest.raises(LabError, match="shape"):
        load_weights_into_gpt(GPTModel({**cfg, "vocab_size": 301}), params)
    with pytest.raises(LabError, match="not the book's GPT-2 parameters"):
        load_weights_into_gpt(gpt, {"blocks": [{}, {}]})


def test_the_books_character_split_of_the_verdict(shared_data, tokenizer):
    from core.book import split_text
    from core.train_data import split_token_ids

    path = shared_data / "the-verdict.txt"
    if not path.is_file():
        pytest.skip("the-verdict.txt is not in the shared data folder")
    text = path.read_text(encoding="utf-8")
    train_data, val_data = split_text(text, 0.90)
    assert train_data + val_data == text and len(train_data) == int(0.9 * len(text))
    assert (len(tokenizer.encode(train_data)), len(tokenizer.encode(val_data))) == (4612, 534)  # the book's cut
    ids = torch.tensor(tokenizer.encode(text))
    assert [len(part) for part in split_token_ids(ids, 0.1)] == [4630, 515]  # the lab's default cut


def test_the_trainer_and_the_preflight_take_the_books_split(shared_data, tokenizer):
    """split="characters" (the page's "the text's characters") trains on the book's 4,612 / 534 tokens."""
    from core.config import GPTConfig
    from core.preflight import preflight_numbers
    from core.train import Trainer, TrainSettings
    from core.train_data import split_corpus

    path = shared_data / "the-verdict.txt"
    if not path.is_file():
        pytest.skip("the-verdict.txt is not in the shared data folder")
    text = path.read_text(encoding="utf-8")
    cfg = GPTConfig.preset("tiny").replace(context_length=256)
    book = TrainSettings(max_steps=1, batch_size=2, split="characters", eval_batches=1, sample_tokens=0)
    data = split_corpus(text, tokenizer, book.val_ratio, book.split)
    assert data.sizes == (4612, 534)
    trainer = Trainer(cfg, book, data, check_memory=False)
    assert (trainer.corpus["train_tokens"], trainer.corpus["val_tokens"]) == (4612, 534)
    assert (trainer.corpus["train_windows"], trainer.corpus["val_windows"]) == (18, 2)  # the book's 9 + 2 batches
    num = preflight_numbers(len(data), cfg, book, data.sizes)
    assert (num["train_tokens"], num["val_tokens"], num["train_windows"]) == (4612, 534, 18)
    lab = Trainer(cfg, book.replace(split="tokens"), split_corpus(text, tokenizer, 0.1), check_memory=False)
    assert (lab.corpus["train_tokens"], lab.corpus["val_tokens"]) == (4630, 515)
    with pytest.raises(LabError, match="cuts the text, not its ids"):
        Trainer(cfg, book, tokenizer.encode(text), check_memory=False)
    with pytest.raises(LabError, match="split by characters but the settings say split='tokens'"):
        Trainer(cfg, book.replace(split="tokens"), data, check_memory=False)
    with pytest.raises(LabError, match="split must be one of tokens, characters"):
        TrainSettings(split="words")


def test_the_books_batch_order_comes_from_the_global_seed(tokenizer):
    from torch.utils.data import DataLoader

    from core.data import GPTDataset

    text = load_corpus("builtin-corpus")[:20_000]

    def first_batches(loader, n=3):
        return [x.tolist() for _, (x, _y) in zip(range(n), loader)]

    torch.manual_seed(123)
    ours = first_batches(create_dataloader_v1(text, batch_size=4, max_length=8, stride=8, shuffle=True))
    torch.manual_seed(123)  # the book's construction: a plain DataLoader that shuffles with the global generator
    plain = first_batches(DataLoader(GPTDataset(text, tokenizer, 8, 8), batch_size=4, shuffle=True, drop_last=True))
    assert ours == plain
    torch.manual_seed(123)
    seeded = first_batches(create_dataloader_v1(text, batch_size=4, max_length=8, stride=8, seed=123))
    assert seeded != ours  # a private generator: its own order, the same whatever ran before
    torch.manual_seed(999)
    assert first_batches(create_dataloader_v1(text, batch_size=4, max_length=8, stride=8, seed=123)) == seeded


class _BookLayoutGPT(torch.nn.Module):
    """A model with the book's attribute names that is not core's GPTModel (as the book's own class would be)."""

    def __init__(self, core_model):
        super().__init__()
        self.inner = core_model

    def forward(self, idx):
        return self.inner(idx)


def test_book_calls_on_blocks_state_dicts_and_other_models(tokenizer):
    torch.manual_seed(123)
    model = GPTModel(SMALL).eval()
    x = torch.randn(2, 5, SMALL["emb_dim"])  # (B, T, emb_dim)
    out = model.trf_blocks(x)  # the book's nn.Sequential call: hidden states, not tuples
    expected = x
    for block in model.trf_blocks:
        expected = block(expected)[0]
    assert out.shape == (2, 5, SMALL["emb_dim"]) and torch.equal(out, expected)
    saved = dict(model.state_dict())  # the book's checkpoints carry each block's causal-mask buffer
    for i in range(SMALL["n_layers"]):
        saved[f"trf_blocks.{i}.att.mask"] = torch.triu(torch.ones(32, 32), diagonal=1)
    fresh = GPTModel(SMALL)
    fresh.load_state_dict(saved)  # strict: everything else must still match
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    with pytest.raises(RuntimeError, match="Unexpected"):
        fresh.load_state_dict({**saved, "trf_blocks.0.att.other": torch.zeros(1)})

    ids = text_to_token_ids("Every effort moves you", tokenizer)
    other = _BookLayoutGPT(model).eval()
    greedy = generate(other, ids, max_new_tokens=5, context_size=32)
    assert torch.equal(greedy, generate(model, ids, max_new_tokens=5, context_size=32))  # same numbers both ways
    torch.manual_seed(7)
    a = generate(other, ids, max_new_tokens=5, context_size=32, temperature=1.5, top_k=3)
    torch.manual_seed(7)
    assert torch.equal(a, generate(other, ids, max_new_tokens=5, context_size=32, temperature=1.5, top_k=3))
    logits = other(a[:, :-1])[0, -1]
    assert int(a[0, -1]) in torch.topk(logits, 3).indices.tolist()  # top-k: only the 3 likeliest can be picked
    eos = int(greedy[0, ids.shape[1]])  # the first greedy token as "end of text": stops at once, dropped
    assert torch.equal(generate(other, ids, 5, 32, eos_id=eos), ids)
    with pytest.raises(LabError, match="seed, top_p work with the lab's GPTModel only"):
        generate(other, ids, 5, 32, top_p=0.9, seed=1)


def test_the_books_instruction_names():
    from core.book import InstructionDataset, custom_collate_fn, format_input

    data = [{"instruction": "Say hi.", "input": "", "output": "Hi."}, {"instruction": "Echo", "input": "x",
                                                                          "output": "x"}]  # fmt: skip
    assert format_input(data[0]).startswith("Below is an instruction")
    dataset = InstructionDataset(data, get_tokenizer("gpt2"))  # the book's two-argument call
    inputs, targets = custom_collate_fn([dataset[0], dataset[1]])
    assert inputs.shape == targets.shape and inputs.shape[0] == 2
    assert torch.equal(inputs[:, 1:][targets[:, :-1] != -100], targets[:, :-1][targets[:, :-1] != -100])
    assert (targets == -100).any()  # padding beyond the first end-of-text is ignored
