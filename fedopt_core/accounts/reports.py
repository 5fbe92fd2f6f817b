"""The monthly usage review: figures per account, a month-end forecast, idle time, warnings.

Everything here is derived from usage sessions (:mod:`.usage`) and logged runs; nothing is
stored.  The Usage review page, the printable report (:mod:`.review_export`) and
``fedopt usage report`` all start from :func:`monthly_review`, so they show the same numbers.

How the forecast is obtained (a heuristic, said so wherever it is shown): the month so far is
extrapolated at its average daily rate; the 90% band is ±1.645 × (standard deviation of the
complete days' totals) × √(days remaining), treating days as independent.  With fewer than
two complete days there is no band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session, select

from fedopt_core import db
from fedopt_core.accounts.months import month_bounds, month_label
from fedopt_core.accounts.registry import list_accounts
from fedopt_core.accounts.usage import usage_in_window
from fedopt_core.errors import AccountInputError
from fedopt_core.models import Run, utcnow

WARN_PCT = 80.0
OVER_PCT = 100.0
Z_90 = 1.645
NO_LABEL = "(not given)"


# --------------------------------------------------------------------------- the review


@dataclass(frozen=True)
class ReviewWarning:
    level: str  # "over" (>= 100 %), "warning" (>= 80 %), "forecast" (on course to pass 100 %)
    username: str
    message: str


@dataclass(eq=False)
class MonthlyReview:
    """One month's usage, as the monthly meeting sees it."""

    month: str
    start: datetime
    end: datetime
    as_of: datetime
    sessions: pd.DataFrame
    accounts: pd.DataFrame
    daily: pd.DataFrame
    warnings: list[ReviewWarning] = field(default_factory=list)
    top_n: int = 10

    @property
    def complete(self) -> bool:
        return self.as_of >= self.end

    @property
    def totals(self) -> dict[str, Any]:
        s = self.sessions
        return {
            "month": self.month,
            "hours": float(s["hours_in_month"].sum()),
            "cost_usd": float(s["cost_in_month_usd"].sum()),
            "sessions": int(len(s)),
            "failed_sessions": int((~s["success"]).sum()),
            "idle_hours": float(s.loc[s["idle"], "hours_in_month"].sum()),
            "idle_cost_usd": float(s.loc[s["idle"], "cost_in_month_usd"].sum()),
            "accounts": int(len(self.accounts)),
        }

    def breakdown(self, by: str) -> pd.DataFrame:
        """Hours, cost and sessions per ``person``, ``project`` (workload, else the account's project)
        or ``platform``."""
        column = {
            "person": "person",
            "project": "project_or_workload",
            "platform": "platform",
            "account": "username",
        }.get(by)
        if column is None:
            raise AccountInputError("by", f"{by!r} is not person, project, platform or account")
        grouped = (
            self.sessions.assign(_key=self.sessions[column].fillna(NO_LABEL))
            .groupby("_key", sort=False)
            .agg(
                hours=("hours_in_month", "sum"), cost_usd=("cost_in_month_usd", "sum"), sessions=("session_id", "count")
            )
            .reset_index()
            .rename(columns={"_key": by})
            .sort_values(["cost_usd", "hours"], ascending=False, kind="stable")
            .reset_index(drop=True)
        )
        return grouped

    @property
    def top_sessions(self) -> pd.DataFrame:
        columns = [
            "session_id",
            "username",
            "person",
            "project_or_workload",
            "platform",
            "started_at",
            "hours_in_month",
            "cost_in_month_usd",
            "outcome",
            "idle",
        ]
        return self.sessions.nlargest(self.top_n, "cost_in_month_usd")[columns].reset_index(drop=True)

    @property
    def idle_sessions(self) -> pd.DataFrame:
        columns = [
            "session_id",
            "username",
            "person",
            "platform",
            "started_at",
            "ended_at",
            "hours_in_month",
            "cost_in_month_usd",
            "notes",
        ]
        idle = self.sessions[self.sessions["idle"]]
        return idle.sort_values("cost_in_month_usd", ascending=False)[columns].reset_index(drop=True)


def _runs_frame(start: datetime, end: datetime, session: Session | None) -> pd.DataFrame:
    """Runs that may overlap [start, end): their platform and [begin, finish) in UTC."""
    margin = timedelta(days=62)  # a run logged at its end may have started weeks before
    with db.use(session) as db_session:
        rows = db_session.exec(
            select(Run.id, Run.platform, Run.started_at, Run.created_at, Run.execution_time_s).where(
                ((Run.started_at.is_not(None)) & (Run.started_at < end) & (Run.started_at >= start - margin))  # type: ignore[union-attr]
                | ((Run.started_at.is_(None)) & (Run.created_at >= start) & (Run.created_at < end + margin))  # type: ignore[union-attr]
            )
        ).all()
    frame = pd.DataFrame(
        [tuple(r) for r in rows], columns=["run_id", "platform", "started_at", "created_at", "execution_time_s"]
    )
    duration = pd.to_timedelta(pd.to_numeric(frame["execution_time_s"], errors="coerce").fillna(0.0), unit="s")
    created = pd.to_datetime(frame["created_at"], utc=True).dt.as_unit("us")
    # Without a start time, a run is taken to have been logged when it finished.
    begin = pd.to_datetime(frame["started_at"], utc=True).dt.as_unit("us").fillna(created - duration)
    return pd.DataFrame({"platform": frame["platform"], "begin": begin, "finish": begin + duration})


