"""The fedopt dashboard's entry point: sign-in, the pages this user may open, the shared sidebar.

Run it with ``fedopt dashboard`` (or ``make run``).  Each page under ``pages/`` is a short script
that calls ``fedopt_core``; what they share lives in :mod:`fedopt_dashboard.ui`.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fedopt_core import auth, overview
from fedopt_core.crypto import SecretKeyError
from fedopt_core.errors import FedoptInputError
from fedopt_core.formatting import plural
from fedopt_dashboard import ui

PAGES_DIR = Path(__file__).resolve().parent / "pages"

#: (section, page script, title, icon, url path, least role that may open it)
PAGES = [
    ("Start", "overview.py", "Overview", ":material/home:", "overview", "viewer"),
    ("Decide", "predict.py", "Predict & compare", ":material/query_stats:", "predict", "viewer"),
    ("Decide", "plan.py", "Plan", ":material/view_timeline:", "plan", "viewer"),
    ("Catalogue", "platforms.py", "Platforms", ":material/dns:", "platforms", "viewer"),
    ("Catalogue", "techniques.py", "Techniques", ":material/lightbulb:", "techniques", "viewer"),
    ("Learn", "runs.py", "Runs", ":material/timer:", "runs", "viewer"),
    ("Learn", "model.py", "Model", ":material/model_training:", "model", "viewer"),
    ("Money", "accounts.py", "Accounts", ":material/account_balance_wallet:", "accounts", "admin"),
    ("Money", "usage_review.py", "Usage review", ":material/monitoring:", "usage", "member"),
    ("Money", "machines.py", "Machines", ":material/memory:", "machines", "admin"),
    ("Admin", "admin.py", "Audit & roles", ":material/admin_panel_settings:", "admin", "admin"),
]


def auth_provider() -> str | None:
    """None when no [auth] section is configured (single local user); else the provider to use."""
    try:
        section = st.secrets.get("auth")
    except Exception:  # noqa: BLE001 - no secrets.toml at all means no sign-in
        return None
    if not section:
        return None
    named = [key for key, value in section.items() if hasattr(value, "keys")]
    return named[0] if named else ""


def sign_in_page() -> None:
    st.title("Sign in to fedopt")
    st.write("fedopt is shared by your lab. Sign in with your institution's account to continue.")
    provider = auth_provider()
    if st.button("Sign in", type="primary"):
        st.login(provider) if provider else st.login()


def signed_in_actor() -> auth.Actor | None:
    """The acting user: the local admin without sign-in, None for a signed-out visitor."""
    if auth_provider() is None:
        return auth.LOCAL_ADMIN
    if not st.user.is_logged_in:
        return None
    return auth.actor_from_identity(st.user.to_dict())


def main() -> None:
    """Sign in, build the navigation for this user's role, draw the sidebar, run the chosen page."""
    st.set_page_config(page_title="fedopt", page_icon=":material/bolt:", layout="wide")
    ui.ensure_ready()
    actor = signed_in_actor()
    if actor is None:
        # A navigation of one hidden page: every URL shows sign-in, and no page list leaks.
        st.navigation([st.Page(sign_in_page, title="Sign in")], position="hidden").run()
        st.stop()
    auth.set_actor(actor)
    sections: dict[str, list[st.Page]] = {}
    for section, script, title, icon, url_path, role in PAGES:
        if actor.can(role):  # a page the user may not open is not even listed
            page = st.Page(
                PAGES_DIR / script, title=title, icon=icon, url_path=url_path, default=script == "overview.py"
            )
            sections.setdefault(section, []).append(page)
    navigation = st.navigation(sections, position="hidden")

    with st.sidebar:
        for section, section_pages in sections.items():
            st.caption(section)
            for page in section_pages:
                st.page_link(page)
        st.divider()
        numbers = ui.counts()
        if actor.can("admin"):  # where the data lives is for those who run the deployment
            st.caption("Database")
            st.code(overview.database_label(), language=None)
        st.caption(
            f"{numbers['gpu_platforms']} GPU platforms · {plural(numbers['runs'], 'run')} · "
            f"{plural(numbers['techniques'], 'technique')} · {plural(numbers['accounts'], 'account')}"
        )
        for alert in ui.budget_alerts():
            st.warning(ui.plain(alert.message), icon=":material/savings:")
        if actor.signed_in:
            st.text(f"Signed in as {actor.label} ({actor.role})")  # text: a display name is not Markdown
            st.button("Sign out", on_click=st.logout)

    ui.keep_page_inputs()
    with ui.inside_shell():
        try:
            navigation.run()
        except (auth.PermissionDenied, FedoptInputError, SecretKeyError) as exc:
            # A refusal a page did not catch is still one line, never a traceback.
            st.error(ui.plain(f"Not done: {exc}"))


if __name__ == "__main__":
    main()
