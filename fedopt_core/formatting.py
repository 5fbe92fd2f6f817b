"""Numbers as people read them in messages: durations and money (one home, so every face agrees)."""

from __future__ import annotations

import math

from fedopt_core.schema import CONTROL_CHARACTERS

__all__ = ["duration", "plural", "printable", "usd"]


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
