"""The usage review on paper: a PDF printed by Debian chromium, read back with poppler's tools.

The PDF is checked as a person holding the printout would: A4 portrait, every table's last column
on the page (nothing cut at the margin), the charts drawn, headers in words, "1 session", no
"None" where a value is missing, and user text printed as text.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from fedopt_core import accounts
from fedopt_core.accounts import reports, review_export, review_print

A4_PT = (595.0, 842.0)
MARGIN_PT = review_print.PAGE_MARGIN_MM / 25.4 * 72


def _pdf_words(pdf: Path, *, heights: bool = False) -> list[tuple]:
    """(page, xMin, xMax, word) for every word pdftotext finds, and its height with ``heights``."""
    out = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words, page = [], 0
    for line in out.splitlines():
        if "<page " in line:
            page += 1
        found = re.search(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*)</word>', line)
        if found:
            x0, y0, x1, y1 = map(float, found.groups()[:4])
            words.append((page, x0, x1, found[5], y1 - y0) if heights else (page, x0, x1, found[5]))
    return words


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def busy_month(loaded_db: str) -> reports.MonthlyReview:
    """One account with both limits, long names and notes with no place to break, and many sessions."""
    start, _ = accounts.month_bounds(accounts.previous_month())
    accounts.register_academic_account(
        "protein-folding-consortium-2026", None, None, None, monthly_quota_hours=50, monthly_budget_usd=200
    )
    accounts.register_academic_account("single", None, None, None, monthly_budget_usd=10)
    long_note = "see http://example.org/" + "a" * 120
    for i in range(30):
        accounts.add_usage_session(
            "protein-folding-consortium-2026",
            "gpu_8x_a100_80gb_sxm4" if i % 2 else "gpu_1x_a10",
            start + timedelta(days=i % 27, hours=i % 5),
            hours=1.0 + i % 4,
            person="a-person-with-a-very-long-hyphenated-name" if i % 3 == 0 else "$5$ budget",
            workload="llama_3_70b_instruct_long_context_finetune" if i % 2 else None,
            notes=long_note if i % 4 == 1 else None,  # on the costly sessions, so it is printed
        )
    accounts.add_usage_session("single", "gpu_1x_a10", start + timedelta(days=3), hours=2.0)
    return reports.monthly_review(accounts.previous_month())


def test_the_pdf_is_a4_portrait_and_every_table_fits_the_page(busy_month: reports.MonthlyReview, tmp_path: Path):
    pdf = tmp_path / "review.pdf"
    pdf.write_bytes(review_print.review_pdf(busy_month))
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    assert (width, height) == pytest.approx(A4_PT, abs=1.0)
    pages = int(re.search(r"Pages:\s+(\d+)", info)[1])
    assert 1 < pages < 10

    words = _pdf_words(pdf)
    assert len({p for p, *_ in words}) == pages  # text on every page
    # Printed at full size: Chromium shrinks a document wider than the paper to fit, so a table that did
    # not fit would print its text smaller than the same header in a one-cell table.
    reference = tmp_path / "reference.pdf"
    one_cell = "<table class='table'><thead><tr><th>Account</th></tr></thead></table>"
    reference.write_bytes(review_print.html_to_pdf(f"<style>{review_print.PRINT_CSS}</style>{one_cell}"))
    [(_, _, _, full_size)] = [(p, x0, x1, h) for p, x0, x1, w, h in _pdf_words(reference, heights=True)]
    header_sizes = [h for _p, _x0, _x1, w, h in _pdf_words(pdf, heights=True) if w == "Account"]
    assert len(header_sizes) >= 4 and header_sizes == pytest.approx([full_size] * len(header_sizes), rel=0.02)
    # Every word inside the printable area: a table wider than the page would run into the margin or off it.
    outside = [(p, x0, x1, w) for p, x0, x1, w in words if x0 < MARGIN_PT - 2 or x1 > width - MARGIN_PT + 2]
    assert not outside, outside[:5]
    text = _pdf_text(pdf)
    # The last column of each table is printed (so nothing was cut off at the right).
    for header in ["Forecast (h, 90% band)", "Forecast (USD, 90% band)", "Sessions", "Idle", "Notes"]:
        assert all(part in text for part in header.split()), header
    assert "$200.00" in text  # the budget column of the cost table
    assert "http://example." in text and text.count("a" * 18) >= 6  # the long note, broken but whole
    assert "1 session" not in text.replace("1 sessions", "")  # plural: 31 sessions
    assert "31 sessions" in text
    assert not re.search(r"\bNone\b(?!\.)", text), "a missing value prints blank, never None"
    assert "$5$ budget" in text  # user text is text, not mathematics
    assert not any(w in text for w in ["Zoom", "Autoscale", "plotly"])  # no interactive toolbars printed

    # The page as ink: nothing inside the right or left margin strip of page 1 (pdftoppm at 50 dpi, grey).
    subprocess.run(["pdftoppm", "-gray", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")], check=True)
    [raster] = tmp_path.glob("p*.pgm")
    image = _read_pgm(raster)
    margin_px = int(MARGIN_PT / 72 * 50) - 2
    assert image.shape[1] == pytest.approx(width / 72 * 50, abs=2)
    assert image[:, -margin_px:].min() > 250 and image[:, :margin_px].min() > 250
    assert image[:, margin_px:-margin_px].min() < 100  # and there is ink on the page itself


def _read_pgm(path: Path) -> np.ndarray:
    """A binary PGM (P5) as a 2-D array."""
    data = path.read_bytes()
    magic, cols, rows, _maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P5"
    return np.frombuffer(pixels, dtype=np.uint8, count=int(cols) * int(rows)).reshape(int(rows), int(cols))


def test_one_session_reads_one_session_and_an_empty_month_prints(loaded_db: str, tmp_path: Path) -> None:
    start, _ = accounts.month_bounds(accounts.previous_month())
    accounts.register_academic_account("solo", None, None, None, monthly_quota_hours=10)
    accounts.add_usage_session("solo", "gpu_1x_a10", start + timedelta(days=2), hours=1.5)
    one = tmp_path / "one.pdf"
    one.write_bytes(review_print.review_pdf(reports.monthly_review(accounts.previous_month())))
    text = _pdf_text(one)
    assert "1 session (0 failed)" in text and "1 sessions" not in text
    empty = review_export.write_report("2020-01", tmp_path / "empty.pdf", kind="pdf")
    assert empty.read_bytes().startswith(b"%PDF-")
    assert "No usage sessions" in _pdf_text(empty) or "0 sessions" in _pdf_text(empty)


def test_charts_are_static_svg_with_user_text_as_text(busy_month: reports.MonthlyReview) -> None:
    svg = review_print.breakdown_svg(busy_month, "person")
    assert svg.startswith("<svg") and "<script" not in svg
    assert "$5$ budget" in svg  # not typeset as mathematics
    assert "a-person-with-a-very-long-h…" in svg  # long labels are cut in the chart (the table keeps them)
    burn = review_print.burn_down_svg(busy_month)
    assert "% of monthly limit" in burn and "protein-folding-consortium-…" in burn
    assert review_print.burn_down_svg(busy_month) == burn  # the same review draws the same picture


def test_reports_drawn_at_once_by_two_sessions_are_each_whole(busy_month: reports.MonthlyReview) -> None:
    # Dashboard sessions are threads and matplotlib's settings are process-wide: each chart is drawn alone.
    alone = [review_print.breakdown_svg(busy_month, by) for by in ("person", "platform")]
    asked = ["person", "platform"] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda by: review_print.breakdown_svg(busy_month, by), asked))
    assert together == alone * 4
    assert all("$5$ budget" in svg for svg in together[::2])


def test_no_chromium_is_a_clear_error_and_writes_nothing(
    busy_month: reports.MonthlyReview, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDOPT_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert review_print.find_chromium() is None
    with pytest.raises(review_print.PrintError, match="no Chromium"):
        review_print.review_pdf(busy_month)
    target = tmp_path / "month.pdf"
    with pytest.raises(review_print.PrintError):
        review_export.write_report(accounts.previous_month(), target, kind="pdf")
    assert not target.exists()
    failing = tmp_path / "failing-chromium"
    failing.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n")
    failing.chmod(0o755)
    monkeypatch.setenv("FEDOPT_CHROMIUM", str(failing))
    with pytest.raises(review_print.PrintError, match=r"exit 3\): cannot open display"):
        review_print.review_pdf(busy_month)
    with pytest.raises(accounts.AccountInputError, match="kind"):
        review_export.write_report(None, tmp_path / "x.doc", kind="doc")
