"""AppTest helpers: run the real app script against the test's database."""

from __future__ import annotations

import functools

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from fedopt_core import runs, schema
from fedopt_core.catalog import datasets
from fedopt_core.prediction import training
from fedopt_core.prediction.estimator import PerformancePredictor
from tests.support import DASHBOARD


@pytest.fixture
def app(loaded_db: str, monkeypatch: pytest.MonkeyPatch):
    """A function that opens the dashboard at a page and returns the run AppTest."""
    # Page tests that log runs should not start background retrains unless they ask for one.
    monkeypatch.setenv("FEDOPT_RETRAIN_EVERY", "1000000")
    # AppTest runs in this process: drop results cached for an earlier test's database.
    st.cache_data.clear()
    st.cache_resource.clear()

    def open_page(page: str | None = None, timeout: float = 60) -> AppTest:
        at = AppTest.from_file(str(DASHBOARD), default_timeout=timeout)
        at.run()
        if page is not None:
            at.switch_page(page)
            at.run()
        return at

    return open_page


@pytest.fixture
def trained(loaded_db: str, shared_data) -> int:
    """A model trained on part of Lambda's public benchmark (a few workloads keep it fast)."""
    bench = datasets.load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")
    subset = bench[bench["workload"] == "resnet50"]
    runs.store_runs(subset[schema.RUN_FIELDS], source="benchmark")
    small = functools.partial(PerformancePredictor, n_splits=2, max_pairs=1500, max_iter=30)
    return training.train_now(predictor_factory=small).version_id
