"""The one exception type the project raises for bad input, and two helpers every module uses with it.

``LabError`` subclasses ``ValueError`` so callers that already catch ``ValueError`` keep working. Its message is
always a sentence a learner can act on: what is wrong, and what to do about it. The UI shows ``str(err)`` as is.

- :func:`shown` puts a value a user gave into such a sentence without letting it grow the sentence: a 1 MB run
  id or a 5,000-digit number is cut to a short, readable ``repr``.
- :func:`check_int`, :func:`check_number` and :func:`check_choice` are the one place a size, a rate or a name
  given by a caller is checked: bools, text, ``None``, NaN and numbers out of range all become one sentence
  ``"<name> must be …, got <value>; <fix>."`` (or ``"Unknown <name> …; choose one of: …."``).
- :func:`parse_json_safely` is ``json.loads`` for text from files and uploads: every way untrusted JSON can
  fail (syntax, 100,000 nested brackets, a number of more than 4,300 digits, bytes that are not UTF-8) becomes
  one ``LabError`` sentence instead of a ``RecursionError`` or a bare ``ValueError``.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Iterable
from typing import Any

SHOWN_LIMIT = 60
"""How many characters of a user's value an error message quotes at most (see :func:`shown`)."""


MAX_INT = 2**63 - 1
"""The largest whole number :func:`check_int` accepts when no ``high`` is given (what a tensor index can hold)."""


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


def _ending(value: Any, fix: str) -> str:
    """``", got <value>; <fix>."``: how every checker's sentence ends (no ``; …`` when ``fix`` is empty)."""
    return f", got {shown(value)}; {fix}." if fix else f", got {shown(value)}."


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = None, fix: str = "") -> int:
    """``value`` as a plain ``int`` in ``[low, high]``, else one :class:`LabError` sentence naming ``name``.

    Accepts Python and NumPy integers (anything with ``__index__``). Refuses bools (``True`` is an int in Python
    but never a sensible size), floats (even ``4.0``), text, ``None``, and, when ``high`` is None, numbers above
    :data:`MAX_INT` (``10**5000`` is quoted by its length, see :func:`shown`).

    Args:
        value: what the caller gave.
        name: how the sentence names it, e.g. ``"batch_size"`` or ``"The LoRA rank"``.
        low: the smallest value allowed (None: no lower bound).
        high: the largest value allowed (None: :data:`MAX_INT`).
        fix: what the user should do, without the final full stop (e.g. ``"try 8 or 16"``).

    Returns:
        ``int(value)``.

    Example:
        >>> check_int(3, "stride", low=1)
        3
        >>> check_int(0, "stride", low=1, fix="try 128")
        Traceback (most recent call last):
        core.errors.LabError: stride must be a positive whole number, got 0; try 128.
        >>> check_int(1.5, "seed")
        Traceback (most recent call last):
        core.errors.LabError: seed must be a whole number, got 1.5.
    """
    try:
        if isinstance(value, bool) or type(value).__name__ == "bool_":  # NumPy's bool has __index__ too
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise LabError(f"{name} must be a whole number" + _ending(value, fix)) from None
    if low is not None and number < low:
        bound = "a positive whole number" if low == 1 else f"a whole number of at least {low:,}"
        raise LabError(f"{name} must be {bound}" + _ending(number, fix))
    limit = MAX_INT if high is None else high
    if number > limit:
        raise LabError(f"{name} must be at most {limit:,}" + _ending(number, fix))
    return int(number)


def _range_words(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The allowed range in words: ``"between 0 and 1 (exclusive of 1)"``, ``"a positive number"``, ``"0 or more"``."""
    if low is not None and high is not None:
        excluded = [str(b) for b, is_open in ((low, low_open), (high, high_open)) if is_open]
        note = {0: "", 1: f" (exclusive of {''.join(excluded)})", 2: " (exclusive of both)"}[len(excluded)]
        return f"between {low} and {high}{note}"
    if low is not None:
        if low_open:
            return "a positive number" if low == 0 else f"more than {low}"
        return f"{low} or more"
    if high is not None:
        return f"less than {high}" if high_open else f"at most {high}"
    return "a finite number"


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, fix: str = "") -> float:
    """``value`` as a ``float`` inside a range, else one :class:`LabError` sentence naming ``name``.

    Accepts ints and floats (NumPy's too); refuses bools, text, ``None``, NaN, infinities and ints too large for
    a float (``10**400``). Bounds are inclusive unless ``low_open`` / ``high_open`` is set.

    Example:
        >>> check_number(0.1, "drop_rate", low=0, high=1, high_open=True)
        0.1
        >>> check_number(1, "drop_rate", low=0, high=1, high_open=True)
        Traceback (most recent call last):
        core.errors.LabError: drop_rate must be between 0 and 1 (exclusive of 1), got 1.
        >>> check_number(-2, "alpha", low=0, low_open=True, fix="try 16")
        Traceback (most recent call last):
        core.errors.LabError: alpha must be a positive number, got -2; try 16.
    """
    words = _range_words(low, high, low_open, high_open)
    try:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError
        number = float(value)
    except OverflowError:  # an int such as 10**400: out of every range a float can describe
        raise LabError(f"{name} must be {words}" + _ending(value, fix)) from None
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        words = "a finite number" if low is None and high is None else f"a finite number {words}"
        raise LabError(f"{name} must be {words}" + _ending(value, fix))
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise LabError(f"{name} must be {words}" + _ending(value, fix))
    return number


def check_choice(value: Any, name: str, choices: Iterable[str], *, fold: bool = False, fix: str = "") -> str:
    """``value`` if it is one of ``choices`` (a tuple, list or the keys of a dict), else one :class:`LabError`.

    Safe for any value: a 1 MB string is quoted short, an unhashable list is simply not a choice.

    Args:
        value: what the caller gave.
        name: what kind of thing it names, e.g. ``"tokenizer"`` → ``"Unknown tokenizer 'x'; …"``.
        choices: the allowed values, in the order the sentence lists them.
        fold: compare text with surrounding blanks removed and in lower case (``" GPT2 "`` → ``"gpt2"``).
        fix: replaces the default ``"choose one of: a, b"`` ending.

    Returns:
        The matching choice.

    Example:
        >>> check_choice(" Char ", "tokenizer", ("gpt2", "char"), fold=True)
        'char'
        >>> check_choice("gpt5", "preset", ("tiny", "mini"))
        Traceback (most recent call last):
        core.errors.LabError: Unknown preset 'gpt5'; choose one of: tiny, mini.
    """
    options = [str(c) for c in choices]
    key = value.strip().lower() if fold and isinstance(value, str) else value
    if isinstance(key, str) and key in options:
        return key
    raise LabError(f"Unknown {name} {shown(value)}; {fix or 'choose one of: ' + ', '.join(options)}.")


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


def check_known_keys(data: Any, known: Iterable[str], what: str) -> None:
    """Raise one :class:`LabError` naming (at most three of) the keys of ``data`` that are not in ``known``.

    Example:
        >>> check_known_keys({"emb_dim": 8, "n_head": 2}, ("emb_dim", "n_heads"), "configuration field")
        Traceback (most recent call last):
        core.errors.LabError: Unknown configuration field(s) n_head; known: emb_dim, n_heads.
    """
    known = sorted(known)
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        names = ", ".join(shown(k, limit=30).strip("'\"") for k in unknown[:3]) + more
        raise LabError(f"Unknown {what}(s) {names}; known: {', '.join(known)}.")
