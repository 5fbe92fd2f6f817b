"""PostgreSQL restarted under a running app: the next write succeeds, an in-flight one is all or nothing."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from fedopt_core import db
from fedopt_core.models import Technique
from tests.conftest import _fresh_postgres_database
from tests.support import REPO_ROOT


def restart_postgres() -> None:
    data, port = os.environ.get("FEDOPT_TEST_POSTGRES_DATA"), os.environ.get("FEDOPT_TEST_POSTGRES_PORT")
    if not data or not port:
        pytest.fail("FEDOPT_TEST_POSTGRES_DATA/PORT are not set: run the suite with `make test`")
    script = str(REPO_ROOT / "scripts" / "pg-test-server")
    subprocess.run([script, "stop", data], check=True, capture_output=True)
    subprocess.run([script, "start", data, port], check=True, capture_output=True)


@pytest.fixture
def postgres_db():
    with _fresh_postgres_database() as url:
        db.upgrade(url)
        yield url


def slugs(url: str) -> set[str]:
    with db.session_scope(url) as session:
        return {t.slug for t in session.exec(select(Technique)).all()}


def test_after_a_restart_the_next_write_succeeds_and_the_in_flight_one_is_not_half_applied(postgres_db: str) -> None:
    url = postgres_db
    with db.session_scope(url) as session:
        session.add(Technique(slug="before", name="n", kind="access", description="d"))
    in_flight = db.session_scope(url)
    session = in_flight.__enter__()
    session.add(Technique(slug="in-flight-1", name="n", kind="access", description="d"))
    session.add(Technique(slug="in-flight-2", name="n", kind="access", description="d"))
    session.flush()  # sent to the server, not committed
    restart_postgres()
    with pytest.raises(DBAPIError):
        in_flight.__exit__(None, None, None)  # the commit fails and is reported
    with db.session_scope(url) as session:  # pre-ping replaces the dead pooled connection
        session.add(Technique(slug="after", name="n", kind="access", description="d"))
    assert slugs(url) == {"before", "after"}
