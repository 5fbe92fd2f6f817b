"""advisor: the one call behind Predict, Plan and `fedopt predict` (spot advice here)."""

from __future__ import annotations

import pandas as pd

from fedopt_core import advisor, catalog

TASK = {"task_type": "training", "workload": "resnet50", "precision": "fp16_amp", "batch_size": 256,
        "work_units": 1e6}


def test_spot_advice_skips_free_machines_and_compares_the_paid_ones(loaded_db: str) -> None:
    own = catalog.save_platform({"provider": "on-prem", "instance_type": "lab-a100", "gpu_type": "A100 SXM4 80GB",
                                 "gpu_count": 1, "price_per_hour_usd": 0, "spot_price_per_hour_usd": 0})
    catalog.save_platform({"provider": "on-prem", "instance_type": "lab-free-spot", "gpu_type": "A10",
                           "gpu_count": 1, "price_per_hour_usd": 1.0, "spot_price_per_hour_usd": 0})
    catalog.save_platform({"provider": "cloudy", "instance_type": "a10-spot", "gpu_type": "A10", "gpu_count": 1,
                           "price_per_hour_usd": 1.2, "spot_price_per_hour_usd": 0.4})
    platforms = catalog.list_platforms(provider=["on-prem", "cloudy"])
    assert own in platforms["id"].tolist() and len(platforms) == 3
    advice = advisor.spot_advice(TASK, platforms, preemptions_per_hour=0.05, checkpoint_cost_s=60)
    assert advice["platform"].tolist() == ["a10-spot"]
    assert (advice["compute_time_s"] > 0).all()


def test_spot_advice_needs_a_preemption_rate(loaded_db: str) -> None:
    platforms = pd.DataFrame([{"instance_type": "x", "provider": "p", "gpu_type": "A10", "gpu_count": 1,
                               "price_per_hour_usd": 1.2, "spot_price_per_hour_usd": 0.4}])
    assert advisor.spot_advice(TASK, platforms, preemptions_per_hour=None, checkpoint_cost_s=60).empty
