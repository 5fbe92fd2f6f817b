"""How long does each dashboard page take to draw, in a real browser?

    .venv/bin/python benchmarks/pages.py [--data ../shared/data/gpu_benchmarks.csv] [--visits 3] [--screenshots DIR]

Sets up a fresh database in a temporary folder (the shipped catalogues, Lambda's public
benchmark imported and a model trained on it, one account), starts `fedopt dashboard` as
`make run` does, and opens every page in Debian Chromium (headless): the first visit (cold: the
process loads the model and fills its caches) and then the median of ``--visits`` warm visits,
each timed from navigation to "script not running" (the page's heading shown and Streamlit's
running indicator gone).  Baseline in the same run: `fedopt platforms list` (a whole CLI process
that reads the catalogue), so the ratios hold on a noisy machine.  Target: every page under
2.5 s warm, the first Predict visit under 3 s once the server is warm.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
logging.disable(logging.WARNING)  # the page list is read outside a server: Streamlit would say so
from fedopt_dashboard.streamlit_app import PAGES  # noqa: E402

logging.disable(logging.NOTSET)
from tests.browser.helpers import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    open_page,
    set_up_home,
    start_dashboard,
    stop_dashboard,
)

DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "gpu_benchmarks.csv").resolve()
WARM_TARGET_S = 2.5
#: The heading each page draws (its navigation title, except where the page names itself).
HEADINGS = {"overview": "fedopt", "usage": "Usage review", "admin": "Audit & roles"}
NO_SCRIPT_RUNNING = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
SEED = """
from fedopt_core import accounts, runs
from fedopt_core.prediction import training
runs.import_csv({data!r})
training.train_now()
accounts.register_academic_account("lab", {key!r}, "Example University", "lab@example.edu", monthly_budget_usd=500.0)
"""
#: The Lambda account's key, served by the contract-checked fake Lambda API on loopback, so the
#: Machines page really syncs (no network beyond this machine).
FAKE_KEY = "secret_bench_0123456789abcdef"


def timed_visit(page, url: str, heading: str) -> float:
    start = time.perf_counter()
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
    page.wait_for_function(NO_SCRIPT_RUNNING, timeout=120_000)
    return time.perf_counter() - start


def cli_baseline(env: dict, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "fedopt_core.cli", "platforms", "list"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument(
        "--screenshots",
        type=Path,
        help="also save a full-page PNG of each page here (the README's come from this fresh database)",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="fedopt-pages-") as folder:
        home = Path(folder)
        lambda_port = free_port()
        env = os.environ | {
            "FEDOPT_HOME": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}",
            "FEDOPT_LAMBDA_BASE_URL": f"http://127.0.0.1:{lambda_port}/api/v1",
        }
        fake_lambda = subprocess.Popen(
            [sys.executable, "-m", "fedopt_core.cli", "lambda", "fake-server", "--port", str(lambda_port),
             "--api-key", FAKE_KEY],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t0 = time.perf_counter()
        set_up_home(home, env, SEED.format(data=str(args.data), key=FAKE_KEY))
        print(f"set-up (catalogues, {args.data.name} imported, model trained): {time.perf_counter() - t0:.1f} s")
        baseline = cli_baseline(env)
        print(f"baseline `fedopt platforms list`: {baseline:.2f} s (median of 3)\n")
        port = free_port()
        server = start_dashboard(home, port, env)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                print(f"{'page':<20} {'first s':>8} {'warm s':>8} {'warm/baseline':>14}  target")
                slow = []
                for _section, _script, title, _icon, url_path, _role in PAGES:
                    # the default page (the Overview) lives at the root: /overview is "page not found"
                    url = f"http://127.0.0.1:{port}/{'' if _script == 'overview.py' else url_path}"
                    heading = HEADINGS.get(url_path, title)
                    first = timed_visit(page, url, heading)
                    warm = statistics.median(timed_visit(page, url, heading) for _ in range(args.visits))
                    if args.screenshots:  # a page of its own, once its widgets' code has loaded
                        args.screenshots.mkdir(parents=True, exist_ok=True)
                        shot = open_page(browser, url, heading, height=2200)
                        shot.wait_for_timeout(1500)
                        shot.screenshot(path=str(args.screenshots / f"{url_path}.png"), full_page=True)
                        shot.close()
                    ok = warm < WARM_TARGET_S
                    slow += [] if ok else [title]
                    print(f"{title:<20} {first:>8.2f} {warm:>8.2f} {warm / baseline:>14.2f}  {'ok' if ok else 'SLOW'}")
                browser.close()
        finally:
            stop_dashboard(server)
            fake_lambda.terminate()
    print(f"\n{len(PAGES) - len(slow)} of {len(PAGES)} pages under {WARM_TARGET_S} s warm" +
          (f"; slow: {', '.join(slow)}" if slow else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
