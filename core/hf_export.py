"""A run's checkpoint as a Hugging Face GPT-2 folder, zipped in memory for a browser download.

``python -m core export`` writes ``config.json`` + ``model.safetensors`` into a folder on the machine it runs on;
a visitor of the hosted demo has no folder on the server, so the Pretraining page offers the same two files (made
by the same :func:`core.hf_gpt2.export_hf_gpt2`, in a temporary folder) as one zip, with a README that says how
to load it with ``transformers`` and which tokenizer to use.

In the hosted demo only the visitor who started a run may export it (:func:`core.access.check_access`, the check
that resuming a run makes), and a model above the demo's parameter cap (:attr:`core.limits.Limits.max_params`,
the cap on what may be built or trained) is refused from the checkpoint's header, before any weight is read: one
visitor must not make the shared server hold hundreds of MB of zip in memory.

Example:
    >>> data, name = hf_export_zip("runs/20261123-101500-mini")  # doctest: +SKIP
    >>> export_name("20261123-101500-mini")  # the name it comes with
    '20261123-101500-mini-hf-gpt2.zip'
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from core.access import check_access
from core.errors import LabError
from core.limits import Limits, current_limits

BYTES_PER_PARAMETER = 4  # an exported fp32 weight: what the size in a message is worked out from
ZIP_SUFFIX = "-hf-gpt2"  # <run_id>-hf-gpt2.zip, and the folder inside it
EXPORT_FILES = ("config.json", "model.safetensors", "README.md")


def export_name(run_id: str) -> str:
    """The download's file name, e.g. ``'20261123-101500-mini-hf-gpt2.zip'``."""
    return f"{run_id}{ZIP_SUFFIX}.zip"


def check_export_size(n_parameters: int, limits: Limits | None = None) -> None:
    """Refuse, in the hosted demo, a model above the demo's parameter cap (nothing is capped elsewhere)."""
    limits = current_limits() if limits is None else limits
    cap = limits.max_params
    if limits.demo and cap is not None and n_parameters > cap:
        raise LabError(f"This run's model has {n_parameters / 1e6:,.1f} M parameters and the hosted demo exports "
                       f"at most {cap / 1e6:,.0f} M (a zip of about {cap * BYTES_PER_PARAMETER / 1e6:,.0f} MB); "
                       "export it with `python -m core export` on your own machine.")


def hf_export_zip(run_dir: str | os.PathLike, visitor: str | None = None) -> tuple[bytes, str]:
    """The run's checkpoint as a zip of a Hugging Face GPT-2 folder, and the file name to download it as.

    The zip holds one folder, ``<run_id>-hf-gpt2/``, with ``config.json``, ``model.safetensors`` (both from
    :func:`core.hf_gpt2.export_hf_gpt2`) and ``README.md``; ``transformers.GPT2LMHeadModel.from_pretrained`` loads
    the unzipped folder and gives the same logits as the run's model.

    Args:
        run_dir: the run folder (``runs/<run_id>``).
        visitor: the visitor's token (:mod:`core.access`); in the hosted demo it must be the run's starter's.

    Raises:
        LabError: another visitor's run (demo), a damaged run, a classifier, no checkpoint yet, a model above the
            demo's cap.
    """
    from core.pretrain_job import run_owner
    from core.runs import MODEL_FILE, read_run, validate_run_id

    run_dir = Path(run_dir)
    run_id = validate_run_id(run_dir.name)
    check_access(run_owner(run_dir.parent, run_id), visitor)  # first: nothing about another visitor's run leaks
    try:
        record = read_run(run_dir)
    except (LabError, OSError) as err:
        raise LabError(f"Run {run_id!r} cannot be exported because it is damaged: {_clause(err)}.") from None
    if record.get("task") == "classify":
        raise LabError(f"Run {run_id!r} is a classifier, whose class head GPT-2's language-model layout cannot "
                       "hold; export a pretraining or instruction-tuned run instead.")
    ckpt = run_dir / MODEL_FILE
    if not ckpt.is_file():
        raise LabError(f"Run {run_id!r} has no checkpoint yet; export it once training has saved one (at its "
                       "first evaluation).")
    loaded = _load_checkpoint(ckpt, run_id)
    return _build_zip(loaded, run_id, readme(run_id, loaded.config, loaded.extra, record)), export_name(run_id)


