"""Which account would pay for a job: the active, unexpired account with the most headroom, and why.

Headroom is the fraction of a monthly limit (hours or budget) left after the job; an account
without limits has unlimited headroom.  When none can pay, the reason says why for each account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session

from fedopt_core import db
from fedopt_core.accounts.fields import AccountInputError, read_amount, read_text, utc_today
from fedopt_core.accounts.registry import accounts_frame
from fedopt_core.accounts.usage import find_platform, with_month_usage

REQUIREMENT_KEYS = frozenset({"provider", "expected_hours", "expected_cost_usd", "platform", "price_per_hour_usd"})


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
            "username": self.username,
            "reason": self.reason,
            "provider": self.provider,
            "hours_left": self.hours_left,
            "budget_left_usd": self.budget_left_usd,
            "headroom_after_job_pct": self.headroom_after_job_pct,
            "expected_hours": self.expected_hours,
            "expected_cost_usd": self.expected_cost_usd,
        }


def _requirements(
    requirements: Mapping[str, Any] | None, session: Session | None
) -> tuple[str | None, float | None, float | None]:
    req = dict(requirements or {})
    unknown = set(req) - REQUIREMENT_KEYS
    if unknown:
        raise AccountInputError(
            "requirements", f"unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(REQUIREMENT_KEYS))}"
        )
    provider = read_text(req.get("provider"), "provider")
    hours = read_amount(req.get("expected_hours"), "expected_hours")
    cost = read_amount(req.get("expected_cost_usd"), "expected_cost_usd")
    price = read_amount(req.get("price_per_hour_usd"), "price_per_hour_usd")
    platform_name = read_text(req.get("platform"), "platform")
    if cost is None and hours is not None and price is None and platform_name:
        with db.use(session) as db_session:
            found = find_platform(db_session, platform_name, provider)
            price = found.price_per_hour_usd if found is not None else None
            if provider is None and found is not None:
                provider = found.provider
    if cost is None and hours is not None and price is not None:
        cost = hours * price
    return (provider.lower() if provider else None), hours, cost


def _account_state(month: str | date | None, session: Session | None, today: date) -> pd.DataFrame:
    with db.use(session) as db_session:
        accounts = accounts_frame(db_session)
    state = with_month_usage(accounts, month, session, today)
    # Least used first, so that among equal headroom (e.g. several unlimited accounts) the idlest wins.
    return state.sort_values(["hours_this_month", "username"], kind="stable").reset_index(drop=True)


def _decide(
    state: pd.DataFrame, provider: np.ndarray, hours: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
        frac_c = np.where(
            np.isnan(budget), np.inf, (budget_left - np.nan_to_num(c)) / np.where(budget > 0, budget, 1.0)
        )
    headroom = np.minimum(frac_h, frac_c)
    can = usable[None, :] & provider_ok & hours_ok & budget_ok
    return can, headroom, provider_ok


def _why_not(
    row: pd.Series, provider: str | None, hours: float | None, cost: float | None, provider_ok: bool, today: date
) -> str:
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


def choose_account(
    requirements: Mapping[str, Any] | None = None, *, month: str | date | None = None, session: Session | None = None
) -> AccountChoice:
    """The active, unexpired account with the most headroom that can cover the job, with the reason.

    ``requirements``: optional ``provider``, ``expected_hours``, ``expected_cost_usd`` (or
    ``platform``/``price_per_hour_usd`` to price the hours).  Headroom is the fraction of a monthly
    limit left after the job (the tighter of hours and budget); an account without limits has
    unlimited headroom.  When no account can pay, ``username`` is None and ``reason`` says why
    for each account.
    """
    provider, hours, cost = _requirements(requirements, session)
    today = utc_today()
    state = _account_state(month, session, today)
    nan = float("nan")
    can, headroom, provider_ok = _decide(
        state,
        np.array([provider], dtype=object),
        np.array([nan if hours is None else hours]),
        np.array([nan if cost is None else cost]),
    )
    candidates = state[
        [
            "username",
            "provider",
            "status",
            "monthly_quota_hours",
            "monthly_budget_usd",
            "hours_this_month",
            "cost_this_month_usd",
            "hours_left",
            "budget_left_usd",
            "ends_on",
        ]
    ].copy()
    candidates["can_pay"] = can[0]
    candidates["headroom_after_job_pct"] = np.where(np.isfinite(headroom[0]), headroom[0] * 100.0, np.nan)
    candidates["reason"] = [
        _why_not(row, provider, hours, cost, bool(ok), today)
        for (_, row), ok in zip(state.iterrows(), provider_ok[0], strict=True)
    ]
    visible = candidates[candidates["status"] != "archived"].reset_index(drop=True)
    if not can[0].any():
        if state.empty or (state["status"] == "archived").all():
            reason = "no account can pay: there are no accounts (add one on the Accounts page)"
        else:
            reason = "no account can pay: " + "; ".join(
                f"{u}: {r}" for u, r in zip(visible["username"], visible["reason"], strict=True)
            )
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
        username=row["username"],
        reason=reason,
        provider=row["provider"],
        hours_left=_optional(row["hours_left"]),
        budget_left_usd=_optional(row["budget_left_usd"]),
        headroom_after_job_pct=_optional(headroom[0, best] * 100.0),
        expected_hours=hours,
        expected_cost_usd=cost,
        candidates=visible,
    )


def paying_accounts(
    jobs: pd.DataFrame, *, month: str | date | None = None, session: Session | None = None
) -> pd.DataFrame:
    """For each row of ``jobs`` (e.g. a ranking of platforms) the account that would pay.

    ``jobs`` may have columns ``provider``, ``expected_hours``, ``expected_cost_usd``; adds
    ``paying_account`` (None when none can), ``paying_headroom_after_job_pct`` and ``paying_reason``.
    This is what the Predict & compare page shows.
    """
    n = len(jobs)
    provider = (
        jobs["provider"]
        .astype(object)
        .where(jobs["provider"].notna(), None)
        .map(lambda p: p.lower() if isinstance(p, str) else None)
        .to_numpy(object)
        if "provider" in jobs
        else np.full(n, None, dtype=object)
    )
    hours = (
        pd.to_numeric(jobs["expected_hours"], errors="coerce").to_numpy(float)
        if "expected_hours" in jobs
        else np.full(n, np.nan)
    )
    cost = (
        pd.to_numeric(jobs["expected_cost_usd"], errors="coerce").to_numpy(float)
        if "expected_cost_usd" in jobs
        else np.full(n, np.nan)
    )
    if (hours < 0).any():
        raise AccountInputError("expected_hours", "must not be negative")
    if (cost < 0).any():
        raise AccountInputError("expected_cost_usd", "must not be negative")
    out = jobs.copy()
    state = _account_state(month, session, utc_today())
    if state.empty or n == 0:
        out["paying_account"] = None
        out["paying_headroom_after_job_pct"] = np.nan
        out["paying_reason"] = "no accounts" if state.empty else ""
        return out
    can, headroom, provider_ok = _decide(state, provider, hours, cost)
    score = np.where(can, headroom, -np.inf)
    best = score.argmax(axis=1)
    any_can = can.any(axis=1)
    names = state["username"].to_numpy(object)[best]
    best_headroom = headroom[np.arange(n), best]
    out["paying_account"] = pd.Series(np.where(any_can, names, None), index=out.index, dtype=object)
    out["paying_headroom_after_job_pct"] = np.where(any_can & np.isfinite(best_headroom), best_headroom * 100.0, np.nan)
    limits = pd.Series([_limits_text(state.iloc[i]) for i in range(len(state))]).to_numpy(object)[best]
    out["paying_reason"] = np.where(
        any_can, "most headroom: " + limits.astype(str), _no_payer_reasons(state, provider, hours, cost, provider_ok)
    )
    return out


def _no_payer_reasons(
    state: pd.DataFrame, provider: np.ndarray, hours: np.ndarray, cost: np.ndarray, provider_ok: np.ndarray
) -> np.ndarray:
    """Per job, the real reason no account pays: none on that provider, or which comes closest and why."""
    active = (state["status"] == "active").to_numpy(bool)
    today = utc_today()
    reasons = []
    for i in range(len(provider)):
        candidates = np.flatnonzero(active & provider_ok[i])
        where = f" on {provider[i]}" if provider[i] else ""
        if not len(candidates):
            reasons.append(f"no active account{where}")
            continue
        first = state.iloc[int(candidates[0])]
        h = None if np.isnan(hours[i]) else float(hours[i])
        c = None if np.isnan(cost[i]) else float(cost[i])
        why = _why_not(first, provider[i], h, c, True, today)
        reasons.append(f"no account{where} has room: {first['username']}: {why}")
    return np.array(reasons, dtype=object)
