"""Accounts and academic allocations: encrypted API keys, usage sessions, quotas, who pays.

An account (a grant, a person, a course allocation, a cloud login) may carry a monthly hour quota,
a monthly budget in USD and an end date; one with neither quota nor budget has no limit.

Usage is a list of sessions (see :mod:`.usage`) (a span of time an account paid for a machine).  Every statistic
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

import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session, select

from fedopt_core import auth, crypto, db
from fedopt_core.accounts.eligibility import check_institutional_email
from fedopt_core.accounts.fields import (
    MAX_TEXT,
    AccountInputError,
    get_account,
    read_amount,
    read_day,
    read_text,
    read_username,
    utc_today,
)
from fedopt_core.accounts.usage import with_month_usage
from fedopt_core.models import Account, utcnow
from fedopt_core.schema import CONTROL_CHARACTERS

logger = logging.getLogger(__name__)

STATUSES = ("active", "suspended", "expired", "archived")


# --------------------------------------------------------------------------- accounts


def _audit(session: Session, action: str, target: str, **details: Any) -> None:
    # Only field names and plain facts go into the audit trail, never a key or a token.
    auth.record(action, target, details, session=session)


def _read_flag(value: Any, field_name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise AccountInputError(field_name, "must be true or false")


def _check_api_key(api_key: Any) -> str | None:
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise AccountInputError("api_key", "must be text")
    key = api_key.strip()
    if not key:
        return None
    # The message never repeats the key: it may be a real one pasted into the wrong box.
    if len(key) < 8 or any(c.isspace() for c in key) or CONTROL_CHARACTERS.search(key):
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
    max_usd_per_hour: float | None = None,
    auto_terminate: bool | None = None,
    ends_on: date | str | None = None,
    project: str | None = None,
    notes: str | None = None,
    status: str | None = None,
    session: Session | None = None,
) -> bool:
    """Add an account, or update the one with this username (never a duplicate).

    Returns True when a new account was created, False when an existing one was updated.  On
    update, arguments left as None keep the stored value (use :func:`update_account` to clear a
    limit).  The API key is encrypted before it reaches the database.
    """
    auth.require("admin", "adding or changing an account")
    name = read_username(username)
    key = _check_api_key(api_key)
    check = check_institutional_email(email)
    values: dict[str, Any] = {
        "institution": read_text(institution, "institution", max_len=200),
        "monthly_quota_hours": read_amount(monthly_quota_hours, "monthly_quota_hours"),
        "monthly_budget_usd": read_amount(monthly_budget_usd, "monthly_budget_usd"),
        "max_usd_per_hour": read_amount(max_usd_per_hour, "max_usd_per_hour"),
        "auto_terminate": _read_flag(auto_terminate, "auto_terminate"),
        "ends_on": read_day(ends_on, "ends_on"),
        "project": read_text(project, "project", max_len=200),
        "notes": read_text(notes, "notes", max_len=MAX_TEXT, allow_newlines=True),
    }
    provider_name = (read_text(provider, "provider", required=True) or "").lower()
    if status is not None and status not in STATUSES:
        raise AccountInputError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    with db.use(session) as db_session:
        token = _encrypt_beside_the_stored(db_session, key) if key else None
        account = db_session.exec(select(Account).where(Account.username == name)).first()
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
        account.auto_terminate = bool(account.auto_terminate)  # not given on creation: off
        if check.email is not None or created:
            account.email = check.email
            account.email_verified = check.verified
            account.email_check_reason = check.reason
        if token is not None:
            account.api_key_encrypted = token
            account.api_key_last4 = crypto.last4(key)  # type: ignore[arg-type]
            account.api_key_rotated_at = utcnow()
        account.updated_at = utcnow()
        db_session.add(account)
        changed = sorted(k for k, v in values.items() if v is not None) + (["api_key"] if token else [])
        _audit(db_session, "account.create" if created else "account.update", name, fields=changed)
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
    max_usd_per_hour: Any = _UNSET,
    auto_terminate: Any = _UNSET,
    ends_on: Any = _UNSET,
    project: Any = _UNSET,
    notes: Any = _UNSET,
    session: Session | None = None,
) -> None:
    """Change some fields of an account; here None clears a field (e.g. removes a quota)."""
    auth.require("admin", "changing an account")
    name = read_username(username)
    parsers = {
        "institution": lambda v: read_text(v, "institution", max_len=200),
        "provider": lambda v: (read_text(v, "provider", required=True) or "").lower(),
        "monthly_quota_hours": lambda v: read_amount(v, "monthly_quota_hours"),
        "monthly_budget_usd": lambda v: read_amount(v, "monthly_budget_usd"),
        "max_usd_per_hour": lambda v: read_amount(v, "max_usd_per_hour"),
        "auto_terminate": lambda v: bool(_read_flag(v, "auto_terminate")),
        "ends_on": lambda v: read_day(v, "ends_on"),
        "project": lambda v: read_text(v, "project", max_len=200),
        "notes": lambda v: read_text(v, "notes", max_len=MAX_TEXT, allow_newlines=True),
    }
    given = {
        "institution": institution,
        "provider": provider,
        "monthly_quota_hours": monthly_quota_hours,
        "monthly_budget_usd": monthly_budget_usd,
        "max_usd_per_hour": max_usd_per_hour,
        "auto_terminate": auto_terminate,
        "ends_on": ends_on,
        "project": project,
        "notes": notes,
    }
    changes = {k: parsers[k](v) for k, v in given.items() if v is not _UNSET}
    check = check_institutional_email(email) if email is not _UNSET else None
    with db.use(session) as db_session:
        account = get_account(db_session, name)
        for attr, value in changes.items():
            setattr(account, attr, value)
        if check is not None:
            account.email, account.email_verified, account.email_check_reason = (
                check.email,
                check.verified,
                check.reason,
            )
        account.updated_at = utcnow()
        db_session.add(account)
        _audit(db_session, "account.update", name, fields=sorted(changes) + (["email"] if check else []))


def set_status(username: str, status: str, *, session: Session | None = None) -> None:
    """Set an account's status (active, suspended, expired, archived); its history stays."""
    auth.require("admin", "changing an account's status")
    name = read_username(username)
    if status not in STATUSES:
        raise AccountInputError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    with db.use(session) as db_session:
        account = get_account(db_session, name)
        old = account.status
        account.status = status
        account.updated_at = utcnow()
        db_session.add(account)
        _audit(db_session, "account.status", name, old=old, new=status)


