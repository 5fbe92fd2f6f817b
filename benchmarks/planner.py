"""How long does one shard plan over 1,000 platforms take?

Random (seeded) platforms: rates log-uniform in [0.5, 50] ms per unit with upper bounds 1.1-1.5x, prices $0.5-30/h,
1-8 machines each, 1-15 min of overhead per shard; 10 million units. For each planning mode, times one plan on
1,000 platforms and, as baselines in the same run, the same plan on 10 platforms and the closed-form best
single-platform search on the same 1,000 platforms; prints wall times and ratios.

Run: .venv/bin/python benchmarks/planner.py [--platforms 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from fedopt_core.planning import plan_shards
from fedopt_core.planning.shard_solver import best_single_index, prepare_platforms

WORK_UNITS = 10_000_000


def random_platforms(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.uniform(np.log(5e-4), np.log(5e-2), n))
    return pd.DataFrame(
        {
            "platform": [f"p{i:04d}" for i in range(n)],
            "seconds_per_unit": rate,
            "seconds_per_unit_upper": rate * rng.uniform(1.1, 1.5, n),
            "price_per_hour_usd": rng.uniform(0.5, 30.0, n),
            "count": rng.integers(1, 9, n),
            "overhead_s": rng.uniform(60.0, 900.0, n),
        }
    )


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--platforms", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    big = random_platforms(args.platforms, seed=1)
    small = random_platforms(10, seed=2)

    # Limits chosen from the unconstrained plans so that they bind (deadline: 1.5x the fastest on 1,000
    # platforms; budget: halfway between the cheapest plan and the fastest plan's cost).
    fastest = plan_shards(WORK_UNITS, big)
    cheapest = plan_shards(WORK_UNITS, big, objective="cost")
    deadline = 1.5 * fastest.planned_makespan_s
    budget = 0.5 * (cheapest.planned_cost_usd + fastest.planned_cost_usd)
    fastest_small = plan_shards(WORK_UNITS, small)
    cheapest_small = plan_shards(WORK_UNITS, small, objective="cost")
    deadline_small = 1.5 * fastest_small.planned_makespan_s
    budget_small = 0.5 * (cheapest_small.planned_cost_usd + fastest_small.planned_cost_usd)

    P = prepare_platforms(big, confident=True)
    modes = [
        ("makespan, no budget (water-filling)", {}, {}),
        (
            "cost, deadline (MILP)",
            {"objective": "cost", "deadline_s": deadline},
            {"objective": "cost", "deadline_s": deadline_small},
        ),
        ("makespan, binding budget (MILP + search)", {"budget_usd": budget}, {"budget_usd": budget_small}),
    ]
    print(
        f"{WORK_UNITS:,} units; {args.platforms:,} platforms ({int(big['count'].sum()):,} machines) vs 10 platforms "
        f"({int(small['count'].sum())} machines); best of {args.repeat} runs\n"
    )
    header = (
        f"{'mode':<46}{'1,000 plat. s':>14}{'10 plat. s':>12}{'ratio':>8}{'single s':>11}{'ratio':>8}"
        f"   plan (platforms / machines / makespan / cost)"
    )
    print(header.replace("1,000", f"{args.platforms:,}"))
    for label, kw_big, kw_small in modes:
        t_big, plan = best_time(lambda kw=kw_big: plan_shards(WORK_UNITS, big, **kw), args.repeat)
        t_small, _ = best_time(lambda kw=kw_small: plan_shards(WORK_UNITS, small, **kw), args.repeat)
        objective = kw_big.get("objective", "makespan")
        t_single, _ = best_time(
            lambda kw=kw_big, o=objective: best_single_index(
                P, WORK_UNITS, o, kw.get("deadline_s"), kw.get("budget_usd")
            ),
            args.repeat,
        )
        print(
            f"{label:<46}{t_big:>14.4f}{t_small:>12.4f}{t_big / t_small:>8.1f}{t_single:>11.5f}"
            f"{t_big / t_single:>8.0f}   {plan.totals['platforms']} / {plan.totals['machines']} / "
            f"{plan.planned_makespan_s:,.0f} s / ${plan.planned_cost_usd:,.2f}  [{plan.method}]"
            f"{'' if plan.feasible else '  INFEASIBLE'}"
        )
        single = plan.best_single
        if single is not None:
            print(
                f"{'':<46}best single platform: {single.planned_makespan_s:,.0f} s / "
                f"${single.planned_cost_usd:,.2f}; worth sharding: {plan.sharding_worth_it}"
            )
        else:
            print(f"{'':<46}no single platform meets the constraints; worth sharding: {plan.sharding_worth_it}")


if __name__ == "__main__":
    main()
