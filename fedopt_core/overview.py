"""Key numbers for the sidebar and the Overview page (queries, never stored counters)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func
from sqlmodel import SQLModel, select

from fedopt_core.config import get_settings
from fedopt_core.db import redact_url, session_scope
from fedopt_core.models import Account, ModelVersion, Platform, Run, Technique


def database_label(url: str | None = None) -> str:
    """The database in use, with any password hidden."""
    return redact_url(url or get_settings().database_url)


def counts(url: str | None = None) -> dict[str, int]:
    """How many platforms, GPU platforms, runs, techniques, accounts and model versions exist."""
    with session_scope(url) as session:

        def count(model: type[SQLModel], *where: ColumnElement[bool]) -> int:
            return int(session.exec(select(func.count()).select_from(model).where(*where)).one())

        return {
            "platforms": count(Platform),
            "gpu_platforms": count(Platform, Platform.gpu_count > 0),
            "providers": int(session.exec(select(func.count(func.distinct(Platform.provider)))).one()),
            "runs": count(Run),
            "techniques": count(Technique),
            "accounts": count(Account, Account.status != "archived"),
            "model_versions": count(ModelVersion),
        }
