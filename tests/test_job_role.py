"""A job machine's database role on a real PostgreSQL server: it logs runs and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from fedopt_core import db
from tests.conftest import _fresh_postgres_database


def _cli(*args: str, url: str, home: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"DATABASE_URL": url, "FEDOPT_HOME": str(home)}
    env.pop("FEDOPT_SECRET_KEY", None)
    return subprocess.run([sys.executable, "-m", "fedopt_core.cli", *args], env=env, capture_output=True, text=True)


def test_the_documented_job_role_logs_runs_and_tracks_but_cannot_change_roles(tmp_path: Path) -> None:
    with _fresh_postgres_database() as owner_url:
        assert _cli("setup", url=owner_url, home=tmp_path / "admin").returncode == 0
        role = f"job_{uuid.uuid4().hex[:8]}"
        printed = _cli("db", "job-role", role, "--password", "s3cret pw", url=owner_url, home=tmp_path / "admin")
        assert printed.returncode == 0 and printed.stdout.count(";") == len(db.job_role_sql(role, "x"))
        engine = create_engine(owner_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as owner:
            for statement in db.job_role_sql(role, "s3cret pw"):
                owner.execute(text(statement))
        engine.dispose()
        job_url = make_url(owner_url).set(username=role, password="s3cret pw").render_as_string(hide_password=False)
        job_home = tmp_path / "job"
        logged = _cli(
            "runs", "log", "--gpu-type", "A10", "--gpu-count", "1", "--seconds", "5", url=job_url, home=job_home
        )
        assert logged.returncode == 0, logged.stderr
        tracked = subprocess.run(
            [sys.executable, "-W", "error::RuntimeWarning", "-c",
             "from fedopt_core import track\n"
             "with track({'workload': 'w'}, {'gpu_type': 'A10', 'gpu_count': 1}) as run:\n    pass\n"
             "assert run.recorded, run.error"],
            env=os.environ | {"DATABASE_URL": job_url, "FEDOPT_HOME": str(job_home)}, capture_output=True, text=True,
        )  # fmt: skip
        assert tracked.returncode == 0, tracked.stderr
        refused = _cli("roles", "set", "intruder@uni.edu", "admin", url=job_url, home=job_home)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        job = create_engine(job_url)
        with job.connect() as conn:
            for statement in (
                "INSERT INTO user_role (email, role, updated_at) VALUES ('intruder@uni.edu', 'admin', now())",
                "UPDATE account SET monthly_budget_usd = 1e9",
                "SELECT api_key_encrypted FROM account",
                "UPDATE platform SET price_per_hour_usd = 0.01",
            ):
                with pytest.raises(ProgrammingError, match="permission denied"):
                    conn.execute(text(statement))
                conn.rollback()
        job.dispose()
        db.dispose_engines()
        with create_engine(owner_url).connect() as owner:
            assert owner.execute(text("SELECT count(*) FROM run")).scalar() == 2
            assert owner.execute(text("SELECT count(*) FROM user_role")).scalar() == 0
