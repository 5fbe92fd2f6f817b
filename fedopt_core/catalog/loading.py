"""What every catalogue load shares: the load report, the one upsert rule, and cell parsers.

Loading is idempotent: a catalogue row is keyed (by provider and instance type, by slug, by GPU
name), so loading twice gives the same rows, and a row a user edited or added is never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from sqlmodel import Session

from fedopt_core.csvfiles import CatalogError
from fedopt_core.models import utcnow


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


def upsert(
    session: Session,
    current: Any,
    values: dict[str, Any],
    create: Any,
    report: LoadReport,
    *,
    protected: bool = False,
) -> tuple[Any, set[str]]:
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


def blank_to_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def to_number(value: Any, kind: type = float) -> Any:
    value = blank_to_none(value)
    if value is None:
        return None
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return int(round(number)) if kind is int else number


def to_date(value: Any) -> date | None:
    value = blank_to_none(value)
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def to_list(value: Any) -> list[str]:
    value = blank_to_none(value)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).replace(",", ";").split(";") if part.strip()]


def as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def leading_date(value: Any) -> date | None:
    """A leading ISO date if there is one ("undated (prices match …)" gives None)."""
    value = blank_to_none(value)
    try:
        return to_date(value) if value is not None else None
    except ValueError:
        return None
