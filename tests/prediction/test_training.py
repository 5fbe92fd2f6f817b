"""Retraining: versions with held-out metrics, a worse candidate rejected, roll-back, no blocking."""

from __future__ import annotations

import functools
import json
import threading

import numpy as np
import pandas as pd
import pytest

from fedopt_core import auth, runs, schema
from fedopt_core.catalog import datasets
from fedopt_core.prediction import training
from fedopt_core.prediction.estimator import PerformancePredictor

#: A small model configuration: these tests are about the retraining policy, not accuracy.
SMALL = {"n_splits": 2, "max_pairs": 1500, "max_iter": 30}


def small(cls=PerformancePredictor):
    return functools.partial(cls, **SMALL)


@pytest.fixture
def benchmark_runs(loaded_db: str, shared_data) -> pd.DataFrame:
    bench = datasets.load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")
    subset = bench[bench["workload"] == "resnet50"].reset_index(drop=True)
    runs.store_runs(subset[schema.RUN_FIELDS], source="benchmark")
    return subset


class SlowerByAFactor(PerformancePredictor):
    """A deliberately worse candidate: the real model, its answers tripled."""

    def predict_frame(self, rows, anchors=None):
        out = super().predict_frame(rows, anchors)
        for column in ("predicted_time_s", "lower_s", "upper_s"):
            out[column] = out[column] * 3
        return out


def test_the_first_model_becomes_active_with_held_out_metrics(benchmark_runs) -> None:
    result = training.train_now(predictor_factory=small())
    assert result.status == "active"
    versions = training.list_versions()
    assert versions["status"].tolist() == ["active"]
    metrics = result.metrics
    assert metrics["n_holdout"] >= training.MIN_HOLDOUT
    assert 0 <= metrics["median_ape"] < 1 and 0 <= metrics["coverage"] <= 1
    model, facts = training.active_model()
    assert facts["version"] == result.version_id and model.predict_frame(benchmark_runs.head(3)).shape[0] == 3


def test_a_deliberately_worse_candidate_is_rejected_with_the_reason(benchmark_runs) -> None:
    first = training.train_now(predictor_factory=small())
    worse = training.train_now(predictor_factory=small(SlowerByAFactor))
    assert worse.status == "rejected" and "higher median error" in worse.reason
    assert worse.metrics["median_ape"] > worse.metrics["active_median_ape"]
    _, facts = training.active_model()
    assert facts["version"] == first.version_id
    statuses = dict(zip(training.list_versions()["version"], training.list_versions()["status"], strict=True))
    assert statuses == {first.version_id: "active", worse.version_id: "rejected"}


def test_an_older_version_can_be_activated_again(benchmark_runs) -> None:
    first = training.train_now(predictor_factory=small())
    second = training.train_now(predictor_factory=small())
    assert second.status == "active"
    training.activate_version(first.version_id)
    _, facts = training.active_model()
    assert facts["version"] == first.version_id


