"""Actual runs: log, import, export, edit, and ``track()`` for job scripts.

Every channel (the Runs page form, CSV imports, ``fedopt runs log``, :func:`track` and
:func:`record_actual_performance`) writes through :func:`store_runs`, which

* validates with :func:`fedopt_core.schema.validate_frame` (the one validation path),
* gives each run a stable identity (:func:`fedopt_core.schema.run_keys` over its fields plus its
  start time), so importing the same file twice adds nothing,
* inserts in batches, each batch inside one transaction (a crash leaves whole batches or none),
* links each new successful run to the latest unlinked :class:`~fedopt_core.models.Prediction`
  of the same task, so an actual run is later scored against what was predicted at the time.

Import limits and choices (documented here once):

* Files larger than :data:`MAX_IMPORT_BYTES` are refused before they are read.
* Text must be UTF-8.  A file that is not is read as Windows-1252 (what Excel on Windows writes)
  and the result carries a warning naming the first line that was not UTF-8; a file that is
  neither, or holds NUL bytes (a binary/Excel file), is refused.
* Only comma-separated files are read; a semicolon/tab/pipe-separated file is refused with a
  message naming the separator it seems to use.
* A text field that starts like a spreadsheet formula (``= + @``, tab or carriage return) is
  refused for that row.  Exports neutralise every such cell anyway (``csvfiles.to_safe_csv``), and
  an import undoes that neutralising quote, so an exported file imports as itself (adds nothing).
* ``started_at`` must be ISO 8601 (``2025-03-01T14:30:00Z``); a time without a zone is UTC.  Other
  spellings (``01/02/2025``) are refused rather than guessed.
* Predictions are scored only by successful runs that did not start before the prediction was
  made, and never by rows of Lambda's public benchmark (they are not the group's own runs).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from fedopt_core import auth, schema
from fedopt_core.csvfiles import CsvFormatError, to_safe_csv
from fedopt_core.db import get_engine, session_scope
from fedopt_core.models import ModelVersion, Prediction, Run, UsageSession, utcnow
from fedopt_core.schema import RUN_FIELDS, STRING_FIELDS, RowError, ValidationError

logger = logging.getLogger("fedopt.runs")

#: Largest CSV file an import reads (50 MiB, about 300,000 runs).  Larger files are refused
#: before reading; split them.  The Streamlit upload widget uses the same limit.
MAX_IMPORT_BYTES = 50 * 1024 * 1024
#: Rows per transaction.  A crash mid-import leaves a whole number of batches stored.
DEFAULT_BATCH_SIZE = 1000
#: Rows of a CSV validated together (vectorised); written in transactions of the batch size.
PARSE_CHUNK_ROWS = 20_000

#: Fields a run carries besides the run schema (stored with it, not part of the task).
META_FIELDS = ["started_at", "logged_by", "notes"]
#: Columns our own exports contain that an import ignores (the database assigns them anew).
IGNORED_IMPORT_COLUMNS = ["id", "run_key", "created_at", "source"]
#: Columns of :func:`list_runs`.
LIST_COLUMNS = ["id", *RUN_FIELDS, *META_FIELDS, "created_at", "source", "run_key"]
#: Columns of an export (importable again: the ignored ones are dropped on the way in).
EXPORT_COLUMNS = ["id", *RUN_FIELDS, *META_FIELDS, "created_at", "source"]
#: What a run CSV must have.
REQUIRED_COLUMNS = ["gpu_type", "gpu_count", "execution_time_s"]

#: Where a run came from.
SOURCES = ["form", "csv", "benchmark", "cli", "track", "api"]

FORMAT_RUNS = "runs"
FORMAT_LAMBDA_BENCHMARK = "lambda_benchmark"
#: Columns that identify Lambda's public benchmark table (``gpu_benchmarks.csv``).
LAMBDA_BENCHMARK_COLUMNS = ["model", "gpu_name", "gpu_count", "time_per_1M_units_s"]

# Text that spreadsheet programs evaluate.  A leading "-" is allowed in (names like "-" occur);
# exports neutralise it together with the rest.
_FORMULA_START = ("=", "+", "@", "\t", "\r")
# Run-schema text fields checked for formulas (free-text notes are data and only neutralised).
_FORMULA_CHECKED = [*STRING_FIELDS, "logged_by"]

ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------- results


@dataclass
class ImportResult:
    """What a write did.  ``errors`` carry the 1-based file line of each refused row."""

    format: str
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    linked_predictions: int = 0
    run_ids: list[int] = field(default_factory=list)
    #: new run id -> the prediction it was linked to
    links: dict[int, int] = field(default_factory=dict)

    @property
    def refused(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        return (
            f"{self.rows} rows read ({self.format}): {self.inserted} imported, "
            f"{self.duplicates} already present, {self.refused} refused"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "rows": self.rows,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "refused": self.refused,
            "linked_predictions": self.linked_predictions,
            "errors": [{"line": e.line, "field": e.field, "message": e.message} for e in self.errors],
            "warnings": list(self.warnings),
        }

    def _add(self, other: ImportResult) -> None:
        self.rows += other.rows
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.errors.extend(other.errors)
        self.linked_predictions += other.linked_predictions
        self.run_ids.extend(other.run_ids)
        self.links.update(other.links)


class ImportAborted(RuntimeError):
    """A write stopped part-way (database error, crash of a step).  ``partial`` says what was stored:
    whole batches only, since each batch is one transaction."""

    def __init__(self, message: str, partial: ImportResult):
        super().__init__(message)
        self.partial = partial


class RunNotFoundError(LookupError):
    """No run has this id."""


@dataclass(frozen=True)
class LoggedRun:
    """The outcome of logging one run."""

    run_id: int
    inserted: bool  # False: an identical run was already stored (run_id is that run)
    linked_prediction_id: int | None = None


# --------------------------------------------------------------------------- the one write path


def store_runs(
    frame: pd.DataFrame,
    *,
    source: str,
    line_numbers: pd.Series | np.ndarray | list[int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    url: str | None = None,
    fmt: str = "frame",
) -> ImportResult:
    """Validate and store runs (run-schema columns plus optional ``started_at``, ``logged_by``, ``notes``).

    Bad rows are reported in ``errors`` (with ``line_numbers`` if given) and the good ones stored;
    rows already stored (same identity) are counted as ``duplicates``.  Validation runs over the
    whole frame at once; the good rows are then written in batches of ``batch_size``, each one
    transaction, and ``progress(done_rows, total_rows)`` runs after each.
    Raises :class:`ImportAborted` if a batch cannot be written (earlier batches stay stored).
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    actor = auth.require("member", "logging runs")
    unknown = [c for c in frame.columns if c not in RUN_FIELDS and c not in META_FIELDS and c != "_line"]
    if unknown:
        raise ValidationError(unknown[0], "is not a run field")
    frame = frame.reset_index(drop=True)
    if line_numbers is not None:
        frame = frame.assign(_line=np.asarray(line_numbers))
    if actor.signed_in:
        # On the shared dashboard, a run without a name is the signed-in user's.
        given = frame["logged_by"] if "logged_by" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        frame = frame.assign(logged_by=given.where(given.notna() & (given.astype(str).str.strip() != ""), actor.name))
    total = len(frame)
    good, errors = _prepare(frame)
    first = ~good["run_key"].duplicated()
    result = ImportResult(format=fmt, rows=total, errors=errors, duplicates=int((~first).sum()))
    good = good[first.to_numpy()].reset_index(drop=True)
    records = _records(good, source)  # once: per-column conversion is cheap only in bulk
    engine = get_engine(url)
    for start in range(0, len(good), batch_size):
        batch = good.iloc[start : start + batch_size]
        try:
            with engine.begin() as conn:
                part = _write_batch(conn, batch, records[start : start + batch_size])
        except Exception as exc:
            raise ImportAborted(
                f"stopped after storing {result.inserted} runs (each batch of {batch_size} is all-or-nothing): {exc}",
                result,
            ) from exc
        result._add(part)  # counted only after the commit
        if progress is not None:
            done = total if start + batch_size >= len(good) else int(batch["_pos"].iloc[-1]) + 1
            progress(done, total)
    if progress is not None and good.empty:
        progress(total, total)
    return result


