"""Machines: launch and terminate Lambda Cloud machines with a chosen account (admins only)."""

import streamlit as st

from fedopt_core import accounts
from fedopt_core.cloud import lambda_ops
from fedopt_dashboard.ui import clear_caches, money_column, plain, platforms, require_role

require_role("admin")
st.title("Machines")
st.caption(
    "Launch and terminate Lambda Cloud machines. Every launch opens a usage session at the price of "
    "the moment; terminating closes it. Machines started or stopped elsewhere are picked up by sync."
)

lambda_accounts = accounts.list_accounts()
lambda_accounts = lambda_accounts[(lambda_accounts["provider"] == "lambda") & (lambda_accounts["api_key"] != "")]
if lambda_accounts.empty:
    st.info("No Lambda account with an API key yet. Add one on the Accounts page.")
    st.stop()
username = st.selectbox("Account", lambda_accounts["username"].tolist())

# The running machines are drawn last into this box: the page shows the database's view and the
# launch form at once, and the sync with Lambda (a network call) runs after, in a fragment.
running_box = st.container()

st.subheader("Launch")
catalogue = platforms()
offered = catalogue[(catalogue["provider"] == "lambda") & catalogue["available"].astype(bool)]
choice = st.selectbox("Instance type", offered["instance_type"].tolist())
row = offered[offered["instance_type"] == choice].iloc[0]
regions = row["regions_with_capacity"] if row["regions_with_capacity"] else row["regions"]
region = st.selectbox("Region", regions or ["(refresh the catalogue to see capacity)"])
ssh_keys = st.text_input("SSH key names (comma-separated)")
max_price = st.number_input(
    "Maximum USD per hour you accept", min_value=0.0, value=float(row["price_per_hour_usd"] or 0.0), step=0.5
)
st.caption(
    f"Catalogue price: ${row['price_per_hour_usd']:.2f}/h (as of {row['as_of']}). The live price is "
    "checked again at launch and the launch is refused above your maximum."
)
h1, h2 = st.columns(2)
expected_hours = h1.number_input(
    "Job's predicted upper bound (hours; 0 = not known, 1 h assumed)",
    min_value=0.0,
    value=0.0,
    help="From Predict & compare: the launch is refused if this much would take the account past its budget.",
)
override = h2.text_input("Launch past the account's caps because… (admins; recorded)", key="launch_override")
# One confirmation = one token = at most one machine: a second click, a rerun or a retry with the
# same confirmation is refused by the database, whatever the browser does.
confirmed = st.checkbox(
    plain(f"Yes, launch one {choice} in {region}, billed by the hour until terminated"), key="launch_ok"
)
if not confirmed:
    st.session_state.pop("launch_token", None)
elif "launch_token" not in st.session_state:
    st.session_state["launch_token"] = lambda_ops.new_confirmation()
token = st.session_state.get("launch_token")
used = lambda_ops.launch_intent(token) if token else None
if used is not None:
    if used["state"] == "started":
        st.success(
            plain(
                f"Launched {', '.join(used['instance_ids'])} ({used['name']}) at ${used['price_per_hour_usd']:.2f}/h."
            )
        )
    elif used["state"] == "pending":
        st.info(plain(f"Launching {used['name']}…"))
    else:
        st.error(plain(used["error"] or f"Launch {used['name']}: {used['state']}"))
    st.caption("This confirmation is used. Untick and tick the box again to launch another machine.")
if st.button("Launch", type="primary", disabled=not confirmed or used is not None):
    try:
        outcome = lambda_ops.launch(
            username,
            choice,
            region,
            [k.strip() for k in ssh_keys.split(",") if k.strip()],
            max_price_per_hour_usd=max_price,
            confirmation=token,
            expected_hours=expected_hours or None,
            override_reason=override.strip() or None,
        )
    except lambda_ops.LambdaOperationError as exc:
        st.error(plain(str(exc)))
    else:
        clear_caches()
        st.success(plain(f"Launched {', '.join(outcome.instance_ids)} at ${outcome.price_per_hour_usd:.2f}/h."))


@st.fragment
def running_panel(username: str) -> None:
    """What runs on the account: the database's view first, then a sync with Lambda (spinner)."""
    st.subheader("Running")
    table = st.empty()
    running = show_running(table, username)
    force = st.button("Sync now")
    with st.spinner("Checking Lambda for machines started or stopped elsewhere…"):
        synced = lambda_ops.sync(username, force=force)  # on page load, at most once a minute
    if not synced.ok:
        st.warning(plain(f"Could not sync with Lambda: {synced.error}"))
    elif not synced.skipped and (synced.opened or synced.closed):
        st.info(
            f"Sync: {len(synced.opened)} machine(s) found running outside fedopt, "
            f"{len(synced.closed)} found terminated elsewhere."
        )
        clear_caches()
        running = show_running(table, username)
    if running.empty:
        return
    to_stop = st.multiselect("Terminate", running["instance_id"].tolist())
    confirmed = bool(to_stop) and st.checkbox(f"Yes, terminate {len(to_stop)} machine(s) now")
    if confirmed and st.button("Terminate", type="primary"):
        try:
            lambda_ops.terminate(username, to_stop)
        except lambda_ops.LambdaOperationError as exc:
            st.error(plain(str(exc)))
        else:
            clear_caches()
            st.rerun()


def show_running(slot, username: str):  # noqa: ANN001, ANN201 - a Streamlit placeholder; a DataFrame
    """Draw the account's running machines (from the database) into ``slot``; returns them."""
    running = lambda_ops.running_machines(username)
    if running.empty:
        slot.caption("Nothing running on this account.")
        return running
    slot.dataframe(
        running,
        hide_index=True,
        width="stretch",
        column_config={
            "price_per_hour_usd": money_column("USD / hour"),
            "cost_so_far_usd": money_column("Cost so far"),
        },
    )
    return running


with running_box:
    running_panel(username)
