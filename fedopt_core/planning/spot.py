"""Spot or on-demand: the expected time, cost and deadline risk of a job on preemptible machines.

Young/Daly checkpointing against on-demand (the model: :data:`SPOT_MODEL`), the preemption rate
learned from a group's usage sessions, and spot prices from a cloud price file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import poisson

from fedopt_core import formatting
from fedopt_core.csvfiles import read_table, typed
from fedopt_core.errors import PlanningError
from fedopt_core.planning.values import RTOL, as_float_array, check_limit

__all__ = [
    "DEFAULT_RESTART_COST_S",
    "SPOT_MODEL",
    "advise_spot",
    "advise_spot_frame",
    "load_spot_prices",
    "preemption_rate_from_sessions",
]


# After a spot preemption: obtaining a new instance, restoring the environment and loading the last checkpoint.
# An assumption of the same order as the shard planner's DEFAULT_STARTUP_S.
DEFAULT_RESTART_COST_S: float = 300.0

SPOT_MODEL = (
    "Preemptions arrive as a Poisson process (rate per hour of wall time). Checkpoints every Young/Daly interval "
    "tau = sqrt(2 * checkpoint_cost_s * MTBF) of work, none at the end; each preemption costs the restart plus about "
    "half an interval of lost work (half the job when no checkpoint is taken). First-order expected time: "
    "(compute + checkpoints) / (1 - rate * (restart + lost work)); spot is paid for all of it. The deadline risk is "
    "an upper bound: the chance of more preemptions than the slack allows, counted over the time the job would take "
    "with that many. On-demand: no preemptions, no checkpoints."
)

_SPOT_INPUTS = (
    "compute_time_s",
    "on_demand_price_per_hour_usd",
    "spot_price_per_hour_usd",
    "preemptions_per_hour",
    "checkpoint_cost_s",
    "restart_cost_s",
)


def advise_spot_frame(
    frame: pd.DataFrame,
    deadline_s: float | None = None,
    *,
    max_miss_probability: float = 0.05,
) -> pd.DataFrame:
    """Vectorised :func:`advise_spot` over rows (e.g. one per platform); returns a copy with the advice columns.

    Needs the columns ``compute_time_s``, ``on_demand_price_per_hour_usd``, ``spot_price_per_hour_usd``,
    ``preemptions_per_hour`` and ``checkpoint_cost_s``; ``restart_cost_s`` is optional (default
    ``DEFAULT_RESTART_COST_S``) and so is a per-row ``deadline_s`` column (else the ``deadline_s`` argument).
    """
    for name in _SPOT_INPUTS[:5]:
        if name not in frame.columns:
            raise PlanningError(name, "column is required")
    n = len(frame)
    vals = {}
    for name in _SPOT_INPUTS:
        default = DEFAULT_RESTART_COST_S if name == "restart_cost_s" else np.nan
        raw = frame[name].to_numpy() if name in frame.columns else np.full(n, default)
        vals[name] = as_float_array(raw, name, n)
    C, p_od, p_spot = vals["compute_time_s"], vals["on_demand_price_per_hour_usd"], vals["spot_price_per_hour_usd"]
    lam_h, delta, R = vals["preemptions_per_hour"], vals["checkpoint_cost_s"], vals["restart_cost_s"]
    for name, arr, rule, ok in (
        ("compute_time_s", C, "a positive finite number", np.isfinite(C) & (C > 0)),
        ("on_demand_price_per_hour_usd", p_od, "a positive finite number", np.isfinite(p_od) & (p_od > 0)),
        ("spot_price_per_hour_usd", p_spot, "a positive finite number", np.isfinite(p_spot) & (p_spot > 0)),
        ("preemptions_per_hour", lam_h, "a finite number >= 0", np.isfinite(lam_h) & (lam_h >= 0)),
        ("checkpoint_cost_s", delta, "a finite number >= 0", np.isfinite(delta) & (delta >= 0)),
        ("restart_cost_s", R, "a finite number >= 0", np.isfinite(R) & (R >= 0)),
    ):
        if not ok.all():
            raise PlanningError(name, f"must be {rule}, got {arr[~ok][0]!r}")
    if "deadline_s" in frame.columns:
        D = as_float_array(frame["deadline_s"].to_numpy(), "deadline_s", n)
    else:
        limit = check_limit(deadline_s, "deadline_s")
        D = np.full(n, np.nan if limit is None else limit)
    if (~np.isnan(D) & ~(D > 0)).any():
        raise PlanningError("deadline_s", "must be positive")
    if not (0 <= max_miss_probability <= 1):
        raise PlanningError("max_miss_probability", f"must be within [0, 1], got {max_miss_probability!r}")

    lam = lam_h / 3600.0  # per second of wall time
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # tiny rates: MTBF overflows to inf
        mtbf = np.where(lam > 0, 1.0 / lam, np.inf)
        tau = np.sqrt(2.0 * delta * mtbf)  # Young/Daly; inf without preemptions, 0 for free checkpoints
        n_ckpt = np.where(np.isfinite(tau) & (tau > 0), np.maximum(np.ceil(C / tau) - 1, 0), 0)
    n_ckpt = np.where(delta > 0, n_ckpt, 0)
    overhead = n_ckpt * delta
    lost = np.minimum(tau, C) / 2.0  # expected work lost per preemption
    per_preemption = R + lost
    work = C + overhead  # wall time without preemptions
    rho = lam * per_preemption  # fraction of wall time lost to preemptions
    with np.errstate(divide="ignore", invalid="ignore"):
        t_spot = np.where(rho < 1, work / (1 - rho), np.inf)
    cost_spot = p_spot * t_spot / 3600.0
    cost_od = p_od * C / 3600.0

    # Deadline risk: with k preemptions the job takes work + k * per_preemption, so it meets D if at most
    # K = floor((D - work) / per_preemption) happen; having at most K within work + K * per_preemption is sufficient.
    with np.errstate(divide="ignore", invalid="ignore"):
        K = np.where(per_preemption > 0, np.floor((D - work) / per_preemption), np.inf)
    horizon = np.where(np.isfinite(K), work + K * per_preemption, D)
    K_safe = np.where(np.isfinite(K), K, 0)
    p_miss = np.where(K_safe >= 0, poisson.sf(K_safe, lam * horizon), 1.0)
    p_miss = np.where(np.isinf(K), np.where(work <= D, 0.0, 1.0), p_miss)  # preemptions cost nothing
    p_miss = np.where(work > D * (1 + RTOL), 1.0, p_miss)
    p_miss = np.where(np.isnan(D), np.nan, p_miss)
    p_miss_od = np.where(np.isnan(D), np.nan, np.where(C > D * (1 + RTOL), 1.0, 0.0))

    out = frame.copy()
    out["restart_cost_s"] = R  # record the assumed default where none was given
    out["mtbf_s"] = mtbf
    out["checkpoint_interval_s"] = tau
    out["checkpoints"] = n_ckpt.astype(np.int64)
    out["checkpoint_overhead_s"] = overhead
    out["lost_work_per_preemption_s"] = np.where(lam > 0, lost, 0.0)
    out["expected_preemptions"] = np.where(np.isfinite(t_spot), lam * t_spot, np.inf)
    out["spot_expected_time_s"] = t_spot
    out["spot_expected_cost_usd"] = cost_spot
    out["on_demand_time_s"] = C
    out["on_demand_cost_usd"] = cost_od
    out["spot_miss_probability"] = p_miss
    out["on_demand_miss_probability"] = p_miss_od
    out["expected_saving_usd"] = cost_od - cost_spot

    never = ~np.isfinite(t_spot)
    has_d = ~np.isnan(D)
    od_late = has_d & (p_miss_od >= 1)
    risky = has_d & ~od_late & (p_miss > max_miss_probability)
    cheaper = cost_spot < cost_od
    spot = ~never & ~risky & cheaper
    out["recommendation"] = np.where(spot, "spot", "on-demand")
    reasons = []
    for i in range(n):  # strings for people: a handful of rows, not a hot path
        saving = 100 * (cost_od[i] - cost_spot[i]) / cost_od[i]
        if never[i]:
            r = (
                f"preemptions every {formatting.duration(mtbf[i])} on average leave no time to make progress after a "
                f"{formatting.duration(R[i])} restart and {formatting.duration(lost[i])} of lost work"
            )
        elif risky[i]:
            r = (
                f"spot misses the {formatting.duration(D[i])} deadline with probability up to {p_miss[i]:.0%} "
                f"(limit {max_miss_probability:.0%}); on-demand takes {formatting.duration(C[i])}"
            )
        elif not cheaper[i]:
            r = (
                f"spot's expected {formatting.usd(cost_spot[i])} (with checkpoints and rework, "
                f"{formatting.duration(t_spot[i])}) is not below on-demand's {formatting.usd(cost_od[i])}"
            )
        else:
            r = (
                f"spot is expected to cost {formatting.usd(cost_spot[i])} against "
                f"{formatting.usd(cost_od[i])} on-demand ({saving:.0f}% less) and take "
                f"{formatting.duration(t_spot[i])} instead of {formatting.duration(C[i])} "
                f"({out['expected_preemptions'].iat[i]:.1f} preemptions expected)"
            )
            if has_d[i]:
                r += f"; deadline risk up to {p_miss[i]:.1%}"
        if od_late[i]:
            r = (
                f"neither option meets the {formatting.duration(D[i])} deadline (on-demand alone takes "
                f"{formatting.duration(C[i])}); " + r
            )
        reasons.append(r)
    out["reason"] = reasons
    return out


def advice_sentence(advice: pd.DataFrame) -> str:
    """The advice of :func:`advise_spot_frame` (one row per platform) as one sentence for people:
    where to run, spot or on-demand, the checkpoint interval, the expected cost and finish, and
    the deadline risk; the cheapest recommended option that the deadline allows wins."""
    if advice.empty:
        raise PlanningError("advice", "has no rows")
    spot = (advice["recommendation"] == "spot").to_numpy(bool)
    cost = np.where(spot, advice["spot_expected_cost_usd"], advice["on_demand_cost_usd"]).astype(float)
    late = np.where(spot, advice["spot_miss_probability"], advice["on_demand_miss_probability"]).astype(float)
    late = np.nan_to_num(late, nan=0.0)
    # the deadline first (a late option only when none is on time), then the expected cost
    best = advice.iloc[int(np.lexsort((cost, late >= 1))[0])]
    where = f"{best['platform']}" + (f" ({best['provider']})" if best.get("provider") else "")
    if best["recommendation"] == "spot":
        interval = best["checkpoint_interval_s"]
        every = (
            f"checkpoint every {formatting.duration(interval)}" if np.isfinite(interval) else "no checkpoints needed"
        )
        sentence = (
            f"Run on spot on {where}: {every}; expected {formatting.usd(best['spot_expected_cost_usd'])} and "
            f"{formatting.duration(best['spot_expected_time_s'])} to finish "
            f"({best['expected_preemptions']:.1f} preemptions expected), against "
            f"{formatting.usd(best['on_demand_cost_usd'])} and "
            f"{formatting.duration(best['on_demand_time_s'])} on-demand"
        )
        risk = best["spot_miss_probability"]
    else:
        sentence = (
            f"Run on-demand on {where}: {formatting.usd(best['on_demand_cost_usd'])} and "
            f"{formatting.duration(best['on_demand_time_s'])} to finish ({best['reason']})"
        )
        risk = best["on_demand_miss_probability"]
    if np.isfinite(risk):
        sentence += f"; deadline risk {risk:.1%}" if risk < 1 else "; this misses the deadline"
    return sentence + "."


def advise_spot(
    compute_time_s: float,
    on_demand_price_per_hour_usd: float,
    spot_price_per_hour_usd: float,
    preemptions_per_hour: float,
    checkpoint_cost_s: float,
    restart_cost_s: float = DEFAULT_RESTART_COST_S,
    deadline_s: float | None = None,
    *,
    max_miss_probability: float = 0.05,
) -> dict[str, Any]:
    """Spot with Young/Daly checkpointing against on-demand, for one job (model: ``SPOT_MODEL``).

    Returns a dict with ``mtbf_s``, ``checkpoint_interval_s`` (inf without preemptions), ``checkpoints``,
    ``checkpoint_overhead_s``, ``lost_work_per_preemption_s``, ``expected_preemptions``, ``spot_expected_time_s``,
    ``spot_expected_cost_usd``, ``on_demand_time_s``, ``on_demand_cost_usd``, ``spot_miss_probability`` and
    ``on_demand_miss_probability`` (NaN without a deadline), ``expected_saving_usd``, ``recommendation``
    ("spot" | "on-demand"), ``reason`` and ``model``. Spot is recommended when its expected cost is lower and,
    given a deadline that on-demand meets, its miss probability is at most ``max_miss_probability``.
    """
    row = pd.DataFrame(
        {
            "compute_time_s": [compute_time_s],
            "on_demand_price_per_hour_usd": [on_demand_price_per_hour_usd],
            "spot_price_per_hour_usd": [spot_price_per_hour_usd],
            "preemptions_per_hour": [preemptions_per_hour],
            "checkpoint_cost_s": [checkpoint_cost_s],
            "restart_cost_s": [restart_cost_s],
        }
    )
    res = advise_spot_frame(row, deadline_s=deadline_s, max_miss_probability=max_miss_probability).iloc[0]
    out: dict[str, Any] = {}
    for key, value in res.items():
        if key in _SPOT_INPUTS:
            continue
        out[str(key)] = value.item() if isinstance(value, np.generic) else value
    out["model"] = SPOT_MODEL
    return out


def preemption_rate_from_sessions(sessions: pd.DataFrame) -> float | None:
    """Preemptions per hour of spot time, from usage sessions (``started_at``, ``ended_at``, ``outcome``).

    Every row is taken as a spot session, unless a boolean ``is_spot`` column says otherwise. Sessions still open
    (no ``ended_at``) are left out, since their time and fate are unknown. Returns None when there are no closed spot
    hours. Timestamps without a time zone are read as UTC.
    """
    for name in ("started_at", "ended_at", "outcome"):
        if name not in sessions.columns:
            raise PlanningError(name, "column is required in sessions")
    s = sessions
    if "is_spot" in s.columns:
        s = s[s["is_spot"].fillna(False).astype(bool)]
    times = {}
    for name in ("started_at", "ended_at"):
        raw = s[name]
        parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="mixed")
        bad = parsed.isna() & raw.notna()
        if bad.any():
            raise PlanningError(name, f"not a date/time: {raw[bad].iloc[0]!r}")
        times[name] = parsed
    if times["started_at"].isna().any():
        raise PlanningError("started_at", "is missing for a session")
    closed = times["ended_at"].notna()
    hours = (times["ended_at"][closed] - times["started_at"][closed]).dt.total_seconds() / 3600.0
    if (hours < 0).any():
        raise PlanningError("ended_at", "is before started_at for a session")
    total = float(hours.sum())
    if total <= 0:
        return None
    preempted = s.loc[closed, "outcome"].astype(str).str.strip().str.lower().eq("preempted")
    return float(preempted.sum()) / total


def load_spot_prices(path: str | Path) -> pd.DataFrame:
    """Rows of a ``cloud_gpu_prices.csv``-format file that have a spot price, with the on-demand price beside it.

    Adds ``on_demand_price_per_hour_usd``, ``spot_price_per_hour_usd`` and ``spot_to_on_demand_ratio``. Where a spot
    offer is its own row (``provisioning == "spot"``, e.g. GCP), the on-demand price comes from the on-demand row of
    the same cloud, GPU and GPU count (NaN if there is none, or several disagreeing).
    """
    required = (
        "cloud",
        "instance_type_or_product",
        "gpu_name",
        "gpu_count",
        "price_usd_per_hour",
        "spot_price_usd_per_hour",
    )
    table, _ = read_table(path)
    for name in required:
        if name not in table.columns:
            raise PlanningError(name, f"column is required in {Path(path).name}")
    df = typed(table.drop(columns="_line"))
    for name in ("price_usd_per_hour", "spot_price_usd_per_hour", "gpu_count"):
        df[name] = pd.to_numeric(df[name], errors="coerce")
    prov = (df["provisioning"] if "provisioning" in df.columns else pd.Series("", index=df.index)).fillna("")
    df["_own_row_is_spot"] = prov.astype(str).str.strip().str.lower().eq("spot")
    key = ["cloud", "gpu_name", "gpu_count"]
    od_rows = df[~df["_own_row_is_spot"]].groupby(key)["price_usd_per_hour"].agg(["min", "max"])
    od_unique = od_rows["min"].where(od_rows["min"] == od_rows["max"]).rename("_paired_on_demand")
    out = df[df["spot_price_usd_per_hour"].notna()].merge(od_unique, left_on=key, right_index=True, how="left")
    out = out.reset_index(drop=True)
    out["on_demand_price_per_hour_usd"] = np.where(
        out["_own_row_is_spot"], out["_paired_on_demand"], out["price_usd_per_hour"]
    )
    out["spot_price_per_hour_usd"] = out["spot_price_usd_per_hour"]
    out["spot_to_on_demand_ratio"] = out["spot_price_per_hour_usd"] / out["on_demand_price_per_hour_usd"]
    return out.drop(columns=["_paired_on_demand", "_own_row_is_spot"])
