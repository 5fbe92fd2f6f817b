"""The shard planner: split a divisible job over machines of several platforms, fastest or cheapest.

:func:`plan_shards` splits ``work_units`` independent units of work over machines of several
platforms, minimising the makespan or the cost under an optional deadline and budget;
:func:`plan_for_task` fills the per-unit rates from a predictor.  Pure logic over plain values and
DataFrames (no UI, no database); units: seconds and USD.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from fedopt_core import formatting, schema
from fedopt_core.errors import PlanningError
from fedopt_core.planning.movement import data_movement_s
from fedopt_core.planning.ranking import Predictor
from fedopt_core.planning.shard_solver import (
    Allocation,
    CostOracle,
    Platforms,
    best_single_index,
    cost_of,
    free_only,
    makespan_of,
    prepare_platforms,
    search_makespan_within_budget,
    water_fill,
)
from fedopt_core.planning.values import RTOL, as_float_array, check_limit

__all__ = ["DEFAULT_STARTUP_S", "ShardPlan", "plan_for_task", "plan_shards"]


# Per-shard start-up: provisioning an instance, booting it and preparing the software environment. An assumption
# (GPU cloud instances typically take a few minutes to become usable); data transfer is added on top of it.
DEFAULT_STARTUP_S: float = 300.0

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
            out = pd.DataFrame(
                columns=[
                    "platform",
                    "machines",
                    "units",
                    "units_share",
                    "overhead_s",
                    "finish_s",
                    "finish_upper_s",
                    "cost_usd",
                    "cost_upper_usd",
                ]
            )
        else:
            out = (
                s.groupby("platform", sort=False)
                .agg(
                    machines=("machine", "size"),
                    units=("units", "sum"),
                    overhead_s=("overhead_s", "first"),
                    finish_s=("finish_s", "max"),
                    finish_upper_s=("finish_upper_s", "max"),
                    cost_usd=("cost_usd", "sum"),
                    cost_upper_usd=("cost_upper_usd", "sum"),
                )
                .reset_index()
            )
            out.insert(3, "units_share", out["units"] / float(self.totals["units"]))
        out.attrs.update(
            totals=dict(self.totals),
            message=self.message,
            feasible=self.feasible,
            violations=list(self.violations),
            planned_on=self.planned_on,
            objective=self.objective,
            sharding_worth_it=self.sharding_worth_it,
            method=self.method,
        )
        return out


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


def _build_plan(P: Platforms, a: Allocation, W: int, objective: str, confident: bool, method: str) -> ShardPlan:
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
    shards = pd.DataFrame(
        {
            "platform": P.name[plat],
            "machine": machine.astype(np.int64),
            "units": units.astype(np.int64),
            "start_s": 0.0,
            "overhead_s": o,
            "finish_s": finish,
            "finish_upper_s": finish_upper,
            "cost_usd": usd_per_s * finish,
            "cost_upper_usd": usd_per_s * finish_upper,
        }
    )
    totals = {
        "units": int(units.sum()),
        "machines": int(plat.size),
        "platforms": int(used.size),
        "makespan_s": float(finish.max()) if plat.size else math.inf,
        "makespan_upper_s": float(finish_upper.max()) if plat.size else math.inf,
        "cost_usd": float(shards["cost_usd"].sum()),
        "cost_upper_usd": float(shards["cost_upper_usd"].sum()),
    }
    planned_on = "upper" if confident and P.has_upper else "nominal"
    return ShardPlan(
        shards=shards,
        totals=totals,
        objective=objective,
        planned_on=planned_on,
        method=method,
        proven_optimal=a.optimal,
    )


def _check_constraints(plan: ShardPlan, deadline: float | None, budget: float | None) -> list[str]:
    basis = " (on upper-bound rates)" if plan.planned_on == "upper" else ""
    out = []
    if deadline is not None and plan.planned_makespan_s > deadline * (1 + RTOL):
        out.append(
            f"deadline_s: the plan takes {formatting.duration(plan.planned_makespan_s)}{basis}, "
            f"over the deadline of {formatting.duration(deadline)}"
        )
    if budget is not None and plan.planned_cost_usd > budget * (1 + RTOL):
        out.append(
            f"budget_usd: the plan costs {formatting.usd(plan.planned_cost_usd)}{basis}, "
            f"over the budget of {formatting.usd(budget)}"
        )
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
    machine; 0 for the group's own machines), ``count`` (machines available) and optional ``overhead_s`` (start-up
    plus data transfer, paid once by every machine that gets work; default 0). Machines start together at t = 0 and
    are paid (per second) from start until their own shard is done; a machine given no units is not started and
    costs nothing.

    * ``objective="makespan"``: finish as early as possible, within ``budget_usd`` if given.
    * ``objective="cost"``: spend as little as possible, finishing by ``deadline_s`` if given; when free machines
      alone can do that, the fastest plan on them.

    A ``budget_usd`` of 0 allows only free machines (price 0).

    With ``confident=True`` the plan is made, and deadline and budget are checked, on the upper-bound rates (where
    given), so they hold with the interval's confidence; nominal and upper finish times are both reported.

    Method (exact, whole units, see the helpers for the arguments):
      - makespan without a budget: closed-form water-filling (:func:`water_fill`), O(n log n);
      - cost: one MILP (:class:`CostOracle`, HiGHS via ``scipy.optimize.milp``) with the deadline as capacity;
      - makespan with a budget: water-filling if the cheapest plan at that makespan fits, else a bracketing search
        on the makespan over the MILP (:func:`fastest_within_budget`), optimal to within ``makespan_rtol``
        (relative; exact when no unit boundary falls inside the final bracket).
    Units are whole throughout (see :class:`CostOracle` for why the MILP's units come out whole): within a platform,
    machines differ by at most one unit, and every constraint is checked on the final whole-unit plan.
    ``time_limit_s`` bounds each MILP; a plan not proven optimal in time says so in ``proven_optimal``.

    Bad input (non-positive or NaN work, rates, counts; negative, NaN or infinite prices; negative overhead; bad
    deadline or budget; unknown objective) raises :class:`PlanningError` naming the field. A deadline or budget that
    no plan can meet does not raise: the returned plan has ``feasible=False``, ``violations`` naming the
    constraint(s), and is the plan that comes closest -- the budget is kept if any plan can keep it (then it is the
    fastest such plan, which misses the deadline by the least); otherwise it is the cheapest plan that meets the
    deadline, or the cheapest plan overall.

    ``best_single`` is the best plan using one platform only (possibly several of its machines), under the same
    objective and constraints (None if no single platform meets them). ``sharding_worth_it`` is True when the plan
    uses more than one platform and beats ``best_single`` by at least ``min_improvement`` (relative), or when no
    single platform meets the constraints at all.
    """
    if objective not in ("makespan", "cost"):
        raise PlanningError("objective", f"must be 'makespan' or 'cost', got {objective!r}")
    W = _check_work_units(work_units)
    deadline = check_limit(deadline_s, "deadline_s")
    budget = check_limit(budget_usd, "budget_usd", zero_ok=True)  # 0: only the group's free machines
    for name, value in (
        ("min_improvement", min_improvement),
        ("makespan_rtol", makespan_rtol),
        ("time_limit_s", time_limit_s),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0 and math.isfinite(value)):
            raise PlanningError(name, f"must be a finite number >= 0, got {value!r}")
    P = prepare_platforms(platforms, confident)
    oracle = CostOracle(P, W, time_limit_s)

    alloc, method, context = _solve(P, W, objective, deadline, budget, oracle, makespan_rtol)
    plan = _build_plan(P, alloc, W, objective, confident, method)
    plan.violations = _check_constraints(plan, deadline, budget)
    plan.feasible = not plan.violations

    idx, m_single = best_single_index(P, W, objective, deadline, budget)
    if idx is not None:
        machines = np.zeros_like(P.count)
        units = np.zeros_like(P.count)
        machines[idx], units[idx] = min(int(m_single[idx]), W), W
        single = _build_plan(P, Allocation(machines, units), W, objective, confident, "single platform (closed form)")
        single.message = f"all {W:,} units on {P.name[idx]} ({machines[idx]} machine(s))"
        plan.best_single = single
    plan.sharding_worth_it, plan.message = _explain(plan, P, objective, deadline, budget, min_improvement, context)
    return plan


