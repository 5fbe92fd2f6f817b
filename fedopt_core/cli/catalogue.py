"""Commands for the database and the catalogues: db upgrade, setup, platforms, techniques."""

from __future__ import annotations

import argparse
import sys

from fedopt_core.cli import CliError, database_url, emit


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from fedopt_core import db

    db.upgrade()
    print(f"database at revision {db.current_revision()}: {db.redact_url(database_url(args))}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Create or upgrade the database and load the shipped catalogues (what `make run` does).

    Whoever sets fedopt up holds its secret key: the key file is made here (mode 0600) unless
    FEDOPT_SECRET_KEY is set, and with it this process acts as the local admin."""
    from fedopt_core import auth, catalog, crypto, db

    db.ensure_database()
    crypto.keyring()  # creates the key file on first setup
    with auth.acting_as(auth.local_actor()):
        report = catalog.load_all()
    for error in report.errors:
        print(f"warning: {error}", file=sys.stderr)
    print(
        f"database ready ({db.redact_url(database_url(args))}); catalogues: {report.inserted} added, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.kept_user_edits} user edits kept"
    )
    return 0


def cmd_platforms_list(args: argparse.Namespace) -> int:
    from fedopt_core import catalog

    frame = catalog.list_platforms(
        provider=args.provider,
        gpu_type=args.gpu,
        min_gpu_count=args.min_gpus,
        max_price_per_hour_usd=args.max_price,
        search=args.search,
    )
    emit(
        frame,
        args.json,
        ["provider", "instance_type", "gpu_type", "gpu_count", "price_per_hour_usd", "price_per_gpu_hour_usd"],
    )
    return 0


def cmd_techniques_list(args: argparse.Namespace) -> int:
    from fedopt_core import catalog

    frame = catalog.list_techniques(search=args.search, kind=args.kind)
    emit(frame, args.json, ["kind", "name", "effectiveness", "savings_max_pct"])
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from fedopt_core.catalog import models

    frame = models.list_models()
    if args.search:
        text = args.search.lower()
        hit = frame[["model_id", "name", "aliases", "family"]].apply(
            lambda c: c.str.lower().str.contains(text, regex=False)
        )
        frame = frame[hit.any(axis=1)]
    emit(
        frame,
        args.json,
        ["model_id", "name", "kind", "total_params_b", "active_params_b", "n_layers", "hidden_size", "max_context"],
    )
    return 0


def cmd_platforms_import(args: argparse.Namespace) -> int:
    from fedopt_core import catalog

    report = catalog.import_cloud_prices(args.file)
    for error in report.errors:
        print(f"warning: {error}", file=sys.stderr)
    emit(
        {
            "inserted": report.inserted,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "kept_user_edits": report.kept_user_edits,
            "errors": [str(e) for e in report.errors],
        },
        args.json,
    )
    return 0


def cmd_db_job_role(args: argparse.Namespace) -> int:
    """The statements a database owner runs (psql) so that job machines can only log runs."""
    from fedopt_core import db

    try:
        statements = db.job_role_sql(args.role, args.password)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print("\n".join(f"{statement};" for statement in statements))
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from fedopt_core.cli.cloud import cmd_refresh

    return cmd_refresh(args)


def register(sub: argparse._SubParsersAction) -> None:
    p_db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    p = p_db.add_parser("upgrade", help="create or upgrade the schema (keeps data)")
    p.set_defaults(func=cmd_db_upgrade, needs_db=False)
    p = p_db.add_parser("job-role", help="print PostgreSQL statements for a role that may only log runs")
    p.add_argument("role", help="the new login role's name (e.g. fedopt_jobs)")
    p.add_argument("--password", required=True, help="its password (use it in the job machines' DATABASE_URL)")
    p.set_defaults(func=cmd_db_job_role, needs_db=False)
    p = sub.add_parser("setup", help="upgrade the database and load the shipped catalogues")
    p.set_defaults(func=cmd_setup, needs_db=False)

    p_pl = sub.add_parser("platforms", help="the platform catalogue").add_subparsers(dest="pl_command", required=True)
    p = p_pl.add_parser("list", help="list platforms")
    p.add_argument("--provider", action="append", help="only this provider (repeatable)")
    p.add_argument("--gpu", action="append", help="only this GPU model (canonical name; repeatable)")
    p.add_argument("--min-gpus", type=int, help="at least this many GPUs")
    p.add_argument("--max-price", type=float, help="at most this many USD per hour")
    p.add_argument("--search", help="text to look for")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_platforms_list)

    p = p_pl.add_parser("import", help="import other clouds' offers (cloud_gpu_prices.csv format)")
    p.add_argument("file", help="e.g. ../shared/data/cloud_gpu_prices.csv")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_platforms_import)

    p = p_pl.add_parser("refresh", help="fetch live prices and capacity from Lambda with an account's key")
    p.add_argument("--account", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_refresh)

    p_mo = sub.add_parser("models", help="the model catalogue").add_subparsers(dest="mo_command", required=True)
    p = p_mo.add_parser("list", help="list the catalogued models (the names fedopt predict --model takes)")
    p.add_argument("--search", help="text to look for in ids, names, aliases and families")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models_list)

    p_te = sub.add_parser("techniques", help="access and cost techniques").add_subparsers(
        dest="te_command", required=True
    )
    p = p_te.add_parser("list", help="list techniques")
    p.add_argument("--search", help="text to look for")
    p.add_argument("--kind", choices=["access", "optimisation"])
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_techniques_list)