def _prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """Validate (vectorised over the frame) and give each good row its run_key; errors by line."""
    raw = frame.assign(_pos=np.arange(len(frame)))
    if "_line" not in raw.columns:
        raw["_line"] = None
    has_lines = raw["_line"].notna().any()
    # validate_frame keeps extra columns, so each good row keeps its _line and _pos.
    good, errors = schema.validate_frame(raw, line_numbers=raw["_line"].to_numpy() if has_lines else None)
    good, more = _check_meta_and_formulas(good)
    errors = sorted([*errors, *more], key=lambda e: (e.line is None, e.line or 0))
    good["run_key"] = schema.run_keys(good, extra=_timestamp_text(good["started_at"])).to_numpy() if len(good) else []
    return good, errors


def _write_batch(conn: Connection, good: pd.DataFrame, records: list[dict[str, Any]]) -> ImportResult:
    """Insert one batch of validated rows (new keys only) and link predictions, in ``conn``'s transaction."""
    source = records[0]["source"]
    inserted, returned = _insert_new(conn, records)
    key_to_id = dict(returned)
    new = good[good["run_key"].isin(key_to_id.keys()).to_numpy()].copy()
    new["run_id"] = new["run_key"].map(key_to_id).astype("int64")
    # Public measurements are not the group's own later runs; they score no prediction.
    links = _link_predictions(conn, new) if source != "benchmark" else {}
    return ImportResult(
        format="batch",
        inserted=inserted,
        duplicates=len(good) - inserted,
        run_ids=new["run_id"].tolist(),
        links=links,
        linked_predictions=len(links),
    )


def _check_meta_and_formulas(good: pd.DataFrame) -> tuple[pd.DataFrame, list[RowError]]:
    """Refuse formula-looking text and unreadable start times; coerce the meta fields."""
    errors: dict[int, RowError] = {}

    def refuse(mask: np.ndarray, field_name: str, message: str) -> None:
        for pos in np.flatnonzero(mask):
            if pos not in errors:
                line = good["_line"].iloc[pos]
                errors[pos] = RowError(None if pd.isna(line) else int(line), field_name, message)

    for name in META_FIELDS:
        if name not in good.columns:
            good[name] = None
    for name in ["logged_by", "notes"]:
        col = good[name].astype(object)
        text = col.where(col.isna(), col.astype(str).str.strip())
        good[name] = text.where(text.notna() & (text != ""), None).astype(object)

    for name in _FORMULA_CHECKED:
        text = good[name].astype("string")
        starts = text.str.startswith(_FORMULA_START).fillna(False).to_numpy(bool)
        refuse(starts, name, "starts like a spreadsheet formula (= + @); fedopt does not import formulas")

    given = good["started_at"]
    given_mask = given.notna() & (given.astype(str).str.strip() != "")
    parsed = _parse_timestamps(given.where(given_mask.to_numpy(), None))
    refuse((given_mask & parsed.isna()).to_numpy(bool), "started_at",
           "is not a date and time (use ISO 8601, e.g. 2025-03-01T14:30:00Z)")
    good["started_at"] = parsed
    bad = sorted(errors)
    return good.drop(index=bad).reset_index(drop=True), [errors[p] for p in bad]


