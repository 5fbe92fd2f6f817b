"""Audit & roles: who changed what and when, and who may do what (admins only)."""

import streamlit as st

from fedopt_core import auth
from fedopt_core.csvfiles import to_safe_csv
from fedopt_dashboard.ui import plain, require_role

require_role("admin")
st.title("Audit & roles")

st.subheader("Audit log")
log = auth.audit_log()
action = st.selectbox("Action", ["all"] + sorted(log["action"].dropna().unique()))
shown = log if action == "all" else log[log["action"] == action]
if shown.empty:
    st.info("Nothing recorded yet. Changes to accounts, keys, quotas, platforms, launches and deletions appear here.")
else:
    st.dataframe(shown.astype({"details": str}), hide_index=True, width="stretch")
st.download_button(
    "Export the audit log (CSV)",
    to_safe_csv(shown.astype({"details": str})),
    file_name="fedopt-audit.csv",
    mime="text/csv",
)

st.subheader("Roles")
st.caption(
    "viewer: pages and predictions · member: also logs runs and usage · admin: also accounts, keys, "
    "quotas, launches and deleting. Anyone without a row here is a viewer."
)
with st.form("role_form"):
    email = st.text_input("E-mail")
    role = st.selectbox("Role", list(auth.ROLES))
    if st.form_submit_button("Set role"):
        try:
            auth.set_role(email.strip(), role)
        except (ValueError, auth.PermissionDenied) as exc:
            st.error(plain(str(exc)))
        else:
            st.success(plain(f"{email} is now a {role}."))
st.dataframe(auth.list_roles(), hide_index=True, width="stretch")  # after the form, so it shows the change
