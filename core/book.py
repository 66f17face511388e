"""The book's names for chapters 3, 5 and 6 and appendix E, so its calls run as printed against the lab's models.

``from core.book import *`` gives a reader of *Build a Large Language Model (From Scratch)* the functions of the
book's chapter 5 with its signatures and return values, written by this project on top of ``core``:

- chapter 3's ``SelfAttention_v1``, ``SelfAttention_v2``, ``CausalAttention``, ``MultiHeadAttentionWrapper`` and
  ``MultiHeadAttention(d_in, d_out, context_length, dropout, num_heads, qkv_bias=False)`` (:mod:`core.book_ch3`;
  the GPT's own attention, :class:`core.model.MultiHeadAttention`, takes a config instead);
- ``GPT_CONFIG_124M`` (a plain dict, as the book's) and ``GPTModel(GPT_CONFIG_124M)``;
- ``create_dataloader_v1(txt, batch_size, max_length, stride, shuffle, drop_last, num_workers)`` (§2.6);
- ``text_to_token_ids(text, tokenizer)`` → (1, T) ids; ``token_ids_to_text(token_ids, tokenizer)`` → str;
- ``generate_text_simple(model, idx, max_new_tokens, context_size)`` (greedy, §4.7) and
  ``generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, eos_id=None)`` (§5.3);
- ``calc_loss_batch(input_batch, target_batch, model, device)``,
  ``calc_loss_loader(data_loader, model, device, num_batches=None)`` (§5.1);
- ``evaluate_model``, ``generate_and_print_sample`` and ``train_model_simple(model, train_loader, val_loader,
  optimizer, device, num_epochs, eval_freq, eval_iter, start_context, tokenizer)`` →
  ``(train_losses, val_losses, track_tokens_seen)`` (§5.2), and ``load_weights_into_gpt(gpt, params)`` (§5.5);
- chapter 6's ``create_balanced_dataset``, ``random_split``, ``SpamDataset``, ``calc_accuracy_loader``,
  ``train_classifier_simple`` and ``classify_review`` (from :mod:`core.book_ch6`, which also holds that chapter's
  own ``calc_loss_batch``/``calc_loss_loader``/``evaluate_model``);
- appendix E's ``LoRALayer(in_dim, out_dim, rank, alpha)``, ``LinearWithLoRA(linear, rank, alpha)`` and
  ``replace_linear_with_lora(model, rank, alpha)`` (from :mod:`core.lora`).

The functions work on any model that maps (B, T) ids to (B, T, V) logits, so the book's own ``GPTModel`` runs
through them too. The app's pages use the richer ``core`` versions (:mod:`core.train`, :mod:`core.generate`).

Example:
    >>> import torch
    >>> from core.tokenizers import get_tokenizer
    >>> tok = get_tokenizer("gpt2")
    >>> torch.manual_seed(123)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = GPTModel({**GPT_CONFIG_124M, "emb_dim": 64, "n_layers": 2, "n_heads": 2}).eval()
    >>> ids = text_to_token_ids("Every effort moves you", tok)
    >>> ids.shape, generate_text_simple(model, ids, max_new_tokens=3, context_size=1024).shape
    (torch.Size([1, 4]), torch.Size([1, 7]))
"""

from __future__ import annotations

from typing import Any

import torch

from core.book_ch3 import (  # noqa: F401 - chapter 3, the book's signatures (d_in, d_out, context_length, …)
    CausalAttention,
    MultiHeadAttention,
    MultiHeadAttentionWrapper,
    SelfAttention_v1,
    SelfAttention_v2,
)
from core.book_ch6 import (  # noqa: F401 - chapter 6 (its own loss functions: import them from core.book_ch6)
    SpamDataset,
    calc_accuracy_loader,
    classify_review,
    create_balanced_dataset,
    random_split,
    train_classifier_simple,
)
from core.data import create_dataloader_v1  # noqa: F401 - the book's §2.6 loader
from core.errors import LabError
from core.generate import generate as _core_generate
from core.instruct_data import InstructionDataset, custom_collate_fn, format_input  # noqa: F401 - chapter 7
from core.lora import LinearWithLoRA, LoRALayer, replace_linear_with_lora  # noqa: F401 - appendix E
from core.model import GPTModel  # noqa: F401 - takes GPT_CONFIG_124M as it is
from core.train_data import calc_loss_batch, calc_loss_loader

GPT_CONFIG_124M: dict[str, Any] = {
    "vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
    "drop_rate": 0.1, "qkv_bias": False,
}  # fmt: skip
ENDOFTEXT = "<|endoftext|>"

