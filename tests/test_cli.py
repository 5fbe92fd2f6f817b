"""The fedopt command, run as a real process against a temporary SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, home: Path, url: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": url or f"sqlite:///{home / 'fedopt.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "fedopt_core.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli")
    result = run_cli("setup", home=home)
    assert result.returncode == 0, result.stderr
    return home


def test_platforms_list_json_has_lambda_gpu_types_with_prices(home: Path) -> None:
    result = run_cli("platforms", "list", "--json", home=home)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    gpu_rows = [r for r in rows if r["provider"] == "lambda" and r["gpu_count"] > 0]
    assert len(gpu_rows) >= 20
    assert all(r["price_per_hour_usd"] > 0 for r in gpu_rows)


def test_techniques_list_json_and_search(home: Path) -> None:
    everything = json.loads(run_cli("techniques", "list", "--json", home=home).stdout)
    assert len(everything) >= 20
    spot = json.loads(run_cli("techniques", "list", "--search", "spot", "--json", home=home).stdout)
    assert 0 < len(spot) < len(everything)
    assert all("spot" in (t["name"] + t["description"]).lower() for t in spot)


def test_setup_twice_changes_neither_count(home: Path) -> None:
    before = (len(json.loads(run_cli("platforms", "list", "--json", home=home).stdout)),
              len(json.loads(run_cli("techniques", "list", "--json", home=home).stdout)))
    again = run_cli("setup", home=home)
    assert again.returncode == 0 and "0 added" in again.stdout
    after = (len(json.loads(run_cli("platforms", "list", "--json", home=home).stdout)),
             len(json.loads(run_cli("techniques", "list", "--json", home=home).stdout)))
    assert before == after


def test_db_upgrade_reports_the_revision(tmp_path: Path) -> None:
    result = run_cli("db", "upgrade", home=tmp_path)
    assert result.returncode == 0 and "revision" in result.stdout


@pytest.mark.parametrize(
    "url",
    ["definitely-not-a-url", "postgresql+psycopg://u:hunter2@127.0.0.1:1/x?connect_timeout=2"],
)
def test_a_bad_database_url_is_one_line_and_a_nonzero_exit(tmp_path: Path, url: str) -> None:
    result = run_cli("platforms", "list", home=tmp_path, url=url)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "database" in lines[0].lower()
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
