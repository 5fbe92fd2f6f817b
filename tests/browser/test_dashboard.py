"""The real dashboard in a real browser: `streamlit run` on a free port, headless Debian Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fedopt_core.config import REPO_ROOT

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
PAGES = [
    ("", "fedopt"),
    ("platforms", "Platforms"),
    ("techniques", "Techniques"),
    ("admin", "Audit & roles"),
]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}"}
    setup = subprocess.run([sys.executable, "-m", "fedopt_core.cli", "setup"], env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr
    log = open(home / "streamlit.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "streamlit_app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/_stcore/health", timeout=2).text == "ok":
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("streamlit did not answer /_stcore/health in 90 s: " + (home / "streamlit.log").read_text())
    if server.poll() is not None:
        pytest.fail("streamlit exited: " + (home / "streamlit.log").read_text())
    yield base
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium is not installed (make test installs it)"
    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield instance
        instance.close()


def open_page(browser, url: str, heading: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    # Let the script run finish: Streamlit shows a running indicator while it works.
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    # Element code is loaded lazily; wait for those scripts so the screenshot shows real widgets.
    page.wait_for_load_state("networkidle", timeout=60_000)
    page.wait_for_timeout(500)
    return page


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
        for label, heading in [("Platforms", "Platforms"), ("Techniques", "Techniques")]:
            page.get_by_test_id("stSidebarNav").get_by_text(label, exact=True).click()
            page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
            assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()
