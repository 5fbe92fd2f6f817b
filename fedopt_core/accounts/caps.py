"""Spending caps, checked before a machine is started: the account's monthly budget and its hourly cap.

A launch is refused when the upper bound of what it may cost would take the month past the
budget, or when its hourly price added to the account's running machines would pass the hourly
cap.  The figures are in the refusal; an admin may launch anyway with a reason (the launch records
it, and the audit log has it).  :func:`budget_alerts` says which accounts are past 50%, 80% or
100% of their budget this month, with the month-end forecast, each threshold recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from fedopt_core import auth, db
from fedopt_core.accounts.fields import get_account, read_username
from fedopt_core.accounts.months import month_bounds, month_label
from fedopt_core.accounts.usage import usage_stats
from fedopt_core.formatting import usd
from fedopt_core.models import Account, AppState, UsageSession, utcnow

__all__ = ["ALERT_THRESHOLDS", "ASSUMED_HOURS", "BudgetAlert", "CapCheck", "budget_alerts", "check_launch"]

#: Hours a launch is checked for when the job's predicted upper bound is not given.
ASSUMED_HOURS = 1.0


@dataclass(frozen=True)
class CapCheck:
    """What a launch would do to the account's caps; ``refused`` says why not (None: within both)."""

    refused: str | None
    running_usd_per_hour: float
    month_cost_usd: float
    launch_cost_upper_usd: float
    hours_checked: float


def check_launch(
    username: str, price_per_hour_usd: float, expected_hours: float | None, *, session: Session | None = None
) -> CapCheck:
    """Would one more machine at ``price_per_hour_usd`` for ``expected_hours`` (the job's upper
    bound; :data:`ASSUMED_HOURS` when unknown) stay within the account's budget and hourly cap?"""
    name = read_username(username)
    hours = float(expected_hours) if expected_hours is not None and expected_hours > 0 else ASSUMED_HOURS
    with db.use(session) as db_session:
        account = get_account(db_session, name)
        budget, cap = account.monthly_budget_usd, account.max_usd_per_hour
        running = db_session.exec(
            select(UsageSession.price_per_hour_usd).where(
                UsageSession.account_id == account.id, UsageSession.ended_at.is_(None)
            )
        ).all()
        month_cost = float(usage_stats(name, session=db_session)["monthly_cost_usd"])
    running_rate = float(sum(p for p in running if p is not None))
    launch_cost = price_per_hour_usd * hours
    assumed = "" if expected_hours else f" ({ASSUMED_HOURS:g} h assumed: give the job's predicted upper bound)"
    refused = None
    if cap is not None and running_rate + price_per_hour_usd > cap + 1e-9:
        refused = (
            f"{usd(price_per_hour_usd)}/h more with {usd(running_rate)}/h already running would pass the "
            f"account's cap of {usd(cap)}/h"
        )
    elif budget is not None and month_cost + launch_cost > budget + 1e-9:
        refused = (
            f"{usd(month_cost)} spent this month plus up to {usd(launch_cost)} for this launch "
            f"({hours:g} h at {usd(price_per_hour_usd)}/h{assumed}) would pass the monthly budget of {usd(budget)}"
        )
    return CapCheck(refused, running_rate, month_cost, launch_cost, hours)


# ---------------------------------------------------------------- alerts

#: Shares of a monthly budget that raise an alert, each once per account and month.
ALERT_THRESHOLDS = (0.5, 0.8, 1.0)
_ALERTS_KEY = "budget_alerts"


@dataclass(frozen=True)
class BudgetAlert:
    """An account this month at or past one of :data:`ALERT_THRESHOLDS` of its budget."""

    username: str
    month: str
    threshold: float
    spent_usd: float
    budget_usd: float
    forecast_usd: float  # this month's spending at its pace so far

    @property
    def message(self) -> str:
        return (
            f"{self.username}: {usd(self.spent_usd)} of {usd(self.budget_usd)} spent in {self.month} "
            f"(past {self.threshold:.0%}); at this pace the month ends at {usd(self.forecast_usd)}"
        )


def budget_alerts(*, now: datetime | None = None, session: Session | None = None) -> list[BudgetAlert]:
    """Each active account with a budget past a threshold this month (its highest), with the
    month-end forecast.  A threshold crossed for the first time is recorded in the audit log, once."""
    now = now or utcnow()
    start, end = month_bounds(now.date())
    elapsed = max((now - start).total_seconds(), 3600.0) / (end - start).total_seconds()
    label = month_label(now.date())
    alerts = []
    with db.use(session) as db_session:
        budgets = db_session.exec(
            select(Account.username, Account.monthly_budget_usd).where(
                Account.monthly_budget_usd.is_not(None),
                Account.status == "active",  # type: ignore[union-attr]
            )
        ).all()
        state = db_session.get(AppState, _ALERTS_KEY) or AppState(key=_ALERTS_KEY, value={})
        seen = dict(state.value)
        for name, budget in budgets:
            if not budget:
                continue
            spent = float(usage_stats(name, month=now.date(), session=db_session)["monthly_cost_usd"])
            crossed = [t for t in ALERT_THRESHOLDS if spent >= t * budget]
            if not crossed:
                continue
            alerts.append(BudgetAlert(name, label, crossed[-1], spent, float(budget), spent / min(elapsed, 1.0)))
            key = f"{name}\x1f{label}"
            new = [t for t in crossed if t not in seen.get(key, [])]
            for threshold in new:
                auth.record("budget.alert", name, {"month": label, "threshold": threshold, "spent_usd": spent},
                            session=db_session)  # fmt: skip
            if new:
                seen[key] = sorted({*seen.get(key, []), *new})
        if seen != state.value:
            state.value, state.updated_at = seen, utcnow()
            db_session.add(state)
    return alerts