def _unopenable(db_session: Session) -> list[Account]:
    """Accounts whose stored API key no configured secret key opens."""
    stored = db_session.exec(select(Account).where(Account.api_key_encrypted.is_not(None))).all()  # type: ignore[union-attr]
    bad = []
    for account in stored:
        try:
            crypto.decrypt_secret(account.api_key_encrypted)  # type: ignore[arg-type]
        except crypto.DecryptionError:
            bad.append(account)
    return bad


def _encrypt_beside_the_stored(db_session: Session, key: str, *, replacing: int | None = None) -> bytes:
    """A token for ``key``, refused while stored keys do not open under the current secret key:
    a deleted key file or a changed FEDOPT_SECRET_KEY would otherwise leave two keys' tokens
    mixed, and no rotation could open both."""
    bad = [a for a in _unopenable(db_session) if a.id != replacing]
    if bad:
        raise crypto.SecretKeyError(
            f"{len(bad)} stored API key(s) ({', '.join(a.username for a in bad[:3])}) do not open with "
            f"{crypto.key_source()}: the key file was deleted or FEDOPT_SECRET_KEY changed. Put the old "
            "secret key back; if it is lost, `fedopt accounts forget-keys` removes the keys it locked so "
            "they can be entered again. Nothing was stored."
        )
    return crypto.encrypt_secret(key)


def forget_unopenable_keys(*, session: Session | None = None) -> list[str]:
    """Remove the stored API keys no configured secret key opens (the key that locked them is
    lost); returns the accounts that need their key entered again.  Audited."""
    auth.require("admin", "removing API keys")
    with db.use(session) as db_session:
        bad = _unopenable(db_session)
        for account in bad:
            account.api_key_encrypted = None
            account.api_key_last4 = None
            account.updated_at = utcnow()
            db_session.add(account)
        names = [a.username for a in bad]
        if names:
            _audit(db_session, "secret_key.forget", "accounts", accounts=names)
    return names


def archive_account(username: str, *, session: Session | None = None) -> None:
    """Archive an account: it can no longer be chosen to pay; its sessions stay in every report."""
    set_status(username, "archived", session=session)


def set_api_key(username: str, api_key: str, *, session: Session | None = None) -> str:
    """Replace an account's API key (e.g. after rotating it at the provider); returns the mask."""
    auth.require("admin", "replacing an API key")
    name = read_username(username)
    key = _check_api_key(api_key)
    if key is None:
        raise AccountInputError("api_key", "is required")
    with db.use(session) as db_session:
        account = get_account(db_session, name)
        token = _encrypt_beside_the_stored(db_session, key, replacing=account.id)
        account.api_key_encrypted = token
        account.api_key_last4 = crypto.last4(key)
        account.api_key_rotated_at = account.updated_at = utcnow()
        db_session.add(account)
        _audit(db_session, "account.api_key", name)
        return crypto.mask_secret(account.api_key_last4)


