"""The spot advisor (fedopt_core.planning.spot): Young/Daly checkpointing against on-demand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedopt_core import formatting
from fedopt_core.planning import (
    DEFAULT_RESTART_COST_S,
    PlanningError,
    advice_sentence,
    advise_spot,
    advise_spot_frame,
    load_spot_prices,
    preemption_rate_from_sessions,
)

FAST = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------------------------
# Spot advisor
# ---------------------------------------------------------------------------------------------------------------


def test_young_daly_interval():
    r = advise_spot(36_000, 3.0, 1.0, preemptions_per_hour=0.5, checkpoint_cost_s=60, restart_cost_s=120)
    mtbf = 3600 / 0.5
    assert r["mtbf_s"] == pytest.approx(mtbf)
    assert r["checkpoint_interval_s"] == pytest.approx(math.sqrt(2 * 60 * mtbf))
    tau = math.sqrt(2 * 60 * mtbf)
    assert r["checkpoints"] == math.ceil(36_000 / tau) - 1
    assert r["checkpoint_overhead_s"] == pytest.approx(r["checkpoints"] * 60)
    assert r["lost_work_per_preemption_s"] == pytest.approx(tau / 2)
    expected_t = (36_000 + r["checkpoint_overhead_s"]) / (1 - (0.5 / 3600) * (120 + tau / 2))
    assert r["spot_expected_time_s"] == pytest.approx(expected_t)
    assert r["spot_expected_cost_usd"] == pytest.approx(1.0 * expected_t / 3600)
    assert r["expected_preemptions"] == pytest.approx(0.5 * expected_t / 3600)
    assert r["on_demand_cost_usd"] == pytest.approx(3.0 * 10)


def test_no_preemptions_spot_costs_price_times_time():
    r = advise_spot(7200, 4.0, 1.5, preemptions_per_hour=0.0, checkpoint_cost_s=30)
    assert r["spot_expected_time_s"] == pytest.approx(7200)
    assert r["spot_expected_cost_usd"] == pytest.approx(1.5 * 2)
    assert r["checkpoint_overhead_s"] == 0.0 and math.isinf(r["checkpoint_interval_s"])
    assert r["recommendation"] == "spot"
    assert r["expected_saving_usd"] == pytest.approx(4.0 * 2 - 1.5 * 2)
    r = advise_spot(7200, 4.0, 1.5, preemptions_per_hour=0.0, checkpoint_cost_s=30, deadline_s=7200)
    assert r["spot_miss_probability"] == 0.0 and r["on_demand_miss_probability"] == 0.0


def test_frequent_preemptions_favour_on_demand():
    r = advise_spot(36_000, 3.0, 1.0, preemptions_per_hour=12.0, checkpoint_cost_s=120, restart_cost_s=600)
    assert math.isinf(r["spot_expected_time_s"])
    assert r["recommendation"] == "on-demand"
    assert "restart" in r["reason"]


def test_spot_not_cheaper_means_on_demand():
    r = advise_spot(36_000, 1.0, 0.95, preemptions_per_hour=1.0, checkpoint_cost_s=300)
    assert r["spot_expected_cost_usd"] > r["on_demand_cost_usd"]
    assert r["recommendation"] == "on-demand"


def test_tight_deadline_favours_on_demand():
    loose = advise_spot(36_000, 3.0, 1.0, 0.5, 60, deadline_s=80_000)
    tight = advise_spot(36_000, 3.0, 1.0, 0.5, 60, deadline_s=37_000)
    assert loose["recommendation"] == "spot"
    assert tight["recommendation"] == "on-demand"
    assert tight["spot_miss_probability"] > loose["spot_miss_probability"]
    assert "deadline" in tight["reason"]
    late = advise_spot(36_000, 3.0, 1.0, 0.5, 60, deadline_s=30_000)
    assert late["on_demand_miss_probability"] == 1.0 and late["spot_miss_probability"] == 1.0
    assert "neither" in late["reason"]


@FAST
@given(rates=st.lists(st.floats(0.0, 3.0), min_size=2, max_size=6), deadline_factor=st.floats(1.0, 3.0))
def test_expected_spot_time_grows_with_preemption_rate(rates, deadline_factor):
    rates = [*rates, 1e-300]  # a vanishing rate must not overflow into warnings or NaN
    df = pd.DataFrame(
        {
            "compute_time_s": 20_000.0,
            "on_demand_price_per_hour_usd": 3.0,
            "spot_price_per_hour_usd": 1.0,
            "preemptions_per_hour": sorted(rates),
            "checkpoint_cost_s": 60.0,
        }
    )
    out = advise_spot_frame(df, deadline_s=20_000 * deadline_factor)
    p = out["spot_miss_probability"].to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    t = out["spot_expected_time_s"].to_numpy()
    assert (np.diff(t) >= -1e-9 * t[:-1]).all()
    assert (t >= 20_000.0).all()
    assert (out["restart_cost_s"] == DEFAULT_RESTART_COST_S).all()  # the default was filled in


def simulated_miss_rate(
    advice: dict, preemptions_per_hour: float, restart_cost_s: float, deadline_s: float, runs: int = 20_000
) -> float:
    """Monte Carlo of the stated model: Poisson preemptions; with k of them the job ends at work + k * loss."""
    rng = np.random.default_rng(7)
    work = advice["on_demand_time_s"] + advice["checkpoint_overhead_s"]
    loss = restart_cost_s + advice["lost_work_per_preemption_s"]
    arrival = np.zeros(runs)
    k = np.zeros(runs)
    finish = np.full(runs, np.nan)
    running = np.ones(runs, dtype=bool)
    while running.any():
        arrival[running] += rng.exponential(3600.0 / preemptions_per_hour, running.sum())
        ends = running & (arrival > work + k * loss)  # the next preemption comes after the job is done
        finish[ends] = work + k[ends] * loss
        running &= ~ends
        k[running] += 1
    return float(np.mean(finish > deadline_s))


@pytest.mark.parametrize(("rate", "deadline"), [(0.5, 45_000.0), (1.0, 45_000.0), (0.2, 37_500.0)])
def test_deadline_risk_bounds_a_simulation_of_the_model(rate, deadline):
    advice = advise_spot(36_000, 3.0, 1.0, rate, 60, restart_cost_s=300, deadline_s=deadline)
    simulated = simulated_miss_rate(advice, rate, 300.0, deadline)
    sigma = math.sqrt(simulated * (1 - simulated) / 20_000)
    assert simulated <= advice["spot_miss_probability"] + 4 * sigma  # an upper bound ...
    assert advice["spot_miss_probability"] <= simulated + 0.02  # ... and a tight one here


def test_advise_spot_frame_matches_scalar():
    df = pd.DataFrame(
        {
            "compute_time_s": [3600.0, 50_000.0],
            "on_demand_price_per_hour_usd": [2.0, 10.0],
            "spot_price_per_hour_usd": [0.8, 4.0],
            "preemptions_per_hour": [0.2, 1.0],
            "checkpoint_cost_s": [30.0, 90.0],
            "restart_cost_s": [200.0, 400.0],
        }
    )
    out = advise_spot_frame(df)
    for i, row in df.iterrows():
        single = advise_spot(**row.to_dict())
        assert out["spot_expected_cost_usd"].iat[i] == pytest.approx(single["spot_expected_cost_usd"])
        assert out["recommendation"].iat[i] == single["recommendation"]


def _offers(deadline_s: float | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "platform": ["a", "b"],
            "provider": ["cloud-a", "cloud-b"],
            "compute_time_s": [7200.0, 7200.0],
            "on_demand_price_per_hour_usd": [4.0, 4.0],
            "spot_price_per_hour_usd": [2.0, 1.5],
            "preemptions_per_hour": [0.2, 0.2],
            "checkpoint_cost_s": [60.0, 60.0],
        }
    )
    return advise_spot_frame(frame, deadline_s=deadline_s)


def test_the_advice_is_one_sentence_naming_the_choice_interval_cost_finish_and_risk():
    advice = _offers(deadline_s=4 * 3600)
    best = advice.set_index("platform").loc["b"]  # the cheaper spot offer
    sentence = advice_sentence(advice)
    assert sentence.startswith("Run on spot on b (cloud-b): checkpoint every ")
    assert formatting.duration(best["checkpoint_interval_s"]) in sentence
    assert f"expected {formatting.usd(best['spot_expected_cost_usd'])}" in sentence
    assert f"against {formatting.usd(best['on_demand_cost_usd'])}" in sentence
    assert sentence.endswith(f"; deadline risk {best['spot_miss_probability']:.1%}.")
    assert "deadline" not in advice_sentence(_offers())  # no deadline, no risk to state


def test_the_advice_says_on_demand_and_why_when_spot_would_risk_the_deadline():
    advice = _offers(deadline_s=7300.0)  # on-demand just fits; a preemption would not
    assert (advice["recommendation"] == "on-demand").all()
    sentence = advice_sentence(advice)
    assert sentence.startswith("Run on-demand on a (cloud-a): $8.00 and 2.0 h to finish (spot misses the")
    assert sentence.endswith("; deadline risk 0.0%.")
    assert advice_sentence(_offers(deadline_s=3600.0)).endswith("; this misses the deadline.")
    with pytest.raises(PlanningError):
        advice_sentence(advice.iloc[0:0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"compute_time_s": 0}, "compute_time_s"),
        ({"spot_price_per_hour_usd": float("nan")}, "spot_price_per_hour_usd"),
        ({"on_demand_price_per_hour_usd": -1}, "on_demand_price_per_hour_usd"),
        ({"preemptions_per_hour": -0.1}, "preemptions_per_hour"),
        ({"checkpoint_cost_s": -5}, "checkpoint_cost_s"),
        ({"restart_cost_s": float("nan")}, "restart_cost_s"),
        ({"deadline_s": 0}, "deadline_s"),
    ],
)
def test_advise_spot_bad_input_names_field(kwargs, field):
    args = {
        "compute_time_s": 3600,
        "on_demand_price_per_hour_usd": 2.0,
        "spot_price_per_hour_usd": 1.0,
        "preemptions_per_hour": 0.1,
        "checkpoint_cost_s": 30,
        **kwargs,
    }
    with pytest.raises(PlanningError) as err:
        advise_spot(**args)
    assert err.value.field == field


def test_preemption_rate_from_sessions():
    sessions = pd.DataFrame(
        {
            "started_at": ["2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z", "2026-01-02 00:00", "2026-01-03 00:00"],
            "ended_at": ["2026-01-01T04:00:00Z", "2026-01-01T16:00:00Z", None, "2026-01-03 10:00"],
            "outcome": ["preempted", "completed", "preempted", "Preempted"],
            "is_spot": [True, True, True, False],
        }
    )
    # closed spot sessions: 4 h + 6 h, one preemption (open session and the on-demand one left out)
    assert preemption_rate_from_sessions(sessions) == pytest.approx(1 / 10)
    assert preemption_rate_from_sessions(sessions.drop(columns="is_spot")) == pytest.approx(2 / 20)
    assert preemption_rate_from_sessions(sessions.iloc[2:3]) is None
    assert preemption_rate_from_sessions(sessions.iloc[0:0]) is None


def test_preemption_rate_bad_sessions():
    bad = pd.DataFrame({"started_at": ["2026-01-02"], "ended_at": ["2026-01-01"], "outcome": ["completed"]})
    with pytest.raises(PlanningError) as err:
        preemption_rate_from_sessions(bad)
    assert err.value.field == "ended_at"
    with pytest.raises(PlanningError) as err:
        preemption_rate_from_sessions(bad.drop(columns="outcome"))
    assert err.value.field == "outcome"
    with pytest.raises(PlanningError) as err:
        preemption_rate_from_sessions(bad.assign(started_at=["yesterday-ish"]))
    assert err.value.field == "started_at"


def test_load_spot_prices_real_file(shared_data: Path):
    prices_csv = shared_data / "cloud_gpu_prices.csv"
    raw = pd.read_csv(prices_csv)
    out = load_spot_prices(prices_csv)
    assert len(out) == raw["spot_price_usd_per_hour"].notna().sum()
    assert out["spot_price_per_hour_usd"].notna().all()
    ratio = out["spot_price_per_hour_usd"] / out["on_demand_price_per_hour_usd"]
    assert np.allclose(out["spot_to_on_demand_ratio"], ratio, equal_nan=True)
    # where the row is itself the spot offer, the on-demand price comes from its on-demand sibling
    spot_rows = out[out["provisioning"] == "spot"]
    for _, row in spot_rows.iterrows():
        sibling = raw[
            (raw["cloud"] == row["cloud"])
            & (raw["gpu_name"] == row["gpu_name"])
            & (raw["gpu_count"] == row["gpu_count"])
            & (raw["provisioning"] == "on-demand")
        ]
        assert row["on_demand_price_per_hour_usd"] == pytest.approx(sibling["price_usd_per_hour"].iloc[0])
    other = out[out["provisioning"] != "spot"]
    assert (other["on_demand_price_per_hour_usd"] == other["price_usd_per_hour"]).all()
    assert ((out["spot_to_on_demand_ratio"] > 0) & (out["spot_to_on_demand_ratio"] < 1)).all()


def test_load_spot_prices_missing_column(tmp_path):
    p = tmp_path / "prices.csv"
    pd.DataFrame({"cloud": ["x"], "gpu_name": ["A100"]}).to_csv(p, index=False)
    with pytest.raises(PlanningError) as err:
        load_spot_prices(p)
    assert err.value.field == "instance_type_or_product"
