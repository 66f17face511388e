"""``python -m core pretrain``: pretrain a GPT on a text corpus, also data-parallel under ``torchrun``.

The trainer comes from :func:`core.train.make_trainer`, the call the app's jobs make, so equal settings give an equal
loss curve in the page and here. Under ``torchrun`` (``WORLD_SIZE`` > 1) it joins the process group (gloo on CPU,
NCCL on CUDA) and trains data-parallel; only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.cli_progress import ProgressBar
from core.distributed import init_from_env
from core.errors import LabError, parse_json_safely

# Flags of `pretrain` that change the model, and the TrainSettings field behind each training flag.
MODEL_FLAGS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias",
               "tie_weights")  # fmt: skip
SETTING_FLAGS = {
    "steps": "max_steps", "batch_size": "batch_size", "train_context": "context_length", "stride": "stride",
    "lr": "lr", "weight_decay": "weight_decay", "warmup": "warmup_steps", "min_lr_ratio": "min_lr_ratio",
    "grad_clip": "grad_clip", "eval_every": "eval_every", "eval_batches": "eval_batches",
    "sample_every": "sample_every", "sample_prompt": "sample_prompt", "sample_tokens": "sample_tokens",
    "sample_temperature": "sample_temperature", "val_ratio": "val_ratio", "seed": "seed",
    "checkpoint_every": "checkpoint_every", "device": "device", "precision": "precision", "split": "split",
}  # fmt: skip



def register(sub: Any) -> None:
    p = sub.add_parser("pretrain", help="pretrain a GPT on a text corpus (works under torchrun)")
    p.add_argument("--preset", default="tiny", help="model preset (tiny, mini, gpt2-small, …)")
    p.add_argument("--config", type=Path, help="JSON file with model config fields (applied over the preset)")
    for name in MODEL_FLAGS[:6]:
        p.add_argument(f"--{name.replace('_', '-')}", type=float if name == "drop_rate" else int)
    p.add_argument("--qkv-bias", action="store_true", default=None)
    p.add_argument("--tie-weights", action="store_true", default=None)
    p.add_argument("--corpus", help="text file, 'builtin' (the default for a new run), or a corpus name such as "
                   "the-verdict")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int, help="global batch (split across torchrun processes)")
    p.add_argument("--train-context", type=int, help="tokens per training window (default: the model's)")
    p.add_argument("--stride", type=int)
    for flag, kind in (("lr", float), ("weight-decay", float), ("warmup", int), ("min-lr-ratio", float),
                       ("grad-clip", float), ("eval-every", int), ("eval-batches", int), ("sample-every", int),
                       ("sample-prompt", str), ("sample-tokens", int), ("sample-temperature", float),
                       ("val-ratio", float), ("seed", int), ("checkpoint-every", int)):  # fmt: skip
        p.add_argument(f"--{flag}", type=kind)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", choices=["fp32", "bf16-autocast"])
    p.add_argument("--split", choices=["tokens", "characters"],
                   help="hold out the last val-ratio of the token ids (tokens, the default) or of the text's "
                        "characters, as the book's §5.1 does (characters)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))
    p.add_argument("--run-id", help="folder name under --runs-dir (default: time stamp + preset)")
    p.add_argument("--resume", action="store_true", help="continue --run-id from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from core import runs
    from core.pretrain_job import training_ids
    from core.tokenizers import get_tokenizer
    from core.train import TrainSettings, make_trainer

    world, rank = init_from_env(args.device)
    try:
        cfg, settings, corpus = _pretrain_inputs(args)
        if world > 1 and settings.device == "auto":  # each rank trains on the device torchrun gave it
            settings = settings.replace(device="cuda" if _dist_backend() == "nccl" else "cpu")
        text = _load_corpus_once(corpus["source"], rank, world)
        tokenizer = get_tokenizer("gpt2")
        ids = training_ids(text, tokenizer, settings)  # split by tokens, or by characters (the book's)
        run_id = args.run_id or runs.default_run_id(args.preset)
        run_id = _same_on_all_ranks(run_id, world)
        trainer = make_trainer(
            cfg, settings, ids, args.runs_dir, run_id, resume=args.resume, tokenizer=tokenizer, corpus=corpus
        )
        assert isinstance(trainer.settings, TrainSettings)
        return _train_with_progress(trainer, rank == 0 and not args.quiet, rank)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _pretrain_inputs(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The model config, training settings and corpus description a `pretrain` command line asks for."""

    from core import runs
    from core.config import GPTConfig
    from core.train import TrainSettings
    from core.train_plan import resume_spec

    model_over = {k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k) is not None}
    setting_over = {field: getattr(args, flag) for flag, field in SETTING_FLAGS.items()
                    if getattr(args, flag) is not None}  # fmt: skip
    if args.resume:
        if not args.run_id:
            raise LabError("--resume needs --run-id to know which run to continue; see 'python -m core runs'.")
        if model_over or args.config:
            raise LabError("A resumed run keeps its model; drop the model flags (or start a new run without --resume).")
        spec = resume_spec(runs.run_path(args.runs_dir, args.run_id), **setting_over)
        source = _corpus_source(args.corpus) if args.corpus else spec.corpus_source
        if not source:
            raise LabError("This run does not record its corpus; pass the same --corpus it was trained on.")
        return spec.cfg, spec.settings, {"source": source}
    base: dict[str, Any] = {}
    if args.config:
        try:
            text = args.config.read_bytes()
        except OSError as err:
            raise LabError(f"Could not read the model config {args.config} ({err.strerror or err}); give a JSON "
                           "file.") from None
        base = parse_json_safely(text, f"The model config {args.config}", "give a JSON object of config fields")
        if not isinstance(base, dict):
            raise LabError(f"{args.config} must hold a JSON object of model config fields.")
    cfg = GPTConfig.preset(args.preset, **{**base, **model_over})
    return cfg, TrainSettings(**setting_over), {"source": _corpus_source(args.corpus or "builtin")}


