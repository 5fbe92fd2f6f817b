"""Runs: log what actually ran, import CSV files, browse, edit, delete and export the history."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fedopt_core import auth, formatting, runs, schema
from fedopt_core.catalog import gpus
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CsvFormatError
from fedopt_core.errors import FedoptInputError
from fedopt_core.schema import MODES, WORK_UNITS
from fedopt_dashboard.ui import (
    after_runs_logged,
    chart_text,
    clear_caches,
    money_column,
    plain,
    platforms,
    require_role,
)

require_role("viewer")

HISTORY_LIMIT = 2000
TIME_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0}
#: At most this many runs of one workload in the history chart (the newest).
CHART_POINTS = 400
TEXT_FIELDS = {
    "workload": "Workload (model or job)",
    "task_type": "Task type (training, inference, …)",
    "precision": "Precision (fp32, fp16_amp, bf16, …)",
    "software": "Software (framework or container version)",
    "platform": "Platform (instance type or machine)",
    "provider": "Provider",
    "gpu_type": "GPU model (or 'cpu')",
}
MORE_NUMBERS = {
    "gpu_memory_gb": "GPU memory per GPU (GB)",
    "vcpus": "vCPUs",
    "ram_gb": "RAM (GB)",
    "network_speed_mbps": "Network (Mbit/s)",
    "input_size_mb": "Input size (MB)",
    "output_size_mb": "Output size (MB)",
    "memory_required_gb": "Memory required (GB)",
    "gpu_memory_required_gb": "GPU memory required (GB)",
    "cpu_cores_required": "CPU cores required",
}
#: An LLM job as people describe it (see "Predicting LLM jobs" in the README).
LLM_NUMBERS = {
    "model_params_b": "Model size (billions of parameters)",
    "active_params_b": "Active parameters per token (billions, MoE)",
    "seq_len": "Sequence length (tokens)",
    "prompt_tokens": "Prompt tokens per request",
    "output_tokens": "Output tokens per request",
    "concurrency": "Requests served at once",
}

st.title("Runs")
st.caption(
    "What actually ran and how long it took. Runs logged here, imported from CSV, logged with "
    "`fedopt runs log` or recorded by `fedopt_core.track()` in a job script all land in one table: "
    "they train the predictor and score the predictions made before them."
)
actor = auth.current_actor()
can_write = actor.can("member")

flash = st.session_state.pop("runs_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])


def _missing(value) -> bool:  # noqa: ANN001 - anything from a dict or a frame
    return value is None or (isinstance(value, float) and value != value) or value is pd.NaT or value is pd.NA


def _text(values: dict, name: str) -> str:
    value = values.get(name)
    return "" if _missing(value) else str(value)


def _number(values: dict, name: str) -> float | None:
    value = values.get(name)
    try:
        return None if _missing(value) else float(value)
    except (TypeError, ValueError):
        return None


def _start_form_over(prefill: dict | None = None, note: str | None = None) -> None:
    """Drop what the log form holds, so it redraws from ``prefill`` (or empty)."""
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith("log_")]:
        del st.session_state[key]
    st.session_state.pop("prefill_run", None)
    st.session_state.pop("prefill_note", None)
    if prefill:
        st.session_state["prefill_run"], st.session_state["prefill_note"] = prefill, note


def _blank_to_none(value):  # noqa: ANN001, ANN202 - widget values
    return None if isinstance(value, str) and not value.strip() else value


MAX_COMPARED = 10
#: Rows of the side-by-side comparison: what differs between runs is what explains their times.
COMPARED_FIELDS = [
    "workload", "task_type", "mode", "precision", "software", "batch_size", "work_units", "work_unit",
    "gpu_type", "gpu_count", "platform", "provider", "execution_time_s", "success", "started_at", "source",
]  # fmt: skip


def compare_runs(selected: pd.DataFrame) -> None:
    """The picked runs side by side, one column each, the fields that differ first."""
    if len(selected) < 2:
        return
    table = selected.set_index("id")[COMPARED_FIELDS].T
    table.columns = [f"run #{i}" for i in table.columns]
    differs = table.astype(str).nunique(axis=1) > 1
    table = pd.concat([table[differs], table[~differs]]).astype(str).replace({"None": "", "nan": "", "NaT": ""})
    st.subheader(f"{len(selected)} runs side by side")
    st.caption(f"{int(differs.sum())} of {len(COMPARED_FIELDS)} fields differ (listed first).")
    st.dataframe(table, width="stretch")


def workload_chart(shown: pd.DataFrame) -> None:
    """One workload's measured time per unit on each GPU, with the model's prediction beside each run."""
    done = shown[shown["success"]]
    if done.empty:
        return
    st.subheader("One workload across GPUs")
    names = done["workload"].dropna().value_counts().index.tolist()
    if not names:
        return
    name = st.selectbox("Workload", names, key="chart_workload", help="The workloads of the runs listed above.")
    from fedopt_core.planning import advisor  # here: only a chart pays for loading the predictor

    runs_of = done[done["workload"] == name].head(CHART_POINTS)
    predicted = advisor.predicted_for_runs(runs_of)
    units = runs_of["work_units"].to_numpy(float)
    per = np.where(np.isfinite(units) & (units > 0), units, 1.0)
    per_unit = "per unit" if np.isfinite(units).all() and (units > 0).all() else "per run"
    machine = chart_text(runs_of["gpu_count"].astype(str) + "x " + runs_of["gpu_type"].astype(str))
    # plain lists: the chart's spec then carries the numbers themselves (readable, testable)
    measured = (runs_of["execution_time_s"].to_numpy(float) / per).tolist()
    guess = (predicted["predicted_time_s"].to_numpy(float) / per).tolist()
    upper = (predicted["upper_s"].to_numpy(float) / per).tolist()
    lower = (predicted["lower_s"].to_numpy(float) / per).tolist()
    figure = go.Figure(
        [
            go.Scatter(x=machine, y=measured, mode="markers", name="measured", marker={"size": 9},
                       text=[f"run #{i}" for i in runs_of["id"]]),
            go.Scatter(
                x=machine, y=guess, mode="markers", name=f"predicted ({predicted['method'].iloc[0]})",
                marker={"size": 9, "symbol": "diamond-open"},
                error_y={"type": "data", "symmetric": False,
                         "array": [u - g for u, g in zip(upper, guess, strict=True)],
                         "arrayminus": [g - lo for g, lo in zip(guess, lower, strict=True)]},
            ),
        ]
    )  # fmt: skip
    figure.update_layout(
        title=chart_text(pd.Series([f"{name}: seconds {per_unit} on each GPU"])).iloc[0],
        yaxis_title=f"seconds {per_unit}",
        scattermode="group",
    )
    if formatting.spans_orders([*measured, *lower], [*measured, *upper]):
        figure.update_yaxes(type="log", title=f"seconds {per_unit} (log scale)")
    st.plotly_chart(figure, width="stretch")


tab_log, tab_import, tab_history = st.tabs(["Log a run", "Import CSV", "History"])

# --------------------------------------------------------------------------- log one run
with tab_log:
    prefill = dict(st.session_state.get("prefill_run") or {})
    if prefill:
        # Said once, above the form: where its values came from (a prediction, or the last run).
        st.info(plain(st.session_state.get("prefill_note", "Pre-filled. Enter the time it actually took.")))
        if st.button("Clear the pre-fill", key="clear_prefill"):
            _start_form_over()
            st.rerun()
    elif runs.latest_run() is not None and st.button(
        "Copy the last run's fields", key="copy_last_run", help="Start from the last run logged; change what differs."
    ):
        last = runs.latest_run() or {}
        _start_form_over(
            {k: v for k, v in last.items() if k in schema.TASK_FIELDS or k in schema.PLATFORM_FIELDS},
            f"Copied from the last run logged (#{last.get('id', '?')}): change what differs.",
        )
        st.rerun()
    if not can_write:
        st.info(f"Logging runs needs the member role; you are a {actor.role}.")
    gpu_names = sorted({*gpus.spec_table()["gpu_name"], *platforms()["gpu_type"].dropna()} - {schema.CPU_ONLY})
    choices = {
        "gpu_type": [*gpu_names, schema.CPU_ONLY],
        "platform": sorted(platforms()["instance_type"].dropna().unique()),
        "provider": sorted(platforms()["provider"].dropna().unique()),
        "task_type": list(schema.TASK_TYPES),
        "precision": list(schema.PRECISIONS),
    }

    with st.form("log_run_form"):
        c1, c2 = st.columns(2)
        text_values = {}
        for i, (name, label) in enumerate(TEXT_FIELDS.items()):
            column = c1 if i % 2 == 0 else c2
            current = _text(prefill, name)
            if name in choices:  # a catalogue list to pick from; anything else can still be typed
                options = choices[name] if not current or current in choices[name] else [current, *choices[name]]
                text_values[name] = column.selectbox(
                    label,
                    options,
                    index=options.index(current) if current else None,
                    accept_new_options=True,
                    placeholder="choose or type",
                    key=f"log_{name}",
                )
            else:
                text_values[name] = column.text_input(label, value=current, key=f"log_{name}")
        last_count = _number(prefill, "gpu_count")  # 0 is a real count: a CPU-only run
        gpu_count = c1.number_input(
            "GPU count",
            min_value=0,
            max_value=int(schema.UPPER_LIMITS["gpu_count"]),
            step=1,
            value=1 if last_count is None else int(last_count),
            key="log_gpu_count",
        )
        batch = _number(prefill, "batch_size")
        batch_size = c2.number_input(
            "Global batch size",
            min_value=0,
            value=None if batch is None else round(batch),
            step=1,
            key="log_batch_size",
        )
        work_units = c1.number_input(
            "Work units (samples, steps …)",
            min_value=0.0,
            value=_number(prefill, "work_units"),
            format="%g",
            key="log_work_units",
        )
        price = c2.number_input(
            "Price (USD per hour)",
            min_value=0.0,
            value=_number(prefill, "price_per_hour_usd"),
            step=0.1,
            key="log_price_per_hour_usd",
        )
        t1, t2, t3 = st.columns([2, 1, 1])
        measured = t1.number_input(
            "Measured time", min_value=0.0, value=None, key="log_time", help="Wall-clock time the job took."
        )
        unit = t2.selectbox("Unit", list(TIME_UNITS), key="log_time_unit")
        succeeded = t3.checkbox("Succeeded", value=True, key="log_success")
        d1, d2 = st.columns(2)
        started_on = d1.date_input("Started on (optional)", value=None, key="log_started_on")
        started_time = d2.time_input("at (UTC)", value=None, key="log_started_time")
        with st.expander("More fields"):
            m1, m2 = st.columns(2)
            more = {}
            for i, (name, label) in enumerate(MORE_NUMBERS.items()):
                more[name] = (m1 if i % 2 == 0 else m2).number_input(
                    label, min_value=0.0, value=_number(prefill, name), format="%g", key=f"log_{name}"
                )
            cpu_type = m1.text_input("CPU model", value=_text(prefill, "cpu_type"), key="log_cpu_type")
            batch_flag = m2.selectbox("Batch processing", ["unknown", "yes", "no"], key="log_is_batch_processing")
        with st.expander("LLM job (mode, work unit, model size, tokens)"):
            l1, l2 = st.columns(2)
            mode = l1.selectbox("Mode", ["", *MODES], key="log_mode")
            work_unit = l2.selectbox("Work unit", ["", *WORK_UNITS], key="log_work_unit")
            llm = {}
            for i, (name, label) in enumerate(LLM_NUMBERS.items()):
                llm[name] = (l1 if i % 2 == 0 else l2).number_input(
                    label, min_value=0.0, value=_number(prefill, name), format="%g", key=f"log_{name}"
                )
        notes = st.text_input("Notes", key="log_notes")
        submitted = st.form_submit_button("Log run", type="primary", disabled=not can_write, key="log_submit")

    if submitted:
        values = {name: _blank_to_none(v) for name, v in text_values.items()}
        values |= {
            "gpu_count": gpu_count,
            "batch_size": batch_size,
            "work_units": work_units,
            "price_per_hour_usd": price,
            "cpu_type": _blank_to_none(cpu_type),
            "notes": _blank_to_none(notes),
            "success": succeeded,
            **more,
            **llm,
            "mode": mode or None,
            "work_unit": work_unit or None,
        }
        values["is_batch_processing"] = {"yes": True, "no": False}.get(batch_flag)
        values["execution_time_s"] = None if measured is None else measured * TIME_UNITS[unit]
        if started_on is not None:
            moment = datetime.combine(started_on, started_time or datetime.min.time())
            values["started_at"] = moment.replace(tzinfo=UTC)
        try:
            logged = runs.log_run(values, source="form")
        except FedoptInputError as exc:
            st.error(plain(f"Not logged — {exc.field}: {exc.message}"))
        except auth.PermissionDenied as exc:
            st.error(plain(f"Not logged — {exc}"))
        else:
            after_runs_logged()
            if logged.inserted:
                st.session_state.pop("prefill_run", None)
                st.session_state.pop("prefill_note", None)
                st.success(f"Logged run #{logged.run_id}.")
                if logged.linked_prediction_id:
                    st.info(f"Compared with prediction #{logged.linked_prediction_id}, made before this run.")
            else:
                st.warning(f"This exact run is already stored (run #{logged.run_id}); nothing added.")

# --------------------------------------------------------------------------- import
with tab_import:
    limit_mb = runs.MAX_IMPORT_BYTES // (1024 * 1024)
    st.caption(
        f"A fedopt run CSV (a header of run fields that includes {', '.join(runs.REQUIRED_COLUMNS)}), or Lambda's "
        f"public benchmark table (`gpu_benchmarks.csv`). Comma-separated, UTF-8, at most {limit_mb} MB. "
        "Bad rows are listed with their line and reason; the others are imported. Importing a file twice adds nothing."
    )
    st.download_button(
        "Download an empty template",
        runs.template_csv(),
        file_name="fedopt-runs-template.csv",
        mime="text/csv",
        key="template_download",
    )
    uploaded = st.file_uploader("CSV file", type=["csv", "txt"], key="import_file", max_upload_size=limit_mb)
    benchmark = get_settings().shared_data_dir / "gpu_benchmarks.csv"
    source = None
    if st.button("Import", key="import_go", disabled=uploaded is None or not can_write):
        source = uploaded
    if benchmark.is_file():
        st.caption(
            f"No runs of your own yet? Lambda's public benchmark ({benchmark}) gives the model real "
            "measurements of 30 GPU models to start from; your own runs are added to them."
        )
        if st.button("Import the public benchmark", key="import_benchmark", disabled=not can_write):
            source = benchmark
    if source is not None:
        bar = st.progress(0.0, text="Importing…")

        def report(done: int, total: int) -> None:
            bar.progress(min(1.0, done / max(total, 1)), text=f"Importing… line {done:,} of {total:,}")

        result = None
        try:
            result = runs.import_csv(source, progress=report)
        except CsvFormatError as exc:
            st.error(plain(f"Not imported — {exc}"))
        except runs.ImportAborted as exc:
            st.error(plain(f"Import stopped — {exc}"))
            result = exc.partial
        except auth.PermissionDenied as exc:
            st.error(plain(f"Not imported — {exc}"))
        bar.empty()
        if result is not None:
            after_runs_logged()
            message = (
                f"{result.inserted:,} runs imported ({result.format.replace('_', ' ')} format), "
                f"{result.duplicates:,} already present, {result.refused:,} refused."
            )
            (st.success if result.inserted else st.info)(message)
            for warning in result.warnings:
                st.warning(warning)
            if result.errors:
                st.dataframe(
                    pd.DataFrame([{"line": e.line, "field": e.field, "reason": e.message} for e in result.errors]),
                    hide_index=True,
                    width="stretch",
                )

# --------------------------------------------------------------------------- history
with tab_history:
    facets = runs.run_facets()
    f1, f2, f3 = st.columns(3)
    workloads = f1.multiselect("Workload", facets["workload"], key="filter_workload")
    gpu_types = f2.multiselect("GPU", facets["gpu_type"], key="filter_gpu")
    sources = f3.multiselect("Source", facets["source"], key="filter_source")
    f4, f5, f6 = st.columns(3)
    software = f4.multiselect("Software", facets["software"], key="filter_software")
    period = f5.date_input("Ran between", value=(), key="filter_dates")
    outcome = f6.selectbox("Outcome", ["all", "succeeded", "failed"], key="filter_outcome")
    filters = {
        "workload": workloads or None,
        "gpu_type": gpu_types or None,
        "source": sources or None,
        "software": software or None,
        "success": {"all": None, "succeeded": True, "failed": False}[outcome],
    }
    if isinstance(period, (tuple, list)) and len(period) >= 1:
        filters["since"] = period[0]
        filters["until"] = period[1] if len(period) == 2 else period[0]
    shown = runs.list_runs(limit=HISTORY_LIMIT, **filters)

    if shown.empty:
        st.info(
            "No runs match these filters."
            if any(v is not None for v in filters.values())
            else "No runs yet. Log one above, import a CSV, or use `fedopt runs log` / `track()`."
        )
    else:
        more_note = (
            f" (the newest {HISTORY_LIMIT:,}; narrow the filters or export to see all)"
            if len(shown) == HISTORY_LIMIT
            else ""
        )
        st.caption(
            f"{len(shown):,} runs{more_note}. Click a column header to sort; pick 2 to {MAX_COMPARED} runs "
            "below to compare them side by side."
        )
        st.dataframe(
            shown[
                [
                    "id",
                    "started_at",
                    "created_at",
                    "workload",
                    "software",
                    "gpu_type",
                    "gpu_count",
                    "platform",
                    "execution_time_s",
                    "success",
                    "price_per_hour_usd",
                    "source",
                    "logged_by",
                    "notes",
                ]
            ],
            hide_index=True,
            width="stretch",
            column_config={
                "execution_time_s": st.column_config.NumberColumn("Seconds", format="%.1f"),
                "price_per_hour_usd": money_column("USD / hour"),
                "created_at": st.column_config.DatetimeColumn("Logged (UTC)"),
                "started_at": st.column_config.DatetimeColumn("Started (UTC)"),
            },
        )
        labels = {int(r.id): f"#{r.id} · {r.workload or '?'} · {r.gpu_count}× {r.gpu_type}" for r in shown.itertuples()}
        picked = st.multiselect(
            "Compare runs", list(labels), format_func=labels.get, max_selections=MAX_COMPARED, key="compare_pick"
        )
        compare_runs(shown[shown["id"].isin(picked)])
        workload_chart(shown)
        export_filters = dict(filters)
        st.download_button(
            "Export these runs (CSV)",
            lambda: runs.export_csv(None, **export_filters),
            file_name="fedopt-runs.csv",
            mime="text/csv",
            key="export_runs",
        )

        if can_write:
            st.subheader("Edit or delete a run")
            labels = {
                int(r.id): f"#{r.id} · {r.workload or '?'} · {r.gpu_count}× {r.gpu_type} · {r.execution_time_s:,.1f} s"
                for r in shown.itertuples()
            }
            run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="edit_pick")
            current = shown[shown["id"] == run_id].iloc[0].to_dict()
            with st.form("edit_run_form"):
                e1, e2 = st.columns(2)
                edits = {}
                for i, (name, label) in enumerate(TEXT_FIELDS.items()):
                    edits[name] = (e1 if i % 2 == 0 else e2).text_input(
                        label, value=_text(current, name), key=f"edit_{name}_{run_id}"
                    )
                edits["gpu_count"] = e1.number_input(
                    "GPU count",
                    min_value=0,
                    # a run stored before the limit existed can still be opened (and corrected)
                    max_value=max(int(schema.UPPER_LIMITS["gpu_count"]), int(current["gpu_count"])),
                    step=1,
                    value=int(current["gpu_count"]),
                    key=f"edit_gpu_count_{run_id}",
                )
                edits["execution_time_s"] = e2.number_input(
                    "Seconds",
                    min_value=0.0,
                    value=float(current["execution_time_s"]),
                    key=f"edit_execution_time_s_{run_id}",
                )
                edits["batch_size"] = e1.number_input(
                    "Global batch size",
                    min_value=0.0,
                    value=_number(current, "batch_size"),
                    key=f"edit_batch_size_{run_id}",
                )
                edits["price_per_hour_usd"] = e2.number_input(
                    "Price (USD per hour)",
                    min_value=0.0,
                    value=_number(current, "price_per_hour_usd"),
                    key=f"edit_price_{run_id}",
                )
                edits["success"] = e1.checkbox(
                    "Succeeded", value=bool(current["success"]), key=f"edit_success_{run_id}"
                )
                edits["notes"] = st.text_input("Notes", value=_text(current, "notes"), key=f"edit_notes_{run_id}")
                save = st.form_submit_button("Save changes", key="edit_submit")
            if save:
                try:
                    runs.update_run(run_id, {k: _blank_to_none(v) for k, v in edits.items()})
                except FedoptInputError as exc:
                    st.error(plain(f"Not saved — {exc.field}: {exc.message}"))
                except (auth.PermissionDenied, runs.RunNotFoundError) as exc:
                    st.error(plain(f"Not saved — {exc}"))
                else:
                    clear_caches()
                    st.session_state["runs_flash"] = ("success", f"Saved run #{run_id}.")
                    st.rerun()

            if actor.can("admin"):
                confirm = st.checkbox(f"Yes, delete run #{run_id} for good", key=f"confirm_delete_{run_id}")
                if st.button("Delete run", key="delete_run"):
                    if not confirm:
                        st.warning("Tick the box above to confirm; nothing was deleted.")
                    else:
                        try:
                            runs.delete_run(run_id)
                        except auth.PermissionDenied as exc:
                            st.error(plain(f"Not deleted — {exc}"))
                        else:
                            clear_caches()
                            st.session_state["runs_flash"] = ("success", f"Deleted run #{run_id}.")
                            st.rerun()
