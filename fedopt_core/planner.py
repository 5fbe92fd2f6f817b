"""Planning where and how to run a job: data movement, shard plans over several platforms, spot or on-demand.

Pure logic over plain values and DataFrames (no UI, no database). Three parts:

* **Data movement** -- :func:`transfer_time_s` and :func:`add_data_movement` add the time (and the machine time paid
  for it) to move a task's input to a platform and its output back, reported apart from compute time.
* **Shard planner** -- :func:`plan_shards` splits ``work_units`` independent units of work over machines of several
  platforms, minimising the makespan or the cost under an optional deadline and budget; :func:`plan_for_task` fills
  the per-unit rates from a predictor.
* **Spot advisor** -- :func:`advise_spot` / :func:`advise_spot_frame` compare spot (with Young/Daly checkpointing)
  against on-demand; :func:`preemption_rate_from_sessions` and :func:`load_spot_prices` supply its inputs.

Units: sizes in MB (10**6 bytes), network speeds in Mbps (10**6 bits per second), times in seconds, prices in USD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.stats import poisson

__all__ = [
    "DEFAULT_NETWORK_SPEED_MBPS",
    "FALLBACK_NETWORK_SPEED_MBPS",
    "DEFAULT_STARTUP_S",
    "DEFAULT_RESTART_COST_S",
    "PlanningError",
    "ShardPlan",
    "transfer_time_s",
    "add_data_movement",
    "plan_shards",
    "plan_for_task",
    "advise_spot",
    "advise_spot_frame",
    "preemption_rate_from_sessions",
    "load_spot_prices",
]

# --------------------------------------------------------------------------------------------------------------------
# Assumptions (all conservative; override them with measured values whenever you have any)
# --------------------------------------------------------------------------------------------------------------------

# Sustained rate for moving a job's data into the cloud and back *over the internet*, in Mbps. This is NOT the
# instance's NIC speed: the cloud side is rarely the bottleneck. AWS, for instance, caps traffic to and from an
# internet gateway at 5 Gbps per flow (EC2 User Guide, "Amazon EC2 instance network bandwidth"), and the GPU clouds
# advertise multi-Gbps ports. What limits a research group is its own end: a shared campus or office uplink, a single
# TCP stream over a long-distance path. 100 Mbps (12.5 MB/s) is our assumption for that end, not a measurement.
DEFAULT_NETWORK_SPEED_MBPS: dict[str, float] = {
    "aws": 100.0,  # lab-side bottleneck assumption (see above); AWS itself allows up to 5 Gbps per flow
    "gcp": 100.0,  # lab-side bottleneck assumption
    "azure": 100.0,  # lab-side bottleneck assumption
    "lambda": 100.0,  # lab-side bottleneck assumption; Lambda Cloud does not charge for egress
    "nebius": 100.0,  # lab-side bottleneck assumption
    "runpod": 100.0,  # lab-side bottleneck assumption (secure-cloud data centres)
    # Vast.ai is a marketplace of third-party hosts, some on residential lines; each offer lists its measured
    # internet speed, and it varies widely, so we assume half the lab-side figure.
    "vast": 50.0,
}
# Unknown provider: assume the worst figure in the table.
FALLBACK_NETWORK_SPEED_MBPS: float = 50.0

# Words that name a provider in the table above (matched on the first word of `provider`, case-insensitive).
_PROVIDER_ALIASES: dict[str, str] = {
    "amazon": "aws",
    "ec2": "aws",
    "google": "gcp",
    "microsoft": "azure",
    "lambdalabs": "lambda",
    "vast.ai": "vast",
    "vastai": "vast",
}

# Per-shard start-up: provisioning an instance, booting it and preparing the software environment. An assumption
# (GPU cloud instances typically take a few minutes to become usable); data transfer is added on top of it.
DEFAULT_STARTUP_S: float = 300.0

# After a spot preemption: obtaining a new instance, restoring the environment and loading the last checkpoint.
# An assumption of the same order as DEFAULT_STARTUP_S.
DEFAULT_RESTART_COST_S: float = 300.0

# Relative tolerance when comparing times and money against deadlines, budgets and unit boundaries, so that a plan
# finishing exactly on the deadline is not rejected for a rounding error.
_RTOL = 1e-9


class PlanningError(ValueError):
    """Bad input to the planner; ``field`` names the input (or column) at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# --------------------------------------------------------------------------------------------------------------------
# Data movement
# --------------------------------------------------------------------------------------------------------------------


def _provider_keys(provider: Any, n: int) -> pd.Series:
    if provider is None:
        return pd.Series([None] * n, dtype=object)
    if np.ndim(provider) == 0:
        provider = [provider] * n
    s = pd.Series(list(provider) if not isinstance(provider, pd.Series) else provider.to_numpy(), dtype=object)
    first = s.where(s.notna(), "").astype(str).str.strip().str.lower().str.split().str[0]
    return first.map(lambda w: _PROVIDER_ALIASES.get(w, w) if isinstance(w, str) else None)


def _default_speed_mbps(provider: Any, n: int) -> np.ndarray:
    keys = _provider_keys(provider, n)
    return keys.map(DEFAULT_NETWORK_SPEED_MBPS).fillna(FALLBACK_NETWORK_SPEED_MBPS).to_numpy(dtype=float)


