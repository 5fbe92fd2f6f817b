"""Runs from job scripts: ``with track(...)`` times a block and records it; ``record_actual_performance``
is the seed's one-call API.  Recording never breaks the job (a problem is a warning)."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fedopt_core import db, schema
from fedopt_core.models import utcnow
from fedopt_core.runs.jobs import job_task
from fedopt_core.runs.store import log_run
from fedopt_core.schema import META_FIELDS, RUN_FIELDS, ValidationError

logger = logging.getLogger("fedopt.runs")


def _split_known(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    known = {k: v for k, v in values.items() if k in RUN_FIELDS or k in META_FIELDS}
    extra = {k: v for k, v in values.items() if k not in known}
    return known, extra


def _described_job(task: Mapping[str, Any] | None) -> dict[str, Any]:
    """The task as every face builds it (``jobs.job_task``): ``model`` is the workload, ``tokens``
    the work, the task type follows the mode.  Nothing is assumed for a run; a value the builder
    refuses is left for the run's own validation to report."""
    task = dict(task or {})
    known = {k: v for k, v in task.items() if k in schema.TASK_FIELDS}
    try:
        built = job_task(known, model=task.get("model"), tokens=task.get("tokens"), for_run=True)
    except ValidationError:
        return task
    rest = {k: v for k, v in task.items() if k not in schema.TASK_FIELDS and k not in ("model", "tokens")}
    return {**rest, **built}


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
    database_url: str | None = None,
) -> bool:
    """Record one measured run (seconds in ``execution_time``); the seed API, kept.

    Returns True when the run is stored (or was already), False with a logged reason when the
    input is invalid or the database cannot be written.  Keys that are not run fields are kept
    in the run's notes.  ``database_url``: another database than the configured one.
    """
    values, extra = _merge_for_script(task_info, platform_info)
    if extra:
        logger.warning("record_actual_performance: %s are not run fields; kept in the run's notes", ", ".join(extra))
    values["execution_time_s"] = execution_time
    values["success"] = success
    try:
        db.ensure_database(database_url)
        with db.session_scope(database_url) as session:
            log_run(values, source="api", session=session)
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
    database_url: str | None = None,
) -> Iterator[TrackedRun]:
    """Time the ``with`` block and record it as a run (source ``"track"``).

    ``task`` and ``platform`` hold run-schema fields (``gpu_type`` and ``gpu_count`` are needed);
    ``task`` is read as the Predict page and ``fedopt predict`` read a job (``model`` and
    ``tokens`` too: see :func:`fedopt_core.runs.jobs.job_task`).
    An exception in the block records ``success=False`` and is re-raised unchanged;
    KeyboardInterrupt and SystemExit are not runs and are not recorded.  Recording never breaks
    the job: a problem is a ``RuntimeWarning`` (and a log line), and ``TrackedRun.error`` says why.
    Works without the dashboard: the configured database (or ``database_url``) is created or
    upgraded when needed.
    """
    values, extra = _merge_for_script(_described_job(task), platform, notes=notes)
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
        _record_tracked(handle, values, database_url)
        raise
    handle.execution_time_s = time.perf_counter() - start
    handle.success = True
    _record_tracked(handle, values, database_url)


def _record_tracked(handle: TrackedRun, values: dict[str, Any], database_url: str | None) -> None:
    run = dict(values, execution_time_s=handle.execution_time_s, success=handle.success, started_at=handle.started_at)
    try:
        db.ensure_database(database_url)
        with db.session_scope(database_url) as session:
            logged = log_run(run, source="track", session=session)
    except Exception as exc:  # noqa: BLE001 - the user's job must never fail because logging did
        handle.error = f"{type(exc).__name__}: {exc}"
        _warn(f"run not recorded: {handle.error}")
        return
    handle.run_id = logged.run_id
    handle.recorded = True


def _warn(message: str) -> None:
    logger.warning("fedopt.track: %s", message)
    warnings.warn(f"fedopt.track: {message}", RuntimeWarning, stacklevel=4)
