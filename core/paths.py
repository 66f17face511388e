"""Where the files the lab ships (``assets/``: GPT-2's ranks, the built-in corpus and datasets) are read from.

In a checkout they are the repository's ``assets/`` folder, next to ``core/``. ``pip install .`` (not editable)
copies the ones ``core`` reads into the installed package as ``core/_assets/`` (see ``[tool.setuptools]`` in
pyproject.toml), because an installed ``core`` has no repository around it. Every module of ``core`` that reads
a shipped file asks :func:`assets_dir`, so both layouts work.

Example:
    >>> (assets_dir() / "gpt2.tiktoken").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
# The installed copy: only a built wheel has it (setuptools maps assets/ to the package core._assets).
INSTALLED_ASSETS = _HERE / "_assets"
# The checkout's folder: the repository root is the folder above core/.
CHECKOUT_ASSETS = _HERE.parent / "assets"


def assets_dir() -> Path:
    """The folder of shipped files: the installed copy ``core/_assets`` when there is one, else the checkout's.

    The installed copy is looked for first because a checkout never has one (editable installs included: they
    read the checkout), while an installed ``core`` sits in site-packages, where some other distribution may
    well have put a top-level ``assets`` folder.
    """
    return INSTALLED_ASSETS if INSTALLED_ASSETS.is_dir() else CHECKOUT_ASSETS
