"""Accounts: the accounts and allocations that pay, their limits, masked keys and usage sessions."""

from datetime import UTC, datetime, time

import streamlit as st

from fedopt_core import accounts, auth, crypto
from fedopt_core.errors import FedoptInputError
from fedopt_dashboard.ui import budget_alerts, clear_caches, money_column, plain, platforms, require_role

require_role("admin")

FLASH = "accounts_flash"
# Password inputs are emptied after every save attempt, so a key never lingers in the session.
KEY_INPUTS = ("account_api_key", "replacement_api_key")


def forget_keys() -> None:
    for name in KEY_INPUTS:
        st.session_state.pop(name, None)


def done(message: str) -> None:
    """Show ``message`` after the rerun that refreshes the tables."""
    st.session_state[FLASH] = message
    forget_keys()
    clear_caches()
    st.rerun()


st.title("Accounts")
st.caption(
    "Accounts and academic allocations the group pays through. Usage figures are computed from the "
    "recorded sessions for the current calendar month (UTC). API keys are stored encrypted and shown masked."
)
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))

for alert in budget_alerts():  # 50/80/100% of a budget, with where the month is heading (cached, as the sidebar)
    (st.error if alert.threshold >= 1 else st.warning)(plain(alert.message))

show_archived = st.toggle("Show archived accounts")
table = accounts.list_accounts(include_archived=show_archived)
if table.empty:
    st.info("No accounts yet. Add one with the form below.")
