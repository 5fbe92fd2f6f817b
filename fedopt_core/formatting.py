"""Numbers as people read them in messages: durations and money (one home, so every face agrees)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from fedopt_core.schema import CONTROL_CHARACTERS

__all__ = ["duration", "plural", "printable", "spans_orders", "time_unit", "usd"]


def duration(seconds: float) -> str:
    """Seconds as a readable duration: 45 s, 12 min, 3.4 h, 2.1 d ("never" for an infinite time)."""
    if math.isnan(seconds):
        return "unknown"
    if not math.isfinite(seconds):
        return "never"
    if seconds < 1:
        return f"{seconds:.2g} s"  # a fraction of a second is not "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


#: Units a chart's time axis can use, smallest first.
TIME_UNITS = (("s", 1.0), ("min", 60.0), ("h", 3600.0), ("d", 86400.0))


def time_unit(seconds: Iterable[float]) -> tuple[str, float]:
    """One unit for a chart or a table section of durations: the largest in which the typical
    (median) value is at least 1 (so minutes stay minutes); returns (name, seconds per unit)."""
    finite = sorted(v for v in seconds if math.isfinite(v) and v > 0)
    if not finite:
        return TIME_UNITS[0]
    typical = finite[len(finite) // 2]
    return next((u for u in reversed(TIME_UNITS) if typical >= u[1]), TIME_UNITS[0])


def spans_orders(lower: Iterable[float], upper: Iterable[float], ratio: float = 10.0) -> bool:
    """Whether values from ``lower`` to ``upper`` span more than ``ratio`` (a log axis reads better)."""
    low = [v for v in lower if math.isfinite(v) and v > 0]
    high = [v for v in upper if math.isfinite(v) and v > 0]
    return bool(low and high) and max(high) > ratio * min(low)


def plural(count: int, noun: str) -> str:
    """A count with its noun: "1 session", "3 sessions", "0 runs" (the noun given in the singular)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def usd(amount: float) -> str:
    """Dollars with cents ($1,234.50); below a dollar, four decimals so a cheap job is not $0.00."""
    return f"${amount:,.2f}" if amount >= 1 or amount == 0 else f"${amount:.4f}"


def printable(value: object) -> object:
    """Text with every control character shown as its escape (``\\x1b``), so printing it can
    neither drive a terminal nor reorder what is shown; anything else as it is."""
    if not isinstance(value, str):
        return value
    return CONTROL_CHARACTERS.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), value)
