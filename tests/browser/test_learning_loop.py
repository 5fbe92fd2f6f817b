"""The learning loop in a real browser: import runs, log one by hand, train a model, see it active.

A real `streamlit run` of the dashboard on a free port with its own SQLite file, driven by
headless Debian Chromium.  Runs come from a subset of Lambda's public benchmark table
(`gpu_benchmarks.csv`, one workload) uploaded through the Runs page; what the pages report is
checked against the database the server writes.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fedopt_core import db, runs
from fedopt_core.prediction import training
from tests.browser.helpers import free_port, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser

WORKLOAD = "resnet50"  # 280 rows of the public table: enough to train, quick to fit
BAD_ROW_LINE = 12  # file line of the malformed row (the header is line 1)
TIME_COLUMN = "time_per_1M_units_s"
TRAIN_TIMEOUT_S = 240  # the default predictor fit takes 15-40 s on two busy cores
PAGE_TIMEOUT_MS = 60_000

# Streamlit shows this widget while a script run is in progress.
NO_SCRIPT_RUNNING = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
# st.dataframe draws on a canvas; the grid keeps an accessible table of the visible cells in it.
GRID_ROWS = """grid => Array.from(grid.querySelectorAll('tbody [role=row]'))
    .map(row => Array.from(row.querySelectorAll('[role=gridcell]')).map(cell => cell.innerText))"""
GRID_HEADER = """grid => Array.from(grid.querySelectorAll('[role=columnheader]')).map(cell => cell.innerText)"""


@dataclass(frozen=True)
class Dashboard:
    base_url: str
    database_url: str


@dataclass(frozen=True)
class Upload:
    path: Path
    good_rows: int
    page_messages: list[str]
    error_header: list[str]
    error_rows: list[list[str]]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("learning_loop")
    database_url = f"sqlite:///{home / 'fedopt.db'}"
    # A retrain must start only when the test presses Train now, never after the import.
    env = os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": database_url, "FEDOPT_RETRAIN_EVERY": "1000000"}
    setup = subprocess.run([sys.executable, "-m", "fedopt_core.cli", "setup"], env=env, capture_output=True, text=True)
    assert setup.returncode == 0, setup.stderr
    port = free_port()
    server = start_dashboard(home, port, env)
    yield Dashboard(f"http://127.0.0.1:{port}", database_url)
    stop_dashboard(server)
    db.dispose_engines()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield page
    page.close()


def on_server(dashboard: Dashboard, function, *args, **kwargs):
    """``function`` run on the dashboard server's own database (not this test process's)."""
    with db.session_scope(dashboard.database_url) as session:
        return function(*args, session=session, **kwargs)


def open_page(page, url: str, heading: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name=heading).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    # Every page opens inside the app shell, even as the first request to a fresh server (this
    # module's pages are all deep links): Streamlit would otherwise run pages/*.py on their own.
    page.get_by_test_id("stSidebar").get_by_role("link", name="Overview").wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_for_script(page)


def wait_for_script(page) -> None:
    page.wait_for_function(NO_SCRIPT_RUNNING, timeout=PAGE_TIMEOUT_MS)


def grid_content(grid) -> tuple[list[str], list[list[str]]]:
    """Header and visible rows of an st.dataframe (element code loads lazily: wait for cells)."""
    grid.locator("[role=gridcell]").first.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
    return grid.evaluate(GRID_HEADER), grid.evaluate(GRID_ROWS)


def write_benchmark_subset(source: Path, target: Path) -> int:
    """The public rows of one workload, with a malformed copy of one at BAD_ROW_LINE; returns the good rows."""
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for row in reader if row[header.index("model")] == WORKLOAD]
    bad = list(rows[0])
    bad[header.index(TIME_COLUMN)] = "fast"
    body = [*rows[: BAD_ROW_LINE - 2], bad, *rows[BAD_ROW_LINE - 2 :]]
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
    return len(rows)


@pytest.fixture(scope="module")
def upload(dashboard: Dashboard, browser, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Upload:
    """Upload the benchmark subset through the Runs page's file uploader and press Import."""
    path = tmp_path_factory.mktemp("upload") / f"{WORKLOAD}_benchmarks.csv"
    good_rows = write_benchmark_subset(shared_data / "gpu_benchmarks.csv", path)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        open_page(page, f"{dashboard.base_url}/runs", "Runs")
        page.get_by_role("tab", name="Import CSV").click()
        panel = page.get_by_role("tabpanel", name="Import CSV")
        panel.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path))
        # Enabled only once the server has the file (the rerun after the upload).
        panel.get_by_role("button", name="Import", exact=True).click(timeout=PAGE_TIMEOUT_MS)
        panel.get_by_text("runs imported").wait_for(timeout=PAGE_TIMEOUT_MS)
        wait_for_script(page)
        messages = [alert.inner_text() for alert in panel.get_by_test_id("stAlert").all()]
        header, rows = grid_content(panel.get_by_test_id("stDataFrame"))
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        page.close()
    return Upload(path, good_rows, messages, header, rows)


