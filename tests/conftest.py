"""Shared fixtures: a real SQLite file per test, and the public data beside the repository."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fedopt_core import config, db
from tests.support import NINE_TRAINING_GPUS, REPO_ROOT, SHARED_DATA


@pytest.fixture(autouse=True)
def _settings_follow_the_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """fedopt builds its settings once per process; a test that changes the environment gets them rebuilt.

    Every ``monkeypatch.setenv``/``delenv`` forgets the settings, and so does the end of the test
    (before monkeypatch restores the environment), so no test sees another's configuration.
    """
    config.reset_settings()
    setenv, delenv = monkeypatch.setenv, monkeypatch.delenv

    def setenv_and_forget(name: str, value: str, prepend: str | None = None) -> None:
        setenv(name, value, prepend)
        config.reset_settings()

    def delenv_and_forget(name: str, raising: bool = True) -> None:
        delenv(name, raising=raising)
        config.reset_settings()

    monkeypatch.setenv = setenv_and_forget  # type: ignore[method-assign]
    monkeypatch.delenv = delenv_and_forget  # type: ignore[method-assign]
    request.addfinalizer(config.reset_settings)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: CI puts it beside the clone; its absence is a failure, not a skip."""
    if not (SHARED_DATA / "gpu_benchmarks.csv").exists():
        pytest.fail(f"public data missing: expected {SHARED_DATA} beside the repository")
    return SHARED_DATA


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database with the shipped catalogues, copied for each test that wants it."""
    path = tmp_path_factory.mktemp("template") / "fedopt.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    from fedopt_core import catalog

    with db.session_scope(url) as session:
        report = catalog.load_all(session=session)
    assert not report.errors, report.errors
    db.dispose_engines()
    return path


@pytest.fixture
def empty_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated, empty SQLite file, configured as the app's database for this test."""
    url = f"sqlite:///{tmp_path / 'fedopt.db'}"
    monkeypatch.setenv("FEDOPT_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    db.upgrade(url)
    yield url
    db.dispose_engines()


@pytest.fixture
def loaded_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _template_db: Path) -> str:
    """A migrated SQLite file holding the shipped catalogues, configured as the app's database."""
    path = tmp_path / "fedopt.db"
    shutil.copy(_template_db, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("FEDOPT_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    db.dispose_engines()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# --------------------------------------------------------------------------- both backends

POSTGRES_ENV = "FEDOPT_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.fail(
            f"{POSTGRES_ENV} is not set: run the suite with `make test`, which starts a throwaway "
            "PostgreSQL server (scripts/pg-test-server), or point it at a server you own"
        )
    return url


@contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = _postgres_admin_url()
    name = f"fedopt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        db.dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database with no schema yet, on each backend, configured as the app's database."""
    monkeypatch.setenv("FEDOPT_HOME", str(tmp_path))
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fedopt.db'}"
        monkeypatch.setenv("DATABASE_URL", url)
        yield url
        db.dispose_engines()
        return
    with _fresh_postgres_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        yield url


@pytest.fixture
def any_db(blank_db: str) -> str:
    """A migrated, empty database on each backend (SQLite file and PostgreSQL)."""
    db.upgrade(blank_db)
    return blank_db


# --------------------------------------------------------------------------- a fitted model, once per run


@pytest.fixture(scope="session")
def benchmark_runs(shared_data: Path):
    """Lambda's public benchmark as runs (the real measurements every model test starts from)."""
    from fedopt_core.catalog.datasets import load_lambda_benchmarks

    return load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")


@pytest.fixture(scope="session")
def nine_gpu_model(benchmark_runs):
    """A predictor fitted on nine GPUs of the benchmark (fitted once, shared by the tests that read it)."""
    from fedopt_core.prediction.estimator import PerformancePredictor

    return PerformancePredictor(random_state=0).fit(
        benchmark_runs.loc[benchmark_runs["gpu_type"].isin(NINE_TRAINING_GPUS)]
    )
