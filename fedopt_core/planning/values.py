"""Numbers the planners read: arrays of per-platform values and optional limits, refused with the input named.

Shared by :mod:`.movement`, :mod:`.shards` and :mod:`.spot`; bad input raises
:class:`~fedopt_core.errors.PlanningError` naming the field.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.errors import PlanningError

# Relative tolerance when comparing times and money against deadlines, budgets and unit boundaries, so that a plan
# finishing exactly on the deadline is not rejected for a rounding error.
RTOL = 1e-9


def as_float_array(values: Any, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(values)), errors="raise"), dtype=float)
    except (TypeError, ValueError) as exc:
        raise PlanningError(name, f"must be numeric ({exc})") from None
    if n is not None and arr.size == 1 and n != 1:
        arr = np.full(n, arr[0])
    return arr


def check_limit(value: Any, name: str, *, zero_ok: bool = False) -> float | None:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PlanningError(name, f"must be a number, got {value!r}") from None
    if math.isnan(v) or v < 0 or (v == 0 and not zero_ok):
        rule = ">= 0" if zero_ok else "positive"
        raise PlanningError(name, f"must be {rule} (or None for no limit), got {value!r}")
    return None if math.isinf(v) else v
