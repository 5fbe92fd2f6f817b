"""PerformancePredictor: fit, vectorised predictions, intervals, fallbacks, persistence, seed API."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from fedopt_core import compat, schema
from fedopt_core.prediction.estimator import ModelFormatError, PerformancePredictor
from fedopt_core.prediction.trees import ArrayTrees
from tests.support import NINE_TRAINING_GPUS as TRAIN_GPUS
from tests.support import RESNET50_TASK as R50

HELD_OUT_GPUS = ["RTX A5000", "A100 PCIe 80GB"]


@pytest.fixture(scope="module")
def runs(benchmark_runs: pd.DataFrame) -> pd.DataFrame:
    return benchmark_runs


@pytest.fixture(scope="module")
def model(nine_gpu_model: PerformancePredictor) -> PerformancePredictor:
    return nine_gpu_model


@pytest.fixture(scope="module")
def held_out(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.loc[runs["gpu_type"].isin(HELD_OUT_GPUS)].reset_index(drop=True)


def _platforms(*gpus: tuple[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"platform": f"p{i}", "provider": "x", "gpu_type": g, "gpu_count": c, "price_per_hour_usd": 1.0 + i}
            for i, (g, c) in enumerate(gpus)
        ]
    )


# --------------------------------------------------------------------------- fit


def test_fit_learns_attributes(model: PerformancePredictor) -> None:
    assert model.method_ == "model" and model.fallback_reason_ is None
    assert model.n_runs_ > 1000 and model.n_gpu_models_ == len(TRAIN_GPUS)
    assert model.feature_names_ and all(isinstance(n, str) for n in model.feature_names_)
    assert model.model_version_.startswith("transfer-gbm")
    assert {"transfer", "transfer/sparse"} <= set(model.calibration_)
    for cal in model.calibration_.values():
        assert cal["lower"] < 0 < cal["upper"]


def test_fit_skips_failed_and_invalid_runs(runs: pd.DataFrame) -> None:
    part = runs.loc[runs["gpu_type"].isin(["RTX 3090", "A10"])].head(40).copy()
    part.loc[part.index[0], "success"] = False
    part.loc[part.index[1], "execution_time_s"] = -3.0
    part.loc[part.index[2], "execution_time_s"] = np.inf
    fitted = PerformancePredictor().fit(part)
    assert fitted.n_runs_ == 37 and fitted.n_skipped_ == 3
    assert fitted.skipped_reasons_ == {"execution_time_s": 2, "success": 1}


def test_too_few_gpus_fall_back_to_heuristic_and_say_so(runs: pd.DataFrame) -> None:
    one_gpu = PerformancePredictor().fit(runs.loc[runs["gpu_type"] == "RTX 3090"])
    assert one_gpu.method_ == "heuristic"
    assert "GPU model" in one_gpu.fallback_reason_
    out = one_gpu.predict_frame(_platforms(("H100 SXM5 80GB", 1), ("RTX 3090", 1)).assign(**R50))
    assert (out["method"] == "heuristic").all()
    assert out["basis"].tolist() == ["spec-ratio", "same-gpu"]
    assert out["warning"].str.contains("no fitted model").all()
    assert out.loc[0, "predicted_time_s"] < out.loc[1, "predicted_time_s"]  # specs: the H100 is faster


def test_a_fit_where_no_run_states_a_batch_size_works(runs: pd.DataFrame) -> None:
    # The schema makes batch_size optional; scikit-learn cannot bin an all-NaN column.
    part = runs.loc[runs["gpu_type"].isin(TRAIN_GPUS)].copy()
    part["batch_size"] = np.nan
    fitted = PerformancePredictor(random_state=0).fit(part)
    assert fitted.method_ == "model"
    task = {k: v for k, v in R50.items() if k != "batch_size"}
    out = fitted.predict_frame(_platforms(("A10", 1), ("A100 PCIe 40GB", 1), ("A100 PCIe 40GB", 8)).assign(**task))
    assert np.isfinite(out["predicted_time_s"]).all() and (out["predicted_time_s"] > 0).all()
    assert (out["method"] == "model").all()
    assert out.loc[2, "predicted_time_s"] < out.loc[1, "predicted_time_s"]  # eight GPUs beat one


def test_a_missing_batch_is_filled_by_the_stated_rule(model: PerformancePredictor, runs: pd.DataFrame) -> None:
    # Before the rule: 8x A100 predicted slower than 1x, and 5-12x off the measured runs.
    assert any(tier.endswith("/batch-rule") for tier in model.calibration_)
    task = {k: v for k, v in R50.items() if k != "batch_size"}
    gpus = [("A100 PCIe 80GB", 1), ("A100 PCIe 80GB", 2), ("A100 PCIe 80GB", 8), ("RTX A5000", 1)]
    out = model.predict_frame(_platforms(*gpus).assign(**task))
    with_batch = model.predict_frame(_platforms(*gpus).assign(**R50))
    assert out["warning"].str.contains("no batch size given: assumed").all()
    t = out["predicted_time_s"].to_numpy(float)
    assert t[2] < t[1] < t[0] and t[0] / t[2] <= 8.0 * 1.05
    measured = runs.loc[
        (runs["workload"] == "resnet50") & (runs["precision"] == "fp16_amp") & (runs["gpu_type"] == "A100 PCIe 80GB")
        & (runs["gpu_count"] == 1), "execution_time_s"
    ]  # fmt: skip
    assert len(measured) and 0.5 < t[0] / measured.median() < 2.0
    assert ((out["upper_s"] / out["lower_s"]) < 5).all()
    assert np.isfinite(with_batch["predicted_time_s"]).all()


def test_a_job_with_no_precision_is_compared_with_its_workloads_most_measured_runs(
    model: PerformancePredictor, runs: pd.DataFrame
) -> None:
    # Before the rule, "resnet50" alone matched no measured context and was predicted from hardware facts
    # for a precision no run had: faster than fp16 and fp32 alike on 8x B200, slower than both on an A10.
    assert any(tier.endswith("/precision-rule") for tier in model.calibration_)
    gpus = ["A100 PCIe 80GB", "RTX A5000", "H100 SXM5 80GB", "A10"]
    bare = {"task_type": "training", "workload": "resnet50", "batch_size": 256.0, "work_units": 1e6}
    out = model.predict_frame(_platforms(*[(g, 1) for g in gpus]).assign(**bare))
    assert (out["method"] == "model").all()
    assert out["warning"].str.startswith("no precision given: compared with this workload's most measured runs (").all()
    chosen = out.loc[0, "warning"].split("(", 1)[1].split(")")[0]  # "fp16_amp, v0_ngc20"
    precision, software = chosen.split(", ")
    platforms = _platforms(*[(g, 1) for g in gpus])
    stated = model.predict_frame(platforms.assign(**bare, precision=precision, software=software))
    assert out["predicted_time_s"].to_numpy() == pytest.approx(stated["predicted_time_s"].to_numpy(), rel=1e-9)
    # Its interval is calibrated on runs whose precision was hidden: it allows for every precision measured.
    assert (out["upper_s"] / out["lower_s"] >= stated["upper_s"] / stated["lower_s"]).all()
    measured = (
        runs.loc[(runs["workload"] == "resnet50") & runs["gpu_type"].isin(gpus) & (runs["gpu_count"] == 1)]
        .groupby(["gpu_type", "precision", "software"])["execution_time_s"]
        .median()
    )
    assert {p for _, p, _ in measured.index} == {"fp16_amp", "fp32"}
    inside = [
        lower <= seconds <= upper
        for (gpu, _, _), seconds in measured.items()
        for lower, upper in [out.loc[gpus.index(gpu), ["lower_s", "upper_s"]]]
    ]
    assert all(inside), measured


def test_a_job_with_no_precision_before_any_model_uses_the_logged_runs(runs: pd.DataFrame) -> None:
    unfitted = PerformancePredictor()
    logged = runs.loc[runs["workload"] == "resnet50"]
    bare = {"task_type": "training", "workload": "resnet50", "work_units": 1e6}
    out = unfitted.predict_frame(_platforms(("A10", 1), ("H100 SXM5 80GB", 8)).assign(**bare), anchors=logged)
    assert (out["method"] == "heuristic").all()
    assert not out["basis"].isin(["workload-prior", "cold-prior"]).any()  # the workload's runs were used
    assert out["warning"].str.contains("no precision given: compared with this workload's most measured runs").all()
    stated = unfitted.predict_frame(
        _platforms(("A10", 1), ("H100 SXM5 80GB", 8)).assign(**bare, precision="fp16_amp", software="v0_ngc20"),
        anchors=logged,
    )
    assert out["predicted_time_s"].to_numpy() == pytest.approx(stated["predicted_time_s"].to_numpy(), rel=1e-9)


def test_bad_confidence_is_refused(runs: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="confidence"):
        PerformancePredictor(confidence=1.5).fit(runs.head(10))


# --------------------------------------------------------------------------- predict_frame


def test_predict_frame_shape_order_and_index(model: PerformancePredictor, held_out: pd.DataFrame) -> None:
    rows = held_out.sample(frac=1.0, random_state=1)
    rows.index = [f"r{i}" for i in range(len(rows))]
    out = model.predict_frame(rows)
    assert len(out) == len(rows) and list(out.index) == list(rows.index)
    assert {"predicted_time_s", "lower_s", "upper_s", "method", "basis", "n_anchor_runs", "warning"} <= set(out.columns)
    # the same rows in another order give the same numbers, row for row
    again = model.predict_frame(rows.iloc[::-1]).loc[rows.index]
    np.testing.assert_allclose(again["predicted_time_s"], out["predicted_time_s"])


def test_predict_frame_equals_row_by_row(model: PerformancePredictor, held_out: pd.DataFrame) -> None:
    rows = held_out.iloc[::23].reset_index(drop=True)
    whole = model.predict_frame(rows)
    single = pd.concat([model.predict_frame(rows.iloc[[i]]) for i in range(len(rows))])
    np.testing.assert_allclose(whole["predicted_time_s"], single["predicted_time_s"], rtol=1e-12)
    np.testing.assert_allclose(whole["upper_s"], single["upper_s"], rtol=1e-12)


def test_time_scales_with_work_units(model: PerformancePredictor) -> None:
    rows = _platforms(("RTX A5000", 1), ("RTX A5000", 1)).assign(**R50)
    rows["work_units"] = [1e6, 3e6]
    out = model.predict_frame(rows)
    assert out.loc[1, "predicted_time_s"] == pytest.approx(3 * out.loc[0, "predicted_time_s"])


def test_intervals_contain_the_point(model: PerformancePredictor, held_out: pd.DataFrame) -> None:
    odd = _platforms(("Zorblax 9000", 1), ("cpu", 0), ("L40S", 1), ("B200", 8)).assign(**R50)
    new = odd.assign(workload="never-seen")
    out = pd.concat([model.predict_frame(held_out), model.predict_frame(odd), model.predict_frame(new)])
    assert np.isfinite(out[["predicted_time_s", "lower_s", "upper_s"]].to_numpy()).all()
    assert ((out["lower_s"] <= out["predicted_time_s"]) & (out["predicted_time_s"] <= out["upper_s"])).all()
    assert (out["lower_s"] > 0).all()


def test_unknown_gpu_is_heuristic_with_a_warning(model: PerformancePredictor) -> None:
    out = model.predict_frame(_platforms(("Zorblax 9000", 1), ("A100 SXM4 80GB", 1)).assign(**R50))
    assert out.loc[0, "method"] == "heuristic" and out.loc[0, "basis"] == "unknown-gpu"
    assert "not in the GPU catalogue" in out.loc[0, "warning"]
    assert out.loc[0, "upper_s"] / out.loc[0, "lower_s"] > out.loc[1, "upper_s"] / out.loc[1, "lower_s"]
    assert out.loc[1, "method"] == "model"


def test_fuzzy_gpu_name_still_uses_the_model(model: PerformancePredictor) -> None:
    out = model.predict_frame(_platforms(("NVIDIA A100-SXM4-80GB", 1)).assign(**R50))
    assert out.loc[0, "method"] == "model"


def test_a_mig_slice_is_not_predicted_as_the_whole_gpu(model: PerformancePredictor) -> None:
    out = model.predict_frame(_platforms(("A100-SXM-80GB (7x1g.10gb MIG)", 1), ("A100 SXM4 80GB", 1)).assign(**R50))
    assert out.loc[0, "warning"].startswith("A100-SXM-80GB (7x1g.10gb MIG) is a MIG slice")
    assert out.loc[0, "method"] == "heuristic" and out.loc[1, "method"] == "model"
    assert out.loc[0, "basis"] != "measured"


def test_inference_is_never_predicted_from_training_runs_as_if_measured(model: PerformancePredictor) -> None:
    # Measured on MLPerf: ResNet-50 inference predicted from Lambda's training runs was ~236x off.
    out = model.predict_frame(
        _platforms(("A100 SXM4 80GB", 1), ("H100 SXM5 80GB", 8)).assign(**{**R50, "task_type": "inference"})
    )
    assert (out["method"] == "heuristic").all()
    assert not out["basis"].isin(["measured", "transfer", "direct", "transfer+scaling"]).any()
    assert out["warning"].str.startswith("only training runs of this workload are measured").all()
    assert (out["upper_s"] / out["lower_s"] > 100).all()  # a prior, and its interval says so
    trained = model.predict_frame(_platforms(("A100 SXM4 80GB", 1)).assign(**R50))
    assert trained.loc[0, "method"] == "model" and not str(trained.loc[0, "warning"]).startswith("only")


def test_cpu_platform_is_heuristic(model: PerformancePredictor) -> None:
    out = model.predict_frame(_platforms(("cpu", 0)).assign(**R50))
    assert out.loc[0, "method"] == "heuristic" and out.loc[0, "basis"] == "cpu-from-gpu"
    assert "CPU-only" in out.loc[0, "warning"]


def test_never_measured_workload_is_a_labelled_prior(model: PerformancePredictor) -> None:
    out = model.predict_frame(_platforms(("H100 SXM5 80GB", 1)).assign(**{**R50, "workload": "my-llm"}))
    assert out.loc[0, "method"] == "heuristic" and out.loc[0, "basis"] == "workload-prior"
    assert "no measured run" in out.loc[0, "warning"]
    assert out.loc[0, "upper_s"] / out.loc[0, "lower_s"] > 20  # honest about knowing little


def test_unfitted_predictor_gives_cold_prior_not_a_fake_default() -> None:
    out = PerformancePredictor().predict_frame(_platforms(("H100 SXM5 80GB", 1), ("RTX 3090", 1)).assign(**R50))
    assert (out["basis"] == "cold-prior").all() and (out["method"] == "heuristic").all()
    assert out["warning"].str.contains("placeholder").all()
    assert (out["upper_s"] / out["lower_s"] > 1000).all()


def test_one_anchor_run_gives_a_model_prediction(model: PerformancePredictor) -> None:
    """The user's own run of a new workload on a 3090 is scaled to other GPUs by the transfer model."""
    task = {"task_type": "training", "workload": "my-job", "precision": "fp16", "batch_size": 64.0, "work_units": 500.0}
    anchor = pd.DataFrame([{**task, "gpu_type": "RTX 3090", "gpu_count": 1, "execution_time_s": 1000.0}])
    rows = _platforms(("H100 SXM5 80GB", 1), ("RTX 3090", 1), ("RTX 2080 Ti", 1)).assign(**task)
    out = model.predict_frame(rows, anchors=anchor)
    assert (out["method"] == "model").all() and (out["n_anchor_runs"] == 1).all()
    assert out.loc[0, "predicted_time_s"] < 1000.0 < out.loc[2, "predicted_time_s"]
    assert out.loc[1, "predicted_time_s"] == pytest.approx(1000.0, rel=0.05)  # same GPU: its own run
    without = model.predict_frame(rows)
    assert (without["basis"] == "workload-prior").all()  # the anchor is not remembered


