"""Who is acting, what they may do, and the audit log of what they did.

The acting user is a context variable: the dashboard sets it at the start of every script run
from the signed-in identity (``st.user``), and every core write calls :func:`require`.  When
nothing set it (the CLI, job scripts, a laptop with no sign-in configured) the actor is the
local administrator, as a single-user install expects.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert
from sqlmodel import Session, select

from fedopt_core import db
from fedopt_core.config import get_settings
from fedopt_core.errors import FedoptInputError
from fedopt_core.models import Account, AuditEvent, UserRole, utcnow

ROLES = ("viewer", "member", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}

#: Environment: the ID-token claim that carries a role, and e-mails that are always admin.
ROLE_CLAIM_ENV = "FEDOPT_ROLE_CLAIM"
ADMIN_EMAILS_ENV = "FEDOPT_ADMIN_EMAILS"


@dataclass(frozen=True)
class Actor:
    """A user acting on fedopt."""

    name: str
    role: str
    email: str | None = None
    signed_in: bool = False
    #: Only the identity provider's boolean ``email_verified: true`` makes the e-mail verified.
    email_verified: bool = False
    #: The identity provider's subject (``sub``): stable, and not chosen by the user.
    subject: str | None = None

    def can(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]

    @property
    def identity(self) -> str:
        """Who this is in the audit log and on logged runs: the verified e-mail, else the identity
        provider's subject, else the name.  A display name is chosen by the user ("Ada (admin)"),
        so a signed-in user is never recorded by it alone."""
        if self.email and self.email_verified:
            return self.email.lower()
        if self.subject:
            return f"sub:{self.subject}"
        return self.name

    @property
    def label(self) -> str:
        """The identity with the display name beside it, for pages."""
        return self.identity if self.name in (self.identity, self.email) else f"{self.identity} ({self.name})"


LOCAL_ADMIN = Actor(name="local", role="admin")
#: A process without sign-in that does not hold the secret key (a job machine given DATABASE_URL).
LOCAL_MEMBER = Actor(name="local, without the secret key that opens the stored API keys", role="member")
_current: contextvars.ContextVar[Actor] = contextvars.ContextVar("fedopt_actor", default=LOCAL_ADMIN)


class PermissionDenied(PermissionError):
    """The acting user's role does not allow this action."""

    def __init__(self, actor: Actor, needed: str, action: str) -> None:
        self.actor, self.needed, self.action = actor, needed, action
        super().__init__(f"{action} needs the {needed} role; {actor.label} is a {actor.role}")


def current_actor() -> Actor:
    return _current.get()


def set_actor(actor: Actor) -> None:
    """Set the actor for the rest of this context (a Streamlit script run is one context)."""
    _current.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def holds_a_secret_key() -> bool:
    """Whether this process has a secret key at all (``FEDOPT_SECRET_KEY`` or the key file)."""
    from fedopt_core import crypto

    settings = get_settings()
    return bool(settings.secret_key) or crypto.key_file_path(settings).exists()


def local_actor(*, session: Session | None = None) -> Actor:
    """Who a process without sign-in (the CLI) acts as: the local admin when it holds the secret
    key that opens the stored API keys (``FEDOPT_SECRET_KEY``, or the key file in ``FEDOPT_HOME``),
    else a member, who may log runs but not change roles, accounts, prices or machines.

    So a job machine given only ``DATABASE_URL`` (what ``track()`` needs) cannot make itself an
    admin with ``fedopt roles set``.  The database URL itself still grants what the database role
    grants: give job machines a role that may only add runs (README, "Money safety").
    """
    from fedopt_core import crypto  # only here: importing cryptography is not free

    if not holds_a_secret_key():
        return LOCAL_MEMBER
    with db.use(session) as db_session:
        token = db_session.exec(select(Account.api_key_encrypted).where(Account.api_key_encrypted.is_not(None))).first()  # type: ignore[union-attr]
    if token is None:
        return LOCAL_ADMIN
    try:
        crypto.decrypt_secret(token)
    except crypto.SecretKeyError:
        return LOCAL_MEMBER  # a key, but not the one that locks the stored API keys
    return LOCAL_ADMIN


def require(role: str, action: str = "this action") -> Actor:
    """Raise :class:`PermissionDenied` unless the acting user has at least ``role``."""
    actor = current_actor()
    if not actor.can(role):
        raise PermissionDenied(actor, role, action)
    return actor


