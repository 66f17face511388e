"""The one exception type the project raises for bad input, and two helpers every module uses with it.

``LabError`` subclasses ``ValueError`` so callers that already catch ``ValueError`` keep working. Its message is
always a sentence a learner can act on: what is wrong, and what to do about it. The UI shows ``str(err)`` as is.

- :func:`shown` puts a value a user gave into such a sentence without letting it grow the sentence: a 1 MB run
  id or a 5,000-digit number is cut to a short, readable ``repr``.
- :func:`parse_json_safely` is ``json.loads`` for text from files and uploads: every way untrusted JSON can
  fail (syntax, 100,000 nested brackets, a number of more than 4,300 digits, bytes that are not UTF-8) becomes
  one ``LabError`` sentence instead of a ``RecursionError`` or a bare ``ValueError``.
"""

from __future__ import annotations

import json
import math
from typing import Any

SHOWN_LIMIT = 60
"""How many characters of a user's value an error message quotes at most (see :func:`shown`)."""


class LabError(ValueError):
    """Bad input or an impossible request, explained in one plain sentence."""


def shown(value: Any, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)`` in at most ``limit`` characters (ending in ``…`` when cut), safe for any value.

    Use it wherever an error message quotes what the user gave, so hostile input can't make the message huge.
    Integers too long to quote (Python refuses to print more than 4,300 digits) and long containers are described
    by their size, and a value whose ``repr`` fails is named by its type.

    Example:
        >>> shown("x" * 300, limit=10)
        "'xxxxxxxx…"
        >>> shown(10**5000)
        'a number of about 5,001 digits'
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        # Too long to quote anyway, and str() refuses more than 4,300 digits: say how long it is instead.
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    if isinstance(value, (list, tuple, dict, set, frozenset)) and len(value) > limit:
        return f"a {type(value).__name__} of {len(value):,} items"  # its repr could be as big as the input
    if isinstance(value, (str, bytes, bytearray)) and len(value) > 4 * limit:
        value = value[: 2 * limit]  # repr of a 1 MB string would cost 1 MB just to be thrown away
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ (or an int over the digit limit) must not escape
        return f"a {type(value).__name__} value"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_problem(err: BaseException) -> str:
    """Why ``json.loads`` failed, in a few words (no input echoed beyond a position)."""
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at line {err.lineno}, column {err.colno}"
    if isinstance(err, RecursionError):
        return "it is nested far too deeply"
    if isinstance(err, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if "digits" in str(err):  # ValueError: Exceeds the limit (4300 digits) for integer string conversion
        return "it holds a number with more than 4,300 digits"
    return shown(str(err), limit=80)


def json_or_problem(text: str | bytes) -> tuple[Any, str | None]:
    """``(value, None)`` if ``text`` is JSON, else ``(None, why)``: the mechanism under :func:`parse_json_safely`.

    For callers that phrase the sentence themselves (a header "is not a valid safetensors file (…)").
    ``bytes`` must be UTF-8 (JSON's other encodings are not guessed).
    """
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
        return json.loads(text), None
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        return None, _json_problem(err)


def parse_json_safely(text: str | bytes, what: str, fix: str = "fix the file or remove it") -> Any:
    """``json.loads(text)``, but every failure is one :class:`LabError`: ``"<what> is not readable JSON (…); <fix>."``.

    Catches what ``json.loads`` raises for untrusted input: ``JSONDecodeError`` (with line and column),
    ``RecursionError`` (deep nesting), ``UnicodeDecodeError`` (``bytes`` that are not UTF-8) and the plain
    ``ValueError`` for integers of more than 4,300 digits.

    Args:
        text: the JSON text; ``bytes`` must be UTF-8.
        what: what the text is, as the start of a sentence, e.g. ``"runs/x/run.json"`` or ``"Line 3 of a.jsonl"``.
        fix: what the user should do, without the final full stop.

    Example:
        >>> parse_json_safely('{"step": 1}', "run.json")
        {'step': 1}
    """
    value, problem = json_or_problem(text)
    if problem is not None:
        raise LabError(f"{what} is not readable JSON ({problem}); {fix}.")
    return value
