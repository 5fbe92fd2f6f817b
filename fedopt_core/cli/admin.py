"""Commands for a shared deployment: roles and the audit log.  The CLI acts as the local admin."""

from __future__ import annotations

import argparse

from fedopt_core.cli import CliError, emit
from fedopt_core.config import output_path


def cmd_roles_set(args: argparse.Namespace) -> int:
    from fedopt_core import auth

    auth.set_role(args.email, args.role)
    print(f"{args.email} is now a {args.role}")
    return 0


def cmd_roles_list(args: argparse.Namespace) -> int:
    from fedopt_core import auth

    emit(auth.list_roles(), args.json)
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from fedopt_core import auth
    from fedopt_core.csvfiles import to_safe_csv

    log = auth.audit_log()
    if args.json:
        emit(log, True)
        return 0
    out = output_path(args.out, force=args.force)
    try:
        to_safe_csv(log.astype({"details": str}), out)
    except OSError as exc:
        raise CliError(f"--out: cannot write {out}: {exc.strerror}") from None
    print(f"{len(log)} audit events written to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    roles = sub.add_parser("roles", help="who may do what").add_subparsers(dest="roles_command", required=True)
    p = roles.add_parser("set", help="give a user (by e-mail) a role")
    p.add_argument("email")
    p.add_argument("role", choices=["viewer", "member", "admin"])
    p.set_defaults(func=cmd_roles_set)
    p = roles.add_parser("list", help="list users with a role")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_roles_list)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    p = audit.add_parser("export", help="write the audit log as CSV (or print JSON)")
    p.add_argument("--out", default="fedopt-audit.csv")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_audit_export)
