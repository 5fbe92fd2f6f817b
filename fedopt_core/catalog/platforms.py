"""The platform catalogue: places a job can run, their prices and price history, custom machines.

The shipped Lambda catalogue, other clouds' offers (with spot prices) and a group's own machines
all live in one table; a row a user edited or added survives every reload (see :mod:`.loading`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from fedopt_core import auth, db
from fedopt_core.catalog import gpus
from fedopt_core.catalog.loading import (
    LoadReport,
    as_set,
    blank_to_none,
    leading_date,
    to_date,
    to_list,
    to_number,
    upsert,
)
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CatalogError, read_table
from fedopt_core.errors import CatalogueInputError
from fedopt_core.models import Platform, PlatformPrice, utcnow
from fedopt_core.schema import CPU_ONLY

PLATFORM_FILE = "lambda_instance_types.csv"

PLATFORM_COLUMNS = [
    "id",
    "provider",
    "instance_type",
    "description",
    "gpu_type",
    "gpu_count",
    "gpu_memory_gb",
    "vcpus",
    "ram_gb",
    "storage_gb",
    "network_speed_mbps",
    "price_per_hour_usd",
    "spot_price_per_hour_usd",
    "regions",
    "regions_with_capacity",
    "as_of",
    "source",
    "origin",
    "user_edited",
    "available",
    "last_refreshed_at",
    "notes",
]


def _platform_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """Typed platform fields from one catalogue row; raises ValueError naming the field."""
    values: dict[str, Any] = {}
    for name, kind in [
        ("gpu_count", int),
        ("gpu_memory_gb", float),
        ("vcpus", int),
        ("ram_gb", float),
        ("storage_gb", float),
        ("network_speed_mbps", float),
        ("price_per_hour_usd", float),
    ]:
        try:
            values[name] = to_number(row.get(name), kind)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {row.get(name)!r} is not a number") from None
        if values[name] is not None and values[name] < 0:
            raise ValueError(f"{name}: must not be negative")
    raw_gpu = str(blank_to_none(row.get("gpu_type")) or CPU_ONLY)
    values["gpu_type"] = CPU_ONLY if raw_gpu.lower() == CPU_ONLY else (gpus.normalise_gpu_name(raw_gpu) or raw_gpu)
    values["gpu_count"] = values["gpu_count"] or 0
    if values["gpu_type"] != CPU_ONLY and values["gpu_count"] < 1:
        raise ValueError("gpu_count: must be at least 1 for a GPU platform")
    try:
        values["as_of"] = to_date(row.get("as_of"))
    except ValueError:
        raise ValueError(f"as_of: {row.get('as_of')!r} is not a date (YYYY-MM-DD)") from None
    values["regions"] = to_list(row.get("regions"))
    values["description"] = blank_to_none(row.get("description"))
    values["source"] = blank_to_none(row.get("source"))
    return values


def load_platforms(
    path: str | Path | None = None, *, provider: str = "lambda", session: Session | None = None
) -> LoadReport:
    """Load a platform catalogue file (our ``lambda_instance_types.csv`` format)."""
    path = Path(path or get_settings().data_dir / PLATFORM_FILE)
    frame, errors = read_table(path, required=["instance_type", "price_per_hour_usd"])
    report = LoadReport(errors=list(errors))
    parsed: list[tuple[str, dict[str, Any]]] = []
    for record in frame.to_dict("records"):
        try:
            parsed.append((record["instance_type"], _platform_values(record)))
        except ValueError as exc:
            report.errors.append(CatalogError(str(path), int(record["_line"]), str(exc)))
    with db.use(session) as db_session:
        _upsert_platforms(db_session, provider, parsed, report, price_source="catalogue")
    return report


def _upsert_platforms(
    session: Session,
    provider: str,
    rows: Iterable[tuple[str, dict[str, Any]]],
    report: LoadReport,
    *,
    price_source: str,
) -> None:
    """Upsert one provider's catalogue rows (instance_type, values); a changed price joins the price history.

    A row a user edited or added is kept (see :func:`_upsert`).  A key seen earlier in the same load
    updates that row rather than inserting a second one.
    """
    existing = {p.instance_type: p for p in session.exec(select(Platform).where(Platform.provider == provider))}
    for instance_type, values in rows:
        current = existing.get(instance_type)
        row, changed = upsert(
            session,
            current,
            values,
            functools.partial(Platform, provider=provider, instance_type=instance_type, origin="catalogue", **values),
            report,
            protected=current is not None and (current.user_edited or current.origin == "user"),
        )
        existing[instance_type] = row
        if "price_per_hour_usd" in changed:
            _record_price(session, row, price_source)


def _record_price(session, platform: Platform, source: str) -> None:  # noqa: ANN001 - Session
    if platform.price_per_hour_usd is None or platform.id is None:
        return
    session.add(
        PlatformPrice(
            platform_id=platform.id,
            price_per_hour_usd=platform.price_per_hour_usd,
            regions_with_capacity=platform.regions_with_capacity,
            source=source,
        )
    )


def _platform_frame(platforms: Iterable[Platform]) -> pd.DataFrame:
    rows = [{name: getattr(p, name) for name in PLATFORM_COLUMNS} for p in platforms]
    frame = pd.DataFrame(rows, columns=PLATFORM_COLUMNS)
    for name in [
        "gpu_count",
        "gpu_memory_gb",
        "vcpus",
        "ram_gb",
        "storage_gb",
        "network_speed_mbps",
        "price_per_hour_usd",
        "spot_price_per_hour_usd",
    ]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame["price_per_gpu_hour_usd"] = frame["price_per_hour_usd"] / frame["gpu_count"].where(frame["gpu_count"] > 0)
    frame["total_gpu_memory_gb"] = frame["gpu_memory_gb"] * frame["gpu_count"]
    frame["platform"] = frame["instance_type"]
    return frame


def list_platforms(
    *,
    provider: str | Iterable[str] | None = None,
    gpu_type: str | Iterable[str] | None = None,
    min_gpu_count: int | None = None,
    max_gpu_count: int | None = None,
    max_price_per_hour_usd: float | None = None,
    search: str | None = None,
    include_cpu: bool = True,
    include_unavailable: bool = True,
    session: Session | None = None,
) -> pd.DataFrame:
    """The platform catalogue as a frame (one row per platform), filtered; never raises on no match."""
    with db.use(session) as db_session:
        frame = _platform_frame(
            db_session.exec(select(Platform).order_by(Platform.provider, Platform.instance_type)).all()
        )
    return filter_platforms(
        frame,
        provider=provider,
        gpu_type=gpu_type,
        min_gpu_count=min_gpu_count,
        max_gpu_count=max_gpu_count,
        max_price_per_hour_usd=max_price_per_hour_usd,
        search=search,
        include_cpu=include_cpu,
        include_unavailable=include_unavailable,
    )


def filter_platforms(
    frame: pd.DataFrame,
    *,
    provider: str | Iterable[str] | None = None,
    gpu_type: str | Iterable[str] | None = None,
    min_gpu_count: int | None = None,
    max_gpu_count: int | None = None,
    max_price_per_hour_usd: float | None = None,
    search: str | None = None,
    include_cpu: bool = True,
    include_unavailable: bool = True,
) -> pd.DataFrame:
    """Filter a platform frame in memory (what the Platforms page does on every widget change)."""
    mask = pd.Series(True, index=frame.index)
    providers, gpu_types = as_set(provider), as_set(gpu_type)
    if providers:
        mask &= frame["provider"].isin(providers)
    if gpu_types:
        mask &= frame["gpu_type"].isin(gpu_types)
    if min_gpu_count is not None:
        mask &= frame["gpu_count"] >= min_gpu_count
    if max_gpu_count is not None:
        mask &= frame["gpu_count"] <= max_gpu_count
    if max_price_per_hour_usd is not None:
        mask &= frame["price_per_hour_usd"] <= max_price_per_hour_usd
    if not include_cpu:
        mask &= frame["gpu_type"] != CPU_ONLY
    if not include_unavailable:
        mask &= frame["available"].astype(bool)
    if search and search.strip():
        needle = search.strip().lower()
        haystack = (
            frame["instance_type"].fillna("")
            + " "
            + frame["description"].fillna("")
            + " "
            + frame["gpu_type"].fillna("")
            + " "
            + frame["provider"].fillna("")
        ).str.lower()
        mask &= haystack.str.contains(needle, regex=False)
    return frame[mask].reset_index(drop=True)


def save_platform(values: Mapping[str, Any], *, platform_id: int | None = None, session: Session | None = None) -> int:
    """Add a custom platform, or edit an existing one (an edit survives catalogue reloads).

    Members add and edit their own platforms; the price of a catalogue platform is changed by an
    admin only (and a live price from the provider's API replaces it at the next refresh).

    Raises :class:`CatalogueInputError` naming the field for bad input; nothing is written then.
    """
    auth.require("member", "adding or editing a platform")
    provider = str(blank_to_none(values.get("provider")) or "").strip()
    instance_type = str(blank_to_none(values.get("instance_type")) or "").strip()
    if not provider:
        raise CatalogueInputError("provider", "is required (e.g. 'on-prem' or a cloud's name)")
    if not instance_type:
        raise CatalogueInputError("instance_type", "is required (a name for this machine or type)")
    try:
        parsed = _platform_values(values)
    except ValueError as exc:
        name, _, message = str(exc).partition(": ")
        raise CatalogueInputError(name, message) from None
    try:
        spot = to_number(values.get("spot_price_per_hour_usd"))
    except (TypeError, ValueError):
        raise CatalogueInputError("spot_price_per_hour_usd", "is not a number") from None
    if spot is not None and not (math.isfinite(spot) and spot >= 0):
        raise CatalogueInputError("spot_price_per_hour_usd", f"must be a finite number >= 0, got {spot!r}")
    parsed["spot_price_per_hour_usd"] = spot
    parsed["notes"] = blank_to_none(values.get("notes"))
    with db.use(session) as db_session:
        if platform_id is None:
            clash = db_session.exec(
                select(Platform).where(Platform.provider == provider, Platform.instance_type == instance_type)
            ).first()
            if clash is not None:
                raise CatalogueInputError(
                    "instance_type", f"{provider}/{instance_type} already exists; edit it instead"
                )
            platform = Platform(provider=provider, instance_type=instance_type, origin="user", **parsed)
        else:
            platform = db_session.get(Platform, platform_id)
            if platform is None:
                raise CatalogueInputError("platform_id", f"no platform with id {platform_id}")
            old_price = platform.price_per_hour_usd
            if platform.origin != "user" and parsed.get("price_per_hour_usd") != old_price:
                # What everyone's comparisons and budgets are priced at: not a member's to change.
                auth.require("admin", "changing a catalogue platform's price")
            for key, value in parsed.items():
                setattr(platform, key, value)
            platform.provider, platform.instance_type = provider, instance_type
            platform.user_edited = True
            platform.updated_at = utcnow()
        db_session.add(platform)
        db_session.flush()
        if platform_id is None or old_price != platform.price_per_hour_usd:
            _record_price(db_session, platform, "user")
        auth.record(
            "platform.add" if platform_id is None else "platform.edit",
            f"{provider}/{instance_type}",
            {"price_per_hour_usd": platform.price_per_hour_usd},
            session=db_session,
        )
        return int(platform.id)


def price_history(platform_id: int, *, session: Session | None = None) -> pd.DataFrame:
    """Observed prices of one platform, oldest first."""
    with db.use(session) as db_session:
        rows = db_session.exec(
            select(PlatformPrice).where(PlatformPrice.platform_id == platform_id).order_by(PlatformPrice.observed_at)
        ).all()
        return pd.DataFrame(
            [
                {"observed_at": r.observed_at, "price_per_hour_usd": r.price_per_hour_usd, "source": r.source}
                for r in rows
            ],
            columns=["observed_at", "price_per_hour_usd", "source"],
        )


#: Columns of the multi-cloud price file format (../shared/data/cloud_gpu_prices.csv).
CLOUD_PRICE_COLUMNS = ["cloud", "instance_type_or_product", "gpu_name", "gpu_count", "price_usd_per_hour"]


def import_cloud_prices(
    path: str | Path, *, skip_providers: Iterable[str] = ("lambda",), session: Session | None = None
) -> LoadReport:
    """Import other clouds' GPU offers (with spot prices where they have them) into the catalogue.

    The file format is that of ``cloud_gpu_prices.csv`` (one row per offer).  Lambda is skipped by
    default because fedopt ships and refreshes its own Lambda catalogue.  Idempotent, like the
    shipped catalogues; a row a user edited is kept.
    """
    frame, errors = read_table(path, required=CLOUD_PRICE_COLUMNS)
    report = LoadReport(errors=list(errors))
    skip = {p.lower() for p in skip_providers}
    by_provider: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for record in frame.to_dict("records"):
        provider = str(record["cloud"]).strip().lower()
        if provider in skip:
            continue
        row = {
            "gpu_type": record.get("gpu_name"),
            "gpu_count": record.get("gpu_count"),
            "gpu_memory_gb": record.get("gpu_memory_gb"),
            "vcpus": record.get("vcpus"),
            "ram_gb": record.get("ram_gib"),
            "price_per_hour_usd": record.get("price_usd_per_hour"),
            "regions": record.get("regions"),
            "description": record.get("notes") or None,
            "source": record.get("source"),
        }
        try:
            values = _platform_values(row)
            values["spot_price_per_hour_usd"] = to_number(record.get("spot_price_usd_per_hour"))
            values["as_of"] = leading_date(record.get("as_of"))
        except ValueError as exc:
            report.errors.append(CatalogError(str(path), int(record["_line"]), str(exc)))
            continue
        by_provider.setdefault(provider, []).append((str(record["instance_type_or_product"]).strip(), values))
    with db.use(session) as db_session:
        for provider, rows in by_provider.items():
            _upsert_platforms(db_session, provider, rows, report, price_source="import")
    return report


def speed_scores(gpu_types: pd.Series, gpu_counts: pd.Series) -> pd.Series:
    """A hardware-only speed score: dense FP16 tensor TFLOPS x GPU count (FP32 TFLOPS if unknown).

    From datasheet peaks, not from measured runs; it orders platforms for the catalogue chart.
    """
    specs = gpus.gpu_specs(gpu_types.fillna(CPU_ONLY).astype(str).tolist())
    per_gpu = specs["tensor_fp16_tflops"].fillna(specs["fp32_tflops"]).to_numpy(float)
    return pd.Series(per_gpu * gpu_counts.to_numpy(float), index=gpu_types.index)
