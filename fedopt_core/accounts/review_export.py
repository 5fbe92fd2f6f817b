"""The monthly review as people take it to the meeting: charts, a CSV of the sessions, printable HTML.

Each starts from a :class:`~fedopt_core.accounts.reports.MonthlyReview`, so the page, the report
and ``fedopt usage report`` show the same numbers.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlmodel import Session

from fedopt_core.accounts.reports import OVER_PCT, WARN_PCT, Z_90, MonthlyReview, monthly_review
from fedopt_core.csvfiles import to_safe_csv
from fedopt_core.errors import AccountInputError
from fedopt_core.formatting import plural
from fedopt_core.models import utcnow


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
        x = [pd.Timestamp(review.start)] + [
            d + pd.Timedelta(days=1) for d in per_day.index if d + pd.Timedelta(days=1) <= as_of
        ]
        y = [0.0] + cumulative.iloc[: len(x) - 1].tolist()
        used = row.hours_used if row.basis == "hours" else row.cost_used_usd
        if x[-1] < as_of:
            x.append(as_of)
            y.append(used)
        pct = [v / row.limit * 100.0 for v in y]
        unit = "h" if row.basis == "hours" else "USD"
        # Plotly renders a few HTML tags in labels; user text is escaped so it stays text.
        name = html.escape(str(row.username))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=pct,
                mode="lines",
                name=f"{name} ({unit})",
                hovertemplate="%{x|%d %b %H:%M}: %{y:.0f}% of limit<extra></extra>",
            )
        )
        if not review.complete:
            fc = row.forecast_hours if row.basis == "hours" else row.forecast_cost_usd
            lo = row.forecast_hours_low if row.basis == "hours" else row.forecast_cost_usd_low
            hi = row.forecast_hours_high if row.basis == "hours" else row.forecast_cost_usd_high
            error = None
            if not (np.isnan(lo) or np.isnan(hi)):
                error = dict(
                    type="data",
                    symmetric=False,
                    array=[0, (hi - fc) / row.limit * 100.0],
                    arrayminus=[0, (fc - lo) / row.limit * 100.0],
                )
            fig.add_trace(
                go.Scatter(
                    x=[as_of, pd.Timestamp(review.end)],
                    y=[used / row.limit * 100.0, fc / row.limit * 100.0],
                    mode="lines+markers",
                    line=dict(dash="dash"),
                    name=f"{name} forecast",
                    error_y=error,
                    hovertemplate="forecast %{y:.0f}% of limit<extra></extra>",
                )
            )
    for level, colour in [(WARN_PCT, "orange"), (OVER_PCT, "red")]:
        fig.add_hline(y=level, line_dash="dot", line_color=colour, annotation_text=f"{level:.0f}%")
    fig.update_layout(
        title=f"Burn-down {review.month}: use as % of each account's monthly limit",
        xaxis_title="date (UTC)",
        yaxis_title="% of monthly limit",
        legend_title="account",
        margin=dict(l=40, r=20, t=50, b=40),
        height=420,
    )
    if (basis["basis"] == "").all():
        fig.add_annotation(
            text="No account has a monthly quota or budget", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return fig


def breakdown_figure(review: MonthlyReview, by: str) -> go.Figure:
    table = review.breakdown(by).head(15)
    labels = table[by].astype(str).map(html.escape)  # Plotly renders some HTML tags in labels
    fig = go.Figure(
        go.Bar(
            x=table["cost_usd"],
            y=labels,
            orientation="h",
            customdata=table[["hours", "sessions"]].to_numpy(),
            hovertemplate="$%{x:,.2f} · %{customdata[0]:.1f} h · %{customdata[1]} sessions<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Cost by {by}, {review.month}",
        xaxis_title="USD",
        yaxis=dict(autorange="reversed"),
        margin=dict(l=40, r=20, t=50, b=40),
        height=max(220, 40 + 28 * len(table)),
    )
    return fig


# --------------------------------------------------------------------------- exports


CSV_COLUMNS = [
    "session_id",
    "username",
    "project",
    "provider",
    "platform",
    "person",
    "workload",
    "started_at",
    "ended_at",
    "hours",
    "hours_in_month",
    "price_per_hour_usd",
    "cost_usd",
    "cost_in_month_usd",
    "success",
    "outcome",
    "source",
    "run_id",
    "idle",
    "notes",
]


def review_csv(review: MonthlyReview, path: str | Path | None = None) -> str:
    """The month's sessions as CSV (spreadsheet formulas neutralised); also written to ``path``."""
    frame = review.sessions[CSV_COLUMNS].copy()
    for column in ["started_at", "ended_at"]:
        frame[column] = frame[column].map(
            lambda t: t.isoformat() if isinstance(t, pd.Timestamp) and not pd.isna(t) else ""
        )
    frame["run_id"] = frame["run_id"].astype("Int64")
    return to_safe_csv(frame, path)


