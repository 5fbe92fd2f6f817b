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
from fedopt_core.models import Platform, Run

#: Spot / on-demand price ratios used when the catalogue has no spot price for a platform.
#: Nebius: 1 − spot/on-demand of H100 and H200 SXM in skypilot-org/skypilot-catalog v8 nebius/vms.csv
#: (0.42 and 0.41); GCP: a3-highgpu-1g in us-central1, spot $6.571 vs on-demand-equivalent $10.979
#: (Cloud Billing catalogue via tgarg01/silybench-data, 2026-09-26).  Lambda has no spot market.
TYPICAL_SPOT_RATIO: dict[str, float] = {"nebius": 0.42, "gcp": 0.60}
NO_SPOT_PROVIDERS = frozenset({"lambda"})


SAVINGS_COLUMNS = ["slug", "month", "saving_usd", "cost_considered_usd", "month_cost_usd", "assumptions"]


def technique_savings(
    month: str | date | None = None, *, now: datetime | None = None, session: Session | None = None
) -> pd.DataFrame:
    """What some resource techniques would have saved the group in a month (default: last month).

    Estimated from the month's sessions and the platform catalogue; each row states its
    assumptions.  Techniques without a row here are not estimated from usage data.
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
            )
        ).all()
        run_ids = [int(r) for r in s["run_id"].dropna().unique()]
        run_rows = (
            db_session.exec(select(Run.id, Run.gpu_memory_required_gb).where(Run.id.in_(run_ids))).all()
            if run_ids
            else []
        )  # type: ignore[union-attr]
    catalogue = pd.DataFrame(
        [tuple(p) for p in plats], columns=["provider", "platform", "price", "spot", "gpu_count", "gpu_memory_gb"]
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
                + ". Ignores interruptions and restart overhead (checkpointing needed)."
            ),
        }
    )

    idle_cost = float(s.loc[s["idle"], "cost_in_month_usd"].sum())
    idle_hours = float(s.loc[s["idle"], "hours_in_month"].sum())
    idle_text = (
        f"the {int(s['idle'].sum())} sessions with no logged run ({idle_hours:,.1f} h) would not have run at all. "
        "A session whose runs were simply not logged is counted as idle, so this is an upper bound."
    )
    rows.append(
        {
            "slug": "scheduled-shutdowns",
            "month": label,
            "saving_usd": idle_cost,
            "cost_considered_usd": total,
            "assumptions": idle_text,
        }
    )
    rows.append(
        {
            "slug": "idle-notebook-auto-stop",
            "month": label,
            "saving_usd": idle_cost,
            "cost_considered_usd": total,
            "assumptions": idle_text + " The same idle time as scheduled shutdowns: the two savings do not add up.",
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
    rows.append(
        {
            "slug": "right-sizing",
            "month": label,
            "saving_usd": rs_saving,
            "cost_considered_usd": float(cost[usable].sum()),
            "assumptions": (
                f"for the {int(usable.sum())} multi-GPU sessions linked to a run that recorded its GPU memory "
                "need: the share of GPUs whose memory it did not need, at the session's cost (same GPU model, "
                "fewer GPUs). Assumes those GPUs idled; a job that used them for speed saves less."
            ),
        }
    )
    return pd.DataFrame(rows, columns=SAVINGS_COLUMNS).assign(month_cost_usd=total)
