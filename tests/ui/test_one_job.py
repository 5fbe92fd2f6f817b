"""One job, one answer: the Predict page, `fedopt predict`, the Plan page, `fedopt plan` and
track() read the same description as the same task (runs.jobs.job_task) and so agree."""

from __future__ import annotations

import json

import pytest

from fedopt_core import cli, formatting, runs, schema
from fedopt_core.runs.jobs import job_task
from tests.support import as_shown

PLATFORM = "gpu_1x_h100_pcie"
#: The README's example as a new user types it: no batch size, no precision.
JOB = ["--workload", "resnet50", "--work-units", "1e6"]


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli.main([*args, "--json"]) in (0, 1)
    return json.loads(capsys.readouterr().out)


def test_the_same_job_gets_the_same_answer_on_every_face(app, trained: int, capsys) -> None:
    answer = _cli_json(capsys, "predict", *JOB, "--platform", PLATFORM)
    row = answer["platforms"][0]
    assert answer["method"] == "model" and answer["model_version"] == trained
    # Both stated rules fill the job in, and the answer says what they assumed.
    batch_note = next(w for w in answer["warnings"] if "no batch size given: assumed" in w)
    assert "no precision given: compared with this workload's most measured runs (" in batch_note

    # The Predict page's defaults are that job: the same figures, the same stated rule.
    at = app("pages/predict.py", timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    shown = at.dataframe[0].value.set_index("platform").loc[PLATFORM]
    for page_column, cli_field in (("predicted_h", "predicted_time_s"), ("lower_h", "lower_s"), ("upper_h", "upper_s")):
        assert shown[page_column] * 3600 == pytest.approx(row[cli_field], rel=1e-9), page_column
    assert any(as_shown(w.value) == batch_note for w in at.warning)
    # shown as people read durations; the exact hours stay in the frame, out of the columns shown
    table = at.dataframe[0]
    assert shown["predicted"] == formatting.duration(row["predicted_time_s"])
    assert shown["interval"] == f"{formatting.duration(row['lower_s'])} – {formatting.duration(row['upper_s'])}"
    assert "predicted" in table.proto.column_order and "predicted_h" not in table.proto.column_order

    # The Plan page, splitting it over one machine: the shard runs at the same predicted rate.
    at = app("pages/plan.py", timeout=180)
    at.multiselect(key="plan_platforms").set_value([PLATFORM])
    at.number_input(key="plan_work_units").set_value(1_000_000).run(timeout=180)
    assert not at.exception, [e.value for e in at.exception]
    shard = next(d.value for d in at.dataframe if "finish_s" in d.value.columns).iloc[0]
    assert shard["finish_s"] - shard["overhead_s"] == pytest.approx(row["predicted_time_s"], rel=1e-9)
    plan = _cli_json(capsys, "plan", "shard", *JOB, "--platform", PLATFORM)
    assert plan["platforms"][0]["finish_s"] == pytest.approx(shard["finish_s"], rel=1e-9)

    # track(): a run described the same way records the task the faces asked about.
    with runs.track({"workload": "resnet50", "work_units": 1e6}, {"gpu_type": "H100 PCIe 80GB", "gpu_count": 1}) as run:
        pass
    stored = runs.get_run(run.run_id)
    asked = job_task(workload="resnet50", work_units=1e6, for_run=True)
    assert {k: stored[k] for k in asked} == dict(asked)
    assert all(stored.get(k) is None for k in schema.TASK_FIELDS if k not in asked)


def test_the_plan_and_predict_forms_hold_their_inputs_across_pages(app) -> None:
    at = app("pages/plan.py", timeout=120)
    at.selectbox(key="plan_precision").select("bf16")
    at.number_input(key="plan_work_units").set_value(123_000).run()
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/plan.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="plan_precision").value == "bf16"
    assert at.number_input(key="plan_work_units").value == 123_000

    at.switch_page("pages/predict.py").run(timeout=120)
    at.selectbox(key="predict_objective").select("cost")
    next(b for b in at.button if b.label == "Predict").click().run(timeout=120)
    assert "the lowest predicted cost" in at.text[0].value
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/predict.py").run(timeout=120)
    # the form still says what the answer below it was ranked by
    assert at.selectbox(key="predict_objective").value == "cost"
