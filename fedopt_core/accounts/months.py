"""Calendar months in UTC: every monthly figure (quota used, budget left, the review) uses these."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from fedopt_core.accounts.fields import AccountInputError, utc_today


def parse_month(month: str | date | datetime | None = None) -> date:
    """The first day of a calendar month from ``YYYY-MM`` (or a date); the current UTC month by default."""
    if month is None:
        today = utc_today()
        return date(today.year, today.month, 1)
    if isinstance(month, datetime):
        return date(month.year, month.month, 1)
    if isinstance(month, date):
        return date(month.year, month.month, 1)
    match = re.fullmatch(r"\s*(\d{4})-(\d{1,2})\s*", str(month))
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise AccountInputError("month", f"{month!r} is not a month (YYYY-MM)")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_bounds(month: str | date | datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in UTC."""
    first = parse_month(month)
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return (
        datetime.combine(first, time(0), tzinfo=UTC),
        datetime.combine(following, time(0), tzinfo=UTC),
    )


def month_label(month: str | date | datetime | None = None) -> str:
    return parse_month(month).strftime("%Y-%m")


def previous_month(month: str | date | datetime | None = None) -> str:
    first = parse_month(month)
    return month_label(first - timedelta(days=1))
