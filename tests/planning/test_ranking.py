"""Ranking: sort order per objective, deadline and budget on the upper bounds, the Pareto front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedopt_core import schema
from fedopt_core.errors import PlanningError
from fedopt_core.planning.ranking import RANKING_COLUMNS, pareto_front, rank_platforms
from fedopt_core.prediction.estimator import PerformancePredictor


class StubPredictor:
    """Times per GPU type chosen by the test; interval = [0.8x, 1.5x]."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.calls = 0

    def predict_frame(self, rows: pd.DataFrame, anchors: pd.DataFrame | None = None) -> pd.DataFrame:
        self.calls += 1
        t = rows["gpu_type"].map(self.seconds).to_numpy(float) * rows["work_units"].to_numpy(float)
        return pd.DataFrame(
            {
                "predicted_time_s": t,
                "lower_s": 0.8 * t,
                "upper_s": 1.5 * t,
                "method": "model",
                "basis": "transfer",
                "n_anchor_runs": 3.0,
                "warning": None,
            },
            index=rows.index,
        )


TASK = {"task_type": "training", "workload": "w", "precision": "fp16", "work_units": 1.0}


@pytest.fixture
def platforms() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "platform": ["fast-dear", "slow-cheap", "mid", "dominated", "no-price"],
            "provider": ["x"] * 5,
            "gpu_type": ["A", "B", "C", "D", "E"],
            "gpu_count": [1, 1, 1, 1, 1],
            "price_per_hour_usd": [36.0, 1.8, 7.2, 36.0, np.nan],
        }
    )


@pytest.fixture
def stub() -> StubPredictor:
    # seconds: A 100, B 1000, C 400, D 400 (as slow as C at A's price), E 50
    return StubPredictor({"A": 100.0, "B": 1000.0, "C": 400.0, "D": 400.0, "E": 50.0})


def test_time_objective_sorts_by_predicted_time(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, objective="time", predictor=stub)
    assert out["platform"].tolist() == ["no-price", "fast-dear", "mid", "dominated", "slow-cheap"]
    assert out["rank"].tolist() == [1, 2, 3, 4, 5]
    assert stub.calls == 1  # one vectorised call for all platforms
    assert set(RANKING_COLUMNS) <= set(out.columns)


def test_cost_is_price_times_time_with_interval(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, objective="cost", predictor=stub).set_index("platform")
    assert out.loc["fast-dear", "cost_usd"] == pytest.approx(36.0 * 100 / 3600)
    assert out.loc["fast-dear", "cost_upper_usd"] == pytest.approx(36.0 * 150 / 3600)
    assert out.loc["fast-dear", "cost_lower_usd"] == pytest.approx(36.0 * 80 / 3600)
    assert np.isnan(out.loc["no-price", "cost_usd"])


def test_cost_objective_puts_unpriced_last(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, objective="cost", predictor=stub)
    # costs: slow-cheap 0.5, mid 0.8, fast-dear 1.0, dominated 4.0, no-price unknown
    assert out["platform"].tolist() == ["slow-cheap", "mid", "fast-dear", "dominated", "no-price"]


def test_balanced_objective_trades_time_against_cost(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, objective="balanced", predictor=stub)
    # log(t/100) + log(c/0.5): fast-dear log2=0.69, mid log4+log1.6=1.86, slow-cheap log10=2.30
    assert out["platform"].tolist()[:3] == ["fast-dear", "mid", "slow-cheap"]
    assert out["platform"].iloc[-1] == "no-price"


def test_balanced_counts_a_free_machine_as_the_cheapest_not_as_infinitely_good(
    platforms: pd.DataFrame, stub: StubPredictor
) -> None:
    own = pd.DataFrame(
        {
            "platform": ["own-slow"],
            "provider": ["on-prem"],
            "gpu_type": ["B"],
            "gpu_count": [1],
            "price_per_hour_usd": [0.0],
        }
    )
    out = rank_platforms(TASK, pd.concat([platforms, own], ignore_index=True), objective="balanced", predictor=stub)
    # own-slow: log(1000/100) + log(1) = 2.30, as balanced as slow-cheap; fast-dear (0.69) and mid (1.86) stay ahead
    assert out["platform"].tolist()[:2] == ["fast-dear", "mid"]
    assert set(out["platform"].tolist()[2:4]) == {"own-slow", "slow-cheap"}
    assert out.set_index("platform").loc["own-slow", "cost_usd"] == 0.0


