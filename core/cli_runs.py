"""``python -m core generate | export | runs``: use and list what training wrote to ``--runs-dir``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.errors import LabError


def register(sub: Any) -> None:
    g = sub.add_parser("generate", help="continue a prompt with a trained checkpoint")
    _checkpoint_args(g)
    g.add_argument("--prompt", default="Every effort moves you")
    g.add_argument("--max-new-tokens", type=int, default=50)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int)

    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("export", help="write a checkpoint as a Hugging Face GPT-2 folder")
    _checkpoint_args(e)
    e.add_argument("--out", type=Path, required=True, help="folder for config.json + model.safetensors")

    e.set_defaults(func=cmd_export)

    r = sub.add_parser("runs", help="list the runs in --runs-dir")
    r.add_argument("--runs-dir", type=Path, default=Path("runs"))
    r.set_defaults(func=cmd_runs)


def _checkpoint_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a model .safetensors file")
    src.add_argument("--run-id", help="use runs-dir/RUN_ID/model.safetensors")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))


def _checkpoint_path(args: argparse.Namespace) -> Path:
    from core import runs

    if args.checkpoint is not None:
        return args.checkpoint
    return runs.run_path(args.runs_dir, args.run_id) / runs.MODEL_FILE


def cmd_generate(args: argparse.Namespace) -> int:
    from core.checkpoint import checkpoint_info, load
    from core.generate import generate_text
    from core.tokenizers import get_tokenizer

    path = _checkpoint_path(args)
    if checkpoint_info(path)["extra"].get("task") == "classify":
        raise LabError(f"{path} is a classifier, which cannot continue text; use 'python -m core classify predict'.")
    ckpt = load(path)
    name = ckpt.extra.get("tokenizer", "gpt2")
    if name != "gpt2":
        raise LabError(f"This checkpoint uses the tokenizer {name!r}; the command line can only decode GPT-2 ids.")
    text = generate_text(
        ckpt.model, get_tokenizer("gpt2"), args.prompt, args.max_new_tokens, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed,
    )  # fmt: skip
    print(text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.checkpoint import export_hf_gpt2, load

    out = export_hf_gpt2(load(_checkpoint_path(args)).model, args.out)
    print(f"wrote {out / 'config.json'} and {out / 'model.safetensors'}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from core.runs import list_runs

    found = list_runs(args.runs_dir)
    if not found:
        print(f"no runs in {args.runs_dir}")
        return 0
    print(f"{'run id':32} {'task':9} {'status':9} {'step':>11} {'train':>7} {'val':>7}  created")
    for r in found:
        if r.status == "broken":
            print(f"{r.run_id:32} {'?':9} {'broken':9} {r.reason}")
            continue
        loss = f"{r.train_loss:7.3f}" if r.train_loss is not None else "      -"
        val = f"{r.val_loss:7.3f}" if r.val_loss is not None else "      -"
        print(f"{r.run_id:32} {r.task:9} {r.status:9} {f'{r.step}/{r.max_steps}':>11} {loss} {val}  {r.created}")
    return 0