def _overlaps_any(s_begin: np.ndarray, s_end: np.ndarray, r_begin: np.ndarray, r_end: np.ndarray) -> np.ndarray:
    """For each session, whether any run interval overlaps it (O((n + m) log m), no n x m matrix)."""
    if len(r_begin) == 0 or len(s_begin) == 0:
        return np.zeros(len(s_begin), dtype=bool)
    order = np.argsort(r_begin, kind="stable")
    begins, ends = r_begin[order], np.maximum.accumulate(r_end[order])
    # Among the runs starting before the session ends, the latest finish decides.
    last = np.searchsorted(begins, s_end, side="left") - 1
    return (last >= 0) & (ends[np.clip(last, 0, None)] > s_begin)


def _idle_flags(sessions: pd.DataFrame, runs: pd.DataFrame, now: datetime) -> np.ndarray:
    """Sessions with no logged run: no ``run_id`` and no run on the same platform overlapping them."""
    idle = sessions["run_id"].isna().to_numpy(bool)
    if not idle.any() or runs.empty:
        return idle
    s_begin = sessions["started_at"].to_numpy("datetime64[ns]")
    s_end = sessions["ended_at"].fillna(pd.Timestamp(now)).to_numpy("datetime64[ns]")
    covered = np.zeros(len(sessions), dtype=bool)
    anywhere = runs[runs["platform"].isna()]
    covered |= _overlaps_any(
        s_begin, s_end, anywhere["begin"].to_numpy("datetime64[ns]"), anywhere["finish"].to_numpy("datetime64[ns]")
    )
    platforms = sessions["platform"].to_numpy(object)
    for name, group in runs.dropna(subset=["platform"]).groupby("platform"):
        mask = platforms == name
        if mask.any():
            covered[mask] |= _overlaps_any(
                s_begin[mask],
                s_end[mask],
                group["begin"].to_numpy("datetime64[ns]"),
                group["finish"].to_numpy("datetime64[ns]"),
            )
    return idle & ~covered


def _daily(sessions: pd.DataFrame, start: datetime, end: datetime, now: datetime) -> pd.DataFrame:
    """Hours and cost per (account, UTC day); a session crossing midnight is split by its hours."""
    live = sessions[sessions["hours_in_month"] > 0]
    columns = ["username", "day", "hours", "cost_usd"]
    if live.empty:
        return pd.DataFrame(columns=columns)
    s = live["started_at"].clip(lower=pd.Timestamp(start))
    e = live["ended_at"].fillna(pd.Timestamp(now)).clip(upper=pd.Timestamp(end))
    first_day = s.dt.floor("D")
    last_day = (e - pd.Timedelta(microseconds=1)).dt.floor("D")
    n_days = ((last_day - first_day).dt.days + 1).clip(lower=1).to_numpy(int)
    index = np.repeat(np.arange(len(live)), n_days)
    offset = np.arange(len(index)) - np.repeat(np.cumsum(n_days) - n_days, n_days)
    day = first_day.to_numpy("datetime64[ns]")[index] + offset.astype("timedelta64[D]")
    s_rep, e_rep = s.to_numpy("datetime64[ns]")[index], e.to_numpy("datetime64[ns]")[index]
    overlap = np.minimum(e_rep, day + np.timedelta64(1, "D")) - np.maximum(s_rep, day)
    hours = overlap.astype("timedelta64[ns]").astype(np.int64) / 3.6e12
    share = hours / live["hours_in_month"].to_numpy(float)[index]
    frame = pd.DataFrame(
        {
            "username": live["username"].to_numpy(object)[index],
            "day": pd.to_datetime(day, utc=True),
            "hours": hours,
            "cost_usd": live["cost_in_month_usd"].to_numpy(float)[index] * share,
        }
    )
    return frame.groupby(["username", "day"], as_index=False)[["hours", "cost_usd"]].sum()


