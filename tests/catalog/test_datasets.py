"""The Lambda benchmark loader: every source row becomes one run in the run schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedopt_core import schema
from fedopt_core.catalog.datasets import (
    LAMBDA_BENCHMARK_MAPPING,
    lambda_benchmark_runs,
    lambda_provider,
    load_lambda_benchmarks,
)


@pytest.fixture(scope="module")
def raw(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "gpu_benchmarks.csv", low_memory=False)


@pytest.fixture(scope="module")
def runs(shared_data: Path) -> pd.DataFrame:
    return load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")


def test_every_row_is_kept_in_order_with_the_run_fields(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    assert len(runs) == len(raw)
    assert list(runs.columns[: len(schema.RUN_FIELDS)]) == schema.RUN_FIELDS
    for field, column in LAMBDA_BENCHMARK_MAPPING.items():
        if field == "batch_size":
            continue  # zeros become missing, checked below
        got, want = runs[field], raw[column]
        if pd.api.types.is_numeric_dtype(want):
            np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), equal_nan=True, err_msg=field)
        else:
            assert got.astype(str).tolist() == want.astype(str).str.strip().tolist(), field


def test_constant_fields_and_units(runs: pd.DataFrame) -> None:
    assert (runs["task_type"] == "training").all()
    assert (runs["work_units"] == 1e6).all()
    assert runs["success"].all()
    assert set(runs["work_unit_name"]) >= {"images", "tokens", "mel frames"}


def test_time_is_seconds_per_million_units(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    # time_per_1M_units_s = 1e6 / throughput (the source rounds tiny times to 6 decimals)
    np.testing.assert_allclose(runs["execution_time_s"], 1e6 / raw["throughput"].astype(float), rtol=1e-2)


def test_provider_is_lambda_for_lambda_cloud_rows(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    cloud = raw["platform"].str.contains("Lambda Cloud").to_numpy(bool)
    assert cloud.any()
    assert (runs.loc[cloud, "provider"] == "lambda").all()
    assert (runs.loc[raw["platform"].eq("AWS EC2").to_numpy(bool), "provider"] == "aws").all()
    assert (runs.loc[raw["platform"].str.contains("on-prem").to_numpy(bool), "provider"] == "on-prem").all()


def test_lambda_provider_rules_and_unknown_kinds() -> None:
    kinds = pd.Series(
        [
            "Lambda Cloud (on-demand instance)",
            "Lambda 1-Click Cluster node",
            "Linode cloud",
            "OEM server tested by Lambda",
            "CoreWeave cloud",
            None,
        ]
    )
    assert lambda_provider(kinds).tolist() == ["lambda", "lambda", "linode", "oem", "coreweave", None]


def test_zero_batch_size_means_missing(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    zero = (raw["batch_size_global"].fillna(0) <= 0).to_numpy(bool)
    assert zero.any()
    assert runs.loc[zero, "batch_size"].isna().all()
    assert (runs.loc[~zero, "batch_size"] > 0).all()


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "gpu_benchmarks.csv"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_lambda_benchmarks(missing)


def test_bad_row_names_line_and_field(raw: pd.DataFrame, tmp_path: Path) -> None:
    broken = raw.head(5).copy()
    broken.loc[3, "time_per_1M_units_s"] = -1.0
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"line 5: execution_time_s"):
        load_lambda_benchmarks(path)


def test_missing_column_is_named(raw: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="time_per_1M_units_s"):
        lambda_benchmark_runs(raw.drop(columns=["time_per_1M_units_s"]).head(3))
