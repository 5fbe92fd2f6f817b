"""Machines that outlive their job, and accounts past a hard cap: warn, and terminate where agreed.

``fedopt lambda enforce`` runs :func:`enforce` once (from cron, say); ``fedopt lambda watch`` runs it
every few minutes.  For each Lambda account with an API key it first syncs with Lambda (so what
it sees is what bills), then:

* a machine running longer than its launch's predicted upper bound (``expected_hours`` on the
  launch) is reported; it is terminated when the account opted in (``auto_terminate``);
* every machine of an account past a hard cap (this month's cost at or over its budget, or its
  running machines over its USD-per-hour cap) is terminated: that is what a hard cap means.

``dry_run`` says what it would do and does nothing.  The clock is a parameter, so tests move it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, select

from fedopt_core import auth, db
from fedopt_core.accounts.usage import usage_stats
from fedopt_core.cloud import lambda_ops
from fedopt_core.formatting import usd
from fedopt_core.models import Account, LaunchIntent, UsageSession, utcnow

__all__ = ["Action", "EnforceReport", "enforce"]


@dataclass(frozen=True)
class Action:
    """One finding: which machine, of which account, why, and what was done."""

    account: str
    instance_id: str
    reason: str
    action: str  # "warned", "terminated", "would terminate", "could not terminate: ..."


@dataclass
class EnforceReport:
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # accounts that could not be checked, and why

    @property
    def ok(self) -> bool:
        return not self.errors


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def enforce(
    username: str | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    client_factory: lambda_ops.ClientFactory | None = None,
    session: Session | None = None,
) -> EnforceReport:
    """Check every Lambda account with a key (or ``username``) once; see the module docstring."""
    auth.require("admin", "enforcing spending caps")
    now = now or utcnow()
    report = EnforceReport()
    with db.use(session) as db_session:
        names = db_session.exec(
            select(Account.username).where(
                Account.provider == lambda_ops.PROVIDER, Account.api_key_encrypted.is_not(None)
            )  # type: ignore[union-attr]
        ).all()
    for name in [username] if username else names:
        synced = lambda_ops.sync(name, force=True, client_factory=client_factory, session=session)
        if not synced.ok:
            report.errors.append(f"{name}: could not sync with Lambda ({synced.error}); nothing done")
            continue
        for instance_id, reason, terminate in _findings(name, now, session):
            action = "warned"
            if terminate:
                action = (
                    "would terminate" if dry_run else _terminate(name, instance_id, reason, client_factory, session)
                )
            report.actions.append(Action(name, instance_id, reason, action))
    return report


def _findings(username: str, now: datetime, session: Session | None) -> list[tuple[str, str, bool]]:
    """(instance id, why, terminate?) for each running machine of the account that needs a word."""
    with db.use(session) as db_session:
        account = db_session.exec(select(Account).where(Account.username == username)).one()
        running = db_session.exec(
            select(UsageSession).where(
                UsageSession.account_id == account.id,
                UsageSession.provider == lambda_ops.PROVIDER,
                UsageSession.instance_id.is_not(None),
                UsageSession.ended_at.is_(None),
            )
        ).all()
        intents = db_session.exec(select(LaunchIntent).where(LaunchIntent.account_id == account.id)).all()
        budget, cap, opted_in = account.monthly_budget_usd, account.max_usd_per_hour, bool(account.auto_terminate)
        month = usage_stats(username, month=now.date(), session=db_session)
    expected = {i: intent.expected_hours for intent in intents for i in intent.instance_ids}
    rate = sum(r.price_per_hour_usd or 0.0 for r in running)
    capped = None
    if budget is not None and month["monthly_cost_usd"] >= budget:
        capped = f"the account's month is at {usd(month['monthly_cost_usd'])}, its budget is {usd(budget)}"
    elif cap is not None and rate > cap + 1e-9:
        capped = f"its machines run at {usd(rate)}/h together, over the account's cap of {usd(cap)}/h"
    findings = []
    for row in running:
        hours = (now - _aware(row.started_at)).total_seconds() / 3600.0
        bound = expected.get(row.instance_id)
        if capped:
            findings.append((row.instance_id, f"hard cap: {capped}", True))
        elif bound is not None and hours > bound:
            why = f"running {hours:.1f} h, past its job's predicted upper bound of {bound:g} h"
            findings.append((row.instance_id, why, opted_in))
    return findings


def _terminate(
    username: str,
    instance_id: str,
    reason: str,
    client_factory: lambda_ops.ClientFactory | None,
    session: Session | None,
) -> str:
    try:
        lambda_ops.terminate(username, [instance_id], client_factory=client_factory, session=session)
    except lambda_ops.LambdaOperationError as exc:
        return f"could not terminate: {exc}"
    auth.record("instance.enforce", instance_id, {"account": username, "reason": reason}, session=session)
    return "terminated"