def _forecast(
    used: np.ndarray,
    daily_values: pd.DataFrame,
    names: np.ndarray,
    elapsed_days: float,
    total_days: float,
    complete: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Month-end forecast and its 90% band, per account (vectorised over accounts)."""
    if complete or elapsed_days <= 0:
        return used, used.copy(), used.copy()
    remaining = total_days - elapsed_days
    forecast = used + used / elapsed_days * remaining
    full_days = int(math.floor(elapsed_days))
    if full_days < 2:
        nan = np.full(len(used), np.nan)
        return forecast, nan, nan
    # Day-by-day totals over the complete days (zeros included), one column per account.
    table = daily_values.reindex(columns=names, fill_value=0.0).iloc[:full_days]
    spread = table.std(axis=0, ddof=1).to_numpy(float)
    half = Z_90 * spread * math.sqrt(remaining)
    return forecast, np.maximum(used, forecast - half), forecast + half


def monthly_review(
    month: str | date | None = None, *, now: datetime | None = None, top_n: int = 10, session: Session | None = None
) -> MonthlyReview:
    """The figures of one calendar month (UTC; default: this month)."""
    now = now or utcnow()
    start, end = month_bounds(month)
    label = month_label(month)
    as_of = min(max(now, start), end)
    raw = usage_in_window(start, end, now=now, session=session)
    sessions = (
        raw[(raw["hours_in_window"] > 0) | raw["starts_in_window"]]
        .rename(columns={"hours_in_window": "hours_in_month", "cost_in_window_usd": "cost_in_month_usd"})
        .reset_index(drop=True)
    )
    sessions["project_or_workload"] = sessions["workload"].fillna(sessions["project"])
    sessions["idle"] = _idle_flags(sessions, _runs_frame(start, end, session), now)

    state = list_accounts(include_archived=True, month=label, session=session)
    used_by = sessions.groupby("username")[["hours_in_month", "cost_in_month_usd"]].sum()
    # Archived accounts appear only if they spent something this month (their history stays).
    state = state[(state["status"] != "archived") | state["username"].isin(used_by.index)].reset_index(drop=True)
    daily = _daily(sessions, start, end, now)
    total_days = (end - start).total_seconds() / 86400.0
    elapsed = (as_of - start).total_seconds() / 86400.0
    day_index = pd.date_range(pd.Timestamp(start), periods=max(int(round(total_days)), 1), freq="D")
    hours_table = (
        daily.pivot_table(index="day", columns="username", values="hours", aggfunc="sum")
        .reindex(day_index, fill_value=0.0)
        .fillna(0.0)
    )
    cost_table = (
        daily.pivot_table(index="day", columns="username", values="cost_usd", aggfunc="sum")
        .reindex(day_index, fill_value=0.0)
        .fillna(0.0)
    )
    names = state["username"].to_numpy(object)
    hours_used = state["username"].map(used_by["hours_in_month"]).fillna(0.0).to_numpy(float)
    cost_used = state["username"].map(used_by["cost_in_month_usd"]).fillna(0.0).to_numpy(float)
    complete = as_of >= end
    fh, fh_lo, fh_hi = _forecast(hours_used, hours_table, names, elapsed, total_days, complete)
    fc, fc_lo, fc_hi = _forecast(cost_used, cost_table, names, elapsed, total_days, complete)
    quota = state["monthly_quota_hours"].to_numpy(float)
    budget = state["monthly_budget_usd"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        summary = pd.DataFrame(
            {
                "username": names,
                "provider": state["provider"].to_numpy(object),
                "status": state["status"].to_numpy(object),
                "monthly_quota_hours": quota,
                "hours_used": hours_used,
                "quota_used_pct": _used_pct(hours_used, quota),
                "forecast_hours": fh,
                "forecast_hours_low": fh_lo,
                "forecast_hours_high": fh_hi,
                "monthly_budget_usd": budget,
                "cost_used_usd": cost_used,
                "budget_used_pct": _used_pct(cost_used, budget),
                "forecast_cost_usd": fc,
                "forecast_cost_usd_low": fc_lo,
                "forecast_cost_usd_high": fc_hi,
            }
        )
        summary["forecast_quota_pct"] = np.where(quota > 0, fh / quota * 100.0, np.nan)
        summary["forecast_budget_pct"] = np.where(budget > 0, fc / budget * 100.0, np.nan)
    summary["warning"] = _warning_levels(summary)
    review = MonthlyReview(label, start, end, as_of, sessions, summary, daily, top_n=top_n)
    review.warnings.extend(_warnings(summary, complete))
    return review


def _used_pct(used: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Use as % of a limit; NaN without a limit, and infinite for any use of a zero limit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(limit > 0, used / limit * 100.0, np.where(limit == 0, np.where(used > 0, np.inf, 0.0), np.nan))


def _warning_levels(summary: pd.DataFrame) -> np.ndarray:
    worst = np.fmax(summary["quota_used_pct"].to_numpy(float), summary["budget_used_pct"].to_numpy(float))
    return np.select([worst >= OVER_PCT, worst >= WARN_PCT], ["over", "warning"], default="")


def _warnings(summary: pd.DataFrame, complete: bool) -> list[ReviewWarning]:
    out: list[ReviewWarning] = []
    for row in summary.itertuples():  # one line per account; a handful of accounts
        for pct, limit_text, forecast_pct in [
            (row.quota_used_pct, f"monthly hour quota ({row.monthly_quota_hours:,.1f} h)", row.forecast_quota_pct),
            (row.budget_used_pct, f"monthly budget (${row.monthly_budget_usd:,.2f})", row.forecast_budget_pct),
        ]:
            if np.isnan(pct):
                continue
            share = "more than all" if np.isinf(pct) else f"{pct:.0f}%"
            if pct >= OVER_PCT:
                out.append(ReviewWarning("over", row.username, f"{row.username} has used {share} of its {limit_text}"))
            elif pct >= WARN_PCT:
                out.append(
                    ReviewWarning("warning", row.username, f"{row.username} has used {share} of its {limit_text}")
                )
            elif not complete and not np.isnan(forecast_pct) and forecast_pct >= OVER_PCT:
                out.append(
                    ReviewWarning(
                        "forecast",
                        row.username,
                        f"{row.username} is on course to use {forecast_pct:.0f}% of its {limit_text} "
                        "by the month's end",
                    )
                )
    return out


# --------------------------------------------------------------------------- the burn-down's lines


def _limit_basis(summary: pd.DataFrame) -> pd.DataFrame:
    """Per account the limit its burn-down is drawn against: the hour quota, else the budget."""
    use_hours = summary["monthly_quota_hours"].notna() & (summary["monthly_quota_hours"] > 0)
    use_cost = ~use_hours & summary["monthly_budget_usd"].notna() & (summary["monthly_budget_usd"] > 0)
    return summary.assign(
        basis=np.select([use_hours, use_cost], ["hours", "cost"], default=""),
        limit=np.where(use_hours, summary["monthly_quota_hours"], summary["monthly_budget_usd"]),
    )


@dataclass(frozen=True)
class BurnDown:
    """One account's line on the burn-down: use as % of its monthly limit, and the forecast."""

    username: str
    unit: str  # "h" against an hour quota, "USD" against a budget
    x: list[pd.Timestamp]
    pct: list[float]
    #: From now to the month's end, with the 90% band at the end (NaN when there is none);
    #: empty once the month is complete.
    forecast_x: list[pd.Timestamp]
    forecast_pct: list[float]
    forecast_low_pct: float
    forecast_high_pct: float


def burn_down_lines(review: MonthlyReview) -> list[BurnDown]:
    """The burn-down of every account with an hour quota or a budget (the page's and the report's charts)."""
    lines = []
    basis = _limit_basis(review.accounts)
    day_index = pd.date_range(pd.Timestamp(review.start), pd.Timestamp(review.end), freq="D")
    as_of = pd.Timestamp(review.as_of)
    for row in basis[basis["basis"] != ""].itertuples():
        column = "hours" if row.basis == "hours" else "cost_usd"
        mine = review.daily[review.daily["username"] == row.username].set_index("day")[column]
        per_day = mine.reindex(day_index[:-1], fill_value=0.0)
        cumulative = per_day.cumsum()
        # Points at each day's end, up to now.
        x = [pd.Timestamp(review.start)] + [
            d + pd.Timedelta(days=1) for d in per_day.index if d + pd.Timedelta(days=1) <= as_of
        ]
        y = [0.0] + cumulative.iloc[: len(x) - 1].tolist()
        used = row.hours_used if row.basis == "hours" else row.cost_used_usd
        if x[-1] < as_of:
            x.append(as_of)
            y.append(used)
        forecast_x: list[pd.Timestamp] = []
        forecast_pct: list[float] = []
        low = high = float("nan")
        if not review.complete:
            fc = row.forecast_hours if row.basis == "hours" else row.forecast_cost_usd
            lo = row.forecast_hours_low if row.basis == "hours" else row.forecast_cost_usd_low
            hi = row.forecast_hours_high if row.basis == "hours" else row.forecast_cost_usd_high
            forecast_x = [as_of, pd.Timestamp(review.end)]
            forecast_pct = [used / row.limit * 100.0, fc / row.limit * 100.0]
            low, high = lo / row.limit * 100.0, hi / row.limit * 100.0
        lines.append(
            BurnDown(
                username=str(row.username),
                unit="h" if row.basis == "hours" else "USD",
                x=x,
                pct=[v / row.limit * 100.0 for v in y],
                forecast_x=forecast_x,
                forecast_pct=forecast_pct,
                forecast_low_pct=float(low),
                forecast_high_pct=float(high),
            )
        )
    return lines
