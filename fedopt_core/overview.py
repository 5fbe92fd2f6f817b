"""Key numbers for the sidebar and the Overview page (queries, never stored counters)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, SQLModel, select

from fedopt_core import db
from fedopt_core.config import get_settings
from fedopt_core.db import redact_url
from fedopt_core.models import Account, ModelVersion, Platform, Prediction, Run, Technique, UsageSession


def database_label() -> str:
    """The configured database, with any password hidden."""
    return redact_url(get_settings().database_url)


def counts(session: Session | None = None) -> dict[str, int]:
    """How many platforms, GPU platforms, runs, techniques, accounts, model versions and recorded
    predictions exist."""
    with db.use(session) as db_session:

        def count(model: type[SQLModel], *where: ColumnElement[bool]) -> int:
            return int(db_session.exec(select(func.count()).select_from(model).where(*where)).one())

        return {
            "platforms": count(Platform),
            "gpu_platforms": count(Platform, Platform.gpu_count > 0),
            "providers": int(db_session.exec(select(func.count(func.distinct(Platform.provider)))).one()),
            "runs": count(Run),
            "techniques": count(Technique),
            "accounts": count(Account, Account.status != "archived"),
            "model_versions": count(ModelVersion),
            "predictions": count(Prediction),
        }


def data_stamp(session: Session | None = None) -> tuple[tuple[object, ...], ...]:
    """A small fingerprint of what the dashboard caches: it changes when any process (a page, the
    CLI, a job script) adds, removes or re-imports runs, platforms, techniques, accounts, usage
    sessions or model versions, so cached reads keyed on it never show a stale count or price."""
    queries = [
        select(func.count(), func.max(Run.id)).select_from(Run),
        select(func.count(), func.max(Platform.updated_at)).select_from(Platform),
        select(func.count(), func.max(Technique.id)).select_from(Technique),
        select(func.count(), func.max(Account.updated_at)).select_from(Account),
        select(func.count(), func.max(UsageSession.id), func.count(UsageSession.ended_at)).select_from(UsageSession),
        select(func.count(), func.max(ModelVersion.id)).select_from(ModelVersion),
        select(func.count(), func.max(Prediction.id)).select_from(Prediction),
    ]
    with db.use(session) as db_session:
        return tuple(tuple(db_session.exec(query).one()) for query in queries)
