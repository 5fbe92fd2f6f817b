"""The fedopt command, run as a real process against a temporary SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str, home: Path, url: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    env = (
        os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": url or f"sqlite:///{home / 'fedopt.db'}"} | (env or {})
    )
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
    before = (
        len(json.loads(run_cli("platforms", "list", "--json", home=home).stdout)),
        len(json.loads(run_cli("techniques", "list", "--json", home=home).stdout)),
    )
    again = run_cli("setup", home=home)
    assert again.returncode == 0 and "0 added" in again.stdout
    after = (
        len(json.loads(run_cli("platforms", "list", "--json", home=home).stdout)),
        len(json.loads(run_cli("techniques", "list", "--json", home=home).stdout)),
    )
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


def test_predict_json_answers_for_every_catalogue_platform(home: Path) -> None:
    listed = json.loads(run_cli("platforms", "list", "--json", home=home).stdout)
    gpu_types = {r["instance_type"] for r in listed if r["gpu_count"] > 0 and r["available"]}
    result = run_cli(
        "predict", "--workload", "resnet50", "--precision", "fp16_amp", "--work-units", "1000000", "--json", home=home
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["method"] == "heuristic" and answer["model_version"] is None
    rows = answer["platforms"]
    assert {r["platform"] for r in rows} == gpu_types
    assert all(0 < r["lower_s"] <= r["predicted_time_s"] <= r["upper_s"] for r in rows)


def test_predict_scales_from_a_run_the_user_already_measured(home: Path) -> None:
    args = ["predict", "--workload", "my-job", "--platform", "gpu_1x_a10", "--json"]
    cold = json.loads(run_cli(*args, home=home).stdout)["platforms"][0]
    anchored = json.loads(run_cli(*args, "--ran-on", "A10", "--ran-seconds", "5000", home=home).stdout)["platforms"][0]
    # Same GPU as the measured run: the prediction sits on the measurement, with a narrower interval.
    assert abs(anchored["predicted_time_s"] - 5000) / 5000 < 0.25
    assert anchored["upper_s"] / anchored["lower_s"] < cold["upper_s"] / cold["lower_s"]


def test_plan_shard_json_known_case_shape(home: Path) -> None:
    result = run_cli(
        "plan",
        "shard",
        "--work-units",
        "1000000",
        "--platform",
        "gpu_1x_a10=2",
        "--platform",
        "gpu_1x_h100_pcie=1",
        "--workload",
        "resnet50",
        "--json",
        home=home,
    )
    assert result.returncode in (0, 1), result.stderr
    plan = json.loads(result.stdout)
    assert sum(p["units"] for p in plan["platforms"]) == 1_000_000
    assert plan["message"] and "makespan_s" in plan["totals"]


def test_model_list_json_is_empty_before_training(home: Path) -> None:
    result = run_cli("model", "list", "--json", home=home)
    assert result.returncode == 0 and json.loads(result.stdout) == []


# ---------------------------------------------------------------- exports never write over what they should not


def test_exports_refuse_an_existing_file_without_force_and_never_touch_the_key_or_database(home: Path) -> None:
    key, database = home / "secret.key", home / "fedopt.db"
    run_cli("accounts", "list", home=home)  # the key file exists once anything asked for it
    protected = {p: p.read_bytes() for p in (key, database) if p.exists()}
    assert database in protected
    for target in protected:
        for force in ([], ["--force"]):
            for command in (
                ["usage", "report", "--month", "2026-11", "--out", str(target)],
                ["audit", "export", "--out", str(target)],
            ):
                result = run_cli(*command, *force, home=home)
                assert result.returncode != 0 and "--out" not in result.stdout
                assert "database or key file" in result.stderr and "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in protected} == protected
    existing = home / "old-audit.csv"
    existing.write_text("keep me", encoding="utf-8")
    refused = run_cli("audit", "export", "--out", str(existing), home=home)
    assert refused.returncode != 0 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert existing.read_text(encoding="utf-8") == "keep me"
    forced = run_cli("audit", "export", "--out", str(existing), "--force", home=home)
    assert forced.returncode == 0 and existing.read_text(encoding="utf-8").startswith("at,actor")
    folder = run_cli("audit", "export", "--out", str(home), home=home)
    assert folder.returncode != 0 and "is a directory" in folder.stderr and "Traceback" not in folder.stderr


# ---------------------------------------------------------------- jobs described by model and tokens


def _predict_model(home: Path, model: str, mode: str, *extra: str) -> dict:
    result = run_cli("predict", "--model", model, "--mode", mode, "--tokens", "2e8", *extra, "--json", home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_70b_full_fine_tune_is_never_recommended_on_one_8x80_gb_node(home: Path) -> None:
    answer = _predict_model(home, "llama-3.1-70b", "full-ft")
    rows = {r["platform"]: r for r in answer["platforms"]}
    for name in ("gpu_8x_h100_sxm5", "gpu_8x_a100_80gb_sxm4"):
        assert rows[name]["fits_memory"] is False and not rows[name]["feasible"]
        assert rows[name]["memory_per_gpu_gb"] > 80
        assert "needs 143 GB per GPU, has 80" in rows[name]["warning"]
    recommended = answer["recommendation"]
    assert recommended is None or rows[recommended["platform"]]["fits_memory"] is True


def test_70b_bf16_inference_is_never_recommended_on_one_80_gb_gpu(home: Path) -> None:
    answer = _predict_model(home, "llama-3.1-70b", "offline", "--precision", "bf16")
    rows = {r["platform"]: r for r in answer["platforms"]}
    assert rows["gpu_1x_h100_sxm5"]["fits_memory"] is False
    assert rows["gpu_1x_a100"]["fits_memory"] is False
    assert rows["gpu_2x_h100_sxm5"]["fits_memory"] is True
    assert rows[answer["recommendation"]["platform"]]["fits_memory"] is True


def test_8b_full_fine_tune_fits_8_a100_80gb_sharded_but_not_one_h100(home: Path) -> None:
    answer = _predict_model(home, "llama-3.1-8b", "full-ft")
    rows = {r["platform"]: r for r in answer["platforms"]}
    assert rows["gpu_1x_h100_sxm5"]["fits_memory"] is False
    assert rows["gpu_8x_a100_80gb_sxm4"]["fits_memory"] is True
    assert rows["gpu_8x_a100_80gb_sxm4"]["memory_layout"] == "fully sharded"


def test_8b_bf16_inference_fits_one_24_gb_a10_at_the_default_context(home: Path) -> None:
    answer = _predict_model(home, "llama-3.1-8b", "offline", "--precision", "bf16")
    a10 = next(r for r in answer["platforms"] if r["platform"] == "gpu_1x_a10")
    assert a10["fits_memory"] is True and 16 < a10["memory_per_gpu_gb"] < 18


def test_a_job_that_fits_nowhere_gets_no_recommendation_and_says_what_it_needs(home: Path) -> None:
    answer = _predict_model(home, "llama-3.1-405b", "full-ft", "--platform", "gpu_8x_h100_sxm5")
    assert answer["recommendation"] is None
    assert "fits on none" in answer["reason"] and "would fit on" in answer["reason"]


def test_a_serving_target_says_how_many_gpus_each_platform_needs(home: Path) -> None:
    answer = _predict_model(home, "llama-3.1-8b", "serving", "--target-tokens-per-s", "20000")
    assert answer["target_tokens_per_s"] == 20000
    fleet = answer["serving"]
    served = [r for r in fleet if r["serves_target"]]
    assert served, "some platform serves 20,000 tokens/s"
    for row in served:
        # sized on the pessimistic rate of one replica, and no larger than needed
        assert row["replicas_needed"] * row["replica_tokens_per_s_low"] >= 20000 * (1 - 1e-9)
        assert (row["replicas_needed"] - 1) * row["replica_tokens_per_s_low"] < 20000
        assert row["gpus_needed"] == row["replicas_needed"] * row["gpu_count"]
        assert row["fits_memory"] is not False
    by_name = {r["platform"]: r for r in fleet}
    a10, h100 = by_name["gpu_1x_a10"], by_name["gpu_1x_h100_sxm5"]
    # a 24 GB A10 holds fewer sequences' KV caches beside the weights and is slower: more replicas
    assert a10["replicas_needed"] > h100["replicas_needed"]
    assert a10["mean_tpot_ms"] > 0 and h100["mean_tpot_ms"] > 0
    plain = run_cli("predict", "--model", "llama-3.1-8b", "--mode", "serving", "--tokens", "1e6",
                    "--target-tokens-per-s", "20000", home=home)  # fmt: skip
    assert plain.returncode == 0 and "replicas_needed" in plain.stdout and "TTFT not predicted" in plain.stdout


def test_a_serving_target_needs_work_in_tokens(home: Path) -> None:
    result = run_cli("predict", "--workload", "resnet50", "--work-units", "1e6", "--target-tokens-per-s", "100",
                     home=home)  # fmt: skip
    assert result.returncode != 0 and "--target-tokens-per-s" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_model_is_refused_naming_the_option(home: Path) -> None:
    result = run_cli("predict", "--model", "no-such-model-9b", "--mode", "lora", home=home)
    assert result.returncode != 0
    assert "--model" in result.stderr and "fedopt models list" in result.stderr and "Traceback" not in result.stderr


def test_models_list_json(home: Path) -> None:
    rows = json.loads(run_cli("models", "list", "--json", home=home).stdout)
    assert len(rows) >= 40
    llama = json.loads(run_cli("models", "list", "--search", "llama-3.1", "--json", home=home).stdout)
    assert {r["model_id"] for r in llama} == {"llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"}


def test_the_shipped_dashboard_shows_no_error_details_in_the_browser() -> None:
    from fedopt_core.cli.dashboard import streamlit_command

    assert "--client.showErrorDetails=none" in streamlit_command(8501, "localhost", [])


@pytest.mark.parametrize(
    ("option", "value"),
    [("--gpu-count", "99999999999999999999"), ("--gpu-count", "1e9"), ("--vcpus", "1e15"), ("--ram-gb", "1e18"),
     ("--seconds", "1e300"), ("--price-per-hour-usd", "1e300")],
)  # fmt: skip
def test_runs_log_refuses_absurd_counts_and_sizes_naming_the_option(home: Path, option: str, value: str) -> None:
    base = {"--gpu-type": "A10", "--gpu-count": "1", "--seconds": "5", option: value}
    result = run_cli("runs", "log", *[x for pair in base.items() for x in pair], home=home)
    assert result.returncode != 0 and option in result.stderr and "at most" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_list_never_prints_a_control_character_stored_before_they_were_refused(tmp_path: Path) -> None:
    import sqlite3

    home = tmp_path
    assert run_cli("runs", "log", "--gpu-type", "A10", "--gpu-count", "1", "--seconds", "5", home=home).returncode == 0
    with sqlite3.connect(home / "fedopt.db") as db:  # as an older version might have stored it
        db.execute("update run set workload = ?, notes = ?", ("evil\x1b[2J\x07\u202e", "bell\x07"))
    listed = run_cli("runs", "list", home=home)
    assert listed.returncode == 0 and "evil" in listed.stdout
    assert not any(c in listed.stdout for c in ("\x1b", "\x07", "\u202e")) and "\\x1b" in listed.stdout
    as_json = run_cli("runs", "list", "--json", home=home)
    assert "\x1b" not in as_json.stdout and json.loads(as_json.stdout)[0]["workload"].startswith("evil\x1b")


def test_a_deleted_key_file_is_one_line_that_names_the_fix_and_forget_keys_recovers(tmp_path: Path) -> None:
    home = tmp_path
    env_key = {"LAB_KEY": "secret_cli_lab_key_123456", "NEW_KEY": "secret_cli_new_key_987654"}
    os.environ.update(env_key)
    try:
        assert run_cli("setup", home=home).returncode == 0  # who sets fedopt up holds its key
        added = run_cli("accounts", "add", "lab", "--api-key-env", "LAB_KEY", home=home)
        assert added.returncode == 0, added.stderr
        second = run_cli("accounts", "add", "lab2", "--no-api-key", home=home)
        assert second.returncode == 0, second.stderr
        (home / "secret.key").unlink()
        assert run_cli("setup", home=home).returncode == 0  # a new key file: it opens nothing stored
        refused = run_cli("accounts", "set-key", "lab2", "--api-key-env", "NEW_KEY", home=home)
        assert refused.returncode != 0 and "secret key" in refused.stderr
        assert "Traceback" not in refused.stderr and "secret_cli" not in refused.stderr
        assert run_cli("accounts", "forget-keys", home=home).returncode != 0  # not without --yes
        forgot = run_cli("accounts", "forget-keys", "--yes", home=home)
        assert forgot.returncode == 0 and "lab" in forgot.stdout
        again = run_cli("accounts", "set-key", "lab2", "--api-key-env", "NEW_KEY", home=home)
        assert again.returncode == 0, again.stderr
    finally:
        for name in env_key:
            os.environ.pop(name, None)


def test_a_job_machine_with_only_the_database_url_logs_runs_but_cannot_make_itself_admin(tmp_path: Path) -> None:
    admin_home, job_home = tmp_path / "admin", tmp_path / "job"
    url = f"sqlite:///{admin_home / 'fedopt.db'}"
    assert run_cli("setup", home=admin_home).returncode == 0
    os.environ["LAB_KEY"] = "secret_job_machine_key_123456"
    try:
        assert run_cli("accounts", "add", "lab", "--api-key-env", "LAB_KEY", home=admin_home).returncode == 0
    finally:
        os.environ.pop("LAB_KEY")
    job = run_cli("roles", "set", "intruder@uni.edu", "admin", home=job_home, url=url)  # FEDOPT_HOME without the key
    assert job.returncode != 0 and "admin role" in job.stderr and "Traceback" not in job.stderr
    logged = run_cli("runs", "log", "--gpu-type", "A10", "--gpu-count", "1", "--seconds", "5", home=job_home, url=url)
    assert logged.returncode == 0, logged.stderr
    wrong_key = run_cli("roles", "set", "intruder@uni.edu", "admin", home=job_home, url=url, env={
        "FEDOPT_SECRET_KEY": "a passphrase of my own"})  # fmt: skip
    assert wrong_key.returncode != 0 and "admin role" in wrong_key.stderr
    roles = run_cli("roles", "list", "--json", home=admin_home)
    assert "intruder" not in roles.stdout
    assert run_cli("roles", "set", "pi@uni.edu", "admin", home=admin_home).returncode == 0  # with the key


def test_lambda_enforce_once_with_nothing_to_do(home: Path) -> None:
    result = run_cli("lambda", "enforce", "--dry-run", "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"actions": [], "errors": []}


def test_plain_tables_read_as_people_read_them_and_json_keeps_exact_values(home: Path) -> None:
    import pandas as pd

    from fedopt_core.cli import readable

    frame = pd.DataFrame(
        {
            "gpu_count": [1.0, 8.0],
            "predicted_time_s": [45.0, 5400.0],
            "cost_usd": [0.5, 1234.5],
            "share": [0.25, 1.5],
            "name": ["a\x1b[2Jb", "c"],
        }
    )
    shown = readable(frame)
    assert shown["gpu_count"].tolist() == [1, 8] and str(shown["gpu_count"].dtype) == "Int64"
    assert shown["predicted_time_s"].tolist() == ["45 s", "90 min"]
    assert shown["cost_usd"].tolist() == ["$0.5000", "$1,234.50"]
    assert shown["share"].tolist() == [0.25, 1.5] and shown["name"].tolist() == ["a\\x1b[2Jb", "c"]
    plain = run_cli("predict", "--workload", "resnet50", "--work-units", "1e6", "--batch-size", "256",
                    "--platform", "gpu_1x_a10", home=home)  # fmt: skip
    assert plain.returncode == 0 and " 1.0 " not in plain.stdout and "$" in plain.stdout
    exact = json.loads(run_cli("predict", "--workload", "resnet50", "--work-units", "1e6", "--batch-size", "256",
                               "--platform", "gpu_1x_a10", "--json", home=home).stdout)  # fmt: skip
    assert isinstance(exact["platforms"][0]["predicted_time_s"], float)