#: Report headers people read, for the field names that do not read well with spaces for underscores.
_HEADERS = {
    "username": "Account",
    "run_id": "Run",
    "cost_in_month_usd": "Cost this month (USD)",
    "hours_in_month": "Hours this month",
    "started_at": "Started (UTC)",
    "ended_at": "Ended (UTC)",
    "price_per_hour_usd": "USD per hour",
}


def _header(name: str) -> str:
    """A column's header: ``monthly_budget_usd`` reads "Monthly budget (USD)", ``used_pct`` "Used (%)"."""
    if name in _HEADERS:
        return _HEADERS[name]
    words = name.split("_")
    unit = {"usd": " (USD)", "pct": " (%)", "h": " (h)"}.get(words[-1], "")
    if unit:
        words = words[:-1]
    text = " ".join(words)
    return text[:1].upper() + text[1:] + unit


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
    shown = shown.astype(object).where(shown.notna(), "")  # a missing note is blank, never "None"
    shown.columns = [_header(str(c)) for c in shown.columns]
    # escape=True: names and notes are user text and must never become markup in the report.
    return shown.to_html(index=False, escape=True, na_rep="", border=0, classes="table")


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .meta{color:#555}
table.table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0 1.5rem}
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
    accounts_table = review.accounts[
        [
            "username",
            "provider",
            "status",
            "monthly_quota_hours",
            "hours_used",
            "quota_used_pct",
            "forecast_hours",
            "forecast_hours_low",
            "forecast_hours_high",
            "monthly_budget_usd",
            "cost_used_usd",
            "budget_used_pct",
            "forecast_cost_usd",
            "forecast_cost_usd_low",
            "forecast_cost_usd_high",
        ]
    ]
    money = (
        "monthly_budget_usd",
        "cost_used_usd",
        "forecast_cost_usd",
        "forecast_cost_usd_low",
        "forecast_cost_usd_high",
        "cost_usd",
        "cost_in_month_usd",
    )
    hours = (
        "monthly_quota_hours",
        "hours_used",
        "forecast_hours",
        "forecast_hours_low",
        "forecast_hours_high",
        "hours",
        "hours_in_month",
    )
    breakdowns = "".join(
        f"<h3>By {by}</h3>{_table_html(review.breakdown(by), money, hours)}" for by in ("person", "project", "platform")
    )
    sessions = plural(int(t["sessions"]), "session")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fedopt usage review {esc(review.month)}</title>
<style>{_STYLE}</style></head><body>
<h1>Usage review {esc(review.month)}</h1>
<p class="meta">{esc(status)} · generated {utcnow():%Y-%m-%d %H:%M} UTC by fedopt ·
all figures are derived from recorded usage sessions</p>
<h2>Totals</h2>
<p>{t["hours"]:,.1f} h · ${t["cost_usd"]:,.2f} · {sessions} ({t["failed_sessions"]} failed) ·
idle (no logged run): {t["idle_hours"]:,.1f} h, ${t["idle_cost_usd"]:,.2f}</p>
<h2>Warnings</h2><ul>{warnings}</ul>
<h2>Accounts</h2>{_table_html(accounts_table, money, hours)}
<p class="meta">Forecast: a heuristic, not a model. The month so far is extrapolated at its average daily rate; the
90% band is ±{Z_90} × the standard deviation of the complete days' totals × √(days remaining). Sessions crossing
midnight or the month's edge are split by their hours; cost follows the hours.</p>
<div class="figs">{charts[0]}</div>
<h2>Breakdown</h2>{"".join(f'<div class="figs">{c}</div>' for c in charts[1:])}
{breakdowns}
<h2>Most expensive sessions</h2>{_table_html(review.top_sessions, money, hours)}
<h2>Idle sessions (no logged run)</h2>{_table_html(review.idle_sessions, money, hours)}
</body></html>
"""


def write_report(
    month: str | date | None,
    out: str | Path,
    *,
    as_csv: bool = False,
    now: datetime | None = None,
    session: Session | None = None,
) -> Path:
    """Write the month's report (HTML, or CSV with ``as_csv``) to ``out``; returns the path."""
    review = monthly_review(month, now=now, session=session)
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
