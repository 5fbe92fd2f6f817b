"""The one write path for actual runs: store, log one, edit, delete.

Every channel (the Runs page form, CSV imports, ``fedopt runs log``, :func:`~fedopt_core.runs.tracking.track`
and ``record_actual_performance``) writes through :func:`store_runs`, which

* validates with :func:`fedopt_core.schema.validate_frame` (the one validation path),
* gives each run a stable identity (:func:`fedopt_core.schema.run_keys` over its fields plus its
  start time), so importing the same file twice adds nothing,
* inserts in batches, each batch inside one transaction (a crash leaves whole batches or none),
* links each new successful run to the latest unlinked :class:`~fedopt_core.models.Prediction`
  of the same task, so an actual run is later scored against what was predicted at the time.

Text fields that start like a spreadsheet formula (``= + @``, tab, carriage return) are refused;
``started_at`` must be ISO 8601 (a time without a zone is UTC).  Predictions are scored only by
successful runs that did not start before the prediction was made, and never by rows of Lambda's
public benchmark (they are not the group's own runs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from fedopt_core import auth, db, schema
from fedopt_core.models import Prediction, Run, UsageSession, utcnow
from fedopt_core.runs.queries import get_run
from fedopt_core.schema import (
    CONTROL_CHARACTERS,
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    META_FIELDS,
    RUN_FIELDS,
    STRING_FIELDS,
    RowError,
    ValidationError,
)

#: Rows per transaction.  A crash mid-import leaves a whole number of batches stored.
DEFAULT_BATCH_SIZE = 1000

#: Where a run came from.
SOURCES = ["form", "csv", "benchmark", "cli", "track", "api"]


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

    def __init__(self, message: str, partial: ImportResult) -> None:
        super().__init__(message)
        self.partial = partial


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
    session: Session | None = None,
    fmt: str = "frame",
    audit: str | None = None,
) -> ImportResult:
    """Validate and store runs (run-schema columns plus optional ``started_at``, ``logged_by``, ``notes``).

    Bad rows are reported in ``errors`` (with ``line_numbers`` if given) and the good ones stored;
    rows already stored (same identity) are counted as ``duplicates``.  Validation runs over the
    whole frame at once; the good rows are then written in batches of ``batch_size``, each one
    transaction, and ``progress(done_rows, total_rows)`` runs after each.  Given a ``session``, the
    batches are written in the caller's transaction instead (it commits them, or none).
    Raises :class:`ImportAborted` if a batch cannot be written (earlier batches stay stored).
    ``audit``: the import's name; each batch that stores runs then writes its audit row with them.
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
        named = given.notna() & (given.astype(str).str.strip() != "")
        frame = frame.assign(logged_by=given.where(named, actor.identity))
    total = len(frame)
    good, errors = _prepare(frame)
    first = ~good["run_key"].duplicated()
    result = ImportResult(format=fmt, rows=total, errors=errors, duplicates=int((~first).sum()))
    good = good[first.to_numpy()].reset_index(drop=True)
    records = _records(good, source)  # once: per-column conversion is cheap only in bulk
    for start in range(0, len(good), batch_size):
        batch = good.iloc[start : start + batch_size]
        try:
            with _batch_connection(session) as conn:
                part = _write_batch(conn, batch, records[start : start + batch_size])
                if audit is not None and part.inserted:
                    # In the batch's own transaction: runs stored by a process killed later are audited.
                    lines = batch["_line"].dropna()
                    auth.record_on(
                        conn,
                        "runs.import",
                        audit,
                        {
                            "format": fmt,
                            "inserted": part.inserted,
                            "lines": [int(lines.min()), int(lines.max())] if len(lines) else None,
                        },
                    )
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


@contextmanager
def _batch_connection(session: Session | None) -> Iterator[Connection]:
    """One batch's connection: its own transaction, or the caller's session's."""
    if session is not None:
        yield session.connection()
        return
    with db.get_engine().begin() as conn:
        yield conn


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

    for name in [*_FORMULA_CHECKED, "notes"]:
        text = good[name].astype("string")
        limit = MAX_NOTES_CHARS if name == "notes" else MAX_NAME_CHARS
        refuse((text.str.len() > limit).fillna(False).to_numpy(bool), name, f"is longer than {limit:,} characters")
        # Notes may break lines; no text may carry terminal escapes, NULs or reordering marks.
        checked = text.str.replace(r"[\r\n\t]", "", regex=True) if name == "notes" else text
        control = checked.str.contains(CONTROL_CHARACTERS, regex=True).fillna(False).to_numpy(bool)
        refuse(control, name, "contains control characters (a NUL, an escape, a line break or a direction mark)")
    for name in _FORMULA_CHECKED:
        text = good[name].astype("string")
        starts = text.str.startswith(_FORMULA_START).fillna(False).to_numpy(bool)
        refuse(starts, name, "starts like a spreadsheet formula (= + @); fedopt does not import formulas")

    given = good["started_at"]
    given_mask = given.notna() & (given.astype(str).str.strip() != "")
    parsed = _parse_timestamps(given.where(given_mask.to_numpy(), None))
    refuse(
        (given_mask & parsed.isna()).to_numpy(bool),
        "started_at",
        "is not a date and time (use ISO 8601, e.g. 2025-03-01T14:30:00Z)",
    )
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
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, dtime.min, tzinfo=UTC)
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
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


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
    statement = (
        dialect_insert(table).on_conflict_do_nothing(index_elements=["run_key"]).returning(table.c.run_key, table.c.id)
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
    params = [{"b_pid": int(p), "b_rid": int(r)} for p, r in zip(pairs["prediction_id"], pairs["run_id"], strict=True)]
    conn.execute(statement, params)
    return dict(zip(pairs["run_id"].astype(int).tolist(), pairs["prediction_id"].astype(int).tolist(), strict=True))


# --------------------------------------------------------------------------- one run


def _frame_of(values: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{k: values[k] for k in values}], dtype=object)


