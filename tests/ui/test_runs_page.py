"""The Runs page (AppTest): log with the form, import a CSV upload, filter, edit and delete;
every write is read back from the database."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from fedopt_core import db, runs
from tests.support import as_shown

PAGE = "pages/runs.py"


def stored(url: str) -> pd.DataFrame:
    with db.get_engine(url).connect() as conn:
        return pd.read_sql(text("SELECT * FROM run ORDER BY id"), conn)


def messages(at, kind: str) -> list[str]:
    return [as_shown(m.value) for m in getattr(at, kind)]


#: Form fields picked from the catalogue (a selectbox that also takes typed text).
PICKED = {"gpu_type", "platform", "provider", "task_type", "precision"}


def fill_form(at, **values) -> None:
    for name, value in values.items():
        if name in PICKED:
            widget = at.selectbox(key=f"log_{name}")
        else:
            widget = at.text_input(key=f"log_{name}") if isinstance(value, str) else at.number_input(key=f"log_{name}")
        widget.set_value(value)


def test_the_page_opens_and_shows_the_empty_state(app, loaded_db: str) -> None:
    at = app(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Runs"]
    assert any("No runs yet" in m for m in messages(at, "info"))


def test_the_form_starts_empty_and_copies_the_last_run_only_when_asked(app, loaded_db: str) -> None:
    runs.log_run(
        {"workload": "etl", "software": "v1_ngc22-23", "gpu_type": "cpu", "gpu_count": 0, "execution_time_s": 60}
    )
    at = app(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    # the last run's software is not put into a new run unless the user asks for it
    assert at.text_input(key="log_software").value == "" and at.text_input(key="log_workload").value == ""
    assert at.selectbox(key="log_gpu_type").value is None
    assert "H100 SXM5 80GB" in at.selectbox(key="log_gpu_type").options
    assert "gpu_8x_h100_sxm5" in at.selectbox(key="log_platform").options
    at.button(key="copy_last_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="log_workload").value == "etl" and at.text_input(key="log_software").value == "v1_ngc22-23"
    assert at.number_input(key="log_gpu_count").value == 0  # 0 is a real count: a CPU-only run
    assert any("Copied from the last run logged" in m for m in messages(at, "info"))
    at.button(key="clear_prefill").click().run()
    assert at.text_input(key="log_workload").value == ""


def test_numbers_in_the_form_have_no_needless_decimals(app, loaded_db: str) -> None:
    at = app()
    at.session_state["prefill_run"] = {"workload": "resnet50", "gpu_type": "A10", "gpu_count": 1, "batch_size": 256.0}
    at.switch_page(PAGE).run()
    batch = at.number_input(key="log_batch_size")
    assert batch.value == 256 and isinstance(batch.value, int)  # shown as 256, not 256.00
    assert at.number_input(key="log_work_units").proto.format == "%g"


def test_logging_a_run_with_the_form_stores_it(app, loaded_db: str) -> None:
    at = app(PAGE)
    fill_form(at, workload="resnet50", gpu_type="H100 SXM5 80GB", platform="gpu_8x_h100_sxm5")
    at.number_input(key="log_gpu_count").set_value(8)
    at.number_input(key="log_time").set_value(1.5)
    at.selectbox(key="log_time_unit").set_value("hours")
    at.checkbox(key="log_success").uncheck()
    at.text_input(key="log_notes").set_value("<b>not bold</b>")
    at.button(key="log_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [row] = stored(loaded_db).to_dict("records")
    assert (
        row["workload"],
        row["gpu_type"],
        row["gpu_count"],
        row["execution_time_s"],
        row["success"],
        row["source"],
    ) == ("resnet50", "H100 SXM5 80GB", 8, 5400.0, 0, "form")
    assert row["notes"] == "<b>not bold</b>"
    assert any(f"Logged run #{row['id']}" in m for m in messages(at, "success"))
    assert at.dataframe[0].value["id"].tolist() == [row["id"]]  # the history shows it in the same run


def test_the_form_takes_an_llm_job_as_people_describe_it(app, loaded_db: str) -> None:
    at = app(PAGE)
    fill_form(at, workload="llama-3.1-8b", gpu_type="H100 SXM5 80GB", task_type="fine-tuning")
    at.number_input(key="log_gpu_count").set_value(8)
    at.number_input(key="log_work_units").set_value(2e8)
    at.selectbox(key="log_work_unit").set_value("tokens")
    at.selectbox(key="log_mode").set_value("lora")
    at.number_input(key="log_model_params_b").set_value(8.03)
    at.number_input(key="log_seq_len").set_value(4096)
    at.number_input(key="log_time").set_value(40)
    at.selectbox(key="log_time_unit").set_value("minutes")
    at.button(key="log_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    [row] = stored(loaded_db).to_dict("records")
    assert (row["mode"], row["work_unit"], row["model_params_b"], row["seq_len"]) == ("lora", "tokens", 8.03, 4096)
    assert row["execution_time_s"] == 2400.0
    assert pd.isna(row["output_tokens"])  # not given, not invented


def test_a_bad_run_is_refused_naming_the_field(app, loaded_db: str) -> None:
    at = app(PAGE)
    fill_form(at, gpu_type="A100 PCIe 40GB")
    at.button(key="log_submit").click().run()  # no measured time
    assert any("execution_time_s" in m for m in messages(at, "error"))
    fill_form(at, workload='=HYPERLINK("http://x")')
    at.number_input(key="log_time").set_value(10.0)
    at.button(key="log_submit").click().run()
    assert any("workload" in m and "formula" in m for m in messages(at, "error"))
    assert stored(loaded_db).empty


def test_the_form_is_prefilled_from_a_prediction_then_from_the_last_run(app, loaded_db: str) -> None:
    runs.log_run({"workload": "old", "gpu_type": "A10", "gpu_count": 1, "execution_time_s": 5})
    at = app()
    at.session_state["prefill_run"] = {
        "workload": "bert_large_squad",
        "gpu_type": "A100 SXM4 80GB",
        "gpu_count": 4,
        "batch_size": 96.0,
        "predicted_time_s": 700.0,
    }
    at.switch_page(PAGE).run()
    assert at.text_input(key="log_workload").value == "bert_large_squad"
    assert at.number_input(key="log_gpu_count").value == 4
    assert at.number_input(key="log_time").value is None  # the actual time is the user's to enter
    at.number_input(key="log_time").set_value(650.0)
    at.button(key="log_submit").click().run()
    assert "prefill_run" not in at.session_state
    assert stored(loaded_db)["workload"].tolist() == ["old", "bert_large_squad"]

    fresh = app(PAGE)
    assert fresh.text_input(key="log_workload").value == ""  # a new form starts empty...
    fresh.button(key="copy_last_run").click().run()  # ...and copies the last run logged when asked
    assert fresh.text_input(key="log_workload").value == "bert_large_squad"
    assert fresh.selectbox(key="log_gpu_type").value == "A100 SXM4 80GB"


def test_importing_an_uploaded_csv_stores_good_rows_and_lists_bad_ones(app, loaded_db: str) -> None:
    content = (
        b"workload,gpu_type,gpu_count,execution_time_s\nresnet50,H100 SXM5,8,3600\nbert,A100,1,-4\ngnmt,A10,2,120\n"
    )
    at = app(PAGE)
    at.file_uploader(key="import_file").set_value(("runs.csv", content, "text/csv"))
    at.run()
    at.button(key="import_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert stored(loaded_db)["workload"].tolist() == ["resnet50", "gnmt"]
    assert any("2 runs imported" in m and "1 refused" in m for m in messages(at, "success"))
    errors = [d.value for d in at.dataframe if "reason" in d.value.columns][0]
    assert errors.to_dict("records") == [
        {"line": 3, "field": "execution_time_s", "reason": "must be greater than zero"}
    ]

    at.button(key="import_go").click().run()
    assert len(stored(loaded_db)) == 2
    assert any("0 runs imported" in m and "2 already present" in m for m in messages(at, "info"))


def test_an_unusable_upload_is_refused_with_the_reason(app, loaded_db: str) -> None:
    at = app(PAGE)
    at.file_uploader(key="import_file").set_value(
        ("runs.csv", b"gpu_type;gpu_count;execution_time_s\nA10;1;5\n", "text/csv")
    )
    at.run()
    at.button(key="import_go").click().run()
    assert any("Not imported" in m and "semicolons" in m for m in messages(at, "error"))
    assert stored(loaded_db).empty


def _three_runs() -> list[int]:
    return [
        runs.log_run(
            {
                "workload": "resnet50",
                "gpu_type": "H100 SXM5",
                "gpu_count": 8,
                "execution_time_s": 100,
                "started_at": "2025-01-10T08:00:00Z",
            },
            source="cli",
        ).run_id,
        runs.log_run(
            {
                "workload": "bert",
                "gpu_type": "A10",
                "gpu_count": 1,
                "execution_time_s": 900,
                "started_at": "2025-02-10T08:00:00Z",
            },
            source="form",
        ).run_id,
        runs.log_run(
            {
                "workload": "bert",
                "gpu_type": "A10",
                "gpu_count": 1,
                "execution_time_s": 30,
                "success": False,
                "started_at": "2025-03-10T08:00:00Z",
            },
            source="form",
        ).run_id,
    ]


def test_history_filters(app, loaded_db: str) -> None:
    a, b, c = _three_runs()
    at = app(PAGE)

    def shown() -> list[int]:
        return at.dataframe[0].value["id"].tolist()

    assert shown() == [c, b, a]
    at.multiselect(key="filter_workload").set_value(["bert"]).run()
    assert shown() == [c, b]
    at.selectbox(key="filter_outcome").set_value("succeeded").run()
    assert shown() == [b]
    at.selectbox(key="filter_outcome").set_value("all").run()
    at.multiselect(key="filter_workload").set_value([]).run()
    at.multiselect(key="filter_source").set_value(["cli"]).run()
    assert shown() == [a]
    at.multiselect(key="filter_source").set_value([]).run()
    at.date_input(key="filter_dates").set_value(
        (pd.Timestamp("2025-02-01").date(), pd.Timestamp("2025-02-28").date())
    ).run()
    assert shown() == [b]
    at.multiselect(key="filter_gpu").set_value(["H100 SXM5"]).run()
    assert any("No runs match" in m for m in messages(at, "info"))
    assert not at.exception


def test_editing_a_run(app, loaded_db: str) -> None:
    a, b, c = _three_runs()
    at = app(PAGE)
    at.selectbox(key="edit_pick").set_value(b).run()
    at.number_input(key=f"edit_execution_time_s_{b}").set_value(950.0)
    at.text_input(key=f"edit_notes_{b}").set_value("re-measured")
    at.button(key="edit_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    row = stored(loaded_db).set_index("id").loc[b]
    assert row["execution_time_s"] == 950.0 and row["notes"] == "re-measured"
    assert any(f"Saved run #{b}" in m for m in messages(at, "success"))

    at.selectbox(key="edit_pick").set_value(b).run()
    at.text_input(key=f"edit_gpu_type_{b}").set_value("")
    at.button(key="edit_submit").click().run()
    assert any("gpu_type" in m for m in messages(at, "error"))
    assert stored(loaded_db).set_index("id").loc[b, "gpu_type"] == "A10"


def test_deleting_needs_confirmation(app, loaded_db: str) -> None:
    a, b, c = _three_runs()
    at = app(PAGE)
    at.selectbox(key="edit_pick").set_value(a).run()
    at.button(key="delete_run").click().run()
    assert any("nothing was deleted" in m for m in messages(at, "warning"))
    assert len(stored(loaded_db)) == 3
    at.checkbox(key=f"confirm_delete_{a}").check().run()
    at.button(key="delete_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert sorted(stored(loaded_db)["id"]) == sorted([b, c])
    assert any(f"Deleted run #{a}" in m for m in messages(at, "success"))
    assert a not in at.dataframe[0].value["id"].tolist()


def test_a_viewer_sees_the_history_but_cannot_log(app, loaded_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fedopt_core import auth

    _three_runs()
    # AppTest runs a page script on its own (streamlit_app.py's sign-in does not run after
    # switch_page), so the signed-in viewer is put where the page and the core look it up.
    viewer = auth.Actor(name="guest", role="viewer", signed_in=True)
    monkeypatch.setattr(auth, "current_actor", lambda: viewer)
    at = app(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe[0].value) == 3
    assert at.button(key="log_submit").disabled
    assert any("needs the member role" in m for m in messages(at, "info"))
    assert not [b for b in at.button if b.key in ("delete_run", "edit_submit")]
    with pytest.raises(auth.PermissionDenied):  # and the core refuses even if the page did not
        runs.log_run({"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 5})


def test_the_public_benchmark_imports_with_one_button(
    app, loaded_db: str, shared_data, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FEDOPT_SHARED_DATA", str(shared_data))
    at = app(PAGE)
    at.button(key="import_benchmark").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    rows = len(pd.read_csv(shared_data / "gpu_benchmarks.csv"))
    table = stored(loaded_db)
    assert len(table) == rows and set(table["source"]) == {"benchmark"}
    assert any(m.startswith(f"{rows:,} runs imported (lambda benchmark format)") for m in messages(at, "success"))
    # Without the file (a path the user moved), the page offers no such button.
    monkeypatch.setenv("FEDOPT_SHARED_DATA", str(tmp_path))
    assert not [b for b in app(PAGE).button if b.key == "import_benchmark"]


def test_history_filters_by_software_compares_picked_runs_and_charts_one_workload(app, loaded_db: str) -> None:
    import json

    for gpu, count, seconds, software in (("A10", 1, 900.0, "pt-2.3"), ("H100 SXM5 80GB", 8, 60.0, "pt-2.4")):
        runs.log_run(
            {"workload": "resnet50", "gpu_type": gpu, "gpu_count": count, "work_units": 1e5, "batch_size": 256,
             "software": software, "execution_time_s": seconds}
        )  # fmt: skip
    runs.log_run({"workload": "other", "gpu_type": "A10", "gpu_count": 1, "execution_time_s": 5.0, "software": "x"})
    at = app(PAGE)
    at.multiselect(key="filter_software").set_value(["pt-2.3", "pt-2.4"]).run()
    history = at.dataframe[0].value
    assert sorted(history["software"]) == ["pt-2.3", "pt-2.4"]

    at.multiselect(key="compare_pick").set_value(history["id"].tolist()).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "2 runs side by side" in [h.value for h in at.subheader]
    side = next(d.value for d in at.dataframe if list(d.value.columns) == [f"run #{i}" for i in history["id"]])
    # what differs first (in the fields' order), then what the runs share
    assert side.index[:4].tolist() == ["software", "gpu_type", "gpu_count", "execution_time_s"]
    assert side.loc["workload"].tolist() == ["resnet50", "resnet50"]
    assert any(c.value.startswith("4 of 16 fields differ") for c in at.caption)

    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "seconds per unit" in c.proto.spec]
    measured, predicted = chart["data"]
    assert measured["name"] == "measured" and predicted["name"].startswith("predicted")
    assert sorted(measured["y"]) == pytest.approx([60.0 / 1e5, 900.0 / 1e5])
    assert len(predicted["y"]) == 2 and all(y > 0 for y in predicted["y"])