def _claimed_role(claims: Mapping[str, Any]) -> str | None:
    claim = os.environ.get(ROLE_CLAIM_ENV)
    if not claim:
        return None
    value = claims.get(claim)
    # Only an exact known role counts; anything else (a list, "superadmin", "") is ignored.
    return value if isinstance(value, str) and value in _RANK else None


def role_for(email: str | None, claims: Mapping[str, Any] | None = None, *, session: Session | None = None) -> str:
    """The role of a signed-in user: the role table first, then the trusted claim, else viewer."""
    if not email:
        return "viewer"
    admins = {e.strip().lower() for e in os.environ.get(ADMIN_EMAILS_ENV, "").split(",") if e.strip()}
    if email.lower() in admins:
        return "admin"
    with db.use(session) as db_session:
        row = db_session.get(UserRole, email.lower())
    if row is not None and row.role in _RANK:
        return row.role
    return _claimed_role(claims or {}) or "viewer"


def actor_from_identity(claims: Mapping[str, Any] | None, *, session: Session | None = None) -> Actor:
    """An Actor from an OpenID Connect identity (``st.user`` as a dict); unverified e-mail = viewer."""
    claims = dict(claims or {})
    email = claims.get("email")
    email = email if isinstance(email, str) and email else None
    # Only a boolean true verifies the e-mail: a string "false", or no claim at all, does not.
    verified = claims.get("email_verified") is True
    subject = claims.get("sub")
    subject = str(subject) if isinstance(subject, str | int) and str(subject) else None
    name = str(claims.get("name") or email or subject or "unknown")
    return Actor(
        name=name,
        role=role_for(email if verified else None, claims, session=session),
        email=email,
        signed_in=True,
        email_verified=verified,
        subject=subject,
    )


def set_role(email: str, role: str, *, session: Session | None = None) -> None:
    """Give a user a role (admin only)."""
    if role not in _RANK:
        raise FedoptInputError("role", f"{role!r} is not one of {', '.join(ROLES)}")
    if not email or "@" not in email:
        raise FedoptInputError("email", "a user's e-mail address is required")
    require("admin", "changing roles")
    with db.use(session) as db_session:
        row = db_session.get(UserRole, email.lower())
        previous = row.role if row is not None else None
        row = row or UserRole(email=email.lower())
        row.role, row.updated_at = role, utcnow()
        db_session.add(row)
        record("role.set", email.lower(), {"role": role, "previous": previous}, session=db_session)


def list_roles(*, session: Session | None = None) -> pd.DataFrame:
    with db.use(session) as db_session:
        rows = db_session.exec(select(UserRole).order_by(UserRole.email)).all()
        return pd.DataFrame(
            [{"email": r.email, "role": r.role, "updated_at": r.updated_at} for r in rows],
            columns=["email", "role", "updated_at"],
        )


# --------------------------------------------------------------------------- audit log


def record(
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    *,
    session: Session | None = None,
) -> None:
    """Append an audit event by the acting user; pass ``session`` to commit with the change itself."""
    with db.use(session) as db_session:
        db_session.add(AuditEvent(**audit_values(action, target, details)))


def record_on(
    connection: Connection, action: str, target: str | None = None, details: Mapping[str, Any] | None = None
) -> None:
    """:func:`record` inside a Core connection's transaction (a batch of an import commits with its row)."""
    connection.execute(insert(AuditEvent.__table__).values(at=utcnow(), **audit_values(action, target, details)))


def audit_values(action: str, target: str | None, details: Mapping[str, Any] | None) -> dict[str, Any]:
    """An audit row's fields for the acting user: the identity, the display name beside it."""
    actor = current_actor()
    details = dict(details or {})
    if actor.name != actor.identity:
        details.setdefault("actor_name", actor.name)  # shown beside the identity, never instead of it
    return {"actor": actor.identity, "action": action, "target": target, "details": details}


def audit_log(
    *, since: datetime | None = None, action: str | None = None, session: Session | None = None
) -> pd.DataFrame:
    """The audit log, newest first."""
    with db.use(session) as db_session:
        query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if action:
            query = query.where(AuditEvent.action.startswith(action))
        rows = db_session.exec(query).all()
        return pd.DataFrame(
            [
                {"at": r.at, "actor": r.actor, "action": r.action, "target": r.target, "details": r.details}
                for r in rows
            ],
            columns=["at", "actor", "action", "target", "details"],
        )