def test_anchor_replaces_training_runs_of_the_same_configuration(model: PerformancePredictor) -> None:
    row = _platforms(("RTX 3090", 1)).assign(**R50)
    base = model.predict_frame(row).loc[0, "predicted_time_s"]
    anchor = row.assign(execution_time_s=base * 3.0)
    moved = model.predict_frame(row, anchors=anchor).loc[0, "predicted_time_s"]
    assert moved > 1.5 * base


def test_bad_input_names_the_field(model: PerformancePredictor) -> None:
    rows = _platforms(("RTX 3090", 1), ("A10", 1)).assign(**R50)
    for field, value in [("work_units", 0.0), ("work_units", np.inf), ("batch_size", -4.0), ("gpu_count", -1)]:
        bad = rows.copy()
        bad.loc[1, field] = value
        with pytest.raises(schema.ValidationError, match=f"{field}: row 1"):
            model.predict_frame(bad)
    with pytest.raises(schema.ValidationError, match="gpu_type"):
        model.predict_frame(rows.assign(gpu_type=None))
    anchor = rows.iloc[[0]].assign(execution_time_s=np.nan)
    with pytest.raises(schema.ValidationError, match="execution_time_s"):
        model.predict_frame(rows, anchors=anchor)
    with pytest.raises(schema.ValidationError, match="work_units"):
        compat.predict_execution_time(model, {**R50, "work_units": float("nan")}, {"gpu_type": "A10", "gpu_count": 1})


