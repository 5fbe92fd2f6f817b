"""How big is the printable usage review, how long does it take to print, and does it fit A4?

    .venv/bin/python benchmarks/report.py [--accounts 6] [--sessions 120] [--picture docs/report-page1.png] [--pdf FILE]

Builds a fresh database in a temporary folder with the shipped catalogues and a month of usage
(``--sessions`` sessions, seeded, over ``--accounts`` accounts with quotas and budgets, long
names and notes included), and reviews that month as of its 20th day, so the forecast bands show.
It then draws the report three ways and prints each one's size and time:

- the printable HTML (static SVG charts, no script) and the PDF Chromium prints from it, with
  the PDF's pages and paper size (``pdfinfo``) and the widest text line against the page width
  (``pdftotext -bbox``);
- baseline, in the same run: the same review's charts as plotly HTML with plotly.js inlined
  once (what the report was before), so the size ratio holds whatever the machine.

``--picture`` writes page 1 as a PNG (``pdftoppm``), the README's picture of the report.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MONTH = "2026-11"
AS_OF = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
ACCOUNTS = [
    # username, project, quota hours, budget USD
    ("nlp-grant", "long-context", 400.0, None),
    ("vision-lab", "segmentation", None, 1500.0),
    ("cs231-course", "homework", 150.0, 400.0),
    ("protein-folding-consortium-2026", "structure", 900.0, 6000.0),
    ("startup-credits", None, None, None),
    ("robotics", "sim2real", 120.0, None),
]
PLATFORMS = ["gpu_1x_a10", "gpu_1x_a100_sxm4", "gpu_8x_a100_80gb_sxm4", "gpu_1x_h100_pcie", "gpu_8x_h100_sxm5"]
PEOPLE = ["ana", "bo", "chen", "dmitri", "esther", "farah-with-a-rather-long-name"]
WORKLOADS = ["llama-3-8b-lora", "resnet50", "bert_large_squad", "vit-huge-pretrain", None]


def seed(accounts: int, sessions: int) -> None:
    from fedopt_core import accounts as acc

    rng = random.Random(2026)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    chosen = ACCOUNTS[:accounts]
    for username, project, quota, budget in chosen:
        acc.register_academic_account(
            username, None, None, None, monthly_quota_hours=quota, monthly_budget_usd=budget, project=project
        )
    for i in range(sessions):
        username = chosen[i % len(chosen)][0]
        began = start + timedelta(hours=rng.uniform(0, 19 * 24))
        acc.add_usage_session(
            username,
            rng.choice(PLATFORMS[:3] if i % 3 else PLATFORMS),
            began,
            hours=round(rng.lognormvariate(0.8, 0.9), 2),
            person=rng.choice(PEOPLE),
            workload=rng.choice(WORKLOADS),
            success=rng.random() > 0.1,
            notes="left running over the weekend; nobody noticed until Monday" if i % 17 == 0 else None,
        )


def _plotly_baseline(review) -> str:
    """The report's charts as they were printed before: plotly HTML, plotly.js inlined once."""
    from fedopt_core.accounts import review_export

    figures = [review_export.burn_down_figure(review)] + [
        review_export.breakdown_figure(review, by) for by in ("person", "project", "platform")
    ]
    return "".join(fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures))


def _widest_text(pdf: Path) -> tuple[float, float]:
    """(page width, the right edge of the rightmost word) in points, over every page."""
    bbox = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    width = float(re.search(r'<page width="([\d.]+)"', bbox).group(1))
    right = max(float(x) for x in re.findall(r'xMax="([\d.]+)"', bbox))
    return width, right


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=120)
    parser.add_argument("--picture", type=Path, help="write page 1 of the PDF here as a PNG")
    parser.add_argument("--pdf", type=Path, help="keep the PDF here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fedopt-report-") as folder:
        os.environ["FEDOPT_HOME"] = folder
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/fedopt.db"
        subprocess.run([sys.executable, "-m", "fedopt_core.cli", "setup"], check=True, capture_output=True)
        from fedopt_core.accounts import reports, review_print

        seed(args.accounts, args.sessions)
        review = reports.monthly_review(MONTH, now=AS_OF)

        t0 = time.perf_counter()
        page = review_print.review_html(review)
        html_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pdf_bytes = review_print.html_to_pdf(page)
        pdf_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        baseline = _plotly_baseline(review)
        baseline_s = time.perf_counter() - t0

        pdf = Path(folder) / "report.pdf"
        pdf.write_bytes(pdf_bytes)
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        pages = re.search(r"Pages:\s+(\d+)", info).group(1)
        paper = re.search(r"Page size:\s+(.+)", info).group(1).strip()
        width, right = _widest_text(pdf)

        mb = 1024 * 1024
        print(f"review {MONTH} as of {AS_OF:%Y-%m-%d %H:%M} UTC: {len(review.accounts)} accounts, "
              f"{len(review.sessions)} sessions")  # fmt: skip
        print(f"printable HTML (SVG charts):   {len(page.encode()) / mb:6.3f} MB  drawn in {html_s:5.2f} s")
        print(f"baseline plotly charts only:   {len(baseline.encode()) / mb:6.3f} MB  drawn in {baseline_s:5.2f} s")
        print(f"size ratio HTML / baseline:    {len(page.encode()) / len(baseline.encode()):6.3f}")
        print(f"PDF: {len(pdf_bytes) / mb:.3f} MB, printed in {pdf_s:.2f} s, {pages} pages, {paper}")
        print(f"rightmost text at {right:.1f} pt of a {width:.1f} pt page (right margin {width - right:.1f} pt)")
        if args.pdf:
            args.pdf.write_bytes(pdf_bytes)
        if args.picture:
            args.picture.parent.mkdir(parents=True, exist_ok=True)
            stem = args.picture.with_suffix("")
            subprocess.run(
                ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(stem)], check=True
            )
            print(f"page 1 written to {stem}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
