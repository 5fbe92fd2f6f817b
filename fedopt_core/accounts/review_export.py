"""The monthly review as people take it to the meeting: the page's charts, a CSV of the sessions, the report files.

The printable HTML and the PDF are drawn in :mod:`.review_print`.  Each starts from a
:class:`~fedopt_core.accounts.reports.MonthlyReview`, so the page, the report and
``fedopt usage report`` show the same numbers.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sqlmodel import Session

from fedopt_core.accounts.reports import OVER_PCT, WARN_PCT, MonthlyReview, burn_down_lines, monthly_review
from fedopt_core.csvfiles import to_safe_csv
from fedopt_core.errors import AccountInputError


def burn_down_figure(review: MonthlyReview) -> go.Figure:
    """Cumulative use as % of each account's monthly limit, with the forecast to the month's end."""
    fig = go.Figure()
    lines = burn_down_lines(review)
    for line in lines:
        # Plotly renders a few HTML tags in labels; user text is escaped so it stays text.
        name = html.escape(line.username)
        fig.add_trace(
            go.Scatter(
                x=line.x,
                y=line.pct,
                mode="lines",
                name=f"{name} ({line.unit})",
                hovertemplate="%{x|%d %b %H:%M}: %{y:.0f}% of limit<extra></extra>",
            )
        )
        if line.forecast_x:
            error = None
            if not (np.isnan(line.forecast_low_pct) or np.isnan(line.forecast_high_pct)):
                end = line.forecast_pct[-1]
                error = dict(
                    type="data",
                    symmetric=False,
                    array=[0, line.forecast_high_pct - end],
                    arrayminus=[0, end - line.forecast_low_pct],
                )
            fig.add_trace(
                go.Scatter(
                    x=line.forecast_x,
                    y=line.forecast_pct,
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
    if not lines:
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


REPORT_KINDS = ("html", "pdf", "csv")


def write_report(
    month: str | date | None,
    out: str | Path,
    *,
    kind: str = "html",
    now: datetime | None = None,
    session: Session | None = None,
) -> Path:
    """Write the month's report to ``out`` as printable ``html``, ``pdf`` or the sessions' ``csv``; returns the path.

    Raises ``AccountInputError`` naming ``kind`` or ``out``, and ``review_print.PrintError`` when no PDF
    could be printed (nothing is written then).
    """
    if kind not in REPORT_KINDS:
        raise AccountInputError("kind", f"{kind!r} is not one of {', '.join(REPORT_KINDS)}")
    review = monthly_review(month, now=now, session=session)
    path = Path(out)
    if kind == "csv":
        content: str | bytes = review_csv(review)
    else:
        from fedopt_core.accounts import review_print  # matplotlib only when a report is drawn

        content = review_print.review_pdf(review) if kind == "pdf" else review_print.review_html(review)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise AccountInputError("out", f"cannot write {path}: {exc.strerror}") from None
    return path