def test_empty_frame_gives_empty_predictions(model: PerformancePredictor) -> None:
    out = model.predict_frame(pd.DataFrame(columns=schema.RUN_FIELDS))
    assert out.empty and "predicted_time_s" in out.columns


def test_honest_accuracy_on_held_out_gpus(model: PerformancePredictor, held_out: pd.DataFrame) -> None:
    """GPUs absent from training: loose bounds (the benchmark checks the real targets)."""
    out = model.predict_frame(held_out)
    actual = held_out["execution_time_s"].to_numpy(float)
    ape = np.abs(out["predicted_time_s"].to_numpy(float) - actual) / actual
    for gpu in HELD_OUT_GPUS:
        mask = (held_out["gpu_type"] == gpu).to_numpy(bool)
        assert np.median(ape[mask]) < 0.25, gpu
    inside = (out["lower_s"].to_numpy(float) <= actual) & (actual <= out["upper_s"].to_numpy(float))
    assert 0.75 <= inside.mean() <= 1.0
    assert (out["method"] == "model").all()


def test_a_task_without_software_is_compared_with_the_most_measured_version(
    model: PerformancePredictor, runs: pd.DataFrame
) -> None:
    """Users rarely name a software version; measured contexts all carry one (the table version)."""
    r50 = runs.loc[
        (runs["workload"] == "resnet50") & (runs["precision"] == "fp16_amp") & runs["gpu_type"].isin(TRAIN_GPUS)
    ]
    most = r50["software"].value_counts().sort_index(ascending=False).idxmax()
    gpus = _platforms(("H100 SXM5 80GB", 4), ("B200", 4), ("B200", 8))
    task = {k: v for k, v in R50.items() if k != "software"}
    plain = model.predict_frame(gpus.assign(**task))
    named = model.predict_frame(gpus.assign(**task, software=most))
    pd.testing.assert_frame_equal(plain.drop(columns="warning"), named.drop(columns="warning"))
    assert set(plain["basis"]) <= {"transfer", "transfer+scaling", "measured"}
    assert plain["warning"].str.contains(f"no software version given: compared with the runs under {most}").all()
    assert named["warning"].isna().all()
    b200_4, b200_8 = plain["predicted_time_s"].iloc[1], plain["predicted_time_s"].iloc[2]
    assert b200_4 < plain["predicted_time_s"].iloc[0]  # a newer, faster GPU than any measured one
    assert b200_8 < b200_4