def _parse_timestamps(values: pd.Series) -> pd.Series:
    """UTC timestamps; a time without a zone is taken as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    present = values.notna().to_numpy(bool)
    if not present.any():
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    # ISO 8601 text (files, exports) is parsed vectorised.  Other text is refused rather than
    # guessed (is 01/02/2025 January or February?); datetime objects are taken one by one.
    parsed = pd.Series(pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601"), index=values.index)
    is_text = values.map(lambda v: isinstance(v, str)).to_numpy(bool)
    retry = present & ~is_text & parsed.isna().to_numpy(bool)
    if retry.any():
        again = values[retry].map(_one_timestamp)
        parsed[retry] = pd.to_datetime(again, utc=True, errors="coerce")
    return parsed.astype("datetime64[us, UTC]")


def _one_timestamp(value: Any) -> Any:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, dtime.min, tzinfo=timezone.utc)
    return pd.NaT


def _timestamp_text(stamps: pd.Series) -> pd.Series:
    """Canonical text of a start time for the run identity ('' when unknown)."""
    text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return text.where(stamps.notna(), "").astype(object)


_DB_COLUMNS = [*RUN_FIELDS, *META_FIELDS]


def _records(good: pd.DataFrame, source: str) -> list[dict[str, Any]]:
    """Rows as dicts the database accepts: None for missing, ints for counts, datetimes in UTC."""
    out = good[_DB_COLUMNS]
    started = [None if pd.isna(s) else s.to_pydatetime() for s in out["started_at"]]
    columns: dict[str, list[Any]] = {}
    for name in _DB_COLUMNS:
        if name == "started_at":
            continue
        col = out[name]
        if name == "gpu_count":
            columns[name] = col.astype("int64").tolist()
        elif name in ("success", "is_batch_processing"):
            # numpy bools are not what every driver binds; plain Python values are.
            columns[name] = [None if v is None or v is pd.NA or v != v else bool(v) for v in col.tolist()]
        else:
            columns[name] = col.astype(object).where(col.notna(), None).tolist()
    columns["started_at"] = started
    columns["run_key"] = good["run_key"].tolist()
    now = utcnow()
    columns["source"] = [source] * len(good)
    columns["created_at"] = [now] * len(good)
    names = list(columns)
    return [dict(zip(names, row)) for row in zip(*columns.values())]


def _insert_new(conn: Connection, records: list[dict[str, Any]]) -> tuple[int, list[tuple[str, int]]]:
    """Insert the rows whose run_key is not stored yet.

    Returns how many were inserted and (run_key, id) of the new rows.  A row that another writer
    stored meanwhile is skipped, not an error.
    """
    table = Run.__table__
    if not records:
        return 0, []
    keys = [r["run_key"] for r in records]
    existing: set[str] = set()
    for i in range(0, len(keys), 900):  # stay below every SQLite's bound-variable limit
        existing.update(conn.execute(select(table.c.run_key).where(table.c.run_key.in_(keys[i : i + 900]))).scalars())
    fresh = [r for r in records if r["run_key"] not in existing]
    if not fresh:
        return 0, []
    # INSERT .. ON CONFLICT DO NOTHING RETURNING gives exactly the rows this writer inserted: a row
    # another writer stored between the check above and this INSERT is skipped and not reported
    # as new (which would link a prediction twice).  SQLite has it since 3.35.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = dialect_insert(table).on_conflict_do_nothing(index_elements=["run_key"]).returning(
        table.c.run_key, table.c.id
    )
    rows = conn.execute(statement, fresh).all()
    return len(rows), [(row[0], int(row[1])) for row in rows]


def _link_predictions(conn: Connection, new: pd.DataFrame) -> dict[int, int]:
    """Link each new successful run to the latest unlinked prediction of the same task.

    Several runs of one task in a batch take the predictions newest first, as if logged one by
    one.  A run that started before the prediction was made does not score it.
    """
    ok = new[new["success"].astype(bool).to_numpy()].copy()
    if ok.empty:
        return {}
    table = Prediction.__table__
    # Bulk imports usually meet no open prediction at all; skip hashing their task keys then.
    if conn.execute(select(table.c.id).where(table.c.run_id.is_(None)).limit(1)).first() is None:
        return {}
    ok["task_key"] = schema.task_keys(ok).to_numpy()
    rows = conn.execute(
        select(table.c.id, table.c.task_key, table.c.created_at)
        .where(table.c.run_id.is_(None), table.c.task_key.in_(ok["task_key"].unique().tolist()))
        .order_by(table.c.created_at.desc(), table.c.id.desc())
    ).all()
    if not rows:
        return {}
    preds = pd.DataFrame(rows, columns=["prediction_id", "task_key", "predicted_at"])
    preds["rank"] = preds.groupby("task_key").cumcount()
    ok = ok.sort_values("run_id")
    ok["rank"] = ok.groupby("task_key").cumcount()
    pairs = ok.merge(preds, on=["task_key", "rank"], how="inner")
    started = pd.to_datetime(pairs["started_at"], utc=True)
    predicted = pd.to_datetime(pairs["predicted_at"], utc=True)
    pairs = pairs[(started.isna() | (started >= predicted)).to_numpy()]
    if pairs.empty:
        return {}
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_pid"), table.c.run_id.is_(None))
        .values(run_id=bindparam("b_rid"))
    )
    params = [{"b_pid": int(p), "b_rid": int(r)} for p, r in zip(pairs["prediction_id"], pairs["run_id"])]
    conn.execute(statement, params)
    return dict(zip(pairs["run_id"].astype(int).tolist(), pairs["prediction_id"].astype(int).tolist()))


# --------------------------------------------------------------------------- one run


def _frame_of(values: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{k: values[k] for k in values}], dtype=object)


def log_run(
    values: Mapping[str, Any],
    *,
    source: str = "form",
    url: str | None = None,
) -> LoggedRun:
    """Store one run (run-schema fields plus ``started_at``/``logged_by``/``notes``).

    Raises :class:`~fedopt_core.schema.ValidationError` naming the field of a bad value.  An
    identical run already stored is not added again: ``inserted`` is False and ``run_id`` is it.
    """
    unknown = [k for k in values if k not in RUN_FIELDS and k not in META_FIELDS]
    if unknown:
        raise ValidationError(unknown[0], "is not a run field")
    result = store_runs(_frame_of(values), source=source, url=url, fmt="one")
    if result.errors:
        raise ValidationError(result.errors[0].field, result.errors[0].message)
    if result.run_ids:
        run_id = result.run_ids[0]
        return LoggedRun(run_id, True, result.links.get(run_id))
    return LoggedRun(_existing_id(values, url), False, None)


def _existing_id(values: Mapping[str, Any], url: str | None) -> int:
    good, _ = schema.validate_frame(_frame_of(values))
    good, _ = _check_meta_and_formulas(good.assign(_line=None))
    key = schema.run_keys(good, extra=_timestamp_text(good["started_at"])).iloc[0]
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(Run.__table__.c.id).where(Run.__table__.c.run_key == key)).scalar_one())


def _split_known(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    known = {k: v for k, v in values.items() if k in RUN_FIELDS or k in META_FIELDS}
    extra = {k: v for k, v in values.items() if k not in known}
    return known, extra


def _merge_for_script(*parts: Mapping[str, Any] | None, notes: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Task and platform dicts as one run; unknown keys go into notes (kept, not lost)."""
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(dict(part or {}))
    known, extra = _split_known(merged)
    note_parts = [notes] if notes else []
    if known.get("notes"):
        note_parts.insert(0, str(known["notes"]))
    if extra:
        note_parts.append("extra: " + "; ".join(f"{k}={v}" for k, v in extra.items()))
    if note_parts:
        known["notes"] = " | ".join(note_parts)
    return known, sorted(extra)