else:
    st.dataframe(
        table[
            [
                "username",
                "status",
                "provider",
                "institution",
                "email",
                "api_key",
                "eligibility",
                "email_check_reason",
                "monthly_quota_hours",
                "hours_this_month",
                "hours_left",
                "monthly_budget_usd",
                "cost_this_month_usd",
                "budget_left_usd",
                "max_usd_per_hour",
                "ends_on",
                "project",
                "notes",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "api_key": st.column_config.TextColumn("API key"),
            "eligibility": st.column_config.TextColumn("E-mail (domain check)"),
            "email_check_reason": st.column_config.TextColumn("Why"),
            "monthly_quota_hours": st.column_config.NumberColumn("Quota (h/month)", format="%.1f"),
            "hours_this_month": st.column_config.NumberColumn("Used (h)", format="%.1f"),
            "hours_left": st.column_config.NumberColumn("Left (h)", format="%.1f"),
            "monthly_budget_usd": money_column("Budget (USD/month)"),
            "cost_this_month_usd": money_column("Spent (USD)"),
            "budget_left_usd": money_column("Left (USD)"),
            "max_usd_per_hour": money_column("Cap (USD/h)"),
            "ends_on": st.column_config.DateColumn("Ends on"),
        },
    )
    st.caption("An empty quota and budget means no limit. The e-mail check informs; it never blocks an account.")

active_names = table.loc[table["status"] != "archived", "username"].tolist() if not table.empty else []

with st.expander("Which account would pay for a job?"):
    c1, c2, c3 = st.columns(3)
    need_hours = c1.number_input("Expected hours", min_value=0.0, value=None, step=1.0, key="choose_hours")
    need_cost = c2.number_input("Expected cost (USD)", min_value=0.0, value=None, step=10.0, key="choose_cost")
    need_provider = c3.text_input("Provider (empty = any)", key="choose_provider")
    choice = accounts.choose_account(
        {"expected_hours": need_hours, "expected_cost_usd": need_cost, "provider": need_provider or None}
    )
    (st.success if choice.ok else st.warning)(plain(choice.reason))

st.subheader("Add or update an account")
st.caption("An existing username is updated, not duplicated; fields left empty keep their stored value.")
with st.form("account_form", clear_on_submit=True):
    c1, c2 = st.columns(2)
    username = c1.text_input("Username")
    provider = c2.text_input("Provider", value="lambda")
    institution = c1.text_input("Institution")
    email = c2.text_input("Institutional e-mail")
    api_key = st.text_input("API key (stored encrypted, never shown again)", type="password", key="account_api_key")
    c1, c2, c3 = st.columns(3)
    quota = c1.number_input("Monthly quota (hours)", min_value=0.0, value=None, step=10.0)
    budget = c2.number_input("Monthly budget (USD)", min_value=0.0, value=None, step=50.0)
    ends_on = c3.date_input("Ends on", value=None)
    max_hourly = c1.number_input(
        "Hard cap (USD per hour, all its machines)",
        min_value=0.0,
        value=None,
        step=1.0,
        help="A launch that would take the account's running machines past this is refused.",
    )
    project = st.text_input("Project / grant")
    notes = st.text_area("Notes")
    add_clicked = st.form_submit_button("Save account")

if add_clicked:
    try:
        created = accounts.register_academic_account(
            username,
            api_key or None,
            institution,
            email,
            provider=provider,
            monthly_quota_hours=quota,
            monthly_budget_usd=budget,
            max_usd_per_hour=max_hourly,
            ends_on=ends_on,
            project=project,
            notes=notes,
        )
    except (FedoptInputError, auth.PermissionDenied, crypto.SecretKeyError) as exc:
        forget_keys()
        st.error(f"Not saved: {plain(exc)}")
    else:
        done(f"{'Added' if created else 'Updated'} account {plain(username.strip())}.")

st.subheader("Record a usage session")
catalogue = platforms()
platform_names = sorted(catalogue["instance_type"].dropna().unique().tolist())
if not active_names:
    st.info("Add an account first: a session is paid by an account.")
else:
    with st.form("session_form"):
        c1, c2 = st.columns(2)
        who = c1.selectbox("Account", active_names)
        platform = c2.selectbox("Platform (instance type)", platform_names)
        c1, c2, c3 = st.columns(3)
        start_day = c1.date_input("Start date (UTC)", value=datetime.now(UTC).date())
        start_time = c2.time_input("Start time (UTC)", value=time(9, 0))
        hours = c3.number_input("Hours", min_value=0.0, value=1.0, step=0.5)
        c1, c2 = st.columns(2)
        cost = c1.number_input("Cost (USD; empty = hours x catalogue price)", min_value=0.0, value=None, step=1.0)
        succeeded = c2.checkbox("The work succeeded", value=True)
        c1, c2 = st.columns(2)
        person = c1.text_input("Person")
        workload = c2.text_input("Project / workload")
        session_notes = st.text_input("Notes", key="session_notes")
        session_clicked = st.form_submit_button("Record session")
    if session_clicked:
        try:
            started = datetime.combine(start_day, start_time, tzinfo=UTC)
            accounts.add_usage_session(
                who,
                platform,
                started,
                hours=hours,
                cost_usd=cost,
                success=succeeded,
                person=person,
                workload=workload,
                notes=session_notes,
            )
        except (FedoptInputError, auth.PermissionDenied) as exc:
            st.error(f"Not recorded: {plain(exc)}")
        else:
            done(f"Recorded {hours:g} h on {plain(platform)} for {plain(who)}.")

if active_names:
    st.subheader("Archive an account")
    st.caption("An archived account is never chosen to pay; its sessions stay in every report.")
    c1, c2 = st.columns([3, 1])
    to_archive = c1.selectbox("Account to archive", active_names, key="archive_pick")
    if c2.button("Archive", key="archive_button"):
        try:
            accounts.archive_account(to_archive)
        except (FedoptInputError, auth.PermissionDenied) as exc:
            st.error(f"Not archived: {plain(exc)}")
        else:
            done(f"Archived {plain(to_archive)}; its history is kept.")

    with st.expander("Replace an account's API key"):
        with st.form("key_form", clear_on_submit=True):
            key_owner = st.selectbox("Account", active_names, key="key_owner")
            new_key = st.text_input("New API key", type="password", key="replacement_api_key")
            key_clicked = st.form_submit_button("Replace key")
        if key_clicked:
            try:
                mask = accounts.set_api_key(key_owner, new_key)
            except (FedoptInputError, auth.PermissionDenied, crypto.SecretKeyError) as exc:
                forget_keys()
                st.error(f"Not replaced: {plain(exc)}")
            else:
                done(f"Replaced the key of {plain(key_owner)}: {plain(mask)}.")

st.subheader("Sessions this month")
sessions = accounts.list_usage_sessions()
if sessions.empty:
    st.info("No usage recorded this month.")
else:
    st.dataframe(
        sessions[
            [
                "session_id",
                "username",
                "platform",
                "person",
                "workload",
                "started_at",
                "ended_at",
                "hours_in_window",
                "cost_in_window_usd",
                "outcome",
                "source",
                "notes",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "hours_in_window": st.column_config.NumberColumn("Hours this month", format="%.2f"),
            "cost_in_window_usd": money_column("USD this month"),
        },
    )