def test_a_named_but_unmeasured_software_is_not_swapped(model: PerformancePredictor) -> None:
    out = model.predict_frame(_platforms(("A100 SXM4 80GB", 1)).assign(**{**R50, "software": "v9_future"}))
    assert out["basis"].iloc[0] == "direct" and out["warning"].isna().all()


def test_a_configuration_the_other_gpus_contradict_is_listed_as_suspect(runs: pd.DataFrame) -> None:
    """One GPU's runs of a workload logged 50x too slow (say, minutes taken for seconds)."""
    subset = runs.loc[runs["workload"].isin(["resnet50", "bert_base_squad", "ssd"])].reset_index(drop=True)
    wrong = (
        (subset["workload"] == "resnet50")
        & (subset["gpu_type"] == "RTX A6000")
        & (subset["software"] == "v0_ngc20")
        & (subset["gpu_count"] == 1)
        & (subset["precision"] == "fp16_amp")
    ).to_numpy(bool)
    assert wrong.sum() >= 1
    small = {"n_splits": 3, "max_pairs": 1500, "max_iter": 40}
    clean = PerformancePredictor(**small).fit(subset)
    corrupted = PerformancePredictor(**small).fit(
        subset.assign(execution_time_s=np.where(wrong, subset["execution_time_s"] * 50, subset["execution_time_s"]))
    )

    def flagged(model: PerformancePredictor) -> list[dict]:
        return [
            s
            for s in model.suspects_
            if s["workload"] == "resnet50"
            and s["gpu_type"] == "RTX A6000"
            and s["gpu_count"] == 1
            and s["software"] == "v0_ngc20"
            and s["precision"] == "fp16_amp"
        ]

    assert flagged(clean) == []
    [suspect] = flagged(corrupted)
    assert 15 < suspect["factor"] < 150  # measured 50x what the other GPUs say, give or take the model's error
    assert suspect["n_runs"] == wrong.sum()
    assert PerformancePredictor.from_bytes(corrupted.to_bytes()).suspects_ == corrupted.suspects_


