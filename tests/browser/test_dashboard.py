"""The real dashboard in a real browser: `streamlit run` on a free port, headless Debian Chromium."""

from __future__ import annotations

import os

import pytest

from tests.browser.helpers import free_port, open_page, set_up_home, start_dashboard, stop_dashboard
from tests.support import REPO_ROOT

pytestmark = pytest.mark.browser

PAGES = [
    ("", "fedopt"),
    ("predict", "Predict & compare"),
    ("plan", "Plan"),
    ("model", "Model"),
    ("platforms", "Platforms"),
    ("techniques", "Techniques"),
    ("runs", "Runs"),
    ("accounts", "Accounts"),
    ("usage", "Usage review"),
    ("admin", "Audit & roles"),
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("browser")
    env = os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}"}
    set_up_home(home, env)
    port = free_port()
    server = start_dashboard(home, port, env)
    yield f"http://127.0.0.1:{port}"
    stop_dashboard(server)


@pytest.mark.parametrize(("path", "heading"), PAGES)
def test_every_page_renders_without_exception(dashboard: str, browser, path: str, heading: str) -> None:
    page = open_page(browser, f"{dashboard}/{path}", heading)
    try:
        assert page.locator("[data-testid='stException']").count() == 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{path or 'overview'}.png"), full_page=True)
    finally:
        page.close()


def test_navigation_reaches_each_page_from_the_sidebar(dashboard: str, browser) -> None:
    page = open_page(browser, dashboard, "fedopt")
    try:
        for path, heading in PAGES[1:]:
            page.get_by_test_id("stSidebar").locator(f"a[href='{path}']").click()
            page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
            assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()
