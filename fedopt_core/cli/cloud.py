"""Commands for Lambda Cloud: refresh the live catalogue, sync usage, launch, terminate, enforce the
caps (once or as a watch), fake server."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from fedopt_core.cli import CliError, emit


def _report(result, args: argparse.Namespace) -> int:  # noqa: ANN001 - a report dataclass
    data = dataclasses.asdict(result)
    emit(data, args.json)
    return 0 if data.get("ok", True) else 1


def cmd_refresh(args: argparse.Namespace) -> int:
    from fedopt_core.cloud import lambda_ops

    return _report(lambda_ops.refresh_catalogue(args.account), args)


def cmd_sync(args: argparse.Namespace) -> int:
    from fedopt_core.cloud import lambda_ops

    return _report(lambda_ops.sync(args.account), args)


def cmd_launch(args: argparse.Namespace) -> int:
    from fedopt_core.cloud import lambda_ops

    try:
        outcome = lambda_ops.launch(
            args.account,
            args.instance_type,
            args.region,
            args.ssh_key,
            max_price_per_hour_usd=args.max_price,
            expected_hours=args.expected_hours,
            override_reason=args.override_reason,
            workload=args.workload,
        )
    except lambda_ops.LambdaOperationError as exc:
        raise CliError(str(exc)) from None
    return _report(outcome, args)


def cmd_enforce(args: argparse.Namespace) -> int:
    from fedopt_core.cloud.enforce import enforce

    report = enforce(args.account, dry_run=args.dry_run)
    emit(dataclasses.asdict(report), args.json)
    return 0 if report.ok else 1


def cmd_watch(args: argparse.Namespace) -> int:
    import time

    from fedopt_core.cloud.enforce import enforce

    if not args.interval > 0:
        raise CliError("--interval: give seconds above zero")
    while True:  # until interrupted (Ctrl-C, the process manager's stop)
        report = enforce(args.account, dry_run=args.dry_run)
        for action in report.actions:
            print(f"{action.account} {action.instance_id}: {action.reason}: {action.action}", flush=True)
        for error in report.errors:
            print(f"warning: {error}", file=sys.stderr, flush=True)
        time.sleep(args.interval)


def cmd_terminate(args: argparse.Namespace) -> int:
    from fedopt_core.cloud import lambda_ops

    try:
        closed = lambda_ops.terminate(args.account, args.instance_id)
    except lambda_ops.LambdaOperationError as exc:
        raise CliError(str(exc)) from None
    emit({"terminated": args.instance_id, "closed_sessions": closed}, args.json)
    return 0


def cmd_fake_server(args: argparse.Namespace) -> int:
    from fedopt_core.testing import fake_lambda

    argv = ["--port", str(args.port), "--host", args.host]
    for key in args.api_key or []:
        argv += ["--api-key", key]
    return fake_lambda.main(argv)


def register(sub: argparse._SubParsersAction) -> None:
    # `fedopt platforms refresh` is registered with the other platform commands (catalogue.py).
    lam = sub.add_parser("lambda", help="Lambda Cloud machines and usage").add_subparsers(
        dest="lambda_command", required=True
    )
    p = lam.add_parser("sync", help="open/close usage sessions to match the machines Lambda reports")
    p.add_argument("--account", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sync)
    p = lam.add_parser("launch", help="launch one machine (refused above --max-price)")
    p.add_argument("--account", required=True)
    p.add_argument("--instance-type", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--ssh-key", action="append", required=True)
    p.add_argument("--max-price", type=float, required=True, help="maximum USD per hour you accept")
    p.add_argument("--workload", help="what the machine is for (recorded on its usage session)")
    p.add_argument("--expected-hours", type=float, help="the job's predicted upper bound (checked against the budget)")
    p.add_argument("--override-reason", help="launch past the account's caps, for this recorded reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_launch)
    p = lam.add_parser("enforce", help="once: warn of machines past their job's upper bound; terminate per the caps")
    p.add_argument("--account", help="only this account (default: every Lambda account with a key)")
    p.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_enforce)
    p = lam.add_parser("watch", help="enforce every --interval seconds until stopped")
    p.add_argument("--account", help="only this account (default: every Lambda account with a key)")
    p.add_argument("--interval", type=float, default=300.0, help="seconds between checks (default 300)")
    p.add_argument("--dry-run", action="store_true", help="say what would be done, do nothing")
    p.set_defaults(func=cmd_watch)
    p = lam.add_parser("terminate", help="terminate machines and close their usage sessions")
    p.add_argument("--account", required=True)
    p.add_argument("instance_id", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_terminate)
    p = lam.add_parser("fake-server", help="serve a fake Lambda API on loopback (demos, tests)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--api-key", action="append")
    p.set_defaults(func=cmd_fake_server, needs_db=False)
