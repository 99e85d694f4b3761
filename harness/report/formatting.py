"""How every report writes a number: one rule per quantity, for the terminal, markdown and HTML.

Each function takes ``None`` for "not measured / not reported" and then gives ``—``.

* money — ``usd``: two decimals from one dollar (``$1,234.50``), four below it
  (``$0.0123``), six below one cent (``$0.001234``), ``$0`` for nothing, the sign before
  the dollar (``-$0.002000``); ``usd_brief``: a few significant digits below a dollar
  (``$0.0068``, ``$0.00001``), for messages;
* milliseconds — ``ms``: whole milliseconds with thousands separators (``850 ms``,
  ``12,345 ms``); ``unit=False`` drops `` ms`` for a column whose header says it;
* rates — ``percent``: a fraction as a percentage, one decimal (``71.8%``); ``interval``:
  a 95% interval (``60.2%–81.0%``); ``points``: a change of rate in percentage points,
  signed (``+2.5 pp``);
* p-values — ``p_value``: three decimals, ``<0.001`` below that; ``p_text``: the same as
  ``p=0.004`` / ``p<0.001``;
* counts — ``integer``: thousands separators (``1,234``); ``speed``: tokens per second, whole;
* time — ``duration``: seconds with two decimals under a minute (``0.62 s``), else
  ``1 min 6 s`` / ``2 h 3 min 4 s``; ``timestamp``: Unix seconds as ``2024-05-01 12:00:00 UTC``;
* ``signed`` puts ``+`` before any of these for a positive change (negatives carry ``-``).

``templates/report.js`` formats the matrix cells' latency and cost by the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "NONE",
    "integer",
    "duration",
    "interval",
    "ms",
    "p_text",
    "p_value",
    "percent",
    "plural",
    "points",
    "signed",
    "speed",
    "timestamp",
    "usd",
    "usd_brief",
]

NONE = "—"
"""What every formatter shows for a value that is not there."""


def usd(value: float | None) -> str:
    """Money: ``$12.50``, ``$0.0123``, ``$0.001234`` (six decimals below a cent), ``$0``."""
    if value is None:
        return NONE
    size = abs(value)
    if size == 0:
        return "$0"
    digits = 2 if size >= 1 else 4 if size >= 0.01 else 6
    return f"{'-' if value < 0 else ''}${size:,.{digits}f}"


def usd_brief(value: float | None, digits: int = 2) -> str:
    """Money in a message: ``usd`` from a dollar, else ``digits`` significant digits.

    ``$0.0068``, ``$0.00001``, ``$0.25``, ``$12.50``: trailing zeros dropped (but at least
    two decimals), so a cap of ``0.00001`` reads as given.
    """
    if value is None or value == 0 or abs(value) >= 1:
        return usd(value)
    size = abs(value)
    decimals = max(digits - 1 - math.floor(math.log10(size)), 2)
    text = f"{size:.{decimals}f}".rstrip("0")
    if len(text.split(".")[1]) < 2:
        text = f"{size:.2f}"
    return f"{'-' if value < 0 else ''}${text}"


def ms(value: float | None, *, unit: bool = True) -> str:
    """Milliseconds, whole: ``1,234 ms`` (``1,234`` with ``unit=False``)."""
    if value is None:
        return NONE
    return f"{value:,.0f} ms" if unit else f"{value:,.0f}"


def percent(rate: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: ``0.718`` → ``71.8%``."""
    return NONE if rate is None else f"{rate * 100:.{digits}f}%"


def interval(lo: float, hi: float) -> str:
    """An interval of rates: ``60.2%–81.0%``."""
    return f"{percent(lo)}–{percent(hi)}"


def points(delta: float | None) -> str:
    """A change of rate in percentage points, signed: ``+2.5 pp``, ``-25.0 pp``."""
    return NONE if delta is None else f"{delta * 100:+.1f} pp"


def p_value(p: float | None) -> str:
    """A p-value: ``0.004``, or ``<0.001``."""
    if p is None:
        return NONE
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p: float | None) -> str:
    """A p-value for people: ``p=0.004``, ``p<0.001``, or ``—`` when there is none."""
    if p is None:
        return NONE
    text = p_value(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def integer(value: int | None) -> str:
    """A count: ``1,234``."""
    return NONE if value is None else f"{value:,}"


def speed(value: float | None) -> str:
    """Tokens per second, whole: ``1,234``."""
    return NONE if value is None else f"{value:,.0f}"


def signed(value: float | None, fmt: Callable[[float], str]) -> str:
    """``fmt(value)`` with ``+`` before a positive value: ``signed(12, ms)`` → ``+12 ms``."""
    if value is None:
        return NONE
    return ("+" if value > 0 else "") + fmt(value)


def duration(seconds: Any) -> str:
    """A run's length: ``0.62 s`` under a minute, else ``1 min 6 s`` / ``2 h 3 min 4 s``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return NONE
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {secs} s" if hours else f"{minutes} min {secs} s"


def timestamp(value: Any) -> str:
    """Unix seconds as ``2024-05-01 12:00:00 UTC``; any other value as text."""
    if value is None or value == "":
        return NONE
    if isinstance(value, int | float):
        stamp = datetime.fromtimestamp(float(value), tz=UTC)
        return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def plural(n: int, word: str) -> str:
    """``1 model``, ``3 models``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