def record_actual_performance(
    task_info: Mapping[str, Any],
    platform_info: Mapping[str, Any],
    execution_time: float,
    success: bool = True,
    *,
    url: str | None = None,
) -> bool:
    """Record one measured run (seconds in ``execution_time``); the seed API, kept.

    Returns True when the run is stored (or was already), False with a logged reason when the
    input is invalid or the database cannot be written.  Keys that are not run fields are kept
    in the run's notes.
    """
    from fedopt_core import db

    values, extra = _merge_for_script(task_info, platform_info)
    if extra:
        logger.warning("record_actual_performance: %s are not run fields; kept in the run's notes", ", ".join(extra))
    values["execution_time_s"] = execution_time
    values["success"] = success
    try:
        db.ensure_database(url)
        log_run(values, source="api", url=url)
    except ValidationError as exc:
        logger.warning("record_actual_performance: run not recorded: %s", exc)
        return False
    except Exception as exc:  # noqa: BLE001 - the seed API reports failure as False, never raises
        logger.warning("record_actual_performance: run not recorded: %s: %s", type(exc).__name__, exc)
        return False
    return True


@dataclass
class TrackedRun:
    """What :func:`track` measured and stored; inspect it after the ``with`` block."""

    started_at: datetime | None = None
    execution_time_s: float | None = None
    success: bool | None = None
    run_id: int | None = None
    recorded: bool = False
    error: str | None = None


@contextmanager
def track(
    task: Mapping[str, Any] | None = None,
    platform: Mapping[str, Any] | None = None,
    *,
    notes: str | None = None,
    logged_by: str | None = None,
    url: str | None = None,
) -> Iterator[TrackedRun]:
    """Time the ``with`` block and record it as a run (source ``"track"``).

    ``task`` and ``platform`` hold run-schema fields (``gpu_type`` and ``gpu_count`` are needed).
    An exception in the block records ``success=False`` and is re-raised unchanged;
    KeyboardInterrupt and SystemExit are not runs and are not recorded.  Recording never breaks
    the job: a problem is a ``RuntimeWarning`` (and a log line), and ``TrackedRun.error`` says why.
    Works without the dashboard: the configured database is created or upgraded when needed.
    """
    values, extra = _merge_for_script(task, platform, notes=notes)
    if logged_by:
        values["logged_by"] = logged_by
    if extra:
        _warn(f"{', '.join(extra)} are not run fields; they are kept in the run's notes")
    try:
        # Warn before the job runs, not hours later, if the run could not be stored.
        schema.validate_run({k: v for k, v in values.items() if k in RUN_FIELDS}, require_outcome=False)
    except ValidationError as exc:
        _warn(f"this run will not be recorded: {exc}")
    handle = TrackedRun(started_at=utcnow())
    start = time.perf_counter()
    try:
        yield handle
    except Exception:
        handle.execution_time_s = time.perf_counter() - start
        handle.success = False
        _record_tracked(handle, values, url)
        raise
    handle.execution_time_s = time.perf_counter() - start
    handle.success = True
    _record_tracked(handle, values, url)


def _record_tracked(handle: TrackedRun, values: dict[str, Any], url: str | None) -> None:
    from fedopt_core import db

    run = dict(values, execution_time_s=handle.execution_time_s, success=handle.success, started_at=handle.started_at)
    try:
        db.ensure_database(url)
        logged = log_run(run, source="track", url=url)
    except Exception as exc:  # noqa: BLE001 - the user's job must never fail because logging did
        handle.error = f"{type(exc).__name__}: {exc}"
        _warn(f"run not recorded: {handle.error}")
        return
    handle.run_id = logged.run_id
    handle.recorded = True


def _warn(message: str) -> None:
    logger.warning("fedopt.track: %s", message)
    warnings.warn(f"fedopt.track: {message}", RuntimeWarning, stacklevel=4)


# --------------------------------------------------------------------------- CSV import