def _corpus_source(arg: str) -> str:
    """A corpus argument as recorded in run.json: a registry name, or an absolute file path."""
    if arg == "builtin":
        return "builtin-corpus"
    path = Path(arg).expanduser()
    return str(path.resolve()) if path.exists() else arg


def load_corpus_text(source: str) -> str:
    """The text of a corpus: a registry name (downloaded on first use) or a UTF-8 text file."""
    try:
        import core.datasets as ds
    except ImportError:  # the registry is optional for plain files
        ds = None
    if ds is not None and source in ds.DATASETS:
        if not ds.is_available(source):
            print(f"downloading {source} …", file=sys.stderr)
            ds.download(source)
        return ds.load_corpus(source)
    path = Path(source)
    if not path.is_file():
        raise LabError(f"There is no corpus file at {source}; pass --corpus builtin or the path of a text file.")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LabError(f"Could not read {source} as UTF-8 text ({err}); save it as a UTF-8 .txt file.") from None


def _load_corpus_once(source: str, rank: int, world: int) -> str:
    """Rank 0 loads (and maybe downloads) first; the others wait, then read the cached copy."""
    if world == 1:
        return load_corpus_text(source)
    import torch.distributed as dist

    text = load_corpus_text(source) if rank == 0 else None
    dist.barrier()
    return text if text is not None else load_corpus_text(source)


def _train_with_progress(trainer: Any, show: bool, rank: int) -> int:
    stop = threading.Event()
    _install_stop_handlers(stop)
    bar = ProgressBar(trainer.settings.max_steps, start=trainer.step, enabled=show)
    if rank == 0 and not show:
        print(f"training {trainer.run_dir} on {trainer.device}", file=sys.stderr)
    result = trainer.run(on_record=bar.update, stop_event=stop)
    bar.close()
    if rank == 0:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        print(result.message)
    return 0 if result.status in ("finished", "stopped") else 1


def _install_stop_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this step (a checkpoint is being written) …", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _dist_backend() -> str:
    import torch.distributed as dist

    return dist.get_backend()


def _same_on_all_ranks(run_id: str, world: int) -> str:
    """Rank 0's run id on every rank (their clocks may tick over a second apart); no pickle involved."""
    if world == 1:
        return run_id
    import torch
    import torch.distributed as dist

    buf = torch.zeros(64, dtype=torch.uint8)
    raw = run_id.encode()[:64]
    buf[: len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    if dist.get_backend() == "nccl":
        buf = buf.cuda()
    dist.broadcast(buf, src=0)
    return bytes(buf.cpu().tolist()).rstrip(b"\0").decode()


