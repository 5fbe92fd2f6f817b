"""Database access: one engine per URL, sessions, SQLite pragmas, migrations.

This is the only module that builds engines.  Callers pass a URL (or nothing, for the
configured one) and get a cached engine that is safe to share between Streamlit's threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from fedopt_core.config import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class DatabaseError(RuntimeError):
    """The database cannot be used; the message names the problem in one line."""


def redact_url(url: str) -> str:
    """The URL with any password hidden, fit for a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable DATABASE_URL>"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
    cursor = dbapi_connection.cursor()
    # WAL lets Streamlit's reader threads run while one writer commits.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _build_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"DATABASE_URL is not a valid database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            try:
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create the folder for the SQLite file {database}: {exc.strerror}"
                ) from None
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise DatabaseError(f"cannot use DATABASE_URL {redact_url(url)}: {exc}") from None


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for ``url`` (default: the configured ``DATABASE_URL``)."""
    url = url or get_settings().database_url
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _build_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests, and before a process forks)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error.

    ``url`` picks another database than the configured one (a test reading a server's file, the
    seed's ``AccountManager(database_url)``); everything else runs on the configured database.
    """
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def use(session: Session | None) -> Iterator[Session]:
    """The session a core function works in: the caller's, or a new one on the configured database.

    Every function of fedopt_core that touches the database takes ``session`` keyword-only and
    opens it through here.  A caller that passes one owns the transaction (several calls commit
    together, or not at all); a caller that passes none (a page, the CLI, a job script) gets a
    session of its own that commits when the function returns and rolls back if it raises.
    """
    if session is not None:
        yield session
        return
    with session_scope() as own:
        yield own


def database_key(session: Session) -> str:
    """Which database ``session`` works on, as a key for process-wide caches (never shown)."""
    return session.get_bind().url.render_as_string(hide_password=False)


def check_connection(url: str | None = None) -> None:
    """Raise :class:`DatabaseError` with one clear line if the database cannot be reached."""
    url = url or get_settings().database_url
    engine = get_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        raise DatabaseError(f"cannot connect to {redact_url(url)}: {reason}") from None


def _alembic_config(url: str):  # noqa: ANN202 - alembic.config.Config
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; escape it so URL-encoded passwords survive.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["engine"] = get_engine(url)
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (data is kept: migrations only add)."""
    from alembic import command

    url = url or get_settings().database_url
    check_connection(url)
    command.upgrade(_alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    url = url or get_settings().database_url
    with get_engine(url).connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def ensure_database(url: str | None = None) -> None:
    """Upgrade the schema if it is behind; cheap when it is already at head."""
    url = url or get_settings().database_url
    check_connection(url)
    if current_revision(url) != head_revision():
        upgrade(url)


#: What a job machine's database role may touch to log runs (``fedopt runs log``, ``track()``):
#: read and add runs, link them to the predictions they score, write its audit rows.  Nothing
#: else: no roles, accounts, API keys, prices or machines.
JOB_ROLE_GRANTS = (
    "GRANT SELECT ON alembic_version TO {role}",
    "GRANT SELECT, INSERT ON run TO {role}",
    "GRANT USAGE ON SEQUENCE run_id_seq TO {role}",
    "GRANT SELECT, UPDATE ON prediction TO {role}",
    "GRANT INSERT ON audit_event TO {role}",
    "GRANT USAGE ON SEQUENCE audit_event_id_seq TO {role}",
)


def job_role_sql(role: str, password: str) -> list[str]:
    """PostgreSQL statements that make a login role which can only log runs (run them as the
    database owner).  Give job machines a ``DATABASE_URL`` with this role: with it, neither
    ``fedopt roles set`` nor plain SQL can change who is admin or spend money."""
    import re

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError("role: lower-case letters, digits and _ only (a PostgreSQL identifier)")
    quoted = password.replace("'", "''")
    return [f"CREATE ROLE {role} LOGIN PASSWORD '{quoted}'", *(g.format(role=role) for g in JOB_ROLE_GRANTS)]
