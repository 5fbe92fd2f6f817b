"""Usage sessions: spans of time an account paid for a machine, and every figure derived from them.

Hours this month, sessions launched, what is left of a quota: all queries over these rows, split by
calendar month (UTC), so there is no counter to reset and two people recording at once cannot
overwrite each other.  A session crossing a window's edge is split in proportion to its hours.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session, select

from fedopt_core import auth, db
from fedopt_core.accounts.fields import (
    MAX_TEXT,
    AccountInputError,
    as_utc,
    get_account,
    read_amount,
    read_text,
    read_username,
)
from fedopt_core.accounts.months import month_bounds, month_label
from fedopt_core.models import Account, Platform, PlatformPrice, Run, UsageSession, utcnow

SOURCES = ("manual", "lambda_sync", "run_log")
OUTCOMES = ("completed", "failed", "preempted", "running")


def _price_at(session: Session, platform: Platform, at: datetime) -> float | None:
    """The platform's price when the session started: the last observation at or before it."""
    before = session.exec(
        select(PlatformPrice)
        .where(PlatformPrice.platform_id == platform.id, PlatformPrice.observed_at <= at)
        .order_by(PlatformPrice.observed_at.desc())  # type: ignore[attr-defined]
    ).first()
    if before is not None:
        return before.price_per_hour_usd
    # Older than every observation: the earliest known price is the best guess.
    earliest = session.exec(
        select(PlatformPrice).where(PlatformPrice.platform_id == platform.id).order_by(PlatformPrice.observed_at)
    ).first()
    return earliest.price_per_hour_usd if earliest is not None else platform.price_per_hour_usd


def find_platform(session: Session, instance_type: str, provider: str | None) -> Platform | None:
    candidates = session.exec(select(Platform).where(Platform.instance_type == instance_type)).all()
    if provider:
        same = [p for p in candidates if p.provider.lower() == provider.lower()]
        if same:
            return same[0]
    return candidates[0] if len(candidates) == 1 else None


def session_text_fields(
    *,
    person: Any = None,
    workload: Any = None,
    instance_id: Any = None,
    region: Any = None,
    notes: Any = None,
) -> dict[str, str | None]:
    """The text fields of a usage session, read and checked (AccountInputError names the field).

    A launch calls this *before* it starts a machine, so the session of a running machine can
    always be written afterwards."""
    return {
        "person": read_text(person, "person"),
        "workload": read_text(workload, "workload", max_len=200),
        "instance_id": read_text(instance_id, "instance_id", max_len=200),
        "region": read_text(region, "region"),
        "notes": read_text(notes, "notes", max_len=MAX_TEXT, allow_newlines=True),
    }


def add_usage_session(
    username: str,
    platform: str,
    started_at: datetime | str,
    ended_at: datetime | str | None = None,
    cost_usd: float | None = None,
    success: bool = True,
    source: str = "manual",
    *,
    hours: float | None = None,
    provider: str | None = None,
    price_per_hour_usd: float | None = None,
    outcome: str | None = None,
    person: str | None = None,
    workload: str | None = None,
    run_id: int | None = None,
    instance_id: str | None = None,
    region: str | None = None,
    notes: str | None = None,
    session: Session | None = None,
) -> int:
    """Record a session an account paid for; returns its id.

    ``hours`` may stand in for ``ended_at``.  Without ``cost_usd`` the cost is hours times the
    platform's catalogue price at ``started_at``.  ``ended_at`` None (and no hours) records a
    machine still running; its hours count up to now.
    """
    auth.require("member", "recording usage")
    name = read_username(username)
    platform_name = read_text(platform, "platform", required=True)
    start = as_utc(started_at, "started_at")
    if start is None:
        raise AccountInputError("started_at", "is required")
    end = as_utc(ended_at, "ended_at")
    duration_h = read_amount(hours, "hours")
    if end is not None and duration_h is not None:
        raise AccountInputError("hours", "give either ended_at or hours, not both")
    if duration_h is not None:
        end = start + timedelta(hours=duration_h)
    if end is not None and end < start:
        raise AccountInputError("ended_at", "is before started_at")
    cost = read_amount(cost_usd, "cost_usd")
    price = read_amount(price_per_hour_usd, "price_per_hour_usd")
    if source not in SOURCES:
        raise AccountInputError("source", f"{source!r} is not one of {', '.join(SOURCES)}")
    if not isinstance(success, (bool, np.bool_)):
        raise AccountInputError("success", "must be true or false")
    if outcome is None:
        outcome = "running" if end is None else ("completed" if success else "failed")
    if outcome not in OUTCOMES:
        raise AccountInputError("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}")
    values = session_text_fields(person=person, workload=workload, instance_id=instance_id, region=region, notes=notes)
    if run_id is not None and (not isinstance(run_id, (int, np.integer)) or run_id < 1):
        raise AccountInputError("run_id", "must be a positive whole number")
    with db.use(session) as db_session:
        # Reads first, then one INSERT: under SQLite the write lock is taken only by the INSERT, so
        # concurrent writers queue on busy_timeout instead of failing on a stale read snapshot.
        account = get_account(db_session, name)
        if run_id is not None and db_session.get(Run, int(run_id)) is None:
            raise AccountInputError("run_id", f"no run with id {int(run_id)}")
        provider_name = (read_text(provider, "provider") or account.provider).lower()
        if price is None:
            found = find_platform(db_session, platform_name, provider_name)  # type: ignore[arg-type]
            if found is not None:
                price = _price_at(db_session, found, start)
        if cost is None and price is None:
            raise AccountInputError(
                "platform", f"{platform_name!r} has no catalogue price; give cost_usd or price_per_hour_usd"
            )
        if cost is None and end is not None:
            cost = price * (end - start).total_seconds() / 3600.0  # type: ignore[operator]
        row = UsageSession(
            account_id=account.id,
            platform=platform_name,
            provider=provider_name,
            started_at=start,
            ended_at=end,
            price_per_hour_usd=price,
            cost_usd=cost,
            success=bool(success),
            outcome=outcome,
            source=source,
            run_id=int(run_id) if run_id is not None else None,
            **values,
        )
        db_session.add(row)
        db_session.flush()
        return int(row.id)  # type: ignore[arg-type]


