"""The shard planner (fedopt_core.planning.shards and its solvers): known cases, properties, free machines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedopt_core.planning import PlanningError, plan_for_task, plan_shards, transfer_time_s

RTOL = 1e-9
FAST = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def frame(rates, prices=None, counts=None, overheads=None, uppers=None, names=None) -> pd.DataFrame:
    n = len(rates)
    df = pd.DataFrame(
        {
            "platform": names or [f"p{i}" for i in range(n)],
            "seconds_per_unit": rates,
            "price_per_hour_usd": prices or [1.0] * n,
            "count": counts or [1] * n,
            "overhead_s": overheads or [0.0] * n,
        }
    )
    if uppers is not None:
        df["seconds_per_unit_upper"] = uppers
    return df


# ---------------------------------------------------------------------------------------------------------------
# Shard planner: known cases
# ---------------------------------------------------------------------------------------------------------------


def test_known_case_two_rates():
    plan = plan_shards(1200, frame([1.0, 3.0], names=["fast", "slow"]), objective="makespan")
    units = dict(zip(plan.shards["platform"], plan.shards["units"], strict=True))
    assert units == {"fast": 900, "slow": 300}
    assert plan.shards["finish_s"].tolist() == pytest.approx([900.0, 900.0])
    assert plan.totals["makespan_s"] == pytest.approx(900.0)
    assert plan.totals["units"] == 1200
    assert plan.feasible and plan.violations == []
    assert plan.best_single is not None
    assert plan.best_single.totals["makespan_s"] == pytest.approx(1200.0)
    assert plan.sharding_worth_it
    assert "25.0%" in plan.message


def test_to_frame_summarises_per_platform():
    plan = plan_shards(1000, frame([1.0, 2.0], counts=[2, 3], prices=[4.0, 1.0]))
    summary = plan.to_frame()
    assert summary["units"].sum() == 1000
    assert summary["units_share"].sum() == pytest.approx(1.0)
    assert summary["machines"].sum() == plan.totals["machines"] == len(plan.shards)
    assert summary["cost_usd"].sum() == pytest.approx(plan.totals["cost_usd"])
    assert summary.attrs["message"] == plan.message


def test_overhead_makes_sharding_not_worth_it():
    plan = plan_shards(1200, frame([1.0, 1.0], overheads=[0.0, 2000.0], names=["near", "far"]))
    assert plan.shards["platform"].unique().tolist() == ["near"]
    assert not plan.sharding_worth_it
    assert "far" in plan.message and "overhead" in plan.message


def test_budget_makes_sharding_not_worth_it():
    # Each machine pays $0.5 of overhead; the budget covers the compute plus one overhead only.
    df = frame([1.0, 1.0], prices=[3600.0, 3600.0], overheads=[0.5, 0.5])
    plan = plan_shards(100, df, budget_usd=100.5)
    assert plan.feasible
    assert plan.totals["machines"] == 1
    assert not plan.sharding_worth_it
    assert "budget" in plan.message


def test_small_gain_is_not_worth_it():
    plan = plan_shards(1000, frame([1.0, 100.0]), min_improvement=0.05)
    assert plan.totals["platforms"] == 2
    assert not plan.sharding_worth_it
    assert "only" in plan.message and "faster" in plan.message
    assert plan_shards(1000, frame([1.0, 100.0]), min_improvement=0.0).sharding_worth_it


def test_cost_objective_uses_cheapest_machine_without_deadline():
    df = frame([1.0, 2.0], prices=[10.0, 3.0], counts=[4, 4], overheads=[5.0, 5.0])
    plan = plan_shards(100, df, objective="cost")
    # per-unit cost: 10/3600 vs 6/3600 -> all on p1, one machine (every extra machine pays overhead)
    assert plan.shards["platform"].tolist() == ["p1"]
    assert plan.totals["cost_usd"] == pytest.approx(3.0 * (5.0 + 200.0) / 3600)


def test_cost_objective_with_deadline_adds_only_needed_machines():
    df = frame([1.0], prices=[3600.0], counts=[10], overheads=[10.0])
    plan = plan_shards(100, df, objective="cost", deadline_s=40.0)
    # each machine does at most 30 units by t=40 -> 4 machines; fewer would miss, more would cost overhead
    assert plan.totals["machines"] == 4
    assert plan.shards["finish_s"].max() <= 40.0
    assert sorted(plan.shards["units"].tolist()) == [25, 25, 25, 25]


def test_confident_plans_on_upper_bounds():
    df = frame([1.0, 1.0], uppers=[1.0, 3.0], names=["sure", "unsure"])
    confident = plan_shards(1200, df, confident=True)
    nominal = plan_shards(1200, df, confident=False)
    assert confident.planned_on == "upper" and nominal.planned_on == "nominal"
    units_c = dict(zip(confident.shards["platform"], confident.shards["units"], strict=True))
    units_n = dict(zip(nominal.shards["platform"], nominal.shards["units"], strict=True))
    assert units_n == {"sure": 600, "unsure": 600}
    assert units_c == {"sure": 900, "unsure": 300}
    assert confident.totals["makespan_upper_s"] == pytest.approx(900.0)
    assert confident.totals["makespan_s"] == pytest.approx(900.0)  # nominal finish of the busiest machine
    assert nominal.totals["makespan_upper_s"] == pytest.approx(1800.0)
    # A deadline that holds on the upper bounds only with the confident plan:
    sure = plan_shards(1200, df, deadline_s=1000, confident=True)
    hopeful = plan_shards(1200, df, deadline_s=1000, confident=False)
    assert sure.feasible and sure.totals["makespan_upper_s"] <= 1000
    assert hopeful.feasible and hopeful.totals["makespan_upper_s"] > 1000  # holds on nominal rates only


def test_deadline_checked_on_upper_bounds():
    df = frame([1.0], uppers=[2.0])
    plan = plan_shards(100, df, deadline_s=150)
    assert not plan.feasible  # nominal 100 s fits, upper 200 s does not
    assert plan.totals["makespan_s"] == pytest.approx(100.0)
    assert plan.violations[0].startswith("deadline_s")
    assert plan_shards(100, df, deadline_s=150, confident=False).feasible


def test_infeasible_deadline_returns_fastest_plan():
    df = frame([1.0, 3.0])
    plan = plan_shards(1200, df, deadline_s=500)
    assert not plan.feasible
    assert [v.split(":")[0] for v in plan.violations] == ["deadline_s"]
    assert plan.totals["makespan_s"] == pytest.approx(900.0)
    assert "deadline" in plan.message
    cost_plan = plan_shards(1200, df, objective="cost", deadline_s=500)
    assert not cost_plan.feasible
    assert cost_plan.totals["makespan_s"] == pytest.approx(900.0)


def test_infeasible_budget_returns_cheapest_plan():
    df = frame([1.0, 3.0], prices=[3600.0, 3600.0])
    plan = plan_shards(1200, df, budget_usd=1000.0)
    assert not plan.feasible
    assert [v.split(":")[0] for v in plan.violations] == ["budget_usd"]
    assert plan.totals["cost_usd"] == pytest.approx(1200.0)  # all on the cheapest-per-unit machine
    assert "budget" in plan.message


def test_budget_infeasible_keeps_deadline_when_possible():
    # Cheapest overall is one slow cheap machine (misses the deadline); the returned plan is the cheapest that meets it.
    df = frame([1.0, 10.0], prices=[36000.0, 360.0], names=["fast", "cheap"])
    plan = plan_shards(100, df, budget_usd=1.0, deadline_s=200.0)
    assert not plan.feasible
    assert [v.split(":")[0] for v in plan.violations] == ["budget_usd"]
    assert plan.totals["makespan_s"] <= 200.0


def test_does_not_modify_input():
    df = frame([1.0, 2.0], counts=[2, 2], uppers=[1.5, np.nan])
    before = df.copy()
    plan_shards(50, df, budget_usd=10.0, deadline_s=100.0)
    pd.testing.assert_frame_equal(df, before)


@pytest.mark.parametrize(
    ("kwargs", "df_change", "field"),
    [
        ({"work_units": 0}, None, "work_units"),
        ({"work_units": -5}, None, "work_units"),
        ({"work_units": float("nan")}, None, "work_units"),
        ({"work_units": 2.5}, None, "work_units"),
        ({"work_units": "many"}, None, "work_units"),
        ({}, ("seconds_per_unit", 0.0), "seconds_per_unit"),
        ({}, ("seconds_per_unit", -1.0), "seconds_per_unit"),
        ({}, ("seconds_per_unit", np.nan), "seconds_per_unit"),
        ({}, ("seconds_per_unit_upper", 0.5), "seconds_per_unit_upper"),
        ({}, ("price_per_hour_usd", np.nan), "price_per_hour_usd"),
        ({}, ("price_per_hour_usd", np.inf), "price_per_hour_usd"),
        ({}, ("price_per_hour_usd", -2.0), "price_per_hour_usd"),
        ({}, ("count", 0), "count"),
        ({}, ("count", 1.5), "count"),
        ({}, ("count", -1), "count"),
        ({}, ("overhead_s", -1.0), "overhead_s"),
        ({}, ("overhead_s", np.nan), "overhead_s"),
        ({"deadline_s": -10}, None, "deadline_s"),
        ({"deadline_s": float("nan")}, None, "deadline_s"),
        ({"budget_usd": -1}, None, "budget_usd"),
        ({"budget_usd": float("nan")}, None, "budget_usd"),
        ({"deadline_s": 0}, None, "deadline_s"),
        ({"objective": "speed"}, None, "objective"),
        ({}, ("drop", "count"), "count"),
        ({}, ("drop", "seconds_per_unit"), "seconds_per_unit"),
        ({}, ("platform", "p0"), "platform"),
    ],
)
def test_bad_input_names_the_field(kwargs, df_change, field):
    df = frame([1.0, 2.0], uppers=[1.0, 2.0])
    if df_change is not None:
        column, value = df_change
        if column == "drop":
            df = df.drop(columns=value)
        else:
            df[column] = df[column].astype(object)
            df.loc[1, column] = value
    args = {"work_units": 10, **kwargs}
    with pytest.raises(PlanningError) as err:
        plan_shards(args.pop("work_units"), df, **args)
    assert isinstance(err.value, ValueError)
    assert err.value.field == field
    assert str(err.value).startswith(field)
    if df_change is not None and df_change[0] not in ("drop", "platform"):
        assert "p1" in str(err.value)  # names the platform at fault


def test_empty_platforms_rejected():
    with pytest.raises(PlanningError) as err:
        plan_shards(10, frame([1.0]).iloc[0:0])
    assert err.value.field == "platforms"


# ---------------------------------------------------------------------------------------------------------------
# Shard planner: properties
# ---------------------------------------------------------------------------------------------------------------


@FAST
@given(
    k=st.integers(1, 6),
    count=st.integers(1, 3),
    rate=st.floats(0.01, 10),
    overhead=st.floats(0, 100),
    work=st.integers(1, 5000),
)
def test_identical_platforms_get_equal_shares(k, count, rate, overhead, work):
    df = frame([rate] * k, counts=[count] * k, overheads=[overhead] * k)
    plan = plan_shards(work, df)
    units = plan.shards["units"].to_numpy()
    assert units.sum() == work
    assert units.max() - units.min() <= 1
    if work >= k * count:
        assert len(units) == k * count  # every machine is used
    if work % (k * count) == 0:
        assert (units == work // (k * count)).all()


@FAST
@given(speeds=st.lists(st.integers(1, 5), min_size=1, max_size=5), counts=st.data(), t=st.integers(1, 60))
def test_makespan_plan_finishes_together_without_overheads(speeds, counts, t):
    # speed s units/second (rate 1/s) on c machines: W = t * sum(c * s) units can all finish at exactly t.
    cs = counts.draw(st.lists(st.integers(1, 3), min_size=len(speeds), max_size=len(speeds)))
    work = t * sum(c * s for c, s in zip(cs, speeds, strict=True))
    plan = plan_shards(work, frame([1.0 / s for s in speeds], counts=cs))
    assert plan.shards["finish_s"].to_numpy() == pytest.approx(np.full(len(plan.shards), float(t)))
    assert plan.totals["machines"] == sum(cs)


@FAST
@given(n=st.integers(1, 4), data=st.data())
def test_zero_overhead_finishes_within_one_unit(n, data):
    rates = data.draw(st.lists(st.floats(0.05, 20), min_size=n, max_size=n))
    work = data.draw(st.integers(1, 10_000))
    plan = plan_shards(work, frame(rates))
    finish = plan.shards["finish_s"].to_numpy()
    assert plan.totals["units"] == work
    # continuous optimum = work / sum(1/r); whole units cost at most one unit on the slowest used machine
    t_cont = work / sum(1.0 / r for r in rates)
    assert finish.max() >= t_cont * (1 - 1e-9)
    assert finish.max() <= t_cont + max(rates) + 1e-9
    assert finish.max() - finish.min() <= max(rates) * (1 + 1e-9)


platform_rows = st.tuples(
    st.floats(0.05, 5),  # seconds_per_unit
    st.one_of(st.none(), st.floats(1.0, 2.5)),  # upper / nominal
    st.floats(1.0, 200.0),  # price per hour
    st.integers(1, 3),  # count
    st.sampled_from([0.0, 0.5, 2.0, 10.0, 60.0]),  # overhead
)


def build(rows) -> pd.DataFrame:
    return frame(
        [r[0] for r in rows],
        prices=[r[2] for r in rows],
        counts=[r[3] for r in rows],
        overheads=[r[4] for r in rows],
        uppers=[r[0] * r[1] if r[1] is not None else np.nan for r in rows],
    )


@FAST
@given(
    rows=st.lists(platform_rows, min_size=1, max_size=4),
    work=st.integers(1, 400),
    objective=st.sampled_from(["makespan", "cost"]),
    deadline=st.one_of(st.none(), st.floats(1.0, 500.0)),
    budget=st.one_of(st.none(), st.floats(0.001, 5.0)),
)
def test_plan_never_breaks_deadline_or_budget_on_upper_bounds(rows, work, objective, deadline, budget):
    df = build(rows)
    plan = plan_shards(work, df, objective=objective, deadline_s=deadline, budget_usd=budget, confident=True)
    s = plan.shards
    assert s["units"].sum() == work and (s["units"] >= 1).all()
    upper = df.set_index("platform")["seconds_per_unit_upper"].fillna(df.set_index("platform")["seconds_per_unit"])
    price = df.set_index("platform")["price_per_hour_usd"]
    finish_upper = s["overhead_s"] + upper.loc[s["platform"]].to_numpy() * s["units"]
    cost_upper = (price.loc[s["platform"]].to_numpy() / 3600 * finish_upper).sum()
    assert s["finish_upper_s"].to_numpy() == pytest.approx(finish_upper.to_numpy())
    assert plan.totals["cost_upper_usd"] == pytest.approx(cost_upper)
    if plan.feasible:
        if deadline is not None:
            assert finish_upper.max() <= deadline * (1 + RTOL)
        if budget is not None:
            assert cost_upper <= budget * (1 + RTOL)
    else:
        assert plan.violations
        assert all(v.split(":")[0] in ("deadline_s", "budget_usd") for v in plan.violations)
        broken_deadline = deadline is not None and finish_upper.max() > deadline * (1 + RTOL)
        broken_budget = budget is not None and cost_upper > budget * (1 + RTOL)
        assert broken_deadline or broken_budget
    if plan.best_single is not None and plan.feasible:
        assert plan.objective_value <= plan.best_single.objective_value * (1 + RTOL)


@FAST
@given(
    rows=st.lists(platform_rows, min_size=2, max_size=4),
    work=st.integers(1, 300),
    objective=st.sampled_from(["makespan", "cost"]),
    drop=st.integers(0, 3),
    deadline=st.one_of(st.none(), st.floats(1.0, 300.0)),
    budget=st.one_of(st.none(), st.floats(0.001, 3.0)),
)
def test_removing_a_platform_never_improves_the_plan(rows, work, objective, drop, deadline, budget):
    df = build(rows)
    reduced_df = df.drop(index=drop % len(df)).reset_index(drop=True)
    # makespan_rtol=0: the budgeted makespan search must stop on its exact criterion
    full = plan_shards(work, df, objective=objective, deadline_s=deadline, budget_usd=budget, makespan_rtol=0)
    reduced = plan_shards(
        work, reduced_df, objective=objective, deadline_s=deadline, budget_usd=budget, makespan_rtol=0
    )
    if reduced.feasible:
        assert full.feasible
        assert full.objective_value <= reduced.objective_value * (1 + RTOL)


def brute_force(df: pd.DataFrame, work: int, deadline, budget, rate_col: str):
    """Every way to hand out whole units to the machines: (makespan, cost) of each."""
    machines = [
        (row[rate_col], row["price_per_hour_usd"], row["overhead_s"])
        for _, row in df.iterrows()
        for _ in range(int(row["count"]))
    ]
    out = []

    def compositions(total, parts):
        if parts == 1:
            yield (total,)
            return
        for first in range(total + 1):
            for rest in compositions(total - first, parts - 1):
                yield (first, *rest)

    for loads in compositions(work, len(machines)):
        busy = [(o + r * u, p / 3600 * (o + r * u)) for (r, p, o), u in zip(machines, loads, strict=True) if u > 0]
        makespan = max(b[0] for b in busy)
        cost = sum(b[1] for b in busy)
        out.append(
            (
                makespan,
                cost,
                (deadline is None or makespan <= deadline * (1 + RTOL))
                and (budget is None or cost <= budget * (1 + RTOL)),
            )
        )
    return out


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(platform_rows, min_size=1, max_size=3),
    work=st.integers(1, 7),
    objective=st.sampled_from(["makespan", "cost"]),
    deadline=st.one_of(st.none(), st.floats(0.5, 40.0)),
    budget=st.one_of(st.none(), st.floats(0.0005, 0.5)),
)
def test_plan_is_optimal_against_brute_force(rows, work, objective, deadline, budget):
    rows = rows[:3]
    df = build(rows)
    if df["count"].sum() > 4:
        df["count"] = 1
    df["seconds_per_unit_upper"] = df["seconds_per_unit_upper"].fillna(df["seconds_per_unit"])
    plan = plan_shards(
        work, df, objective=objective, deadline_s=deadline, budget_usd=budget, confident=True, makespan_rtol=0
    )
    options = brute_force(df, work, deadline, budget, "seconds_per_unit_upper")
    feasible = [o for o in options if o[2]]
    assert plan.feasible == bool(feasible)
    if feasible:
        best = min(o[0] if objective == "makespan" else o[1] for o in feasible)
        assert plan.objective_value == pytest.approx(best, rel=1e-7)
    else:
        # the closest plan: keeps the budget if any plan does (and is then the fastest such plan) ...
        within_budget = [o for o in options if budget is None or o[1] <= budget * (1 + RTOL)]
        if within_budget:
            assert plan.planned_cost_usd <= budget * (1 + RTOL) if budget is not None else True
            assert plan.planned_makespan_s == pytest.approx(min(o[0] for o in within_budget), rel=1e-7)
        else:  # ... else it is the cheapest plan meeting the deadline, or the cheapest of all
            on_time = [o for o in options if deadline is None or o[0] <= deadline * (1 + RTOL)]
            pool = on_time or options
            assert plan.planned_cost_usd == pytest.approx(min(o[1] for o in pool), rel=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# Shard planner: free machines (price 0: the group's own)
# ---------------------------------------------------------------------------------------------------------------


def test_cost_plan_puts_everything_on_free_machines_that_meet_the_deadline():
    df = frame([2.0, 1.0], prices=[0.0, 3.6], counts=[2, 4], names=["own", "cloud"])
    plan = plan_shards(100, df, objective="cost", deadline_s=100.0)
    assert plan.feasible
    assert plan.shards["platform"].unique().tolist() == ["own"]
    assert plan.totals["machines"] == 2  # 50 units x 2 s on each own machine: exactly the deadline
    assert plan.totals["cost_usd"] == 0.0 and plan.totals["cost_upper_usd"] == 0.0
    assert plan.to_frame()["cost_usd"].tolist() == [0.0]
    assert "$0.00" in plan.message
    unbounded = plan_shards(100, df, objective="cost")
    assert unbounded.totals["cost_usd"] == 0.0
    assert unbounded.totals["makespan_s"] == pytest.approx(100.0)  # the fastest of the free plans


def test_cost_plan_fills_free_machines_then_pays_for_the_rest():
    df = frame([2.0, 1.0], prices=[0.0, 3.6], counts=[2, 4], names=["own", "cloud"])
    plan = plan_shards(100, df, objective="cost", deadline_s=60.0)
    units = plan.shards.groupby("platform")["units"].sum().to_dict()
    assert plan.feasible
    assert units == {"own": 60, "cloud": 40}  # own machines do 30 units each by t = 60
    assert plan.totals["cost_usd"] == pytest.approx(3.6 / 3600 * 40 * 1.0)
    assert plan.totals["makespan_s"] <= 60.0


def test_free_machines_are_planned_by_makespan_and_a_zero_budget_keeps_to_them():
    df = frame([1.0, 1.0], prices=[0.0, 3.6], names=["own", "cloud"])
    fastest = plan_shards(100, df)
    assert set(fastest.shards["platform"]) == {"own", "cloud"}
    assert fastest.totals["makespan_s"] == pytest.approx(50.0)
    free = plan_shards(100, df, budget_usd=0)
    assert free.feasible and free.violations == []
    assert free.shards["platform"].tolist() == ["own"]
    assert free.totals["cost_usd"] == 0.0
    assert free.totals["makespan_s"] == pytest.approx(100.0)
    assert "paid platform" in free.message


def test_zero_budget_with_only_free_machines_is_feasible():
    df = frame([1.0, 3.0], prices=[0.0, 0.0], names=["fast", "slow"])
    for objective in ("makespan", "cost"):
        plan = plan_shards(1200, df, objective=objective, budget_usd=0.0)
        assert plan.feasible, plan.message
        assert plan.totals["cost_usd"] == 0.0
        assert plan.totals["makespan_s"] == pytest.approx(900.0)  # as test_known_case_two_rates, for free


def test_zero_budget_without_free_machines_is_infeasible_and_says_so():
    plan = plan_shards(100, frame([1.0, 2.0], prices=[3.6, 1.8]), budget_usd=0)
    assert not plan.feasible
    assert [v.split(":")[0] for v in plan.violations] == ["budget_usd"]
    assert plan.totals["cost_usd"] == pytest.approx(0.1)  # the cheapest plan: $1.8/h x 200 s on p1, or p0 alike
    assert "$0.00" in plan.message


@pytest.mark.parametrize("bad", [-0.01, -np.inf, np.inf, np.nan])
def test_a_bad_price_is_refused_naming_the_platform(bad):
    df = frame([1.0, 2.0], prices=[0.0, 1.0], names=["lab-dgx", "cloud-a100"])
    df.loc[1, "price_per_hour_usd"] = bad
    with pytest.raises(PlanningError) as err:
        plan_shards(10, df)
    assert err.value.field == "price_per_hour_usd"
    assert "cloud-a100" in str(err.value) and "lab-dgx" not in str(err.value)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(platform_rows, min_size=1, max_size=3),
    free=st.sets(st.integers(0, 2), min_size=1),
    work=st.integers(1, 7),
    objective=st.sampled_from(["makespan", "cost"]),
    deadline=st.one_of(st.none(), st.floats(0.5, 40.0)),
    budget=st.one_of(st.none(), st.just(0.0), st.floats(0.0005, 0.5)),
)
def test_plans_with_free_machines_are_optimal_against_brute_force(rows, free, work, objective, deadline, budget):
    df = build(rows)
    if df["count"].sum() > 4:
        df["count"] = 1
    df.loc[df.index.isin(free), "price_per_hour_usd"] = 0.0
    if not (df["price_per_hour_usd"] == 0).any():
        df.loc[0, "price_per_hour_usd"] = 0.0
    df["seconds_per_unit_upper"] = df["seconds_per_unit_upper"].fillna(df["seconds_per_unit"])
    plan = plan_shards(work, df, objective=objective, deadline_s=deadline, budget_usd=budget, makespan_rtol=0)
    options = brute_force(df, work, deadline, budget, "seconds_per_unit_upper")
    feasible = [o for o in options if o[2]]
    assert plan.feasible == bool(feasible)
    assert plan.totals["units"] == work
    if not feasible:
        return
    if objective == "makespan":
        assert plan.planned_makespan_s == pytest.approx(min(o[0] for o in feasible), rel=1e-7)
        return
    cheapest = min(o[1] for o in feasible)
    assert plan.planned_cost_usd == pytest.approx(cheapest, rel=1e-7)
    if cheapest == 0:  # free machines suffice: of the plans costing nothing, the fastest
        assert plan.planned_cost_usd == 0.0
        assert plan.planned_makespan_s == pytest.approx(min(o[0] for o in feasible if o[1] == 0), rel=1e-7)


# ---------------------------------------------------------------------------------------------------------------
# plan_for_task with a deterministic test double
# ---------------------------------------------------------------------------------------------------------------


class LinearPredictor:
    """Test double with a real (linear) model: time = seconds_per_unit[gpu] * work_units + fixed_s, +-20%."""

    def __init__(self, seconds_per_unit: dict[str, float], fixed_s: float) -> None:
        self.seconds_per_unit = seconds_per_unit
        self.fixed_s = fixed_s
        self.seen: pd.DataFrame | None = None

    def predict_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        self.seen = rows.copy()
        rate = rows["gpu_type"].map(self.seconds_per_unit).astype(float)
        t = rate * rows["work_units"].astype(float) + self.fixed_s
        return pd.DataFrame(
            {"predicted_time_s": t, "lower_s": 0.8 * t, "upper_s": 1.2 * t, "method": "linear"}, index=rows.index
        )


def test_plan_for_task_uses_predictions_and_transfer():
    platforms = pd.DataFrame(
        {
            "platform": ["lambda-a100", "nebius-h100"],
            "provider": ["lambda", "nebius"],
            "gpu_type": ["A100", "H100"],
            "network_speed_mbps": [np.nan, 800.0],
            "price_per_hour_usd": [1.3, 2.95],
            "count": [2, 1],
        }
    )
    task = {
        "task_type": "training",
        "workload": "resnet50",
        "input_size_mb": 2000.0,
        "output_size_mb": 500.0,
        "work_units": 1,
    }
    predictor = LinearPredictor({"A100": 0.02, "H100": 0.01}, fixed_s=100.0)
    work = 100_000
    plan = plan_for_task(task, platforms, predictor, work, startup_s=120.0)
    # the predictor saw task fields, platform fields and the total work
    assert (predictor.seen["work_units"] == work).all()
    assert (predictor.seen["workload"] == "resnet50").all()
    assert predictor.seen["gpu_type"].tolist() == ["A100", "H100"]
    transfer = transfer_time_s([2000.0, 2000.0], [500.0, 500.0], [np.nan, 800.0], ["lambda", "nebius"])
    expected_overhead = dict(zip(platforms["platform"], 120.0 + transfer, strict=True))
    for _, shard in plan.shards.iterrows():
        assert shard["overhead_s"] == pytest.approx(expected_overhead[shard["platform"]])
        rate = {"lambda-a100": 0.02, "nebius-h100": 0.01}[shard["platform"]] + 100.0 / work
        assert shard["finish_s"] == pytest.approx(shard["overhead_s"] + rate * shard["units"])
        assert shard["finish_upper_s"] == pytest.approx(shard["overhead_s"] + 1.2 * rate * shard["units"])
    assert plan.planned_on == "upper"
    assert plan.totals["units"] == work
    # the same plan as calling plan_shards directly with those rates
    direct = plan_shards(
        work,
        pd.DataFrame(
            {
                "platform": platforms["platform"],
                "seconds_per_unit": [0.02 + 100.0 / work, 0.01 + 100.0 / work],
                "seconds_per_unit_upper": [1.2 * (0.02 + 100.0 / work), 1.2 * (0.01 + 100.0 / work)],
                "price_per_hour_usd": platforms["price_per_hour_usd"],
                "count": platforms["count"],
                "overhead_s": 120.0 + transfer,
            }
        ),
    )
    assert plan.totals == pytest.approx(direct.totals)


def test_plan_for_task_custom_count_column_and_missing_prediction():
    platforms = pd.DataFrame(
        {"platform": ["x", "y"], "gpu_type": ["A100", "T4"], "price_per_hour_usd": [1.0, 0.5], "available": [1, 1]}
    )
    predictor = LinearPredictor({"A100": 0.02}, fixed_s=0.0)  # knows nothing about T4 -> NaN
    with pytest.raises(PlanningError) as err:
        plan_for_task({}, platforms, predictor, 1000, count_column="available")
    assert err.value.field == "seconds_per_unit" and "y" in str(err.value)
    with pytest.raises(PlanningError) as err:
        plan_for_task({}, platforms, predictor, 1000)
    assert err.value.field == "count"


def test_plan_for_task_plans_the_groups_own_machines_at_no_cost():
    platforms = pd.DataFrame(
        {
            "platform": ["lab-a100", "cloud-h100"],
            "gpu_type": ["A100", "H100"],
            "provider": ["on-prem", "lambda"],
            "price_per_hour_usd": [0.0, 3.0],
            "count": [2, 1],
        }
    )
    predictor = LinearPredictor({"A100": 0.02, "H100": 0.01}, fixed_s=0.0)
    plan = plan_for_task({"workload": "resnet50"}, platforms, predictor, 10_000, objective="cost", startup_s=0.0)
    assert plan.feasible
    assert plan.shards["platform"].unique().tolist() == ["lab-a100"]
    assert plan.totals["cost_usd"] == 0.0 and plan.totals["machines"] == 2


def test_a_machine_count_past_the_cap_is_refused_before_anything_is_allocated() -> None:
    import tracemalloc

    from fedopt_core.planning.shard_solver import MAX_MACHINES_PER_PLATFORM

    df = frame([1.0, 2.0], counts=[10_000_000, 1])
    tracemalloc.start()
    try:
        with pytest.raises(PlanningError, match="count") as info:
            plan_shards(10_000_000, df)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"{MAX_MACHINES_PER_PLATFORM:,}" in str(info.value) and peak < 50e6
    at_cap = plan_shards(1_000_000, frame([1.0], counts=[MAX_MACHINES_PER_PLATFORM]))
    assert at_cap.totals["machines"] == MAX_MACHINES_PER_PLATFORM