def _solve(
    P: Platforms,
    W: int,
    objective: str,
    deadline: float | None,
    budget: float | None,
    oracle: CostOracle,
    makespan_rtol: float,
) -> tuple[Allocation, str, list[str]]:
    """The optimal allocation, or the closest one when no plan meets every constraint (see plan_shards)."""

    def fits(a: Allocation) -> bool:
        return budget is None or cost_of(P, a) <= budget * (1 + RTOL)

    def on_time(a: Allocation) -> bool:
        return deadline is None or makespan_of(P, a) <= deadline * (1 + RTOL)

    fastest = water_fill(P, W)

    def fastest_within_budget() -> tuple[Allocation | None, str]:
        if fits(fastest):
            return fastest, "water-filling (exact)"
        if budget == 0:  # exactly the plans on free machines fit; the search below would crawl along cost 0
            free = free_only(P, W)
            return (free, "water-filling over free machines (exact)") if free is not None else (None, "")
        at_fastest = oracle(makespan_of(P, fastest))  # a cheaper plan may reach the same makespan
        if at_fastest is not None and fits(at_fastest):
            return at_fastest, "water-filling + MILP"
        cheapest = oracle(math.inf)
        assert cheapest is not None  # one machine can always do all the work eventually
        if not fits(cheapest):
            return None, ""
        assert budget is not None  # fits() is only False under a budget
        plan = search_makespan_within_budget(oracle, budget, fastest, at_fastest, cheapest, makespan_rtol)
        return plan, f"MILP + search on makespan ({oracle.calls} MILPs)"

    meets: Allocation | None = None
    if objective == "cost":
        meets = oracle(math.inf if deadline is None else deadline)
        if meets is not None and fits(meets):
            if cost_of(P, meets) == 0:
                # Free machines can do it all by the deadline: every such plan costs nothing, so take the fastest
                # of them rather than whichever split the MILP happened to return.
                free = free_only(P, W)
                assert free is not None  # a plan costing 0 uses free platforms only
                return free, "water-filling over free machines (exact)", []
            return meets, "MILP (exact)", []
    alloc, method = fastest_within_budget()
    if alloc is not None:
        if on_time(alloc):
            return alloc, method, []
        assert deadline is not None  # only a deadline can make a plan late
        within = " within the budget" if budget is not None and not fits(fastest) else ""
        note = f" (without the budget: {formatting.duration(makespan_of(P, fastest))})" if within else ""
        return (
            alloc,
            method + "; closest plan: fastest",
            [
                f"no plan{within} meets the deadline of {formatting.duration(deadline)}: the fastest{within} takes "
                f"{formatting.duration(makespan_of(P, alloc))}{note}"
            ],
        )
    # No plan fits the budget: the cheapest plan meeting the deadline, else the cheapest plan of all.
    assert budget is not None
    if objective == "makespan" and deadline is not None:
        meets = oracle(deadline)
    alloc = meets if meets is not None else oracle(math.inf)
    assert alloc is not None
    return (
        alloc,
        "MILP; closest plan: cheapest",
        [
            f"no plan fits the budget of {formatting.usd(budget)}: "
            f"the cheapest{' meeting the deadline' if meets is not None and deadline is not None else ''} costs "
            f"{formatting.usd(cost_of(P, alloc))}"
        ],
    )


