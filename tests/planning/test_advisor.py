"""advisor: the one call behind Predict, Plan and `fedopt predict` (spot advice here)."""

from __future__ import annotations

import functools
import json

import pandas as pd
import pytest
from sqlalchemy import text

from fedopt_core import catalog, db, runs, schema
from fedopt_core.catalog import datasets
from fedopt_core.planning import advisor
from fedopt_core.prediction import training
from fedopt_core.prediction.estimator import PerformancePredictor

TASK = {"task_type": "training", "workload": "resnet50", "precision": "fp16_amp", "batch_size": 256, "work_units": 1e6}


def test_spot_advice_skips_free_machines_and_compares_the_paid_ones(loaded_db: str) -> None:
    own = catalog.save_platform(
        {
            "provider": "on-prem",
            "instance_type": "lab-a100",
            "gpu_type": "A100 SXM4 80GB",
            "gpu_count": 1,
            "price_per_hour_usd": 0,
            "spot_price_per_hour_usd": 0,
        }
    )
    catalog.save_platform(
        {
            "provider": "on-prem",
            "instance_type": "lab-free-spot",
            "gpu_type": "A10",
            "gpu_count": 1,
            "price_per_hour_usd": 1.0,
            "spot_price_per_hour_usd": 0,
        }
    )
    catalog.save_platform(
        {
            "provider": "cloudy",
            "instance_type": "a10-spot",
            "gpu_type": "A10",
            "gpu_count": 1,
            "price_per_hour_usd": 1.2,
            "spot_price_per_hour_usd": 0.4,
        }
    )
    platforms = catalog.list_platforms(provider=["on-prem", "cloudy"])
    assert own in platforms["id"].tolist() and len(platforms) == 3
    advice = advisor.spot_advice(TASK, platforms, preemptions_per_hour=0.05, checkpoint_cost_s=60)
    assert advice["platform"].tolist() == ["a10-spot"]
    assert (advice["compute_time_s"] > 0).all()


def test_spot_advice_needs_a_preemption_rate(loaded_db: str) -> None:
    platforms = pd.DataFrame(
        [
            {
                "instance_type": "x",
                "provider": "p",
                "gpu_type": "A10",
                "gpu_count": 1,
                "price_per_hour_usd": 1.2,
                "spot_price_per_hour_usd": 0.4,
            }
        ]
    )
    assert advisor.spot_advice(TASK, platforms, preemptions_per_hour=None, checkpoint_cost_s=60).empty


@pytest.fixture
def trained(loaded_db: str, shared_data) -> int:
    bench = datasets.load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")
    runs.store_runs(bench[bench["workload"] == "resnet50"][schema.RUN_FIELDS], source="benchmark")
    small = functools.partial(PerformancePredictor, n_splits=2, max_pairs=1500, max_iter=30)
    return training.train_now(predictor_factory=small).version_id


def test_intervals_at_another_level_narrow_around_the_same_point(trained: int) -> None:
    levels, own = advisor.interval_levels()
    assert own == 0.9 and 0.5 in levels and 0.99 in levels
    usual = advisor.compare(TASK).ranking.set_index("platform")
    narrow = advisor.compare(TASK, confidence=0.5)
    assert narrow.confidence == 0.5 and narrow.method == "model"
    ranked = narrow.ranking.set_index("platform").loc[usual.index]
    pd.testing.assert_series_equal(ranked["predicted_time_s"], usual["predicted_time_s"])
    assert ((ranked["upper_s"] - ranked["lower_s"]) <= (usual["upper_s"] - usual["lower_s"]) + 1e-9).all()
    assert ((ranked["upper_s"] - ranked["lower_s"]) < (usual["upper_s"] - usual["lower_s"])).any()
    with pytest.raises(ValueError, match="refit with confidence=0.42"):
        advisor.compare(TASK, confidence=0.42)


