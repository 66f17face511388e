"""From checked tensors to a :class:`~core.model.GPTModel`: the shapes a config implies, the header check
against them, and assembly without a random init or a second copy in memory.

Both loaders (:func:`core.checkpoint.load` and :func:`core.hf_gpt2.load_hf_gpt2`) end in :func:`assemble`,
so every model the lab loads has float32 weights with no NaN or infinity in them.

Example:
    >>> from core.config import GPTConfig
    >>> shapes = _expected_shapes(GPTConfig.preset("tiny", tie_weights=True))
    >>> shapes["tok_emb.weight"], "out_head.weight" in shapes  # tied: the head is stored once, as tok_emb
    ((50257, 64), False)
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.config import GPTConfig
from core.errors import LabError
from core.model import GPTModel
from core.safetensors_check import FLOAT_DTYPES, Header, fmt_names, fmt_shape


def _expected_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor a checkpoint of ``cfg`` stores (a tied head is stored once: tok_emb)."""
    one = meta_model(cfg.replace(n_layers=1))  # every block has the same tensors: plan one, number the rest
    shapes = repeat_block({name: tuple(t.shape) for name, t in one.state_dict().items()}, "trf_blocks.", cfg)
    if cfg.tie_weights:
        shapes.pop("out_head.weight")
    return shapes


def repeat_block(shapes: dict[str, tuple[int, ...]], prefix: str, cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """``shapes`` of a one-block model, with block ``prefix + "0."``'s entries repeated for all ``cfg.n_layers``.

    Building a model (even on the meta device) costs milliseconds per block, so a header claiming a thousand
    blocks would take seconds; naming the tensors costs nothing.

    Example:
        >>> from core.config import GPTConfig
        >>> repeat_block({"h.0.w": (2,), "wte": (3,)}, "h.", GPTConfig.preset("tiny").replace(n_layers=2))
        {'h.0.w': (2,), 'h.1.w': (2,), 'wte': (3,)}
    """
    first = prefix + "0."
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        if name.startswith(first):
            rest = name[len(first) :]
            out.update({f"{prefix}{i}.{rest}": shape for i in range(cfg.n_layers)})
        else:
            out[name] = shape
    return out


def meta_model(cfg: GPTConfig) -> GPTModel:
    """A GPTModel of ``cfg`` on the meta device: shapes only, no memory, no random init cost."""
    with torch.device("meta"):
        return GPTModel(cfg)


def check_tensors(
    path: Path, header: Header, expected: dict[str, tuple[int, ...]], strict: bool, hf: bool = False
) -> None:
    """Compare the header's tensors with what the config needs; shapes and float dtypes must always match.

    ``hf`` words the advice for a Hugging Face GPT-2 file instead of a lab checkpoint.
    """
    got = header.shapes
    for name in (n for n in expected if n in got):  # in the model's order, so the first problem is named
        if got[name] != expected[name]:
            fix = "pass a matching config or fix config.json" if hf else "the file is inconsistent, so re-save it"
            raise LabError(
                f"The checkpoint's {name} has shape {fmt_shape(got[name])} but the config says "
                f"{fmt_shape(expected[name])}; {fix}."
            )
        if header.tensors[name][0] not in FLOAT_DTYPES:
            raise LabError(f"The checkpoint's {name} holds {header.tensors[name][0]} values, not floats; re-save it.")
    missing, unexpected = sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys())
    if strict and missing:
        fix = "it is not a complete GPT-2 checkpoint" if hf else "pass strict=False to start those from random values"
        raise LabError(f"{path.name} lacks {len(missing)} tensor(s) the model needs ({fmt_names(missing)}); {fix}.")
    if strict and unexpected:
        fix = "it is not a standard GPT-2 checkpoint" if hf else "pass strict=False to ignore them"
        raise LabError(
            f"{path.name} has {len(unexpected)} tensor(s) the model doesn't have ({fmt_names(unexpected)}); {fix}."
        )


def assemble(cfg: GPTConfig, tensors: dict[str, torch.Tensor], device: torch.device) -> GPTModel:
    """A GPTModel of ``cfg`` holding ``tensors`` (already on ``device`` and shape-checked), in eval mode.

    Half-precision weights are widened to float32 (what the model computes in); integer weights, NaN and
    infinities are refused here, so a bad file fails at load with one sentence, not at the first forward pass.
    """
    expected = _expected_shapes(cfg)
    known = {name: _usable_weight(name, t) for name, t in tensors.items() if name in expected}
    if known.keys() == expected.keys():
        # Build on the meta device and adopt the loaded tensors: no random init, no second copy in memory.
        model = meta_model(cfg)
        model.load_state_dict(known, strict=False, assign=True)
    else:  # strict=False with missing tensors: those keep a real random initialisation
        model = GPTModel(cfg).to(device)
        model.load_state_dict(known, strict=False)
    if cfg.tie_weights:
        model.out_head.weight = model.tok_emb.weight  # one Parameter, as GPTModel.__init__ ties it
    leftover = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # would only happen if GPTModel gained a tensor this module doesn't know about
        raise LabError(f"Internal error: {fmt_names(leftover)} were not loaded; please report this.")
    return model.eval()


def _usable_weight(name: str, t: torch.Tensor) -> torch.Tensor:
    if not t.is_floating_point():
        raise LabError(f"The weight {name} holds {str(t.dtype).removeprefix('torch.')} numbers, not floating point; "
                       "the file is not a GPT checkpoint.")
    t = t.float() if t.dtype != torch.float32 else t
    if not bool(torch.isfinite(t).all()):
        raise LabError(f"The weight {name} holds NaN or infinite numbers (a run that diverged?); load an earlier "
                       "checkpoint or train again with a lower learning rate.")
    return t
