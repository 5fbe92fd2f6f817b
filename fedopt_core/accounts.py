"""Accounts and academic allocations: encrypted API keys, usage sessions, quotas, who pays.

An account (a grant, a person, a course allocation, a cloud login) may carry a monthly hour quota,
a monthly budget in USD and an end date; one with neither quota nor budget has no limit.

Usage is a list of sessions (a span of time an account paid for a machine).  Every statistic
(hours this month, sessions launched, what is left of a quota) is a query over those rows, split by
calendar month (UTC): there is no counter to reset, and two people recording usage at the same
moment cannot overwrite each other.

API keys are stored only as Fernet tokens (see :mod:`fedopt_core.crypto`); pages and exports
show ``••••`` and the last four characters.  The plain key is returned by
:func:`decrypted_api_key` alone, for in-process use by the Lambda integration.

Bad input raises :class:`AccountInputError` (a ``ValueError``) whose ``field`` names the culprit;
nothing is written then.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import select

from fedopt_core import auth, crypto
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CsvFormatError, read_commented_csv
from fedopt_core.db import session_scope
from fedopt_core.models import Account, Platform, PlatformPrice, Run, UsageSession, utcnow

logger = logging.getLogger(__name__)

STATUSES = ("active", "suspended", "expired", "archived")
SOURCES = ("manual", "lambda_sync", "run_log")
OUTCOMES = ("completed", "failed", "preempted", "running")
UNIVERSITY_DOMAINS_FILE = "university_domains.csv"
REQUIREMENT_KEYS = frozenset({"provider", "expected_hours", "expected_cost_usd", "platform", "price_per_hour_usd"})

# Mail services anyone can sign up to: an address there says nothing about an institution.
PUBLIC_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com",
    "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.de", "gmx.net", "web.de",
    "mail.ru", "yandex.ru", "qq.com", "163.com", "126.com", "zoho.com",
})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_NAME = 100
_MAX_TEXT = 2000


class AccountInputError(ValueError):
    """Input for an account or a usage session is not acceptable; ``field`` names the culprit."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


class UnknownAccountError(AccountInputError):
    """No account has this username."""

    def __init__(self, username: str):
        super().__init__("username", f"no account named {username!r}")


# --------------------------------------------------------------------------- small parsers


def _text(value: Any, field_name: str, *, required: bool = False, max_len: int = _MAX_NAME,
          allow_newlines: bool = False) -> str | None:
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
    if _CONTROL.search(checked):
        raise AccountInputError(field_name, "contains control characters")
    return text


def _amount(value: Any, field_name: str) -> float | None:
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


def _day(value: Any, field_name: str) -> date | None:
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
        value = datetime.combine(value, time(0), tzinfo=timezone.utc)
    if not isinstance(value, datetime):
        raise AccountInputError(field_name, f"{value!r} is not a date and time")
    if value.utcoffset() is None:
        raise AccountInputError(field_name, "needs a time zone (e.g. 2026-11-03T10:00+00:00)")
    return value.astimezone(timezone.utc)


def _username(value: Any) -> str:
    return _text(value, "username", required=True)  # type: ignore[return-value]


def _today() -> date:
    return utcnow().date()


# --------------------------------------------------------------------------- months


def parse_month(month: str | date | datetime | None = None) -> date:
    """The first day of a calendar month from ``YYYY-MM`` (or a date); the current UTC month by default."""
    if month is None:
        today = _today()
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
    return (datetime.combine(first, time(0), tzinfo=timezone.utc),
            datetime.combine(following, time(0), tzinfo=timezone.utc))


def month_label(month: str | date | datetime | None = None) -> str:
    return parse_month(month).strftime("%Y-%m")


def previous_month(month: str | date | datetime | None = None) -> str:
    first = parse_month(month)
    return month_label(first - timedelta(days=1))


# --------------------------------------------------------------------------- e-mail eligibility


@dataclass(frozen=True)
class EmailCheck:
    """Whether an address looks institutional, and why.  It informs; it never locks anyone out."""

    email: str | None
    domain: str | None
    verified: bool
    reason: str

    @property
    def label(self) -> str:
        return "verified" if self.verified else "not verified"


@functools.lru_cache(maxsize=4)
def _load_university_domains(path: str, mtime: float) -> dict[str, str]:
    try:
        frame, errors = read_commented_csv(path, required=["domain", "name"])
    except (OSError, CsvFormatError) as exc:
        logger.warning("university domain list unusable: %s", exc)
        return {}
    for error in errors:
        logger.warning("university domain list: %s", error)
    country = frame["country"] if "country" in frame else pd.Series("", index=frame.index)
    return {
        d.strip().lower(): f"{n} ({c})" if c else n
        for d, n, c in zip(frame["domain"], frame["name"], country.fillna(""), strict=True)
    }


def university_domains(path: str | Path | None = None) -> dict[str, str]:
    """domain -> university name, from ``data/university_domains.csv`` (read once per file version)."""
    path = Path(path or get_settings().data_dir / UNIVERSITY_DOMAINS_FILE)
    if not path.exists():
        return {}
    return _load_university_domains(str(path), path.stat().st_mtime)


