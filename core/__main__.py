"""``python -m core …``: see :mod:`core.cli` (also runs under ``torchrun -m core``)."""

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