def import_csv(
    source: str | os.PathLike[str] | bytes | IO[bytes],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    max_bytes: int = MAX_IMPORT_BYTES,
    url: str | None = None,
) -> ImportResult:
    """Import a run CSV or Lambda's public benchmark table (told apart by the header).

    Every row is validated; refused rows are in ``errors`` with their line number, the rest are
    stored in the same go (batches of ``batch_size`` valid rows, one transaction each).  Importing
    a file twice adds nothing.  ``progress(done_lines, total_lines)`` (data lines of the file)
    runs after each batch.  Raises
    :class:`~fedopt_core.csvfiles.CsvFormatError` when the file as a whole cannot be used (too
    large, empty, binary, wrong separator or header) and :class:`ImportAborted` if storing stops.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    data = _read_limited(source, max_bytes)
    text, warning_list = _decode(data)
    header, body_lines, reader_input, header_line = _split_header(text)
    fmt, columns = _detect_format(header)
    result = ImportResult(format=fmt, warnings=warning_list)
    total_lines = max(1, body_lines)
    reader = csv.reader(reader_input)
    try:
        next(reader)  # the header, already parsed
    except (StopIteration, csv.Error):  # pragma: no cover - _split_header read it before
        return result
    stored_source = "benchmark" if fmt == FORMAT_LAMBDA_BENCHMARK else "csv"
    # Validation is vectorised, so it runs over chunks much larger than a transaction; memory
    # stays bounded by the chunk, and a crash still loses at most the batch being written.
    chunk_rows = max(batch_size, PARSE_CHUNK_ROWS)
    rows: list[list[str]] = []
    lines: list[int] = []
    last_line = reader.line_num

    def flush() -> None:
        if not rows:
            return
        if fmt == FORMAT_LAMBDA_BENCHMARK:
            mapped = _map_lambda_benchmark(pd.DataFrame(rows, columns=header, dtype=object))
        else:
            mapped = _unneutralise(pd.DataFrame(rows, columns=[h.lower() for h in header], dtype=object)[columns])
        chunk_lines = list(lines)

        def chunk_progress(done: int, _total: int) -> None:
            if progress is not None:
                progress(min(chunk_lines[done - 1] - header_line - 1, total_lines), total_lines)

        try:
            part = store_runs(mapped, source=stored_source, line_numbers=lines, batch_size=batch_size,
                              progress=chunk_progress, url=url, fmt=fmt)
        except ImportAborted as exc:
            result._add(exc.partial)
            raise ImportAborted(
                f"stopped at line {lines[0]}; {result.inserted} runs from earlier lines are stored "
                f"(whole batches of {batch_size}): {exc.__cause__}", result,
            ) from exc.__cause__
        result._add(part)
        rows.clear()
        lines.clear()

    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # The reader cannot find the next row boundary after this; store what came before.
            line = header_line + last_line + 1
            result.rows += 1
            result.errors.append(RowError(line, "row", f"cannot be read as CSV ({exc}); the lines after it were not read"))
            break
        start_line = header_line + last_line + 1
        last_line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            result.rows += 1
            result.errors.append(RowError(start_line, "row", f"expected {len(header)} fields, found {len(record)}"))
            continue
        rows.append(record)
        lines.append(start_line)
        if len(rows) >= chunk_rows:
            flush()
    flush()
    if progress is not None:
        progress(total_lines, total_lines)
    result.errors.sort(key=lambda e: (e.line is None, e.line or 0))
    if result.rows == 0:
        result.warnings.append("the file has a header but no data rows")
    if result.inserted:
        auth.record("runs.import", getattr(source, "name", None) or (str(source) if isinstance(source, (str, os.PathLike)) else None),
                    {"format": fmt, "inserted": result.inserted, "refused": result.refused}, url=url)
    return result


def _read_limited(source: str | os.PathLike[str] | bytes | IO[bytes], max_bytes: int) -> bytes:
    limit_text = f"{max_bytes / 1024 / 1024:.0f} MiB"
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise CsvFormatError(
                f"{path.name} is {size / 1024 / 1024:.1f} MiB; the import limit is {limit_text}. Split the file and import the parts."
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    else:
        size = getattr(source, "size", None)
        if isinstance(size, int) and size > max_bytes:
            raise CsvFormatError(f"the file is {size / 1024 / 1024:.1f} MiB; the import limit is {limit_text}. Split it.")
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CsvFormatError(f"the file is larger than the import limit of {limit_text}. Split it and import the parts.")
    if not data.strip():
        raise CsvFormatError("the file is empty")
    return data


def _decode(data: bytes) -> tuple[str, list[str]]:
    if b"\x00" in data[:1_000_000] or data.startswith(b"PK\x03\x04"):
        raise CsvFormatError("this is a binary file (an Excel workbook?), not CSV text; save it as CSV (UTF-8)")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise CsvFormatError(
            f"line {line}: the file is not UTF-8 text (nor Windows-1252); save it as CSV UTF-8"
        ) from None
    return text, [
        f"the file is not UTF-8 (first at line {line}); it was read as Windows-1252. "
        "Check names with accents, or save it as CSV UTF-8."
    ]


def _split_header(text: str) -> tuple[list[str], int, io.StringIO, int]:
    """Skip leading blank and ``#`` lines; return the header, the number of data lines, a reader
    input positioned at the header, and the number of lines before the header."""
    pos = 0
    skipped = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end + 1
        line = text[pos:end]
        if line.strip() and not line.lstrip().startswith("#"):
            break
        skipped += 1
        pos = end
    body = text[pos:]
    if not body.strip():
        raise CsvFormatError("the file has no header row (it is empty or only comments)")
    header_text = body.split("\n", 1)[0]
    try:
        raw_header = next(csv.reader(io.StringIO(header_text)))
    except (StopIteration, csv.Error) as exc:
        raise CsvFormatError(f"line {skipped + 1}: the header cannot be read as CSV ({exc})") from None
    header = [h.strip().lstrip("\ufeff") for h in raw_header]
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in header_text:
                raise CsvFormatError(
                    f"line {skipped + 1}: the file is separated by {name}; fedopt reads comma-separated files "
                    "(save as 'CSV (comma delimited)')"
                )
    lowered = [h.lower() for h in header]
    duplicated = sorted({h for h in lowered if lowered.count(h) > 1})
    if duplicated:
        raise CsvFormatError(f"line {skipped + 1}: the header repeats column(s) {', '.join(duplicated)}")
    data_lines = body.count("\n") - (0 if body.endswith("\n") else -1) - 1
    return header, max(0, data_lines), io.StringIO(body, newline=""), skipped


def _detect_format(header: list[str]) -> tuple[str, list[str]]:
    """Which format the header is, and (for our own format) the columns to read (lower case)."""
    if all(c.lower() in {h.lower() for h in header} for c in LAMBDA_BENCHMARK_COLUMNS):
        return FORMAT_LAMBDA_BENCHMARK, header
    header = [h.lower() for h in header]  # run fields are lower case; "GPU_Type" is meant as gpu_type
    columns = set(header)
    allowed = set(RUN_FIELDS) | set(META_FIELDS) | set(IGNORED_IMPORT_COLUMNS)
    unknown = [c for c in header if c not in allowed]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing and (unknown or not columns & set(RUN_FIELDS)):
        raise CsvFormatError(
            "the header is not a fedopt run CSV (needs " + ", ".join(REQUIRED_COLUMNS) + " plus any run fields) "
            "nor Lambda's benchmark table (needs " + ", ".join(LAMBDA_BENCHMARK_COLUMNS) + "); "
            f"found: {', '.join(header[:12])}{' …' if len(header) > 12 else ''}"
        )
    if missing:
        raise CsvFormatError(f"the header lacks required column(s) {', '.join(missing)}")
    if unknown:
        raise CsvFormatError(
            f"unknown column(s) {', '.join(unknown)}; a run CSV holds only run fields ({', '.join(RUN_FIELDS)}) "
            f"and {', '.join(META_FIELDS)}"
        )
    return FORMAT_RUNS, [c for c in header if c not in IGNORED_IMPORT_COLUMNS]


def _unneutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo ``csvfiles.neutralise_formulas`` ("'=x" -> "=x"), so an exported file imports as itself.

    Formula-looking run fields are then refused by the import as usual; notes keep their text.
    """
    out = frame.copy()
    for name in out.columns:
        quoted = out[name].str.startswith("'").fillna(False).to_numpy(bool)
        if quoted.any():
            out.loc[quoted, name] = out.loc[quoted, name].str.replace(r"^'(?=[=+\-@\t\r])", "", regex=True)
    return out