def _as_float_array(values: Any, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(pd.to_numeric(pd.Series(np.atleast_1d(values)), errors="raise"), dtype=float)
    except (TypeError, ValueError) as exc:
        raise PlanningError(name, f"must be numeric ({exc})") from None
    if n is not None and arr.size == 1 and n != 1:
        arr = np.full(n, arr[0])
    return arr


def _network_speed(speed: Any, provider: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(speed used in Mbps, True where it is the provider default)."""
    given = _as_float_array(speed if speed is not None else np.nan, "network_speed_mbps", n)
    bad = ~np.isnan(given) & ~(given > 0)
    if bad.any():
        raise PlanningError("network_speed_mbps",
                            f"must be positive, got {given[bad][0]!r} (leave it empty for the default)")
    is_default = np.isnan(given)
    used = np.where(is_default, _default_speed_mbps(provider, n), given)
    return used, is_default


def transfer_time_s(
    input_size_mb: Any,
    output_size_mb: Any,
    network_speed_mbps: Any,
    provider: Any = None,
) -> np.ndarray:
    """Seconds to move ``input_size_mb`` in and ``output_size_mb`` out at ``network_speed_mbps``.

    Vectorised over arrays or Series (scalars broadcast). A missing (NaN) speed falls back to
    ``DEFAULT_NETWORK_SPEED_MBPS[provider]`` or ``FALLBACK_NETWORK_SPEED_MBPS``; a missing size counts as 0 MB
    (nothing known to move). Sizes are in MB (10**6 bytes) and speeds in Mbps (10**6 bits/s): 8 bits per byte.
    """
    lengths = [np.size(x) for x in (input_size_mb, output_size_mb, network_speed_mbps) if x is not None]
    if provider is not None and np.ndim(provider) > 0:
        lengths.append(len(provider))
    n = max(lengths) if lengths else 1
    sizes = []
    for name, value in (("input_size_mb", input_size_mb), ("output_size_mb", output_size_mb)):
        arr = _as_float_array(value if value is not None else np.nan, name, n)
        if arr.size != n:
            raise PlanningError(name, f"has {arr.size} values, expected {n}")
        if (arr < 0).any():
            raise PlanningError(name, f"must not be negative, got {arr[arr < 0][0]!r}")
        if np.isinf(arr).any():
            raise PlanningError(name, "must be finite")
        sizes.append(np.nan_to_num(arr, nan=0.0))
    speed, _ = _network_speed(network_speed_mbps, provider, n)
    if speed.size != n:
        raise PlanningError("network_speed_mbps", f"has {speed.size} values, expected {n}")
    return (sizes[0] + sizes[1]) * 8.0 / speed


def add_data_movement(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``frame`` with data-movement time and cost added, reported apart from compute.

    Needs ``predicted_time_s`` and ``price_per_hour_usd``; uses ``lower_s``, ``upper_s``, ``input_size_mb``,
    ``output_size_mb``, ``network_speed_mbps`` and ``provider`` when present (missing ones count as NaN). Adds:

    * ``network_speed_used_mbps`` and ``network_speed_is_default`` (True where the provider default was assumed),
    * ``transfer_time_s``, ``compute_time_s`` (= ``predicted_time_s``), ``total_time_s`` and the interval bounds
      ``total_lower_s`` / ``total_upper_s`` (the transfer time is added to both bounds: it is not modelled as
      uncertain),
    * ``compute_cost_usd``, ``transfer_cost_usd`` (the machine is paid while it waits for data) and their sum
      ``cost_usd``, with ``cost_lower_usd`` / ``cost_upper_usd``.

    Provider egress fees are not modelled: only machine time is charged.
    """
    missing = [c for c in ("predicted_time_s", "price_per_hour_usd") if c not in frame.columns]
    if missing:
        raise PlanningError(missing[0], "column is required")
    out = frame.copy()
    n = len(out)

    def col(name: str) -> Any:
        return out[name].to_numpy() if name in out.columns else np.full(n, np.nan)

    price = _as_float_array(col("price_per_hour_usd"), "price_per_hour_usd", n)
    if (price < 0).any():
        raise PlanningError("price_per_hour_usd", "must not be negative")
    speed, is_default = _network_speed(col("network_speed_mbps"), col("provider") if "provider" in out else None, n)
    transfer = transfer_time_s(col("input_size_mb"), col("output_size_mb"), speed)
    compute = _as_float_array(col("predicted_time_s"), "predicted_time_s", n)
    if (compute < 0).any():
        raise PlanningError("predicted_time_s", "must not be negative")
    lower = _as_float_array(col("lower_s"), "lower_s", n)
    upper = _as_float_array(col("upper_s"), "upper_s", n)
    usd_per_s = price / 3600.0

    out["network_speed_used_mbps"] = speed
    out["network_speed_is_default"] = is_default
    out["transfer_time_s"] = transfer
    out["compute_time_s"] = compute
    out["total_time_s"] = compute + transfer
    out["total_lower_s"] = lower + transfer
    out["total_upper_s"] = upper + transfer
    out["compute_cost_usd"] = usd_per_s * compute
    out["transfer_cost_usd"] = usd_per_s * transfer
    out["cost_usd"] = usd_per_s * (compute + transfer)
    out["cost_lower_usd"] = usd_per_s * (lower + transfer)
    out["cost_upper_usd"] = usd_per_s * (upper + transfer)
    return out


# --------------------------------------------------------------------------------------------------------------------
# Shard planner
# --------------------------------------------------------------------------------------------------------------------

Objective = Literal["makespan", "cost"]


@dataclass
class ShardPlan:
    """A plan splitting ``totals["units"]`` work units over machines of one or more platforms.

    ``shards`` has one row per used machine: ``platform``, ``machine`` (index within the platform), ``units``,
    ``start_s`` (all machines start at 0), ``overhead_s``, ``finish_s`` (on nominal rates), ``finish_upper_s`` (on
    upper-bound rates; equal to ``finish_s`` where no upper bound was given), ``cost_usd`` and ``cost_upper_usd``.
    ``totals`` holds ``units``, ``machines``, ``platforms``, ``makespan_s``, ``makespan_upper_s``, ``cost_usd`` and
    ``cost_upper_usd``. Deadline and budget are checked on the rates named by ``planned_on``.
    """

    shards: pd.DataFrame
    totals: dict[str, float]
    objective: str
    planned_on: str
    feasible: bool = True
    violations: list[str] = field(default_factory=list)
    message: str = ""
    best_single: ShardPlan | None = None
    sharding_worth_it: bool = False
    method: str = ""
    proven_optimal: bool = True

    @property
    def planned_makespan_s(self) -> float:
        return self.totals["makespan_upper_s" if self.planned_on == "upper" else "makespan_s"]

    @property
    def planned_cost_usd(self) -> float:
        return self.totals["cost_upper_usd" if self.planned_on == "upper" else "cost_usd"]

    @property
    def objective_value(self) -> float:
        """The optimised quantity (seconds or USD) on the planning rates."""
        return self.planned_makespan_s if self.objective == "makespan" else self.planned_cost_usd

    def to_frame(self) -> pd.DataFrame:
        """One row per platform used (machines, units, share, finish times, cost); totals and message in ``attrs``."""
        s = self.shards
        if s.empty:
            out = pd.DataFrame(columns=["platform", "machines", "units", "units_share", "overhead_s",
                                        "finish_s", "finish_upper_s", "cost_usd", "cost_upper_usd"])
        else:
            out = (
                s.groupby("platform", sort=False)
                .agg(machines=("machine", "size"), units=("units", "sum"), overhead_s=("overhead_s", "first"),
                     finish_s=("finish_s", "max"), finish_upper_s=("finish_upper_s", "max"),
                     cost_usd=("cost_usd", "sum"), cost_upper_usd=("cost_upper_usd", "sum"))
                .reset_index()
            )
            out.insert(3, "units_share", out["units"] / float(self.totals["units"]))
        out.attrs.update(totals=dict(self.totals), message=self.message, feasible=self.feasible,
                         violations=list(self.violations), planned_on=self.planned_on, objective=self.objective,
                         sharding_worth_it=self.sharding_worth_it, method=self.method)
        return out


@dataclass
class _Platforms:
    name: np.ndarray
    rate_nominal: np.ndarray  # s/unit
    rate_upper: np.ndarray  # s/unit (nominal where no upper)
    rate: np.ndarray  # the rate planned on
    price: np.ndarray  # USD/h per machine
    count: np.ndarray  # machines available (int)
    overhead: np.ndarray  # s per used machine
    has_upper: bool

    @property
    def fixed_usd(self) -> np.ndarray:  # paid once per used machine
        return self.price * self.overhead / 3600.0

    @property
    def per_unit_usd(self) -> np.ndarray:
        return self.price * self.rate / 3600.0

    def subset(self, idx: np.ndarray) -> _Platforms:
        return _Platforms(*(getattr(self, f)[idx] for f in
                            ("name", "rate_nominal", "rate_upper", "rate", "price", "count", "overhead")),
                          has_upper=self.has_upper)


@dataclass
class _Alloc:
    machines: np.ndarray  # used machines per platform (int)
    units: np.ndarray  # units per platform (int)
    optimal: bool = True


def _check_work_units(work_units: Any) -> int:
    try:
        w = float(work_units)
    except (TypeError, ValueError):
        raise PlanningError("work_units", f"must be a number, got {work_units!r}") from None
    if not math.isfinite(w) or w <= 0:
        raise PlanningError("work_units", f"must be a positive finite number, got {work_units!r}")
    if w != math.floor(w):
        raise PlanningError("work_units", f"must be a whole number of units, got {work_units!r}")
    return int(w)


def _check_limit(value: Any, name: str, *, zero_ok: bool = False) -> float | None:
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


def _column(platforms: pd.DataFrame, name: str, required: bool = True, default: float = np.nan) -> np.ndarray:
    if name not in platforms.columns:
        if required:
            raise PlanningError(name, "column is required in platforms")
        return np.full(len(platforms), default)
    return _as_float_array(platforms[name].to_numpy(), name, len(platforms))


def _fail_rows(name: str, bad: np.ndarray, names: np.ndarray, values: np.ndarray, rule: str) -> None:
    if bad.any():
        shown = ", ".join(f"{p} ({v!r})" for p, v in zip(names[bad][:5], values[bad][:5], strict=True))
        raise PlanningError(name, f"must be {rule}; bad for platform(s) {shown}")


def _prepare_platforms(platforms: pd.DataFrame, confident: bool) -> _Platforms:
    if not isinstance(platforms, pd.DataFrame):
        raise PlanningError("platforms", f"must be a DataFrame, got {type(platforms).__name__}")
    if platforms.empty:
        raise PlanningError("platforms", "no platforms to plan on")
    if "platform" not in platforms.columns:
        raise PlanningError("platform", "column is required in platforms")
    names = platforms["platform"].astype(str).to_numpy()
    dup = pd.Series(names).duplicated()
    if dup.any():
        raise PlanningError("platform", f"names must be unique; repeated: {names[dup.to_numpy()][0]!r}")
    rate = _column(platforms, "seconds_per_unit")
    _fail_rows("seconds_per_unit", ~(np.isfinite(rate) & (rate > 0)), names, rate, "a positive finite number")
    upper = _column(platforms, "seconds_per_unit_upper", required=False)
    _fail_rows("seconds_per_unit_upper", ~np.isnan(upper) & ~(np.isfinite(upper) & (upper >= rate)), names, upper,
               "empty or a finite number >= seconds_per_unit")
    price = _column(platforms, "price_per_hour_usd")
    # 0 is a real price: the group's own machines cost nothing per hour.
    _fail_rows("price_per_hour_usd", ~(np.isfinite(price) & (price >= 0)), names, price, "a finite number >= 0")
    count = _column(platforms, "count")
    _fail_rows("count", ~(np.isfinite(count) & (count >= 1) & (count == np.floor(count))), names, count,
               "a whole number >= 1")
    overhead = _column(platforms, "overhead_s", required=False, default=0.0)
    _fail_rows("overhead_s", ~(np.isfinite(overhead) & (overhead >= 0)), names, overhead, "a finite number >= 0")
    rate_upper = np.where(np.isnan(upper), rate, upper)
    has_upper = bool((~np.isnan(upper)).any())
    return _Platforms(name=names, rate_nominal=rate, rate_upper=rate_upper,
                      rate=rate_upper if confident else rate, price=price, count=count.astype(np.int64),
                      overhead=overhead, has_upper=has_upper)


def _units_within(T: float, P: _Platforms, W: int) -> np.ndarray:
    """Most whole units one machine of each platform can finish by time T (0 if it cannot start)."""
    if math.isinf(T):
        return np.full(P.rate.size, W, dtype=np.int64)
    x = np.maximum(T - P.overhead, 0.0) / P.rate
    return np.minimum(np.floor(x * (1 + _RTOL) + _RTOL), W).astype(np.int64)


def _alloc_makespan(P: _Platforms, a: _Alloc, rate: np.ndarray | None = None) -> float:
    used = a.machines > 0
    if not used.any():
        return math.inf
    r = P.rate if rate is None else rate
    per_machine = -(-a.units[used] // a.machines[used])  # ceil: the busiest machine of the platform
    return float(np.max(P.overhead[used] + r[used] * per_machine))


def _alloc_cost(P: _Platforms, a: _Alloc, rate: np.ndarray | None = None) -> float:
    r = P.rate if rate is None else rate
    return float(np.sum(P.price / 3600.0 * (a.machines * P.overhead + r * a.units)))


def _water_fill(P: _Platforms, W: int) -> _Alloc:
    """Fastest plan, ignoring any budget: exact integer optimum in O(n log n).

    Argument: by time T a machine of platform i can finish at most k_i(T) = floor((T - o_i) / r_i) units (0 when
    T <= o_i, and then it is left idle and pays no overhead), so no plan beats T* = min{T : sum_i c_i k_i(T) >= W}.
    Loading every machine with k_i(T*) units and then taking the surplus (fewer than the number of machines) off
    the machines that finish last meets T* exactly. T* lies in [T_c, T_c + max r], where T_c solves the continuous
    version sum_i c_i (T - o_i)^+ / r_i = W (piecewise linear in T; solved in closed form after sorting by
    overhead), so it is found by bisection on that short interval.
    """
    order = np.argsort(P.overhead, kind="stable")
    o, r, c = P.overhead[order], P.rate[order], P.count[order].astype(float)
    slope = np.cumsum(c / r)
    intercept = np.cumsum(c * o / r)
    cap_at_next = slope[:-1] * o[1:] - intercept[:-1]  # continuous capacity when the next platform would start
    k = int(np.argmax(cap_at_next >= W)) if (cap_at_next >= W).any() else o.size - 1
    t_cont = (W + intercept[k]) / slope[k]

    def capacity(T: float) -> int:
        return int(np.sum(P.count * _units_within(T, P, W)))

    lo, hi = t_cont * (1 - 1e-12), t_cont + float(P.rate.max())
    if capacity(lo) >= W:
        hi = lo
    for _ in range(200):
        if hi - lo <= 1e-13 * hi:
            break
        mid = 0.5 * (lo + hi)
        if capacity(mid) >= W:
            hi = mid
        else:
            lo = mid
    per_machine = _units_within(hi, P, W)
    surplus = int(np.sum(P.count * per_machine)) - W
    finish = np.where(per_machine > 0, P.overhead + P.rate * per_machine, -np.inf)
    by_finish = np.argsort(-finish, kind="stable")
    before = np.cumsum(P.count[by_finish]) - P.count[by_finish]
    take = np.zeros_like(P.count)
    take[by_finish] = np.clip(surplus - before, 0, P.count[by_finish])  # one unit off each of `take` machines
    units = P.count * per_machine - take
    machines = np.where(per_machine >= 2, P.count, np.where(per_machine == 1, P.count - take, 0))
    return _Alloc(machines=machines.astype(np.int64), units=units.astype(np.int64))


def _whole_units(units: np.ndarray, capacity: np.ndarray, per_unit_usd: np.ndarray, W: int) -> np.ndarray:
    """Whole units summing to W, each within its capacity: floor, then hand the remainder to the cheapest
    platforms with room (largest-remainder rounding). Changes nothing when the units are already whole."""
    whole = np.minimum(np.floor(units + 1e-6), capacity).astype(np.int64)
    short = W - int(whole.sum())
    if short > 0:
        room = capacity - whole
        order = np.lexsort((per_unit_usd, -(units - whole)))  # largest remainder first, then cheapest
        before = np.cumsum(room[order]) - room[order]
        add = np.zeros_like(whole)
        add[order] = np.clip(short - before, 0, room[order])
        whole += add
    return whole


@dataclass
class _Oracle:
    """Cheapest plan finishing by a given time: a small MILP solved by HiGHS (scipy.optimize.milp).

    Variables per platform: m_i (machines used, integer in [0, c_i]) and U_i (units). Minimise
    sum_i f_i m_i + v_i U_i with f_i = price_i * overhead_i / 3600 (paid once per used machine) and v_i = price_i *
    rate_i / 3600, subject to sum_i U_i = W, U_i <= k_i(T) m_i (machine capacity by T) and m_i <= U_i (no idle
    machine is paid for). Splitting U_i over m_i machines as evenly as possible then keeps every machine within
    k_i(T). A plain LP cannot express "a machine with no units pays no overhead" (a fixed charge); the integer m_i
    do, exactly.

    U_i are left continuous because they come out whole anyway: once the m_i are fixed, what remains is an LP with
    one equality and whole capacities k_i m_i, whose optimal vertex has at most one U_i strictly between its bounds,
    and that one is whole because sum U_i = W is. (Declaring the U_i integer gives the same optimum 20-80x slower
    on 1,000 platforms.) Float noise is removed by :func:`_whole_units`, which keeps every capacity.
    """

    P: _Platforms
    W: int
    time_limit_s: float
    calls: int = 0

    def __call__(self, T: float) -> _Alloc | None:
        P, W = self.P, self.W
        self.calls += 1
        cap = _units_within(T, P, W)
        idx = np.flatnonzero(cap >= 1)
        if idx.size == 0 or int(np.sum(P.count[idx] * cap[idx])) < W:
            return None
        n = idx.size
        f, v = P.fixed_usd[idx], P.per_unit_usd[idx]
        # HiGHS stops at an absolute gap of 1e-6: scale the objective so a typical paid plan costs ~1e6. Free
        # platforms cost 0 and must not set the scale (1e6 / 0 would overflow every other cost).
        whole_job = f + v * W
        paid = whole_job[whole_job > 0]
        scale = 1e6 / max(float(paid.min()), 1e-300) if paid.size else 1.0
        c = np.concatenate([f, v]) * scale
        eye = sparse.identity(n, format="csr")
        A = sparse.vstack([
            sparse.hstack([sparse.csr_matrix((1, n)), sparse.csr_matrix(np.ones((1, n)))]),
            sparse.hstack([-sparse.diags(cap[idx].astype(float)), eye]),  # U - k m <= 0
            sparse.hstack([eye, -eye]),  # m - U <= 0
        ]).tocsr()
        lb = np.concatenate([[W], np.full(2 * n, -np.inf)])
        ub = np.concatenate([[W], np.zeros(2 * n)])
        res = milp(
            c,
            integrality=np.concatenate([np.ones(n), np.zeros(n)]),
            bounds=Bounds(np.zeros(2 * n), np.concatenate([P.count[idx], P.count[idx] * cap[idx]]).astype(float)),
            constraints=LinearConstraint(A, lb, ub),
            options={"time_limit": self.time_limit_s, "mip_rel_gap": 1e-9},
        )
        if res.x is None:
            return None
        m_sub = np.round(res.x[:n]).astype(np.int64)
        u_sub = _whole_units(res.x[n:], cap[idx] * m_sub, v, W)
        machines = np.zeros(P.rate.size, dtype=np.int64)
        units = np.zeros(P.rate.size, dtype=np.int64)
        machines[idx], units[idx] = np.minimum(m_sub, u_sub), u_sub
        # Machines without overhead cost nothing extra: spread their units over as many as are available.
        free = (P.fixed_usd == 0) & (units > 0)
        machines[free] = np.minimum(P.count[free], units[free])
        return _Alloc(machines=machines, units=units, optimal=res.status == 0)


def _free_only(P: _Platforms, W: int) -> _Alloc | None:
    """Fastest plan on the free platforms (price 0) alone -- the only plans that cost nothing; None without any."""
    idx = np.flatnonzero(P.price == 0)
    if idx.size == 0:
        return None
    sub = _water_fill(P.subset(idx), W)
    machines, units = np.zeros_like(P.count), np.zeros_like(P.count)
    machines[idx], units[idx] = sub.machines, sub.units
    return _Alloc(machines=machines, units=units)


def _fastest_within_budget(oracle: _Oracle, budget: float, fastest: _Alloc, at_fastest: _Alloc | None,
                           cheapest: _Alloc, rtol: float) -> _Alloc:
    """Smallest makespan whose cheapest plan fits the budget: a bracketing search on T over the MILP oracle.

    The cheapest plan finishing by T gets no dearer as T grows, so {T : it fits the budget} is an interval [T*, inf).
    The bracket [lo, hi] always has lo too fast for the budget and hi a plan within it; each probe is placed by
    regula falsi on (T, cost - budget) with the Illinois correction, falling back to bisection when the bracket
    shrinks slowly. A probe within budget moves hi down to its plan's actual makespan (a unit boundary). The search
    stops when no platform's per-machine capacity changes strictly inside (lo, hi) -- then hi is exactly T*, since
    the oracle's answer is the same all over the gap -- or when hi - lo <= rtol * hi.
    """
    P, W = oracle.P, oracle.W
    lo, hi, best = _alloc_makespan(P, fastest), _alloc_makespan(P, cheapest), cheapest
    f_lo = (_alloc_cost(P, at_fastest) if at_fastest is not None else math.inf) - budget
    f_hi = _alloc_cost(P, cheapest) - budget
    optimal, side, width_before = cheapest.optimal, 0, hi - lo
    for step in range(200):
        below_hi = np.minimum(np.ceil((np.maximum(hi - P.overhead, 0.0) / P.rate) * (1 - _RTOL) - _RTOL) - 1, W)
        if np.all(below_hi <= _units_within(lo, P, W)) or hi - lo <= rtol * hi:
            break
        if step % 3 == 2 and hi - lo > 0.5 * width_before or not math.isfinite(f_lo):
            mid = 0.5 * (lo + hi)
        else:
            mid = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
            mid = min(max(mid, lo + 1e-3 * (hi - lo)), hi - 1e-3 * (hi - lo))
        if step % 3 == 2:
            width_before = hi - lo
        plan = oracle(mid)
        optimal = optimal and (plan is None or plan.optimal)
        if plan is not None and _alloc_cost(P, plan) <= budget * (1 + _RTOL):
            best, hi, f_hi = plan, min(_alloc_makespan(P, plan), mid), _alloc_cost(P, plan) - budget
            f_lo = f_lo / 2 if side == 1 else f_lo  # Illinois: the other end stuck twice -> halve its weight
            side = 1
        else:
            lo, f_lo = mid, (_alloc_cost(P, plan) if plan is not None else math.inf) - budget
            f_hi = f_hi / 2 if side == -1 else f_hi
            side = -1
    best.optimal = optimal
    return best


def _best_single_index(P: _Platforms, W: int, objective: str, deadline: float | None,
                       budget: float | None) -> tuple[int | None, np.ndarray]:
    """Best one-platform plan (closed form, vectorised over platforms): index and machines per platform."""
    f, v, c = P.fixed_usd, P.per_unit_usd, P.count
    if objective == "makespan":
        # More machines are never slower; the budget caps how many overheads can be paid.
        m = np.minimum(c, W).astype(float)
        if budget is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                afford = np.where(f > 0, np.floor((budget * (1 + _RTOL) - v * W) / f), np.inf)
            m = np.minimum(m, afford)
    else:
        cap = _units_within(math.inf if deadline is None else deadline, P, W).astype(float)
        with np.errstate(divide="ignore"):
            m = np.where(cap >= 1, np.ceil(W / cap), np.inf)
        m = np.where(f == 0, np.minimum(c, W), m)  # free machines: use them all
        m = np.where(m <= c, m, np.nan)
    ok = np.isfinite(m) & (m >= 1)
    m = np.where(ok, m, 1).astype(np.int64)
    T = P.overhead + P.rate * -(-W // m)
    cost = m * f + v * W
    if deadline is not None:
        ok &= T <= deadline * (1 + _RTOL)
    if budget is not None:
        ok &= cost <= budget * (1 + _RTOL)
    if not ok.any():
        return None, m
    primary, secondary = (T, cost) if objective == "makespan" else (cost, T)
    cand = np.flatnonzero(ok)
    best = cand[np.lexsort((secondary[cand], primary[cand]))[0]]
    return int(best), m


def _fmt_s(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "never"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _fmt_usd(usd: float) -> str:
    return f"${usd:,.2f}" if usd >= 1 or usd == 0 else f"${usd:.4f}"


def _build_plan(P: _Platforms, a: _Alloc, W: int, objective: str, confident: bool, method: str) -> ShardPlan:
    used = np.flatnonzero(a.machines > 0)
    m = a.machines[used]
    plat = np.repeat(used, m)
    machine = np.arange(plat.size) - np.repeat(np.cumsum(m) - m, m)
    base = np.repeat(a.units[used] // m, m)
    extra = np.repeat(a.units[used] % m, m)
    units = base + (machine < extra)  # the first (U mod m) machines take one more unit
    o = P.overhead[plat]
    usd_per_s = P.price[plat] / 3600.0
    finish = o + P.rate_nominal[plat] * units
    finish_upper = o + P.rate_upper[plat] * units
    shards = pd.DataFrame({
        "platform": P.name[plat], "machine": machine.astype(np.int64), "units": units.astype(np.int64),
        "start_s": 0.0, "overhead_s": o, "finish_s": finish, "finish_upper_s": finish_upper,
        "cost_usd": usd_per_s * finish, "cost_upper_usd": usd_per_s * finish_upper,
    })
    totals = {
        "units": int(units.sum()), "machines": int(plat.size), "platforms": int(used.size),
        "makespan_s": float(finish.max()) if plat.size else math.inf,
        "makespan_upper_s": float(finish_upper.max()) if plat.size else math.inf,
        "cost_usd": float(shards["cost_usd"].sum()), "cost_upper_usd": float(shards["cost_upper_usd"].sum()),
    }
    planned_on = "upper" if confident and P.has_upper else "nominal"
    return ShardPlan(shards=shards, totals=totals, objective=objective, planned_on=planned_on, method=method,
                     proven_optimal=a.optimal)


def _check_constraints(plan: ShardPlan, deadline: float | None, budget: float | None) -> list[str]:
    basis = " (on upper-bound rates)" if plan.planned_on == "upper" else ""
    out = []
    if deadline is not None and plan.planned_makespan_s > deadline * (1 + _RTOL):
        out.append(f"deadline_s: the plan takes {_fmt_s(plan.planned_makespan_s)}{basis}, "
                   f"over the deadline of {_fmt_s(deadline)}")
    if budget is not None and plan.planned_cost_usd > budget * (1 + _RTOL):
        out.append(f"budget_usd: the plan costs {_fmt_usd(plan.planned_cost_usd)}{basis}, "
                   f"over the budget of {_fmt_usd(budget)}")
    return out


def plan_shards(
    work_units: int,
    platforms: pd.DataFrame,
    objective: Objective = "makespan",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    confident: bool = True,
    *,
    min_improvement: float = 0.05,
    time_limit_s: float = 60.0,
    makespan_rtol: float = 1e-6,
) -> ShardPlan:
    """Split ``work_units`` independent units over machines of several platforms.

    ``platforms`` has one row per platform: ``platform`` (unique name), ``seconds_per_unit``, optional
    ``seconds_per_unit_upper`` (upper bound of the prediction interval; NaN -> nominal), ``price_per_hour_usd`` (per
    machine; 0 for the group's own machines), ``count`` (machines available) and optional ``overhead_s`` (start-up plus data transfer, paid once by
    every machine that gets work; default 0). Machines start together at t = 0 and are paid (per second) from start
    until their own shard is done; a machine given no units is not started and costs nothing.

    * ``objective="makespan"``: finish as early as possible, within ``budget_usd`` if given.
    * ``objective="cost"``: spend as little as possible, finishing by ``deadline_s`` if given; when free machines
      alone can do that, the fastest plan on them.

    A ``budget_usd`` of 0 allows only free machines (price 0).

    With ``confident=True`` the plan is made, and deadline and budget are checked, on the upper-bound rates (where
    given), so they hold with the interval's confidence; nominal and upper finish times are both reported.

    Method (exact, whole units, see the helpers for the arguments):
      - makespan without a budget: closed-form water-filling (:func:`_water_fill`), O(n log n);
      - cost: one MILP (:class:`_Oracle`, HiGHS via ``scipy.optimize.milp``) with the deadline as capacity;
      - makespan with a budget: water-filling if the cheapest plan at that makespan fits, else a bracketing search
        on the makespan over the MILP (:func:`_fastest_within_budget`), optimal to within ``makespan_rtol``
        (relative; exact when no unit boundary falls inside the final bracket).
    Units are whole throughout (see :class:`_Oracle` for why the MILP's units come out whole): within a platform,
    machines differ by at most one unit, and every constraint is checked on the final whole-unit plan.
    ``time_limit_s`` bounds each MILP; a plan not proven optimal in time says so in ``proven_optimal``.

    Bad input (non-positive or NaN work, rates, counts; negative, NaN or infinite prices; negative overhead; bad
    deadline or budget; unknown objective) raises :class:`PlanningError` naming the field. A deadline or budget that no plan can meet does not
    raise: the returned plan has ``feasible=False``, ``violations`` naming the constraint(s), and is the plan that
    comes closest -- the budget is kept if any plan can keep it (then it is the fastest such plan, which misses the
    deadline by the least); otherwise it is the cheapest plan that meets the deadline, or the cheapest plan overall.

    ``best_single`` is the best plan using one platform only (possibly several of its machines), under the same
    objective and constraints (None if no single platform meets them). ``sharding_worth_it`` is True when the plan
    uses more than one platform and beats ``best_single`` by at least ``min_improvement`` (relative), or when no
    single platform meets the constraints at all.
    """
    if objective not in ("makespan", "cost"):
        raise PlanningError("objective", f"must be 'makespan' or 'cost', got {objective!r}")
    W = _check_work_units(work_units)
    deadline = _check_limit(deadline_s, "deadline_s")
    budget = _check_limit(budget_usd, "budget_usd", zero_ok=True)  # 0: only the group's free machines
    for name, value in (("min_improvement", min_improvement), ("makespan_rtol", makespan_rtol),
                        ("time_limit_s", time_limit_s)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0 and math.isfinite(value)):
            raise PlanningError(name, f"must be a finite number >= 0, got {value!r}")
    P = _prepare_platforms(platforms, confident)
    oracle = _Oracle(P, W, time_limit_s)

    alloc, method, context = _solve(P, W, objective, deadline, budget, oracle, makespan_rtol)
    plan = _build_plan(P, alloc, W, objective, confident, method)
    plan.violations = _check_constraints(plan, deadline, budget)
    plan.feasible = not plan.violations

    idx, m_single = _best_single_index(P, W, objective, deadline, budget)
    if idx is not None:
        machines = np.zeros_like(P.count)
        units = np.zeros_like(P.count)
        machines[idx], units[idx] = min(int(m_single[idx]), W), W
        single = _build_plan(P, _Alloc(machines, units), W, objective, confident, "single platform (closed form)")
        single.message = f"all {W:,} units on {P.name[idx]} ({machines[idx]} machine(s))"
        plan.best_single = single
    plan.sharding_worth_it, plan.message = _explain(plan, P, objective, deadline, budget, min_improvement, context)
    return plan


def _solve(P: _Platforms, W: int, objective: str, deadline: float | None, budget: float | None,
           oracle: _Oracle, makespan_rtol: float) -> tuple[_Alloc, str, list[str]]:
    """The optimal allocation, or the closest one when no plan meets every constraint (see plan_shards)."""

    def fits(a: _Alloc) -> bool:
        return budget is None or _alloc_cost(P, a) <= budget * (1 + _RTOL)

    def on_time(a: _Alloc) -> bool:
        return deadline is None or _alloc_makespan(P, a) <= deadline * (1 + _RTOL)

    fastest = _water_fill(P, W)

    def fastest_within_budget() -> tuple[_Alloc | None, str]:
        if fits(fastest):
            return fastest, "water-filling (exact)"
        if budget == 0:  # exactly the plans on free machines fit; the search below would crawl along cost 0
            free = _free_only(P, W)
            return (free, "water-filling over free machines (exact)") if free is not None else (None, "")
        at_fastest = oracle(_alloc_makespan(P, fastest))  # a cheaper plan may reach the same makespan
        if at_fastest is not None and fits(at_fastest):
            return at_fastest, "water-filling + MILP"
        cheapest = oracle(math.inf)
        assert cheapest is not None  # one machine can always do all the work eventually
        if not fits(cheapest):
            return None, ""
        assert budget is not None  # fits() is only False under a budget
        plan = _fastest_within_budget(oracle, budget, fastest, at_fastest, cheapest, makespan_rtol)
        return plan, f"MILP + search on makespan ({oracle.calls} MILPs)"

    meets: _Alloc | None = None
    if objective == "cost":
        meets = oracle(math.inf if deadline is None else deadline)
        if meets is not None and fits(meets):
            if _alloc_cost(P, meets) == 0:
                # Free machines can do it all by the deadline: every such plan costs nothing, so take the fastest
                # of them rather than whichever split the MILP happened to return.
                free = _free_only(P, W)
                assert free is not None  # a plan costing 0 uses free platforms only
                return free, "water-filling over free machines (exact)", []
            return meets, "MILP (exact)", []
    alloc, method = fastest_within_budget()
    if alloc is not None:
        if on_time(alloc):
            return alloc, method, []
        assert deadline is not None  # only a deadline can make a plan late
        within = " within the budget" if budget is not None and not fits(fastest) else ""
        note = f" (without the budget: {_fmt_s(_alloc_makespan(P, fastest))})" if within else ""
        return alloc, method + "; closest plan: fastest", [
            f"no plan{within} meets the deadline of {_fmt_s(deadline)}: the fastest{within} takes "
            f"{_fmt_s(_alloc_makespan(P, alloc))}{note}"]
    # No plan fits the budget: the cheapest plan meeting the deadline, else the cheapest plan of all.
    assert budget is not None
    if objective == "makespan" and deadline is not None:
        meets = oracle(deadline)
    alloc = meets if meets is not None else oracle(math.inf)
    assert alloc is not None
    return alloc, "MILP; closest plan: cheapest", [
        f"no plan fits the budget of {_fmt_usd(budget)}: "
        f"the cheapest{' meeting the deadline' if meets is not None and deadline is not None else ''} costs "
        f"{_fmt_usd(_alloc_cost(P, alloc))}"]


def _explain(plan: ShardPlan, P: _Platforms, objective: str, deadline: float | None, budget: float | None,
             min_improvement: float, context: list[str]) -> tuple[bool, str]:
    t, usd = plan.planned_makespan_s, plan.planned_cost_usd
    basis = " on upper-bound rates" if plan.planned_on == "upper" else ""
    summary = (f"{plan.totals['units']:,} units on {plan.totals['machines']} machine(s) of "
               f"{plan.totals['platforms']} platform(s): {_fmt_s(t)}, {_fmt_usd(usd)}{basis}")
    if not plan.feasible:
        why = "; ".join(context) if context else "; ".join(plan.violations)
        return False, f"Infeasible: {why}. Closest plan: {summary}."
    single = plan.best_single
    if single is None:
        limits = " and ".join(name for name, v in (("deadline", deadline), ("budget", budget)) if v is not None)
        return True, f"No single platform meets the {limits}; sharding does: {summary}."
    s_val, val = single.objective_value, plan.objective_value
    gain = (s_val - val) / s_val if s_val > 0 else 0.0
    single_txt = f"{single.message}: {_fmt_s(single.planned_makespan_s)}, {_fmt_usd(single.planned_cost_usd)}"
    if plan.totals["platforms"] <= 1:
        used = plan.shards["platform"].iloc[0]
        unused = ~np.isin(P.name, plan.shards["platform"].unique())
        if objective == "makespan":
            slow_start = unused & (P.overhead + P.rate >= t * (1 - _RTOL))
            if budget == 0 and not (unused & (P.price == 0)).any():
                reason = f"a budget of {_fmt_usd(0)} rules out every paid platform, and {used} is the only free one"
            elif budget is not None and budget > 0 and usd >= budget * (1 - 1e-6):
                reason = f"the budget of {_fmt_usd(budget)} is used up by {used} alone"
            elif slow_start.any():
                k = int(np.flatnonzero(slow_start)[np.argmax(P.overhead[slow_start])])
                reason = (f"the other platforms could not finish even one unit sooner: e.g. {P.name[k]} needs "
                          f"{_fmt_s(P.overhead[k])} of start-up and transfer overhead")
            else:
                reason = "no other platform would make it finish sooner"
        else:
            reason = (f"every extra machine pays its start-up and transfer overhead, and {used} is the cheapest way to "
                      f"do the work{' by the deadline' if deadline is not None else ''}")
        return False, f"Sharding across platforms is not worth it: {reason}. Plan: {summary}."
    pct = f"{100 * gain:.1f}% {'faster' if objective == 'makespan' else 'cheaper'}"
    if gain < min_improvement:
        return False, (f"Sharding over {plan.totals['platforms']} platforms is only {pct} than the best single "
                       f"platform ({single_txt}), below the {100 * min_improvement:.0f}% worth the extra "
                       f"coordination. Sharded plan: {summary}.")
    return True, (f"Sharding is worth it: {summary}, {pct} than the best single platform "
                  f"({single_txt}).")


class _Predictor(Protocol):
    def predict_frame(self, rows: pd.DataFrame) -> pd.DataFrame: ...


def plan_for_task(
    task: Mapping[str, Any],
    platforms: pd.DataFrame,
    predictor: _Predictor,
    work_units: int,
    objective: Objective = "makespan",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    count_column: str = "count",
    *,
    confident: bool = True,
    startup_s: float = DEFAULT_STARTUP_S,
    min_improvement: float = 0.05,
    time_limit_s: float = 60.0,
    makespan_rtol: float = 1e-6,
) -> ShardPlan:
    """Plan ``work_units`` of ``task`` over ``platforms`` with rates from ``predictor``.

    ``platforms`` holds platform fields of the run schema (``platform``, ``gpu_type``, ``provider``,
    ``network_speed_mbps``, ``price_per_hour_usd``, ...) plus ``count_column`` (machines available). Each platform
    row is joined with ``task`` (task fields; the platform's own columns win on a clash) with ``work_units`` set to
    the total, and ``predictor.predict_frame(rows)`` gives ``predicted_time_s`` and ``upper_s`` for the whole job;
    the rates are those divided by ``work_units`` (so any fixed cost inside the prediction is spread per unit).
    The per-shard overhead is ``startup_s`` plus :func:`transfer_time_s` of the task's ``input_size_mb`` and
    ``output_size_mb`` -- conservatively, every shard moves the whole task's data.
    """
    W = _check_work_units(work_units)
    if not isinstance(platforms, pd.DataFrame) or platforms.empty:
        raise PlanningError("platforms", "no platforms to plan on")
    for name in ("platform", "price_per_hour_usd", count_column):
        if name not in platforms.columns:
            raise PlanningError(name, "column is required in platforms")
    startup = float(startup_s)
    if not (math.isfinite(startup) and startup >= 0):
        raise PlanningError("startup_s", f"must be a finite number >= 0, got {startup_s!r}")
    rows = platforms.reset_index(drop=True).copy()
    for key, value in task.items():
        if key not in rows.columns:
            rows[key] = value
    rows["work_units"] = float(W)
    pred = predictor.predict_frame(rows)
    for name in ("predicted_time_s", "upper_s"):
        if name not in pred.columns:
            raise PlanningError(name, "column missing from predictor.predict_frame output")
    if len(pred) != len(rows):
        raise PlanningError("predicted_time_s", f"predictor returned {len(pred)} rows for {len(rows)} platforms")
    predicted = _as_float_array(pred["predicted_time_s"].to_numpy(), "predicted_time_s", len(rows))
    upper = _as_float_array(pred["upper_s"].to_numpy(), "upper_s", len(rows))

    def task_value(name: str) -> Any:
        return rows[name].to_numpy() if name in rows.columns else np.full(len(rows), np.nan)

    transfer = transfer_time_s(task_value("input_size_mb"), task_value("output_size_mb"),
                               task_value("network_speed_mbps"),
                               rows["provider"] if "provider" in rows.columns else None)
    frame = pd.DataFrame({
        "platform": rows["platform"].to_numpy(),
        "seconds_per_unit": predicted / W,
        "seconds_per_unit_upper": upper / W,
        "price_per_hour_usd": rows["price_per_hour_usd"].to_numpy(),
        "count": rows[count_column].to_numpy(),
        "overhead_s": startup + transfer,
    })
    return plan_shards(W, frame, objective=objective, deadline_s=deadline_s, budget_usd=budget_usd,
                       confident=confident, min_improvement=min_improvement, time_limit_s=time_limit_s,
                       makespan_rtol=makespan_rtol)


# --------------------------------------------------------------------------------------------------------------------
# Spot and checkpoint advisor
# --------------------------------------------------------------------------------------------------------------------

SPOT_MODEL = (
    "Preemptions arrive as a Poisson process (rate per hour of wall time). Checkpoints every Young/Daly interval "
    "tau = sqrt(2 * checkpoint_cost_s * MTBF) of work, none at the end; each preemption costs the restart plus about "
    "half an interval of lost work (half the job when no checkpoint is taken). First-order expected time: "
    "(compute + checkpoints) / (1 - rate * (restart + lost work)); spot is paid for all of it. The deadline risk is "
    "an upper bound: the chance of more preemptions than the slack allows, counted over the time the job would take "
    "with that many. On-demand: no preemptions, no checkpoints."
)

_SPOT_INPUTS = ("compute_time_s", "on_demand_price_per_hour_usd", "spot_price_per_hour_usd",
                "preemptions_per_hour", "checkpoint_cost_s", "restart_cost_s")


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
        vals[name] = _as_float_array(raw, name, n)
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
        D = _as_float_array(frame["deadline_s"].to_numpy(), "deadline_s", n)
    else:
        limit = _check_limit(deadline_s, "deadline_s")
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
    p_miss = np.where(work > D * (1 + _RTOL), 1.0, p_miss)
    p_miss = np.where(np.isnan(D), np.nan, p_miss)
    p_miss_od = np.where(np.isnan(D), np.nan, np.where(C > D * (1 + _RTOL), 1.0, 0.0))

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
            r = (f"preemptions every {_fmt_s(mtbf[i])} on average leave no time to make progress after a "
                 f"{_fmt_s(R[i])} restart and {_fmt_s(lost[i])} of lost work")
        elif risky[i]:
            r = (f"spot misses the {_fmt_s(D[i])} deadline with probability up to {p_miss[i]:.0%} "
                 f"(limit {max_miss_probability:.0%}); on-demand takes {_fmt_s(C[i])}")
        elif not cheaper[i]:
            r = (f"spot's expected {_fmt_usd(cost_spot[i])} (with checkpoints and rework, {_fmt_s(t_spot[i])}) is "
                 f"not below on-demand's {_fmt_usd(cost_od[i])}")
        else:
            r = (f"spot is expected to cost {_fmt_usd(cost_spot[i])} against {_fmt_usd(cost_od[i])} on-demand "
                 f"({saving:.0f}% less) and take {_fmt_s(t_spot[i])} instead of {_fmt_s(C[i])} "
                 f"({out['expected_preemptions'].iat[i]:.1f} preemptions expected)")
            if has_d[i]:
                r += f"; deadline risk up to {p_miss[i]:.1%}"
        if od_late[i]:
            r = f"neither option meets the {_fmt_s(D[i])} deadline (on-demand alone takes {_fmt_s(C[i])}); " + r
        reasons.append(r)
    out["reason"] = reasons
    return out


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
    row = pd.DataFrame({
        "compute_time_s": [compute_time_s], "on_demand_price_per_hour_usd": [on_demand_price_per_hour_usd],
        "spot_price_per_hour_usd": [spot_price_per_hour_usd], "preemptions_per_hour": [preemptions_per_hour],
        "checkpoint_cost_s": [checkpoint_cost_s], "restart_cost_s": [restart_cost_s],
    })
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
    df = pd.read_csv(path)
    required = ("cloud", "instance_type_or_product", "gpu_name", "gpu_count", "price_usd_per_hour",
                "spot_price_usd_per_hour")
    for name in required:
        if name not in df.columns:
            raise PlanningError(name, f"column is required in {Path(path).name}")
    for name in ("price_usd_per_hour", "spot_price_usd_per_hour", "gpu_count"):
        df[name] = pd.to_numeric(df[name], errors="coerce")
    prov = (df["provisioning"] if "provisioning" in df.columns else pd.Series("", index=df.index)).fillna("")
    df["_own_row_is_spot"] = prov.astype(str).str.strip().str.lower().eq("spot")
    key = ["cloud", "gpu_name", "gpu_count"]
    od_rows = df[~df["_own_row_is_spot"]].groupby(key)["price_usd_per_hour"].agg(["min", "max"])
    od_unique = od_rows["min"].where(od_rows["min"] == od_rows["max"]).rename("_paired_on_demand")
    out = df[df["spot_price_usd_per_hour"].notna()].merge(od_unique, left_on=key, right_index=True, how="left")
    out = out.reset_index(drop=True)
    out["on_demand_price_per_hour_usd"] = np.where(out["_own_row_is_spot"], out["_paired_on_demand"],
                                                   out["price_usd_per_hour"])
    out["spot_price_per_hour_usd"] = out["spot_price_usd_per_hour"]
    out["spot_to_on_demand_ratio"] = out["spot_price_per_hour_usd"] / out["on_demand_price_per_hour_usd"]
    return out.drop(columns=["_paired_on_demand", "_own_row_is_spot"])
