"""The physics prior on real LLM runs: labelled, physically sane, sharpened by a run, saved whole."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedopt_core.catalog.datasets import load_llm_runs
from fedopt_core.prediction import work
from fedopt_core.prediction.estimator import PerformancePredictor
from fedopt_core.prediction.physics import PhysicsModel, physics_rows

#: Kept out of the fit: the GPUs newer than every other one in the table.
FUTURE_GPUS = ["B200", "GB200"]
QWEN_LORA = {
    "task_type": "fine-tuning",
    "workload": "qwen2.5-7b",  # in the catalogue, never measured in llm_runs.csv
    "mode": "lora",
    "precision": "bf16",
    "seq_len": 4096,
    "work_units": 2e8,
    "work_unit": "tokens",
}


@pytest.fixture(scope="module")
def llm_runs(shared_data: Path) -> pd.DataFrame:
    return load_llm_runs(shared_data / "llm_runs.csv")


@pytest.fixture(scope="module")
def model(llm_runs: pd.DataFrame) -> PerformancePredictor:
    return PerformancePredictor(random_state=0).fit(llm_runs.loc[~llm_runs["gpu_type"].isin(FUTURE_GPUS)])


def _platforms(*gpus: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"platform": f"p{i}", "provider": "x", "gpu_type": g, "gpu_count": c, "price_per_hour_usd": 1.0}
            for i, (g, c) in enumerate(gpus)
        ]
    )


def test_an_unmeasured_described_job_gets_a_labelled_physics_estimate(model: PerformancePredictor) -> None:
    assert model.physics_ is not None and {"physics", "physics+anchors"} <= set(model.physics_.calibration_)
    out = model.predict_frame(_platforms(("H100 SXM5 80GB", 8), ("A100 SXM4 80GB", 8)).assign(**QWEN_LORA))
    assert (out["method"] == "model").all() and (out["basis"] == "physics").all()
    assert out["warning"].str.contains("physics estimate").all()
    # Not the cold prior's 100x each way: a calibrated interval a few times wide.
    assert (out["upper_s"] / out["lower_s"] < 10).all()
    # 6N-ish FLOPs per token at a plausible efficiency: between 15% and 100% of the peak.
    h100 = work.flops_per_token(work.describe_job(QWEN_LORA).model, "lora", 4096) * 2e8 / (8 * 989e12)
    assert h100 < out.loc[0, "predicted_time_s"] < h100 / 0.15


def test_a_gpu_faster_than_every_measured_one_is_predicted_faster(model: PerformancePredictor) -> None:
    # B200 is not in the fit; trees alone would predict it equal to the fastest GPU they saw.
    out = model.predict_frame(_platforms(("H100 SXM5 80GB", 8), ("B200", 8)).assign(**QWEN_LORA))
    assert out.loc[1, "basis"] == "physics"
    assert out.loc[1, "predicted_time_s"] < 0.8 * out.loc[0, "predicted_time_s"]


@pytest.mark.parametrize(
    "job",
    [
        QWEN_LORA,
        {**QWEN_LORA, "task_type": "inference", "mode": "offline", "work_units": 1e7, "seq_len": None},
        {**QWEN_LORA, "workload": "llama3-70b", "mode": "pretrain", "task_type": "training"},
    ],
    ids=["lora", "offline", "measured-workload"],
)
def test_more_gpus_are_never_slower_nor_more_than_n_times_faster(model: PerformancePredictor, job: dict) -> None:
    counts = [1, 2, 4, 8, 16, 64]
    out = model.predict_frame(_platforms(*[("H100 SXM5 80GB", c) for c in counts]).assign(**job))
    physics = out["basis"].str.startswith("physics")
    assert physics.all(), out
    t = out["predicted_time_s"].to_numpy(float)
    for k in range(1, len(counts)):
        assert t[k] <= t[k - 1] * (1 + 1e-9)
        assert t[k] >= t[k - 1] * counts[k - 1] / counts[k] * (1 - 1e-9)


def test_training_never_runs_faster_than_the_peak(model: PerformancePredictor, llm_runs: pd.DataFrame) -> None:
    rows = pd.concat([_platforms((g, 8)).assign(**QWEN_LORA) for g in ["A10", "L4", "H100 SXM5 80GB", "MI300X"]])
    rows = rows.reset_index(drop=True)
    out = model.physics_.predict(model_rows(rows))
    phys = physics_rows(model_rows(rows))
    assert out["log_pred"].notna().all()
    assert (out["log_pred"].to_numpy(float) >= phys["log_t_phys"].to_numpy(float) - 1e-9).all()


def model_rows(rows: pd.DataFrame) -> pd.DataFrame:
    from fedopt_core import schema

    return schema.normalise_frame(rows)


def test_one_measured_run_anchors_the_estimate(model: PerformancePredictor) -> None:
    platforms = _platforms(("H100 SXM5 80GB", 8), ("A100 SXM4 80GB", 8), ("L40S", 8))
    before = model.predict_frame(platforms.assign(**QWEN_LORA))
    run = pd.DataFrame([{**QWEN_LORA, "gpu_type": "A100 SXM4 80GB", "gpu_count": 8, "execution_time_s": 9000.0}])
    after = model.predict_frame(platforms.assign(**QWEN_LORA), anchors=run)
    # the run's own configuration is that measurement; the other GPUs are anchored on it
    assert after["basis"].tolist() == ["physics+anchors", "measured", "physics+anchors"]
    assert (after["n_anchor_runs"] >= 1).all()
    assert after.loc[1, "predicted_time_s"] == pytest.approx(9000.0, rel=0.05)
    # the other GPUs move with the run: H100 faster than the A100 it was measured on, by about
    # their dense BF16 peaks (989 and 312 TFLOPS) and a learned efficiency difference
    speedup = after.loc[1, "predicted_time_s"] / after.loc[0, "predicted_time_s"]
    assert 989 / 312 / 1.5 < speedup < 989 / 312 * 1.5
    assert after.loc[2, "predicted_time_s"] != pytest.approx(before.loc[2, "predicted_time_s"], rel=0.01)
    assert after["warning"].isna().all()


def test_a_described_job_on_a_measured_configuration_keeps_the_measurement(
    model: PerformancePredictor, llm_runs: pd.DataFrame
) -> None:
    row = llm_runs.loc[(llm_runs["workload"] == "mpt-7b") & (llm_runs["gpu_type"] == "H100 SXM5 80GB")].iloc[0]
    task = row.drop(labels=["execution_time_s", "success", "platform", "provider"], errors="ignore").to_dict()
    out = model.predict_frame(pd.DataFrame([{**task, "platform": "p", "price_per_hour_usd": 1.0}]))
    assert out.loc[0, "basis"] in {"measured", "physics+anchors"}
    assert out.loc[0, "predicted_time_s"] == pytest.approx(row["execution_time_s"], rel=0.15)


def test_the_physics_model_survives_a_round_trip(model: PerformancePredictor) -> None:
    rows = _platforms(("H100 SXM5 80GB", 8), ("A100 SXM4 80GB", 1), ("L4", 2)).assign(**QWEN_LORA)
    loaded = PerformancePredictor.from_bytes(model.to_bytes())
    assert loaded.physics_ is not None
    pd.testing.assert_frame_equal(loaded.predict_frame(rows), model.predict_frame(rows))
    half = loaded.with_confidence(0.5).predict_frame(rows)
    full = loaded.predict_frame(rows)
    assert ((half["upper_s"] / half["lower_s"]) < (full["upper_s"] / full["lower_s"])).all()


def test_without_inference_runs_no_inference_efficiency_is_invented(llm_runs: pd.DataFrame) -> None:
    training = llm_runs.loc[llm_runs["task_type"] != "inference"]
    physics = PhysicsModel(max_iter=50).fit(training)
    assert physics.efficiency_.groups == ["training"]
    job = {**QWEN_LORA, "task_type": "inference", "mode": "offline", "seq_len": None, "work_units": 1e6}
    out = physics.predict(model_rows(_platforms(("H100 SXM5 80GB", 1)).assign(**job)))
    assert math.isnan(out.loc[0, "log_pred"])
    assert np.isfinite(
        physics.predict(model_rows(_platforms(("H100 SXM5 80GB", 1)).assign(**QWEN_LORA)))["log_pred"]
    ).all()


def test_before_any_llm_run_a_described_job_gets_a_stated_physics_guess(benchmark_runs: pd.DataFrame) -> None:
    # Fitted on Lambda's image/NLP benchmark only: nothing teaches an LLM efficiency yet.
    lambda_only = PerformancePredictor(random_state=0).fit(
        benchmark_runs.loc[benchmark_runs["gpu_type"].isin(["RTX 3090", "A100 SXM4 80GB", "V100 SXM2 16GB"])]
    )
    assert lambda_only.physics_ is None
    for model in (lambda_only, PerformancePredictor()):  # fitted, and never fitted
        out = model.predict_frame(_platforms(("H100 SXM5 80GB", 1), ("H100 SXM5 80GB", 8)).assign(**QWEN_LORA))
        assert (out["basis"] == "physics-prior").all() and (out["method"] == "heuristic").all()
        assert out["warning"].str.contains("assumed 40% of it").all()
        # a stated range of 2.5x each way, not the cold prior's 100x
        assert np.allclose(out["upper_s"] / out["predicted_time_s"], 2.5)
        t = out["predicted_time_s"].to_numpy(float)
        assert t[1] == pytest.approx(t[0] / 8)
    # the benchmark's own workloads keep their measured-run path
    r50 = lambda_only.predict_frame(
        _platforms(("A100 SXM4 80GB", 1)).assign(workload="resnet50", precision="fp16_amp", batch_size=256)
    )
    assert r50.loc[0, "basis"] != "physics-prior"


def test_a_measured_run_of_unstated_precision_that_fit_only_at_8_bits_is_read_at_8_bits() -> None:
    from fedopt_core import schema

    served = {
        "task_type": "inference",
        "workload": "llama-3.1-70b",
        "mode": "offline",
        "gpu_count": 1,
        "work_units": 1e6,
        "work_unit": "tokens",
    }
    measured = schema.normalise_frame(
        pd.DataFrame(
            [
                served | {"gpu_type": "H200 SXM 141GB", "execution_time_s": 240.0},  # 140 GB at 16 bits: no room
                served | {"gpu_type": "H200 SXM 141GB", "execution_time_s": 240.0, "precision": "bf16"},
                served | {"gpu_type": "H200 SXM 141GB", "gpu_count": 2, "execution_time_s": 120.0},
                served | {"gpu_type": "H200 SXM 141GB"},  # a task: no measured time, nothing inferred
            ]
        )
    )
    table = physics_rows(measured)
    assert table["precision_fp8"].tolist() == [1.0, 0.0, 0.0, 0.0]
    # at 8 bits the KV caches of many sequences fit beside 70 GB of weights; at 16 bits one at most
    assert table.loc[0, "log_concurrency"] > math.log(16) and table.loc[1, "log_concurrency"] == 0.0
    assert table.loc[0, "log_t_phys"] < table.loc[1, "log_t_phys"] - math.log(4)
