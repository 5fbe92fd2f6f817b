"""Leases in the database: one holder of a named job at a time, across threads, processes and hosts.

A lease row (not a file lock, so it works for several dashboard processes on one PostgreSQL) is
taken with one conditional UPDATE or an INSERT the primary key makes exclusive, renewed while the
holder works, and free once it expires, or at once when its holder was a process of this host
that is gone (its pid is checked).  The retrain (:mod:`.training`) is the one user today.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fedopt_core import db
from fedopt_core.models import Lease, utcnow

LEASE_TTL = timedelta(minutes=10)


def new_holder_id() -> str:
    """A holder name unique to this thread of this process: ``host:pid:thread:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def holder_alive(holder: str) -> bool:
    """Whether a lease holder (``host:pid:...``) may still be running: a process on this host is
    checked by its pid; one elsewhere is trusted until its lease expires."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


def acquire_lease(name: str, holder: str, ttl: timedelta = LEASE_TTL) -> bool:
    """Take (or renew) the named lease; False when someone else holds an unexpired one.

    One conditional UPDATE, then an INSERT that the primary key makes exclusive: atomic on
    SQLite and PostgreSQL alike, with no read-then-write race.  In transactions of its own, on the
    configured database: other processes must see a lease the moment it is taken.  A lease whose
    holder was a process of this host that is gone (killed with -9, say) is taken over at once.
    """
    now = utcnow()
    with db.session_scope() as db_session:
        taken = db_session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.expires_at < now) | (Lease.holder == holder))
            .values(holder=holder, acquired_at=now, expires_at=now + ttl)
        ).rowcount
        if taken:
            return True
        current = db_session.get(Lease, name)
        if current is not None and not holder_alive(current.holder):
            # Conditional on the dead holder: two processes taking over at once cannot both win.
            return bool(
                db_session.execute(
                    update(Lease)
                    .where(Lease.name == name, Lease.holder == current.holder)
                    .values(holder=holder, acquired_at=now, expires_at=now + ttl)
                ).rowcount
            )
        if current is not None:
            return False
    try:
        with db.session_scope() as db_session:
            db_session.add(Lease(name=name, holder=holder, acquired_at=now, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False


def release_lease(name: str, holder: str) -> None:
    with db.session_scope() as db_session:
        row = db_session.get(Lease, name)
        if row is not None and row.holder == holder:
            db_session.delete(row)


def lease_holder(name: str = "retrain", *, session: Session | None = None) -> str | None:
    """Who holds the unexpired lease, or None."""
    with db.use(session) as db_session:
        row = db_session.get(Lease, name)
        if row is None:
            return None
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=utcnow().tzinfo)
        return row.holder if expires > utcnow() and holder_alive(row.holder) else None
