"""Usage review: the monthly meeting's page — burn-down, forecast, breakdowns, idle time, exports."""

import streamlit as st

from fedopt_core import accounts
from fedopt_core.accounts import reports, review_export, review_print
from fedopt_dashboard.ui import money_column, plain, require_role

require_role("member")


st.title("Usage review")
months = [accounts.month_label()]
for _ in range(11):
    months.append(accounts.previous_month(months[-1]))
month = st.selectbox(
    "Month", months, help="Calendar months in UTC; sessions crossing the month's edge are split by their hours."
)
review = reports.monthly_review(month)
totals = review.totals

c1, c2, c3, c4 = st.columns(4)
c1.metric("Hours", f"{totals['hours']:,.1f}")
c2.metric("Spent", f"${totals['cost_usd']:,.2f}")
c3.metric("Sessions", f"{totals['sessions']}", help=f"{totals['failed_sessions']} failed")
c4.metric("Idle (no logged run)", f"${totals['idle_cost_usd']:,.2f}", help=f"{totals['idle_hours']:,.1f} h")
st.caption(
    ("Complete month." if review.complete else f"Month so far, up to {review.as_of:%Y-%m-%d %H:%M} UTC.")
    + " Every figure is computed from the recorded usage sessions."
)

for warning in review.warnings:
    show = {"over": st.error, "warning": st.warning}.get(warning.level, st.info)
    show(plain(warning.message))

if review.accounts.empty:
    st.info("No accounts yet. Add them on the Accounts page, then record usage sessions.")
else:
    st.subheader("Burn-down against each account's limit")
    st.plotly_chart(review_export.burn_down_figure(review), width="stretch")
    st.caption(
        "Forecast (dashed) is a heuristic: the month so far extrapolated at its average daily rate; the bar is a "
        "90% band from the day-to-day variation of the complete days (none with fewer than two days). "
        "Accounts with an hour quota are drawn against it, others against their budget."
    )
    st.dataframe(
        review.accounts[
            [
                "username",
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
                "warning",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "username": "Account",
            "status": "Status",
            "warning": "Warning",
            "monthly_quota_hours": st.column_config.NumberColumn("Quota (h)", format="%.1f"),
            "hours_used": st.column_config.NumberColumn("Used (h)", format="%.1f"),
            "quota_used_pct": st.column_config.NumberColumn("Quota used", format="%.0f%%"),
            "forecast_hours": st.column_config.NumberColumn("Forecast (h)", format="%.1f"),
            "forecast_hours_low": st.column_config.NumberColumn("low", format="%.1f"),
            "forecast_hours_high": st.column_config.NumberColumn("high", format="%.1f"),
            "monthly_budget_usd": money_column("Budget"),
            "cost_used_usd": money_column("Spent"),
            "budget_used_pct": st.column_config.NumberColumn("Budget used", format="%.0f%%"),
            "forecast_cost_usd": money_column("Forecast"),
            "forecast_cost_usd_low": money_column("low"),
            "forecast_cost_usd_high": money_column("high"),
        },
    )

if review.sessions.empty:
    st.info(f"No usage sessions in {month}.")
else:
    st.subheader("Where the money went")
    tabs = st.tabs(["By person", "By project / workload", "By platform"])
    for tab, by in zip(tabs, ["person", "project", "platform"], strict=True):
        with tab:
            st.plotly_chart(review_export.breakdown_figure(review, by), width="stretch", key=f"breakdown_{by}")
            st.dataframe(review.breakdown(by), hide_index=True, width="stretch")

    st.subheader("Most expensive sessions")
    st.dataframe(review.top_sessions, hide_index=True, width="stretch")

    st.subheader("Idle sessions")
    st.caption("Sessions with no logged run: no run is linked to them and no run on the same platform overlaps them.")
    idle = review.idle_sessions
    if idle.empty:
        st.info("No idle sessions: every session has a logged run.")
    else:
        st.dataframe(idle, hide_index=True, width="stretch")

st.subheader("Export")
c1, c2, c3 = st.columns(3)
c1.download_button(
    "Sessions of the month (CSV)",
    review_export.review_csv(review),
    file_name=f"fedopt-usage-{month}.csv",
    mime="text/csv",
    on_click="ignore",
)
# Built only when clicked: the charts are drawn for paper, and the PDF is printed by Chromium.
c2.download_button(
    "Printable report (HTML)",
    lambda: review_print.review_html(review),
    file_name=f"fedopt-usage-{month}.html",
    mime="text/html",
    on_click="ignore",
)
printer = review_print.find_chromium()
c3.download_button(
    "Report to print (PDF, A4)",
    lambda: review_print.review_pdf(review),
    file_name=f"fedopt-usage-{month}.pdf",
    mime="application/pdf",
    on_click="ignore",
    disabled=printer is None,
    help=None if printer else "No Chromium on the server to print with: install chromium, or set FEDOPT_CHROMIUM.",
)
