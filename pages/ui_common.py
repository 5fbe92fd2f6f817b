"""What every page shares: the cached bootstrap of the database and cached queries.

Not a page itself (streamlit_app.py registers the pages explicitly).  No logic lives here
beyond caching: every function calls fedopt_core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from fedopt_core import auth, catalog, overview
from fedopt_core.db import DatabaseError, ensure_database

if TYPE_CHECKING:
    from streamlit.elements.lib.column_types import ColumnConfig


@st.cache_resource(show_spinner="Preparing the database…")
def _bootstrap(database_label: str) -> None:
    # The label (not the URL) is the cache key so a password never lands in Streamlit's cache keys.
    ensure_database()
    if overview.counts()["platforms"] == 0:
        catalog.load_all()


def ensure_ready() -> None:
    """Create/upgrade the database once per process; stop the page with one line if it fails."""
    try:
        _bootstrap(overview.database_label())
    except DatabaseError as exc:
        st.error(f"Database problem: {exc}")
        st.stop()


@st.cache_data(ttl=60, show_spinner=False)
def counts() -> dict[str, int]:
    return overview.counts()


@st.cache_data(ttl=300, show_spinner=False)
def platforms() -> pd.DataFrame:
    return catalog.list_platforms()


def available_gpu_platforms() -> pd.DataFrame:
    """The catalogue's GPU platforms that are available now: the candidates on Predict and Plan."""
    return catalog.filter_platforms(platforms(), include_cpu=False, include_unavailable=False)


@st.cache_data(ttl=300, show_spinner=False)
def techniques() -> pd.DataFrame:
    return catalog.list_techniques()


def after_runs_logged() -> None:
    """New runs: drop cached results, and start a background retrain when enough runs arrived."""
    from fedopt_core import training

    clear_caches()
    if training.maybe_retrain_async(separate_process=True) is not None:
        st.toast("Enough new runs: a model is training in the background (see the Model page).")


def clear_caches() -> None:
    """After a write: drop cached query results so every page shows the new rows."""
    counts.clear()
    platforms.clear()
    techniques.clear()


# --------------------------------------------------------------------------- tables


def money_column(label: str) -> ColumnConfig:
    """A USD column for ``st.dataframe``, so money reads the same way on every page."""
    return st.column_config.NumberColumn(label, format="$%.2f")


# --------------------------------------------------------------------------- sign-in and roles


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


def _sign_in_page() -> None:
    st.title("Sign in to fedopt")
    st.write("fedopt is shared by your lab. Sign in with your institution's account to continue.")
    provider = auth_provider()
    if st.button("Sign in", type="primary"):
        st.login(provider) if provider else st.login()


def _identity() -> auth.Actor | None:
    """The acting user: the local admin without sign-in, None for a signed-out visitor."""
    if auth_provider() is None:
        return auth.LOCAL_ADMIN
    if not st.user.is_logged_in:
        return None
    return auth.actor_from_identity(st.user.to_dict())


def sign_in() -> auth.Actor:
    """Set the acting user for this script run; a signed-out visitor gets only the sign-in page."""
    actor = _identity()
    if actor is None:
        # A navigation of one hidden page: every URL shows sign-in, and no page list leaks.
        st.navigation([st.Page(_sign_in_page, title="Sign in")], position="hidden").run()
        st.stop()
    auth.set_actor(actor)
    return actor


def _leave_legacy_page_mode() -> None:
    """Open the app shell (sidebar, wide layout, navigation) around a deep link on a fresh server.

    Until some session has called st.navigation, Streamlit treats the pages/ folder as an old-style
    multipage app and runs a bookmarked /runs as pages/runs.py alone, without streamlit_app.py.
    Running the shell here (it runs this page again, inside it) and stopping this outer run keeps
    the user's widget input, which a rerun would drop.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        run_shell()
        st.stop()


def require_role(role: str = "viewer") -> auth.Actor:
    """First line of every page: sign-in and role, checked by the page itself.

    A page must not trust that streamlit_app.py ran first: on a fresh server Streamlit can
    serve a script from pages/ directly, before any st.navigation exists.
    """
    _leave_legacy_page_mode()
    ensure_ready()
    actor = _identity()
    if actor is None:
        _sign_in_page()
        st.stop()
    auth.set_actor(actor)
    if not actor.can(role):
        st.title("Not allowed")
        st.error(f"This page needs the {role} role; you are signed in as a {actor.role}.")
        st.stop()
    return actor


# --------------------------------------------------------------------------- the app shell

#: (section, page script, title, icon, url path, least role that may open it)
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


def run_shell() -> None:
    """The dashboard: sign-in, the pages this user may open, the shared sidebar, then the page."""
    st.set_page_config(page_title="fedopt", page_icon=":material/bolt:", layout="wide")
    ensure_ready()
    actor = sign_in()
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
