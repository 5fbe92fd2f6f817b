"""The seed's APIs (fedopt_core.compat) keep their shapes, over the real homes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from fedopt_core import accounts, compat
from fedopt_core.planning.ranking import rank_platforms
from fedopt_core.prediction.estimator import PerformancePredictor
from tests.support import RESNET50_TASK as R50


@pytest.fixture(scope="module")
def model(nine_gpu_model: PerformancePredictor) -> PerformancePredictor:
    return nine_gpu_model


def _this_month_start() -> datetime:
    start, _ = accounts.month_bounds()
    return start


def test_predict_execution_time_shape(model: PerformancePredictor) -> None:
    seconds, info = compat.predict_execution_time(
        model, R50, {"gpu_type": "RTX A5000", "gpu_count": 1, "platform": "box"}
    )
    assert isinstance(seconds, float) and seconds > 0
    assert info["predicted_time_seconds"] == seconds
    ci = info["confidence_interval"]
    assert set(ci) == {"lower", "upper", "confidence"} and ci["confidence"] == 0.9
    assert ci["lower"] <= seconds <= ci["upper"]
    assert info["model_version"] == model.model_version_
    assert info["features_used"] == model.feature_names_
    assert info["method"] == "model" and info["warning"] is None


def test_get_optimal_platform(model: PerformancePredictor) -> None:
    assert compat.get_optimal_platform(model, R50, []) == {"status": "error", "message": "No platforms available"}
    platforms = [
        {"platform": "slow", "gpu_type": "RTX 2080 Ti", "gpu_count": 1},
        {"platform": "fast", "gpu_type": "A100 SXM4 80GB", "gpu_count": 8},
        {"platform": "mid", "gpu_type": "RTX 3090", "gpu_count": 1},
    ]
    result = compat.get_optimal_platform(model, R50, platforms)
    assert result["status"] == "success"
    assert result["optimal_platform"] == platforms[1]
    times = [p["predicted_time"] for p in result["all_predictions"]]
    assert times == sorted(times) and len(times) == 3
    assert result["predicted_time"] == times[0]
    assert result["prediction_info"]["predicted_time_seconds"] == times[0]
    single = compat.predict_execution_time(model, R50, platforms[2])[0]
    by_name = {p["platform"]["platform"]: p["predicted_time"] for p in result["all_predictions"]}
    assert by_name["mid"] == pytest.approx(single)


def test_rank_platforms_ranks_with_a_fitted_model(model: PerformancePredictor) -> None:
    plats = pd.DataFrame(
        [
            {"platform": f"p{i}", "provider": "x", "gpu_type": g, "gpu_count": 1, "price_per_hour_usd": 1.0 + i}
            for i, g in enumerate(["RTX 3090", "H100 SXM5 80GB"])
        ]
    )
    out = rank_platforms(R50, plats, objective="time", predictor=model)
    assert out["gpu_type"].tolist() == ["H100 SXM5 80GB", "RTX 3090"]
    assert (out["method"] == "model").all()


def test_seed_manager_and_techniques_shape(loaded_db: str) -> None:
    manager = compat.LambdaLabsManager(loaded_db)
    assert isinstance(manager, compat.AccountManager)
    assert manager.register_academic_account(
        "seed", "secret_seed_key_123456", "Uni", "s@uni.edu", monthly_quota_hours=50
    )
    manager.add_usage_session("seed", "gpu_1x_a10", _this_month_start(), _this_month_start() + timedelta(hours=2))
    stats = manager.usage_stats("seed")
    for key in ("total_hours", "monthly_hours", "instances_launched", "successful_sessions", "failed_sessions"):
        assert key in stats
    assert stats["monthly_hours"] == pytest.approx(2.0) and stats["hours_left"] == pytest.approx(48.0)
    assert manager.get_available_account({"expected_hours": 1})["username"] == "seed"
    techniques = manager.get_academic_access_techniques()
    assert set(techniques) == {"techniques", "resource_optimization"}
    from fedopt_core import catalog

    kinds = catalog.list_techniques()["kind"].value_counts()
    assert len(techniques["techniques"]) == kinds["access"]
    assert len(techniques["resource_optimization"]) == kinds["optimisation"]
    for item in techniques["techniques"] + techniques["resource_optimization"]:
        assert {"name", "description", "effectiveness", "platforms"} <= set(item)
    spot = next(t for t in techniques["resource_optimization"] if t["name"] == "Spot instances")
    assert spot["savings"] == "up to 90%"
