"""The techniques catalogue: ways to get academic access to GPUs and to cut what a group pays."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from sqlmodel import Session, select

from fedopt_core import db
from fedopt_core.catalog.loading import LoadReport, as_set, blank_to_none, to_date, to_list, to_number, upsert
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CatalogError, read_table
from fedopt_core.models import Technique

TECHNIQUE_FILE = "techniques.csv"

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


def _technique_values(record: Mapping[str, Any]) -> dict[str, Any]:
    kind = str(record.get("kind", "")).strip().lower()
    if kind not in {"access", "optimisation"}:
        raise ValueError(f"kind: {kind!r} is not 'access' or 'optimisation'")
    effectiveness = blank_to_none(record.get("effectiveness"))
    if effectiveness is not None and str(effectiveness).lower() not in {"high", "medium", "low"}:
        raise ValueError(f"effectiveness: {effectiveness!r} is not high, medium or low")
    try:
        savings = to_number(record.get("savings_max_pct"))
    except (TypeError, ValueError):
        raise ValueError(f"savings_max_pct: {record.get('savings_max_pct')!r} is not a number") from None
    if savings is not None and not 0 <= savings <= 100:
        raise ValueError("savings_max_pct: must be between 0 and 100")
    try:
        as_of = to_date(record.get("as_of"))
    except ValueError:
        raise ValueError(f"as_of: {record.get('as_of')!r} is not a date (YYYY-MM-DD)") from None
    return {
        "name": str(record["name"]).strip(),
        "kind": kind,
        "description": str(record.get("description") or "").strip(),
        "effectiveness": str(effectiveness).lower() if effectiveness else None,
        "savings_max_pct": savings,
        "platforms": to_list(record.get("platforms")),
        "source_url": blank_to_none(record.get("source_url")),
        "as_of": as_of,
    }


def load_techniques(path: str | Path | None = None, *, session: Session | None = None) -> LoadReport:
    """Load the techniques catalogue (idempotent; a user-edited technique is kept)."""
    path = Path(path or get_settings().data_dir / TECHNIQUE_FILE)
    frame, errors = read_table(path, required=["slug", "name", "kind", "description"])
    report = LoadReport(errors=list(errors))
    parsed = []
    for record in frame.to_dict("records"):
        try:
            parsed.append((record["slug"], _technique_values(record)))
        except ValueError as exc:
            report.errors.append(CatalogError(str(path), int(record["_line"]), str(exc)))
    with db.use(session) as db_session:
        existing = {t.slug: t for t in db_session.exec(select(Technique)).all()}
        for slug, values in parsed:
            current = existing.get(slug)
            upsert(
                db_session,
                current,
                values,
                functools.partial(Technique, slug=slug, **values),
                report,
                protected=current is not None and current.user_edited,
            )
    return report


def list_techniques(
    *,
    search: str | None = None,
    kind: str | Iterable[str] | None = None,
    effectiveness: str | Iterable[str] | None = None,
    platform: str | Iterable[str] | None = None,
    session: Session | None = None,
) -> pd.DataFrame:
    """The techniques catalogue as a frame, filtered; an empty frame when nothing matches."""
    with db.use(session) as db_session:
        rows = db_session.exec(select(Technique).order_by(Technique.kind, Technique.name)).all()
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
    kinds, levels, platforms = as_set(kind), as_set(effectiveness), as_set(platform)
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
