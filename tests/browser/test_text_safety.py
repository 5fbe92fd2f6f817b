"""User and server text is shown as text, in a real browser (issue 13, row 12).

A platform, an account and a stored Lambda error carry Markdown links, an image and an HTML link;
Predict ("Who would pay", the charts) and Platforms (the refresh error, the chart) must show
them as text: no link or image to the hostile address appears in the page.
"""

from __future__ import annotations

import os

import pytest

from tests.browser.helpers import free_port, open_page, set_up_home, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser

HOSTILE = "[click me](http://evil.example/p) <a href='http://evil.example/a'>a</a> ![i](http://evil.example/i.png)"
SEED = f"""
from fedopt_core import accounts, catalog, db
from fedopt_core.cloud import lambda_ops
catalog.save_platform({{"provider": "evilcloud", "instance_type": {HOSTILE!r}, "gpu_type": "B200",
                        "gpu_count": 8, "price_per_hour_usd": 0.01}})
accounts.register_academic_account("[pay](http://evil.example/acct)", None, "Uni", "pi@uni.edu",
                                   provider="evilcloud", monthly_budget_usd=1e6)
with db.session_scope() as session:
    lambda_ops._set_state(session, lambda_ops.REFRESH_STATE_KEY, {{"ok": False,
        "last_error": "![x](http://evil.example/err.png) [retry](http://evil.example/r) <img src='http://evil.example/e.png'>"}})
"""


@pytest.fixture(scope="module")
def hostile_dashboard(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("hostile")
    env = os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}"}
    set_up_home(home, env, SEED)
    port = free_port()
    server = start_dashboard(home, port, env)
    yield f"http://127.0.0.1:{port}"
    stop_dashboard(server)


@pytest.mark.parametrize(
    ("path", "heading", "shown"),
    [("predict", "Predict & compare", "Who would pay: [pay]"), ("platforms", "Platforms", "[retry]")],
)
def test_hostile_text_is_shown_as_text(browser, hostile_dashboard: str, path: str, heading: str, shown: str) -> None:
    page = open_page(browser, f"{hostile_dashboard}/{path}", heading, height=1400)
    try:
        links = page.locator('a[href*="evil.example"]')
        where = [links.nth(i).evaluate("e => e.parentElement.outerHTML.slice(0, 300)") for i in range(links.count())]
        assert links.count() == 0, where
        assert page.locator('img[src*="evil.example"]').count() == 0
        assert page.locator("svg a").count() == 0  # no link inside a chart either
        assert shown in page.inner_text("body")
    finally:
        page.close()
