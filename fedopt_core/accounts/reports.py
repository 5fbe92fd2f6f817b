"""The monthly usage review: figures per account, a month-end forecast, idle time, exports.

Everything here is derived from usage sessions (:mod:`fedopt_core.accounts`) and logged runs;
nothing is stored.  The Usage review page, the printable report and ``fedopt usage report``
all call :func:`monthly_review` and the export functions below, so they show the same numbers.

How the forecast is obtained (a heuristic, said so wherever it is shown): the month so far is
extrapolated at its average daily rate; the 90% band is ±1.645 × (standard deviation of the
complete days' totals) × √(days remaining), treating days as independent.  With fewer than
two complete days there is no band.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlmodel import select

from fedopt_core.accounts.months import month_bounds, month_label, previous_month
from fedopt_core.accounts.registry import list_accounts
from fedopt_core.accounts.usage import usage_in_window
from fedopt_core.errors import AccountInputError
from fedopt_core.csvfiles import to_safe_csv
from fedopt_core.db import session_scope
from fedopt_core.models import Platform, Run, utcnow

WARN_PCT = 80.0
OVER_PCT = 100.0
Z_90 = 1.645
NO_LABEL = "(not given)"

#: Spot / on-demand price ratios used when the catalogue has no spot price for a platform.
#: Nebius: 1 − spot/on-demand of H100 and H200 SXM in skypilot-org/skypilot-catalog v8 nebius/vms.csv
#: (0.42 and 0.41); GCP: a3-highgpu-1g in us-central1, spot $6.571 vs on-demand-equivalent $10.979
#: (Cloud Billing catalogue via tgarg01/silybench-data, 2026-09-26).  Lambda has no spot market.
TYPICAL_SPOT_RATIO: dict[str, float] = {"nebius": 0.42, "gcp": 0.60}
NO_SPOT_PROVIDERS = frozenset({"lambda"})


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
        """Hours, cost and sessions per ``person``, ``project`` (workload, else the account's project) or ``platform``."""
        column = {"person": "person", "project": "project_or_workload", "platform": "platform",
                  "account": "username"}.get(by)
        if column is None:
            raise AccountInputError("by", f"{by!r} is not person, project, platform or account")
        grouped = (
            self.sessions.assign(_key=self.sessions[column].fillna(NO_LABEL))
            .groupby("_key", sort=False)
            .agg(hours=("hours_in_month", "sum"), cost_usd=("cost_in_month_usd", "sum"), sessions=("session_id", "count"))
            .reset_index()
            .rename(columns={"_key": by})
            .sort_values(["cost_usd", "hours"], ascending=False, kind="stable")
            .reset_index(drop=True)
        )
        return grouped

    @property
    def top_sessions(self) -> pd.DataFrame:
        columns = ["session_id", "username", "person", "project_or_workload", "platform", "started_at",
                   "hours_in_month", "cost_in_month_usd", "outcome", "idle"]
        return self.sessions.nlargest(self.top_n, "cost_in_month_usd")[columns].reset_index(drop=True)

    @property
    def idle_sessions(self) -> pd.DataFrame:
        columns = ["session_id", "username", "person", "platform", "started_at", "ended_at", "hours_in_month",
                   "cost_in_month_usd", "notes"]
        idle = self.sessions[self.sessions["idle"]]
        return idle.sort_values("cost_in_month_usd", ascending=False)[columns].reset_index(drop=True)


def _runs_frame(start: datetime, end: datetime, url: str | None) -> pd.DataFrame:
    """Runs that may overlap [start, end): their platform and [begin, finish) in UTC."""
    margin = timedelta(days=62)  # a run logged at its end may have started weeks before
    with session_scope(url) as session:
        rows = session.exec(
            select(Run.id, Run.platform, Run.started_at, Run.created_at, Run.execution_time_s).where(
                ((Run.started_at.is_not(None)) & (Run.started_at < end) & (Run.started_at >= start - margin))  # type: ignore[union-attr]
                | ((Run.started_at.is_(None)) & (Run.created_at >= start) & (Run.created_at < end + margin))  # type: ignore[union-attr]
            )
        ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["run_id", "platform", "started_at", "created_at", "execution_time_s"])
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
    covered |= _overlaps_any(s_begin, s_end, anywhere["begin"].to_numpy("datetime64[ns]"),
                             anywhere["finish"].to_numpy("datetime64[ns]"))
    platforms = sessions["platform"].to_numpy(object)
    for name, group in runs.dropna(subset=["platform"]).groupby("platform"):
        mask = platforms == name
        if mask.any():
            covered[mask] |= _overlaps_any(s_begin[mask], s_end[mask], group["begin"].to_numpy("datetime64[ns]"),
                                           group["finish"].to_numpy("datetime64[ns]"))
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
    frame = pd.DataFrame({
        "username": live["username"].to_numpy(object)[index],
        "day": pd.to_datetime(day, utc=True),
        "hours": hours,
        "cost_usd": live["cost_in_month_usd"].to_numpy(float)[index] * share,
    })
    return frame.groupby(["username", "day"], as_index=False)[["hours", "cost_usd"]].sum()


def _forecast(used: np.ndarray, daily_values: pd.DataFrame, names: np.ndarray, elapsed_days: float,
              total_days: float, complete: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def monthly_review(month: str | date | None = None, *, now: datetime | None = None, top_n: int = 10,
                   url: str | None = None) -> MonthlyReview:
    """The figures of one calendar month (UTC; default: this month)."""
    now = now or utcnow()
    start, end = month_bounds(month)
    label = month_label(month)
    as_of = min(max(now, start), end)
    raw = usage_in_window(start, end, now=now, url=url)
    sessions = raw[(raw["hours_in_window"] > 0) | raw["starts_in_window"]].rename(
        columns={"hours_in_window": "hours_in_month", "cost_in_window_usd": "cost_in_month_usd"}
    ).reset_index(drop=True)
    sessions["project_or_workload"] = sessions["workload"].fillna(sessions["project"])
    sessions["idle"] = _idle_flags(sessions, _runs_frame(start, end, url), now)

    state = list_accounts(include_archived=True, month=label, url=url)
    used_by = sessions.groupby("username")[["hours_in_month", "cost_in_month_usd"]].sum()
    # Archived accounts appear only if they spent something this month (their history stays).
    state = state[(state["status"] != "archived") | state["username"].isin(used_by.index)].reset_index(drop=True)
    daily = _daily(sessions, start, end, now)
    total_days = (end - start).total_seconds() / 86400.0
    elapsed = (as_of - start).total_seconds() / 86400.0
    day_index = pd.date_range(pd.Timestamp(start), periods=max(int(round(total_days)), 1), freq="D")
    hours_table = daily.pivot_table(index="day", columns="username", values="hours", aggfunc="sum").reindex(day_index, fill_value=0.0).fillna(0.0)
    cost_table = daily.pivot_table(index="day", columns="username", values="cost_usd", aggfunc="sum").reindex(day_index, fill_value=0.0).fillna(0.0)
    names = state["username"].to_numpy(object)
    hours_used = state["username"].map(used_by["hours_in_month"]).fillna(0.0).to_numpy(float)
    cost_used = state["username"].map(used_by["cost_in_month_usd"]).fillna(0.0).to_numpy(float)
    complete = as_of >= end
    fh, fh_lo, fh_hi = _forecast(hours_used, hours_table, names, elapsed, total_days, complete)
    fc, fc_lo, fc_hi = _forecast(cost_used, cost_table, names, elapsed, total_days, complete)
    quota = state["monthly_quota_hours"].to_numpy(float)
    budget = state["monthly_budget_usd"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        summary = pd.DataFrame({
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
        })
        summary["forecast_quota_pct"] = np.where(quota > 0, fh / quota * 100.0, np.nan)
        summary["forecast_budget_pct"] = np.where(budget > 0, fc / budget * 100.0, np.nan)
    summary["warning"] = _warning_levels(summary)
    review = MonthlyReview(label, start, end, as_of, sessions, summary, daily, top_n=top_n)
    review.warnings.extend(_warnings(summary, complete))
    return review


def _used_pct(used: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Use as % of a limit; NaN without a limit, and infinite for any use of a zero limit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(limit > 0, used / limit * 100.0,
                        np.where(limit == 0, np.where(used > 0, np.inf, 0.0), np.nan))


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
                out.append(ReviewWarning("warning", row.username, f"{row.username} has used {share} of its {limit_text}"))
            elif not complete and not np.isnan(forecast_pct) and forecast_pct >= OVER_PCT:
                out.append(ReviewWarning(
                    "forecast", row.username,
                    f"{row.username} is on course to use {forecast_pct:.0f}% of its {limit_text} by the month's end",
                ))
    return out


# --------------------------------------------------------------------------- charts


def _limit_basis(summary: pd.DataFrame) -> pd.DataFrame:
    """Per account the limit its burn-down is drawn against: the hour quota, else the budget."""
    use_hours = summary["monthly_quota_hours"].notna() & (summary["monthly_quota_hours"] > 0)
    use_cost = ~use_hours & summary["monthly_budget_usd"].notna() & (summary["monthly_budget_usd"] > 0)
    return summary.assign(
        basis=np.select([use_hours, use_cost], ["hours", "cost"], default=""),
        limit=np.where(use_hours, summary["monthly_quota_hours"], summary["monthly_budget_usd"]),
    )


def burn_down_figure(review: MonthlyReview) -> go.Figure:
    """Cumulative use as % of each account's monthly limit, with the forecast to the month's end."""
    fig = go.Figure()
    basis = _limit_basis(review.accounts)
    day_index = pd.date_range(pd.Timestamp(review.start), pd.Timestamp(review.end), freq="D")
    as_of = pd.Timestamp(review.as_of)
    for row in basis[basis["basis"] != ""].itertuples():
        column = "hours" if row.basis == "hours" else "cost_usd"
        mine = review.daily[review.daily["username"] == row.username].set_index("day")[column]
        per_day = mine.reindex(day_index[:-1], fill_value=0.0)
        cumulative = per_day.cumsum()
        # Points at each day's end, up to now.
        x = [pd.Timestamp(review.start)] + [d + pd.Timedelta(days=1) for d in per_day.index if d + pd.Timedelta(days=1) <= as_of]
        y = [0.0] + cumulative.iloc[: len(x) - 1].tolist()
        used = row.hours_used if row.basis == "hours" else row.cost_used_usd
        if x[-1] < as_of:
            x.append(as_of)
            y.append(used)
        pct = [v / row.limit * 100.0 for v in y]
        unit = "h" if row.basis == "hours" else "USD"
        # Plotly renders a few HTML tags in labels; user text is escaped so it stays text.
        name = html.escape(str(row.username))
        fig.add_trace(go.Scatter(x=x, y=pct, mode="lines", name=f"{name} ({unit})",
                                 hovertemplate="%{x|%d %b %H:%M}: %{y:.0f}% of limit<extra></extra>"))
        if not review.complete:
            fc = row.forecast_hours if row.basis == "hours" else row.forecast_cost_usd
            lo = row.forecast_hours_low if row.basis == "hours" else row.forecast_cost_usd_low
            hi = row.forecast_hours_high if row.basis == "hours" else row.forecast_cost_usd_high
            error = None
            if not (np.isnan(lo) or np.isnan(hi)):
                error = dict(type="data", symmetric=False, array=[0, (hi - fc) / row.limit * 100.0],
                             arrayminus=[0, (fc - lo) / row.limit * 100.0])
            fig.add_trace(go.Scatter(
                x=[as_of, pd.Timestamp(review.end)], y=[used / row.limit * 100.0, fc / row.limit * 100.0],
                mode="lines+markers", line=dict(dash="dash"), name=f"{name} forecast", error_y=error,
                hovertemplate="forecast %{y:.0f}% of limit<extra></extra>",
            ))
    for level, colour in [(WARN_PCT, "orange"), (OVER_PCT, "red")]:
        fig.add_hline(y=level, line_dash="dot", line_color=colour, annotation_text=f"{level:.0f}%")
    fig.update_layout(
        title=f"Burn-down {review.month}: use as % of each account's monthly limit",
        xaxis_title="date (UTC)", yaxis_title="% of monthly limit", legend_title="account",
        margin=dict(l=40, r=20, t=50, b=40), height=420,
    )
    if (basis["basis"] == "").all():
        fig.add_annotation(text="No account has a monthly quota or budget", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return fig


def breakdown_figure(review: MonthlyReview, by: str) -> go.Figure:
    table = review.breakdown(by).head(15)
    labels = table[by].astype(str).map(html.escape)  # Plotly renders some HTML tags in labels
    fig = go.Figure(go.Bar(x=table["cost_usd"], y=labels, orientation="h",
                           customdata=table[["hours", "sessions"]].to_numpy(),
                           hovertemplate="$%{x:,.2f} · %{customdata[0]:.1f} h · %{customdata[1]} sessions<extra></extra>"))
    fig.update_layout(title=f"Cost by {by}, {review.month}", xaxis_title="USD", yaxis=dict(autorange="reversed"),
                      margin=dict(l=40, r=20, t=50, b=40), height=max(220, 40 + 28 * len(table)))
    return fig


# --------------------------------------------------------------------------- exports


CSV_COLUMNS = [
    "session_id", "username", "project", "provider", "platform", "person", "workload", "started_at", "ended_at",
    "hours", "hours_in_month", "price_per_hour_usd", "cost_usd", "cost_in_month_usd", "success", "outcome", "source",
    "run_id", "idle", "notes",
]


def review_csv(review: MonthlyReview, path: str | Path | None = None) -> str:
    """The month's sessions as CSV (spreadsheet formulas neutralised); also written to ``path``."""
    frame = review.sessions[CSV_COLUMNS].copy()
    for column in ["started_at", "ended_at"]:
        frame[column] = frame[column].map(lambda t: t.isoformat() if isinstance(t, pd.Timestamp) and not pd.isna(t) else "")
    frame["run_id"] = frame["run_id"].astype("Int64")
    return to_safe_csv(frame, path)


def _table_html(frame: pd.DataFrame, money: tuple[str, ...] = (), hours: tuple[str, ...] = ()) -> str:
    if frame.empty:
        return "<p class='empty'>None.</p>"
    shown = frame.copy()
    for column in shown.columns:
        if column in money:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"${v:,.2f}")
        elif column in hours or column.endswith("_pct"):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else ("∞" if np.isinf(v) else f"{v:,.1f}"))
        elif pd.api.types.is_datetime64_any_dtype(shown[column]):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M")
    # escape=True: names and notes are user text and must never become markup in the report.
    return shown.to_html(index=False, escape=True, na_rep="", border=0, classes="table")


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .meta{color:#555} table.table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0 1.5rem}
table.table th,table.table td{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left}
.over{color:#b00020;font-weight:600} .warning{color:#a65c00;font-weight:600} .forecast{color:#555}
.figs{page-break-inside:avoid} @media print{body{margin:0}}
"""


def review_html(review: MonthlyReview) -> str:
    """A self-contained printable report: plotly.js is inlined once, nothing is fetched from a CDN."""
    t = review.totals
    esc = html.escape
    figures = [burn_down_figure(review)] + [breakdown_figure(review, by) for by in ("person", "project", "platform")]
    for fig in figures:
        # An explicit template: importing Streamlit changes Plotly's default, and a printout should not depend on it.
        fig.update_layout(template="plotly_white")
    charts = [
        fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False, "responsive": True})
        for i, fig in enumerate(figures)
    ]
    status = "complete month" if review.complete else f"month so far, up to {review.as_of:%Y-%m-%d %H:%M} UTC"
    warnings = "".join(f"<li class='{esc(w.level)}'>{esc(w.message)}</li>" for w in review.warnings) or "<li>None.</li>"
    accounts_table = review.accounts[[
        "username", "provider", "status", "monthly_quota_hours", "hours_used", "quota_used_pct", "forecast_hours",
        "forecast_hours_low", "forecast_hours_high", "monthly_budget_usd", "cost_used_usd", "budget_used_pct",
        "forecast_cost_usd", "forecast_cost_usd_low", "forecast_cost_usd_high",
    ]]
    money = ("monthly_budget_usd", "cost_used_usd", "forecast_cost_usd", "forecast_cost_usd_low",
             "forecast_cost_usd_high", "cost_usd", "cost_in_month_usd")
    hours = ("monthly_quota_hours", "hours_used", "forecast_hours", "forecast_hours_low", "forecast_hours_high",
             "hours", "hours_in_month")
    breakdowns = "".join(
        f"<h3>By {by}</h3>{_table_html(review.breakdown(by), money, hours)}" for by in ("person", "project", "platform")
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fedopt usage review {esc(review.month)}</title>
<style>{_STYLE}</style></head><body>
<h1>Usage review {esc(review.month)}</h1>
<p class="meta">{esc(status)} · generated {utcnow():%Y-%m-%d %H:%M} UTC by fedopt · all figures are derived from recorded usage sessions</p>
<h2>Totals</h2>
<p>{t['hours']:,.1f} h · ${t['cost_usd']:,.2f} · {t['sessions']} sessions ({t['failed_sessions']} failed) ·
idle (no logged run): {t['idle_hours']:,.1f} h, ${t['idle_cost_usd']:,.2f}</p>
<h2>Warnings</h2><ul>{warnings}</ul>
<h2>Accounts</h2>{_table_html(accounts_table, money, hours)}
<p class="meta">Forecast: a heuristic, not a model. The month so far is extrapolated at its average daily rate; the
90% band is ±{Z_90} × the standard deviation of the complete days' totals × √(days remaining). Sessions crossing
midnight or the month's edge are split by their hours; cost follows the hours.</p>
<div class="figs">{charts[0]}</div>
<h2>Breakdown</h2>{''.join(f'<div class="figs">{c}</div>' for c in charts[1:])}
{breakdowns}
<h2>Most expensive sessions</h2>{_table_html(review.top_sessions, money, hours)}
<h2>Idle sessions (no logged run)</h2>{_table_html(review.idle_sessions, money, hours)}
</body></html>
"""


def write_report(month: str | date | None, out: str | Path, *, as_csv: bool = False, now: datetime | None = None,
                 url: str | None = None) -> Path:
    """Write the month's report (HTML, or CSV with ``as_csv``) to ``out``; returns the path."""
    review = monthly_review(month, now=now, url=url)
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if as_csv:
            review_csv(review, path)
        else:
            path.write_text(review_html(review), encoding="utf-8")
    except OSError as exc:
        raise AccountInputError("out", f"cannot write {path}: {exc.strerror}") from None
    return path


# --------------------------------------------------------------------------- savings per technique


SAVINGS_COLUMNS = ["slug", "month", "saving_usd", "cost_considered_usd", "month_cost_usd", "assumptions"]


def technique_savings(month: str | date | None = None, *, now: datetime | None = None,
                      url: str | None = None) -> pd.DataFrame:
    """What some resource techniques would have saved the group in a month (default: last month).

    Estimated from the month's sessions and the platform catalogue; each row states its
    assumptions.  Techniques without a row here are not estimated from usage data.
    """
    month = previous_month() if month is None else month_label(month)
    review = monthly_review(month, now=now, url=url)
    s = review.sessions
    label = review.month
    with session_scope(url) as session:
        plats = session.exec(select(Platform.provider, Platform.instance_type, Platform.price_per_hour_usd,
                                    Platform.spot_price_per_hour_usd, Platform.gpu_count, Platform.gpu_memory_gb)).all()
        run_ids = [int(r) for r in s["run_id"].dropna().unique()]
        run_rows = session.exec(select(Run.id, Run.gpu_memory_required_gb).where(Run.id.in_(run_ids))).all() if run_ids else []  # type: ignore[union-attr]
    catalogue = pd.DataFrame([tuple(p) for p in plats], columns=["provider", "platform", "price", "spot", "gpu_count", "gpu_memory_gb"])
    catalogue["provider"] = catalogue["provider"].str.lower()
    joined = s.assign(provider=s["provider"].fillna("").str.lower()).merge(catalogue, on=["provider", "platform"], how="left")
    cost = joined["cost_in_month_usd"].to_numpy(float)
    total = float(cost.sum())
    rows: list[dict[str, Any]] = []

    # Spot: the catalogue's spot/on-demand ratio, else a documented typical ratio for the provider.
    catalogue_ratio = (pd.to_numeric(joined["spot"], errors="coerce") / pd.to_numeric(joined["price"], errors="coerce")).to_numpy(float)
    typical = joined["provider"].map(TYPICAL_SPOT_RATIO).to_numpy(float)
    ratio = np.where(np.isfinite(catalogue_ratio) & (catalogue_ratio > 0), catalogue_ratio, typical)
    has_ratio = np.isfinite(ratio)
    spot_saving = float(np.sum(np.where(has_ratio, cost * (1.0 - ratio), 0.0)))
    no_spot_cost = float(cost[joined["provider"].isin(NO_SPOT_PROVIDERS).to_numpy(bool)].sum())
    unknown_cost = float(cost[~has_ratio].sum()) - no_spot_cost
    rows.append({
        "slug": "spot-instances", "month": label, "saving_usd": spot_saving,
        "cost_considered_usd": float(cost[has_ratio].sum()),
        "assumptions": (
            f"cost × (1 − spot/on-demand price) for the ${cost[has_ratio].sum():,.2f} spent where a spot price is known "
            "(catalogue spot price, else typical ratios: Nebius 0.42, GCP 0.60). "
            f"${no_spot_cost:,.2f} was on Lambda, which has no spot market, so saves nothing"
            + (f"; ${unknown_cost:,.2f} on providers without a known ratio is not counted" if unknown_cost > 0.005 else "")
            + ". Ignores interruptions and restart overhead (checkpointing needed)."
        ),
    })

    idle_cost = float(s.loc[s["idle"], "cost_in_month_usd"].sum())
    idle_hours = float(s.loc[s["idle"], "hours_in_month"].sum())
    idle_text = (f"the {int(s['idle'].sum())} sessions with no logged run ({idle_hours:,.1f} h) would not have run at all. "
                 "A session whose runs were simply not logged is counted as idle, so this is an upper bound.")
    rows.append({"slug": "scheduled-shutdowns", "month": label, "saving_usd": idle_cost,
                 "cost_considered_usd": total, "assumptions": idle_text})
    rows.append({"slug": "idle-notebook-auto-stop", "month": label, "saving_usd": idle_cost,
                 "cost_considered_usd": total,
                 "assumptions": idle_text + " The same idle time as scheduled shutdowns: the two savings do not add up."})

    # Right-sizing: GPUs whose memory the linked run did not need are taken to have idled.
    required = pd.Series(dict((int(i), m) for i, m in run_rows), dtype=float)
    need_gb = joined["run_id"].map(required).to_numpy(float) if len(required) else np.full(len(joined), np.nan)
    count = pd.to_numeric(joined["gpu_count"], errors="coerce").to_numpy(float)
    per_gpu = pd.to_numeric(joined["gpu_memory_gb"], errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.clip(np.ceil(need_gb / per_gpu), 1, count)
        usable = np.isfinite(needed) & (count > 1) & (per_gpu > 0)
        rs_saving = float(np.sum(np.where(usable, cost * (1.0 - needed / count), 0.0)))
    rows.append({
        "slug": "right-sizing", "month": label, "saving_usd": rs_saving, "cost_considered_usd": float(cost[usable].sum()),
        "assumptions": (
            f"for the {int(usable.sum())} multi-GPU sessions linked to a run that recorded its GPU memory need: the share of "
            "GPUs whose memory it did not need, at the session's cost (same GPU model, fewer GPUs). Assumes those GPUs "
            "idled; a job that used them for speed saves less."
        ),
    })
    return pd.DataFrame(rows, columns=SAVINGS_COLUMNS).assign(month_cost_usd=total)
