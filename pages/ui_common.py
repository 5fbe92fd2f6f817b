"""What every page shares: the cached bootstrap of the database and cached queries.

Not a page itself (streamlit_app.py registers the pages explicitly).  No logic lives here
beyond caching: every function calls fedopt_core.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fedopt_core import catalog, overview
from fedopt_core.db import DatabaseError, ensure_database


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


@st.cache_data(ttl=300, show_spinner=False)
def techniques() -> pd.DataFrame:
    return catalog.list_techniques()


def clear_caches() -> None:
    """After a write: drop cached query results so every page shows the new rows."""
    counts.clear()
    platforms.clear()
    techniques.clear()