__all__ = ["GPT_CONFIG_124M", "GPTModel", "calc_loss_batch", "calc_loss_loader", "create_dataloader_v1",
           "evaluate_model", "generate", "InstructionDataset", "custom_collate_fn", "format_input",
           "generate_and_print_sample", "generate_text_simple", "text_to_token_ids", "token_ids_to_text",
           "train_model_simple", "LoRALayer", "LinearWithLoRA", "replace_linear_with_lora", "SpamDataset",
           "calc_accuracy_loader", "classify_review", "create_balanced_dataset", "random_split",
           "train_classifier_simple", "SelfAttention_v1", "SelfAttention_v2", "CausalAttention",
           "MultiHeadAttentionWrapper", "MultiHeadAttention", "load_weights_into_gpt", "split_text"]


def text_to_token_ids(text: str, tokenizer: Any) -> torch.Tensor:
    """``text`` as a (1, T) batch of ids; ``<|endoftext|>`` is allowed as its special id."""
    try:
        ids = tokenizer.encode(text, allowed_special={ENDOFTEXT})
    except TypeError:  # a tokenizer without allowed_special (e.g. a character tokenizer)
        ids = tokenizer.encode(text)
    return torch.tensor(ids, dtype=torch.long).unsqueeze(0)


def token_ids_to_text(token_ids: torch.Tensor, tokenizer: Any) -> str:
    """The text of a (1, T) batch of ids (or a flat list)."""
    flat = token_ids.squeeze(0) if isinstance(token_ids, torch.Tensor) else torch.as_tensor(token_ids)
    return tokenizer.decode(flat.tolist())


def generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int,
             temperature: float = 0.0, top_k: int | None = None, eos_id: int | None = None,
             **options: Any) -> torch.Tensor:
    """The book's §5.3 ``generate``: greedy at temperature 0, else sampling from ``softmax(logits / temperature)``
    after an optional top-k cut; ``eos_id`` stops early.

    A :class:`core.model.GPTModel` runs through :func:`core.generate.generate` (KV cache; the eos token is kept).
    Any other model that maps (B, T) ids to (B, T, V) logits, the book's own ``GPTModel`` included, gets the
    book's plain loop: the last ``context_size`` tokens each step, torch's global generator for sampling (so
    ``torch.manual_seed`` fixes it), and the eos token dropped when it ends the text. ``options`` (the lab's
    ``top_p``, ``seed``, ``use_cache``) need a :class:`core.model.GPTModel`.
    """
    if isinstance(model, GPTModel):
        return _core_generate(model, idx, max_new_tokens, context_size, temperature=temperature, top_k=top_k,
                              eos_id=eos_id, **options)  # fmt: skip
    if options:
        raise LabError(f"{', '.join(sorted(options))} work with the lab's GPTModel only; the book's generate takes "
                       "temperature, top_k and eos_id (seed it with torch.manual_seed).")
    return _plain_generate(model, idx, max_new_tokens, context_size, temperature, top_k, eos_id)


@torch.no_grad()
def _plain_generate(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int,
                    temperature: float, top_k: int | None, eos_id: int | None) -> torch.Tensor:
    for _ in range(int(max_new_tokens)):
        logits = model(idx[:, -int(context_size):])[:, -1, :]  # (B, V)
        if top_k is not None:
            kth = torch.topk(logits, int(top_k)).values[:, -1:]  # (B, 1): the smallest logit kept
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if temperature and temperature > 0:
            next_id = torch.multinomial(torch.softmax(logits / temperature, dim=-1), num_samples=1)  # (B, 1)
        else:
            next_id = logits.argmax(dim=-1, keepdim=True)
        if eos_id is not None and bool((next_id == eos_id).all()):
            break
        idx = torch.cat((idx, next_id), dim=1)
    return idx


@torch.no_grad()
def generate_text_simple(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int,
                         context_size: int) -> torch.Tensor:
    """Greedy decoding, one token at a time, on the last ``context_size`` tokens (the book's §4.7).

    Returns ``idx`` (B, T) with ``max_new_tokens`` ids appended: (B, T + max_new_tokens).
    """
    for _ in range(int(max_new_tokens)):
        logits = model(idx[:, -int(context_size):])  # (B, T', V)
        next_id = logits[:, -1, :].argmax(dim=-1, keepdim=True)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)
    return idx


def evaluate_model(model: torch.nn.Module, train_loader: Any, val_loader: Any, device: Any,
                   eval_iter: int) -> tuple[float, float]:
    """Train and validation loss over ``eval_iter`` batches each, in eval mode (dropout off), then back to train."""
    model.eval()
    train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
    val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def _context_length(model: torch.nn.Module) -> int:
    pos = getattr(model, "pos_emb", None)
    return int(pos.weight.shape[0]) if pos is not None else 1024


def generate_and_print_sample(model: torch.nn.Module, tokenizer: Any, device: Any, start_context: str) -> None:
    """Print a 50-token greedy continuation of ``start_context`` on one line (newlines shown as spaces)."""
    model.eval()
    ids = text_to_token_ids(start_context, tokenizer).to(device)
    out = generate_text_simple(model, ids, max_new_tokens=50, context_size=_context_length(model))
    print(token_ids_to_text(out, tokenizer).replace("\n", " "))
    model.train()