SESSION_COLUMNS = [
    "session_id",
    "account_id",
    "username",
    "project",
    "provider",
    "platform",
    "person",
    "workload",
    "started_at",
    "ended_at",
    "hours",
    "price_per_hour_usd",
    "cost_usd",
    "success",
    "outcome",
    "source",
    "run_id",
    "instance_id",
    "notes",
]


def _load_sessions(
    *,
    usernames: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    session: Session | None = None,
) -> pd.DataFrame:
    """Session rows (with the account's username and project), optionally only those overlapping [start, end)."""
    with db.use(session) as db_session:
        query = select(
            UsageSession.id,
            UsageSession.account_id,
            Account.username,
            Account.project,
            UsageSession.provider,
            UsageSession.platform,
            UsageSession.person,
            UsageSession.workload,
            UsageSession.started_at,
            UsageSession.ended_at,
            UsageSession.price_per_hour_usd,
            UsageSession.cost_usd,
            UsageSession.success,
            UsageSession.outcome,
            UsageSession.source,
            UsageSession.run_id,
            UsageSession.instance_id,
            UsageSession.notes,
        ).join(Account, Account.id == UsageSession.account_id)
        if end is not None:
            query = query.where(UsageSession.started_at < end)
        if start is not None:
            query = query.where(
                UsageSession.ended_at.is_(None)
                | (UsageSession.ended_at > start)  # type: ignore[union-attr]
                | (UsageSession.started_at >= start)
            )
        if usernames is not None:
            query = query.where(Account.username.in_(usernames))  # type: ignore[attr-defined]
        rows = db_session.exec(query.order_by(UsageSession.started_at, UsageSession.id)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[c for c in SESSION_COLUMNS if c != "hours"])


def usage_in_window(
    start: datetime,
    end: datetime,
    *,
    usernames: list[str] | None = None,
    now: datetime | None = None,
    session: Session | None = None,
) -> pd.DataFrame:
    """Sessions overlapping [start, end), each with the hours and cost that fall inside the window.

    The cost of a session crossing a window edge is split in proportion to its hours; a running
    session counts up to ``now``.
    """
    raw = _load_sessions(usernames=usernames, start=start, end=end, session=session)
    return _clip_to_window(raw, start, end, now or utcnow())


def _utc_series(values: pd.Series) -> pd.Series:
    # One fixed unit: an all-empty column would otherwise come back in seconds and refuse "now".
    return pd.to_datetime(values, utc=True).dt.as_unit("us")


def _clip_to_window(frame: pd.DataFrame, start: datetime, end: datetime, now: datetime) -> pd.DataFrame:
    out = frame.copy()
    began = _utc_series(out["started_at"])
    finished = _utc_series(out["ended_at"])
    until = finished.fillna(pd.Timestamp(now)).where(lambda s: s >= began, began)
    total_h = (until - began).dt.total_seconds() / 3600.0
    inside_h = (
        (until.clip(upper=pd.Timestamp(end)) - began.clip(lower=pd.Timestamp(start))).dt.total_seconds() / 3600.0
    ).clip(lower=0.0)
    starts_inside = (began >= pd.Timestamp(start)) & (began < pd.Timestamp(end))
    # A zero-length session belongs wholly to the window it starts in.
    fraction = np.where(total_h > 0, inside_h / total_h.where(total_h > 0, 1.0), starts_inside.astype(float))
    price = pd.to_numeric(out["price_per_hour_usd"], errors="coerce").astype(float)
    cost = pd.to_numeric(out["cost_usd"], errors="coerce").astype(float).fillna(price * total_h)
    out["started_at"], out["ended_at"] = began, finished
    out["price_per_hour_usd"] = price
    out["hours"] = total_h.astype(float)
    out["cost_usd"] = cost
    out["success"] = out["success"].astype(bool)
    out["hours_in_window"] = inside_h.astype(float)
    out["cost_in_window_usd"] = cost * fraction
    out["starts_in_window"] = starts_inside.astype(bool)
    return out[SESSION_COLUMNS + ["hours_in_window", "cost_in_window_usd", "starts_in_window"]]


