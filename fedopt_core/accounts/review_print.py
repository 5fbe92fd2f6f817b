"""The monthly review on paper: static charts, a printable HTML page, and the PDF printed from it.

The Usage review page draws interactive plotly charts (:mod:`.review_export`); paper needs pictures
that do not move and do not need a script.  The charts here are drawn with matplotlib as SVG and
inlined in the HTML, so the file is small, opens offline and prints the same everywhere.  The page
is laid out for A4 portrait: wide tables are split (hours against quota, cost against budget),
forecast bands share one cell, and long text wraps inside its cell instead of pushing the table
past the margin.  The PDF is that HTML printed by headless Chromium (Debian's ``chromium``).
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedopt_core.accounts.reports import OVER_PCT, WARN_PCT, Z_90, MonthlyReview, burn_down_lines
from fedopt_core.formatting import plural
from fedopt_core.models import utcnow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The printed page: A4 portrait with 12 mm margins leaves 186 mm (7.3 in) for the content.
PAGE_SIZE = "A4 portrait"
PAGE_MARGIN_MM = 12
_CONTENT_MM = 210 - 2 * PAGE_MARGIN_MM
_CHART_WIDTH_IN = 7.0
#: The longest label a chart shows in full; longer names are cut with an ellipsis (the tables keep them).
_LABEL_CHARS = 28
#: The idle sessions printed (the costliest); the rest are counted below the table and listed in the CSV.
PRINTED_IDLE_SESSIONS = 20
#: How long Chromium may take to print the report before the attempt is given up.
PRINT_TIMEOUT_S = 120.0


class PrintError(RuntimeError):
    """The PDF could not be printed: no Chromium found, or Chromium failed or took too long."""


# --------------------------------------------------------------------------- static charts


#: Dashboard sessions are threads: matplotlib's settings are process-wide, so one chart is drawn at a time.
_DRAWING = threading.Lock()


def _svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue), text kept as text."""
    buffer = io.StringIO()
    # No date in the metadata: the same review gives the same file.
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


@contextmanager
def _new_chart(width_in: float, height_in: float) -> Iterator[tuple[Figure, Any]]:
    """A figure and its axes in the report's style, drawn under the lock (no pyplot: no global figures)."""
    import matplotlib
    from matplotlib.figure import Figure

    style = {
        # Account and project names are user text: "$5$" must print as "$5$", not as mathematics.
        "text.parse_math": False,
        "svg.fonttype": "none",
        # Fixed ids, so the same review gives the same file (and two charts never share one by chance).
        "svg.hashsalt": "fedopt",
        "font.size": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with _DRAWING, matplotlib.rc_context(style):
        fig = Figure(figsize=(width_in, height_in))
        yield fig, fig.subplots()


def _short(label: object) -> str:
    text = str(label)
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def burn_down_svg(review: MonthlyReview) -> str:
    """The burn-down as an SVG: use as % of each account's limit, the forecast dashed with its band."""
    import matplotlib.dates as mdates

    lines = burn_down_lines(review)
    with _new_chart(_CHART_WIDTH_IN, 3.0) as (fig, ax):
        for line in lines:
            (drawn,) = ax.plot(line.x, line.pct, label=f"{_short(line.username)} ({line.unit})")
            if line.forecast_x:
                ax.plot(line.forecast_x, line.forecast_pct, linestyle="--", marker="o", color=drawn.get_color())
                if not (np.isnan(line.forecast_low_pct) or np.isnan(line.forecast_high_pct)):
                    end = line.forecast_pct[-1]
                    ax.errorbar(
                        [line.forecast_x[-1]],
                        [end],
                        yerr=[[end - line.forecast_low_pct], [line.forecast_high_pct - end]],
                        color=drawn.get_color(),
                        capsize=3,
                    )
        for level, colour in [(WARN_PCT, "orange"), (OVER_PCT, "red")]:
            ax.axhline(level, linestyle=":", color=colour, linewidth=1)
            ax.annotate(f"{level:.0f}%", (0.005, level), xycoords=("axes fraction", "data"), color=colour, va="bottom")
        ax.set_xlim(pd.Timestamp(review.start), pd.Timestamp(review.end) + pd.Timedelta(hours=12))
        ax.xaxis.set_major_locator(mdates.DayLocator(bymonthday=[1, 8, 15, 22]))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
        ax.set_ylim(bottom=0)
        ax.set_xlabel("date (UTC)")
        ax.set_ylabel("% of monthly limit")
        ax.set_title(f"Burn-down {review.month}: use as % of each account's monthly limit", loc="left")
        if lines:
            # Below the axes, so it never hides a line.
            ax.legend(
                title="account (dashed: forecast to the month's end, bar: 90% band)",
                fontsize=7,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.2),
                ncol=3,
                frameon=False,
            )
        else:
            ax.text(0.5, 0.5, "No account has a monthly quota or budget", ha="center", transform=ax.transAxes)
        return _svg(fig)


