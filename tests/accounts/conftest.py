"""A month of usage sessions to review, shared by the report and printing tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fedopt_core import accounts
from fedopt_core.accounts import reports


@pytest.fixture
def last_month(loaded_db: str) -> reports.MonthlyReview:
    """Sessions in the previous calendar month: complete, so its review no longer depends on the clock."""
    start, _ = accounts.month_bounds(accounts.previous_month())
    accounts.register_academic_account("grant", None, None, None, monthly_quota_hours=100, project="proteins")
    accounts.register_academic_account("course", None, None, None, monthly_budget_usd=40)
    rows = [
        ("grant", "gpu_1x_a10", 5, "ana", "bert", '=HYPERLINK("http://evil")'),
        ("grant", "gpu_1x_a100", 3, "ana", None, None),
        ("grant", "gpu_1x_a100", 10, "<script>alert(1)</script>", "+cmd", "**bold** [x](http://e)"),
        ("course", "gpu_1x_a10", 20, "bo", "-homework", "@SUM(1)"),
    ]
    for i, (who, platform, hours, person, workload, notes) in enumerate(rows):
        accounts.add_usage_session(
            who, platform, start + timedelta(days=i + 1), hours=hours, person=person, workload=workload, notes=notes
        )
    return reports.monthly_review(accounts.previous_month(), top_n=3)
