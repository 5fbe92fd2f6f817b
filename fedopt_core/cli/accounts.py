"""Commands for accounts and usage: accounts add|list|archive|set-key|rotate-secret, usage add|list|report.

An API key is read from a file, an environment variable or a hidden prompt; it is never taken
as a command-line argument (it would land in the shell history and in ``ps``) and never echoed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from fedopt_core.cli import CliError, emit
from fedopt_core.config import output_path


def _read_key(args: argparse.Namespace, *, required: bool) -> str | None:
    if getattr(args, "api_key_file", None):
        try:
            return Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"api_key_file: cannot read {args.api_key_file}: {exc.strerror}") from None
    if getattr(args, "api_key_env", None):
        value = os.environ.get(args.api_key_env)
        if not value:
            raise CliError(f"api_key_env: the environment variable {args.api_key_env} is not set")
        return value.strip()
    if getattr(args, "no_api_key", False):
        return None
    if sys.stdin.isatty():
        return getpass.getpass("API key (not shown; empty for none): ").strip() or None
    if required:
        raise CliError("api_key: give --api-key-file or --api-key-env")
    raise CliError("api_key: give --api-key-file, --api-key-env or --no-api-key (no terminal to prompt on)")


def cmd_accounts_add(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    key = _read_key(args, required=False)
    created = accounts.register_academic_account(
        args.username,
        key,
        args.institution,
        args.email,
        provider=args.provider,
        monthly_quota_hours=args.quota_hours,
        monthly_budget_usd=args.budget_usd,
        max_usd_per_hour=args.max_usd_per_hour,
        auto_terminate=True if args.auto_terminate else None,
        ends_on=args.ends_on,
        project=args.project,
        notes=args.notes,
    )
    name = args.username.strip()
    row = accounts.list_accounts(include_archived=True).set_index("username").loc[name]
    if args.json:
        emit(
            {
                "username": name,
                "created": created,
                "api_key": row["api_key"] or None,
                "eligibility": row["eligibility"],
                "email_check_reason": row["email_check_reason"],
            },
            True,
        )
    else:
        print(
            f"{'added' if created else 'updated'} account {name}: key {row['api_key'] or '(none)'}, "
            f"e-mail {row['eligibility']} ({row['email_check_reason']})"
        )
    return 0


def cmd_accounts_list(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    frame = accounts.list_accounts(include_archived=args.all, month=args.month)
    emit(
        frame,
        args.json,
        [
            "username",
            "provider",
            "status",
            "api_key",
            "eligibility",
            "monthly_quota_hours",
            "hours_this_month",
            "monthly_budget_usd",
            "cost_this_month_usd",
            "ends_on",
        ],
    )
    return 0


def cmd_accounts_archive(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    accounts.archive_account(args.username)
    if args.json:
        emit({"username": args.username.strip(), "status": "archived"}, True)
    else:
        print(f"archived account {args.username} (its usage history is kept)")
    return 0


def cmd_accounts_set_key(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    key = _read_key(args, required=True)
    if key is None:
        raise CliError("api_key: is required")
    mask = accounts.set_api_key(args.username, key)
    print(f"replaced the API key of {args.username}: {mask}")
    return 0


def cmd_accounts_rotate_secret(args: argparse.Namespace) -> int:
    from fedopt_core import accounts, crypto

    new_key = None
    if args.new_key_file:
        try:
            new_key = Path(args.new_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"new_key_file: cannot read {args.new_key_file}: {exc.strerror}") from None
    try:
        print(accounts.rotate_secret_key(new_key))
    except crypto.SecretKeyError as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_accounts_forget_keys(args: argparse.Namespace) -> int:
    from fedopt_core import accounts, auth

    if not args.yes:
        raise CliError("forget-keys removes every stored API key no secret key opens; pass --yes to do it")
    if not auth.holds_a_secret_key():
        raise CliError("forget-keys: run it where fedopt's secret key is (fedopt setup makes a new key file)")
    # The recovery path after a lost secret key: nobody holds the key that opens the stored API
    # keys, so nobody would be admin; a process holding a (new) key may clear what the lost one locked.
    with auth.acting_as(auth.LOCAL_ADMIN):
        names = accounts.forget_unopenable_keys()
    if names:
        print(f"removed the API keys of {', '.join(names)}: no secret key opens them; set them again with set-key")
    else:
        print("every stored API key opens with the current secret key; nothing removed")
    return 0


def cmd_accounts_choose(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    requirements = {
        k: v
        for k, v in {
            "provider": args.provider,
            "expected_hours": args.hours,
            "expected_cost_usd": args.cost_usd,
            "platform": args.platform,
        }.items()
        if v is not None
    }
    choice = accounts.choose_account(requirements)
    emit(choice.as_dict(), args.json)
    return 0 if choice.ok else 4


def cmd_usage_add(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    session_id = accounts.add_usage_session(
        args.username,
        args.platform,
        _with_zone(args.start, "start"),
        _with_zone(args.end, "end"),
        cost_usd=args.cost_usd,
        success=not args.failed,
        source=args.source,
        hours=args.hours,
        person=args.person,
        workload=args.workload,
        notes=args.notes,
    )
    print(f"recorded usage session {session_id} for {args.username}")
    return 0


def _with_zone(text: str | None, name: str) -> str | None:
    """Command-line times without a zone are UTC (what the reports use)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{name}: {text!r} is not a date and time (e.g. 2026-11-03T10:00)") from None
    return (value if value.utcoffset() is not None else value.replace(tzinfo=UTC)).isoformat()