def _load_checkpoint(ckpt: Path, run_id: str) -> Any:
    """The checkpoint, loaded once its header has passed the demo's size cap."""
    from core.checkpoint import checkpoint_info, load

    try:
        n_parameters = checkpoint_info(ckpt)["n_parameters"]  # from the header alone: no weight is read yet
    except LabError as err:
        raise LabError(f"The checkpoint of run {run_id!r} cannot be exported: {_clause(err)}.") from None
    check_export_size(n_parameters)
    try:
        return load(ckpt)
    except LabError as err:
        raise LabError(f"The checkpoint of run {run_id!r} cannot be exported: {_clause(err)}.") from None


def _build_zip(loaded: Any, run_id: str, readme_text: str) -> bytes:
    """Export into a temporary folder, then zip its two files and the README (stored: weights barely compress)."""
    from core.hf_gpt2 import export_hf_gpt2

    folder = run_id + ZIP_SUFFIX
    buffer = io.BytesIO()
    try:
        with tempfile.TemporaryDirectory(prefix="llmlab-hf-export-") as tmp:
            out = export_hf_gpt2(loaded.model, Path(tmp) / folder)
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.write(out / "config.json", f"{folder}/config.json", compress_type=zipfile.ZIP_DEFLATED)
                zf.write(out / "model.safetensors", f"{folder}/model.safetensors")
                zf.writestr(f"{folder}/README.md", readme_text, compress_type=zipfile.ZIP_DEFLATED)
    except OSError as err:
        raise LabError(f"Could not build the export in a temporary folder ({err.strerror or err}); free some "
                       "disk space and try again.") from err
    return buffer.getvalue()


def _clause(err: Exception) -> str:
    """An error's sentence without its final full stop, to go inside another sentence."""
    return str(err).strip().rstrip(".")


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def readme(run_id: str, cfg: Any, extra: dict[str, Any], record: dict[str, Any]) -> str:
    """README.md of the export: what the model is, and how to load it with ``transformers``."""
    folder = run_id + ZIP_SUFFIX
    step, val = extra.get("step"), extra.get("val_loss")
    facts = [_count(cfg.n_layers, "block"), _count(cfg.n_heads, "attention head"), f"embeddings {cfg.emb_dim} wide",
             f"a context of {cfg.context_length:,} tokens", f"a vocabulary of {cfg.vocab_size:,} ids"]
    at = f" at step {step:,}" if isinstance(step, int) else ""
    loss = f" Its validation loss was {val:.3f}." if isinstance(val, (int, float)) else ""
    name = extra.get("tokenizer") or "gpt2"
    if name == "gpt2":
        tok_line = 'tokenizer = AutoTokenizer.from_pretrained("gpt2")  # the tokenizer it was trained with'
        tok_note = ("It was trained with GPT-2's tokenizer (byte-pair encoding, 50,257 ids), which this folder "
                    "does not include: load it from the Hugging Face Hub as `gpt2`, as below.")
    else:
        tok_line = f"tokenizer = ...  # the lab's {name!r} tokenizer: GPT-2's would give the wrong ids"
        tok_note = (f"It was trained with the lab's {name!r} tokenizer, not GPT-2's: encode text with that "
                    "tokenizer (GPT-2's gives ids this model never saw).")
    return f"""# {run_id}: a GPT trained from scratch in LLM Scratch Lab

Run `{run_id}`{at}, exported as a Hugging Face GPT-2 model: {", ".join(facts)}.{loss}
The status of the run when it was exported: {record.get("status", "unknown")}.

{tok_note}

## Load it with transformers

```python
from transformers import AutoTokenizer, GPT2LMHeadModel

model = GPT2LMHeadModel.from_pretrained("{folder}")  # the folder this zip unpacks to
{tok_line}
ids = tokenizer("Every effort moves you", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=30, do_sample=False, pad_token_id=model.config.eos_token_id)
print(tokenizer.decode(out[0]))
```

The model sees at most {cfg.context_length:,} tokens (prompt and continuation together).
`config.json` and `model.safetensors` are what `python -m core export --run-id {run_id} --out {folder}` writes.
"""
