"""The exact solvers behind the shard planner: water-filling, the cost MILP, the budget search.

Each works on :class:`Platforms` (validated per-platform rates, prices, counts and overheads) and
returns an :class:`Allocation` (machines and whole units per platform); :mod:`.shards` turns it
into a plan.  The arguments for exactness are in each function's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from fedopt_core.errors import PlanningError
from fedopt_core.planning.values import RTOL, as_float_array


@dataclass
class Platforms:
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

    def subset(self, idx: np.ndarray) -> Platforms:
        return Platforms(
            *(
                getattr(self, f)[idx]
                for f in ("name", "rate_nominal", "rate_upper", "rate", "price", "count", "overhead")
            ),
            has_upper=self.has_upper,
        )


@dataclass
class Allocation:
    machines: np.ndarray  # used machines per platform (int)
    units: np.ndarray  # units per platform (int)
    optimal: bool = True


#: Machines of one platform a plan may use.  A plan lists each machine, so its size (and the
#: planner's memory) grows with this; 10,000 is far beyond any lab's quota.
MAX_MACHINES_PER_PLATFORM = 10_000


def _column(platforms: pd.DataFrame, name: str, required: bool = True, default: float = np.nan) -> np.ndarray:
    if name not in platforms.columns:
        if required:
            raise PlanningError(name, "column is required in platforms")
        return np.full(len(platforms), default)
    return as_float_array(platforms[name].to_numpy(), name, len(platforms))


def _fail_rows(name: str, bad: np.ndarray, names: np.ndarray, values: np.ndarray, rule: str) -> None:
    if bad.any():
        shown = ", ".join(f"{p} ({v!r})" for p, v in zip(names[bad][:5], values[bad][:5], strict=True))
        raise PlanningError(name, f"must be {rule}; bad for platform(s) {shown}")


def prepare_platforms(platforms: pd.DataFrame, confident: bool) -> Platforms:
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
    _fail_rows(
        "seconds_per_unit_upper",
        ~np.isnan(upper) & ~(np.isfinite(upper) & (upper >= rate)),
        names,
        upper,
        "empty or a finite number >= seconds_per_unit",
    )
    price = _column(platforms, "price_per_hour_usd")
    # 0 is a real price: the group's own machines cost nothing per hour.
    _fail_rows("price_per_hour_usd", ~(np.isfinite(price) & (price >= 0)), names, price, "a finite number >= 0")
    count = _column(platforms, "count")
    _fail_rows(
        "count",
        ~(np.isfinite(count) & (count >= 1) & (count == np.floor(count)) & (count <= MAX_MACHINES_PER_PLATFORM)),
        names,
        count,
        f"a whole number from 1 to {MAX_MACHINES_PER_PLATFORM:,}",
    )
    overhead = _column(platforms, "overhead_s", required=False, default=0.0)
    _fail_rows("overhead_s", ~(np.isfinite(overhead) & (overhead >= 0)), names, overhead, "a finite number >= 0")
    rate_upper = np.where(np.isnan(upper), rate, upper)
    has_upper = bool((~np.isnan(upper)).any())
    return Platforms(
        name=names,
        rate_nominal=rate,
        rate_upper=rate_upper,
        rate=rate_upper if confident else rate,
        price=price,
        count=count.astype(np.int64),
        overhead=overhead,
        has_upper=has_upper,
    )


def units_within(T: float, P: Platforms, W: int) -> np.ndarray:
    """Most whole units one machine of each platform can finish by time T (0 if it cannot start)."""
    if math.isinf(T):
        return np.full(P.rate.size, W, dtype=np.int64)
    x = np.maximum(T - P.overhead, 0.0) / P.rate
    return np.minimum(np.floor(x * (1 + RTOL) + RTOL), W).astype(np.int64)


def makespan_of(P: Platforms, a: Allocation, rate: np.ndarray | None = None) -> float:
    used = a.machines > 0
    if not used.any():
        return math.inf
    r = P.rate if rate is None else rate
    per_machine = -(-a.units[used] // a.machines[used])  # ceil: the busiest machine of the platform
    return float(np.max(P.overhead[used] + r[used] * per_machine))


def cost_of(P: Platforms, a: Allocation, rate: np.ndarray | None = None) -> float:
    r = P.rate if rate is None else rate
    return float(np.sum(P.price / 3600.0 * (a.machines * P.overhead + r * a.units)))


def water_fill(P: Platforms, W: int) -> Allocation:
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
        return int(np.sum(P.count * units_within(T, P, W)))

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
    per_machine = units_within(hi, P, W)
    surplus = int(np.sum(P.count * per_machine)) - W
    finish = np.where(per_machine > 0, P.overhead + P.rate * per_machine, -np.inf)
    by_finish = np.argsort(-finish, kind="stable")
    before = np.cumsum(P.count[by_finish]) - P.count[by_finish]
    take = np.zeros_like(P.count)
    take[by_finish] = np.clip(surplus - before, 0, P.count[by_finish])  # one unit off each of `take` machines
    units = P.count * per_machine - take
    machines = np.where(per_machine >= 2, P.count, np.where(per_machine == 1, P.count - take, 0))
    return Allocation(machines=machines.astype(np.int64), units=units.astype(np.int64))


def whole_units(units: np.ndarray, capacity: np.ndarray, per_unit_usd: np.ndarray, W: int) -> np.ndarray:
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
class CostOracle:
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
    on 1,000 platforms.) Float noise is removed by :func:`whole_units`, which keeps every capacity.
    """

    P: Platforms
    W: int
    time_limit_s: float
    calls: int = 0

    def __call__(self, T: float) -> Allocation | None:
        P, W = self.P, self.W
        self.calls += 1
        cap = units_within(T, P, W)
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
        A = sparse.vstack(
            [
                sparse.hstack([sparse.csr_matrix((1, n)), sparse.csr_matrix(np.ones((1, n)))]),
                sparse.hstack([-sparse.diags(cap[idx].astype(float)), eye]),  # U - k m <= 0
                sparse.hstack([eye, -eye]),  # m - U <= 0
            ]
        ).tocsr()
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
        u_sub = whole_units(res.x[n:], cap[idx] * m_sub, v, W)
        machines = np.zeros(P.rate.size, dtype=np.int64)
        units = np.zeros(P.rate.size, dtype=np.int64)
        machines[idx], units[idx] = np.minimum(m_sub, u_sub), u_sub
        # Machines without overhead cost nothing extra: spread their units over as many as are available.
        free = (P.fixed_usd == 0) & (units > 0)
        machines[free] = np.minimum(P.count[free], units[free])
        return Allocation(machines=machines, units=units, optimal=res.status == 0)


