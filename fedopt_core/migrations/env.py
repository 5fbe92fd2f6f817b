"""Alembic environment: runs fedopt's migrations on the engine that ``db.upgrade`` passes in."""

from alembic import context
from sqlmodel import SQLModel

from fedopt_core import models  # noqa: F401 - registers the tables on SQLModel.metadata
from fedopt_core.db import get_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine") or get_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        is_sqlite = connection.dialect.name == "sqlite"
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things in place; batch mode rebuilds the table, keeping rows.
            render_as_batch=is_sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