def test_deadline_is_judged_on_the_upper_bound(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    # mid: point 400 s fits a 500 s deadline but its upper bound (600 s) does not
    out = rank_platforms(TASK, platforms, objective="cost", deadline_s=500, predictor=stub).set_index("platform")
    assert not out.loc["mid", "meets_deadline"]
    assert out.loc["fast-dear", "meets_deadline"]  # upper 150 s
    assert out.loc["no-price", "meets_deadline"]


def test_infeasible_platforms_rank_after_feasible_ones(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, objective="cost", deadline_s=500, budget_usd=2.0, predictor=stub)
    feasible = out.loc[out["feasible"], "platform"].tolist()
    assert feasible == ["fast-dear"]  # slow-cheap and mid miss the deadline, no-price cannot be promised
    assert out["platform"].iloc[0] == "fast-dear"
    assert out["feasible"].tolist() == sorted(out["feasible"].tolist(), reverse=True)


def test_budget_uses_the_upper_cost_and_refuses_unknown_prices(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    # fast-dear costs 1.0 at the point, 1.5 at the upper bound
    out = rank_platforms(TASK, platforms, budget_usd=1.2, predictor=stub).set_index("platform")
    assert not out.loc["fast-dear", "within_budget"]
    assert out.loc["slow-cheap", "within_budget"]  # upper 0.75
    assert not out.loc["no-price", "within_budget"]
    no_budget = rank_platforms(TASK, platforms, predictor=stub)
    assert no_budget["within_budget"].all() and no_budget["meets_deadline"].all()


def test_pareto_flags_in_the_ranking(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, predictor=stub).set_index("platform")
    assert out["pareto_optimal"].to_dict() == {
        "no-price": False,
        "fast-dear": True,
        "mid": True,
        "dominated": False,
        "slow-cheap": True,
    }


def test_input_position_maps_back_and_work_units_scale(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms({**TASK, "work_units": 10.0}, platforms, predictor=stub)
    for _, row in out.iterrows():
        assert platforms.loc[row["input_position"], "platform"] == row["platform"]
    assert out.set_index("platform").loc["mid", "predicted_time_s"] == pytest.approx(4000.0)


def test_data_movement_is_part_of_the_time(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    out = rank_platforms(TASK, platforms, predictor=stub)
    assert np.allclose(out["predicted_time_s"], out["compute_time_s"] + out["data_movement_s"])


def test_bad_arguments_name_the_field(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    with pytest.raises(PlanningError, match="objective"):
        rank_platforms(TASK, platforms, objective="fastest", predictor=stub)
    with pytest.raises(PlanningError, match="deadline_s"):
        rank_platforms(TASK, platforms, deadline_s=-5, predictor=stub)
    with pytest.raises(PlanningError, match="budget_usd"):
        rank_platforms(TASK, platforms, budget_usd=float("nan"), predictor=stub)
    with pytest.raises(schema.ValidationError, match="work_units"):
        rank_platforms({**TASK, "work_units": float("inf")}, platforms, predictor=stub)


def test_empty_platforms_give_an_empty_ranking(stub: StubPredictor) -> None:
    out = rank_platforms(TASK, pd.DataFrame(columns=schema.PLATFORM_FIELDS), predictor=stub)
    assert out.empty and "predicted_time_s" in out.columns and stub.calls == 0


def test_an_unfitted_predictor_labels_everything_heuristic(platforms: pd.DataFrame) -> None:
    real = platforms.assign(gpu_type=["H100 SXM5 80GB", "RTX 3090", "A100 SXM4 80GB", "A10", "L40S"])
    out = rank_platforms(TASK, real, predictor=PerformancePredictor())
    assert (out["method"] == "heuristic").all()
    assert out["warning"].notna().all()
    assert (out["lower_s"] < out["predicted_time_s"]).all() and (out["predicted_time_s"] < out["upper_s"]).all()
    # specs still order the GPUs: an H100 beats a 3090
    t = out.set_index("gpu_type")["predicted_time_s"]
    assert t["H100 SXM5 80GB"] < t["RTX 3090"]


# --------------------------------------------------------------------------- pareto_front


def test_pareto_front_constructed_cases() -> None:
    time = np.array([1.0, 2.0, 3.0, 2.0, 1.0, np.nan, 4.0])
    cost = np.array([5.0, 3.0, 1.0, 4.0, 5.0, 0.1, 1.0])
    # (1,5) twice: identical points are both optimal; (2,4) is beaten by (2,3); (4,1) by (3,1)
    assert pareto_front(time, cost).tolist() == [True, True, True, False, True, False, False]


def test_pareto_front_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    t = rng.integers(0, 15, 300).astype(float)  # small integer grid: many ties
    c = rng.integers(0, 15, 300).astype(float)
    t[::37] = np.nan
    front = pareto_front(t, c)
    for i in range(len(t)):
        if np.isnan(t[i]):
            assert not front[i]
            continue
        others = ~np.isnan(t)
        beaten = others & (t <= t[i]) & (c <= c[i]) & ((t < t[i]) | (c < c[i]))
        assert front[i] == (not beaten.any())


def test_pareto_front_edge_cases() -> None:
    assert pareto_front([], []).tolist() == []
    assert pareto_front([np.nan], [1.0]).tolist() == [False]
    with pytest.raises(ValueError, match="length"):
        pareto_front([1.0, 2.0], [1.0])


def test_data_movement_is_reported_apart_and_counted_in_time_cost_and_deadline() -> None:
    from fedopt_core.planning.ranking import rank_platforms
    from fedopt_core.prediction.estimator import PerformancePredictor

    platforms = pd.DataFrame(
        {
            "platform": ["fast-net", "slow-net"],
            "provider": ["x", "x"],
            "gpu_type": ["A10", "A10"],
            "gpu_count": [1, 1],
            "price_per_hour_usd": [1.0, 1.0],
            "network_speed_mbps": [8000.0, 80.0],
        }
    )
    task = {"workload": "job", "work_units": 1000, "input_size_mb": 10_000.0, "output_size_mb": 0.0}
    ranked = rank_platforms(task, platforms, objective="time", predictor=PerformancePredictor()).set_index("platform")
    assert ranked.loc["fast-net", "data_movement_s"] == pytest.approx(10.0)  # 10 GB at 8 Gbit/s
    assert ranked.loc["slow-net", "data_movement_s"] == pytest.approx(1000.0)  # at 80 Mbit/s
    compute = ranked["compute_time_s"]
    assert (ranked["predicted_time_s"] - compute - ranked["data_movement_s"]).abs().max() < 1e-6
    assert ranked.index[0] == "fast-net"  # same GPU and price: the faster network wins
    assert ranked.loc["slow-net", "cost_usd"] > ranked.loc["fast-net", "cost_usd"]


# ---------------------------------------------------------------- memory fit

MACHINES = pd.DataFrame(
    {
        "platform": ["1x A10", "1x H100", "8x H100", "8x A100 80GB", "64x H100"],
        "gpu_type": ["A10", "H100 SXM5 80GB", "H100 SXM5 80GB", "A100 SXM4 80GB", "H100 SXM5 80GB"],
        "gpu_count": [1, 1, 8, 8, 64],
        "price_per_hour_usd": [0.75, 3.0, 24.0, 14.0, 192.0],
    }
)
# The 1x A10 is the fastest and cheapest here, so only the memory rule can keep it off the top.
FAST_A10 = StubPredictor({"A10": 10.0, "H100 SXM5 80GB": 1000.0, "A100 SXM4 80GB": 2000.0})


def test_a_70b_full_fine_tune_is_never_recommended_where_it_does_not_fit() -> None:
    task = {
        "task_type": "fine-tuning",
        "workload": "llama-3.1-70b",
        "mode": "full-ft",
        "precision": "bf16",
        "work_units": 1.0,
    }
    ranked = rank_platforms(task, MACHINES, predictor=FAST_A10).set_index("platform")
    assert ranked.loc["64x H100", "fits_memory"] is True
    for name in ("1x A10", "1x H100", "8x H100", "8x A100 80GB"):
        assert ranked.loc[name, "fits_memory"] is False
        assert not ranked.loc[name, "feasible"] and not ranked.loc[name, "pareto_optimal"]
    assert ranked.loc["8x H100", "warning"].startswith("does not fit: needs 143 GB per GPU, has 80")
    assert ranked.reset_index().loc[0, "platform"] == "64x H100"


def test_an_8b_job_fits_where_the_arithmetic_says_it_does() -> None:
    tune = {
        "task_type": "fine-tuning",
        "workload": "llama-3.1-8b",
        "mode": "full-ft",
        "precision": "bf16",
        "work_units": 1.0,
    }
    ranked = rank_platforms(tune, MACHINES, predictor=FAST_A10).set_index("platform")
    assert ranked.loc["1x H100", "fits_memory"] is False
    assert ranked.loc["8x A100 80GB", "fits_memory"] is True
    assert ranked.loc["8x A100 80GB", "memory_layout"] == "fully sharded"
    serve = {
        "task_type": "inference",
        "workload": "llama-3.1-8b",
        "mode": "offline",
        "precision": "bf16",
        "work_units": 1.0,
    }
    ranked = rank_platforms(serve, MACHINES, predictor=FAST_A10).set_index("platform")
    assert ranked.loc["1x A10", "fits_memory"] is True
    assert ranked.loc["1x A10", "memory_per_gpu_gb"] == pytest.approx(16.06 + 0.537, rel=0.01)
    assert ranked.reset_index().loc[0, "platform"] == "1x A10"


def test_a_task_that_names_no_model_claims_nothing_about_memory(platforms: pd.DataFrame, stub: StubPredictor) -> None:
    ranked = rank_platforms(TASK, platforms, predictor=stub)
    assert ranked["fits_memory"].isna().all() and ranked["feasible"].all()


@pytest.mark.parametrize("workload", ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen2.5-72b", "gpt-oss-120b"])
@pytest.mark.parametrize("mode", ["pretrain", "full-ft", "lora", "qlora", "offline", "serving"])
def test_the_top_recommendation_always_fits(workload: str, mode: str) -> None:
    task = {"workload": workload, "mode": mode, "precision": "bf16", "seq_len": 4096, "work_units": 1.0}
    ranked = rank_platforms(task, MACHINES, predictor=FAST_A10)
    top = ranked.iloc[0]
    if ranked["fits_memory"].any():
        assert top["fits_memory"] is True and top["feasible"]
    assert not ranked.loc[ranked["fits_memory"] == False, "feasible"].any()  # noqa: E712 - None (not known) must not count as False


def test_inference_answers_in_tokens_per_second_and_cost_per_million() -> None:
    serve = {
        "task_type": "inference",
        "workload": "llama-3.1-8b",
        "mode": "offline",
        "precision": "bf16",
        "work_units": 5e6,
        "work_unit": "tokens",
    }
    ranked = rank_platforms(serve, MACHINES, predictor=FAST_A10).set_index("platform")
    # the stub says 10 s per unit on the A10: 5e6 tokens take 5e7 s at $0.75/h
    a10 = ranked.loc["1x A10"]
    assert a10["tokens_per_s"] == pytest.approx(5e6 / a10["predicted_time_s"])
    assert a10["cost_per_1m_tokens_usd"] == pytest.approx(a10["cost_usd"] / 5.0)
    images = rank_platforms(TASK, MACHINES, predictor=FAST_A10)
    assert images["tokens_per_s"].isna().all() and images["cost_per_1m_tokens_usd"].isna().all()