# --------------------------------------------------------------------------- other nominal levels


def _coverage(out: pd.DataFrame, actual: np.ndarray) -> float:
    return float(np.mean((out["lower_s"].to_numpy(float) <= actual) & (actual <= out["upper_s"].to_numpy(float))))


def test_with_confidence_gives_nested_intervals_around_the_same_point(
    model: PerformancePredictor, held_out: pd.DataFrame
) -> None:
    assert model.calibrated_levels() == sorted(set(model.calibrated_levels()) | {0.5, 0.8, 0.9, 0.95})
    own = model.predict_frame(held_out)
    pd.testing.assert_frame_equal(model.with_confidence(0.9).predict_frame(held_out), own)
    narrow, wide = (
        model.with_confidence(0.5).predict_frame(held_out),
        model.with_confidence(0.99).predict_frame(held_out),
    )
    np.testing.assert_allclose(narrow["predicted_time_s"], own["predicted_time_s"])
    assert (narrow["lower_s"] >= own["lower_s"] - 1e-9).all() and (narrow["upper_s"] <= own["upper_s"] + 1e-9).all()
    assert (wide["lower_s"] <= own["lower_s"] + 1e-9).all() and (wide["upper_s"] >= own["upper_s"] - 1e-9).all()
    assert (narrow["upper_s"] / narrow["lower_s"]).median() < (own["upper_s"] / own["lower_s"]).median()
    assert model.confidence == 0.9 and model.with_confidence(0.5).confidence == 0.5  # the original is untouched