def log_run(
    values: Mapping[str, Any],
    *,
    source: str = "form",
    session: Session | None = None,
) -> LoggedRun:
    """Store one run (run-schema fields plus ``started_at``/``logged_by``/``notes``).

    Raises :class:`~fedopt_core.schema.ValidationError` naming the field of a bad value.  An
    identical run already stored is not added again: ``inserted`` is False and ``run_id`` is it.
    """
    unknown = [k for k in values if k not in RUN_FIELDS and k not in META_FIELDS]
    if unknown:
        raise ValidationError(unknown[0], "is not a run field")
    result = store_runs(_frame_of(values), source=source, session=session, fmt="one")
    if result.errors:
        raise ValidationError(result.errors[0].field, result.errors[0].message)
    if result.run_ids:
        run_id = result.run_ids[0]
        return LoggedRun(run_id, True, result.links.get(run_id))
    return LoggedRun(_existing_id(values, session), False, None)


def _existing_id(values: Mapping[str, Any], session: Session | None) -> int:
    good, _ = schema.validate_frame(_frame_of(values))
    good, _ = _check_meta_and_formulas(good.assign(_line=None))
    key = schema.run_keys(good, extra=_timestamp_text(good["started_at"])).iloc[0]
    with db.use(session) as db_session:
        return int(db_session.execute(select(Run.__table__.c.id).where(Run.__table__.c.run_key == key)).scalar_one())


# --------------------------------------------------------------------------- changing and exporting


def update_run(run_id: int, values: Mapping[str, Any], *, session: Session | None = None) -> dict[str, Any]:
    """Change fields of a stored run (validated like a new one); returns the run as stored.

    Raises :class:`RunNotFoundError`, or :class:`~fedopt_core.schema.ValidationError` naming the
    field (``run`` when the change would make it identical to another stored run).
    """
    auth.require("member", "editing a run")
    unknown = [k for k in values if k not in RUN_FIELDS and k not in META_FIELDS]
    if unknown:
        raise ValidationError(unknown[0], "is not a run field")
    current = get_run(run_id, session=session)
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
    with db.use(session) as db_session:
        clash = db_session.execute(
            select(table.c.id).where(table.c.run_key == record["run_key"], table.c.id != int(run_id))
        ).scalar()
        if clash is not None:
            raise ValidationError("run", f"an identical run is already stored (run {clash})")
        db_session.execute(update(table).where(table.c.id == int(run_id)).values(**record))
        auth.record("run.edit", f"run {int(run_id)}", {"fields": changed}, session=db_session)
    return get_run(run_id, session=session)


def _same(old: Any, new: Any) -> bool:
    if schema._is_missing(old) and schema._is_missing(new):
        return True
    return old == new


def delete_run(run_id: int, *, session: Session | None = None) -> bool:
    """Delete a run (admin); its prediction becomes unlinked again (free for a later run).

    Returns False if there is no such run.  The deletion is in the audit log.
    """
    auth.require("admin", "deleting a run")
    table = Run.__table__
    with db.use(session) as db_session:
        row = db_session.execute(
            select(table.c.workload, table.c.gpu_type, table.c.execution_time_s).where(table.c.id == int(run_id))
        ).first()
        if row is None:
            return False
        prediction = Prediction.__table__
        usage = UsageSession.__table__
        db_session.execute(update(prediction).where(prediction.c.run_id == int(run_id)).values(run_id=None))
        db_session.execute(update(usage).where(usage.c.run_id == int(run_id)).values(run_id=None))
        db_session.execute(delete(table).where(table.c.id == int(run_id)))
        auth.record(
            "run.delete",
            f"run {int(run_id)}",
            {"workload": row[0], "gpu_type": row[1], "execution_time_s": row[2]},
            session=db_session,
        )
    return True
