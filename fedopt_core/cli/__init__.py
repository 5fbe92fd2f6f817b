"""The ``fedopt`` command.  Thin, like the pages: parse arguments, call fedopt_core, print.

What lives here: one module per group of commands (catalogue, runs, predict, plan, model,
accounts, cloud, admin, dashboard), each with a ``register(subparsers)``, and the shared
``main``, ``emit`` and ``CliError``.  A command imports what it needs when it runs.

``--json`` prints a JSON array of objects (or one object for a single result) on stdout;
without it a readable table.  Errors are one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from fedopt_core import config, formatting
from fedopt_core.db import DatabaseError
from fedopt_core.errors import FedoptInputError
from fedopt_core.formatting import printable

if TYPE_CHECKING:
    from fedopt_core.schema import Task

EXIT_USAGE = 2
EXIT_DATABASE = 3


class CliError(Exception):
    """An error to print as one line, with the exit code to return."""

    def __init__(self, message: str, code: int = 1) -> None:
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


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as people read it (the plain output; ``--json`` keeps the exact values): seconds
    (``*_s``) as durations, USD (``*_usd``) as money, whole numbers without ".0", and stored text
    shown, never obeyed (no terminal escapes or reordering marks)."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            out[name] = column.map(printable)
        elif pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            continue
        elif name.endswith("_s"):
            out[name] = column.map(lambda v: "" if pd.isna(v) else formatting.duration(float(v)))
        elif name.endswith("_usd"):
            out[name] = column.map(lambda v: "" if pd.isna(v) else formatting.usd(float(v)))
        elif pd.api.types.is_float_dtype(column):
            finite = column.dropna()
            if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 2**53:
                out[name] = column.astype("Int64")
    return out


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None) -> None:
    """Print a frame, list or dict as JSON or as a plain table."""
    if isinstance(data, pd.DataFrame):
        records = [_jsonable(r) for r in data.to_dict("records")]
        if as_json:
            print(json.dumps(records, indent=2))
        else:
            shown = readable(data[list(columns)] if columns else data)
            print(shown.to_string(index=False) if len(shown) else "(nothing matches)")
        return
    if as_json:
        print(json.dumps(_jsonable(data), indent=2))  # JSON escapes control characters itself
    elif isinstance(data, dict):
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            print(f"{str(key).ljust(width)}  {printable(str(value))}")
    else:
        print(printable(str(data)))


# --------------------------------------------------------------------------- parser

#: Modules of fedopt_core.cli that each define ``register(subparsers)`` for their commands.
COMMAND_MODULES = ["catalogue", "admin", "cloud", "runs", "accounts", "predict", "model", "plan", "dashboard"]


#: Task fields whose option is not the field's name with dashes.
_OPTION_OF_FIELD = {"model_params_b": "--params-b", "active_params_b": "--active-params-b"}


def job_from_args(args: argparse.Namespace) -> Task:
    """The task the options describe, built as every face builds it (``runs.jobs.job_task``);
    a refused value names its option."""
    from fedopt_core.errors import ValidationError
    from fedopt_core.runs.jobs import job_task
    from fedopt_core.schema import TASK_FIELDS

    given = {name: getattr(args, name) for name in TASK_FIELDS if getattr(args, name, None) is not None}
    try:
        return job_task(given, model=getattr(args, "model", None), tokens=getattr(args, "tokens", None))
    except ValidationError as exc:
        option = _OPTION_OF_FIELD.get(exc.field, "--" + exc.field.replace("_", "-"))
        raise CliError(f"{option}: {exc.message}") from None


def database_url(args: argparse.Namespace) -> str:
    """The URL a command works on: --database-url, else the configured one."""
    return args.database_url or config.get_settings().database_url


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedopt", description="Where to run GPU work, and how to pay for it.")
    parser.add_argument(
        "--database-url", help="SQLAlchemy URL (default: $DATABASE_URL or the SQLite file in $FEDOPT_HOME)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"fedopt_core.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # One command, one database: --database-url (else DATABASE_URL) for every call it makes.
        config.reload_settings(database_url=args.database_url)
        if not getattr(args, "needs_db", True):
            return int(args.func(args) or 0)
        from fedopt_core import auth, db

        db.ensure_database()
        # Admin only with the secret key (see auth.local_actor); for this command only, so that a
        # caller of main() in a long-lived process keeps its own actor afterwards.
        with auth.acting_as(auth.local_actor()):
            return int(args.func(args) or 0)
    except DatabaseError as exc:
        print(f"fedopt: database error: {printable(str(exc))}", file=sys.stderr)
        return EXIT_DATABASE
    except CliError as exc:
        print(f"fedopt: {printable(str(exc))}", file=sys.stderr)
        return exc.code
    except FedoptInputError as exc:  # every refused value: one line naming the field
        print(f"fedopt: {printable(str(exc))}", file=sys.stderr)
        return 1
    except PermissionError as exc:  # a role this process does not have (auth.PermissionDenied), or a file
        print(f"fedopt: {printable(str(exc))}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"fedopt: {printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fedopt runs list | head`: the reader left; no traceback for that
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except RuntimeError as exc:
        from fedopt_core.crypto import SecretKeyError  # only now: the CLI starts without cryptography

        if not isinstance(exc, SecretKeyError):
            raise
        print(f"fedopt: {printable(str(exc))}", file=sys.stderr)  # says what to do, never the key
        return 1