def check_institutional_email(email: str | None, *, domains: Mapping[str, str] | None = None) -> EmailCheck:
    """Syntax check (no DNS) and an academic-domain check of an address.

    Raises :class:`AccountInputError` (field ``email``) for an address that is not an e-mail
    address at all; a valid address outside the academic domains is "not verified" with the reason.
    """
    from email_validator import EmailNotValidError, validate_email

    text = _text(email, "email", max_len=254)
    if text is None:
        return EmailCheck(None, None, False, "no e-mail address given")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountInputError("email", str(exc)) from None
    domain = result.domain.lower()
    labels = domain.split(".")
    known = university_domains() if domains is None else domains
    for i in range(len(labels) - 1):
        parent = ".".join(labels[i:])
        if parent in known:
            return EmailCheck(result.normalized, domain, True, f"{parent} is listed as a university domain: {known[parent]}")
    if labels[-1] == "edu":
        return EmailCheck(result.normalized, domain, True, ".edu is reserved for accredited US institutions")
    if len(labels) >= 3 and labels[-2] in {"edu", "ac"} and len(labels[-1]) == 2:
        suffix = "." + ".".join(labels[-2:])
        return EmailCheck(result.normalized, domain, True, f"{suffix} is an academic domain")
    if domain in PUBLIC_MAIL_DOMAINS:
        return EmailCheck(result.normalized, domain, False, f"{domain} is a public mail service, not an institution")
    return EmailCheck(
        result.normalized, domain, False,
        f"{domain} is not an academic domain (.edu, .ac.xx, .edu.xx) nor in the university list",
    )


# --------------------------------------------------------------------------- accounts


def _audit(session, action: str, target: str, **details: Any) -> None:  # noqa: ANN001
    # Only field names and plain facts go into the audit trail, never a key or a token.
    auth.record(action, target, details, session=session)


def _get_account(session, username: str) -> Account:  # noqa: ANN001
    account = session.exec(select(Account).where(Account.username == username)).first()
    if account is None:
        raise UnknownAccountError(username)
    return account


def _check_api_key(api_key: Any) -> str | None:
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise AccountInputError("api_key", "must be text")
    key = api_key.strip()
    if not key:
        return None
    # The message never repeats the key: it may be a real one pasted into the wrong box.
    if len(key) < 8 or any(c.isspace() for c in key) or _CONTROL.search(key):
        raise AccountInputError("api_key", "must be at least 8 characters, without spaces")
    return key


def register_academic_account(
    username: str,
    api_key: str | None,
    institution: str | None,
    email: str | None,
    *,
    provider: str = "lambda",
    monthly_quota_hours: float | None = None,
    monthly_budget_usd: float | None = None,
    ends_on: date | str | None = None,
    project: str | None = None,
    notes: str | None = None,
    status: str | None = None,
    url: str | None = None,
) -> bool:
    """Add an account, or update the one with this username (never a duplicate).

    Returns True when a new account was created, False when an existing one was updated.  On
    update, arguments left as None keep the stored value (use :func:`update_account` to clear a
    limit).  The API key is encrypted before it reaches the database.
    """
    auth.require("admin", "adding or changing an account")
    name = _username(username)
    key = _check_api_key(api_key)
    check = check_institutional_email(email)
    values: dict[str, Any] = {
        "institution": _text(institution, "institution", max_len=200),
        "monthly_quota_hours": _amount(monthly_quota_hours, "monthly_quota_hours"),
        "monthly_budget_usd": _amount(monthly_budget_usd, "monthly_budget_usd"),
        "ends_on": _day(ends_on, "ends_on"),
        "project": _text(project, "project", max_len=200),
        "notes": _text(notes, "notes", max_len=_MAX_TEXT, allow_newlines=True),
    }
    provider_name = (_text(provider, "provider", required=True) or "").lower()
    if status is not None and status not in STATUSES:
        raise AccountInputError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    token = crypto.encrypt_secret(key) if key else None
    with session_scope(url) as session:
        account = session.exec(select(Account).where(Account.username == name)).first()
        created = account is None
        if created:
            account = Account(username=name, provider=provider_name, status=status or "active")
        else:
            account.provider = provider_name
            if status is not None:
                account.status = status
        for attr, value in values.items():
            if value is not None or created:
                setattr(account, attr, value)
        if check.email is not None or created:
            account.email = check.email
            account.email_verified = check.verified
            account.email_check_reason = check.reason
        if token is not None:
            account.api_key_encrypted = token
            account.api_key_last4 = crypto.last4(key)  # type: ignore[arg-type]
            account.api_key_rotated_at = utcnow()
        account.updated_at = utcnow()
        session.add(account)
        changed = sorted(k for k, v in values.items() if v is not None) + (["api_key"] if token else [])
        _audit(session, "account.create" if created else "account.update", name, fields=changed)
    logger.info("%s account %s", "created" if created else "updated", name)
    return created


_UNSET: Any = object()


def update_account(
    username: str,
    *,
    institution: Any = _UNSET,
    email: Any = _UNSET,
    provider: Any = _UNSET,
    monthly_quota_hours: Any = _UNSET,
    monthly_budget_usd: Any = _UNSET,
    ends_on: Any = _UNSET,
    project: Any = _UNSET,
    notes: Any = _UNSET,
    url: str | None = None,
) -> None:
    """Change some fields of an account; here None clears a field (e.g. removes a quota)."""
    auth.require("admin", "changing an account")
    name = _username(username)
    parsers = {
        "institution": lambda v: _text(v, "institution", max_len=200),
        "provider": lambda v: (_text(v, "provider", required=True) or "").lower(),
        "monthly_quota_hours": lambda v: _amount(v, "monthly_quota_hours"),
        "monthly_budget_usd": lambda v: _amount(v, "monthly_budget_usd"),
        "ends_on": lambda v: _day(v, "ends_on"),
        "project": lambda v: _text(v, "project", max_len=200),
        "notes": lambda v: _text(v, "notes", max_len=_MAX_TEXT, allow_newlines=True),
    }
    given = {"institution": institution, "provider": provider, "monthly_quota_hours": monthly_quota_hours,
             "monthly_budget_usd": monthly_budget_usd, "ends_on": ends_on, "project": project, "notes": notes}
    changes = {k: parsers[k](v) for k, v in given.items() if v is not _UNSET}
    check = check_institutional_email(email) if email is not _UNSET else None
    with session_scope(url) as session:
        account = _get_account(session, name)
        for attr, value in changes.items():
            setattr(account, attr, value)
        if check is not None:
            account.email, account.email_verified, account.email_check_reason = check.email, check.verified, check.reason
        account.updated_at = utcnow()
        session.add(account)
        _audit(session, "account.update", name, fields=sorted(changes) + (["email"] if check else []))


