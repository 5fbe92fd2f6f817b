"""fedopt dashboard: sign-in, navigation and the shared sidebar.  Run with `make run`."""

import streamlit as st

from fedopt_core import overview
from pages.ui_common import counts, ensure_ready, sign_in

st.set_page_config(page_title="fedopt", page_icon=":material/bolt:", layout="wide")
ensure_ready()
actor = sign_in()

# (section, page script, title, icon, url path, least role that may open it)
PAGES = [
    ("Start", "pages/overview.py", "Overview", ":material/home:", "overview", "viewer"),
    ("Decide", "pages/predict.py", "Predict & compare", ":material/query_stats:", "predict", "viewer"),
    ("Decide", "pages/plan.py", "Plan", ":material/view_timeline:", "plan", "viewer"),
    ("Catalogue", "pages/platforms.py", "Platforms", ":material/dns:", "platforms", "viewer"),
    ("Catalogue", "pages/techniques.py", "Techniques", ":material/lightbulb:", "techniques", "viewer"),
    ("Learn", "pages/runs.py", "Runs", ":material/timer:", "runs", "viewer"),
    ("Learn", "pages/model.py", "Model", ":material/model_training:", "model", "viewer"),
    ("Money", "pages/accounts.py", "Accounts", ":material/account_balance_wallet:", "accounts", "admin"),
    ("Money", "pages/usage_review.py", "Usage review", ":material/monitoring:", "usage", "member"),
    ("Money", "pages/machines.py", "Machines", ":material/memory:", "machines", "admin"),
    ("Admin", "pages/admin.py", "Audit & roles", ":material/admin_panel_settings:", "admin", "admin"),
]

sections: dict[str, list] = {}
for section, script, title, icon, url_path, role in PAGES:
    if actor.can(role):  # a page the user may not open is not even listed
        sections.setdefault(section, []).append(
            st.Page(script, title=title, icon=icon, url_path=url_path, default=script == "pages/overview.py")
        )
navigation = st.navigation(sections, position="hidden")

with st.sidebar:
    for section, section_pages in sections.items():
        st.caption(section)
        for page in section_pages:
            st.page_link(page)
    st.divider()
    numbers = counts()
    st.caption("Database")
    st.code(overview.database_label(), language=None)
    st.caption(
        f"{numbers['gpu_platforms']} GPU platforms · {numbers['runs']} runs · "
        f"{numbers['techniques']} techniques · {numbers['accounts']} accounts"
    )
    if actor.signed_in:
        st.caption(f"Signed in as {actor.name} ({actor.role})")
        st.button("Sign out", on_click=st.logout)

navigation.run()
