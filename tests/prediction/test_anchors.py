"""The stated rules that complete a job before it is predicted: what each takes, and when it keeps out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedopt_core.prediction.anchors import fill_missing_precision, precision_rule_notes, with_user_runs


def _table(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task_type", "workload", "precision", "software", "n_runs"]).assign(
        gpu_type="A10", gpu_count=1.0, batch_size=64.0
    )


def _jobs(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["task_type", "workload", "precision", "software"])


TABLE = _table(
    ("training", "bert", "fp16_amp", "v1", 5),
    ("training", "bert", "fp32", "v1", 3),
    ("training", "bert", "bf16", "v2", 4),
    ("inference", "bert", "fp32", "v1", 9),
    ("training", "own-model", None, None, 1),  # logged without a precision
)


def test_a_job_with_neither_precision_nor_software_takes_its_workloads_most_measured_context() -> None:
    jobs = _jobs(
        ("training", "bert", None, None),
        ("inference", "BERT ", None, None),  # names compare as the context keys do
        ("training", "bert", "fp32", None),  # a precision stated: kept (software is another rule's)
        ("training", "bert", None, "v2"),  # software stated: kept
        ("training", "own-model", None, None),  # its own context was measured without a precision
        ("training", "nobody-ran-this", None, None),
        ("training", None, None, None),
    )
    filled, assumed = fill_missing_precision(jobs, TABLE)
    assert list(assumed) == ["fp16_amp, v1", "fp32, v1", None, None, None, None, None]
    assert filled["precision"].tolist()[:2] == ["fp16_amp", "fp32"]
    assert filled["software"].tolist()[:2] == ["v1", "v1"]
    assert filled.iloc[2:].fillna("-").to_numpy().tolist() == jobs.iloc[2:].fillna("-").to_numpy().tolist()
    notes = precision_rule_notes(assumed)
    assert notes[0] == "no precision given: compared with this workload's most measured runs (fp16_amp, v1)"
    assert notes[2:].isna().all()


def test_the_user_runs_count_and_no_table_changes_nothing() -> None:
    jobs = _jobs(("training", "bert", None, None))
    filled, assumed = fill_missing_precision(jobs, None)
    assert assumed.tolist() == [None] and filled.equals(jobs)
    # Six runs logged in bf16 since the fit outweigh the five fp16 anchors.
    mine = _table(*[("training", "bert", "bf16", "v2", np.nan)] * 6).drop(columns="n_runs")
    _, assumed = fill_missing_precision(jobs, with_user_runs(TABLE, mine))
    assert assumed.tolist() == ["bf16, v2"]