def masked_api_key(username: str, *, session: Session | None = None) -> str | None:
    """``••••1234`` for the account's key, or None when it has no key."""
    with db.use(session) as db_session:
        account = get_account(db_session, read_username(username))
        return crypto.mask_secret(account.api_key_last4) if account.api_key_encrypted else None


def decrypted_api_key(username: str, *, session: Session | None = None) -> str | None:
    """The plain API key, for in-process use only (the Lambda client); never show or log it."""
    auth.require("admin", "using an account's API key")
    with db.use(session) as db_session:
        token = get_account(db_session, read_username(username)).api_key_encrypted
    return crypto.decrypt_secret(token) if token else None


def rotate_secret_key(new_key: str | bytes | None = None, *, session: Session | None = None) -> str:
    """Re-encrypt every stored API key with a new secret key, in one transaction.

    Returns a one-line instruction for the operator.  Without ``FEDOPT_SECRET_KEY`` a random key
    replaces the key file; with it, ``new_key`` is required and the variable must be set to it.
    """
    auth.require("admin", "rotating the secret key")
    rotation = crypto.prepare_rotation(new_key)
    try:
        with db.use(session) as db_session:
            accounts = db_session.exec(select(Account).where(Account.api_key_encrypted.is_not(None))).all()  # type: ignore[union-attr]
            for account in accounts:
                account.api_key_encrypted = rotation.rotate(account.api_key_encrypted)  # type: ignore[arg-type]
                db_session.add(account)
            _audit(db_session, "secret_key.rotate", "accounts", re_encrypted=len(accounts))
    except BaseException:
        rotation.abandon()
        raise
    instruction = rotation.finish()
    logger.info("re-encrypted %d API keys with a new secret key", len(accounts))
    return f"re-encrypted {len(accounts)} API key(s); {instruction}"


ACCOUNT_COLUMNS = [
    "username",
    "provider",
    "institution",
    "email",
    "eligibility",
    "email_check_reason",
    "api_key",
    "monthly_quota_hours",
    "monthly_budget_usd",
    "max_usd_per_hour",
    "auto_terminate",
    "ends_on",
    "status",
    "stored_status",
    "project",
    "notes",
    "hours_this_month",
    "cost_this_month_usd",
    "hours_left",
    "budget_left_usd",
    "api_key_rotated_at",
    "created_at",
]


def accounts_frame(session: Session) -> pd.DataFrame:
    """Every account as a row (keys only as 'has a key' and the last four characters)."""
    rows = session.exec(select(Account).order_by(Account.username)).all()
    return pd.DataFrame(
        [
            {
                "account_id": a.id,
                "username": a.username,
                "provider": a.provider,
                "institution": a.institution,
                "email": a.email,
                "email_verified": bool(a.email_verified),
                "email_check_reason": a.email_check_reason,
                "has_api_key": a.api_key_encrypted is not None,
                "api_key_last4": a.api_key_last4,
                "monthly_quota_hours": a.monthly_quota_hours,
                "monthly_budget_usd": a.monthly_budget_usd,
                "max_usd_per_hour": a.max_usd_per_hour,
                "auto_terminate": bool(a.auto_terminate),
                "ends_on": a.ends_on,
                "stored_status": a.status,
                "project": a.project,
                "notes": a.notes,
                "api_key_rotated_at": a.api_key_rotated_at,
                "created_at": a.created_at,
            }
            for a in rows
        ],
        columns=[
            "account_id",
            "username",
            "provider",
            "institution",
            "email",
            "email_verified",
            "email_check_reason",
            "has_api_key",
            "api_key_last4",
            "monthly_quota_hours",
            "monthly_budget_usd",
            "max_usd_per_hour",
            "auto_terminate",
            "ends_on",
            "stored_status",
            "project",
            "notes",
            "api_key_rotated_at",
            "created_at",
        ],
    )


def list_accounts(
    *, include_archived: bool = False, month: str | date | None = None, session: Session | None = None
) -> pd.DataFrame:
    """Accounts with this month's usage and what is left; API keys only masked."""
    with db.use(session) as db_session:
        accounts = accounts_frame(db_session)
    today = utc_today()
    frame = with_month_usage(accounts, month, session, today)
    if not include_archived:
        frame = frame[frame["stored_status"] != "archived"]
    frame = frame.assign(
        api_key=np.where(frame["has_api_key"], crypto.MASK + frame["api_key_last4"].fillna(""), ""),
        eligibility=np.where(frame["email_verified"], "domain recognised", "domain not recognised"),
    )
    return frame[ACCOUNT_COLUMNS].reset_index(drop=True)
