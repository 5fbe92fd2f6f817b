"""`fedopt dashboard`: start the installed Streamlit dashboard (what `make run` does after setup).

The dashboard ships as the ``fedopt_dashboard`` package, so this works from a checkout and from
a wheel installed anywhere.  The Streamlit options fedopt needs are passed here, in one place;
anything after ``--`` goes to ``streamlit run`` as it is (e.g. ``-- --server.baseUrlPath lab``).
A ``.streamlit/secrets.toml`` in the working folder configures sign-in, as Streamlit reads it there.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from fedopt_core.cli import CliError

#: Options every fedopt dashboard runs with.
STREAMLIT_OPTIONS = {
    # No e-mail prompt on first start; the URL is printed instead of opening a browser.
    "server.headless": "true",
    "browser.gatherUsageStats": "false",
    "client.toolbarMode": "minimal",
    # Streamlit would list every script in pages/ on a fresh server's first request, before the
    # entry script has built its role-filtered navigation; the app draws its own menu instead.
    "client.showSidebarNavigation": "false",
    # An uncaught error shows a generic message in the browser; the traceback (with server
    # paths) goes to the server's log only.
    "client.showErrorDetails": "none",
    # Forms keep their inputs across pages by writing them back to Session State
    # (ui.keep_page_inputs); that is intended, not a duplicated default.
    "global.disableWidgetStateDuplicationWarning": "true",
}


def entry_script() -> Path:
    """The dashboard's entry script, wherever the package is installed."""
    spec = importlib.util.find_spec("fedopt_dashboard")
    if spec is None or spec.origin is None:
        raise CliError("the dashboard is not installed (the fedopt_dashboard package is missing)")
    return Path(spec.origin).resolve().parent / "streamlit_app.py"


def streamlit_command(port: int, address: str, extra: list[str]) -> list[str]:
    """The ``streamlit run`` command line for the dashboard on ``address:port``."""
    options = [f"--{name}={value}" for name, value in STREAMLIT_OPTIONS.items()]
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(entry_script()),
        f"--server.port={port}",
        f"--server.address={address}",
        *options,
        *extra,
    ]


def cmd_dashboard(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url  # the dashboard's processes read it like the CLI does
    extra = list(args.streamlit_args or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    command = streamlit_command(args.port, args.address, extra)
    # Become the Streamlit server rather than wait for it: a signal to this process (Ctrl-C, a
    # process manager's stop) then reaches the server itself, and no orphan is left behind.
    os.execve(command[0], command, env)
    return 0  # not reached


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="start the dashboard (Streamlit) on this machine")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="localhost", help="interface to listen on (0.0.0.0 for all)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="after --: passed to streamlit run")
    p.set_defaults(func=cmd_dashboard, needs_db=False)