def test_csv_upload_reports_the_imported_count_and_the_bad_line(upload: Upload, dashboard: Dashboard) -> None:
    summary = next((m for m in upload.page_messages if "runs imported" in m), None)
    assert summary is not None, upload.page_messages
    assert f"{upload.good_rows:,} runs imported (lambda benchmark format)" in summary
    assert "0 already present, 1 refused" in summary
    # The refused row is listed with its file line and the field at fault.
    assert upload.error_header == ["line", "field", "reason"]
    assert len(upload.error_rows) == 1
    line, field, reason = upload.error_rows[0]
    assert (int(line), field) == (BAD_ROW_LINE, "execution_time_s")
    assert reason.strip()
    # The rows landed in the server's database, one per good line, as public benchmark runs.
    stored = on_server(dashboard, runs.list_runs, source="benchmark")
    assert len(stored) == upload.good_rows
    assert set(stored["workload"]) == {WORKLOAD}
    assert stored["execution_time_s"].gt(0).all()


def test_form_logs_a_run_into_the_database_and_the_history(upload: Upload, dashboard: Dashboard, page) -> None:
    open_page(page, f"{dashboard.base_url}/runs", "Runs")
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Log run"))
    note = f"logged in the browser at {time.time_ns()}"
    form.get_by_label("Workload (model or job)", exact=True).fill("bert_base_squad")
    gpu = form.get_by_label("GPU model (or 'cpu')", exact=True)  # picked from the catalogue, or typed
    gpu.fill("A100 PCIe 40GB")
    page.keyboard.press("Enter")
    form.get_by_label("GPU count", exact=True).fill("2")
    form.get_by_label("Measured time", exact=True).fill("12.5")
    form.get_by_label("Notes", exact=True).fill(note)
    form.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Unit", exact=True)).click()
    page.get_by_role("option", name="minutes").click()
    form.get_by_role("button", name="Log run").click()

    success = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"Logged run #\d+"))
    success.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_for_script(page)
    run_id = int(re.search(r"Logged run #(\d+)", success.inner_text()).group(1))

    stored = on_server(dashboard, runs.get_run, run_id)
    assert stored["notes"] == note
    assert (stored["workload"], stored["gpu_type"], stored["gpu_count"]) == ("bert_base_squad", "A100 PCIe 40GB", 2)
    assert stored["execution_time_s"] == pytest.approx(12.5 * 60)
    assert stored["source"] == "form"
    assert stored["success"] is True

    # The history (newest first) shows it at the top.
    page.get_by_role("tab", name="History").click()
    header, rows = grid_content(page.get_by_role("tabpanel", name="History").get_by_test_id("stDataFrame"))
    top = dict(zip(header, rows[0], strict=True))
    assert top["id"] == str(run_id), (header, rows[:2])
    assert top["workload"] == "bert_base_squad"
    assert page.locator("[data-testid='stException']").count() == 0


def test_train_now_makes_an_active_version_shown_on_the_model_page(upload: Upload, dashboard: Dashboard, page) -> None:
    assert on_server(dashboard, training.list_versions).empty  # no retrain started by itself
    open_page(page, f"{dashboard.base_url}/model", "Model")
    page.get_by_text("No model yet").wait_for(timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("button", name="Train now").click()

    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    versions = on_server(dashboard, training.list_versions)
    while versions.empty and time.monotonic() < deadline:
        status = on_server(dashboard, training.training_status)
        assert status.get("stage") != "failed", status
        page.wait_for_timeout(1000)
        versions = on_server(dashboard, training.list_versions)
    status = on_server(dashboard, training.training_status)
    assert len(versions) == 1, f"no model version after {TRAIN_TIMEOUT_S} s: {status}"
    version = versions.iloc[0]
    assert version["status"] == "active"
    # Every successful run stored was either trained on or held out to score the model.
    successful = on_server(dashboard, runs.list_runs, success=True)
    assert version["n_train_runs"] + version["n_holdout"] == len(successful)
    assert version["n_train_runs"] >= upload.good_rows // 2

    # The open page notices the retrain ended and shows the new version without a reload.
    page.get_by_role("heading", name="Feature importances of the active model").wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_for_script(page)
    header, rows = grid_content(page.get_by_test_id("stDataFrame").first)
    shown = [dict(zip(header, row, strict=True)) for row in rows]
    assert [(r["version"], r["status"]) for r in shown] == [(str(version["version"]), "active")], shown
    assert page.get_by_text("No model yet").count() == 0
    assert page.locator("[data-testid='stException']").count() == 0