def set_status(username: str, status: str, *, url: str | None = None) -> None:
    """Set an account's status (active, suspended, expired, archived); its history stays."""
    auth.require("admin", "changing an account's status")
    name = _username(username)
    if status not in STATUSES:
        raise AccountInputError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    with session_scope(url) as session:
        account = _get_account(session, name)
        old = account.status
        account.status = status
        account.updated_at = utcnow()
        session.add(account)
        _audit(session, "account.status", name, old=old, new=status)


def archive_account(username: str, *, url: str | None = None) -> None:
    """Archive an account: it can no longer be chosen to pay; its sessions stay in every report."""
    set_status(username, "archived", url=url)


def set_api_key(username: str, api_key: str, *, url: str | None = None) -> str:
    """Replace an account's API key (e.g. after rotating it at the provider); returns the mask."""
    auth.require("admin", "replacing an API key")
    name = _username(username)
    key = _check_api_key(api_key)
    if key is None:
        raise AccountInputError("api_key", "is required")
    token = crypto.encrypt_secret(key)
    with session_scope(url) as session:
        account = _get_account(session, name)
        account.api_key_encrypted = token
        account.api_key_last4 = crypto.last4(key)
        account.api_key_rotated_at = account.updated_at = utcnow()
        session.add(account)
        _audit(session, "account.api_key", name)
        return crypto.mask_secret(account.api_key_last4)


def masked_api_key(username: str, *, url: str | None = None) -> str | None:
    """``••••1234`` for the account's key, or None when it has no key."""
    with session_scope(url) as session:
        account = _get_account(session, _username(username))
        return crypto.mask_secret(account.api_key_last4) if account.api_key_encrypted else None


def decrypted_api_key(username: str, *, url: str | None = None) -> str | None:
    """The plain API key, for in-process use only (the Lambda client); never show or log it."""
    auth.require("admin", "using an account's API key")
    with session_scope(url) as session:
        token = _get_account(session, _username(username)).api_key_encrypted
    return crypto.decrypt_secret(token) if token else None


def rotate_secret_key(new_key: str | bytes | None = None, *, url: str | None = None) -> str:
    """Re-encrypt every stored API key with a new secret key, in one transaction.

    Returns a one-line instruction for the operator.  Without ``FEDOPT_SECRET_KEY`` a random key
    replaces the key file; with it, ``new_key`` is required and the variable must be set to it.
    """
    auth.require("admin", "rotating the secret key")
    rotation = crypto.prepare_rotation(new_key)
    try:
        with session_scope(url) as session:
            accounts = session.exec(select(Account).where(Account.api_key_encrypted.is_not(None))).all()  # type: ignore[union-attr]
            for account in accounts:
                account.api_key_encrypted = rotation.rotate(account.api_key_encrypted)  # type: ignore[arg-type]
                session.add(account)
            _audit(session, "secret_key.rotate", "accounts", re_encrypted=len(accounts))
    except BaseException:
        rotation.abandon()
        raise
    instruction = rotation.finish()
    logger.info("re-encrypted %d API keys with a new secret key", len(accounts))
    return f"re-encrypted {len(accounts)} API key(s); {instruction}"


ACCOUNT_COLUMNS = [
    "username", "provider", "institution", "email", "eligibility", "email_check_reason", "api_key",
    "monthly_quota_hours", "monthly_budget_usd", "ends_on", "status", "stored_status", "project", "notes",
    "hours_this_month", "cost_this_month_usd", "hours_left", "budget_left_usd", "api_key_rotated_at", "created_at",
]


def _effective_status(stored: pd.Series, ends_on: pd.Series, today: date) -> pd.Series:
    ended = pd.to_datetime(ends_on, errors="coerce") < pd.Timestamp(today)
    return stored.where(~(ended & (stored == "active")), "expired")


def _accounts_frame(session) -> pd.DataFrame:  # noqa: ANN001
    rows = session.exec(select(Account).order_by(Account.username)).all()
    return pd.DataFrame(
        [{
            "account_id": a.id, "username": a.username, "provider": a.provider, "institution": a.institution,
            "email": a.email, "email_verified": bool(a.email_verified), "email_check_reason": a.email_check_reason,
            "has_api_key": a.api_key_encrypted is not None, "api_key_last4": a.api_key_last4,
            "monthly_quota_hours": a.monthly_quota_hours, "monthly_budget_usd": a.monthly_budget_usd,
            "ends_on": a.ends_on, "stored_status": a.status, "project": a.project, "notes": a.notes,
            "api_key_rotated_at": a.api_key_rotated_at, "created_at": a.created_at,
        } for a in rows],
        columns=["account_id", "username", "provider", "institution", "email", "email_verified", "email_check_reason",
                 "has_api_key", "api_key_last4", "monthly_quota_hours", "monthly_budget_usd", "ends_on",
                 "stored_status", "project", "notes", "api_key_rotated_at", "created_at"],
    )