def list_usage_sessions(
    *, month: str | date | None = None, username: str | None = None, session: Session | None = None
) -> pd.DataFrame:
    """Sessions overlapping a month (all accounts, or one), with the hours and cost inside it."""
    if username is not None:
        _require_account(username, session)
    start, end = month_bounds(month)
    return usage_in_window(start, end, usernames=[username] if username else None, session=session)


def _require_account(username: str, session: Session | None) -> None:
    with db.use(session) as db_session:
        get_account(db_session, read_username(username))


def usage_stats(username: str, month: str | date | None = None, *, session: Session | None = None) -> dict[str, Any]:
    """The seed's usage statistics for one account, all derived from its sessions.

    ``total_hours``, ``instances_launched``, ``successful_sessions`` and ``failed_sessions`` are
    all-time; ``monthly_*`` figures belong to the calendar month (UTC; default: this month), with a
    session crossing the month's edge split by its hours.
    """
    name = read_username(username)
    with db.use(session) as db_session:
        account = get_account(db_session, name)
        quota, budget = account.monthly_quota_hours, account.monthly_budget_usd
    start, end = month_bounds(month)
    all_time = _clip_to_window(_load_sessions(usernames=[name], session=session), start, end, utcnow())
    in_month = all_time[(all_time["hours_in_window"] > 0) | all_time["starts_in_window"]]
    launched = in_month["starts_in_window"]
    finished_ok = all_time["success"] & (all_time["outcome"] != "running")
    monthly_hours = float(in_month["hours_in_window"].sum())
    monthly_cost = float(in_month["cost_in_window_usd"].sum())
    return {
        "username": name,
        "month": month_label(month),
        "total_hours": float(all_time["hours"].sum()),
        "total_cost_usd": float(all_time["cost_usd"].sum()),
        "instances_launched": int(len(all_time)),
        "successful_sessions": int(finished_ok.sum()),
        "failed_sessions": int((~all_time["success"]).sum()),
        "running_sessions": int((all_time["outcome"] == "running").sum()),
        "monthly_hours": monthly_hours,
        "monthly_cost_usd": monthly_cost,
        "monthly_instances_launched": int(launched.sum()),
        "monthly_successful_sessions": int((launched & in_month["success"] & (in_month["outcome"] != "running")).sum()),
        "monthly_failed_sessions": int((launched & ~in_month["success"]).sum()),
        "monthly_quota_hours": quota,
        "monthly_budget_usd": budget,
        "hours_left": None if quota is None else quota - monthly_hours,
        "budget_left_usd": None if budget is None else budget - monthly_cost,
    }


def with_month_usage(
    accounts: pd.DataFrame, month: str | date | None, session: Session | None, today: date
) -> pd.DataFrame:
    """Accounts (rows of registry.accounts_frame) with this month's hours, cost, what is left, and status."""
    start, end = month_bounds(month)
    usage = usage_in_window(start, end, session=session)
    per_account = usage.groupby("account_id")[["hours_in_window", "cost_in_window_usd"]].sum()
    out = accounts.copy()
    out["hours_this_month"] = out["account_id"].map(per_account["hours_in_window"]).fillna(0.0).astype(float)
    out["cost_this_month_usd"] = out["account_id"].map(per_account["cost_in_window_usd"]).fillna(0.0).astype(float)
    quota = pd.to_numeric(out["monthly_quota_hours"], errors="coerce").astype(float)
    budget = pd.to_numeric(out["monthly_budget_usd"], errors="coerce").astype(float)
    out["monthly_quota_hours"], out["monthly_budget_usd"] = quota, budget
    out["hours_left"] = quota - out["hours_this_month"]
    out["budget_left_usd"] = budget - out["cost_this_month_usd"]
    out["status"] = effective_status(out["stored_status"], out["ends_on"], today)
    return out


def effective_status(stored: pd.Series, ends_on: pd.Series, today: date) -> pd.Series:
    """An active account past its end date is expired."""
    ended = pd.to_datetime(ends_on, errors="coerce") < pd.Timestamp(today)
    return stored.where(~(ended & (stored == "active")), "expired")
