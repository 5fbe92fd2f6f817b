"""Predictions that were shown, kept to be scored against the actual runs logged after them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlmodel import Session

from fedopt_core import db, schema
from fedopt_core.models import Prediction, Run, utcnow
from fedopt_core.schema import ValidationError


def record_predictions(
    frame: pd.DataFrame,
    *,
    method: str | None = None,
    model_version_id: int | None = None,
    repeat_window: timedelta | None = timedelta(hours=1),
    session: Session | None = None,
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

    with db.use(session) as db_session:
        known: dict[tuple, int] = {}
        if repeat_window is not None:
            recent = db_session.execute(
                select(table.c.id, table.c.task_key, table.c.method, table.c.model_version_id, table.c.predicted_time_s)
                .where(
                    table.c.run_id.is_(None),
                    table.c.created_at >= records[0]["created_at"] - repeat_window,
                    table.c.task_key.in_(sorted({r["task_key"] for r in records})),
                )
                .order_by(table.c.id)
            ).all()
            known = {signature(*row[1:]): int(row[0]) for row in recent}
        signatures = [
            signature(r["task_key"], r["method"], r["model_version_id"], r["predicted_time_s"]) for r in records
        ]
        fresh: dict[tuple, dict[str, Any]] = {}
        for sig, record in zip(signatures, records, strict=True):
            if sig not in known and sig not in fresh:
                fresh[sig] = record
        if fresh:
            statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            ids = db_session.execute(statement, list(fresh.values())).scalars().all()
            known.update(zip(fresh.keys(), (int(i) for i in ids), strict=True))
    return [known[sig] for sig in signatures]


def weekly_accuracy(pairs: pd.DataFrame) -> pd.DataFrame:
    """Median absolute % error and interval coverage of :func:`prediction_pairs`, per week of the run.

    Columns: ``week`` (its first day), ``median_ape``, ``coverage`` (share of runs inside their
    interval, among predictions that had one) and ``runs``.
    """
    columns = ["week", "median_ape", "coverage", "runs"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    week = pd.to_datetime(pairs["run_at"], utc=True).dt.tz_localize(None).dt.to_period("W").dt.start_time
    inside = pd.to_numeric(
        pairs["within_interval"].astype(object).where(pairs["within_interval"].notna()), errors="coerce"
    )
    frame = pd.DataFrame({"week": week, "ape": pairs["abs_pct_error"].astype(float), "inside": inside})
    out = (
        frame.groupby("week")
        .agg(median_ape=("ape", "median"), coverage=("inside", "mean"), runs=("ape", "size"))
        .reset_index()
    )
    return out[columns]


def prediction_pairs(*, session: Session | None = None) -> pd.DataFrame:
    """Each prediction linked to a later actual run: predicted vs actual seconds.

    Columns: prediction_id, predicted_at, run_id, workload, gpu_type, gpu_count, platform,
    predicted_time_s, lower_s, upper_s, method, model_version_id, execution_time_s, run_at,
    abs_pct_error (|predicted - actual| / actual), within_interval (None without an interval),
    log_ratio (log of predicted / actual).
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
    with db.use(session) as db_session:
        rows = db_session.execute(statement).all()
    columns = [
        "prediction_id",
        "predicted_at",
        "run_id",
        "workload",
        "gpu_type",
        "gpu_count",
        "platform",
        "predicted_time_s",
        "lower_s",
        "upper_s",
        "method",
        "model_version_id",
        "execution_time_s",
        "run_at",
    ]
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
    frame["log_ratio"] = np.log(frame["predicted_time_s"] / actual)
    return frame
