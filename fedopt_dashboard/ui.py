"""What the page scripts share: the page guard, cached reads of fedopt_core, and how values are shown.

* :func:`require_role` is the first line of every page: it makes sure the page runs inside the app
  shell (``streamlit_app.py``) and that the signed-in user has the role the page needs.
* Cached reads (``st.cache_resource`` for the database bootstrap, ``st.cache_data`` for queries)
  and :func:`clear_caches`, which every write calls so the sidebar and every page agree at once.
* Display helpers: :func:`money_column` and :func:`plain` (user or server text made inert).

No computation lives here: every figure comes from ``fedopt_core``.
"""

from __future__ import annotations

import contextvars
import html
import re
import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from fedopt_core import accounts, auth, catalog, overview
from fedopt_core.db import DatabaseError, ensure_database

ENTRY_SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"

# --------------------------------------------------------------------------- the page guard

# True while the shell runs a page.  Until some session has called st.navigation, Streamlit treats a
# folder named pages/ beside the entry script as an old-style multipage app and runs a bookmarked
# /runs as pages/runs.py alone; the guard then runs the entry script around the page instead.
_inside_shell: contextvars.ContextVar[bool] = contextvars.ContextVar("fedopt_inside_shell", default=False)


@contextmanager
def inside_shell() -> Iterator[None]:
    """The shell runs the chosen page inside this block."""
    token = _inside_shell.set(True)
    try:
        yield
    finally:
        _inside_shell.reset(token)


def require_role(role: str = "viewer") -> auth.Actor:
    """First line of every page: run inside the shell, signed in, with at least ``role``.

    Outside the shell (a deep link on a fresh server) this runs the entry script, which signs the
    user in and runs this page inside it, and then stops the outer run: the user's widget input is
    kept, which a rerun would drop.
    """
    if not _inside_shell.get():
        runpy.run_path(str(ENTRY_SCRIPT), run_name="__main__")
        st.stop()
    actor = auth.current_actor()
    if not actor.can(role):
        st.title("Not allowed")
        st.error(f"This page needs the {role} role; you are signed in as a {actor.role}.")
        st.stop()
    return actor


# --------------------------------------------------------------------------- cached reads


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
        st.error(plain(f"Database problem: {exc}"))
        st.stop()


@st.cache_data(ttl=60, show_spinner=False)
def counts() -> dict[str, int]:
    return overview.counts()


@st.cache_data(ttl=60, show_spinner=False)
def budget_alerts() -> list[str]:
    """Accounts past 50/80/100% of their monthly budget, as lines for the sidebar."""
    return [alert.message for alert in accounts.budget_alerts()]


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
    # Imported here: only pages that write runs pay for loading the predictor's modules.
    from fedopt_core.prediction import training

    clear_caches()
    if training.maybe_retrain_async(separate_process=True) is not None:
        st.toast("Enough new runs: a model is training in the background (see the Model page).")


def clear_caches() -> None:
    """After a write: drop cached query results so every page shows the new rows."""
    counts.clear()
    budget_alerts.clear()
    platforms.clear()
    techniques.clear()


# --------------------------------------------------------------------------- showing values


def money_column(label: str) -> dict[str, Any]:
    """A USD column for ``st.dataframe``, so money reads the same way on every page."""
    return st.column_config.NumberColumn(label, format="$%.2f")


def chart_text(values: pd.Series) -> pd.Series:
    """User or server text for chart labels and hover text: plotly reads ``<a href>``, ``<img>`` and
    other tags in them as markup, so the angle brackets and ampersands are made entities."""
    return values.astype(str).map(html.escape)


def plain(text: object) -> str:
    """User or server text made inert for st.markdown-based elements (no Markdown, links, colours or HTML).

    Markdown syntax is escaped; a bare address (``http://…``, ``www.…``) would still be made a link
    by the renderer, so an invisible word joiner goes into it: it reads the same and cannot be clicked.
    """
    text = _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "\u2060" + m.group(0)[-1], str(text))
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])", r"\\\1", text)


_AUTOLINK = re.compile(r"(?i)(?:https?|ftp|mailto):/|www\.|@(?=[a-z0-9-]+\.)")
