"""AppTest helpers: run the real app script against the test's database."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.support import DASHBOARD


@pytest.fixture
def app(loaded_db: str, monkeypatch: pytest.MonkeyPatch):
    """A function that opens the dashboard at a page and returns the run AppTest."""
    # Page tests that log runs should not start background retrains unless they ask for one.
    monkeypatch.setenv("FEDOPT_RETRAIN_EVERY", "1000000")
    # AppTest runs in this process: drop results cached for an earlier test's database.
    st.cache_data.clear()
    st.cache_resource.clear()

    def open_page(page: str | None = None, timeout: float = 60) -> AppTest:
        at = AppTest.from_file(str(DASHBOARD), default_timeout=timeout)
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        return at

    return open_page
