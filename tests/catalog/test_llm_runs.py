"""The LLM runs loader: every row of llm_runs.csv becomes one run, mapped as the issue defines it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest

import fedopt_core
from fedopt_core import runs as run_store
from fedopt_core.catalog.datasets import LLM_THROUGHPUT_TOKENS, llm_runs
from fedopt_core.cli import main as cli_main


@pytest.fixture(scope="module")
def raw(shared_data: Path) -> pd.DataFrame:
    return pd.read_csv(shared_data / "llm_runs.csv", low_memory=False)


@pytest.fixture(scope="module")
def runs(shared_data: Path) -> pd.DataFrame:
    return fedopt_core.load_llm_runs(shared_data / "llm_runs.csv")


def test_every_row_becomes_a_valid_run_in_order(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    assert len(runs) == len(raw)
    for field in ("task_type", "workload", "mode", "gpu_type"):
        assert runs[field].tolist() == raw[field].tolist(), field
    assert runs["platform"].tolist() == raw["system_name"].tolist()
    assert runs["gpu_count"].tolist() == raw["gpu_count"].astype(float).tolist()
    assert (runs["execution_time_s"] > 0).all()
    assert set(runs["work_unit"]) <= set(fedopt_core.schema.WORK_UNITS)


def test_measured_times_are_kept_and_throughputs_become_the_time_for_a_million_tokens(
    raw: pd.DataFrame, runs: pd.DataFrame
) -> None:
    timed = raw["execution_time_s"].notna().to_numpy()
    assert runs.loc[timed, "execution_time_s"].tolist() == pytest.approx(raw.loc[timed, "execution_time_s"].tolist())
    mlperf_training = (raw["source"] == "mlperf-training").to_numpy()
    assert set(runs.loc[mlperf_training, "work_unit"]) == {"run"}
    assert (runs.loc[mlperf_training, "work_units"] == 1).all()
    rate = ~timed
    expected = LLM_THROUGHPUT_TOKENS / raw.loc[rate, "tokens_per_s_total"]
    assert runs.loc[rate, "execution_time_s"].tolist() == pytest.approx(expected.tolist())
    assert set(runs.loc[rate, "work_unit"]) == {"tokens"}


def test_batch_is_the_global_batch_else_the_serving_concurrency(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    serving = (raw["source"] == "ml-energy").to_numpy()
    assert runs.loc[serving, "batch_size"].tolist() == raw.loc[serving, "max_num_seqs"].astype(float).tolist()
    assert runs.loc[serving, "concurrency"].tolist() == raw.loc[serving, "max_num_seqs"].astype(float).tolist()
    assert runs.loc[serving, "output_tokens"].tolist() == pytest.approx(raw.loc[serving, "avg_output_len"].tolist())
    trained = raw["global_batch"].notna().to_numpy()
    assert runs.loc[trained, "batch_size"].tolist() == raw.loc[trained, "global_batch"].astype(float).tolist()
    # MLPerf inference counts samples: its tokens per sample are its tokens/s over its samples/s.
    mlperf = (raw["source"] == "mlperf-inference").to_numpy()
    per_sample = raw.loc[mlperf, "tokens_per_s_total"] / raw.loc[mlperf, "samples_per_s_total"]
    assert runs.loc[mlperf, "output_tokens"].tolist() == pytest.approx(per_sample.tolist())


def test_each_run_names_where_it_came_from(raw: pd.DataFrame, runs: pd.DataFrame) -> None:
    first = runs["notes"].iloc[0]
    assert raw["source"].iloc[0] in first and raw["source_path"].iloc[0] in first


def test_a_missing_column_is_named(raw: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="system_name"):
        llm_runs(raw.drop(columns=["system_name"]))


def test_import_recognises_the_file_reports_a_bad_line_and_keeps_the_rest(
    empty_db: str, shared_data: Path, capsys: pytest.CaptureFixture
) -> None:
    lines = (shared_data / "llm_runs.csv").read_text(encoding="utf-8").splitlines()
    header = next(csv.reader([lines[0]]))
    rows = [next(csv.reader([line])) for line in lines[1:6]]
    rows[2][header.index("gpu_count")] = "-8"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    result = run_store.import_csv(buffer.getvalue().encode())
    assert result.format == "llm_runs"
    assert result.inserted == 4
    assert [(e.line, e.field) for e in result.errors] == [(4, "gpu_count")]

    path = shared_data / "llm_runs.csv"
    assert cli_main(["runs", "import", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "llm_runs" and report["refused"] == 0
    # Rows the first import stored are duplicates now; the file itself repeats no run.
    assert report["inserted"] + report["duplicates"] == len(lines) - 1
    assert report["duplicates"] == 4
    stored = run_store.list_runs(limit=None)
    assert len(stored) == len(lines) - 1
    assert set(stored["source"]) == {"benchmark"}
    assert stored["mode"].notna().all() and stored["work_unit"].notna().all()
    assert cli_main(["runs", "import", str(path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["inserted"] == 0
