"""How account and usage-session fields are read, and refused with the field named.

Shared by :mod:`.registry`, :mod:`.usage` and :mod:`.choice`: text (length, control characters),
amounts (finite, not negative), days and UTC datetimes, and the lookup of an account by username.
Bad input raises :class:`AccountInputError`; nothing is written then.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from fedopt_core.errors import AccountInputError, UnknownAccountError
from fedopt_core.models import Account, utcnow
from fedopt_core.schema import CONTROL_CHARACTERS

MAX_NAME = 100
MAX_TEXT = 2000


def read_text(
    value: Any, field_name: str, *, required: bool = False, max_len: int = MAX_NAME, allow_newlines: bool = False
) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        value = ""
    text = str(value).strip()
    if not text:
        if required:
            raise AccountInputError(field_name, "is required")
        return None
    if len(text) > max_len:
        raise AccountInputError(field_name, f"is longer than {max_len} characters")
    checked = text.replace("\n", "").replace("\r", "").replace("\t", "") if allow_newlines else text
    if CONTROL_CHARACTERS.search(checked):
        raise AccountInputError(field_name, "contains control characters")
    return text


def read_amount(value: Any, field_name: str) -> float | None:
    """A non-negative finite number, or None for blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AccountInputError(field_name, f"{value!r} is not a number") from None
    if math.isnan(number):
        return None
    if not math.isfinite(number):
        raise AccountInputError(field_name, "must be a finite number")
    if number < 0:
        raise AccountInputError(field_name, "must not be negative")
    return number


def read_day(value: Any, field_name: str) -> date | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise AccountInputError(field_name, f"{value!r} is not a date (YYYY-MM-DD)") from None


def as_utc(value: Any, field_name: str) -> datetime | None:
    """An aware UTC datetime from a datetime or ISO text; a naive value is refused (ambiguous)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise AccountInputError(field_name, f"{value!r} is not a date and time (ISO 8601)") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(0), tzinfo=UTC)
    if not isinstance(value, datetime):
        raise AccountInputError(field_name, f"{value!r} is not a date and time")
    if value.utcoffset() is None:
        raise AccountInputError(field_name, "needs a time zone (e.g. 2026-11-03T10:00+00:00)")
    return value.astimezone(UTC)


def read_username(value: Any) -> str:
    return read_text(value, "username", required=True)  # type: ignore[return-value]


def utc_today() -> date:
    return utcnow().date()


def get_account(session: Session, username: str) -> Account:
    account = session.exec(select(Account).where(Account.username == username)).first()
    if account is None:
        raise UnknownAccountError(username)
    return account
