"""Rank platforms for one task: predicted time and cost with intervals, deadline and budget
checks, the time/cost Pareto front.  Vectorised over platforms (10,000 rows is one call).

The predictor is any object with ``predict_frame`` (the :class:`Predictor` protocol), passed in by
the caller: this module knows nothing of how predictions are made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fedopt_core import schema
from fedopt_core.errors import PlanningError
from fedopt_core.planning.movement import data_movement_s
from fedopt_core.prediction.work import FIT_COLUMNS, memory_fit

__all__ = ["OBJECTIVES", "RANKING_COLUMNS", "Predictor", "pareto_front", "rank_platforms"]

#: What a ranking can optimise: the shortest time, the lowest cost, or the best balance of both.
OBJECTIVES = ("time", "cost", "balanced")
#: Columns rank_platforms adds to the platform columns.
RANKING_COLUMNS = [
    "rank",
    "predicted_time_s",
    "lower_s",
    "upper_s",
    "compute_time_s",
    "data_movement_s",
    "cost_usd",
    "cost_lower_usd",
    "cost_upper_usd",
    "tokens_per_s",
    "cost_per_1m_tokens_usd",
    "meets_deadline",
    "within_budget",
    "fits_memory",
    "memory_per_gpu_gb",
    "gpu_memory_gb_available",
    "memory_layout",
    "memory_note",
    "feasible",
    "pareto_optimal",
    "method",
    "basis",
    "n_anchor_runs",
    "warning",
    "input_position",
]


class Predictor(Protocol):
    """What the ranking and the planners need of a predictor (a fitted PerformancePredictor is one).

    ``predict_frame`` returns one row per input row, in order, with ``predicted_time_s``,
    ``lower_s``, ``upper_s``, ``method``, ``basis``, ``n_anchor_runs`` and ``warning``.
    """

    def predict_frame(self, rows: pd.DataFrame, anchors: pd.DataFrame | None = None) -> pd.DataFrame: ...


def pareto_front(time: np.ndarray | pd.Series, cost: np.ndarray | pd.Series) -> np.ndarray:
    """True where no other point is at least as fast and as cheap and strictly better in one.

    Points with a missing (NaN) time or cost are never on the front.  Identical points are all
    on it (neither beats the other).  O(n log n), no Python loop over points.
    """
    t = np.asarray(time, dtype=float)
    c = np.asarray(cost, dtype=float)
    if t.shape != c.shape:
        raise ValueError(f"time and cost differ in length ({t.shape} vs {c.shape})")
    out = np.zeros(len(t), dtype=bool)
    ok = np.isfinite(t) & np.isfinite(c)
    if not ok.any():
        return out
    tv, cv = t[ok], c[ok]
    uniq_t, group = np.unique(tv, return_inverse=True)
    # cheapest cost at each distinct time, and the cheapest among all strictly faster times
    group_min = np.full(len(uniq_t), np.inf)
    np.minimum.at(group_min, group, cv)
    faster_min = np.concatenate([[np.inf], np.minimum.accumulate(group_min)[:-1]])
    dominated = (faster_min[group] <= cv) | (group_min[group] < cv)
    out[np.flatnonzero(ok)] = ~dominated
    return out


def _positive_or_none(value: float | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PlanningError(field, f"{value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise PlanningError(field, f"must be a finite number greater than zero (got {value!r})")
    return number


def rank_platforms(
    task: Mapping[str, Any],
    platforms: pd.DataFrame,
    objective: str = "time",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    *,
    predictor: Predictor,
    anchors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every platform (``PLATFORM_FIELDS`` columns) with its predicted time and cost for ``task``.

    * ``predicted_time_s`` / ``lower_s`` / ``upper_s``: the predictor's interval plus data movement.
    * ``cost_usd`` (and ``cost_lower_usd``/``cost_upper_usd``) = ``price_per_hour_usd`` x time; NaN
      when the platform has no price.
    * ``tokens_per_s`` and ``cost_per_1m_tokens_usd``: for work in tokens (trained on, or generated
      for inference), the throughput and the cost of a million of them at the predicted time; NaN
      for other work.
    * ``meets_deadline``: the *upper* bound fits in ``deadline_s`` (True when no deadline).
    * ``within_budget``: the *upper* cost bound fits in ``budget_usd`` (True when no budget; False
      for a platform without a price when a budget is given: its cost cannot be promised).
    * ``fits_memory``: the job fits the platform's GPUs in some layout (``memory_per_gpu_gb`` in
      ``memory_layout``; ``memory_note`` says why not); None when the task does not say which model
      it runs.  A platform where it does not fit is never feasible, and its warning says why.
    * ``feasible`` = all three; ``pareto_optimal``: on the time/cost front (among priced platforms
      where the job fits).
    * Sorted feasible first, then by ``objective``: "time", "cost" (unpriced last) or "balanced"
      (sum of log time and log cost relative to the best of each; a free platform counts as the
      cheapest).  ``rank`` starts at 1; ``input_position`` is the row's position in ``platforms``.

    ``predictor``: any :class:`Predictor` (an unfitted PerformancePredictor gives the labelled heuristics).
    ``anchors``: extra measured runs passed to ``predict_frame``.
    """
    if objective not in OBJECTIVES:
        raise PlanningError("objective", f"{objective!r} is not one of {', '.join(OBJECTIVES)}")
    if not isinstance(platforms, pd.DataFrame):
        raise TypeError(f"platforms must be a pandas DataFrame, got {type(platforms).__name__}")
    deadline = _positive_or_none(deadline_s, "deadline_s")
    budget = _positive_or_none(budget_usd, "budget_usd")
    task = schema.validate_task(task)

    base = platforms.reset_index(drop=True)
    if len(base) == 0:
        return pd.DataFrame(columns=[*base.columns, *[c for c in RANKING_COLUMNS if c not in base.columns]])
    rows = schema.task_on_platforms(task, base)
    pred = predictor.predict_frame(rows, anchors=anchors).reset_index(drop=True)

    move = np.asarray(data_movement_s(task, base), dtype=float)
    compute = pred["predicted_time_s"].to_numpy(float)
    time_s = compute + move
    lower = pred["lower_s"].to_numpy(float) + move
    upper = pred["upper_s"].to_numpy(float) + move
    price = pd.to_numeric(
        base.get("price_per_hour_usd", pd.Series(np.nan, index=base.index)), errors="coerce"
    ).to_numpy(float)
    cost = price * time_s / 3600.0
    cost_lower = price * lower / 3600.0
    cost_upper = price * upper / 3600.0

    meets = np.ones(len(base), bool) if deadline is None else upper <= deadline
    within = np.ones(len(base), bool) if budget is None else np.nan_to_num(cost_upper, nan=np.inf) <= budget
    out = base.copy()
    out["predicted_time_s"] = time_s
    out["lower_s"] = lower
    out["upper_s"] = upper
    out["compute_time_s"] = compute
    out["data_movement_s"] = move
    out["cost_usd"] = cost
    out["cost_lower_usd"] = cost_lower
    out["cost_upper_usd"] = cost_upper
    tokens = float(task.get("work_units") or 1.0) if task.get("work_unit") == "tokens" else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["tokens_per_s"] = tokens / time_s
        out["cost_per_1m_tokens_usd"] = cost / tokens * 1e6
    memory = memory_fit(task, base)
    too_big = (memory["fits_memory"] == False).to_numpy(bool)  # noqa: E712 (None means "not known")
    out["meets_deadline"] = meets
    out["within_budget"] = within
    for col in FIT_COLUMNS:
        out[col] = memory[col].to_numpy()
    out["feasible"] = meets & within & ~too_big
    out["pareto_optimal"] = pareto_front(np.where(too_big, np.nan, time_s), cost)
    for col in ("method", "basis", "n_anchor_runs", "warning"):
        out[col] = pred[col].to_numpy()
    if too_big.any():
        notes = "does not fit: " + memory["memory_note"].astype(str)
        warning = out["warning"].astype(object)
        out["warning"] = np.where(too_big, np.where(warning.isna(), notes, notes + "; " + warning.astype(str)), warning)
    out["input_position"] = np.arange(len(base))

    if objective == "time":
        score = time_s
        tie = np.nan_to_num(cost, nan=np.inf)
    elif objective == "cost":
        score = np.nan_to_num(cost, nan=np.inf)
        tie = time_s
    else:
        priced = np.isfinite(cost) & (cost > 0)
        best_cost = cost[priced].min() if priced.any() else np.nan
        free = np.isfinite(cost) & (cost == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A free machine (the group's own) counts as the cheapest, so its time decides; log(0)
            # would put it first however slow it is.
            ratio = np.where(free, 1.0, cost / best_cost)
            score = np.log(time_s / np.nanmin(time_s)) + np.log(ratio)
        score = np.nan_to_num(score, nan=np.inf)  # an unpriced platform cannot be balanced: last
        tie = time_s
    order = np.lexsort((np.arange(len(base)), tie, score, ~out["feasible"].to_numpy(bool)))
    out = out.iloc[order].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out