def free_only(P: Platforms, W: int) -> Allocation | None:
    """Fastest plan on the free platforms (price 0) alone -- the only plans that cost nothing; None without any."""
    idx = np.flatnonzero(P.price == 0)
    if idx.size == 0:
        return None
    sub = water_fill(P.subset(idx), W)
    machines, units = np.zeros_like(P.count), np.zeros_like(P.count)
    machines[idx], units[idx] = sub.machines, sub.units
    return Allocation(machines=machines, units=units)


def search_makespan_within_budget(
    oracle: CostOracle,
    budget: float,
    fastest: Allocation,
    at_fastest: Allocation | None,
    cheapest: Allocation,
    rtol: float,
) -> Allocation:
    """Smallest makespan whose cheapest plan fits the budget: a bracketing search on T over the MILP oracle.

    The cheapest plan finishing by T gets no dearer as T grows, so {T : it fits the budget} is an interval [T*, inf).
    The bracket [lo, hi] always has lo too fast for the budget and hi a plan within it; each probe is placed by
    regula falsi on (T, cost - budget) with the Illinois correction, falling back to bisection when the bracket
    shrinks slowly. A probe within budget moves hi down to its plan's actual makespan (a unit boundary). The search
    stops when no platform's per-machine capacity changes strictly inside (lo, hi) -- then hi is exactly T*, since
    the oracle's answer is the same all over the gap -- or when hi - lo <= rtol * hi.
    """
    P, W = oracle.P, oracle.W
    lo, hi, best = makespan_of(P, fastest), makespan_of(P, cheapest), cheapest
    f_lo = (cost_of(P, at_fastest) if at_fastest is not None else math.inf) - budget
    f_hi = cost_of(P, cheapest) - budget
    optimal, side, width_before = cheapest.optimal, 0, hi - lo
    for step in range(200):
        below_hi = np.minimum(np.ceil((np.maximum(hi - P.overhead, 0.0) / P.rate) * (1 - RTOL) - RTOL) - 1, W)
        if np.all(below_hi <= units_within(lo, P, W)) or hi - lo <= rtol * hi:
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
        if plan is not None and cost_of(P, plan) <= budget * (1 + RTOL):
            best, hi, f_hi = plan, min(makespan_of(P, plan), mid), cost_of(P, plan) - budget
            f_lo = f_lo / 2 if side == 1 else f_lo  # Illinois: the other end stuck twice -> halve its weight
            side = 1
        else:
            lo, f_lo = mid, (cost_of(P, plan) if plan is not None else math.inf) - budget
            f_hi = f_hi / 2 if side == -1 else f_hi
            side = -1
    best.optimal = optimal
    return best


def best_single_index(
    P: Platforms, W: int, objective: str, deadline: float | None, budget: float | None
) -> tuple[int | None, np.ndarray]:
    """Best one-platform plan (closed form, vectorised over platforms): index and machines per platform."""
    f, v, c = P.fixed_usd, P.per_unit_usd, P.count
    if objective == "makespan":
        # More machines are never slower; the budget caps how many overheads can be paid.
        m = np.minimum(c, W).astype(float)
        if budget is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                afford = np.where(f > 0, np.floor((budget * (1 + RTOL) - v * W) / f), np.inf)
            m = np.minimum(m, afford)
    else:
        cap = units_within(math.inf if deadline is None else deadline, P, W).astype(float)
        with np.errstate(divide="ignore"):
            m = np.where(cap >= 1, np.ceil(W / cap), np.inf)
        m = np.where(f == 0, np.minimum(c, W), m)  # free machines: use them all
        m = np.where(m <= c, m, np.nan)
    ok = np.isfinite(m) & (m >= 1)
    m = np.where(ok, m, 1).astype(np.int64)
    T = P.overhead + P.rate * -(-W // m)
    cost = m * f + v * W
    if deadline is not None:
        ok &= deadline * (1 + RTOL) >= T
    if budget is not None:
        ok &= cost <= budget * (1 + RTOL)
    if not ok.any():
        return None, m
    primary, secondary = (T, cost) if objective == "makespan" else (cost, T)
    cand = np.flatnonzero(ok)
    best = cand[np.lexsort((secondary[cand], primary[cand]))[0]]
    return int(best), m