def cmd_usage_list(args: argparse.Namespace) -> int:
    from fedopt_core import accounts

    frame = accounts.list_usage_sessions(month=args.month, username=args.account)
    emit(
        frame,
        args.json,
        [
            "session_id",
            "username",
            "platform",
            "person",
            "started_at",
            "ended_at",
            "hours_in_window",
            "cost_in_window_usd",
            "outcome",
            "source",
        ],
    )
    return 0


def cmd_usage_report(args: argparse.Namespace) -> int:
    from fedopt_core.accounts import review_export, review_print

    # --csv / --pdf say what to write; without them the file's name does (month.pdf is a PDF).
    kind = "csv" if args.csv else "pdf" if args.pdf else Path(args.out).suffix.lower().lstrip(".")
    kind = kind if kind in review_export.REPORT_KINDS else "html"
    try:
        path = review_export.write_report(args.month, output_path(args.out, force=args.force), kind=kind)
    except review_print.PrintError as exc:
        raise CliError(f"no PDF written: {exc}") from None
    print(f"wrote the {kind.upper()} usage report for {args.month} to {path}")
    return 0


def _key_options(parser: argparse.ArgumentParser, *, allow_none: bool) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--api-key-file", help="read the API key from this file (keep it mode 0600)")
    group.add_argument("--api-key-env", metavar="VAR", help="read the API key from this environment variable")
    if allow_none:
        group.add_argument("--no-api-key", action="store_true", help="an allocation without an API key")


def register(sub: argparse._SubParsersAction) -> None:
    p_acc = sub.add_parser("accounts", help="accounts and allocations").add_subparsers(
        dest="acc_command", required=True
    )
    p = p_acc.add_parser("add", help="add an account, or update the one with this username")
    p.add_argument("username")
    p.add_argument("--institution")
    p.add_argument("--email", help="institutional e-mail (checked for an academic domain, informative only)")
    p.add_argument("--provider", default="lambda")
    p.add_argument("--quota-hours", type=float, help="monthly hour quota")
    p.add_argument("--budget-usd", type=float, help="monthly budget in USD")
    p.add_argument(
        "--max-usd-per-hour", type=float, help="hard cap: the most its running machines may cost per hour together"
    )
    p.add_argument(
        "--auto-terminate",
        action="store_true",
        help="let `fedopt lambda enforce` terminate its machines that run past their job's upper bound",
    )
    p.add_argument("--ends-on", help="last day of the allocation (YYYY-MM-DD)")
    p.add_argument("--project")
    p.add_argument("--notes")
    _key_options(p, allow_none=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_accounts_add)

    p = p_acc.add_parser("list", help="list accounts with this month's usage (keys masked)")
    p.add_argument("--all", action="store_true", help="include archived accounts")
    p.add_argument("--month", help="YYYY-MM (default: this month)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_accounts_list)

    p = p_acc.add_parser("archive", help="archive an account (its history is kept)")
    p.add_argument("username")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_accounts_archive)

    p = p_acc.add_parser("set-key", help="replace an account's API key")
    p.add_argument("username")
    _key_options(p, allow_none=False)
    p.set_defaults(func=cmd_accounts_set_key)

    p = p_acc.add_parser("rotate-secret", help="re-encrypt every stored API key with a new secret key")
    p.add_argument("--new-key-file", help="the new key or passphrase (required when FEDOPT_SECRET_KEY is set)")
    p.set_defaults(func=cmd_accounts_rotate_secret)
    p = p_acc.add_parser(
        "forget-keys", help="remove stored API keys no secret key opens (after the secret key was lost)"
    )
    p.add_argument("--yes", action="store_true", help="yes, remove them (they are entered again with set-key)")
    p.set_defaults(func=cmd_accounts_forget_keys)

    p = p_acc.add_parser("choose", help="which account would pay for a job (exit code 4 when none can)")
    p.add_argument("--hours", type=float, help="expected hours")
    p.add_argument("--cost-usd", type=float, help="expected cost in USD")
    p.add_argument("--platform", help="instance type, to price the hours")
    p.add_argument("--provider")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_accounts_choose)

    p_use = sub.add_parser("usage", help="usage sessions and the monthly report").add_subparsers(
        dest="use_command", required=True
    )
    p = p_use.add_parser("add", help="record a usage session")
    p.add_argument("username")
    p.add_argument("--platform", required=True, help="instance type, e.g. gpu_1x_a100")
    p.add_argument("--start", required=True, help="start (ISO 8601; UTC when no zone is given)")
    end = p.add_mutually_exclusive_group()
    end.add_argument("--end", help="end (ISO 8601; UTC when no zone is given)")
    end.add_argument("--hours", type=float, help="duration in hours, instead of --end")
    p.add_argument("--cost-usd", type=float, help="what it cost (default: hours x catalogue price)")
    p.add_argument("--failed", action="store_true", help="the session's work failed")
    p.add_argument("--source", default="manual", choices=["manual", "lambda_sync", "run_log"])
    p.add_argument("--person")
    p.add_argument("--workload")
    p.add_argument("--notes")
    p.set_defaults(func=cmd_usage_add)

    p = p_use.add_parser("list", help="sessions overlapping a month")
    p.add_argument("--month", help="YYYY-MM (default: this month)")
    p.add_argument("--account", help="only this account")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_usage_list)

    p = p_use.add_parser("report", help="the monthly usage review as a printable HTML or PDF file (or CSV)")
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument("--out", required=True, help="file to write; a name ending .pdf or .csv picks that format")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--csv", action="store_true", help="write the month's sessions as CSV instead")
    kind.add_argument("--pdf", action="store_true", help="print the report to PDF (A4) with Debian chromium")
    p.set_defaults(func=cmd_usage_report)
