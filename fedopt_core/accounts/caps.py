"""Spending caps, checked before a machine is started: the account's monthly budget and its hourly cap.

A launch is refused when the upper bound of what it may cost would take the month past the
budget, or when its hourly price added to the account's running machines would pass the hourly
cap.  The figures are in the refusal; an admin may launch anyway with a reason (the launch records
it, and the audit log has it).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from fedopt_core import db
from fedopt_core.accounts.fields import get_account, read_username
from fedopt_core.accounts.usage import usage_stats
from fedopt_core.formatting import usd
from fedopt_core.models import UsageSession

__all__ = ["ASSUMED_HOURS", "CapCheck", "check_launch"]

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
