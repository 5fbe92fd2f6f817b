"""`fedopt plan shard|spot`: shard a divisible job across platforms; spot or on-demand."""

from __future__ import annotations

import argparse

from fedopt_core.cli import CliError, emit, job_from_args


def _platforms(args: argparse.Namespace):  # noqa: ANN202 - DataFrame
    from fedopt_core import catalog

    frame = catalog.list_platforms(include_cpu=False, include_unavailable=False)
    counts = {}
    for item in args.platform:
        name, _, count = item.partition("=")
        counts[name] = int(count or 1)
    chosen = frame[frame["instance_type"].isin(counts)].copy()
    missing = sorted(set(counts) - set(chosen["instance_type"]))
    if missing:
        raise CliError(f"--platform: not in the catalogue: {', '.join(missing)}")
    chosen["count"] = chosen["instance_type"].map(counts)
    return chosen


def cmd_shard(args: argparse.Namespace) -> int:
    from fedopt_core.planning import advisor

    plan = advisor.plan(
        job_from_args(args),
        _platforms(args),
        args.work_units,
        objective=args.objective,
        deadline_s=args.deadline,
        budget_usd=args.budget,
    )
    frame = plan.to_frame()
    if args.json:
        emit(
            {
                "feasible": plan.feasible,
                "message": plan.message,
                "totals": plan.totals,
                "sharding_worth_it": plan.sharding_worth_it,
                "violations": list(plan.violations),
                "best_single": plan.best_single.totals if plan.best_single is not None else None,
                "platforms": frame.to_dict("records"),
            },
            True,
        )
    else:
        print(plan.message)
        emit(frame, False)
    return 0 if plan.feasible else 1


def cmd_spot(args: argparse.Namespace) -> int:
    from fedopt_core import catalog
    from fedopt_core.planning import advisor, spot

    platforms = catalog.list_platforms(include_cpu=False)
    if args.platform:
        platforms = platforms[platforms["instance_type"].isin(args.platform)]
    advice = advisor.spot_advice(
        job_from_args(args),
        platforms,
        preemptions_per_hour=args.preemptions_per_hour,
        checkpoint_cost_s=args.checkpoint_cost,
        deadline_s=args.deadline,
    )
    if advice.empty:
        raise CliError(
            "no platform with a spot price (import one: fedopt platforms import FILE), or no "
            "preemption rate (--preemptions-per-hour, or spot sessions that ended in preemption)"
        )
    if not args.json:
        print(spot.advice_sentence(advice) + "\n")
    emit(advice, args.json)
    return 0


def _task_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task-type", help="training, fine-tuning, inference (default: training)")
    p.add_argument("--workload")
    p.add_argument("--precision")
    p.add_argument("--batch-size", type=float)
    p.add_argument("--input-size-mb", type=float)
    p.add_argument("--output-size-mb", type=float)
    p.add_argument("--work-units", type=float, required=True)
    p.add_argument("--deadline", type=float, help="seconds")
    p.add_argument("--json", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    plan = sub.add_parser("plan", help="shard plans and spot advice").add_subparsers(dest="plan_command", required=True)
    p = plan.add_parser("shard", help="split a divisible job across platforms")
    _task_options(p)
    p.add_argument("--platform", action="append", required=True, help="INSTANCE_TYPE[=MACHINES] (repeatable)")
    p.add_argument("--objective", choices=["makespan", "cost"], default="makespan")
    p.add_argument("--budget", type=float, help="USD")
    p.set_defaults(func=cmd_shard)
    p = plan.add_parser("spot", help="spot or on-demand, with the optimal checkpoint interval")
    _task_options(p)
    p.add_argument("--platform", action="append", help="only these instance types")
    p.add_argument("--preemptions-per-hour", type=float)
    p.add_argument("--checkpoint-cost", type=float, default=60.0, help="seconds to write one checkpoint")
    p.set_defaults(func=cmd_spot)
