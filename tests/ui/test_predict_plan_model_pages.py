"""Predict & compare, Plan and Model pages (AppTest), heuristic first and then with a trained model."""

from __future__ import annotations

import functools
import json

import pytest

from fedopt_core import formatting, runs, schema
from fedopt_core.catalog import datasets
from fedopt_core.prediction import leases, training
from fedopt_core.prediction.estimator import PerformancePredictor
from tests.support import as_shown


def test_predict_page_labels_heuristic_answers_and_ranks(app) -> None:
    at = app("pages/predict.py", timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert any("heuristic" in w.value.lower() for w in at.warning)
    ranking = at.dataframe[0].value
    assert len(ranking) >= 20 and set(ranking["method"]) == {"heuristic"}
    assert (ranking["lower_h"] <= ranking["predicted_h"]).all() and (ranking["predicted_h"] <= ranking["upper_h"]).all()


def test_predict_page_describes_a_model_and_never_recommends_where_it_does_not_fit(app) -> None:
    at = app("pages/predict.py", timeout=120)
    next(s for s in at.selectbox if s.label == "Model").select("llama-3.1-70b")
    next(s for s in at.selectbox if s.label == "Mode").select("full-ft")
    next(n for n in at.number_input if n.label.startswith("Tokens")).set_value(2e8)
    next(b for b in at.button if b.label == "Predict").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    ranking = at.dataframe[0].value
    assert {"fits_memory", "memory_per_gpu_gb"} <= set(ranking.columns)
    assert ranking["fits_memory"].iloc[0]
    too_big = ranking[ranking["fits_memory"] == False]  # noqa: E712 - None (not known) must not count as False
    assert len(too_big) > 0 and too_big["warning"].str.contains("does not fit: needs").all()
    assert any("cannot hold the job in memory" in w.value for w in at.warning)
    assert any("Memory the job needs per GPU" in str(c.proto.spec) for c in at.get("plotly_chart"))
    # no LLM run yet: a stated physics guess (not the 100x cold prior), in tokens/s and $ per 1M tokens
    assert (ranking["method"] == "heuristic").all()
    assert ranking["warning"].str.contains("assumed 40% of it").all()
    assert (ranking["tokens_per_s"] > 0).all() and "cost_per_1m_tokens_usd" in ranking.columns


def test_predict_page_sizes_a_serving_fleet_for_a_target_rate(app) -> None:
    at = app("pages/predict.py", timeout=120)
    next(s for s in at.selectbox if s.label == "Task type").select("inference")
    next(s for s in at.selectbox if s.label == "Model").select("llama-3.1-8b")
    next(s for s in at.selectbox if s.label == "Mode").select("serving")
    next(n for n in at.number_input if n.label.startswith("Tokens (")).set_value(1e6)
    next(b for b in at.button if b.label == "Predict").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert any(h.value == "Serving a target rate" for h in at.subheader)
    target = next(n for n in at.number_input if n.label == "Tokens/s to sustain")
    fleet = next(d.value for d in at.dataframe if "replicas_needed" in d.value.columns)
    target.set_value(fleet["fleet_tokens_per_s"].max() * 5).run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    bigger = next(d.value for d in at.dataframe if "replicas_needed" in d.value.columns)
    top = fleet.set_index("platform")["replicas_needed"]
    after = bigger.set_index("platform")["replicas_needed"]
    shared = top.index.intersection(after.index)
    assert len(shared) > 0 and (after[shared] > top[shared]).all()  # a higher rate needs more replicas


def test_predict_page_with_a_model_deadline_and_budget(app, trained: int) -> None:
    at = app("pages/predict.py", timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"Model version {trained}" in s.value for s in at.success)
    next(n for n in at.number_input if n.label.startswith("Deadline")).set_value(2.0)
    next(s for s in at.selectbox if s.label == "Rank by").select("cost")
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, [e.value for e in at.exception]
    ranking = at.dataframe[0].value
    assert "meets_deadline" in ranking and ranking["method"].eq("model").any()
    assert "Who would pay" in " ".join(c.value for c in at.caption)


def test_predict_page_interval_level_comes_from_the_model(app, trained: int) -> None:
    at = app("pages/predict.py", timeout=180)
    level = at.select_slider(key="interval_level")
    assert not level.disabled and level.value == 0.9
    wide = at.dataframe[0].value
    level.set_value(0.5)
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("50% intervals" in s.value for s in at.success)
    narrow = at.dataframe[0].value.set_index("platform").loc[wide["platform"]]

    def width(t):
        return (t["upper_h"] - t["lower_h"]).to_numpy()

    assert (width(narrow) <= width(wide.set_index("platform")) + 1e-9).all()
    assert (width(narrow) < width(wide.set_index("platform"))).any()


def test_predict_page_software_is_optional_and_said_when_borrowed(app, trained: int) -> None:
    at = app("pages/predict.py", timeout=180)
    at.selectbox(key="predict_precision").select("fp16_amp")
    next(b for b in at.button if b.label == "Predict").click().run()
    assert any("no software version given: compared with the runs under" in as_shown(w.value) for w in at.warning)
    at.text_input(key="predict_software").input("v1_ngc22-23")
    next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("no software version given" in w.value for w in at.warning)
    assert at.dataframe[0].value["method"].eq("model").all()


def test_what_if_updates_in_place(app) -> None:
    at = app("pages/predict.py", timeout=120)
    counts = next(m for m in at.multiselect if m.label == "GPU counts")
    counts.set_value([1, 2, 4, 8]).run()
    assert not at.exception, [e.value for e in at.exception]


def test_plan_page_plans_and_compares_with_the_best_single_platform(app) -> None:
    at = app("pages/plan.py", timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    messages = [m.value for m in at.success] + [m.value for m in at.warning]
    assert messages, "the plan should say whether sharding is worth it"
    [table] = [d.value for d in at.dataframe if "finish_upper_s" in d.value.columns]
    assert len(table) >= 1
    # The headline figures are on the same (upper-bound) rates as the plan and its message.
    finish, cost = at.metric[0], at.metric[1]
    assert finish.label == "Finish (h, on upper bounds)"
    assert float(finish.value) == pytest.approx(table["finish_upper_s"].max() / 3600, abs=0.006)
    assert float(cost.value) == pytest.approx(table["cost_upper_usd"].sum(), abs=0.006)


def test_plan_page_budget_of_zero_means_free_machines_only(app) -> None:
    at = app("pages/plan.py", timeout=120)
    at.number_input(key="plan_budget").set_value(0.0).run()
    assert not at.exception, [e.value for e in at.exception]
    # The default candidates are paid cloud machines: no plan keeps a budget of $0, and the page says so.
    assert not at.success and any("budget" in w.value for w in at.warning), [w.value for w in at.warning]


def test_model_page_before_and_after_training(app, trained: int) -> None:
    at = app("pages/model.py", timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    versions = at.dataframe[0].value
    assert versions["version"].tolist() == [trained] and versions["status"].tolist() == ["active"]
    n_holdout = len(training.newest_runs())
    calibration = [c.value for c in at.caption if "at each nominal level" in c.value]
    assert calibration == [
        f"Intervals of version {trained} at each nominal level, scored on the {n_holdout} newest "
        "runs it did not train on. Above the diagonal: wider than needed; below: overconfident."
    ]


def test_model_page_lists_runs_the_other_gpus_contradict(app, loaded_db: str, shared_data) -> None:
    bench = datasets.load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv")
    subset = bench[bench["workload"] == "resnet50"].reset_index(drop=True)
    wrong = ((subset["gpu_type"] == "RTX A6000") & (subset["gpu_count"] == 1)).to_numpy(bool)
    subset.loc[wrong, "execution_time_s"] *= 50  # minutes logged as seconds, say
    runs.store_runs(subset[schema.RUN_FIELDS], source="benchmark")
    small = functools.partial(PerformancePredictor, n_splits=2, max_pairs=1500, max_iter=30)
    training.train_now(predictor_factory=small)
    at = app("pages/model.py", timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    assert "Runs to check" in [h.value for h in at.subheader]
    [table] = [d.value for d in at.dataframe if "measured_vs_expected" in d.value.columns]
    a6000 = table[(table["gpu_type"] == "RTX A6000") & (table["gpu_count"] == 1)]
    assert len(a6000) >= 1 and (a6000["measured_vs_expected"] > 10).all()


def test_model_page_shows_one_state_and_no_train_button_while_a_retrain_runs(app) -> None:
    at = app("pages/model.py", timeout=120)
    assert [i.value for i in at.info] == [
        "No model yet: predictions are heuristic. Log runs (Runs page) and press Train now."
    ]
    assert not next(b for b in at.button if b.label == "Train now").disabled
    holder = leases.new_holder_id()  # this test process: alive, so the lease counts as running
    assert leases.acquire_lease("retrain", holder)
    try:
        at = app("pages/model.py", timeout=120)
        assert not at.exception, [e.value for e in at.exception]
        assert [i.value for i in at.info] == [
            "No model yet: the first one is training; predictions stay heuristic until it is done."
        ]
        assert next(b for b in at.button if b.label == "Train now").disabled
        assert not any("press Train now" in i.value for i in at.info)
    finally:
        leases.release_lease("retrain", holder)


def test_feature_importances_are_named_in_plain_words(app, trained: int) -> None:
    at = app("pages/model.py", timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "importance (drop" in c.proto.spec]
    labels = list(chart["data"][0]["y"])
    assert len(labels) >= 5 and not [label for label in labels if "_" in label]
    internal = [row[0] for row in chart["data"][0]["customdata"]]  # the internal name, shown on hover
    importances = training.active_importances()
    assert set(internal) <= set(importances["feature"]) and len(internal) == len(labels)


def test_spot_advice_on_the_plan_page_is_one_sentence_above_the_folded_table(app, shared_data) -> None:
    from fedopt_core import catalog

    catalog.import_cloud_prices(shared_data / "cloud_gpu_prices.csv")  # offers with spot prices
    at = app("pages/plan.py", timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    [advice] = [as_shown(s.value) for s in at.success if as_shown(s.value).startswith("Run on")]
    assert ("checkpoint every" in advice or "on-demand on" in advice) and advice.endswith(".")
    assert any(e.label.startswith("Every platform with a spot price") for e in at.expander)


def test_predict_charts_use_one_time_unit_a_log_axis_for_wide_intervals_and_ranges_not_bars(app) -> None:
    at = app("pages/predict.py", timeout=120)
    ranking = at.dataframe[0].value
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    [interval] = [s for s in specs if s["layout"]["title"]["text"].startswith("Predicted time with the interval")]
    top = ranking.head(20)[["predicted_h", "lower_h", "upper_h"]] * 3600  # the frame keeps exact hours
    unit, _ = formatting.time_unit(top["predicted_h"])
    assert interval["layout"]["title"]["text"].endswith(f"({unit})")
    wide = formatting.spans_orders(top["lower_h"], top["upper_h"])
    assert (interval["layout"]["xaxis"].get("type") == "log") == wide
    # the exact seconds are in the hover, beside the rounded unit of the axis
    [dots] = interval["data"]
    assert "s (%{customdata[1]" in dots["hovertemplate"]
    first = dots["y"].index(ranking.iloc[0]["platform"])
    assert dots["customdata"][first] == pytest.approx(top.iloc[0].tolist(), rel=1e-9)
    # the what-if answer (heuristic here, before any model) is a dot with its range, never a bar
    what_if = [s for s in specs if s["layout"]["title"]["text"].startswith("What if: predicted time")]
    assert what_if and all(trace["type"] == "scatter" for s in what_if for trace in s["data"])
