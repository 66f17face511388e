"""``python -m core`` (or ``llm-lab``): the lab's stages from a terminal, no browser needed.

Examples::

    python -m core pretrain --preset mini --steps 500
    torchrun --nproc_per_node=2 -m core pretrain --preset mini --corpus builtin --batch-size 8
    python -m core generate --run-id 20261123-101500-mini --prompt "Every effort moves you"
    python -m core export --run-id 20261123-101500-mini --out exports/mini
    python -m core runs

Each command lives in its own module and registers its sub-parser here: pretraining in :mod:`core.cli_pretrain`;
``generate``, ``export`` and ``runs`` in :mod:`core.cli_runs`; ``data list | fetch | add | show`` in
:mod:`core.cli_data`. The commands call the same ``core`` functions the pages call, so equal settings and seed give
equal numbers in the app and here.

Errors are one sentence on stderr and exit code 2; Ctrl-C stops training after a checkpoint (press it twice to
abort at once).
"""

from __future__ import annotations

import argparse
import sys

from core import cli_data, cli_finetune, cli_lora, cli_pretrain, cli_runs
from core.cli_progress import ProgressBar
from core.distributed import env_int
from core.errors import LabError

__all__ = ["ProgressBar", "build_parser", "main"]

COMMAND_MODULES = (cli_pretrain, cli_runs, cli_data, cli_finetune, cli_lora)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one sentence (exit code 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise LabError(f"{message[0].upper()}{message[1:]}; run '{self.prog} --help' to see the options.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="LLM Scratch Lab from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    rank = 0  # only rank 0 prints errors; a RANK that is not a number is an error of its own
    try:
        rank = env_int("RANK", 0, low=0)
        args = build_parser().parse_args(argv)
        return args.func(args)
    except LabError as err:
        if rank == 0:
            print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if rank == 0:
            print("\ninterrupted", file=sys.stderr)
        return 130
