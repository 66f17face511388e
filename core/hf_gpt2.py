"""Hugging Face GPT-2: its file layout, and moving weights between it and :class:`~core.model.GPTModel`.

Hugging Face GPT-2 stores the same numbers as GPTModel under other names and shapes: its ``Conv1D`` layers keep
weights as (in, out) where ``nn.Linear`` keeps (out, in), and it fuses the query/key/value projections into one
``c_attn``. :func:`load_hf_gpt2` and :func:`export_hf_gpt2` translate in both directions;
:func:`verify_gpt2_file` checks from the header alone that a file has GPT-2's layout (and a given size's shape).
Files are read through :mod:`core.safetensors_check`, so nothing is unpickled and no declared size is trusted.

Shape legend: C ``emb_dim``, V ``vocab_size``, L ``context_length``, F the feed-forward width (``ff_mult`` · C).

Example:
    >>> sorted(GPT2_SIZES)
    ['gpt2-large', 'gpt2-medium', 'gpt2-small', 'gpt2-xl']
    >>> hf_prefix({"transformer.wte.weight": (50257, 768)}), hf_prefix({"tok_emb.weight": (50257, 768)})
    ('transformer.', None)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core import checkpoint as ck
from core.config import GPT2_VOCAB_SIZE, MAX_SIZES, PRESETS, GPTConfig
from core.errors import LabError, check_int, check_number, parse_json_safely, shown
from core.model import GPTModel
from core.safetensors_check import Header, fmt_count, read_header

#: Size name (as in :data:`core.config.PRESETS`) → Hugging Face repository.
GPT2_SIZES: dict[str, str] = {
    "gpt2-small": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
#: The tensors of every block ``h.N.`` and outside the blocks, in Hugging Face's names (without ``transformer.``).
BLOCK_PARTS = ("ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
               "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
               "mlp.c_proj.weight", "mlp.c_proj.bias")  # fmt: skip
TOP = ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias")
# HF GPT-2 checkpoints written by transformers < 4.x keep the causal mask as tensors; they carry no weights.
_HF_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
# Activations that are GELU's tanh approximation, the only one GPTModel implements.
_TANH_GELUS = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}
_HF_BLOCK = re.compile(r"h\.(\d+)\.")  # the block number in "h.11.attn.c_attn.weight"
# A real config.json is about 1 kB; a bigger one is not GPT-2's and is not read into memory.
_MAX_HF_CONFIG_BYTES = 1024 * 1024


def check_gpt2_size(size: str) -> str:
    """``size`` if it is one of :data:`GPT2_SIZES`, else one sentence listing them."""
    if size not in GPT2_SIZES:
        raise LabError(f"Unknown GPT-2 size {size!r}; choose one of {', '.join(GPT2_SIZES)}.")
    return size


# ------------------------------------------------------------------------------------------------- layout
def hf_prefix(shapes: dict[str, Any]) -> str | None:
    """``"transformer."`` or ``""`` for HF GPT-2 key layouts, ``None`` when the file isn't GPT-2."""
    if "transformer.wte.weight" in shapes:
        return "transformer."
    if "wte.weight" in shapes:
        return ""
    return None


