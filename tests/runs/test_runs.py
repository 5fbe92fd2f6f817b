"""Logging actual runs: one write path for log_run, track(), record_actual_performance and the CLI,
read back from the database; predictions linked to later runs; editing, deleting, exporting."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from fedopt_core import auth, db, runs, schema
from fedopt_core.cli import main as cli_main
from fedopt_core.models import ModelVersion, utcnow

H100 = {"gpu_type": "H100 SXM5", "gpu_count": 8, "platform": "gpu_8x_h100_sxm5", "price_per_hour_usd": 23.92}
RESNET = {"task_type": "training", "workload": "resnet50", "precision": "fp16_amp", "batch_size": 2048}


def rows(url: str, where: str = "1=1") -> list[dict]:
    """The run table as plain dicts, read with SQL (not through runs.py)."""
    with db.get_engine(url).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM run WHERE {where} ORDER BY id"))]


# --------------------------------------------------------------------------- log_run


def test_log_run_stores_the_validated_run(empty_db: str) -> None:
    logged = runs.log_run({**RESNET, **H100, "execution_time_s": "3600.5", "notes": "first"}, source="cli")
    assert logged.inserted
    [row] = rows(empty_db)
    assert row["id"] == logged.run_id
    assert row["execution_time_s"] == 3600.5 and row["gpu_count"] == 8 and row["workload"] == "resnet50"
    assert row["source"] == "cli" and row["notes"] == "first" and row["success"] == 1
    clean, _ = schema.validate_frame(pd.DataFrame([{**RESNET, **H100, "execution_time_s": 3600.5}]))
    expected_key = schema.run_keys(clean, extra=pd.Series([""])).iloc[0]
    assert row["run_key"] == expected_key


def test_logging_the_same_run_twice_adds_nothing(empty_db: str) -> None:
    first = runs.log_run({**H100, "execution_time_s": 60})
    second = runs.log_run({**H100, "execution_time_s": 60.0, "gpu_count": "8"})
    assert first.inserted and not second.inserted and second.run_id == first.run_id
    assert len(rows(empty_db)) == 1
    # Same numbers at a different start time are a different run.
    third = runs.log_run({**H100, "execution_time_s": 60, "started_at": "2025-03-01T10:00:00Z"})
    assert third.inserted and len(rows(empty_db)) == 2


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"gpu_count": 1, "execution_time_s": 5}, "gpu_type"),
        ({"gpu_type": "A100", "gpu_count": 1, "execution_time_s": -5}, "execution_time_s"),
        ({"gpu_type": "A100", "gpu_count": 1}, "execution_time_s"),
        ({"gpu_type": "A100", "gpu_count": 1, "execution_time_s": 5, "started_at": "yesterday-ish"}, "started_at"),
        ({"gpu_type": "A100", "gpu_count": 1, "execution_time_s": 5, "started_at": "01/02/2025 10:00"}, "started_at"),
        ({"gpu_type": "=cmd|' /C calc'!A0", "gpu_count": 1, "execution_time_s": 5}, "gpu_type"),
        ({"gpu_type": "A100", "gpu_count": 1, "execution_time_s": 5, "gpu_typo": "x"}, "gpu_typo"),
    ],
)
def test_bad_runs_are_refused_naming_the_field_and_store_nothing(empty_db: str, values: dict, field: str) -> None:
    with pytest.raises(schema.ValidationError) as info:
        runs.log_run(values)
    assert info.value.field == field
    assert rows(empty_db) == []


def test_a_viewer_cannot_log_and_a_member_cannot_delete(empty_db: str) -> None:
    with auth.acting_as(auth.Actor("vera", "viewer", signed_in=True)), pytest.raises(auth.PermissionDenied):
        runs.log_run({**H100, "execution_time_s": 1})
    with auth.acting_as(auth.Actor("max", "member", email="max@uni.example", signed_in=True)):
        logged = runs.log_run({**H100, "execution_time_s": 1})
        with pytest.raises(auth.PermissionDenied):
            runs.delete_run(logged.run_id)
    [row] = rows(empty_db)
    assert row["logged_by"] == "max"  # a signed-in member's run carries their name


# --------------------------------------------------------------------------- track()


def test_track_times_the_block_and_records_it(empty_db: str) -> None:
    from fedopt_core import track

    with track(task=RESNET, platform=H100) as handle:
        time.sleep(0.05)
    assert handle.recorded and handle.error is None
    [row] = rows(empty_db)
    assert row["id"] == handle.run_id and row["source"] == "track" and row["success"] == 1
    assert 0.05 <= row["execution_time_s"] < 5
    assert row["execution_time_s"] == pytest.approx(handle.execution_time_s)
    assert row["started_at"] is not None and row["workload"] == "resnet50"


def test_track_records_a_failure_and_reraises_the_users_exception(empty_db: str) -> None:
    from fedopt_core import track

    with pytest.raises(ZeroDivisionError), track(task=RESNET, platform=H100) as handle:
        1 / 0  # noqa: B018 - the user's job failing
    [row] = rows(empty_db)
    assert row["success"] == 0 and handle.success is False and handle.recorded


def test_track_with_bad_fields_warns_early_and_never_masks_the_users_exception(empty_db: str) -> None:
    from fedopt_core import track

    with (
        pytest.warns(RuntimeWarning, match="gpu_type") as caught,
        pytest.raises(KeyError, match="the user's"),
        track(task=RESNET, platform={"gpu_count": 1}),
    ):
        raise KeyError("the user's")
    assert any("will not be recorded" in str(w.message) for w in caught)
    assert rows(empty_db) == []


def test_track_warns_but_does_not_crash_when_the_database_cannot_be_written(tmp_path: Path) -> None:
    from fedopt_core import track

    (tmp_path / "a-file").write_text("not a folder")
    broken = f"sqlite:///{tmp_path / 'a-file' / 'fedopt.db'}"
    done = []
    with (
        pytest.warns(RuntimeWarning, match="run not recorded"),
        track(task=RESNET, platform=H100, database_url=broken) as handle,
    ):
        done.append("the job ran")
    assert done == ["the job ran"] and not handle.recorded and "DatabaseError" in handle.error
    db.dispose_engines()


def test_track_creates_the_configured_database_when_it_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedopt_core import track

    url = f"sqlite:///{tmp_path / 'fresh' / 'fedopt.db'}"
    monkeypatch.setenv("FEDOPT_HOME", str(tmp_path / "fresh"))
    monkeypatch.setenv("DATABASE_URL", url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        with track(task={"workload": "ncf"}, platform={"gpu_type": "cpu", "gpu_count": 0}) as handle:
            pass
    assert handle.recorded
    assert [r["workload"] for r in rows(url)] == ["ncf"]
    assert db.current_revision(url) == db.head_revision()
    db.dispose_engines()


def test_track_keeps_unknown_keys_in_the_notes(empty_db: str) -> None:
    from fedopt_core import track

    with (
        pytest.warns(RuntimeWarning, match="rack"),
        track(task={"workload": "ncf"}, platform={**H100, "rack": "B7"}, notes="nightly"),
    ):
        pass
    [row] = rows(empty_db)
    assert row["notes"] == "nightly | extra: rack=B7"


def test_track_does_not_record_a_keyboard_interrupt(empty_db: str) -> None:
    from fedopt_core import track

    with pytest.raises(KeyboardInterrupt), track(task=RESNET, platform=H100):
        raise KeyboardInterrupt
    assert rows(empty_db) == []


# --------------------------------------------------------------------------- record_actual_performance


def test_record_actual_performance_stores_the_run(empty_db: str) -> None:
    from fedopt_core import record_actual_performance

    assert record_actual_performance(RESNET, H100, 1234.5) is True
    assert record_actual_performance(RESNET, H100, 99.0, success=False) is True
    stored = rows(empty_db)
    assert [(r["execution_time_s"], r["success"], r["source"]) for r in stored] == [
        (1234.5, 1, "api"),
        (99.0, 0, "api"),
    ]


@pytest.mark.parametrize(("execution_time", "field"), [(-1.0, "execution_time_s"), ("slow", "execution_time_s")])
def test_record_actual_performance_returns_false_with_a_logged_reason(
    empty_db: str, caplog: pytest.LogCaptureFixture, execution_time: object, field: str
) -> None:
    from fedopt_core import record_actual_performance

    with caplog.at_level(logging.WARNING, logger="fedopt.runs"):
        assert record_actual_performance(RESNET, H100, execution_time) is False
    assert field in caplog.text and "not recorded" in caplog.text
    assert rows(empty_db) == []


# --------------------------------------------------------------------------- predictions


def _predict(task: dict, seconds: float, lower: float | None = None, upper: float | None = None) -> int:
    frame = pd.DataFrame([{**task, "predicted_time_s": seconds, "lower_s": lower, "upper_s": upper}])
    return runs.record_predictions(frame, method="model")[0]


def test_a_run_is_linked_to_the_latest_unlinked_prediction_of_its_task(empty_db: str) -> None:
    task = {**RESNET, **H100}
    older = _predict(task, 1000.0)
    newer = _predict(task, 900.0, 800.0, 1000.0)
    other = _predict({**task, "workload": "bert_large_squad"}, 50.0)
    first = runs.log_run({**task, "execution_time_s": 950.0})
    assert first.linked_prediction_id == newer
    second = runs.log_run({**task, "execution_time_s": 1100.0})
    assert second.linked_prediction_id == older
    third = runs.log_run({**task, "execution_time_s": 1200.0})
    assert third.linked_prediction_id is None

    pairs = runs.prediction_pairs()
    assert pairs["prediction_id"].tolist() == [older, newer]
    by_id = pairs.set_index("prediction_id")
    assert by_id.loc[newer, "run_id"] == first.run_id
    assert by_id.loc[newer, "abs_pct_error"] == pytest.approx(50.0 / 950.0)
    assert by_id.loc[newer, "within_interval"] is True
    assert by_id.loc[older, "within_interval"] is None  # no interval was given
    with db.get_engine(empty_db).connect() as conn:
        assert conn.execute(text("SELECT run_id FROM prediction WHERE id = :i"), {"i": other}).scalar() is None


def test_failed_runs_and_runs_started_before_the_prediction_score_nothing(empty_db: str) -> None:
    task = {**RESNET, **H100}
    prediction = _predict(task, 100.0)
    failed = runs.log_run({**task, "execution_time_s": 5.0, "success": False})
    earlier = runs.log_run({**task, "execution_time_s": 90.0, "started_at": utcnow() - timedelta(days=1)})
    assert failed.linked_prediction_id is None and earlier.linked_prediction_id is None
    later = runs.log_run({**task, "execution_time_s": 95.0})
    assert later.linked_prediction_id == prediction


def test_deleting_a_run_frees_its_prediction(empty_db: str) -> None:
    task = {**RESNET, **H100}
    prediction = _predict(task, 100.0)
    logged = runs.log_run({**task, "execution_time_s": 120.0})
    assert logged.linked_prediction_id == prediction
    assert runs.delete_run(logged.run_id) is True
    assert runs.delete_run(logged.run_id) is False
    assert runs.prediction_pairs().empty
    again = runs.log_run({**task, "execution_time_s": 121.0})
    assert again.linked_prediction_id == prediction
    events = auth.audit_log(action="run.delete")
    assert events["target"].tolist() == [f"run {logged.run_id}"]


def test_bad_predictions_are_refused_naming_the_field(empty_db: str) -> None:
    with pytest.raises(schema.ValidationError) as info:
        runs.record_predictions(pd.DataFrame([{**H100, "predicted_time_s": -1.0}]))
    assert info.value.field == "predicted_time_s"
    with pytest.raises(schema.ValidationError) as info:
        runs.record_predictions(pd.DataFrame([{**H100, "predicted_time_s": 10.0, "upper_s": float("inf")}]))
    assert info.value.field == "upper_s"


# --------------------------------------------------------------------------- reading


def _some_runs() -> list[int]:
    ids = [
        runs.log_run(
            {**RESNET, **H100, "execution_time_s": 100, "started_at": "2025-01-10T08:00:00Z"}, source="form"
        ).run_id,
        runs.log_run(
            {
                **RESNET,
                "gpu_type": "A100 SXM4 80GB",
                "gpu_count": 1,
                "execution_time_s": 800,
                "started_at": "2025-02-10T08:00:00Z",
            },
            source="cli",
        ).run_id,
        runs.log_run(
            {
                "workload": "bert_large_squad",
                **H100,
                "execution_time_s": 40,
                "success": False,
                "started_at": "2025-03-10T08:00:00Z",
            },
            source="cli",
        ).run_id,
    ]
    return ids


def test_list_runs_filters(empty_db: str) -> None:
    a, b, c = _some_runs()
    assert runs.list_runs()["id"].tolist() == [c, b, a]  # newest first
    assert runs.list_runs(workload="resnet50")["id"].tolist() == [b, a]
    assert runs.list_runs(gpu_type=["A100 SXM4 80GB"])["id"].tolist() == [b]
    assert runs.list_runs(source="cli")["id"].tolist() == [c, b]
    assert runs.list_runs(success=False)["id"].tolist() == [c]
    assert runs.list_runs(since=date(2025, 2, 1), until=date(2025, 2, 10))["id"].tolist() == [b]
    assert runs.list_runs(since=datetime(2025, 3, 10, 8, tzinfo=UTC))["id"].tolist() == [c]
    assert runs.list_runs(limit=1)["id"].tolist() == [c]
    assert runs.run_facets()["workload"] == ["bert_large_squad", "resnet50"]
    with pytest.raises(ValueError, match="time zone"):
        runs.list_runs(since=datetime(2025, 1, 1))


def test_training_frame_has_the_successful_runs_in_the_run_schema(empty_db: str) -> None:
    a, b, _ = _some_runs()
    frame = runs.training_frame()
    assert set(schema.RUN_FIELDS) <= set(frame.columns)
    assert sorted(frame["run_id"]) == sorted([a, b])
    assert frame["success"].all() and frame["execution_time_s"].dtype == float


def test_count_runs_since_a_time_and_a_model_version(empty_db: str) -> None:
    _some_runs()
    assert runs.count_runs_since() == 2  # successful runs
    assert runs.count_runs_since(successful_only=False) == 3
    with db.session_scope(empty_db) as session:
        version = ModelVersion(status="active")
        session.add(version)
        session.flush()
        version_id = version.id
    mark = utcnow()
    runs.log_run({**H100, "execution_time_s": 7})
    runs.log_run({**H100, "execution_time_s": 8})
    assert runs.count_runs_since(version_id) == 2
    assert runs.count_runs_since(mark - timedelta(seconds=0)) == 2
    assert runs.count_runs_since(utcnow()) == 0
    with pytest.raises(LookupError):
        runs.count_runs_since(version_id + 100)


# --------------------------------------------------------------------------- edit and delete


def test_update_run_validates_and_keeps_identity_unique(empty_db: str) -> None:
    a, b, _ = _some_runs()
    updated = runs.update_run(a, {"execution_time_s": 123.0, "notes": "re-measured"})
    assert updated["execution_time_s"] == 123.0
    [row] = rows(empty_db, f"id = {a}")
    assert row["execution_time_s"] == 123.0 and row["notes"] == "re-measured" and row["source"] == "form"
    with pytest.raises(schema.ValidationError) as info:
        runs.update_run(a, {"gpu_count": 0})
    assert info.value.field == "gpu_count"
    before = rows(empty_db, f"id = {b}")
    with pytest.raises(schema.ValidationError) as info:
        runs.update_run(b, {k: runs.get_run(a)[k] for k in [*schema.RUN_FIELDS, "started_at"]})
    assert info.value.field == "run" and str(a) in info.value.message
    assert rows(empty_db, f"id = {b}") == before
    with pytest.raises(runs.RunNotFoundError):
        runs.update_run(999, {"notes": "x"})
    assert auth.audit_log(action="run.edit")["details"].iloc[-1]["fields"] == ["execution_time_s", "notes"]


# --------------------------------------------------------------------------- export


def test_export_neutralises_formulas_and_reimports_as_duplicates(empty_db: str, tmp_path: Path) -> None:
    runs.log_run({**H100, "workload": "-quoted", "execution_time_s": 10, "notes": "=cmd|' /C calc'!A0"})
    runs.log_run({**H100, "workload": "ok", "execution_time_s": 11, "notes": "+1+1", "logged_by": "ann"})
    path = tmp_path / "runs.csv"
    text_out = runs.export_csv(path)
    assert path.read_text(encoding="utf-8") == text_out
    cells = [cell for row in csv.reader(io.StringIO(text_out)) for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@"))]
    assert "'=cmd|' /C calc'!A0" in cells and "'-quoted" in cells
    result = runs.import_csv(path)
    assert (result.inserted, result.refused) == (0, 0) and result.duplicates == 2


# --------------------------------------------------------------------------- CLI


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "fedopt_core.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_runs_log_as_a_real_process(empty_db: str) -> None:
    result = run_cli(
        "runs",
        "log",
        "--workload",
        "resnet50",
        "--gpu-type",
        "H100 SXM5",
        "--gpu-count",
        "8",
        "--seconds",
        "3600",
        "--precision",
        "bf16",
        "--started-at",
        "2025-04-01T12:00:00+02:00",
        "--json",
        url=empty_db,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [row] = rows(empty_db)
    assert data["run_id"] == row["id"] and data["inserted"] is True
    assert (row["workload"], row["gpu_count"], row["execution_time_s"], row["precision"], row["source"]) == (
        "resnet50",
        8,
        3600.0,
        "bf16",
        "cli",
    )
    assert runs.get_run(row["id"])["started_at"] == datetime(2025, 4, 1, 10, tzinfo=UTC)


def test_cli_runs_log_refuses_a_bad_value_naming_the_option(empty_db: str, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["runs", "log", "--gpu-type", "A100", "--gpu-count", "two", "--seconds", "5"])
    assert code == 1
    assert "--gpu-count" in capsys.readouterr().err
    code = cli_main(["runs", "log", "--gpu-type", "A100", "--gpu-count", "1", "--seconds", "0"])
    assert code == 1 and "--seconds" in capsys.readouterr().err
    assert rows(empty_db) == []


def test_cli_runs_list_and_export(empty_db: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b, c = _some_runs()
    assert cli_main(["runs", "list", "--json", "--limit", "2"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == [c, b]
    assert cli_main(["runs", "list", "--workload", "bert_large_squad"]) == 0
    table = capsys.readouterr().out
    assert "bert_large_squad" in table and "resnet50" not in table
    out = tmp_path / "export.csv"
    assert cli_main(["runs", "export", str(out)]) == 0
    assert "wrote 3 runs" in capsys.readouterr().err
    exported = pd.read_csv(out)
    assert sorted(exported["id"]) == sorted([a, b, c])
    assert set(runs.EXPORT_COLUMNS) == set(exported.columns)


def test_a_repeated_prediction_is_stored_once_within_the_window(empty_db: str) -> None:
    task = {**RESNET, **H100}
    frame = pd.DataFrame([{**task, "predicted_time_s": 100.0}, {**task, "gpu_count": 4, "predicted_time_s": 180.0}])
    first = runs.record_predictions(frame, method="model", model_version_id=None)
    again = runs.record_predictions(frame, method="model")
    assert again == first and len(set(first)) == 2
    changed = runs.record_predictions(frame.assign(predicted_time_s=[100.0, 190.0]), method="model")
    assert changed[0] == first[0] and changed[1] not in first
    heuristic = runs.record_predictions(frame.iloc[:1], method="heuristic")
    assert heuristic[0] not in first
    unwindowed = runs.record_predictions(frame.iloc[:1], method="model", repeat_window=None)
    assert unwindowed[0] not in first
    with db.get_engine(empty_db).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM prediction")).scalar() == 5