def test_predictions_at_another_level_are_recorded_without_their_interval(trained: int) -> None:
    advisor.compare(TASK, record=True)
    advisor.compare({**TASK, "work_units": 2e6}, confidence=0.5, record=True)
    with db.get_engine().connect() as conn:
        stored = pd.read_sql(text("SELECT predicted_time_s, lower_s, upper_s FROM prediction ORDER BY id"), conn)
    half = len(stored) // 2
    assert half > 0 and len(stored) == 2 * half
    assert stored["lower_s"].iloc[:half].notna().all() and stored["upper_s"].iloc[:half].notna().all()
    assert stored["lower_s"].iloc[half:].isna().all() and stored["upper_s"].iloc[half:].isna().all()


def test_an_interval_level_before_any_model_is_a_note_not_an_error(loaded_db: str) -> None:
    result = advisor.compare(TASK, confidence=0.5)
    assert result.method == "heuristic" and result.confidence is None
    assert any("trained model only" in w for w in result.warnings)
    assert advisor.interval_levels() == ([], None)


def test_fedopt_predict_confidence(trained: int, capsys: pytest.CaptureFixture) -> None:
    from fedopt_core.cli import main as cli_main

    args = ["predict", "--workload", "resnet50", "--precision", "fp16_amp", "--work-units", "1e6", "--json"]
    assert cli_main([*args, "--confidence", "0.95"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["confidence"] == 0.95 and answer["method"] == "model"
    assert cli_main([*args, "--confidence", "0.42"]) == 1
    assert "refit with confidence=0.42" in capsys.readouterr().err


def test_what_if_machines_are_priced_at_the_catalogues_median_per_gpu() -> None:
    catalogue = pd.DataFrame(
        {"gpu_type": ["A10", "A10", "A10", "H100 SXM5 80GB"], "price_per_gpu_hour_usd": [0.60, 0.75, 1.10, 2.99]}
    )
    configs = advisor.what_if_configurations(catalogue, "A10", [1, 4])
    assert configs["platform"].tolist() == ["1x A10", "4x A10"]
    assert configs["price_per_hour_usd"].tolist() == pytest.approx([0.75, 3.00])
    assert advisor.what_if_configurations(catalogue, "L4", [2])["price_per_hour_usd"].isna().all()


def test_a_workload_without_runs_is_answered_with_the_measured_ones_of_a_similar_name(loaded_db: str) -> None:
    for workload in ("bert_large_squad", "bert_base_squad", "resnet50"):
        runs.log_run({"workload": workload, "gpu_type": "A10", "gpu_count": 1, "execution_time_s": 100})
    platforms = catalog.list_platforms(include_cpu=False).head(3)
    answer = advisor.compare({"workload": "bert", "work_units": 1e6}, platforms)
    assert (
        "no run of 'bert' is stored; measured workloads with a similar name: bert_base_squad, bert_large_squad"
        in answer.warnings
    )
    assert advisor.similar_workloads("BERT_large_squad") == []  # it has runs (names compare without case)
    assert advisor.similar_workloads("resnet-50") == ["resnet50"]  # a close spelling
    assert advisor.similar_workloads("zzz-unrelated") == []


def test_runs_that_happened_get_the_models_own_prediction_row_by_row(loaded_db: str) -> None:
    frame = pd.DataFrame(
        [
            {"workload": "resnet50", "gpu_type": "A10", "gpu_count": 1, "work_units": 1e5, "execution_time_s": 900},
            {"workload": "resnet50", "gpu_type": "H100 SXM5 80GB", "gpu_count": 8, "work_units": 1e5,
             "execution_time_s": 60},
        ]
    )  # fmt: skip
    answer = advisor.predicted_for_runs(frame)
    assert len(answer) == 2 and set(answer["method"]) == {"heuristic"}  # no model yet
    assert (answer["lower_s"] <= answer["predicted_time_s"]).all()
    assert (answer["predicted_time_s"] <= answer["upper_s"]).all()
    assert answer["predicted_time_s"].iloc[1] < answer["predicted_time_s"].iloc[0]  # 8 H100s beat one A10
