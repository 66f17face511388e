"""``python -m core lora counts | merge``: the LoRA page's two checks from a terminal (the book's appendix E).

Examples::

    python -m core lora counts --preset gpt2-small --qkv-bias --rank 16 --classes 2   # the book's 2,666,528
    python -m core lora merge --base run:20261204-101500-mini --rank 8 --alpha 16

``counts`` calls :func:`core.lora_lab.lora_count_table` (meta-device models: no memory, any size) and ``merge``
calls :func:`core.lora_lab.merge_check` on a real model, the same calls the LoRA page makes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    lora = sub.add_parser("lora", help="LoRA parameter counts and the merge check (appendix E)")
    actions = lora.add_subparsers(dest="action", required=True, parser_class=type(lora))
    c = actions.add_parser("counts", help="trainable parameters with LoRA on each layer set vs full fine-tuning")
    c.add_argument("--preset", default="gpt2-small", help="model preset (tiny, mini, gpt2-small, …)")
    c.add_argument("--qkv-bias", action="store_true", help="biases on the query/key/value layers (GPT-2's weights)")
    c.add_argument("--classes", type=int, help="count a K-class head instead of the language-model head")
    _rank_alpha(c, rank=16, alpha=16)
    c.set_defaults(func=cmd_lora_counts)
    m = actions.add_parser("merge", help="LoRA at init changes nothing; merged and unmerged outputs agree")
    m.add_argument("--base", default="tiny", help="preset name, preset:NAME:SEED, run:RUN_ID or hf:PATH")
    m.add_argument("--runs-dir", type=Path, default=Path("runs"))
    m.add_argument("--seed", type=int, default=123)
    _rank_alpha(m, rank=8, alpha=16)
    m.set_defaults(func=cmd_lora_merge)


def _rank_alpha(p: argparse.ArgumentParser, rank: int, alpha: float) -> None:
    p.add_argument("--rank", type=int, default=rank)
    p.add_argument("--alpha", type=float, default=alpha)


def cmd_lora_counts(args: argparse.Namespace) -> int:
    from core.config import GPTConfig
    from core.errors import check_int
    from core.lora_lab import lora_count_table

    if args.classes is not None:
        check_int(args.classes, "--classes", low=2, fix="a classifier needs at least 2 classes")
    cfg = GPTConfig.preset(args.preset, qkv_bias=args.qkv_bias)
    rows = lora_count_table(cfg, args.rank, args.alpha, args.classes)
    head = f"{args.classes}-class head" if args.classes else "language-model head"
    print(f"{args.preset} ({head}), LoRA rank {args.rank}, alpha {args.alpha:g}")
    print(f"{'LoRA on':42} {'layers':>6} {'trainable':>13} {'full':>13} {'share':>7}")
    for r in rows:
        print(f"{r['LoRA on']:42} {r['layers wrapped']:>6} {r['trainable with LoRA']:>13,} "
              f"{r['full fine-tuning']:>13,} {r['share']:>7.2%}")
    return 0


def cmd_lora_merge(args: argparse.Namespace) -> int:
    from core.cli_finetune import base_model
    from core.lora_lab import merge_check

    model, _, base = base_model(args.base, args.runs_dir, "cpu")
    out = merge_check(model, args.rank, args.alpha, seed=args.seed)
    print(f"{base}: LoRA (rank {args.rank}, alpha {args.alpha:g}) on {out['layers']} linear layers")
    print(f"  max |LoRA - base| at init (B = 0):        {out['init_diff']:.3g}")
    print(f"  max |LoRA - base| after a random B:       {out['lora_vs_base']:.3g}")
    print(f"  max |merged - unmerged| (rounding only):  {out['merge_diff']:.3g}")
    return 0
