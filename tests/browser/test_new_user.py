"""A new user's path in a real browser, on a fresh database: the Overview's first step imports the
public benchmark, then a prediction, a logged run, an account, the usage review and its report
downloaded as a PDF (issue 15), read back with poppler's ``pdfinfo`` and ``pdftotext``.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.browser.helpers import free_port, set_up_home, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser
TIMEOUT_MS = 120_000


@pytest.fixture
def fresh_dashboard(tmp_path, shared_data):
    env = os.environ | {
        "FEDOPT_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fedopt.db'}",
        "FEDOPT_SHARED_DATA": str(shared_data),
        "FEDOPT_RETRAIN_EVERY": "1000000",  # no background retrain in the middle of the walk
    }
    set_up_home(tmp_path, env)
    port = free_port()
    server = start_dashboard(tmp_path, port, env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_dashboard(server)


def _settled(page) -> None:
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)


def test_a_new_user_follows_the_overview_from_an_empty_database_to_the_printed_review(
    browser, fresh_dashboard, tmp_path
) -> None:
    url = fresh_dashboard
    page = browser.new_page(viewport={"width": 1400, "height": 1400}, accept_downloads=True)
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Start here").wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    sidebar = page.get_by_test_id("stSidebar")
    assert "0 runs" in sidebar.inner_text()

    # Step 1: one button imports the public benchmark; the step says what is done, the sidebar agrees.
    page.get_by_role("button", name="Import the public benchmark").click()
    done = page.get_by_text(re.compile(r"[\d,]+ runs imported from the public benchmark\. Next: predict a job\."))
    done.wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    imported = int(re.search(r"([\d,]+) runs imported", done.inner_text()).group(1).replace(",", ""))
    assert imported > 2000
    assert f"{imported:,} runs stored" in page.inner_text("body")
    assert f"{imported:,} runs" in sidebar.inner_text()
    assert page.get_by_role("button", name="Import the public benchmark").count() == 0

    # Step 2: predict a job from the Overview's link; before a model, the answer says it is a heuristic.
    page.get_by_role("link", name="Predict & compare").last.click()
    page.get_by_role("heading", name="Recommendation").wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    page.get_by_role("button", name="Predict", exact=True).click()
    _settled(page)
    body = page.inner_text("body")
    assert "has the shortest predicted time" in body
    assert "No trained model yet" in body and "heuristic" in body

    # Log the actual run of that job: the form comes pre-filled from the prediction.
    page.get_by_role("button", name="Log the actual run of this job…").click()
    page.get_by_role("heading", name="Runs").wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Log run"))
    assert form.get_by_label("Workload (model or job)", exact=True).input_value() == "resnet50"
    form.get_by_label("Measured time", exact=True).fill("95")
    form.get_by_role("button", name="Log run").click()
    page.get_by_text(re.compile(r"Logged run #\d+")).wait_for(timeout=TIMEOUT_MS)
    _settled(page)

    # Step 3: an account.
    page.goto(f"{url}/accounts", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Accounts").wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    account_form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Save account"))
    account_form.get_by_label("Username", exact=True).fill("lab-grant")
    account_form.get_by_label("Institutional e-mail", exact=True).fill("pi@mit.edu")
    account_form.get_by_role("button", name="Save account").click()
    _settled(page)
    page.get_by_text("lab-grant").first.wait_for(timeout=TIMEOUT_MS)

    # Back on the Overview, every step is done and says so.
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_text("1 account: launches and spending are counted against them.").wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    body = page.inner_text("body")
    assert f"{imported + 1:,} runs stored" in body
    assert re.search(r"[1-9][\d,]* predictions? made so far", body)

    # The usage review opens, with its downloads.
    page.goto(f"{url}/usage", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Usage review").wait_for(timeout=TIMEOUT_MS)
    _settled(page)
    page.get_by_role("button", name="Printable report (HTML)").wait_for(timeout=TIMEOUT_MS)
    assert page.get_by_role("button", name="Sessions of the month (CSV)").count() == 1
    month = re.search(r"No usage sessions in (\d{4}-\d{2})\.", page.inner_text("body"))  # none recorded yet
    assert month
    assert page.locator("[data-testid='stException']").count() == 0

    # The report for the meeting, as a PDF: A4 portrait, the account in it, the count in words.
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.get_by_role("button", name="Report to print (PDF, A4)").click()
    assert download.value.suggested_filename == f"fedopt-usage-{month[1]}.pdf"
    pdf = tmp_path / "review.pdf"
    download.value.save_as(pdf)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"Page size:\s+59[45][.\d]* x 84[12][.\d]* pts \(A4\)", info), info
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert f"Usage review {month[1]}" in text
    assert "lab-grant" in text and "0 sessions (0 failed)" in text and "None" not in text.replace("None.", "")
