"""The ``fedopt`` command.  Thin, like the pages: parse arguments, call fedopt_core, print.

``--json`` prints a JSON array of objects (or one object for a single result) on stdout;
without it a readable table.  Errors are one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd

from fedopt_core.db import DatabaseError

EXIT_USAGE = 2
EXIT_DATABASE = 3


class CliError(Exception):
    """An error to print as one line, with the exit code to return."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return _jsonable(value.item())  # numpy scalars
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print a frame, list or dict as JSON or as a plain table."""
    if isinstance(data, pd.DataFrame):
        records = [_jsonable(r) for r in data.to_dict("records")]
        if as_json:
            print(json.dumps(records, indent=2))
        else:
            shown = data[list(columns)] if columns else data
            print(shown.to_string(index=False) if len(shown) else "(nothing matches)")
        return
    if as_json:
        print(json.dumps(_jsonable(data), indent=2))
    elif isinstance(data, dict):
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            print(f"{str(key).ljust(width)}  {value}")
    else:
        print(data)


# --------------------------------------------------------------------------- commands


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from fedopt_core import db

    db.upgrade(args.database_url)
    print(f"database at revision {db.current_revision(args.database_url)}: {db.redact_url(_url(args))}")
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Create or upgrade the database and load the shipped catalogues (what `make run` does)."""
    from fedopt_core import catalog, db

    db.ensure_database(args.database_url)
    report = catalog.load_all(url=args.database_url)
    for error in report.errors:
        print(f"warning: {error}", file=sys.stderr)
    print(
        f"database ready ({db.redact_url(_url(args))}); catalogues: {report.inserted} added, "
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
        url=args.database_url,
    )
    emit(frame, args.json, ["provider", "instance_type", "gpu_type", "gpu_count", "price_per_hour_usd", "price_per_gpu_hour_usd"])
    return 0


def cmd_techniques_list(args: argparse.Namespace) -> int:
    from fedopt_core import catalog

    frame = catalog.list_techniques(search=args.search, kind=args.kind, url=args.database_url)
    emit(frame, args.json, ["kind", "name", "effectiveness", "savings_max_pct"])
    return 0


def _url(args: argparse.Namespace) -> str:
    from fedopt_core.config import get_settings

    return args.database_url or get_settings().database_url


# --------------------------------------------------------------------------- parser

#: Functions that add sub-commands; each later capability registers its own here.
PARSER_BUILDERS: list[Callable[[argparse._SubParsersAction], None]] = []


def _build_core(sub: argparse._SubParsersAction) -> None:
    p_db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    p = p_db.add_parser("upgrade", help="create or upgrade the schema (keeps data)")
    p.set_defaults(func=cmd_db_upgrade, needs_db=False)
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

    p_te = sub.add_parser("techniques", help="access and cost techniques").add_subparsers(dest="te_command", required=True)
    p = p_te.add_parser("list", help="list techniques")
    p.add_argument("--search", help="text to look for")
    p.add_argument("--kind", choices=["access", "optimisation"])
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_techniques_list)


PARSER_BUILDERS.append(_build_core)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedopt", description="Where to run GPU work, and how to pay for it.")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: $DATABASE_URL or the SQLite file in $FEDOPT_HOME)")
    sub = parser.add_subparsers(dest="command", required=True)
    for builder in PARSER_BUILDERS:
        builder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "needs_db", True):
            from fedopt_core import db

            db.ensure_database(args.database_url)
        return int(args.func(args) or 0)
    except DatabaseError as exc:
        print(f"fedopt: database error: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except CliError as exc:
        print(f"fedopt: {exc}", file=sys.stderr)
        return exc.code
    except (ValueError, FileNotFoundError) as exc:
        print(f"fedopt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
