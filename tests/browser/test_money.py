"""Money in a real browser: the Machines page against the fake Lambda server on loopback.

Launch clicked twice 300 ms apart while the server is slow to answer must start one machine,
with one usage session (issue 13, row 1).
"""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from fedopt_core.testing.fake_lambda import FakeLambdaServer
from tests.browser.helpers import free_port, set_up_home, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser

KEY = "secret_browser_lambda_key_0123456789"
SETUP = f"""
from fedopt_core import accounts
from fedopt_core.cloud import lambda_ops
accounts.register_academic_account("lab", {KEY!r}, "Uni", "pi@uni.edu")
assert lambda_ops.refresh_catalogue("lab").ok
"""


@pytest.fixture
def machines_dashboard(tmp_path):
    with FakeLambdaServer(api_keys={KEY}) as fake:
        fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
        home = tmp_path
        env = os.environ | {
            "FEDOPT_HOME": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}",
            "FEDOPT_LAMBDA_BASE_URL": fake.base_url,
        }
        set_up_home(home, env, SETUP)
        port = free_port()
        server = start_dashboard(home, port, env)
        try:
            yield f"http://127.0.0.1:{port}", fake, home / "fedopt.db"
        finally:
            stop_dashboard(server)


def _settled(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def test_launch_clicked_twice_starts_one_machine(browser, machines_dashboard) -> None:
    url, fake, database = machines_dashboard
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{url}/machines", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Machines").first.wait_for(timeout=60_000)
    _settled(page)
    ssh = page.get_by_label("SSH key names (comma-separated)")
    ssh.fill("laptop")
    ssh.press("Enter")
    _settled(page)
    page.get_by_text("Yes, launch one", exact=False).click()
    _settled(page)
    fake.inject("slow", delay_s=3.0, path_prefix="/instance-operations/launch")  # the server is slow to answer
    launch = page.get_by_role("button", name="Launch")
    launch.click()
    page.wait_for_timeout(300)
    launch.click(force=True)  # the impatient second click, while the first launch is under way
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not fake.instances():
        time.sleep(0.2)
    page.wait_for_timeout(16000)  # launches are paced 12 s apart: any second request arrives by now
    _settled(page)
    assert fake.count_requests("POST", "/instance-operations/launch") == 1
    assert len(fake.instances()) == 1
    with sqlite3.connect(database) as db:
        sessions = db.execute("select instance_id from usage_session").fetchall()
    assert sessions == [(fake.instances()[0]["id"],)]
    page.close()
