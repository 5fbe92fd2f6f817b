"""The feature encoding: hardware facts, not ids; log time per unit; comparable-run keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedopt_core import schema
from fedopt_core.catalog import gpus
from fedopt_core.prediction import features


def _rows(**columns) -> pd.DataFrame:
    n = max([len(v) for v in columns.values() if isinstance(v, list)], default=1)
    data = {k: (v if isinstance(v, list) else [v] * n) for k, v in columns.items()}
    return schema.normalise_frame(pd.DataFrame(data))


def test_precision_classes() -> None:
    got = features.precision_class(["fp16_amp", "BF16", "fp32", "tf32", "fp8", "int8", None, "weird"])
    assert got.tolist() == ["half", "half", "fp32", "fp32", "fp8", "int8", "unknown", "unknown"]


def test_hardware_facts_are_logs_of_the_catalogue() -> None:
    facts = features.hardware_facts(["H100 SXM5 80GB", "RTX 3090", "H100 SXM5 80GB"])
    spec = gpus.gpu_specs(["H100 SXM5 80GB", "RTX 3090"])
    assert facts["log_memory_bandwidth"].iloc[0] == pytest.approx(np.log(spec["memory_bandwidth_gb_s"].iloc[0]))
    assert facts["log_fp32_tflops"].iloc[1] == pytest.approx(np.log(spec["fp32_tflops"].iloc[1]))
    assert facts["is_sxm"].tolist() == [1.0, 0.0, 1.0]
    assert facts["gpu_key"].tolist() == ["H100 SXM5 80GB", "RTX 3090", "H100 SXM5 80GB"]
    assert facts["known_hw"].all()
    # the same name twice gives the same row
    pd.testing.assert_series_equal(facts.iloc[0], facts.iloc[2], check_names=False)


def test_laptop_gpu_gets_a_tensor_peak_from_its_architecture() -> None:
    facts = features.hardware_facts(["RTX 2080 Max-Q"])
    spec = gpus.gpu_specs(["RTX 2080 Max-Q"]).iloc[0]
    assert np.isnan(spec["tensor_fp16_tflops"])  # the datasheet figure is missing
    tensor = np.exp(facts["log_tensor_tflops"].iloc[0])
    assert tensor > 2 * spec["fp32_tflops"]  # Turing tensor cores are several times the shader rate


def test_unknown_gpu_and_cpu_have_no_facts_but_a_key() -> None:
    facts = features.hardware_facts(["Zorblax 9000", "cpu", None])
    assert not facts["known_hw"].any()
    assert facts[features.HW_FEATURES].isna().all().all()
    assert facts["gpu_key"].tolist()[:2] == ["?zorblax 9000", schema.CPU_ONLY]
    assert facts["is_cpu"].tolist() == [False, True, False]


def test_peak_depends_on_precision_and_architecture() -> None:
    enc = features.encode(
        _rows(
            gpu_type=["A100 SXM4 80GB", "A100 SXM4 80GB", "V100 SXM2 16GB"],
            gpu_count=1,
            precision=["fp16_amp", "fp32", "fp32"],
            workload="w",
        )
    )
    tensor_a100 = np.log(gpus.gpu_specs(["A100 SXM4 80GB"])["tensor_fp16_tflops"].iloc[0])
    fp32_v100 = np.log(gpus.gpu_specs(["V100 SXM2 16GB"])["fp32_tflops"].iloc[0])
    assert enc["log_peak_tflops"].iloc[0] == pytest.approx(tensor_a100)
    assert enc["log_peak_tflops"].iloc[1] == pytest.approx(tensor_a100 - np.log(2))  # TF32 on Ampere
    assert enc["log_peak_tflops"].iloc[2] == pytest.approx(fp32_v100)  # no TF32 before Ampere


def test_target_is_log_seconds_per_work_unit() -> None:
    enc = features.encode(
        _rows(
            gpu_type="RTX 3090", gpu_count=[1, 2], workload="w", work_units=[1000.0, None], execution_time_s=[50.0, 8.0]
        )
    )
    assert enc["y"].tolist() == pytest.approx([np.log(0.05), np.log(8.0)])  # missing units = one job
    assert enc["log_gpu_count"].tolist() == pytest.approx([0.0, np.log(2)])


def test_context_keys_separate_software_and_precision_but_not_platform() -> None:
    rows = _rows(
        task_type="training",
        workload=["resnet50", "resnet50", "resnet50", "ResNet50 ", None],
        precision=["fp16", "fp16_amp", "fp32", "fp16", "fp16"],
        software=["v1", "v1", "v1", "v1", "v1"],
        gpu_type="RTX 3090",
        gpu_count=1,
        platform=["a", "b", "c", "d", "e"],
    )
    keys = features.context_keys(rows)
    assert keys[0] == keys[1] == keys[3]  # fp16 and fp16_amp are both half; case and spaces ignored
    assert keys[2] != keys[0]
    assert keys[4] is None  # no workload: comparable with nothing
    other = features.context_keys(rows.assign(software="v0"))
    assert other[0] != keys[0]


def test_pair_features_shape_names_and_zero_delta_for_the_same_gpu() -> None:
    enc = features.encode(
        _rows(
            gpu_type=["RTX 3090", "H100 SXM5 80GB"],
            gpu_count=1,
            workload="w",
            precision="fp16",
            batch_size=[64.0, 256.0],
        )
    )
    X = features.pair_features(enc.iloc[[0, 0]], enc.iloc[[0, 1]])
    assert X.shape == (2, len(features.PAIR_FEATURE_NAMES))
    deltas = [i for i, n in enumerate(features.PAIR_FEATURE_NAMES) if n.startswith("delta_")]
    assert np.allclose(X[0, deltas], 0.0)
    bw = features.PAIR_FEATURE_NAMES.index("delta_log_memory_bandwidth")
    assert X[1, bw] < 0  # the 3090 has less bandwidth than the H100
    batch = features.PAIR_FEATURE_NAMES.index("delta_log_batch_size")
    assert X[1, batch] == pytest.approx(np.log(64 / 256))


def test_no_gpu_identity_in_any_feature_name() -> None:
    names = features.TRANSFER_FEATURE_NAMES + features.SCALING_FEATURE_NAMES + features.DIRECT_FEATURE_NAMES
    assert not [n for n in names if "id" in n.split("_") or "gpu_type" in n or "platform" in n]


def test_encoding_is_row_independent() -> None:
    """Encoding a frame equals encoding each row alone (vectorised, no cross-row leakage)."""
    rows = _rows(
        gpu_type=["RTX 3090", "A10", "Zorblax", "cpu"],
        gpu_count=[1, 2, 1, 0],
        workload="w",
        precision=["fp16", "fp32", "fp16", "fp32"],
        execution_time_s=[1.0, 2.0, 3.0, 4.0],
    )
    whole = features.encode(rows)
    for i in range(len(rows)):
        single = features.encode(rows.iloc[[i]])
        pd.testing.assert_frame_equal(
            single.reset_index(drop=True), whole.iloc[[i]].reset_index(drop=True), check_dtype=False
        )


def test_workload_descriptors_recover_sensitivities() -> None:
    """Synthetic runs where time ~ peak**-0.7 * bandwidth**-0.2: the slopes come back."""
    names = ["RTX 3090", "A100 SXM4 80GB", "V100 SXM2 16GB", "RTX A6000", "H100 SXM5 80GB", "RTX 2080 Ti", "A10"]
    enc = features.encode(_rows(gpu_type=names, gpu_count=1, workload="w", precision="fp16"))
    enc["y"] = 1.0 - 0.7 * enc["log_peak_tflops"] - 0.2 * enc["log_memory_bandwidth"]
    enc["n_runs"] = 1.0
    desc = features.workload_descriptors(enc)
    assert len(desc) == 1
    assert desc["ctx_slope_peak"].iloc[0] == pytest.approx(-0.7, abs=0.05)
    assert desc["ctx_slope_bandwidth"].iloc[0] == pytest.approx(-0.2, abs=0.05)
    # fewer than five runs: no slope of its own (and no sibling context to borrow from)
    few = features.workload_descriptors(enc.iloc[:3])
    assert np.isnan(few["ctx_slope_peak"].iloc[0])
    assert np.isfinite(few["ctx_level"].iloc[0])


def test_transfer_features_add_descriptors_of_the_target_context() -> None:
    enc = features.encode(
        _rows(
            gpu_type=["RTX 3090", "A10"],
            gpu_count=1,
            workload=["w", "other"],
            precision="fp16",
            execution_time_s=[1.0, 2.0],
        )
    )
    desc = features.workload_descriptors(enc)
    X = features.transfer_features(enc.iloc[[0, 1]], enc.iloc[[0, 1]], desc)
    assert X.shape == (2, len(features.TRANSFER_FEATURE_NAMES))
    level = features.TRANSFER_FEATURE_NAMES.index("ctx_level")
    assert X[0, level] == pytest.approx(np.log(1.0))
    assert X[1, level] == pytest.approx(np.log(2.0))


def test_encoded_columns_are_documented() -> None:
    enc = features.encode(_rows(gpu_type="A10", gpu_count=1, workload="w"))
    assert list(enc.columns) == [*features.HW_FEATURES, *features.ENCODED_COLUMNS]


def test_every_feature_has_a_plain_name_without_internal_spelling() -> None:
    names = {
        *features.DESCRIPTOR_NAMES,
        *features.DIRECT_FEATURE_NAMES,
        *features.PAIR_FEATURE_NAMES,
        *features.SCALING_FEATURE_NAMES,
        *features.TRANSFER_FEATURE_NAMES,
    }
    plain = {name: features.plain_feature_name(name) for name in names}
    assert not [p for p in plain.values() if "_" in p or "log" in p.split()]
    assert plain["delta_log_memory_bandwidth"] == "memory bandwidth ratio (GPU asked / GPU measured)"
    assert plain["ctx_slope_peak"] == "how the workload's speed follows peak compute"
    assert plain["target_log_gpu_count"] == "GPU count of the machine asked about"
    assert features.plain_feature_name("new_feature_x") == "new feature x"