def train_model_simple(model: torch.nn.Module, train_loader: Any, val_loader: Any, optimizer: torch.optim.Optimizer,
                       device: Any, num_epochs: int, eval_freq: int, eval_iter: int, start_context: str,
                       tokenizer: Any) -> tuple[list[float], list[float], list[int]]:
    """The book's §5.2 loop: for each batch, backpropagate its loss and step; every ``eval_freq`` steps record
    and print the train/validation loss (over ``eval_iter`` batches); after each epoch print a sample.

    Returns ``(train_losses, val_losses, track_tokens_seen)``, one entry per evaluation.
    """
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(int(num_epochs)):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model, device)
            loss.backward()
            optimizer.step()
            tokens_seen += input_batch.numel()
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): Train loss {train_loss:.3f}, "
                      f"Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, device, start_context)
    return train_losses, val_losses, track_tokens_seen


def split_text(text_data: str, train_ratio: float = 0.90) -> tuple[str, str]:
    """The book's §5.1 split: the first ``train_ratio`` of the *characters* train, the rest validate. The lab's
    trainer cuts the token ids by default; ``TrainSettings(split="characters")`` with
    :func:`core.train_data.split_corpus` trains on this cut (the Pretraining page: "the text's characters")."""
    split_idx = int(train_ratio * len(text_data))
    return text_data[:split_idx], text_data[split_idx:]


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise LabError(f"{what} in the GPT-2 parameters is not an array of numbers ({err}).") from None


def params_to_hf(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The book's ``params`` (from its ``download_and_load_gpt2``: ``wte``, ``wpe``, ``g``, ``b`` and
    ``blocks[i]`` with ``attn``/``mlp``/``ln_1``/``ln_2``) under Hugging Face's GPT-2 tensor names (same layouts:
    both store the fused query/key/value and the Conv1D weights as (in, out))."""
    try:
        hf = {"wte.weight": params["wte"], "wpe.weight": params["wpe"], "ln_f.weight": params["g"],
              "ln_f.bias": params["b"]}
        for i, block in enumerate(params["blocks"]):
            for part, names in (("attn", ("c_attn", "c_proj")), ("mlp", ("c_fc", "c_proj"))):
                for name in names:
                    hf[f"h.{i}.{part}.{name}.weight"] = block[part][name]["w"]
                    hf[f"h.{i}.{part}.{name}.bias"] = block[part][name]["b"]
            for ln in ("ln_1", "ln_2"):
                hf[f"h.{i}.{ln}.weight"], hf[f"h.{i}.{ln}.bias"] = block[ln]["g"], block[ln]["b"]
    except (KeyError, TypeError, IndexError) as err:
        raise LabError(f"These are not the book's GPT-2 parameters (missing {err}); load them with the book's "
                       "download_and_load_gpt2, or use core.checkpoint.load_hf_gpt2 on a model.safetensors.") from None
    return {k: _as_tensor(v, k) for k, v in hf.items()}


def load_weights_into_gpt(gpt: GPTModel, params: dict[str, Any]) -> None:
    """The book's §5.5 ``load_weights_into_gpt``: copy OpenAI's GPT-2 weights (the book's ``params`` dict) into
    ``gpt`` in place. ``gpt`` must have GPT-2's shapes and ``qkv_bias=True``; as in the book the output head
    gets its own copy of the token embedding (untied), unless ``gpt`` ties them.

    Raises:
        LabError: a dict that is not the book's layout, or shapes that do not match ``gpt`` (one sentence).
    """
    from core.hf_gpt2 import gpt2_state_from_hf

    blocks = params.get("blocks") if isinstance(params, dict) else None
    n_blocks = len(blocks) if isinstance(blocks, (list, tuple)) else 0
    if n_blocks != gpt.cfg.n_layers:
        raise LabError(f"The parameters have {n_blocks} blocks but the model has {gpt.cfg.n_layers}; build "
                       "GPTModel with the same n_layers (and the book's params dict).")
    state = gpt2_state_from_hf(params_to_hf(params), gpt.cfg)
    state["out_head.weight"] = state["tok_emb.weight"].clone()  # the book assigns wte to the head as well
    own = gpt.state_dict()
    for name, tensor in state.items():
        if name in own and own[name].shape != tensor.shape:
            raise LabError(f"{name} has shape {tuple(tensor.shape)} in the parameters but {tuple(own[name].shape)} "
                           "in the model; build GPTModel with the matching GPT-2 size (and qkv_bias=True).")
    unused = [k for k in state if k not in own]  # e.g. the query/key/value biases of a qkv_bias=False model
    missing = [k for k in own if k not in state and not k.endswith("out_head.bias")]
    if unused or missing:
        what = f"weights for {unused[0]}, which the model lacks" if unused else f"nothing for {missing[0]}"
        raise LabError(f"The parameters have {what}; build GPTModel with GPT-2's layout and qkv_bias=True.")
    with torch.no_grad():
        for name, tensor in state.items():
            if name in own:
                own[name].copy_(tensor)