def test_too_few_runs_is_a_clear_refusal(loaded_db: str) -> None:
    runs.log_run({"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 10})
    with pytest.raises(training.NotEnoughRuns, match="at least"):
        training.train_now(predictor_factory=small())


def test_two_retrains_never_run_at_once(benchmark_runs) -> None:
    assert training.acquire_lease(training.LEASE_NAME, "someone-else")
    with pytest.raises(training.RetrainBusy):
        training.train_now(predictor_factory=small())
    assert training.maybe_retrain_async(force=True) is None


def test_logging_a_run_does_not_wait_for_a_running_retrain(benchmark_runs) -> None:
    started, release = threading.Event(), threading.Event()

    class HeldFit(PerformancePredictor):
        def fit(self, frame):
            started.set()
            release.wait(120)  # the retrain cannot finish before the test lets it
            return super().fit(frame)

    thread = training.maybe_retrain_async(force=True, predictor_factory=small(HeldFit))
    assert thread is not None and started.wait(60)
    logged = runs.log_run({"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 12.5, "workload": "while-training"})
    # Had logging waited for the retrain, it could only return after release: the retrain is still running.
    assert logged.inserted and thread.is_alive() and training.training_status()["running"]
    release.set()
    thread.join(300)
    assert training.list_versions()["status"].iloc[0] in {"active", "rejected"}


def test_a_retrain_starts_after_n_new_runs(benchmark_runs) -> None:
    training.train_now(predictor_factory=small())
    assert training.maybe_retrain_async(every_n_runs=3) is None
    for seconds in (11.0, 12.0, 13.0):
        runs.log_run({"gpu_type": "A10", "gpu_count": 1, "execution_time_s": seconds, "workload": "new"})
    thread = training.maybe_retrain_async(every_n_runs=3, predictor_factory=small())
    assert thread is not None
    thread.join(300)
    assert len(training.list_versions()) == 2


def test_score_measures_error_and_coverage() -> None:
    frame = pd.DataFrame({"predicted_time_s": [10.0, 20.0], "lower_s": [5.0, 25.0], "upper_s": [15.0, 30.0]})
    metrics = training.score(frame, np.array([10.0, 10.0]))
    assert metrics["median_ape"] == pytest.approx(0.5) and metrics["coverage"] == 0.5


def test_calibration_curve_spans_the_kept_levels_and_agrees_with_the_version_metrics(benchmark_runs) -> None:
    result = training.train_now(predictor_factory=small())
    model, _ = training.active_model()
    curve = training.calibration_curve(model)
    assert curve["nominal"].tolist() == model.calibrated_levels() and len(curve) >= 10
    assert curve["observed"].is_monotonic_increasing  # nested intervals: a higher level never covers less
    assert curve["observed"].iloc[0] < curve["observed"].iloc[-1]
    assert (curve["n"] == result.metrics["n_holdout"]).all()  # every held-out run had a fitted prediction
    at_own_level = curve.loc[np.isclose(curve["nominal"], model.confidence), "observed"].item()
    assert at_own_level == pytest.approx(result.metrics["coverage"])


def test_calibration_curve_of_a_model_saved_without_levels_has_its_own_level_only(benchmark_runs) -> None:
    training.train_now(predictor_factory=small())
    model, _ = training.active_model()
    old = PerformancePredictor.from_bytes(model.to_bytes())
    old.calibration_ = {tier: {k: v for k, v in cal.items() if k != "levels"} for tier, cal in old.calibration_.items()}
    curve = training.calibration_curve(old)
    assert curve["nominal"].tolist() == [model.confidence]
    with pytest.raises(ValueError, match="refit"):
        old.with_confidence(0.5)


def test_calibration_curve_is_empty_before_there_are_held_out_runs(loaded_db: str) -> None:
    runs.log_run({"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 10})
    assert training.calibration_curve(PerformancePredictor()).empty


def test_fedopt_model_calibration_prints_the_curve_of_the_active_model(benchmark_runs, capsys) -> None:
    from fedopt_core.cli import main as cli_main

    assert cli_main(["model", "calibration", "--json"]) == 6  # no model yet: a clear refusal
    assert "train one first" in capsys.readouterr().err
    result = training.train_now(predictor_factory=small())
    assert cli_main(["model", "calibration", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model, _ = training.active_model()
    assert [r["nominal"] for r in rows] == model.calibrated_levels()
    assert {r["version"] for r in rows} == {result.version_id}
    assert [r["observed"] for r in rows] == training.calibration_curve(model)["observed"].tolist()


def test_fedopt_model_suspects_lists_what_the_active_model_flagged(loaded_db: str, shared_data, capsys) -> None:
    from fedopt_core.cli import main as cli_main

    bench = datasets.load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")
    subset = bench[bench["workload"] == "resnet50"].reset_index(drop=True)
    wrong = ((subset["gpu_type"] == "RTX A6000") & (subset["gpu_count"] == 1)).to_numpy(bool)
    subset.loc[wrong, "execution_time_s"] *= 50
    runs.store_runs(subset[schema.RUN_FIELDS], source="benchmark")
    training.train_now(predictor_factory=small())
    model, _ = training.active_model()
    assert cli_main(["model", "suspects", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(model.suspects_) >= 1
    assert ("RTX A6000", 1) in {(r["gpu_type"], r["gpu_count"]) for r in rows}
    assert rows[0]["measured_vs_expected"] == model.suspects_[0]["factor"]


def test_a_retrain_in_a_separate_process_is_recorded_as_the_acting_user(benchmark_runs) -> None:
    member = auth.Actor(name="ann", role="member", email="ann@uni.example.edu", signed_in=True)
    with auth.acting_as(member):
        waiter = training.maybe_retrain_async(force=True, separate_process=True)
    assert waiter is not None
    waiter.join(300)
    assert not waiter.is_alive()
    versions = training.list_versions()
    assert len(versions) == 1 and versions["status"].iloc[0] == "active"
    assert auth.audit_log(action="model.train")["actor"].tolist() == ["ann"]


def test_a_viewer_cannot_start_a_retrain_process(benchmark_runs) -> None:
    with auth.acting_as(auth.Actor(name="vic", role="viewer")), pytest.raises(auth.PermissionDenied):
        training.maybe_retrain_async(force=True, separate_process=True)
    assert training.list_versions().empty


def test_the_model_cache_keeps_the_most_recently_used_versions_only() -> None:
    cache = training._BoundedCache(2)
    loads = []

    def loader(version: int):
        return lambda: loads.append(version) or f"model {version}"

    assert cache.get_or_make(("db", 1), loader(1)) == "model 1"
    assert cache.get_or_make(("db", 2), loader(2)) == "model 2"
    assert cache.get_or_make(("db", 1), loader(1)) == "model 1"  # kept: not loaded again
    cache.get_or_make(("db", 3), loader(3))  # evicts version 2, the least recently used
    assert len(cache) == 2 and loads == [1, 2, 3]
    cache.get_or_make(("db", 2), loader(2))
    assert loads == [1, 2, 3, 2]
    assert training.MODEL_CACHE_SIZE >= 2  # the active version and the one before it


def _frame(kinds: list[tuple[str, bool]], start: int = 0) -> pd.DataFrame:
    """Runs in the order given: (task type, described by model and mode?)."""
    return pd.DataFrame(
        {
            "run_id": np.arange(start, start + len(kinds)),
            "created_at": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(start, start + len(kinds)), "s"),
            "task_type": [k for k, _ in kinds],
            "mode": ["lora" if d else None for _, d in kinds],
            "model_params_b": [8.0 if d else None for _, d in kinds],
        }
    )


def test_each_kind_of_job_keeps_four_fifths_of_its_runs_to_train_on() -> None:
    # a benchmark table first, then a file of LLM fine-tuning runs: the last import is not all held out
    old = _frame([("training", False)] * 400 + [("fine-tuning", True)] * 100)
    train, holdout = training._split_newest(old)
    kinds = training.holdout_stratum(train).value_counts()
    assert kinds["training"] == 320 and kinds["fine-tuning:described"] == 80
    held = training.holdout_stratum(holdout)
    assert (held == "fine-tuning:described").sum() == 20 and (held == "training").sum() == 80
    # within a kind, the held-out runs are its newest
    for kind in ("training", "fine-tuning:described"):
        assert (
            train.loc[training.holdout_stratum(train) == kind, "run_id"].max()
            < holdout.loc[held == kind, "run_id"].min()
        )


def test_new_runs_never_pull_an_older_models_training_runs_into_the_held_out_set() -> None:
    old = _frame([("training", False)] * 300 + [("inference", True)] * 60)
    trained_on = set(training._split_newest(old)[0]["run_id"])
    newer = pd.concat([old, _frame([("inference", True)] * 45, start=len(old))], ignore_index=True)
    _, holdout = training._split_newest(newer)
    assert not trained_on & set(holdout["run_id"])  # the active model is scored on runs it never saw


def test_kinds_too_small_for_a_fifth_each_fall_back_to_the_newest_overall() -> None:
    frame = _frame([("training", False), ("inference", True), ("fine-tuning", True)] * 4)
    train, holdout = training._split_newest(frame)
    assert len(holdout) == training.MIN_HOLDOUT and holdout["run_id"].min() > train["run_id"].max()