def _explain(
    plan: ShardPlan,
    P: Platforms,
    objective: str,
    deadline: float | None,
    budget: float | None,
    min_improvement: float,
    context: list[str],
) -> tuple[bool, str]:
    t, usd = plan.planned_makespan_s, plan.planned_cost_usd
    basis = " on upper-bound rates" if plan.planned_on == "upper" else ""
    summary = (
        f"{plan.totals['units']:,} units on {plan.totals['machines']} machine(s) of "
        f"{plan.totals['platforms']} platform(s): {formatting.duration(t)}, {formatting.usd(usd)}{basis}"
    )
    if not plan.feasible:
        why = "; ".join(context) if context else "; ".join(plan.violations)
        return False, f"Infeasible: {why}. Closest plan: {summary}."
    single = plan.best_single
    if single is None:
        limits = " and ".join(name for name, v in (("deadline", deadline), ("budget", budget)) if v is not None)
        return True, f"No single platform meets the {limits}; sharding does: {summary}."
    s_val, val = single.objective_value, plan.objective_value
    gain = (s_val - val) / s_val if s_val > 0 else 0.0
    single_txt = (
        f"{single.message}: {formatting.duration(single.planned_makespan_s)}, {formatting.usd(single.planned_cost_usd)}"
    )
    if plan.totals["platforms"] <= 1:
        used = plan.shards["platform"].iloc[0]
        unused = ~np.isin(P.name, plan.shards["platform"].unique())
        if objective == "makespan":
            slow_start = unused & (P.overhead + P.rate >= t * (1 - RTOL))
            if budget == 0 and not (unused & (P.price == 0)).any():
                reason = (
                    f"a budget of {formatting.usd(0)} rules out every paid platform, and {used} is the only free one"
                )
            elif budget is not None and budget > 0 and usd >= budget * (1 - 1e-6):
                reason = f"the budget of {formatting.usd(budget)} is used up by {used} alone"
            elif slow_start.any():
                k = int(np.flatnonzero(slow_start)[np.argmax(P.overhead[slow_start])])
                reason = (
                    f"the other platforms could not finish even one unit sooner: e.g. {P.name[k]} needs "
                    f"{formatting.duration(P.overhead[k])} of start-up and transfer overhead"
                )
            else:
                reason = "no other platform would make it finish sooner"
        else:
            reason = (
                f"every extra machine pays its start-up and transfer overhead, and {used} is the cheapest way to "
                f"do the work{' by the deadline' if deadline is not None else ''}"
            )
        return False, f"Sharding across platforms is not worth it: {reason}. Plan: {summary}."
    pct = f"{100 * gain:.1f}% {'faster' if objective == 'makespan' else 'cheaper'}"
    if gain < min_improvement:
        return False, (
            f"Sharding over {plan.totals['platforms']} platforms is only {pct} than the best single "
            f"platform ({single_txt}), below the {100 * min_improvement:.0f}% worth the extra "
            f"coordination. Sharded plan: {summary}."
        )
    return True, (f"Sharding is worth it: {summary}, {pct} than the best single platform ({single_txt}).")


