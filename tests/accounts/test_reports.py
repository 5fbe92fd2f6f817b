"""The monthly usage review: splits by day and month, forecast, warnings, idle time, exports, savings."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedopt_core import accounts, catalog, formatting
from fedopt_core.accounts import reports, review_export, review_print, savings
from fedopt_core.db import session_scope
from fedopt_core.models import Run

UTC = UTC
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_outer_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDOPT_SECRET_KEY", raising=False)


def _run(
    platform: str | None,
    started_at: datetime | None,
    seconds: float,
    created_at: datetime | None = None,
    gpu_memory_required_gb: float | None = None,
) -> int:
    with session_scope() as session:
        run = Run(
            run_key=f"test-{platform}-{started_at}-{created_at}-{seconds}",
            platform=platform,
            gpu_type="A10",
            gpu_count=1,
            execution_time_s=seconds,
            started_at=started_at,
            gpu_memory_required_gb=gpu_memory_required_gb,
            **({"created_at": created_at} if created_at else {}),
        )
        session.add(run)
        session.flush()
        return int(run.id)


# --------------------------------------------------------------------------- splitting


def test_month_end_session_is_split_between_the_two_reviews(loaded_db: str) -> None:
    accounts.register_academic_account("night", None, None, None, monthly_quota_hours=10)
    accounts.add_usage_session("night", "gpu_1x_a10", "2026-10-31T22:00+00:00", "2026-11-01T03:00+00:00", cost_usd=50)
    later = DEC + timedelta(days=5)
    october = reports.monthly_review("2026-10", now=later)
    november = reports.monthly_review("2026-11", now=later)
    assert october.totals["hours"] == pytest.approx(2.0) and october.totals["cost_usd"] == pytest.approx(20.0)
    assert november.totals["hours"] == pytest.approx(3.0) and november.totals["cost_usd"] == pytest.approx(30.0)
    assert november.daily["hours"].sum() == pytest.approx(3.0)
    assert november.daily["day"].min() == pd.Timestamp("2026-11-01", tz="UTC")
    assert october.daily["day"].max() == pd.Timestamp("2026-10-31", tz="UTC")
    exported = list(csv.DictReader(io.StringIO(review_export.review_csv(november))))
    assert [float(r["hours_in_month"]) for r in exported] == [3.0] and float(exported[0]["hours"]) == 5.0


def test_a_session_crossing_midnight_is_split_by_day(loaded_db: str) -> None:
    accounts.register_academic_account("late", None, None, None)
    accounts.add_usage_session("late", "gpu_1x_a10", "2026-11-10T21:00+00:00", hours=30, cost_usd=60)
    review = reports.monthly_review("2026-11", now=DEC)
    by_day = review.daily.set_index("day")
    assert by_day["hours"].tolist() == pytest.approx([3.0, 24.0, 3.0])
    assert by_day["cost_usd"].tolist() == pytest.approx([6.0, 48.0, 6.0])


# --------------------------------------------------------------------------- forecast and warnings


def test_complete_month_forecast_equals_what_was_used(loaded_db: str) -> None:
    accounts.register_academic_account("done", None, None, None, monthly_quota_hours=100)
    accounts.add_usage_session("done", "gpu_1x_a10", NOV + timedelta(days=3), hours=12)
    row = reports.monthly_review("2026-11", now=DEC + timedelta(days=1)).accounts.iloc[0]
    assert row["forecast_hours"] == row["hours_used"] == pytest.approx(12.0)
    assert row["forecast_hours_low"] == row["forecast_hours_high"] == pytest.approx(12.0)


def test_steady_use_is_extrapolated_with_a_zero_width_band(loaded_db: str) -> None:
    accounts.register_academic_account("steady", None, None, None, monthly_quota_hours=100)
    for day in range(10):
        accounts.add_usage_session("steady", "gpu_1x_a10", NOV + timedelta(days=day, hours=9), hours=2)
    row = reports.monthly_review("2026-11", now=NOV + timedelta(days=10)).accounts.iloc[0]
    assert row["hours_used"] == pytest.approx(20.0)
    assert row["forecast_hours"] == pytest.approx(60.0)  # 2 h a day over 30 days
    assert row["forecast_hours_low"] == pytest.approx(60.0) and row["forecast_hours_high"] == pytest.approx(60.0)


def test_uneven_use_gets_a_band_that_never_goes_below_what_was_used(loaded_db: str) -> None:
    accounts.register_academic_account("bursty", None, None, None, monthly_quota_hours=100)
    for day, hours in enumerate([0, 10, 0, 0, 8, 0, 1, 0, 12, 0]):
        if hours:
            accounts.add_usage_session("bursty", "gpu_1x_a10", NOV + timedelta(days=day, hours=1), hours=hours)
    row = reports.monthly_review("2026-11", now=NOV + timedelta(days=10)).accounts.iloc[0]
    assert row["forecast_hours"] == pytest.approx(31 / 10 * 30)
    daily = np.array([0, 10, 0, 0, 8, 0, 1, 0, 12, 0], dtype=float)
    half = reports.Z_90 * daily.std(ddof=1) * np.sqrt(20)
    assert row["forecast_hours_high"] == pytest.approx(93.0 + half)
    assert row["forecast_hours_low"] == pytest.approx(max(31.0, 93.0 - half))


def test_one_day_in_there_is_no_band(loaded_db: str) -> None:
    accounts.register_academic_account("new", None, None, None, monthly_quota_hours=100)
    accounts.add_usage_session("new", "gpu_1x_a10", NOV + timedelta(hours=1), hours=2)
    row = reports.monthly_review("2026-11", now=NOV + timedelta(hours=20)).accounts.iloc[0]
    assert row["forecast_hours"] > row["hours_used"]
    assert np.isnan(row["forecast_hours_low"]) and np.isnan(row["forecast_hours_high"])


def test_warnings_at_80_and_100_percent_and_on_course(loaded_db: str) -> None:
    for name in ("calm", "close", "over", "racing"):
        accounts.register_academic_account(name, None, None, None, monthly_quota_hours=10)
    accounts.register_academic_account("cash", None, None, None, monthly_budget_usd=100)
    accounts.add_usage_session("calm", "gpu_1x_a10", NOV + timedelta(days=1), hours=0.5)  # on course for 7.5 h
    accounts.add_usage_session("close", "gpu_1x_a10", NOV + timedelta(days=1), hours=8.5)
    accounts.add_usage_session("over", "gpu_1x_a10", NOV + timedelta(days=1), hours=12)
    accounts.add_usage_session("racing", "gpu_1x_a10", NOV + timedelta(days=1), hours=4)  # 4 h in 2 days of 30
    accounts.add_usage_session("cash", "gpu_1x_a10", NOV + timedelta(days=1), hours=1, cost_usd=100)
    review = reports.monthly_review("2026-11", now=NOV + timedelta(days=2))
    levels = {(w.username, w.level) for w in review.warnings}
    assert levels == {("close", "warning"), ("over", "over"), ("racing", "forecast"), ("cash", "over")}
    assert review.accounts.set_index("username")["warning"].to_dict() == {
        "calm": "",
        "close": "warning",
        "over": "over",
        "racing": "",
        "cash": "over",
    }
    assert any("85%" in w.message for w in review.warnings if w.username == "close")
    finished = reports.monthly_review("2026-11", now=DEC + timedelta(days=1))
    assert "racing" not in {w.username for w in finished.warnings}  # no forecast for a finished month


# --------------------------------------------------------------------------- idle time


def test_idle_sessions_are_those_without_any_logged_run(loaded_db: str) -> None:
    accounts.register_academic_account("lab", None, None, None)
    t = NOV + timedelta(days=5)
    linked_run = _run("gpu_1x_a10", t - timedelta(days=20), 60)
    ids = {
        "linked": accounts.add_usage_session("lab", "gpu_1x_a10", t, hours=2, run_id=linked_run),
        "overlapped": accounts.add_usage_session("lab", "gpu_1x_a10", t + timedelta(days=1), hours=2),
        "other_platform_run": accounts.add_usage_session("lab", "gpu_1x_a100", t + timedelta(days=2), hours=2),
        "logged_at_end": accounts.add_usage_session("lab", "gpu_1x_a10", t + timedelta(days=3), hours=2),
        "nothing": accounts.add_usage_session("lab", "gpu_1x_a10", t + timedelta(days=4), hours=2),
    }
    _run("gpu_1x_a10", t + timedelta(days=1, minutes=30), 600)
    _run("gpu_1x_a10", t + timedelta(days=2, minutes=30), 600)  # overlaps in time, but on the A10 not the A100
    # No start time: taken to have finished when it was logged, so it ran 01:00-01:30 on day 3.
    _run("gpu_1x_a10", None, 1800, created_at=t + timedelta(days=3, hours=1, minutes=30))
    review = reports.monthly_review("2026-11", now=DEC)
    idle = set(review.sessions.loc[review.sessions["idle"], "session_id"])
    assert idle == {ids["other_platform_run"], ids["nothing"]}
    assert review.totals["idle_hours"] == pytest.approx(4.0)
    assert set(review.idle_sessions["session_id"]) == idle


def test_overlap_search_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(7)
    base = np.datetime64("2026-11-01T00:00:00", "ns")

    def minutes(a):
        return base + (a * 60e9).astype("timedelta64[ns]")

    s_begin = rng.uniform(0, 10_000, 300)
    s_end = s_begin + rng.uniform(0, 200, 300)
    r_begin = rng.uniform(0, 10_000, 120)
    r_end = r_begin + rng.uniform(0, 50, 120)
    fast = reports._overlaps_any(minutes(s_begin), minutes(s_end), minutes(r_begin), minutes(r_end))
    brute = ((r_begin[None, :] < s_end[:, None]) & (r_end[None, :] > s_begin[:, None])).any(axis=1)
    assert fast.tolist() == brute.tolist()
    assert 0 < fast.sum() < len(fast)


# --------------------------------------------------------------------------- breakdowns and exports


def test_breakdowns_add_up_and_top_sessions_are_the_costliest(last_month: reports.MonthlyReview) -> None:
    total = last_month.totals["cost_usd"]
    for by in ("person", "project", "platform", "account"):
        table = last_month.breakdown(by)
        assert table["cost_usd"].sum() == pytest.approx(total)
        assert table["cost_usd"].is_monotonic_decreasing
    project = last_month.breakdown("project").set_index("project")
    assert project.loc["proteins", "hours"] == pytest.approx(3.0)  # no workload: the account's project
    assert project.loc["bert", "hours"] == pytest.approx(5.0)
    top = last_month.top_sessions
    assert len(top) == 3
    assert top["cost_in_month_usd"].tolist() == sorted(last_month.sessions["cost_in_month_usd"], reverse=True)[:3]
    with pytest.raises(accounts.AccountInputError):
        last_month.breakdown("colour")


def test_csv_export_neutralises_formulas(last_month: reports.MonthlyReview, tmp_path: Path) -> None:
    path = tmp_path / "month.csv"
    text = review_export.review_csv(last_month, path)
    assert path.read_text(encoding="utf-8") == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 4
    notes = {r["notes"] for r in rows}
    assert '\'=HYPERLINK("http://evil")' in notes and "'@SUM(1)" in notes
    assert {r["workload"] for r in rows} >= {"'+cmd", "'-homework"}
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    assert sum(float(r["cost_in_month_usd"]) for r in rows) == pytest.approx(last_month.totals["cost_usd"])


def test_html_report_is_self_contained_small_and_escapes_user_text(last_month: reports.MonthlyReview) -> None:
    page = review_print.review_html(last_month)
    assert len(page.encode()) < 1_000_000  # static charts: no plotly.js inlined (it was 4.85 MB)
    assert "<script" not in page, "a printed report needs no script"
    assert not re.search(r"<link[^>]+href=|src=[\"']?http", page), "nothing is fetched from elsewhere"
    assert page.count("<svg") == 4  # burn-down and three breakdowns, drawn as SVG
    text = page.replace("<wbr>", "")  # where long names may break
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert f"Usage review {last_month.month}" in page and "Idle sessions" in page
    assert f"${last_month.totals['cost_usd']:,.2f}" in page
    # headers people read, counts with the right plural, no "None" for a missing value
    headers = [html.unescape(h) for h in re.findall(r"<th[^>]*>([^<]*)</th>", page)]
    assert "Account" in headers and "Cost this month (USD)" in headers and "Forecast (USD, 90% band)" in headers
    assert not [h for h in headers if "_" in h]
    assert f"{formatting.plural(last_month.totals['sessions'], 'session')} (" in page
    assert not re.search(r"<td[^>]*>None</td>", page)
    assert "@page{size:A4 portrait" in page


def test_cli_report_writes_the_same_report(last_month: reports.MonthlyReview, tmp_path: Path) -> None:
    env = os.environ | {"FEDOPT_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'fedopt.db'}"}
    env.pop("FEDOPT_SECRET_KEY", None)

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fedopt_core.cli", *args],
            capture_output=True,
            text=True,
            env=env | extra,
            timeout=180,
        )

    month = last_month.month
    out = tmp_path / "out"
    result = cli("usage", "report", "--month", month, "--out", str(out / "month.html"))
    assert result.returncode == 0, result.stderr
    written = (out / "month.html").read_text(encoding="utf-8")
    expected = review_print.review_html(reports.monthly_review(month))  # the CLI's default top_n
    assert re.sub(r"generated [0-9: -]+ UTC", "", written) == re.sub(r"generated [0-9: -]+ UTC", "", expected)
    result = cli("usage", "report", "--month", month, "--out", str(out / "month.csv"), "--csv")
    assert result.returncode == 0, result.stderr
    assert (out / "month.csv").read_text(encoding="utf-8") == review_export.review_csv(last_month)
    # A name ending .pdf is printed to PDF (as --pdf would).
    result = cli("usage", "report", "--month", month, "--out", str(out / "month.pdf"))
    assert result.returncode == 0, result.stderr
    assert "PDF usage report" in result.stdout
    assert (out / "month.pdf").read_bytes().startswith(b"%PDF-")
    # No Chromium: a clear error, and no file.
    result = cli("usage", "report", "--month", month, "--out", str(out / "none.pdf"), FEDOPT_CHROMIUM="/nonexistent")
    assert result.returncode != 0 and "no PDF written" in result.stderr and "Chromium" in result.stderr
    assert not (out / "none.pdf").exists()
    bad = cli("usage", "report", "--month", "2026-13", "--out", str(tmp_path / "out" / "bad.csv"))
    assert bad.returncode == 1 and "month" in bad.stderr


# --------------------------------------------------------------------------- savings per technique


def test_technique_savings_from_the_groups_own_sessions(loaded_db: str) -> None:
    catalog.save_platform(
        {
            "provider": "nebius",
            "instance_type": "h100-1",
            "gpu_type": "H100 SXM5 80GB",
            "gpu_count": 1,
            "price_per_hour_usd": 2.95,
            "spot_price_per_hour_usd": 1.25,
        }
    )
    catalog.save_platform(
        {
            "provider": "gcp",
            "instance_type": "a3-1g",
            "gpu_type": "H100 SXM5 80GB",
            "gpu_count": 1,
            "price_per_hour_usd": 10.0,
        }
    )
    accounts.register_academic_account("lab", None, None, None)
    accounts.register_academic_account("cloud", None, None, None, provider="nebius")
    t = NOV + timedelta(days=2)
    accounts.add_usage_session("cloud", "h100-1", t, hours=10)  # $29.50, catalogue spot 1.25
    accounts.add_usage_session("cloud", "a3-1g", t, hours=1, provider="gcp")  # $10, typical ratio 0.60
    big_run = _run("gpu_8x_a100", t, 3600, gpu_memory_required_gb=60)  # 60 GB of 8 x 40 GB: 2 GPUs
    accounts.add_usage_session("lab", "gpu_8x_a100", t, hours=1, run_id=big_run)  # $15.92
    accounts.add_usage_session("lab", "gpu_1x_a10", t + timedelta(days=1), hours=2)  # idle, $2.58
    estimates = savings.technique_savings("2026-11", now=DEC).set_index("slug")
    spot = estimates.loc["spot-instances"]
    assert spot["saving_usd"] == pytest.approx(29.5 * (1 - 1.25 / 2.95) + 10.0 * 0.4)
    assert "Lambda" in spot["assumptions"] and "$18.50 was on Lambda" in spot["assumptions"]
    # One session of four is linked to a run: an idle saving would be a guess, so none is claimed.
    for slug in ("scheduled-shutdowns", "idle-notebook-auto-stop"):
        assert np.isnan(estimates.loc[slug, "saving_usd"])
        assert estimates.loc[slug, "assumptions"].startswith(
            "not enough linked sessions to estimate: 1 of 4 sessions linked to a logged run"
        )
    assert estimates.loc["right-sizing", "saving_usd"] == pytest.approx(15.92 * (1 - 2 / 8))
    assert (estimates["month"] == "2026-11").all()
    assert estimates["month_cost_usd"].iloc[0] == pytest.approx(29.5 + 10 + 15.92 + 2.58)
    assert estimates["assumptions"].str.len().min() > 40


def test_technique_savings_default_to_last_month(loaded_db: str) -> None:
    accounts.register_academic_account("lab", None, None, None)
    start, _ = accounts.month_bounds(accounts.previous_month())
    accounts.add_usage_session("lab", "gpu_1x_a10", start + timedelta(days=1), hours=4)
    estimates = savings.technique_savings()
    assert (estimates["month"] == accounts.previous_month()).all()
    assert np.isnan(estimates.set_index("slug").loc["scheduled-shutdowns", "saving_usd"])  # 0 of 1 linked
    assert estimates.set_index("slug").loc["spot-instances", "saving_usd"] == 0.0  # Lambda has no spot market


def test_hours_where_there_is_no_spot_market_are_priced_on_the_cheapest_spot_offer_of_that_gpu(
    loaded_db: str,
) -> None:
    for name, spot in (("h100-1", 1.25), ("h100-cheap", 1.10)):
        catalog.save_platform(
            {
                "provider": "nebius",
                "instance_type": name,
                "gpu_type": "H100 SXM5 80GB",
                "gpu_count": 1,
                "price_per_hour_usd": 2.95,
                "spot_price_per_hour_usd": spot,
            }
        )
    accounts.register_academic_account("lab", None, None, None)
    accounts.add_usage_session("lab", "gpu_2x_h100_sxm5", NOV + timedelta(days=2), hours=3)  # 6 GPU-hours
    spot = savings.technique_savings("2026-11", now=DEC).set_index("slug").loc["spot-instances"]
    assert spot["saving_usd"] == 0.0  # Lambda has no spot market: nothing was saved...
    # ...but what the same hours would have cost on a spot offer elsewhere is said
    assert (
        "the same 6.0 GPU-hours of H100 SXM5 80GB would have cost $6.60 on the cheapest spot offer of the "
        "same GPU (e.g. h100-cheap on nebius at $1.10/GPU-h) instead of $25.14"
    ) in spot["assumptions"]


def test_idle_savings_are_estimated_once_most_sessions_are_linked(loaded_db: str) -> None:
    accounts.register_academic_account("lab", None, None, None)
    t = NOV + timedelta(days=2)
    for day in range(3):  # three sessions linked to the runs they ran, one hour each on an A10
        start = t + timedelta(days=day)
        accounts.add_usage_session("lab", "gpu_1x_a10", start, hours=1, run_id=_run("gpu_1x_a10", start, 3600))
    accounts.add_usage_session("lab", "gpu_1x_a10", t + timedelta(days=5), hours=2)  # no run: idle, $2.58
    estimates = savings.technique_savings("2026-11", now=DEC).set_index("slug")
    shutdowns = estimates.loc["scheduled-shutdowns"]
    assert shutdowns["saving_usd"] == pytest.approx(2 * 1.29)
    assert "the 1 session with no logged run (2.0 h)" in shutdowns["assumptions"]
    assert "3 of 4 sessions linked to a logged run" in shutdowns["assumptions"]
    assert np.isnan(estimates.loc["right-sizing", "saving_usd"])  # no multi-GPU session says its memory need


def test_a_zero_quota_warns_only_once_used(loaded_db: str) -> None:
    accounts.register_academic_account("none-left", None, None, None, monthly_quota_hours=0)
    accounts.register_academic_account("unused", None, None, None, monthly_quota_hours=0)
    accounts.add_usage_session("none-left", "gpu_1x_a10", NOV + timedelta(days=1), hours=1)
    review = reports.monthly_review("2026-11", now=DEC)
    assert [(w.username, w.level) for w in review.warnings] == [("none-left", "over")]
    assert "more than all of its monthly hour quota (0.0 h)" in review.warnings[0].message
    assert review.accounts.set_index("username").loc["unused", "quota_used_pct"] == 0.0
