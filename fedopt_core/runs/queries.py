"""Reading stored runs: lists with filters, one run, the facets for filter widgets, the training set."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session

from fedopt_core import db, schema
from fedopt_core.models import ModelVersion, Run
from fedopt_core.schema import META_FIELDS, RUN_FIELDS, STRING_FIELDS

#: Columns of :func:`list_runs`.
LIST_COLUMNS = ["id", *RUN_FIELDS, *META_FIELDS, "created_at", "source", "run_key"]


class RunNotFoundError(LookupError):
    """No run has this id."""


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
        return value.astimezone(UTC)
    moment = datetime.combine(value, dtime.min, tzinfo=UTC)
    return moment + timedelta(days=1) if end_of_day else moment


def list_runs(
    *,
    workload: str | list[str] | None = None,
    gpu_type: str | list[str] | None = None,
    source: str | list[str] | None = None,
    platform: str | list[str] | None = None,
    software: str | list[str] | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    success: bool | None = None,
    limit: int | None = None,
    session: Session | None = None,
) -> pd.DataFrame:
    """Runs, newest first, with :data:`LIST_COLUMNS`.

    ``since``/``until`` filter on when the run started (or was logged, if its start is unknown);
    a ``date`` for ``until`` includes that whole day.
    """
    table = Run.__table__
    when = func.coalesce(table.c.started_at, table.c.created_at)
    statement = select(*[table.c[name] for name in LIST_COLUMNS])
    for column, wanted in (
        ("workload", workload),
        ("gpu_type", gpu_type),
        ("source", source),
        ("platform", platform),
        ("software", software),
    ):
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
    with db.use(session) as db_session:
        rows = db_session.execute(statement).all()
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


def get_run(run_id: int, *, session: Session | None = None) -> dict[str, Any]:
    """One run as a dict (:data:`LIST_COLUMNS`); raises :class:`RunNotFoundError`."""
    table = Run.__table__
    with db.use(session) as db_session:
        row = db_session.execute(select(*[table.c[n] for n in LIST_COLUMNS]).where(table.c.id == int(run_id))).first()
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id}")
    return dict(zip(LIST_COLUMNS, row, strict=True))


def latest_run(*, session: Session | None = None) -> dict[str, Any] | None:
    """The most recently logged run (to pre-fill a form), or None."""
    frame = list_runs(limit=1, session=session)
    if frame.empty:
        return None
    record = frame.iloc[0].to_dict()
    return {k: (None if schema._is_missing(v) else v) for k, v in record.items()}


#: The run fields :func:`run_facets` lists by default.
FACET_FIELDS = ("workload", "gpu_type", "platform", "source", "software")


def run_facets(*names: str, session: Session | None = None) -> dict[str, list[str]]:
    """The distinct values stored of ``names`` (default :data:`FACET_FIELDS`), for filters and pickers."""
    table = Run.__table__
    out: dict[str, list[str]] = {}
    with db.use(session) as db_session:
        for name in names or FACET_FIELDS:
            column = table.c[name]
            values = db_session.execute(select(column).where(column.is_not(None)).distinct().order_by(column)).scalars()
            out[name] = [str(v) for v in values]
    return out


def training_frame(*, session: Session | None = None) -> pd.DataFrame:
    """Successful runs in the run schema (normalised), for fitting the predictor.

    Columns: :data:`~fedopt_core.schema.RUN_FIELDS` plus ``run_id``, ``source`` and ``created_at``.
    """
    table = Run.__table__
    columns = [*RUN_FIELDS, "id", "source", "created_at"]
    statement = select(*[table.c[n] for n in columns]).where(table.c.success.is_(True)).order_by(table.c.id)
    with db.use(session) as db_session:
        rows = db_session.execute(statement).all()
    frame = _runs_frame(rows, columns).rename(columns={"id": "run_id"})
    return schema.normalise_frame(frame)


def count_runs_since(
    since: datetime | int | None = None,
    *,
    successful_only: bool = True,
    session: Session | None = None,
) -> int:
    """How many runs were logged after ``since`` (a timezone-aware datetime, or the id of a
    :class:`~fedopt_core.models.ModelVersion`: runs logged after it was created).  None: all."""
    table = Run.__table__
    statement = select(func.count()).select_from(table)
    with db.use(session) as db_session:
        if isinstance(since, bool):
            raise TypeError("since must be a datetime, a model version id or None")
        if isinstance(since, int):
            mv = ModelVersion.__table__
            created = db_session.execute(select(mv.c.created_at).where(mv.c.id == since)).scalar()
            if created is None:
                raise LookupError(f"no model version with id {since}")
            statement = statement.where(table.c.created_at > created)
        elif isinstance(since, datetime):
            statement = statement.where(table.c.created_at > _as_utc(since))
        elif since is not None:
            raise TypeError("since must be a datetime, a model version id or None")
        if successful_only:
            statement = statement.where(table.c.success.is_(True))
        return int(db_session.execute(statement).scalar_one())