def test_observed_coverage_follows_the_nominal_level_on_unseen_gpus(
    model: PerformancePredictor, runs: pd.DataFrame
) -> None:
    """On the 21 GPUs the model never saw: never overconfident, and a lower level really is narrower.

    (Measured: 0.68 / 0.81 / 0.90 observed at 0.5 / 0.7 / 0.9 nominal here, conservative below 0.9
    with only nine training GPUs; leave-one-GPU-out on all 30, benchmarks/accuracy.py measures
    0.51 / 0.68 / 0.89.)
    """
    unseen = runs.loc[~runs["gpu_type"].isin(TRAIN_GPUS)].reset_index(drop=True)
    actual = unseen["execution_time_s"].to_numpy(float)
    observed = {
        level: _coverage(model.with_confidence(level).predict_frame(unseen), actual) for level in (0.5, 0.7, 0.9)
    }
    assert observed[0.5] < observed[0.7] < observed[0.9]
    for level, seen in observed.items():
        assert seen >= level - 0.05, (level, seen)
    assert observed[0.5] <= 0.8


def test_an_uncalibrated_level_is_refused_with_the_choices(model: PerformancePredictor, runs: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"0\.5.*refit with confidence=0\.42"):
        model.with_confidence(0.42)
    for bad in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="between 0 and 1"):
            model.with_confidence(bad)
    heuristic = PerformancePredictor().fit(runs.loc[runs["gpu_type"] == "RTX 3090"])
    assert heuristic.calibrated_levels() == []
    with pytest.raises(ValueError, match="not calibrated"):
        heuristic.with_confidence(0.5)


