""""Download as script": each page hands over a Python script that reproduces what it shows with its settings.

:func:`page_script` writes the script for one page from that page's settings (plain values: numbers, strings, a
model spec). The scripts are written against the book's names (:mod:`core.book`: ``create_dataloader_v1``,
``GPTModel``, ``text_to_token_ids``, ``generate`` …) where the book has one, and against ``core`` where the page
does more than the book (its trainer, its data sets); every step carries a comment naming the book's section.
Each script prints the page's figures as ``label: value`` lines with the page's own labels and formats, so a
learner can check them against the page, and the test suite does (``tests/test_page_scripts*.py``).

Run a script from the project folder (``python tokenizer_script.py``), or anywhere after ``pip install .``.

Example:
    >>> text = page_script("sampling", {"source": "text", "text": "one two three four five six", "max_length": 2,
    ...                                 "stride": 2, "batch_size": 2})
    >>> "create_dataloader_v1(" in text and "print(f\\"Windows: " in text
    True
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from core.errors import LabError

# page key → the module whose SCRIPTS dict holds its writer (imported on first use).
SCRIPT_MODULES: dict[str, str] = {
    "tokenizer": "core.page_scripts.text", "sampling": "core.page_scripts.text",
    "embeddings": "core.page_scripts.model", "attention": "core.page_scripts.model",
    "architecture": "core.page_scripts.model",
    "pretrain": "core.page_scripts.train", "generate": "core.page_scripts.train",
    "lora": "core.page_scripts.finetune", "classify": "core.page_scripts.finetune",
    "instruct": "core.page_scripts.finetune",
}  # fmt: skip
MAX_SCRIPT_CHARS = 2_000_000  # a pasted text is embedded in the script; the page's own text cap keeps it far below

PREAMBLE = '''\
# Run it from the LLM Scratch Lab folder (python {name}), or anywhere after `pip install .` there.
try:
    import core  # noqa: F401
except ModuleNotFoundError:
    raise SystemExit("This script needs LLM Scratch Lab's core package: run it from the project folder, or "
                     "pip install the project first.") from None
'''


def page_script(page: str, settings: Mapping[str, Any]) -> str:
    """The script for ``page`` (a key of :data:`SCRIPT_MODULES`) with ``settings``; LabError for an unknown page
    or settings the writer cannot use."""
    if page not in SCRIPT_MODULES:
        raise LabError(f"There is no script for a page called {page!r}; use one of {', '.join(SCRIPT_MODULES)}.")
    writer: Callable[[dict[str, Any]], tuple[str, str]] = importlib.import_module(SCRIPT_MODULES[page]).SCRIPTS[page]
    title, body = writer(dict(settings))
    head = (f'"""{title}\n\nExported from LLM Scratch Lab ({time.strftime("%Y-%m-%d %H:%M")}) with the page\'s '
            'settings at the time; it prints the page\'s figures as "label: value" lines.\n"""\n\n')
    text = head + PREAMBLE.format(name=script_name(page)) + "\n" + body.strip() + "\n"
    if len(text) > MAX_SCRIPT_CHARS:
        raise LabError(f"The script would be {len(text):,} characters (the text is embedded in it); shorten the "
                       f"text to export it (at most {MAX_SCRIPT_CHARS:,}).")
    return text


def script_name(page: str) -> str:
    """The file name the page offers, e.g. ``llm_lab_tokenizer.py``."""
    return f"llm_lab_{page}.py"


def lit(value: Any) -> str:
    """A Python literal for a setting: only plain values (None, bool, numbers, strings and lists, tuples or dicts
    of them) go into a script, so nothing a visitor typed can become code."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(lit(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in value.items()) + "}"
    raise LabError(f"A setting of type {type(value).__name__} cannot be written into a script.")


def need(settings: Mapping[str, Any], *keys: str) -> list[Any]:
    """The values of ``keys``; LabError naming the first missing one."""
    missing = [k for k in keys if k not in settings]
    if missing:
        raise LabError(f"The script needs the setting {missing[0]!r}; export it from the page.")
    return [settings[k] for k in keys]


def parse_printed(output: str) -> dict[str, str]:
    """The ``label: value`` lines a script printed (later lines win), for checking them against a page."""
    found = {}
    for line in output.splitlines():
        m = re.match(r"^([^:\s][^:]*?): (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found
