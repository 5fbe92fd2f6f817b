"""Serving capacity: how many replicas (and GPUs) of each platform serve a target token rate.

A *replica* is one platform (an instance of ``gpu_count`` GPUs) running the model; a fleet is
several replicas behind a load balancer.  One replica's rate is the ranking's ``tokens_per_s``
(the work in tokens over the predicted time); the fleet is sized on the *pessimistic* rate, the
work over the interval's upper bound, so the target still holds at the slow end of the interval.

TPOT (time per output token) is derived, not measured: a replica decoding ``concurrency``
sequences together at ``tokens_per_s`` gives each sequence one token every
``concurrency / tokens_per_s`` seconds on average.  On ML.ENERGY's 289 vLLM runs the measured
p99 TPOT is 2.1 times that mean (quartiles 1.5-3.2; ``benchmarks/serving_tpot.py``), so only the
mean is claimed.  TTFT is not predicted: the run table holds too few measured first-token times to
calibrate one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core import schema
from fedopt_core.errors import PlanningError
from fedopt_core.prediction.physics_table import physics_rows
from fedopt_core.prediction.work import DEFAULT_CONCURRENCY, describe_job

__all__ = ["FLEET_SUMMARY", "MAX_REPLICAS", "SERVING_COLUMNS", "concurrency_of", "serving_fleet"]

#: Columns :func:`serving_fleet` adds to the ranking's.
SERVING_COLUMNS = [
    "replicas_needed",
    "gpus_needed",
    "replica_tokens_per_s_low",
    "fleet_tokens_per_s",
    "fleet_price_per_hour_usd",
    "fleet_cost_per_1m_tokens_usd",
    "mean_tpot_ms",
    "serves_target",
    "serving_note",
]
#: What a fleet table shows first: the platform, how many replicas and GPUs, rate, price, TPOT.
FLEET_SUMMARY = [
    "platform",
    "gpu_type",
    "gpu_count",
    "replicas_needed",
    "gpus_needed",
    "fleet_tokens_per_s",
    "fleet_price_per_hour_usd",
    "fleet_cost_per_1m_tokens_usd",
    "mean_tpot_ms",
]
#: A fleet larger than this many replicas is not proposed (the rate is out of reach of that platform).
MAX_REPLICAS = 1000


def concurrency_of(task: Mapping[str, Any]) -> float | None:
    """Sequences the task asks to decode together: its ``concurrency``, else its mode's default.

    A replica runs fewer where their KV caches do not fit (:func:`serving_fleet` says how many)."""
    job = describe_job(task)
    given = task.get("concurrency")
    if given is not None and not (isinstance(given, float) and math.isnan(given)):
        return float(given)
    if job is None:
        return None
    return DEFAULT_CONCURRENCY.get(job.mode)


def serving_fleet(task: Mapping[str, Any], ranking: pd.DataFrame, target_tokens_per_s: float) -> pd.DataFrame:
    """``ranking`` (from :func:`~fedopt_core.planning.ranking.rank_platforms` for ``task``) with
    the fleet each platform needs to generate ``target_tokens_per_s``: :data:`SERVING_COLUMNS`.

    * ``replicas_needed`` = ceil(target / the pessimistic rate of one replica), ``gpus_needed`` =
      replicas x the platform's GPUs; NaN where the job does not fit, has no rate, or would need
      more than :data:`MAX_REPLICAS` replicas (``serves_target`` False, ``serving_note`` says why).
    * ``fleet_tokens_per_s``: the fleet's predicted rate; ``fleet_price_per_hour_usd`` and
      ``fleet_cost_per_1m_tokens_usd`` (a million tokens at the target rate, the fleet paid for).
    * ``mean_tpot_ms``: derived mean time per output token at :func:`concurrency_of` sequences.

    Sorted: platforms that serve the target first, then the cheapest fleet per hour (unpriced
    last), then the fewest GPUs.  Raises :class:`PlanningError` for a task whose work is not in
    tokens or a target that is not a positive finite number.
    """
    try:
        target = float(target_tokens_per_s)
    except (TypeError, ValueError):
        raise PlanningError("target_tokens_per_s", f"{target_tokens_per_s!r} is not a number") from None
    if not math.isfinite(target) or target <= 0:
        raise PlanningError(
            "target_tokens_per_s", f"must be a finite number greater than zero (got {target_tokens_per_s!r})"
        )
    if task.get("work_unit") != "tokens":
        raise PlanningError("work_unit", "a target rate in tokens/s needs the work in tokens (give --tokens)")
    out = ranking.copy()
    if out.empty:
        return out.assign(**{c: pd.Series(dtype=object) for c in SERVING_COLUMNS})
    tokens = float(task.get("work_units") or 1.0)
    upper = pd.to_numeric(out["upper_s"], errors="coerce").to_numpy(float)
    rate = pd.to_numeric(out["tokens_per_s"], errors="coerce").to_numpy(float)
    count = pd.to_numeric(out["gpu_count"], errors="coerce").to_numpy(float)
    price = pd.to_numeric(out.get("price_per_hour_usd"), errors="coerce").to_numpy(float)
    fits = (out["fits_memory"] != False).to_numpy(bool)  # noqa: E712 (None: not known, not refused)
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(upper > 0, tokens / upper, np.nan)
        replicas = np.ceil(target / low)
    reachable = fits & np.isfinite(replicas) & (replicas <= MAX_REPLICAS)
    replicas = np.where(reachable, np.maximum(replicas, 1.0), np.nan)
    concurrency = _sequences_per_replica(task, out)
    # Whole machines: integers (nullable where no fleet serves the target).
    out["replicas_needed"] = pd.array(np.where(reachable, replicas, np.nan), dtype="Float64").astype("Int64")
    out["gpus_needed"] = pd.array(replicas * count, dtype="Float64").round().astype("Int64")
    out["replica_tokens_per_s_low"] = low
    out["fleet_tokens_per_s"] = replicas * rate
    out["fleet_price_per_hour_usd"] = replicas * price
    out["fleet_cost_per_1m_tokens_usd"] = replicas * price / (target * 3600.0) * 1e6
    with np.errstate(divide="ignore", invalid="ignore"):
        out["mean_tpot_ms"] = concurrency / rate * 1000.0
    out["serves_target"] = reachable
    out["serving_note"] = np.where(
        reachable,
        None,
        np.where(
            ~fits,
            "the model does not fit this platform",
            np.where(
                np.isfinite(low),
                f"would need more than {MAX_REPLICAS} replicas",
                "no predicted rate",
            ),
        ),
    )
    order = np.lexsort(
        (
            np.arange(len(out)),
            np.nan_to_num(replicas * count, nan=np.inf),
            np.nan_to_num(out["fleet_price_per_hour_usd"].to_numpy(float), nan=np.inf),
            ~reachable,
        )
    )
    return out.iloc[order].reset_index(drop=True)


def _sequences_per_replica(task: Mapping[str, Any], ranking: pd.DataFrame) -> np.ndarray:
    """Sequences each platform decodes together: the physics estimate's own figure (the task's
    concurrency, capped by the KV caches that fit beside the weights), so TPOT and the predicted
    rate assume the same batch; the task's figure where physics does not apply."""
    wanted = concurrency_of(task)
    table = physics_rows(schema.normalise_frame(schema.task_on_platforms(task, ranking)))
    fitted = np.exp(table["log_concurrency"].to_numpy(float))
    return np.where(np.isfinite(fitted), fitted, np.nan if wanted is None else wanted)