def _with_month_usage(accounts: pd.DataFrame, month: str | date | None, url: str | None, today: date) -> pd.DataFrame:
    start, end = month_bounds(month)
    usage = usage_in_window(start, end, url=url)
    per_account = usage.groupby("account_id")[["hours_in_window", "cost_in_window_usd"]].sum()
    out = accounts.copy()
    out["hours_this_month"] = out["account_id"].map(per_account["hours_in_window"]).fillna(0.0).astype(float)
    out["cost_this_month_usd"] = out["account_id"].map(per_account["cost_in_window_usd"]).fillna(0.0).astype(float)
    quota = pd.to_numeric(out["monthly_quota_hours"], errors="coerce").astype(float)
    budget = pd.to_numeric(out["monthly_budget_usd"], errors="coerce").astype(float)
    out["monthly_quota_hours"], out["monthly_budget_usd"] = quota, budget
    out["hours_left"] = quota - out["hours_this_month"]
    out["budget_left_usd"] = budget - out["cost_this_month_usd"]
    out["status"] = _effective_status(out["stored_status"], out["ends_on"], today)
    return out


def list_accounts(*, include_archived: bool = False, month: str | date | None = None,
                  url: str | None = None) -> pd.DataFrame:
    """Accounts with this month's usage and what is left; API keys only masked."""
    with session_scope(url) as session:
        accounts = _accounts_frame(session)
    today = _today()
    frame = _with_month_usage(accounts, month, url, today)
    if not include_archived:
        frame = frame[frame["stored_status"] != "archived"]
    frame = frame.assign(
        api_key=np.where(frame["has_api_key"], crypto.MASK + frame["api_key_last4"].fillna(""), ""),
        eligibility=np.where(frame["email_verified"], "verified", "not verified"),
    )
    return frame[ACCOUNT_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- usage sessions


def _price_at(session, platform: Platform, at: datetime) -> float | None:  # noqa: ANN001
    """The platform's price when the session started: the last observation at or before it."""
    before = session.exec(
        select(PlatformPrice).where(PlatformPrice.platform_id == platform.id, PlatformPrice.observed_at <= at)
        .order_by(PlatformPrice.observed_at.desc())  # type: ignore[attr-defined]
    ).first()
    if before is not None:
        return before.price_per_hour_usd
    # Older than every observation: the earliest known price is the best guess.
    earliest = session.exec(
        select(PlatformPrice).where(PlatformPrice.platform_id == platform.id).order_by(PlatformPrice.observed_at)
    ).first()
    return earliest.price_per_hour_usd if earliest is not None else platform.price_per_hour_usd


def _find_platform(session, instance_type: str, provider: str | None) -> Platform | None:  # noqa: ANN001
    candidates = session.exec(select(Platform).where(Platform.instance_type == instance_type)).all()
    if provider:
        same = [p for p in candidates if p.provider.lower() == provider.lower()]
        if same:
            return same[0]
    return candidates[0] if len(candidates) == 1 else None


def add_usage_session(
    username: str,
    platform: str,
    started_at: datetime | str,
    ended_at: datetime | str | None = None,
    cost_usd: float | None = None,
    success: bool = True,
    source: str = "manual",
    *,
    hours: float | None = None,
    provider: str | None = None,
    price_per_hour_usd: float | None = None,
    outcome: str | None = None,
    person: str | None = None,
    workload: str | None = None,
    run_id: int | None = None,
    instance_id: str | None = None,
    region: str | None = None,
    notes: str | None = None,
    url: str | None = None,
) -> int:
    """Record a session an account paid for; returns its id.

    ``hours`` may stand in for ``ended_at``.  Without ``cost_usd`` the cost is hours times the
    platform's catalogue price at ``started_at``.  ``ended_at`` None (and no hours) records a
    machine still running; its hours count up to now.
    """
    auth.require("member", "recording usage")
    name = _username(username)
    platform_name = _text(platform, "platform", required=True)
    start = as_utc(started_at, "started_at")
    if start is None:
        raise AccountInputError("started_at", "is required")
    end = as_utc(ended_at, "ended_at")
    duration_h = _amount(hours, "hours")
    if end is not None and duration_h is not None:
        raise AccountInputError("hours", "give either ended_at or hours, not both")
    if duration_h is not None:
        end = start + timedelta(hours=duration_h)
    if end is not None and end < start:
        raise AccountInputError("ended_at", "is before started_at")
    cost = _amount(cost_usd, "cost_usd")
    price = _amount(price_per_hour_usd, "price_per_hour_usd")
    if source not in SOURCES:
        raise AccountInputError("source", f"{source!r} is not one of {', '.join(SOURCES)}")
    if not isinstance(success, (bool, np.bool_)):
        raise AccountInputError("success", "must be true or false")
    if outcome is None:
        outcome = "running" if end is None else ("completed" if success else "failed")
    if outcome not in OUTCOMES:
        raise AccountInputError("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}")
    values = {
        "person": _text(person, "person"),
        "workload": _text(workload, "workload", max_len=200),
        "instance_id": _text(instance_id, "instance_id", max_len=200),
        "region": _text(region, "region"),
        "notes": _text(notes, "notes", max_len=_MAX_TEXT, allow_newlines=True),
    }
    if run_id is not None and (not isinstance(run_id, (int, np.integer)) or run_id < 1):
        raise AccountInputError("run_id", "must be a positive whole number")
    with session_scope(url) as session:
        # Reads first, then one INSERT: under SQLite the write lock is taken only by the INSERT, so
        # concurrent writers queue on busy_timeout instead of failing on a stale read snapshot.
        account = _get_account(session, name)
        if run_id is not None and session.get(Run, int(run_id)) is None:
            raise AccountInputError("run_id", f"no run with id {int(run_id)}")
        provider_name = (_text(provider, "provider") or account.provider).lower()
        if price is None:
            found = _find_platform(session, platform_name, provider_name)  # type: ignore[arg-type]
            if found is not None:
                price = _price_at(session, found, start)
        if cost is None and price is None:
            raise AccountInputError(
                "platform", f"{platform_name!r} has no catalogue price; give cost_usd or price_per_hour_usd"
            )
        if cost is None and end is not None:
            cost = price * (end - start).total_seconds() / 3600.0  # type: ignore[operator]
        row = UsageSession(
            account_id=account.id, platform=platform_name, provider=provider_name, started_at=start, ended_at=end,
            price_per_hour_usd=price, cost_usd=cost, success=bool(success), outcome=outcome, source=source,
            run_id=int(run_id) if run_id is not None else None, **values,
        )
        session.add(row)
        session.flush()
        return int(row.id)  # type: ignore[arg-type]


SESSION_COLUMNS = [
    "session_id", "account_id", "username", "project", "provider", "platform", "person", "workload",
    "started_at", "ended_at", "hours", "price_per_hour_usd", "cost_usd", "success", "outcome", "source",
    "run_id", "instance_id", "notes",
]


def _load_sessions(*, usernames: list[str] | None = None, start: datetime | None = None,
                   end: datetime | None = None, url: str | None = None) -> pd.DataFrame:
    """Session rows (with the account's username and project), optionally only those overlapping [start, end)."""
    with session_scope(url) as session:
        query = select(
            UsageSession.id, UsageSession.account_id, Account.username, Account.project, UsageSession.provider,
            UsageSession.platform, UsageSession.person, UsageSession.workload, UsageSession.started_at,
            UsageSession.ended_at, UsageSession.price_per_hour_usd, UsageSession.cost_usd, UsageSession.success,
            UsageSession.outcome, UsageSession.source, UsageSession.run_id, UsageSession.instance_id,
            UsageSession.notes,
        ).join(Account, Account.id == UsageSession.account_id)
        if end is not None:
            query = query.where(UsageSession.started_at < end)
        if start is not None:
            query = query.where(UsageSession.ended_at.is_(None) | (UsageSession.ended_at > start)  # type: ignore[union-attr]
                                | (UsageSession.started_at >= start))
        if usernames is not None:
            query = query.where(Account.username.in_(usernames))  # type: ignore[attr-defined]
        rows = session.exec(query.order_by(UsageSession.started_at, UsageSession.id)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[c for c in SESSION_COLUMNS if c != "hours"])


def usage_in_window(
    start: datetime,
    end: datetime,
    *,
    usernames: list[str] | None = None,
    now: datetime | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """Sessions overlapping [start, end), each with the hours and cost that fall inside the window.

    The cost of a session crossing a window edge is split in proportion to its hours; a running
    session counts up to ``now``.
    """
    raw = _load_sessions(usernames=usernames, start=start, end=end, url=url)
    return _clip_to_window(raw, start, end, now or utcnow())


def _utc_series(values: pd.Series) -> pd.Series:
    # One fixed unit: an all-empty column would otherwise come back in seconds and refuse "now".
    return pd.to_datetime(values, utc=True).dt.as_unit("us")


def _clip_to_window(frame: pd.DataFrame, start: datetime, end: datetime, now: datetime) -> pd.DataFrame:
    out = frame.copy()
    began = _utc_series(out["started_at"])
    finished = _utc_series(out["ended_at"])
    until = finished.fillna(pd.Timestamp(now)).where(lambda s: s >= began, began)
    total_h = (until - began).dt.total_seconds() / 3600.0
    inside_h = ((until.clip(upper=pd.Timestamp(end)) - began.clip(lower=pd.Timestamp(start)))
                .dt.total_seconds() / 3600.0).clip(lower=0.0)
    starts_inside = (began >= pd.Timestamp(start)) & (began < pd.Timestamp(end))
    # A zero-length session belongs wholly to the window it starts in.
    fraction = np.where(total_h > 0, inside_h / total_h.where(total_h > 0, 1.0), starts_inside.astype(float))
    price = pd.to_numeric(out["price_per_hour_usd"], errors="coerce").astype(float)
    cost = pd.to_numeric(out["cost_usd"], errors="coerce").astype(float).fillna(price * total_h)
    out["started_at"], out["ended_at"] = began, finished
    out["price_per_hour_usd"] = price
    out["hours"] = total_h.astype(float)
    out["cost_usd"] = cost
    out["success"] = out["success"].astype(bool)
    out["hours_in_window"] = inside_h.astype(float)
    out["cost_in_window_usd"] = cost * fraction
    out["starts_in_window"] = starts_inside.astype(bool)
    return out[SESSION_COLUMNS + ["hours_in_window", "cost_in_window_usd", "starts_in_window"]]


def list_usage_sessions(*, month: str | date | None = None, username: str | None = None,
                        url: str | None = None) -> pd.DataFrame:
    """Sessions overlapping a month (all accounts, or one), with the hours and cost inside it."""
    if username is not None:
        _require_account(username, url)
    start, end = month_bounds(month)
    return usage_in_window(start, end, usernames=[username] if username else None, url=url)


def _require_account(username: str, url: str | None) -> None:
    with session_scope(url) as session:
        _get_account(session, _username(username))


def usage_stats(username: str, month: str | date | None = None, *, url: str | None = None) -> dict[str, Any]:
    """The seed's usage statistics for one account, all derived from its sessions.

    ``total_hours``, ``instances_launched``, ``successful_sessions`` and ``failed_sessions`` are
    all-time; ``monthly_*`` figures belong to the calendar month (UTC; default: this month), with a
    session crossing the month's edge split by its hours.
    """
    name = _username(username)
    with session_scope(url) as session:
        account = _get_account(session, name)
        quota, budget = account.monthly_quota_hours, account.monthly_budget_usd
    start, end = month_bounds(month)
    all_time = _clip_to_window(_load_sessions(usernames=[name], url=url), start, end, utcnow())
    in_month = all_time[(all_time["hours_in_window"] > 0) | all_time["starts_in_window"]]
    launched = in_month["starts_in_window"]
    finished_ok = all_time["success"] & (all_time["outcome"] != "running")
    monthly_hours = float(in_month["hours_in_window"].sum())
    monthly_cost = float(in_month["cost_in_window_usd"].sum())
    return {
        "username": name,
        "month": month_label(month),
        "total_hours": float(all_time["hours"].sum()),
        "total_cost_usd": float(all_time["cost_usd"].sum()),
        "instances_launched": int(len(all_time)),
        "successful_sessions": int(finished_ok.sum()),
        "failed_sessions": int((~all_time["success"]).sum()),
        "running_sessions": int((all_time["outcome"] == "running").sum()),
        "monthly_hours": monthly_hours,
        "monthly_cost_usd": monthly_cost,
        "monthly_instances_launched": int(launched.sum()),
        "monthly_successful_sessions": int((launched & in_month["success"] & (in_month["outcome"] != "running")).sum()),
        "monthly_failed_sessions": int((launched & ~in_month["success"]).sum()),
        "monthly_quota_hours": quota,
        "monthly_budget_usd": budget,
        "hours_left": None if quota is None else quota - monthly_hours,
        "budget_left_usd": None if budget is None else budget - monthly_cost,
    }


# --------------------------------------------------------------------------- choosing an account


@dataclass(frozen=True, eq=False)
class AccountChoice:
    """Which account would pay for a job, and why (also when none can)."""

    username: str | None
    reason: str
    provider: str | None = None
    hours_left: float | None = None  # this month, before the job; None = no hour quota
    budget_left_usd: float | None = None  # None = no budget limit
    headroom_after_job_pct: float | None = None  # the tighter of the two limits; None = no limit
    expected_hours: float | None = None
    expected_cost_usd: float | None = None
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def ok(self) -> bool:
        return self.username is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "username": self.username, "reason": self.reason, "provider": self.provider,
            "hours_left": self.hours_left, "budget_left_usd": self.budget_left_usd,
            "headroom_after_job_pct": self.headroom_after_job_pct,
            "expected_hours": self.expected_hours, "expected_cost_usd": self.expected_cost_usd,
        }


def _requirements(requirements: Mapping[str, Any] | None, url: str | None) -> tuple[str | None, float | None, float | None]:
    req = dict(requirements or {})
    unknown = set(req) - REQUIREMENT_KEYS
    if unknown:
        raise AccountInputError("requirements", f"unknown key(s) {', '.join(sorted(unknown))}; "
                                                f"use {', '.join(sorted(REQUIREMENT_KEYS))}")
    provider = _text(req.get("provider"), "provider")
    hours = _amount(req.get("expected_hours"), "expected_hours")
    cost = _amount(req.get("expected_cost_usd"), "expected_cost_usd")
    price = _amount(req.get("price_per_hour_usd"), "price_per_hour_usd")
    platform_name = _text(req.get("platform"), "platform")
    if cost is None and hours is not None and price is None and platform_name:
        with session_scope(url) as session:
            found = _find_platform(session, platform_name, provider)
            price = found.price_per_hour_usd if found is not None else None
            if provider is None and found is not None:
                provider = found.provider
    if cost is None and hours is not None and price is not None:
        cost = hours * price
    return (provider.lower() if provider else None), hours, cost


def _account_state(month: str | date | None, url: str | None, today: date) -> pd.DataFrame:
    with session_scope(url) as session:
        accounts = _accounts_frame(session)
    state = _with_month_usage(accounts, month, url, today)
    # Least used first, so that among equal headroom (e.g. several unlimited accounts) the idlest wins.
    return state.sort_values(["hours_this_month", "username"], kind="stable").reset_index(drop=True)


def _decide(state: pd.DataFrame, provider: np.ndarray, hours: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For n jobs and m accounts: can[n, m], headroom[n, m] (fraction of the limit left after the job)."""
    acc_provider = state["provider"].str.lower().to_numpy(object)
    usable = (state["status"] == "active").to_numpy(bool)
    quota = state["monthly_quota_hours"].to_numpy(float)
    budget = state["monthly_budget_usd"].to_numpy(float)
    hours_left = state["hours_left"].to_numpy(float)
    budget_left = state["budget_left_usd"].to_numpy(float)
    h, c = hours[:, None], cost[:, None]
    wanted = provider[:, None]
    provider_ok = pd.isna(wanted) | (wanted == acc_provider[None, :])
    # A limit is checked against the job's need when it is known, else there must be something left.
    hours_ok = np.isnan(quota) | np.where(np.isnan(h), hours_left > 0, hours_left >= h)
    budget_ok = np.isnan(budget) | np.where(np.isnan(c), budget_left > 0, budget_left >= c)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_h = np.where(np.isnan(quota), np.inf, (hours_left - np.nan_to_num(h)) / np.where(quota > 0, quota, 1.0))
        frac_c = np.where(np.isnan(budget), np.inf, (budget_left - np.nan_to_num(c)) / np.where(budget > 0, budget, 1.0))
    headroom = np.minimum(frac_h, frac_c)
    can = usable[None, :] & provider_ok & hours_ok & budget_ok
    return can, headroom, provider_ok


def _why_not(row: pd.Series, provider: str | None, hours: float | None, cost: float | None,
             provider_ok: bool, today: date) -> str:
    if row["status"] != "active":
        if row["status"] == "expired" and row["ends_on"] is not None and not pd.isna(row["ends_on"]):
            return f"expired on {row['ends_on']}"
        return f"status is {row['status']}"
    if not provider_ok:
        return f"provider is {row['provider']}, the job needs {provider}"
    if not np.isnan(row["monthly_quota_hours"]):
        left = row["hours_left"]
        if hours is not None and left < hours:
            return f"{max(left, 0):.1f} h left this month, the job needs {hours:.1f} h"
        if hours is None and left <= 0:
            return "no hours left this month"
    if not np.isnan(row["monthly_budget_usd"]):
        left = row["budget_left_usd"]
        if cost is not None and left < cost:
            return f"${max(left, 0):,.2f} left this month, the job needs ${cost:,.2f}"
        if cost is None and left <= 0:
            return "no budget left this month"
    return "can pay"


def _limits_text(row: pd.Series) -> str:
    parts = []
    if not np.isnan(row["monthly_quota_hours"]):
        parts.append(f"{row['hours_left']:.1f} of {row['monthly_quota_hours']:.1f} h left this month")
    if not np.isnan(row["monthly_budget_usd"]):
        parts.append(f"${row['budget_left_usd']:,.2f} of ${row['monthly_budget_usd']:,.2f} left this month")
    return "; ".join(parts) or "no monthly limit"


def _optional(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def choose_account(requirements: Mapping[str, Any] | None = None, *, month: str | date | None = None,
                   url: str | None = None) -> AccountChoice:
    """The active, unexpired account with the most headroom that can cover the job, with the reason.

    ``requirements``: optional ``provider``, ``expected_hours``, ``expected_cost_usd`` (or
    ``platform``/``price_per_hour_usd`` to price the hours).  Headroom is the fraction of a monthly
    limit left after the job (the tighter of hours and budget); an account without limits has
    unlimited headroom.  When no account can pay, ``username`` is None and ``reason`` says why
    for each account.
    """
    provider, hours, cost = _requirements(requirements, url)
    today = _today()
    state = _account_state(month, url, today)
    nan = float("nan")
    can, headroom, provider_ok = _decide(
        state, np.array([provider], dtype=object),
        np.array([nan if hours is None else hours]), np.array([nan if cost is None else cost]),
    )
    candidates = state[["username", "provider", "status", "monthly_quota_hours", "monthly_budget_usd",
                        "hours_this_month", "cost_this_month_usd", "hours_left", "budget_left_usd", "ends_on"]].copy()
    candidates["can_pay"] = can[0]
    candidates["headroom_after_job_pct"] = np.where(np.isfinite(headroom[0]), headroom[0] * 100.0, np.nan)
    candidates["reason"] = [
        _why_not(row, provider, hours, cost, bool(ok), today) for (_, row), ok in zip(state.iterrows(), provider_ok[0], strict=True)
    ]
    visible = candidates[candidates["status"] != "archived"].reset_index(drop=True)
    if not can[0].any():
        if state.empty or (state["status"] == "archived").all():
            reason = "no account can pay: there are no accounts (add one on the Accounts page)"
        else:
            reason = "no account can pay: " + "; ".join(f"{u}: {r}" for u, r in zip(visible["username"], visible["reason"], strict=True))
        return AccountChoice(None, reason, expected_hours=hours, expected_cost_usd=cost, candidates=visible)
    best = int(np.argmax(np.where(can[0], headroom[0], -np.inf)))
    row = state.iloc[best]
    n_can = int(can[0].sum())
    need = []
    if hours is not None:
        need.append(f"{hours:.1f} h")
    if cost is not None:
        need.append(f"${cost:,.2f}")
    unchecked = []
    if hours is None and not np.isnan(row["monthly_quota_hours"]):
        unchecked.append("hours")
    if cost is None and not np.isnan(row["monthly_budget_usd"]):
        unchecked.append("cost")
    reason = (
        f"{row['username']} ({row['provider']}): {_limits_text(row)}"
        + (f"; the job needs {' and '.join(need)}" if need else "")
        + f"; the most headroom of {n_can} account{'s' if n_can != 1 else ''} that can pay"
        + (f" (the job's {' and '.join(unchecked)} not given: only checked that some is left)" if unchecked else "")
    )
    return AccountChoice(
        username=row["username"], reason=reason, provider=row["provider"],
        hours_left=_optional(row["hours_left"]), budget_left_usd=_optional(row["budget_left_usd"]),
        headroom_after_job_pct=_optional(headroom[0, best] * 100.0), expected_hours=hours, expected_cost_usd=cost,
        candidates=visible,
    )


def get_available_account(requirements: Mapping[str, Any] | None = None, *, url: str | None = None) -> dict[str, Any] | None:
    """Seed-compatible: the chosen account as a dict (with ``reason``), or None when none can pay.

    Call :func:`choose_account` to get the reason when none can.
    """
    choice = choose_account(requirements, url=url)
    return choice.as_dict() if choice.ok else None


def paying_accounts(jobs: pd.DataFrame, *, month: str | date | None = None, url: str | None = None) -> pd.DataFrame:
    """For each row of ``jobs`` (e.g. a ranking of platforms) the account that would pay.

    ``jobs`` may have columns ``provider``, ``expected_hours``, ``expected_cost_usd``; adds
    ``paying_account`` (None when none can), ``paying_headroom_after_job_pct`` and ``paying_reason``.
    This is what the Predict & compare page shows.
    """
    n = len(jobs)
    provider = (jobs["provider"].astype(object).where(jobs["provider"].notna(), None).map(
        lambda p: p.lower() if isinstance(p, str) else None).to_numpy(object)
        if "provider" in jobs else np.full(n, None, dtype=object))
    hours = pd.to_numeric(jobs["expected_hours"], errors="coerce").to_numpy(float) if "expected_hours" in jobs else np.full(n, np.nan)
    cost = pd.to_numeric(jobs["expected_cost_usd"], errors="coerce").to_numpy(float) if "expected_cost_usd" in jobs else np.full(n, np.nan)
    if (hours < 0).any():
        raise AccountInputError("expected_hours", "must not be negative")
    if (cost < 0).any():
        raise AccountInputError("expected_cost_usd", "must not be negative")
    out = jobs.copy()
    state = _account_state(month, url, _today())
    if state.empty or n == 0:
        out["paying_account"] = None
        out["paying_headroom_after_job_pct"] = np.nan
        out["paying_reason"] = "no accounts" if state.empty else ""
        return out
    can, headroom, _ = _decide(state, provider, hours, cost)
    score = np.where(can, headroom, -np.inf)
    best = score.argmax(axis=1)
    any_can = can.any(axis=1)
    names = state["username"].to_numpy(object)[best]
    best_headroom = headroom[np.arange(n), best]
    out["paying_account"] = pd.Series(np.where(any_can, names, None), index=out.index, dtype=object)
    out["paying_headroom_after_job_pct"] = np.where(any_can & np.isfinite(best_headroom), best_headroom * 100.0, np.nan)
    limits = pd.Series([_limits_text(state.iloc[i]) for i in range(len(state))]).to_numpy(object)[best]
    out["paying_reason"] = np.where(any_can, "most headroom: " + limits.astype(str), "no active account has room for it")
    return out


# --------------------------------------------------------------------------- techniques (seed shape)


def get_academic_access_techniques(*, url: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """The techniques catalogue in the seed's shape: access techniques and resource optimisations."""
    from fedopt_core import catalog

    frame = catalog.list_techniques(url=url)

    def record(row: Mapping[str, Any], with_savings: bool) -> dict[str, Any]:
        item = {
            "name": row["name"], "description": row["description"], "effectiveness": row["effectiveness"],
            "platforms": list(row["platforms"]), "source_url": row["source_url"],
        }
        if with_savings:
            pct = row["savings_max_pct"]
            has = pct is not None and not pd.isna(pct)
            item["savings"] = f"up to {pct:.0f}%" if has else None
            item["savings_max_pct"] = float(pct) if has else None
        return item

    return {
        "techniques": [record(r, False) for r in frame[frame["kind"] == "access"].to_dict("records")],
        "resource_optimization": [record(r, True) for r in frame[frame["kind"] == "optimisation"].to_dict("records")],
    }


# --------------------------------------------------------------------------- the seed's class


class AccountManager:
    """The Python API over one database (default: the app's).  ``LambdaLabsManager`` is an alias."""

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def __repr__(self) -> str:
        from fedopt_core.db import redact_url

        return f"AccountManager(database_url={redact_url(self.database_url) if self.database_url else None!r})"

    def register_academic_account(self, username: str, api_key: str | None, institution: str | None,
                                  email: str | None, **kwargs: Any) -> bool:
        return register_academic_account(username, api_key, institution, email, url=self.database_url, **kwargs)

    def update_account(self, username: str, **changes: Any) -> None:
        update_account(username, url=self.database_url, **changes)

    def list_accounts(self, *, include_archived: bool = False, month: str | date | None = None) -> pd.DataFrame:
        return list_accounts(include_archived=include_archived, month=month, url=self.database_url)

    def archive(self, username: str) -> None:
        archive_account(username, url=self.database_url)

    def set_status(self, username: str, status: str) -> None:
        set_status(username, status, url=self.database_url)

    def set_api_key(self, username: str, api_key: str) -> str:
        return set_api_key(username, api_key, url=self.database_url)

    def rotate_key(self, new_key: str | bytes | None = None) -> str:
        """Re-encrypt every stored API key with a new secret key."""
        return rotate_secret_key(new_key, url=self.database_url)

    def masked_api_key(self, username: str) -> str | None:
        return masked_api_key(username, url=self.database_url)

    def decrypted_api_key(self, username: str) -> str | None:
        return decrypted_api_key(username, url=self.database_url)

    def add_usage_session(self, username: str, platform: str, started_at: datetime | str,
                          ended_at: datetime | str | None = None, cost_usd: float | None = None,
                          success: bool = True, source: str = "manual", **kwargs: Any) -> int:
        return add_usage_session(username, platform, started_at, ended_at, cost_usd, success, source,
                                 url=self.database_url, **kwargs)

    def list_usage_sessions(self, *, month: str | date | None = None, username: str | None = None) -> pd.DataFrame:
        return list_usage_sessions(month=month, username=username, url=self.database_url)

    def usage_stats(self, username: str, month: str | date | None = None) -> dict[str, Any]:
        return usage_stats(username, month, url=self.database_url)

    def choose_account(self, requirements: Mapping[str, Any] | None = None) -> AccountChoice:
        return choose_account(requirements, url=self.database_url)

    def get_available_account(self, requirements: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return get_available_account(requirements, url=self.database_url)

    def paying_accounts(self, jobs: pd.DataFrame) -> pd.DataFrame:
        return paying_accounts(jobs, url=self.database_url)

    def get_academic_access_techniques(self) -> dict[str, list[dict[str, Any]]]:
        return get_academic_access_techniques(url=self.database_url)


#: The seed's name for the account manager.
LambdaLabsManager = AccountManager