def test_levels_survive_a_round_trip(model: PerformancePredictor, held_out: pd.DataFrame) -> None:
    loaded = PerformancePredictor.from_bytes(model.to_bytes())
    assert loaded.calibrated_levels() == model.calibrated_levels()
    pd.testing.assert_frame_equal(
        loaded.with_confidence(0.6).predict_frame(held_out), model.with_confidence(0.6).predict_frame(held_out)
    )


# --------------------------------------------------------------------------- importances


def test_feature_importances(model: PerformancePredictor) -> None:
    imp = model.feature_importances(n_repeats=2)
    assert list(imp.columns) == ["feature", "importance", "std"]
    assert sorted(imp["feature"]) == sorted(model.feature_names_)
    assert np.isfinite(imp[["importance", "std"]].to_numpy()).all()
    assert imp["importance"].is_monotonic_decreasing
    assert imp["importance"].iloc[0] > 0.01  # some hardware fact matters


# --------------------------------------------------------------------------- trees as arrays


def test_array_trees_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) * 2 + np.nan_to_num(X[:, 1]) ** 2 + rng.normal(scale=0.1, size=400)
    with threadpool_limits(1, user_api="openmp"):  # tiny fit: threads only add contention
        sk = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, y)
    trees = ArrayTrees.from_sklearn(sk)
    np.testing.assert_allclose(trees.predict(X), sk.predict(X), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- persistence


def test_round_trip_gives_identical_predictions(
    model: PerformancePredictor, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    rows = pd.concat([held_out.head(30), _platforms(("Zorblax", 1), ("cpu", 0)).assign(**R50)], ignore_index=True)
    anchor = _platforms(("RTX 3090", 1)).assign(**{**R50, "workload": "my-job"}, execution_time_s=50.0)
    loaded = PerformancePredictor.from_bytes(model.to_bytes())
    pd.testing.assert_frame_equal(loaded.predict_frame(rows), model.predict_frame(rows))
    pd.testing.assert_frame_equal(
        loaded.predict_frame(rows.assign(workload="my-job"), anchors=anchor),
        model.predict_frame(rows.assign(workload="my-job"), anchors=anchor),
    )
    path = model.save(tmp_path / "model.fedopt")
    from_file = PerformancePredictor.load(path)
    pd.testing.assert_frame_equal(from_file.predict_frame(rows), model.predict_frame(rows))
    assert from_file.model_version_ == model.model_version_
    assert from_file.calibration_ == model.calibration_
    pd.testing.assert_frame_equal(from_file.feature_importances(n_repeats=2), model.feature_importances(n_repeats=2))


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # what an attacker's pickle would do on load
        return (os.mkdir, (str(self.marker),))


def test_pickle_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Boom(marker))
    with pytest.raises(ModelFormatError, match="pickle"):
        PerformancePredictor.from_bytes(payload)
    (tmp_path / "model.pkl").write_bytes(payload)
    with pytest.raises(ModelFormatError):
        PerformancePredictor.load(tmp_path / "model.pkl")
    assert not marker.exists()


def _rezip(payload: bytes, manifest: dict | None = None, npz: bytes | None = None, extra: dict | None = None) -> bytes:
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    if manifest is not None:
        members["manifest.json"] = json.dumps(manifest).encode()
    if npz is not None:
        members["arrays.npz"] = npz
    members.update(extra or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_tampered_payloads_are_refused(model: PerformancePredictor, tmp_path: Path) -> None:
    good = model.to_bytes()
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        npz = zf.read("arrays.npz")
    # 1. arrays changed behind the manifest's back
    altered = bytearray(npz)
    altered[len(altered) // 2] ^= 0xFF
    with pytest.raises(ModelFormatError, match="checksum"):
        PerformancePredictor.from_bytes(_rezip(good, npz=bytes(altered)))
    # 2. arrays replaced by a pickled object array, checksum "fixed" to match
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.savez(buf, evil=np.array([_Boom(marker)], dtype=object), allow_pickle=True)
    import hashlib

    evil = buf.getvalue()
    forged = {**manifest, "arrays_sha256": hashlib.sha256(evil).hexdigest()}
    with pytest.raises(ModelFormatError):
        PerformancePredictor.from_bytes(_rezip(good, manifest=forged, npz=evil))
    assert not marker.exists()
    # 3. an unexpected member, a foreign manifest, a non-zip
    with pytest.raises(ModelFormatError, match="unexpected members"):
        PerformancePredictor.from_bytes(_rezip(good, extra={"code.py": b"print(1)"}))
    with pytest.raises(ModelFormatError, match="manifest"):
        PerformancePredictor.from_bytes(_rezip(good, manifest={**manifest, "format": "other"}))
    with pytest.raises(ModelFormatError, match="attribute"):
        PerformancePredictor.from_bytes(_rezip(good, manifest={**manifest, "attributes": {"__class__": 1}}))
    with pytest.raises(ModelFormatError):
        PerformancePredictor.from_bytes(b"not a model")


def test_the_direct_model_predicts_a_newer_gpu_faster(runs: pd.DataFrame) -> None:
    # Fitted on the v0 table only: a v1-software run can only be predicted by the direct model,
    # whose trees alone would cap every GPU at the fastest v0 one (H100 was 1.16 off that way).
    v0 = runs.loc[runs["software"].astype(str).str.startswith("v0")]
    assert "H100 SXM5 80GB" not in set(v0["gpu_type"])
    fitted = PerformancePredictor(random_state=0).fit(v0)
    task = {**R50, "software": "v1_ngc22-23"}
    out = fitted.predict_frame(_platforms(("A100 SXM4 80GB", 1), ("H100 SXM5 80GB", 1)).assign(**task))
    assert (out["basis"] == "direct").all()
    assert out.loc[1, "predicted_time_s"] < 0.8 * out.loc[0, "predicted_time_s"]
    loaded = PerformancePredictor.from_bytes(fitted.to_bytes())
    pd.testing.assert_frame_equal(
        loaded.predict_frame(_platforms(("H100 SXM5 80GB", 1)).assign(**task)), out.iloc[[1]].reset_index(drop=True)
    )
