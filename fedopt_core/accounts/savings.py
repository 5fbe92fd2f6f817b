"""What the cost techniques would have saved the group, estimated on its own usage sessions.

Each estimate states its assumptions; techniques without an estimate here are not estimated
from usage data (the Techniques page shows their published savings only).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session, select

from fedopt_core import db
from fedopt_core.accounts.months import month_label, previous_month
from fedopt_core.accounts.reports import monthly_review
from fedopt_core.formatting import plural, usd
from fedopt_core.models import Platform, Run

#: Spot / on-demand price ratios used when the catalogue has no spot price for a platform.
#: Nebius: 1 − spot/on-demand of H100 and H200 SXM in skypilot-org/skypilot-catalog v8 nebius/vms.csv
#: (0.42 and 0.41); GCP: a3-highgpu-1g in us-central1, spot $6.571 vs on-demand-equivalent $10.979
#: (Cloud Billing catalogue via tgarg01/silybench-data, 2026-09-26).  Lambda has no spot market.
TYPICAL_SPOT_RATIO: dict[str, float] = {"nebius": 0.42, "gcp": 0.60}
NO_SPOT_PROVIDERS = frozenset({"lambda"})
#: Idle-time savings are estimated only when at least this many of the month's sessions, and
#: this share of them, are linked to a logged run (else "not enough linked sessions").
MIN_LINKED_SESSIONS = 3
MIN_LINKED_SHARE = 0.5


SAVINGS_COLUMNS = ["slug", "month", "saving_usd", "cost_considered_usd", "month_cost_usd", "assumptions"]


def technique_savings(
    month: str | date | None = None, *, now: datetime | None = None, session: Session | None = None
) -> pd.DataFrame:
    """What some resource techniques would have saved the group in a month (default: last month).

    Estimated from the month's sessions and the platform catalogue; each row states its
    assumptions (``saving_usd`` is NaN where too few sessions are linked to runs to say).
    Techniques without a row here are not estimated from usage data.
    """
    month = previous_month() if month is None else month_label(month)
    review = monthly_review(month, now=now, session=session)
    s = review.sessions
    label = review.month
    with db.use(session) as db_session:
        plats = db_session.exec(
            select(
                Platform.provider,
                Platform.instance_type,
                Platform.price_per_hour_usd,
                Platform.spot_price_per_hour_usd,
                Platform.gpu_count,
                Platform.gpu_memory_gb,
                Platform.gpu_type,
            )
        ).all()
        run_ids = [int(r) for r in s["run_id"].dropna().unique()]
        run_rows = (
            db_session.exec(select(Run.id, Run.gpu_memory_required_gb).where(Run.id.in_(run_ids))).all()
            if run_ids
            else []
        )  # type: ignore[union-attr]
    catalogue = pd.DataFrame(
        [tuple(p) for p in plats],
        columns=["provider", "platform", "price", "spot", "gpu_count", "gpu_memory_gb", "gpu_type"],
    )
    catalogue["provider"] = catalogue["provider"].str.lower()
    joined = s.assign(provider=s["provider"].fillna("").str.lower()).merge(
        catalogue, on=["provider", "platform"], how="left"
    )
    cost = joined["cost_in_month_usd"].to_numpy(float)
    total = float(cost.sum())
    rows: list[dict[str, Any]] = []

    # Spot: the catalogue's spot/on-demand ratio, else a documented typical ratio for the provider.
    catalogue_ratio = (
        pd.to_numeric(joined["spot"], errors="coerce") / pd.to_numeric(joined["price"], errors="coerce")
    ).to_numpy(float)
    typical = joined["provider"].map(TYPICAL_SPOT_RATIO).to_numpy(float)
    ratio = np.where(np.isfinite(catalogue_ratio) & (catalogue_ratio > 0), catalogue_ratio, typical)
    has_ratio = np.isfinite(ratio)
    spot_saving = float(np.sum(np.where(has_ratio, cost * (1.0 - ratio), 0.0)))
    no_spot_cost = float(cost[joined["provider"].isin(NO_SPOT_PROVIDERS).to_numpy(bool)].sum())
    unknown_cost = float(cost[~has_ratio].sum()) - no_spot_cost
    rows.append(
        {
            "slug": "spot-instances",
            "month": label,
            "saving_usd": spot_saving,
            "cost_considered_usd": float(cost[has_ratio].sum()),
            "assumptions": (
                f"cost × (1 − spot/on-demand price) for the ${cost[has_ratio].sum():,.2f} spent where a spot price "
                "is known "
                "(catalogue spot price, else typical ratios: Nebius 0.42, GCP 0.60). "
                f"${no_spot_cost:,.2f} was on Lambda, which has no spot market, so saves nothing"
                + (
                    f"; ${unknown_cost:,.2f} on providers without a known ratio is not counted"
                    if unknown_cost > 0.005
                    else ""
                )
                + _spot_elsewhere(joined, catalogue)
                + ". Ignores interruptions and restart overhead (checkpointing needed)."
            ),
        }
    )

    # Idle time is known only where the group links its sessions to runs: with few linked, a
    # session without a run is more likely unlogged than idle, and "100% saved" would be a guess.
    n_sessions = len(s)
    n_linked = int((~s["idle"]).sum())
    enough = n_linked >= MIN_LINKED_SESSIONS and n_linked >= MIN_LINKED_SHARE * n_sessions
    idle_cost = float(s.loc[s["idle"], "cost_in_month_usd"].sum()) if enough else float("nan")
    idle_hours = float(s.loc[s["idle"], "hours_in_month"].sum())
    n_idle = int(s["idle"].sum())
    linked_text = f"{n_linked} of {plural(n_sessions, 'session')} linked to a logged run"
    idle_text = (
        f"the {plural(n_idle, 'session')} with no logged run ({idle_hours:,.1f} h) would not have run at all "
        f"({linked_text}). A session whose runs were simply not logged is counted as idle, so this is an upper bound."
        if enough
        else f"not enough linked sessions to estimate: {linked_text} (an estimate needs at least "
        f"{MIN_LINKED_SESSIONS} and half of them). Link sessions to runs when you log them."
    )
    rows.append(
        {
            "slug": "scheduled-shutdowns",
            "month": label,
            "saving_usd": idle_cost,
            "cost_considered_usd": total if enough else 0.0,
            "assumptions": idle_text,
        }
    )
    rows.append(
        {
            "slug": "idle-notebook-auto-stop",
            "month": label,
            "saving_usd": idle_cost,
            "cost_considered_usd": total if enough else 0.0,
            "assumptions": idle_text
            + (" The same idle time as scheduled shutdowns: the two savings do not add up." if enough else ""),
        }
    )

    # Right-sizing: GPUs whose memory the linked run did not need are taken to have idled.
    required = pd.Series(dict((int(i), m) for i, m in run_rows), dtype=float)
    need_gb = joined["run_id"].map(required).to_numpy(float) if len(required) else np.full(len(joined), np.nan)
    count = pd.to_numeric(joined["gpu_count"], errors="coerce").to_numpy(float)
    per_gpu = pd.to_numeric(joined["gpu_memory_gb"], errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        needed = np.clip(np.ceil(need_gb / per_gpu), 1, count)
        usable = np.isfinite(needed) & (count > 1) & (per_gpu > 0)
        rs_saving = float(np.sum(np.where(usable, cost * (1.0 - needed / count), 0.0)))
    n_usable = int(usable.sum())
    rows.append(
        {
            "slug": "right-sizing",
            "month": label,
            "saving_usd": rs_saving if n_usable else float("nan"),
            "cost_considered_usd": float(cost[usable].sum()),
            "assumptions": (
                f"for the {plural(n_usable, 'multi-GPU session')} linked to a run that recorded its GPU memory "
                "need: the share of GPUs whose memory it did not need, at the session's cost (same GPU model, "
                "fewer GPUs). Assumes those GPUs idled; a job that used them for speed saves less."
                if n_usable
                else "not enough linked sessions to estimate: no multi-GPU session is linked to a run that "
                "recorded its GPU memory need."
            ),
        }
    )
    return pd.DataFrame(rows, columns=SAVINGS_COLUMNS).assign(month_cost_usd=total)


def _spot_elsewhere(sessions: pd.DataFrame, catalogue: pd.DataFrame) -> str:
    """What the hours spent where there is no spot market would have cost on the cheapest spot
    offer of the same GPU model in the catalogue ("" when no such offer exists)."""
    offers = catalogue.assign(
        spot_per_gpu=pd.to_numeric(catalogue["spot"], errors="coerce")
        / pd.to_numeric(catalogue["gpu_count"], errors="coerce")
    )
    offers = offers[np.isfinite(offers["spot_per_gpu"]) & (offers["spot_per_gpu"] > 0)]
    cheapest = offers.sort_values("spot_per_gpu").drop_duplicates("gpu_type").set_index("gpu_type")
    here = sessions[sessions["provider"].isin(NO_SPOT_PROVIDERS) & sessions["gpu_type"].isin(cheapest.index)]
    if here.empty:
        return ""
    gpu_hours = here["hours_in_month"].to_numpy(float) * pd.to_numeric(here["gpu_count"]).to_numpy(float)
    offer = cheapest.loc[here["gpu_type"]]
    elsewhere = float(np.sum(gpu_hours * offer["spot_per_gpu"].to_numpy(float)))
    paid = float(here["cost_in_month_usd"].sum())
    best = offer.iloc[int(np.argmax(gpu_hours))]
    return (
        f"; the same {gpu_hours.sum():,.1f} GPU-hours of {', '.join(sorted(set(here['gpu_type'])))} would have "
        f"cost {usd(elsewhere)} on the cheapest spot offer of the same GPU (e.g. {best['platform']} on "
        f"{best['provider']} at {usd(float(best['spot_per_gpu']))}/GPU-h) instead of {usd(paid)}"
    )
