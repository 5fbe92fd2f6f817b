"""Commands for actual runs: runs log, runs import, runs list, runs export."""

from __future__ import annotations

import argparse
import sys

from fedopt_core import csvfiles
from fedopt_core.cli import CliError, emit
from fedopt_core.schema import FIELD_DESCRIPTIONS, RUN_FIELDS

#: Exit code of an import that stored the good rows but refused some.
EXIT_ROWS_REFUSED = 4

_LIST_COLUMNS = [
    "id",
    "workload",
    "gpu_type",
    "gpu_count",
    "platform",
    "execution_time_s",
    "success",
    "source",
    "created_at",
]
# Options that `runs log` names differently from the field (the rest are --field-name).
_LOG_SPECIAL = {"execution_time_s", "success"}


def cmd_runs_log(args: argparse.Namespace) -> int:
    from fedopt_core import runs
    from fedopt_core.schema import ValidationError

    values = {
        name: getattr(args, name) for name in RUN_FIELDS if name not in _LOG_SPECIAL and getattr(args, name) is not None
    }
    values["execution_time_s"] = args.seconds
    values["success"] = not args.failed
    for name in ("started_at", "logged_by", "notes"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    try:
        logged = runs.log_run(values, source="cli")
    except ValidationError as exc:
        option = "--seconds" if exc.field == "execution_time_s" else f"--{exc.field.replace('_', '-')}"
        raise CliError(f"run not logged: {option}: {exc.message}") from None
    data = {"run_id": logged.run_id, "inserted": logged.inserted, "linked_prediction_id": logged.linked_prediction_id}
    if args.json:
        emit(data, True)
    elif logged.inserted:
        linked = f"; compared with prediction {logged.linked_prediction_id}" if logged.linked_prediction_id else ""
        print(f"logged run {logged.run_id}{linked}")
    else:
        print(f"an identical run is already stored (run {logged.run_id}); nothing added")
    return 0


def cmd_runs_import(args: argparse.Namespace) -> int:
    from fedopt_core import runs
    from fedopt_core.csvfiles import CsvFormatError

    try:
        result = runs.import_csv(args.file, batch_size=args.batch_size)
    except CsvFormatError as exc:
        raise CliError(f"{args.file}: not imported: {exc}") from None
    except runs.ImportAborted as exc:
        raise CliError(f"{args.file}: {exc}") from None
    if args.json:
        emit(result.to_dict(), True)
    else:
        print(result.summary())
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        shown = result.errors[: args.max_errors]
        for error in shown:
            print(f"refused: {error}", file=sys.stderr)
        if len(result.errors) > len(shown):
            print(f"… and {len(result.errors) - len(shown)} more refused rows (use --json for all)", file=sys.stderr)
    return EXIT_ROWS_REFUSED if result.errors else 0


def _filters(args: argparse.Namespace) -> dict:
    return {"workload": args.workload, "gpu_type": args.gpu, "source": args.source}


def cmd_runs_list(args: argparse.Namespace) -> int:
    from fedopt_core import runs

    if args.limit < 0:
        raise CliError("--limit must be 0 (all) or more", code=2)
    frame = runs.list_runs(limit=args.limit or None, **_filters(args))
    emit(frame if args.json else frame.drop(columns=["run_key"]), args.json, _LIST_COLUMNS)
    return 0


def cmd_runs_export(args: argparse.Namespace) -> int:
    from fedopt_core import runs

    if args.file == "-":
        sys.stdout.write(runs.export_csv(None, **_filters(args)))
        return 0
    try:
        text = runs.export_csv(args.file, **_filters(args))
    except OSError as exc:
        raise CliError(f"cannot write {args.file}: {exc.strerror}") from None
    count = csvfiles.count_rows(text)
    print(f"wrote {count} runs to {args.file}", file=sys.stderr)
    return 0


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workload", action="append", help="only this workload (repeatable)")
    parser.add_argument("--gpu", action="append", help="only this GPU type (repeatable)")
    parser.add_argument(
        "--source", action="append", help="only runs from this channel: form, csv, benchmark, cli, track, api"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p_runs = sub.add_parser("runs", help="actual runs: log, import, list, export").add_subparsers(
        dest="runs_command", required=True
    )

    p = p_runs.add_parser("log", help="log one actual run")
    p.add_argument("--gpu-type", dest="gpu_type", required=True, help=FIELD_DESCRIPTIONS["gpu_type"])
    p.add_argument("--gpu-count", dest="gpu_count", required=True, help=FIELD_DESCRIPTIONS["gpu_count"])
    p.add_argument("--seconds", required=True, help="measured wall-clock seconds (execution_time_s)")
    for name in RUN_FIELDS:
        if name in _LOG_SPECIAL or name in ("gpu_type", "gpu_count"):
            continue
        # Values stay text here: the run schema parses them and names the field if one is bad.
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=FIELD_DESCRIPTIONS.get(name, name))
    p.add_argument("--failed", action="store_true", help="the run failed (success=false)")
    p.add_argument("--started-at", dest="started_at", help="when it started, ISO 8601 (UTC if no zone given)")
    p.add_argument("--logged-by", dest="logged_by", help="who ran it")
    p.add_argument("--notes", help="free text")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs_log)

    p = p_runs.add_parser(
        "import",
        help="import a run CSV or Lambda's benchmark table (gpu_benchmarks.csv)",
        description="Imports every valid row; refused rows are listed with their line number. Importing the "
        f"same file twice adds nothing. Exit code {EXIT_ROWS_REFUSED} when some rows were refused "
        "(the others are imported).",
    )
    p.add_argument("file", help="CSV file (UTF-8, comma-separated)")
    p.add_argument("--batch-size", type=int, default=1000, help="rows per transaction (default 1000)")
    p.add_argument("--max-errors", type=int, default=20, help="refused rows to print (default 20; --json prints all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs_import)

    p = p_runs.add_parser("list", help="list runs, newest first")
    _add_filters(p)
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50; 0 = all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs_list)

    p = p_runs.add_parser("export", help="write runs as CSV (spreadsheet formulas neutralised)")
    p.add_argument("file", help="output file, or - for standard output")
    _add_filters(p)
    p.set_defaults(func=cmd_runs_export)
