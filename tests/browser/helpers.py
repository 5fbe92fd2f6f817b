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
