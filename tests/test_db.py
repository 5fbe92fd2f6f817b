"""Persistence: engine settings, migrations that keep data, clear errors for bad URLs."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel, select

from fedopt_core import db
from fedopt_core.models import Platform, Run, Technique


def test_sqlite_engine_uses_wal_foreign_keys_and_busy_timeout(empty_db: str) -> None:
    with db.get_engine(empty_db).connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_one_engine_per_url_is_shared(empty_db: str) -> None:
    assert db.get_engine(empty_db) is db.get_engine(empty_db)
    assert db.get_engine() is db.get_engine(empty_db)  # DATABASE_URL points at the same file


def test_models_match_the_migrations(any_db: str) -> None:
    with db.get_engine(any_db).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []


def test_upgrade_from_the_first_migration_keeps_rows(blank_db: str) -> None:
    url = blank_db
    db.upgrade(url, "0001")
    assert db.current_revision(url) == "0001"
    with db.get_engine(url).begin() as connection:
        connection.execute(
            text(
                "INSERT INTO platform (provider, instance_type, gpu_type, gpu_count, regions, origin, user_edited,"
                " available, created_at, updated_at) VALUES ('on-prem', 'lab-box', 'A100 SXM4 80GB', 4, '[]', 'user',"
                " false, true, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO run (run_key, gpu_type, gpu_count, execution_time_s, success, created_at, source)"
                " VALUES ('k1', 'A100 SXM4 80GB', 4, 123.5, true, '2026-01-01 00:00:00', 'manual')"
            )
        )
    db.upgrade(url)
    assert db.current_revision(url) == db.head_revision() != "0001"
    with db.session_scope(url) as session:
        platform = session.exec(select(Platform)).one()
        run = session.exec(select(Run)).one()
    assert (platform.instance_type, platform.gpu_count) == ("lab-box", 4)
    assert run.execution_time_s == 123.5


def test_foreign_keys_are_enforced(any_db: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from fedopt_core.models import UsageSession

    with pytest.raises(IntegrityError), db.session_scope(any_db) as session:
        session.add(UsageSession(account_id=999, platform="x", started_at=datetime.now(UTC)))


def test_session_scope_rolls_back_on_error(any_db: str) -> None:
    with pytest.raises(RuntimeError), db.session_scope(any_db) as session:
        session.add(Technique(slug="t", name="T", kind="access", description="d"))
        session.flush()
        raise RuntimeError("boom")
    with db.session_scope(any_db) as session:
        assert session.exec(select(Technique)).all() == []


def test_writes_from_many_threads_all_land(any_db: str) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(20):
                with db.session_scope(any_db) as session:
                    session.add(Technique(slug=f"w{worker}-{i}", name="n", kind="access", description="d"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.session_scope(any_db) as session:
        assert len(session.exec(select(Technique)).all()) == 120


def test_invalid_url_is_one_clear_line() -> None:
    with pytest.raises(db.DatabaseError) as info:
        db.check_connection("not a url at all")
    assert "DATABASE_URL" in str(info.value)
    assert "\n" not in str(info.value)


def test_unreachable_server_is_one_clear_line_without_password() -> None:
    url = "postgresql+psycopg://fedopt:s3cretpw@127.0.0.1:1/fedopt?connect_timeout=2"
    with pytest.raises(db.DatabaseError) as info:
        db.check_connection(url)
    message = str(info.value)
    assert "cannot connect" in message and "127.0.0.1" in message
    assert "s3cretpw" not in message
    assert "\n" not in message


def test_a_callers_session_makes_several_writes_one_transaction(loaded_db: str) -> None:
    from fedopt_core import accounts, auth

    with pytest.raises(RuntimeError, match="changes its mind"), db.session_scope() as session:
        accounts.register_academic_account("alpha", None, None, None, session=session)
        accounts.register_academic_account("beta", None, None, None, session=session)
        assert set(accounts.list_accounts(session=session)["username"]) == {"alpha", "beta"}  # seen inside
        raise RuntimeError("the caller changes its mind")
    assert accounts.list_accounts().empty  # neither account, and no audit rows for them
    assert auth.audit_log(action="account").empty
    with db.session_scope() as session:
        accounts.register_academic_account("alpha", None, None, None, session=session)
    assert accounts.list_accounts()["username"].tolist() == ["alpha"]  # without a session: committed at once


def test_use_without_a_session_opens_one_on_the_configured_database(loaded_db: str) -> None:
    with db.use(None) as session:
        assert db.database_key(session) == db.get_engine().url.render_as_string(hide_password=False)
        assert session.exec(select(Platform)).first() is not None