#: Lambda benchmark column -> run field (the documented mapping; constants below).
def _map_lambda_benchmark(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``gpu_benchmarks.csv`` as runs (the mapping's one home is fedopt_core.datasets)."""
    from fedopt_core.datasets import lambda_benchmark_runs

    mapped = lambda_benchmark_runs(raw)
    return mapped[[name for name in RUN_FIELDS if name in mapped.columns]]


# --------------------------------------------------------------------------- predictions


def record_predictions(
    frame: pd.DataFrame,
    *,
    method: str | None = None,
    model_version_id: int | None = None,
    repeat_window: timedelta | None = timedelta(hours=1),
    url: str | None = None,
) -> list[int]:
    """Store predictions that were shown or requested; returns their ids, one per row.

    ``frame`` holds the task and platform fields and ``predicted_time_s`` (optional
    ``lower_s``, ``upper_s``, ``method``, ``model_version_id`` columns).  A later run of the same
    task (see :func:`fedopt_core.schema.task_keys`) is linked to the latest unlinked one.
    A row identical to an unlinked prediction stored within ``repeat_window`` (same task, method,
    model version and seconds) is not stored again and that prediction's id is returned: a page
    that re-runs on every click does not multiply the same prediction.
    """
    if "predicted_time_s" not in frame.columns:
        raise ValidationError("predicted_time_s", "is required")
    norm = schema.normalise_frame(frame.reset_index(drop=True))
    for name in ["predicted_time_s", "lower_s", "upper_s"]:
        if name in norm.columns:
            values = pd.to_numeric(norm[name], errors="coerce")
            required = name == "predicted_time_s"
            bad = ~np.isfinite(values.fillna(1.0 if not required else np.nan)) | (values <= 0)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ValidationError(name, f"must be a positive finite number of seconds (row {row})")
            norm[name] = values
    out = pd.DataFrame(
        {
            "task_key": schema.task_keys(norm).to_numpy(),
            "workload": norm["workload"],
            "gpu_type": norm["gpu_type"],
            "gpu_count": norm["gpu_count"],
            "platform": norm["platform"],
            "predicted_time_s": norm["predicted_time_s"],
            "lower_s": norm["lower_s"] if "lower_s" in norm.columns else None,
            "upper_s": norm["upper_s"] if "upper_s" in norm.columns else None,
            "method": norm["method"] if "method" in norm.columns else (method or "model"),
            "model_version_id": norm["model_version_id"] if "model_version_id" in norm.columns else model_version_id,
        }
    )
    if method is not None:
        out["method"] = out["method"].fillna(method) if "method" in norm.columns else method
    out["method"] = out["method"].fillna("model")
    out["created_at"] = utcnow()
    values = out.astype(object).where(out.notna(), None)
    records = values.to_dict("records")
    for record in records:
        if record["gpu_count"] is not None:
            record["gpu_count"] = int(record["gpu_count"])
        if record["model_version_id"] is not None:
            record["model_version_id"] = int(record["model_version_id"])
    if not records:
        return []
    table = Prediction.__table__

    def signature(task_key: str, method_name: str, version: Any, seconds: float) -> tuple:
        return (task_key, method_name, None if version is None else int(version), round(float(seconds), 6))

    with get_engine(url).begin() as conn:
        known: dict[tuple, int] = {}
        if repeat_window is not None:
            recent = conn.execute(
                select(table.c.id, table.c.task_key, table.c.method, table.c.model_version_id, table.c.predicted_time_s)
                .where(table.c.run_id.is_(None), table.c.created_at >= records[0]["created_at"] - repeat_window,
                       table.c.task_key.in_(sorted({r["task_key"] for r in records})))
                .order_by(table.c.id)
            ).all()
            known = {signature(*row[1:]): int(row[0]) for row in recent}
        signatures = [signature(r["task_key"], r["method"], r["model_version_id"], r["predicted_time_s"]) for r in records]
        fresh: dict[tuple, dict[str, Any]] = {}
        for sig, record in zip(signatures, records):
            if sig not in known and sig not in fresh:
                fresh[sig] = record
        if fresh:
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids = conn.execute(statement, list(fresh.values())).scalars().all()
            known.update(zip(fresh.keys(), (int(i) for i in ids)))
    return [known[sig] for sig in signatures]


def prediction_pairs(*, url: str | None = None) -> pd.DataFrame:
    """Each prediction linked to a later actual run: predicted vs actual seconds.

    Columns: prediction_id, predicted_at, run_id, workload, gpu_type, gpu_count, platform,
    predicted_time_s, lower_s, upper_s, method, model_version_id, execution_time_s, run_at,
    abs_pct_error (|predicted - actual| / actual), within_interval (None without an interval).
    """
    p = Prediction.__table__
    r = Run.__table__
    statement = (
        select(
            p.c.id.label("prediction_id"),
            p.c.created_at.label("predicted_at"),
            p.c.run_id,
            r.c.workload,
            r.c.gpu_type,
            r.c.gpu_count,
            r.c.platform,
            p.c.predicted_time_s,
            p.c.lower_s,
            p.c.upper_s,
            p.c.method,
            p.c.model_version_id,
            r.c.execution_time_s,
            func.coalesce(r.c.started_at, r.c.created_at).label("run_at"),
        )
        .join(r, r.c.id == p.c.run_id)
        .order_by(p.c.id)
    )
    with get_engine(url).connect() as conn:
        rows = conn.execute(statement).all()
    columns = ["prediction_id", "predicted_at", "run_id", "workload", "gpu_type", "gpu_count", "platform",
               "predicted_time_s", "lower_s", "upper_s", "method", "model_version_id", "execution_time_s", "run_at"]
    frame = pd.DataFrame(rows, columns=columns)
    for name in ["predicted_time_s", "lower_s", "upper_s", "execution_time_s"]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    for name in ["predicted_at", "run_at"]:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    actual = frame["execution_time_s"]
    frame["abs_pct_error"] = (frame["predicted_time_s"] - actual).abs() / actual
    has_interval = frame["lower_s"].notna() & frame["upper_s"].notna()
    inside = (actual >= frame["lower_s"]) & (actual <= frame["upper_s"])
    frame["within_interval"] = inside.astype(object).where(has_interval, None)
    return frame


# --------------------------------------------------------------------------- reading


def _as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    values = list(value)
    return values or None


def _as_utc(value: date | datetime, *, end_of_day: bool = False) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give datetimes with a time zone (fedopt stores UTC)")
        return value.astimezone(timezone.utc)
    moment = datetime.combine(value, dtime.min, tzinfo=timezone.utc)
    return moment + timedelta(days=1) if end_of_day else moment


def list_runs(
    *,
    workload: str | list[str] | None = None,
    gpu_type: str | list[str] | None = None,
    source: str | list[str] | None = None,
    platform: str | list[str] | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    success: bool | None = None,
    limit: int | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Runs, newest first, with :data:`LIST_COLUMNS`.

    ``since``/``until`` filter on when the run started (or was logged, if its start is unknown);
    a ``date`` for ``until`` includes that whole day.
    """
    table = Run.__table__
    when = func.coalesce(table.c.started_at, table.c.created_at)
    statement = select(*[table.c[name] for name in LIST_COLUMNS])
    for column, wanted in (("workload", workload), ("gpu_type", gpu_type), ("source", source), ("platform", platform)):
        values = _as_list(wanted)
        if values is not None:
            statement = statement.where(table.c[column].in_(values))
    if since is not None:
        statement = statement.where(when >= _as_utc(since))
    if until is not None:
        if isinstance(until, datetime):
            statement = statement.where(when <= _as_utc(until))
        else:
            statement = statement.where(when < _as_utc(until, end_of_day=True))
    if success is not None:
        statement = statement.where(table.c.success == bool(success))
    statement = statement.order_by(table.c.id.desc())
    if limit:
        statement = statement.limit(int(limit))
    with get_engine(url).connect() as conn:
        rows = conn.execute(statement).all()
    return _runs_frame(rows, LIST_COLUMNS)


def _runs_frame(rows: list, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    for name in schema.NUMERIC_FIELDS:
        if name in frame.columns:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    if "gpu_count" in frame.columns:
        frame["gpu_count"] = frame["gpu_count"].astype("int64")
    if "id" in frame.columns:
        frame["id"] = frame["id"].astype("int64")
    for name in ["started_at", "created_at"]:
        if name in frame.columns:
            frame[name] = pd.to_datetime(frame[name], utc=True)
    if "success" in frame.columns:
        frame["success"] = frame["success"].astype(bool)
    for name in STRING_FIELDS + ["logged_by", "notes", "source", "run_key"]:
        if name in frame.columns:
            frame[name] = frame[name].astype(object)
    return frame


def get_run(run_id: int, *, url: str | None = None) -> dict[str, Any]:
    """One run as a dict (:data:`LIST_COLUMNS`); raises :class:`RunNotFoundError`."""
    table = Run.__table__
    with get_engine(url).connect() as conn:
        row = conn.execute(select(*[table.c[n] for n in LIST_COLUMNS]).where(table.c.id == int(run_id))).first()
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id}")
    return dict(zip(LIST_COLUMNS, row))


def latest_run(*, url: str | None = None) -> dict[str, Any] | None:
    """The most recently logged run (to pre-fill a form), or None."""
    frame = list_runs(limit=1, url=url)
    if frame.empty:
        return None
    record = frame.iloc[0].to_dict()
    return {k: (None if schema._is_missing(v) else v) for k, v in record.items()}


def run_facets(*, url: str | None = None) -> dict[str, list[str]]:
    """The distinct workloads, GPU types, platforms and sources stored (for filter widgets)."""
    table = Run.__table__
    out: dict[str, list[str]] = {}
    with get_engine(url).connect() as conn:
        for name in ["workload", "gpu_type", "platform", "source"]:
            column = table.c[name]
            values = conn.execute(select(column).where(column.is_not(None)).distinct().order_by(column)).scalars()
            out[name] = [str(v) for v in values]
    return out


def training_frame(*, url: str | None = None) -> pd.DataFrame:
    """Successful runs in the run schema (normalised), for fitting the predictor.

    Columns: :data:`~fedopt_core.schema.RUN_FIELDS` plus ``run_id``, ``source`` and ``created_at``.
    """
    table = Run.__table__
    columns = [*RUN_FIELDS, "id", "source", "created_at"]
    statement = select(*[table.c[n] for n in columns]).where(table.c.success.is_(True)).order_by(table.c.id)
    with get_engine(url).connect() as conn:
        rows = conn.execute(statement).all()
    frame = _runs_frame(rows, columns).rename(columns={"id": "run_id"})
    return schema.normalise_frame(frame)


def count_runs_since(
    since: datetime | int | None = None,
    *,
    successful_only: bool = True,
    url: str | None = None,
) -> int:
    """How many runs were logged after ``since`` (a timezone-aware datetime, or the id of a
    :class:`~fedopt_core.models.ModelVersion`: runs logged after it was created).  None: all."""
    table = Run.__table__
    statement = select(func.count()).select_from(table)
    with get_engine(url).connect() as conn:
        if isinstance(since, bool):
            raise TypeError("since must be a datetime, a model version id or None")
        if isinstance(since, int):
            mv = ModelVersion.__table__
            created = conn.execute(select(mv.c.created_at).where(mv.c.id == since)).scalar()
            if created is None:
                raise LookupError(f"no model version with id {since}")
            statement = statement.where(table.c.created_at > created)
        elif isinstance(since, datetime):
            statement = statement.where(table.c.created_at > _as_utc(since))
        elif since is not None:
            raise TypeError("since must be a datetime, a model version id or None")
        if successful_only:
            statement = statement.where(table.c.success.is_(True))
        return int(conn.execute(statement).scalar_one())


# --------------------------------------------------------------------------- changing and exporting


def update_run(run_id: int, values: Mapping[str, Any], *, url: str | None = None) -> dict[str, Any]:
    """Change fields of a stored run (validated like a new one); returns the run as stored.

    Raises :class:`RunNotFoundError`, or :class:`~fedopt_core.schema.ValidationError` naming the
    field (``run`` when the change would make it identical to another stored run).
    """
    auth.require("member", "editing a run")
    unknown = [k for k in values if k not in RUN_FIELDS and k not in META_FIELDS]
    if unknown:
        raise ValidationError(unknown[0], "is not a run field")
    current = get_run(run_id, url=url)
    merged = {k: current[k] for k in [*RUN_FIELDS, *META_FIELDS]}
    merged.update(values)
    good, errors = schema.validate_frame(_frame_of(merged))
    if errors:
        raise ValidationError(errors[0].field, errors[0].message)
    good, errors = _check_meta_and_formulas(good.assign(_line=None))
    if errors:
        raise ValidationError(errors[0].field, errors[0].message)
    good["run_key"] = schema.run_keys(good, extra=_timestamp_text(good["started_at"])).to_numpy()
    record = _records(good, "form")[0]
    for name in ("source", "created_at"):
        record.pop(name)
    table = Run.__table__
    changed = sorted(k for k in values if not _same(current.get(k), record.get(k)))
    with session_scope(url) as session:
        clash = session.execute(
            select(table.c.id).where(table.c.run_key == record["run_key"], table.c.id != int(run_id))
        ).scalar()
        if clash is not None:
            raise ValidationError("run", f"an identical run is already stored (run {clash})")
        session.execute(update(table).where(table.c.id == int(run_id)).values(**record))
        auth.record("run.edit", f"run {int(run_id)}", {"fields": changed}, session=session)
    return get_run(run_id, url=url)


def _same(old: Any, new: Any) -> bool:
    if schema._is_missing(old) and schema._is_missing(new):
        return True
    return old == new


def delete_run(run_id: int, *, url: str | None = None) -> bool:
    """Delete a run (admin); its prediction becomes unlinked again (free for a later run).

    Returns False if there is no such run.  The deletion is in the audit log.
    """
    auth.require("admin", "deleting a run")
    table = Run.__table__
    with session_scope(url) as session:
        row = session.execute(select(table.c.workload, table.c.gpu_type, table.c.execution_time_s)
                              .where(table.c.id == int(run_id))).first()
        if row is None:
            return False
        prediction = Prediction.__table__
        usage = UsageSession.__table__
        session.execute(update(prediction).where(prediction.c.run_id == int(run_id)).values(run_id=None))
        session.execute(update(usage).where(usage.c.run_id == int(run_id)).values(run_id=None))
        session.execute(delete(table).where(table.c.id == int(run_id)))
        auth.record("run.delete", f"run {int(run_id)}",
                    {"workload": row[0], "gpu_type": row[1], "execution_time_s": row[2]}, session=session)
    return True


def export_csv(path: str | os.PathLike[str] | None = None, *, url: str | None = None, **filters: Any) -> str:
    """The runs (all, or those matching :func:`list_runs` filters) as CSV text, formulas neutralised.

    Written to ``path`` too when given.  The file can be imported again (it adds nothing).
    """
    frame = list_runs(url=url, **filters)
    frame = frame.sort_values("id")[EXPORT_COLUMNS]
    return to_safe_csv(frame, path)


def template_csv() -> str:
    """An empty run CSV with every field in the header, for people filling one by hand."""
    return ",".join([*RUN_FIELDS, *META_FIELDS]) + "\n"
