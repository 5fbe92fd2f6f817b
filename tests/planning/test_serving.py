"""Serving fleets: replicas and GPUs for a target token rate, sized on the pessimistic rate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedopt_core.errors import PlanningError
from fedopt_core.planning.ranking import rank_platforms
from fedopt_core.planning.serving import MAX_REPLICAS, SERVING_COLUMNS, concurrency_of, serving_fleet


class RatePredictor:
    """Seconds per token by GPU type, divided by the GPU count; interval [0.8x, 2x]."""

    def __init__(self, seconds_per_token: dict[str, float]) -> None:
        self.seconds_per_token = seconds_per_token

    def predict_frame(self, rows: pd.DataFrame, anchors: pd.DataFrame | None = None) -> pd.DataFrame:
        per_token = rows["gpu_type"].map(self.seconds_per_token).to_numpy(float)
        t = per_token * rows["work_units"].to_numpy(float) / rows["gpu_count"].to_numpy(float)
        return pd.DataFrame(
            {
                "predicted_time_s": t,
                "lower_s": 0.8 * t,
                "upper_s": 2.0 * t,
                "method": "model",
                "basis": "physics",
                "n_anchor_runs": 0.0,
                "warning": None,
            },
            index=rows.index,
        )


MACHINES = pd.DataFrame(
    {
        "platform": ["1x A10", "1x H100", "8x H100", "1x tiny"],
        "provider": ["x"] * 4,
        "gpu_type": ["A10", "H100 SXM5 80GB", "H100 SXM5 80GB", "L4"],
        "gpu_count": [1, 1, 8, 1],
        "gpu_memory_gb": [24.0, 80.0, 80.0, 24.0],
        "price_per_hour_usd": [0.75, 3.0, 24.0, np.nan],
    }
)
# 1,000 tokens/s on the A10, 4,000 on one H100 (32,000 on eight), 100 on the (unpriced) L4
PREDICTOR = RatePredictor({"A10": 1e-3, "H100 SXM5 80GB": 2.5e-4, "L4": 1e-2})
SERVE = {
    "task_type": "inference",
    "workload": "llama-3.1-8b",
    "mode": "serving",
    "precision": "bf16",
    "work_units": 1e6,
    "work_unit": "tokens",
    "concurrency": 8,  # 8 sequences of 4,096 tokens: weights and KV cache fit a 24 GB A10
}


def _fleet(task: dict, target: float) -> pd.DataFrame:
    return serving_fleet(task, rank_platforms(task, MACHINES, predictor=PREDICTOR), target).set_index("platform")


def test_replicas_are_sized_on_the_pessimistic_rate() -> None:
    fleet = _fleet(SERVE, 10_000)
    # the A10's pessimistic rate is 1e6 tokens / (2 x 1,000 s) = 500 tokens/s: 20 replicas
    a10 = fleet.loc["1x A10"]
    assert a10["replica_tokens_per_s_low"] == pytest.approx(500.0)
    assert a10["replicas_needed"] == 20 and a10["gpus_needed"] == 20
    assert a10["fleet_tokens_per_s"] == pytest.approx(20_000.0)
    assert a10["fleet_price_per_hour_usd"] == pytest.approx(15.0)
    # 15 USD an hour for 10,000 tokens/s = 36 M tokens an hour
    assert a10["fleet_cost_per_1m_tokens_usd"] == pytest.approx(15.0 / 36.0)
    # one 8x H100 at 16,000 tokens/s pessimistic is enough; five single H100s (2,000 each) are needed
    assert fleet.loc["8x H100", "replicas_needed"] == 1 and fleet.loc["8x H100", "gpus_needed"] == 8
    assert fleet.loc["1x H100", "replicas_needed"] == 5
    for _, row in fleet[fleet["serves_target"]].iterrows():
        assert row["replicas_needed"] * row["replica_tokens_per_s_low"] >= 10_000 - 1e-6
        # one replica fewer would miss the target at the pessimistic rate
        assert (row["replicas_needed"] - 1) * row["replica_tokens_per_s_low"] < 10_000


def test_cheapest_fleet_first_and_every_column_present() -> None:
    fleet = serving_fleet(SERVE, rank_platforms(SERVE, MACHINES, predictor=PREDICTOR), 10_000)
    assert set(SERVING_COLUMNS) <= set(fleet.columns)
    serves = fleet["serves_target"].tolist()
    assert serves == sorted(serves, reverse=True)  # every fleet that serves the target comes first
    prices = fleet.loc[fleet["serves_target"], "fleet_price_per_hour_usd"].to_numpy(float)
    # cheapest per hour first; the unpriced L4 fleet (200 replicas) after every priced one
    assert (np.diff(prices[np.isfinite(prices)]) >= 0).all()
    assert np.isnan(prices[-1]) and fleet.iloc[len(prices) - 1]["platform"] == "1x tiny"


def test_a_platform_the_model_does_not_fit_gets_no_fleet() -> None:
    big = SERVE | {"workload": "llama-3.1-70b"}
    fleet = _fleet(big, 1_000)
    assert not fleet.loc["1x A10", "serves_target"]
    assert pd.isna(fleet.loc["1x A10", "replicas_needed"])
    assert "does not fit" in fleet.loc["1x A10", "serving_note"]
    assert fleet.loc["8x H100", "serves_target"]


def test_an_unreachable_rate_is_said_not_proposed() -> None:
    fleet = _fleet(SERVE, 100 * MAX_REPLICAS)  # the L4 gives 50 tokens/s pessimistic: 2,000 replicas
    l4 = fleet.loc["1x tiny"]
    assert not l4["serves_target"] and pd.isna(l4["gpus_needed"])
    assert str(MAX_REPLICAS) in l4["serving_note"]


def test_mean_tpot_is_concurrency_over_rate() -> None:
    fleet = _fleet(SERVE, 1_000)
    # 8 sequences at 4,000 tokens/s: a token every 2 ms for each
    assert fleet.loc["1x H100", "mean_tpot_ms"] == pytest.approx(2.0)
    # without a stated concurrency the mode's default (serving: 64) is the rule
    default = _fleet({k: v for k, v in SERVE.items() if k != "concurrency"}, 1_000)
    assert concurrency_of({k: v for k, v in SERVE.items() if k != "concurrency"}) == 64
    assert default.loc["1x H100", "mean_tpot_ms"] == pytest.approx(16.0)


@pytest.mark.parametrize("target", [0, -5, math.nan, math.inf, "fast"])
def test_a_bad_target_is_refused_with_its_field(target: object) -> None:
    ranked = rank_platforms(SERVE, MACHINES, predictor=PREDICTOR)
    with pytest.raises(PlanningError, match="target_tokens_per_s"):
        serving_fleet(SERVE, ranked, target)


def test_work_not_in_tokens_is_refused() -> None:
    task = SERVE | {"work_unit": "samples"}
    with pytest.raises(PlanningError, match="work_unit"):
        serving_fleet(task, rank_platforms(task, MACHINES, predictor=PREDICTOR), 1_000)
