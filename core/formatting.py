"""Numbers as the pages show them: bytes, SI counts, durations, losses (plain functions, no Streamlit calls).

Every page, and every script a page exports (:mod:`core.page_scripts`), formats through these, so "1.5 KiB",
"6.66 MFLOP" and "3 min 20 s" read the same everywhere.
"""

from __future__ import annotations

import math


def format_bytes(n: int | float) -> str:
    """Bytes in binary units.

    Example:
        >>> format_bytes(1536)
        '1.5 KiB'
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def format_si(n: int | float, unit: str = "") -> str:
    """A count with an SI prefix.

    Example:
        >>> format_si(6_662_272, "FLOP")
        '6.66 MFLOP'
    """
    value = float(n)
    for prefix, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:,.2f} {prefix}{unit}"
    return f"{value:,.0f} {unit}".rstrip()


def fmt_duration(seconds: float | None) -> str:
    """``42 s`` / ``3 min 20 s`` / ``2 h 05 min``; "—" when unknown.

    Example:
        >>> fmt_duration(200)
        '3 min 20 s'
    """
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def fmt_loss(v: float | None) -> str:
    """A loss with three decimals; "—" when there is none yet."""
    return "—" if v is None else f"{v:.3f}"