def breakdown_svg(review: MonthlyReview, by: str) -> str:
    """Cost per person, project or platform (the 15 costliest) as horizontal bars in an SVG."""
    table = review.breakdown(by).head(15)
    with _new_chart(_CHART_WIDTH_IN, 0.6 + 0.22 * max(len(table), 2)) as (fig, ax):
        labels = [_short(v) for v in table[by]]
        ax.barh(range(len(table)), table["cost_usd"], color="#4c78a8")
        ax.set_yticks(range(len(table)), labels)
        ax.invert_yaxis()
        ax.set_xlabel("USD")
        ax.xaxis.set_major_formatter(lambda v, _pos: f"${v:,.0f}")
        ax.set_title(f"Cost by {by}, {review.month}", loc="left")
        return _svg(fig)


# --------------------------------------------------------------------------- printable HTML


#: Report headers people read, for the field names that do not read well with spaces for underscores.
_HEADERS = {
    "username": "Account",
    "session_id": "Session",
    "project_or_workload": "Project",
    "run_id": "Run",
    "cost_in_month_usd": "Cost this month (USD)",
    "hours_in_month": "Hours this month",
    "started_at": "Started (UTC)",
    "ended_at": "Ended (UTC)",
    "price_per_hour_usd": "USD per hour",
    "monthly_quota_hours": "Quota (h)",
    "monthly_budget_usd": "Budget (USD)",
    "hours_used": "Used (h)",
    "cost_used_usd": "Spent (USD)",
    "quota_used_pct": "Used (%)",
    "budget_used_pct": "Used (%)",
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


def _money(v: float) -> str:
    return "" if pd.isna(v) else f"${v:,.2f}"


def _hours(v: float) -> str:
    return "" if pd.isna(v) else ("∞" if np.isinf(v) else f"{v:,.1f}")


#: A run of characters longer than this with no place to break gets one, so no cell can push its table past the margin.
_LONGEST_UNBROKEN = 18
_BREAK_AFTER = re.compile(r"(?<=[_/.@])|(?<=-)(?=[^\d])")


def _breakable(text: str) -> str:
    """``text`` escaped for HTML, with ``<wbr>`` where a long name may break (after ``_``, ``/``, ...)."""
    out = []
    for word in re.split(r"(\s+)", text):
        pieces = []
        for part in _BREAK_AFTER.split(word):
            pieces += [part[i : i + _LONGEST_UNBROKEN] for i in range(0, len(part), _LONGEST_UNBROKEN)]
        out.append("<wbr>".join(html.escape(piece) for piece in pieces))
    return "".join(out)


def _table_html(frame: pd.DataFrame) -> str:
    """A table for the page: figures right-aligned and never broken, text wrapped at sensible places.

    Every cell is escaped: names and notes are user text and must never become markup in the report.
    """
    if frame.empty:
        return "<p class='empty'>None.</p>"
    columns = []  # (header, css class, cells)
    for name in frame.columns:
        values = frame[name]
        if name in _MONEY:
            kind, cells = "num", values.map(_money)
        elif name in _HOURS or str(name).endswith("_pct"):
            kind, cells = "num", values.map(_hours)
        elif pd.api.types.is_datetime64_any_dtype(values):
            kind, cells = "when", values.dt.strftime("%d %b %H:%M").fillna("")  # the year is the review's
        elif pd.api.types.is_bool_dtype(values):
            kind, cells = "when", values.map({True: "yes", False: "no"})
        elif pd.api.types.is_integer_dtype(values):
            kind, cells = "num", values.map(str)
        else:
            kind, cells = "text", values.map(lambda v: "" if v is None or pd.isna(v) else str(v))
        columns.append((_header(str(name)), kind, cells.tolist()))
    head = "".join(f"<th class='{kind}'>{html.escape(header)}</th>" for header, kind, _ in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td class='{kind}'>{_breakable(cells[i])}</td>" for _, kind, cells in columns) + "</tr>"
        for i in range(len(frame))
    )
    return f"<table class='table'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


_MONEY = ("monthly_budget_usd", "cost_used_usd", "cost_usd", "cost_in_month_usd")
_HOURS = ("monthly_quota_hours", "hours_used", "hours", "hours_in_month")


def _forecast_with_band(accounts: pd.DataFrame, column: str, show: Callable[[float], str]) -> list[str]:
    """Each account's forecast with its 90% band in one cell, "12.0 (9.5–14.5)", so the table stays narrow."""
    cells = []
    for value, low, high in accounts[[column, f"{column}_low", f"{column}_high"]].itertuples(index=False):
        if pd.isna(value):
            cells.append("")
        elif pd.isna(low) or pd.isna(high):
            cells.append(show(value))
        else:
            cells.append(f"{show(value)} ({show(low)}–{show(high)})")
    return cells


def _account_tables(accounts: pd.DataFrame) -> str:
    """The accounts as two tables that fit the page: hours against quota, then cost against budget."""
    hours = accounts[["username", "provider", "status", "monthly_quota_hours", "hours_used", "quota_used_pct"]].assign(
        **{"Forecast (h, 90% band)": _forecast_with_band(accounts, "forecast_hours", _hours)}
    )
    cost = accounts[["username", "monthly_budget_usd", "cost_used_usd", "budget_used_pct"]].assign(
        **{"Forecast (USD, 90% band)": _forecast_with_band(accounts, "forecast_cost_usd", _money)}
    )
    return (
        f"<h3>Hours against the monthly quota</h3>{_table_html(hours)}"
        f"<h3>Cost against the monthly budget</h3>{_table_html(cost)}"
    )


def _idle_table(idle: pd.DataFrame) -> str:
    """The costliest idle sessions; a month of hundreds would fill pages, so the rest are counted, not listed."""
    table = _table_html(idle.head(PRINTED_IDLE_SESSIONS))
    rest = idle.iloc[PRINTED_IDLE_SESSIONS:]
    if rest.empty:
        return table
    more = plural(len(rest), "more idle session")
    return (
        f"{table}<p class='meta'>and {more}: {rest['hours_in_month'].sum():,.1f} h, "
        f"${rest['cost_in_month_usd'].sum():,.2f}; every session is in the month's CSV.</p>"
    )


#: The report's style sheet: A4 portrait, figures right-aligned, text wrapping inside its cell.
PRINT_CSS = f"""
@page{{size:{PAGE_SIZE};margin:{PAGE_MARGIN_MM}mm}}
body{{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:1.5rem auto;max-width:{_CONTENT_MM}mm;
color:#222;font-size:10pt}}
h1{{margin-bottom:.2rem;font-size:18pt}} h2{{font-size:13pt;margin:1.2rem 0 .3rem}} h3{{font-size:11pt}}
.meta{{color:#555;font-size:9pt}}
table.table{{border-collapse:collapse;width:100%;font-size:8.5pt;margin:.3rem 0 1rem}}
table.table th,table.table td{{border-bottom:1px solid #ddd;padding:.2rem .35rem;text-align:left;vertical-align:top}}
table.table .num{{text-align:right}} table.table td.num,table.table td.when{{white-space:nowrap}}
h2,h3{{break-after:avoid}}
table.table thead{{display:table-header-group}} table.table tr{{break-inside:avoid}}
.over{{color:#b00020;font-weight:600}} .warning{{color:#a65c00;font-weight:600}}
.figure svg{{width:100%;height:auto}} .figure{{break-inside:avoid;margin:.5rem 0}}
@media print{{body{{margin:0;max-width:none}}}}
"""


def review_html(review: MonthlyReview) -> str:
    """A self-contained printable report: static SVG charts, no script, nothing fetched from elsewhere."""
    t = review.totals
    esc = html.escape
    status = "complete month" if review.complete else f"month so far, up to {review.as_of:%Y-%m-%d %H:%M} UTC"
    warnings = "".join(f"<li class='{esc(w.level)}'>{esc(w.message)}</li>" for w in review.warnings) or "<li>None.</li>"
    breakdowns = "".join(
        f"<h3>By {by}</h3><div class='figure'>{breakdown_svg(review, by)}</div>{_table_html(review.breakdown(by))}"
        for by in ("person", "project", "platform")
    )
    sessions = plural(int(t["sessions"]), "session")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fedopt usage review {esc(review.month)}</title>
<style>{PRINT_CSS}</style></head><body>
<h1>Usage review {esc(review.month)}</h1>
<p class="meta">{esc(status)} · generated {utcnow():%Y-%m-%d %H:%M} UTC by fedopt ·
all figures are derived from recorded usage sessions</p>
<h2>Totals</h2>
<p>{t["hours"]:,.1f} h · ${t["cost_usd"]:,.2f} · {sessions} ({t["failed_sessions"]} failed) ·
idle (no logged run): {t["idle_hours"]:,.1f} h, ${t["idle_cost_usd"]:,.2f}</p>
<h2>Warnings</h2><ul>{warnings}</ul>
<h2>Accounts</h2>{_account_tables(review.accounts)}
<div class="figure">{burn_down_svg(review)}</div>
<p class="meta">Forecast: a heuristic, not a model. The month so far is extrapolated at its average daily rate; the
90% band is ±{Z_90} × the standard deviation of the complete days' totals × √(days remaining). Sessions crossing
midnight or the month's edge are split by their hours; cost follows the hours.</p>
<h2>Breakdown</h2>{breakdowns}
<h2>Most expensive sessions</h2>{_table_html(review.top_sessions)}
<h2>Idle sessions (no logged run)</h2>{_idle_table(review.idle_sessions)}
</body></html>
"""


# --------------------------------------------------------------------------- PDF


def find_chromium() -> str | None:
    """The Chromium that prints: ``FEDOPT_CHROMIUM``, else ``chromium`` on the PATH (Debian's package), else None."""
    chosen = os.environ.get("FEDOPT_CHROMIUM")
    if chosen:
        return shutil.which(chosen)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def html_to_pdf(page: str, *, timeout: float = PRINT_TIMEOUT_S) -> bytes:
    """Print an HTML page to PDF with headless Chromium; the page's own ``@page`` rule sets the paper."""
    chromium = find_chromium()
    if chromium is None:
        raise PrintError("no Chromium to print the PDF with: install Debian's chromium or set FEDOPT_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="fedopt-print-") as folder:
        source, target = Path(folder) / "report.html", Path(folder) / "report.pdf"
        source.write_text(page, encoding="utf-8")
        command = [
            chromium,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for the sandbox
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={Path(folder) / 'profile'}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise PrintError(f"Chromium took longer than {timeout:.0f} s to print the report") from None
        except OSError as exc:
            raise PrintError(f"cannot start Chromium ({chromium}): {exc.strerror}") from None
        if done.returncode != 0 or not target.exists():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise PrintError(f"Chromium could not print the report (exit {done.returncode}): {last[:300]}")
        return target.read_bytes()


def review_pdf(review: MonthlyReview) -> bytes:
    """The printable report as PDF bytes (A4 portrait)."""
    return html_to_pdf(review_html(review))