def strip_prefix(items: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Drop ``prefix`` from every key that has it; ``lm_head.weight`` sits outside ``transformer.``."""
    return {(k[len(prefix) :] if prefix and k.startswith(prefix) else k): v for k, v in items.items()}


def hf_block_count(file: Path, shapes: dict[str, Any]) -> int:
    """How many transformer blocks an HF GPT-2 file holds, from the block numbers in its tensor names.

    The numbers must be exactly ``0 … N-1`` (no gaps) with ``N`` within :data:`~core.config.MAX_SIZES`, so a
    single tensor named ``h.999999999.ln_1.weight`` can't make anyone plan a billion blocks. ``0`` when the
    file has no ``h.N.`` tensor at all.
    """
    limit = MAX_SIZES["n_layers"]
    numbers = {m.group(1) for k in shapes if (m := _HF_BLOCK.match(k))}
    if any(len(n) > len(str(limit)) for n in numbers):  # checked on the text: int() of 5,000 digits raises
        big = max(numbers, key=len)
        name = big if len(big) <= 12 else big[:12] + "…"
        raise LabError(
            f"{file} names a block h.{name}, but this lab loads at most {limit:,} blocks, numbered from h.0; "
            "pick an undamaged GPT-2 checkpoint."
        )
    blocks = {int(n) for n in numbers}
    if blocks and blocks != set(range(len(blocks))):
        gap = min(set(range(max(blocks) + 1)) - blocks)
        raise LabError(
            f"{file} has tensors for block h.{max(blocks)} but none for h.{gap}; GPT-2 blocks are numbered "
            "h.0, h.1, … without gaps, so pick a complete checkpoint."
        )
    if len(blocks) > limit:
        raise LabError(f"{file} has {len(blocks):,} blocks, more than the {limit:,} this lab loads; pick a smaller "
                       "model.")
    return len(blocks)


def verify_gpt2_file(path: str | os.PathLike, size: str | None = None) -> dict[str, Any]:
    """Check that ``path`` is a safetensors file with GPT-2's tensor names (and ``size``'s shape, if given).

    Only the header is read. This is a structural check, not a checksum (none is published for these files).

    Returns:
        ``{"path", "n_layers", "emb_dim", "vocab_size", "context_length", "n_parameters", "file_size"}``.

    Raises:
        LabError: not safetensors (or damaged), not GPT-2's layout, or another size than asked for.
    """
    path = Path(path)
    header = read_header(path)  # validates sizes, offsets and dtypes
    prefix = hf_prefix(header.shapes)
    if prefix is None or header.metadata.get("format") == ck.FORMAT:
        raise LabError(f"{path.name} is a safetensors file but not GPT-2 weights in Hugging Face's layout (it "
                       "has no wte.weight); pick GPT-2's model.safetensors.")
    shapes = strip_prefix(header.shapes, prefix)
    n_layers = hf_block_count(path, shapes)
    needed = [*TOP, *(f"h.{i}.{part}" for i in range(n_layers) for part in BLOCK_PARTS)]
    missing = [n for n in needed if n not in shapes]
    if not n_layers or missing or len(shapes["wte.weight"]) != 2 or not shapes["wpe.weight"]:
        what = ", ".join(missing[:3]) if missing else "any h.N block" if not n_layers else "a 2-D wte.weight"
        raise LabError(f"{path.name} is not a complete GPT-2 checkpoint: it lacks {what}; download it again "
                       "or pick another file.")
    (vocab, emb), context = shapes["wte.weight"], shapes["wpe.weight"][0]
    if size is not None:
        want = PRESETS[check_gpt2_size(size)]["config"]
        if (n_layers, emb) != (want["n_layers"], want["emb_dim"]):
            raise LabError(f"{path.name} holds a GPT-2 with {n_layers} blocks of width {emb}, but {size} has "
                           f"{want['n_layers']} blocks of width {want['emb_dim']}; pick the right size.")
    return {"path": str(path), "n_layers": n_layers, "emb_dim": emb, "vocab_size": vocab, "context_length": context,
            "n_parameters": header.n_parameters, "file_size": header.file_size}


# ---------------------------------------------------------------------------------------------------- loading
def load_hf_gpt2(
    path_or_dir: str | os.PathLike, device: str | torch.device = "cpu", config: GPTConfig | None = None
) -> GPTModel:
    """Load Hugging Face GPT-2 weights (``model.safetensors``) into a :class:`~core.model.GPTModel`.

    Keys may carry the ``transformer.`` prefix or not (the original ``openai-community/gpt2`` files); old
    causal-mask buffers (``attn.bias``, ``attn.masked_bias``) are skipped. ``Conv1D`` weights are transposed and
    ``c_attn`` is split into W_query, W_key, W_value, in that order. The configuration comes from ``config``
    (``qkv_bias`` forced to ``True``), else a ``config.json`` beside the weights, else the shapes, which fix
    every size but the head count: then ``emb_dim // 64``, as in every released GPT-2. The head is tied to
    ``wte`` unless a differing ``lm_head.weight`` is present (or ``config`` unties it). Dropout is 0.

    Args:
        path_or_dir: a ``model.safetensors`` file, or a folder holding one (and optionally ``config.json``).
        device: where to put the model.
        config: the architecture to use instead of ``config.json`` or inference.

    Returns:
        The model, in eval mode.
    """
    file, hf_config = _hf_files(Path(path_or_dir).expanduser())
    header, prefix = _hf_header(file)
    n_blocks = hf_block_count(file, header.shapes)  # before any size from a tensor name is trusted
    if config is not None:
        if not isinstance(config, GPTConfig):
            raise LabError(f"config must be a GPTConfig, got {type(config).__name__}; leave it out to infer it.")
        cfg = config.replace(qkv_bias=True)
    elif hf_config is not None:
        cfg = _cfg_from_hf_json(file.parent / "config.json", hf_config)
    else:
        cfg = _cfg_from_shapes(file, header.shapes, n_blocks)
    one = _to_hf(ck.meta_model(cfg.replace(n_layers=1)), tied=True, prefix="")  # one block planned, the rest named
    expected = ck.repeat_block({k: tuple(t.shape) for k, t in one.items()}, "h.", cfg)
    if "lm_head.weight" in header.shapes:
        expected["lm_head.weight"] = (cfg.vocab_size, cfg.emb_dim)
    ck.check_tensors(file, header, expected, strict=True, hf=True)
    dev = ck.parse_device(device)
    tensors, _ = ck.load_state_dict_safely(file, device=dev)
    hf = {k: v for k, v in strip_prefix(tensors, prefix).items() if k in expected}
    del tensors  # drop the buffers and our reference to the unmapped tensors as early as possible
    return ck.assemble(*_with_head(file, cfg, hf, config is None), dev)


def _hf_header(file: Path) -> tuple[Header, str]:
    """The file's header with the ``transformer.`` prefix and the old mask buffers removed, and that prefix."""
    raw = read_header(file)
    prefix = hf_prefix(raw.shapes)
    if prefix is None:
        raise LabError(f"{file} has no wte.weight, so it is not a GPT-2 checkpoint; pick a GPT-2 model.safetensors.")
    entries = {k: v for k, v in strip_prefix(raw.tensors, prefix).items() if not _HF_BUFFER.fullmatch(k)}
    return Header(tensors=entries, metadata=raw.metadata, file_size=raw.file_size), prefix