def plan_for_task(
    task: Mapping[str, Any],
    platforms: pd.DataFrame,
    predictor: Predictor,
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
    row is joined with ``task`` (:func:`fedopt_core.schema.task_on_platforms`: the platform owns its own fields)
    with ``work_units`` set to the total, and ``predictor.predict_frame(rows)`` gives ``predicted_time_s`` and
    ``upper_s`` for the whole job; the rates are those divided by ``work_units`` (so any fixed cost inside the
    prediction is spread per unit). The per-shard overhead is ``startup_s`` plus
    :func:`~fedopt_core.planning.movement.data_movement_s` of the task's ``input_size_mb`` and ``output_size_mb``
    -- conservatively, every shard moves the whole task's data.
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
    rows = schema.task_on_platforms({**task, "work_units": float(W)}, platforms)
    pred = predictor.predict_frame(rows)
    for name in ("predicted_time_s", "upper_s"):
        if name not in pred.columns:
            raise PlanningError(name, "column missing from predictor.predict_frame output")
    if len(pred) != len(rows):
        raise PlanningError("predicted_time_s", f"predictor returned {len(pred)} rows for {len(rows)} platforms")
    predicted = as_float_array(pred["predicted_time_s"].to_numpy(), "predicted_time_s", len(rows))
    upper = as_float_array(pred["upper_s"].to_numpy(), "upper_s", len(rows))
    transfer = data_movement_s(task, rows)
    frame = pd.DataFrame(
        {
            "platform": rows["platform"].to_numpy(),
            "seconds_per_unit": predicted / W,
            "seconds_per_unit_upper": upper / W,
            "price_per_hour_usd": rows["price_per_hour_usd"].to_numpy(),
            "count": rows[count_column].to_numpy(),
            "overhead_s": startup + transfer,
        }
    )
    return plan_shards(
        W,
        frame,
        objective=objective,
        deadline_s=deadline_s,
        budget_usd=budget_usd,
        confident=confident,
        min_improvement=min_improvement,
        time_limit_s=time_limit_s,
        makespan_rtol=makespan_rtol,
    )
