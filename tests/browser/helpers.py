"""Starting the dashboard as a real server, and the Chromium flags every browser test uses."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium tries to reach Google at start-up, which
# this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dashboard(home: Path, port: int, env: dict, extra_args: list[str] = (), address: str = "127.0.0.1"):
    """`fedopt dashboard` on ``port`` (as `make run` starts it); returns the process once /_stcore/health answers."""
    log = open(home / "streamlit.log", "w")  # noqa: SIM115 - closed in stop_dashboard
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedopt_core.cli",
            "dashboard",
            "--port",
            str(port),
            "--address",
            address,
            "--",
            *extra_args,
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://{address}:{port}/_stcore/health", timeout=2).text == "ok":
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_dashboard(server)
    raise RuntimeError("streamlit did not start: " + (home / "streamlit.log").read_text())


def stop_dashboard(server) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    server.log.close()


def set_up_home(home: Path, env: dict, *python_scripts: str) -> None:
    """`fedopt setup` in ``home`` (as `make run` does), then each seeding script, in ``env``."""
    for argv in (
        [sys.executable, "-m", "fedopt_core.cli", "setup"],
        *([sys.executable, "-c", s] for s in python_scripts),
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def open_page(browser, url: str, heading: str, *, height: int = 1000):
    """A new page at ``url``, once its heading shows and its script run has finished."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    # Let the script run finish: Streamlit shows a running indicator while it works.
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=90_000)
    # Element code is loaded lazily; wait for those scripts so a screenshot shows real widgets.
    page.wait_for_load_state("networkidle", timeout=60_000)
    page.wait_for_timeout(500)
    return page