def _with_head(
    file: Path, cfg: GPTConfig, hf: dict[str, torch.Tensor], infer_tie: bool
) -> tuple[GPTConfig, dict[str, torch.Tensor]]:
    """The final config (tied unless ``lm_head`` differs from ``wte``) and GPTModel's state dict."""
    head = hf.pop("lm_head.weight", None)
    differs = head is not None and not torch.equal(head, hf["wte.weight"])
    if infer_tie:
        cfg = cfg.replace(tie_weights=not differs)
    elif cfg.tie_weights and differs:
        raise LabError(
            f"{file} has an lm_head.weight that differs from wte.weight, but the given config ties them; "
            "pass a config with tie_weights=False."
        )
    state = gpt2_state_from_hf(hf, cfg)
    if not cfg.tie_weights:
        # Our own copy when untied: two Parameters sharing memory would train as a strange half-tie.
        state["out_head.weight"] = head if differs else hf["wte.weight"].clone()
    return cfg, state


def _hf_files(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """The weights file and the parsed config.json beside it (``None`` when there is none)."""
    if path.is_dir():
        file = path / "model.safetensors"
        if not file.exists():
            raise _no_weights(path)
    elif path.exists():
        file = path
    else:
        raise LabError(f"There is no file or folder at {path}; check the path.")
    cfg_path = file.parent / "config.json"
    if not cfg_path.is_file():
        return file, None
    try:
        if cfg_path.stat().st_size > _MAX_HF_CONFIG_BYTES:
            raise LabError(f"{cfg_path} is larger than 1 MB, far too big for a GPT-2 config.json; fix or remove it.")
        text = cfg_path.read_bytes()
    except OSError as err:
        raise LabError(f"Could not read {cfg_path} ({err.strerror or err}); fix or remove it.") from err
    data = parse_json_safely(text, str(cfg_path), "fix or remove it")
    if not isinstance(data, dict):
        raise LabError(f"{cfg_path} is not a JSON object; fix or remove it.")
    return file, data


def _no_weights(folder: Path) -> LabError:
    """Why ``folder`` (without a model.safetensors) can't be loaded: sharded, pickle only, or empty."""
    if (folder / "model.safetensors.index.json").exists():
        return LabError(f"{folder} holds a sharded checkpoint, which this lab can't load; use a single file.")
    if any((folder / name).exists() for name in ("pytorch_model.bin", "model.pt", "pytorch_model.pt")):
        return LabError(
            f"{folder} only has a pickle (.bin/.pt) checkpoint, which this lab never opens because "
            "unpickling can run arbitrary code; download or convert its model.safetensors."
        )
    return LabError(f"{folder} has no model.safetensors; pick the folder that holds the GPT-2 weights.")


def _cfg_from_hf_json(where: Path, d: dict[str, Any]) -> GPTConfig:
    """Our config from a Hugging Face GPT-2 config.json, refusing variants GPTModel can't reproduce."""
    if d.get("model_type", "gpt2") != "gpt2":
        raise LabError(f"{where} describes a {shown(d['model_type'])} model, not GPT-2; pick a GPT-2 checkpoint.")
    act = d.get("activation_function", "gelu_new")
    if not isinstance(act, str) or act not in _TANH_GELUS:
        raise LabError(f"{where} uses the {shown(act)} activation but GPTModel has tanh-GELU; pick a standard GPT-2.")
    if d.get("scale_attn_by_inverse_layer_idx") or d.get("scale_attn_weights", True) is False:
        raise LabError(f"{where} scales attention differently from GPT-2, which GPTModel can't reproduce.")
    missing = next((k for k in ("n_embd", "vocab_size", "n_head", "n_layer") if k not in d), None)
    if missing:
        raise LabError(f"{where} has no {missing!r} entry; fix it or remove it to infer sizes from weights.")
    fix = "fix it or remove the file to infer sizes from the weights"

    def size(key: str, value: Any) -> int:  # 64.9 or true is a damaged file, never 64 or 1
        return check_int(value, f"{where}'s {key}", low=1, fix=fix)

    emb, vocab, heads, layers = (size(k, d[k]) for k in ("n_embd", "vocab_size", "n_head", "n_layer"))
    context = size("n_positions", d.get("n_positions", d.get("n_ctx", 1024)))
    inner = size("n_inner", d.get("n_inner") or 4 * emb)
    eps = check_number(d.get("layer_norm_epsilon", 1e-5), f"{where}'s layer_norm_epsilon", low=0, low_open=True,
                       fix=fix)
    if emb <= 0 or inner % emb:
        raise LabError(
            f"{where} has n_inner={fmt_count(inner)}, not a multiple of n_embd={fmt_count(emb)}, which GPTModel needs."
        )
    return GPTConfig(vocab_size=vocab, context_length=context, emb_dim=emb, n_heads=heads, n_layers=layers,
                     drop_rate=0.0, qkv_bias=True, tie_weights=True, ff_mult=inner // emb, ln_eps=eps)


def _cfg_from_shapes(file: Path, shapes: dict[str, tuple[int, ...]], n_blocks: int) -> GPTConfig:
    """Infer the configuration from tensor shapes alone (heads: 64 wide, as in every released GPT-2)."""
    needed = ("wte.weight", "wpe.weight", "h.0.mlp.c_fc.weight")
    if not n_blocks or any(k not in shapes or len(shapes[k]) != 2 for k in needed):
        raise LabError(f"{file} doesn't have GPT-2's layout (wte, wpe, h.0.mlp.c_fc …); pick a GPT-2 checkpoint.")
    vocab, emb = shapes["wte.weight"]
    hidden = shapes["h.0.mlp.c_fc.weight"][1]
    if emb == 0 or emb % 64 or hidden % emb:
        raise LabError(
            f"{file} is {emb} wide with a {hidden}-wide MLP, so its head count can't be inferred; put its "
            "config.json beside it or pass config=GPTConfig(...)."
        )
    # n_layers: numbered 0 … n_blocks-1 without gaps (checked by hf_block_count)
    return GPTConfig(vocab_size=vocab, context_length=shapes["wpe.weight"][0], emb_dim=emb, n_heads=emb // 64,
                     n_layers=n_blocks, drop_rate=0.0, qkv_bias=True, tie_weights=True, ff_mult=hidden // emb)


# ------------------------------------------------------------------------------------------- key mapping
def gpt2_state_from_hf(hf: dict[str, torch.Tensor], cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Rename (and transpose / split) HF GPT-2 tensors to GPTModel's state-dict names."""
    c = cfg.emb_dim
    state = {"tok_emb.weight": hf["wte.weight"], "pos_emb.weight": hf["wpe.weight"]}
    for i in range(cfg.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        # Conv1D keeps (in, out); nn.Linear keeps (out, in). After .t(), Q, K, V are consecutive row blocks.
        q, k, v = hf[h + "attn.c_attn.weight"].t().split(c, dim=0)  # (C, 3C) -> (3C, C) -> 3 × (C, C)
        qb, kb, vb = hf[h + "attn.c_attn.bias"].split(c)  # (3C,) -> 3 × (C,)
        for name, w, bias in (("W_query", q, qb), ("W_key", k, kb), ("W_value", v, vb)):
            state[f"{b}att.{name}.weight"] = w.contiguous()
            state[f"{b}att.{name}.bias"] = bias.clone()  # own storage, so save() can write it later
        state[b + "att.out_proj.weight"] = hf[h + "attn.c_proj.weight"].t().contiguous()  # (C, C)
        state[b + "att.out_proj.bias"] = hf[h + "attn.c_proj.bias"]
        state[b + "ff.layers.0.weight"] = hf[h + "mlp.c_fc.weight"].t().contiguous()  # (C, F) -> (F, C)
        state[b + "ff.layers.0.bias"] = hf[h + "mlp.c_fc.bias"]
        state[b + "ff.layers.2.weight"] = hf[h + "mlp.c_proj.weight"].t().contiguous()  # (F, C) -> (C, F)
        state[b + "ff.layers.2.bias"] = hf[h + "mlp.c_proj.bias"]
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            state[f"{b}{ours}.scale"] = hf[f"{h}{theirs}.weight"]
            state[f"{b}{ours}.shift"] = hf[f"{h}{theirs}.bias"]
    state["final_norm.scale"], state["final_norm.shift"] = hf["ln_f.weight"], hf["ln_f.bias"]
    return state


def _to_hf(model: GPTModel, tied: bool, prefix: str = "transformer.") -> dict[str, torch.Tensor]:
    """GPTModel's tensors under HF GPT-2 names and layouts (the inverse of :func:`gpt2_state_from_hf`)."""
    cfg, p = model.cfg, prefix
    out = {p + "wte.weight": model.tok_emb.weight, p + "wpe.weight": model.pos_emb.weight}
    for i, block in enumerate(model.trf_blocks):
        h, att, ff = f"{p}h.{i}.", block.att, block.ff.layers
        if not all(type(m) is nn.Linear for m in (att.W_query, att.W_key, att.W_value, att.out_proj, ff[0], ff[2])):
            raise LabError(
                "The model has wrapped layers (LoRA?) that GPT-2 doesn't know; merge them into the base "
                "weights first (core.lora.merge_lora)."
            )
        qkv = torch.cat([att.W_query.weight, att.W_key.weight, att.W_value.weight], dim=0)  # 3 × (C, C) -> (3C, C)
        out[h + "attn.c_attn.weight"] = qkv.t()  # Conv1D layout (C, 3C)
        if cfg.qkv_bias:
            out[h + "attn.c_attn.bias"] = torch.cat([att.W_query.bias, att.W_key.bias, att.W_value.bias])
        else:  # HF GPT-2 always has these biases; zeros make it compute exactly what our bias-free layers do
            out[h + "attn.c_attn.bias"] = att.W_query.weight.new_zeros(3 * cfg.emb_dim)
        out[h + "attn.c_proj.weight"], out[h + "attn.c_proj.bias"] = att.out_proj.weight.t(), att.out_proj.bias
        out[h + "mlp.c_fc.weight"], out[h + "mlp.c_fc.bias"] = ff[0].weight.t(), ff[0].bias  # (F, C) -> (C, F)
        out[h + "mlp.c_proj.weight"], out[h + "mlp.c_proj.bias"] = ff[2].weight.t(), ff[2].bias  # (C, F) -> (F, C)
        out[h + "ln_1.weight"], out[h + "ln_1.bias"] = block.norm1.scale, block.norm1.shift
        out[h + "ln_2.weight"], out[h + "ln_2.bias"] = block.norm2.scale, block.norm2.shift
    out[p + "ln_f.weight"], out[p + "ln_f.bias"] = model.final_norm.scale, model.final_norm.shift
    if not tied:
        out["lm_head.weight"] = model.out_head.weight
    return out


# ---------------------------------------------------------------------------------------------------- export
def export_hf_gpt2(model: GPTModel, out_dir: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` that ``transformers.GPT2LMHeadModel`` loads as is.

    The exported model gives the same logits: ``GPT2LMHeadModel.from_pretrained(out_dir)``. A model without
    query/key/value biases gets zero ``c_attn`` biases (HF GPT-2 always has them); an untied output head is
    written as ``lm_head.weight``. LoRA layers must be merged first.

    Args:
        model: the model to export.
        out_dir: the folder to write (created if needed; the two files are replaced atomically).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    if not isinstance(model, GPTModel):
        raise LabError(f"export_hf_gpt2() needs a GPTModel, got {type(model).__name__}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LabError(f"{out_dir} is a file; give a folder to write config.json and model.safetensors into.")
    tied = ck.is_tied(model)
    with torch.no_grad():
        tensors = {name: ck.standalone(t) for name, t in _to_hf(model, tied).items()}
    text = json.dumps(_hf_config(model, tied), indent=2, sort_keys=True) + "\n"
    # transformers refuses safetensors files whose "format" metadata isn't "pt".
    ck.write_safetensors(out_dir / "model.safetensors", tensors, {"format": "pt"})
    ck.atomic_write(out_dir / "config.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return out_dir


def _hf_config(model: GPTModel, tied: bool) -> dict[str, Any]:
    """The ``config.json`` of ``transformers.GPT2Config`` that describes ``model``."""
    cfg = model.cfg
    # <|endoftext|> exists only in GPT-2's own vocabulary; elsewhere an out-of-range id would confuse.
    eos = GPT2_VOCAB_SIZE - 1 if cfg.vocab_size == GPT2_VOCAB_SIZE else None
    return {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context_length, "n_embd": cfg.emb_dim, "n_layer": cfg.n_layers, "n_head": cfg.n_heads,
        "n_inner": cfg.ff_mult * cfg.emb_dim, "activation_function": "gelu_new", "layer_norm_epsilon": cfg.ln_eps,
        "resid_pdrop": cfg.drop_rate, "embd_pdrop": cfg.drop_rate, "attn_pdrop": cfg.drop_rate,
        "initializer_range": 0.02, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": tied, "use_cache": True,
        "bos_token_id": eos, "eos_token_id": eos, "dtype": str(model.tok_emb.weight.dtype).removeprefix("torch."),
    }  # fmt: skip
