"""Predict & compare: how long a job takes on each platform, what it costs, and where to run it."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from fedopt_core import accounts, catalog, formatting, schema
from fedopt_core.errors import FedoptInputError
from fedopt_core.planning import advisor, serving
from fedopt_core.runs import jobs
from fedopt_dashboard.ui import (
    available_gpu_platforms,
    chart_text,
    importance_chart,
    interval_figure,
    known_workloads,
    money_column,
    plain,
    require_role,
)

require_role("viewer")
st.title("Predict & compare")
st.caption(
    "Predicted run time and cost per platform, with a prediction interval. Every figure says whether it "
    "comes from the trained model or from the hardware heuristic used before there are runs."
)

gpu_platforms = available_gpu_platforms()
model_catalogue = catalog.list_models()
model_names = dict(zip(model_catalogue["model_id"], model_catalogue["name"], strict=True))
NO_MODEL, OWN_MODEL, FROM_TASK_TYPE = "(not a catalogued model)", "(my own: give its size)", "(from the task type)"
FROM_MODE, NOT_STATED = "(from the mode: training)", "(not stated)"
# The active model, read once for everything this page asks of it.
model = advisor.current_model()

# Every input has a key under "predict_", so the form shows what it held when you come back
# (ui.keep_page_inputs), and the answer below is always the one for the form above it.
with st.form("task"):
    st.subheader("The job")
    c1, c2, c3 = st.columns(3)
    task_type = c1.selectbox("Task type", [FROM_MODE, *schema.TASK_TYPES], key="predict_task_type")
    known = known_workloads()
    workload = c2.selectbox(
        "Workload (model or job)",
        known,
        index=known.index("resnet50"),
        accept_new_options=True,
        key="predict_workload",
        help="A workload with measured runs, or type your own (an LLM: pick it under Model below).",
    )
    precision = c3.selectbox("Precision", [NOT_STATED, *schema.PRECISIONS], key="predict_precision")
    batch_size = c1.number_input(
        "Global batch size",
        min_value=1,
        value=None,
        placeholder="most measured",
        key="predict_batch_size",
        help="Empty: the workload's most measured batch per GPU, times the GPUs (the answer says so).",
    )
    work_units = c2.number_input(
        "Work units (samples or steps)",
        min_value=1.0,
        value=jobs.DEFAULT_WORK_UNITS,
        step=1000.0,
        format="%.0f",
        key="predict_work_units",
    )
    input_mb = c3.number_input("Input data (MB)", min_value=0.0, value=0.0, format="%g", key="predict_input_mb")
    output_mb = c1.number_input("Output data (MB)", min_value=0.0, value=0.0, format="%g", key="predict_output_mb")
    gpu_mem = c2.number_input(
        "GPU memory needed per GPU (GB, 0 = unknown)", min_value=0.0, value=0.0, format="%g", key="predict_gpu_mem"
    )
    software = c3.text_input(
        "Software (optional)",
        key="predict_software",
        help="Framework or container version, as in your logged runs. Empty: the version "
        "with the most measured runs of this workload.",
    )
    st.markdown("**Describe the model** (LLM and transformer jobs): its memory and work then follow from it.")
    m1, m2, m3 = st.columns(3)
    model_choice = m1.selectbox(
        "Model",
        [NO_MODEL, OWN_MODEL, *model_catalogue["model_id"]],
        format_func=lambda v: model_names.get(v, v),
        help="A catalogued model (fedopt models list), or your own described by its size.",
        key="predict_model",
    )
    own_params_b = m2.number_input(
        "Your model's size (billions of parameters)", min_value=0.0, value=0.0, format="%g", key="predict_params_b"
    )
    mode = m3.selectbox("Mode", [FROM_TASK_TYPE, *schema.MODES], key="predict_mode", help="Training: pretrain, "
                        "full-ft, lora, qlora. Inference: offline (batch), server, interactive, serving.")  # fmt: skip
    tokens = m1.number_input(
        "Tokens (trained on or generated; 0 = use work units)",
        min_value=0.0,
        value=0.0,
        format="%g",
        key="predict_tokens",
    )
    seq_len = m2.number_input(
        "Sequence length (tokens; 0 = 4,096)", min_value=0, value=0, step=512, key="predict_seq_len"
    )
    concurrency = m3.number_input(
        "Requests at once (inference; 0 = one)", min_value=0, value=0, key="predict_concurrency"
    )
    st.markdown("**Already ran it?** Give one measured run and the prediction scales from it.")
    a1, a2, a3 = st.columns(3)
    anchor_gpu = a1.selectbox(
        "On GPU", ["(none)"] + sorted(gpu_platforms["gpu_type"].unique()), key="predict_anchor_gpu"
    )
    anchor_count = a2.number_input("GPUs", min_value=1, value=1, key="predict_anchor_count")
    anchor_s = a3.number_input("Seconds", min_value=0.0, value=0.0, format="%g", key="predict_anchor_s")
    st.subheader("Candidates and goal")
    f1, f2, f3 = st.columns(3)
    providers = f1.multiselect("Providers", sorted(gpu_platforms["provider"].unique()), key="predict_providers")
    max_price = f2.number_input(
        "Max USD per hour (0 = any)", min_value=0.0, value=0.0, format="%g", key="predict_max_price"
    )
    objective = f3.selectbox("Rank by", list(advisor.OBJECTIVES), key="predict_objective")
    deadline_h = f1.number_input(
        "Deadline (hours, 0 = none)", min_value=0.0, value=0.0, format="%g", key="predict_deadline_h"
    )
    budget = f2.number_input("Budget (USD, 0 = none)", min_value=0.0, value=0.0, format="%g", key="predict_budget")
    levels, own_level = model.interval_levels()
    level = f3.select_slider(
        "Interval level",
        options=levels or [0.9],
        value=own_level or 0.9,
        format_func=lambda v: f"{v:.0%}",
        disabled=not levels,
        key="interval_level",
        help="How sure the interval (and the deadline check on its upper bound) should be. "
        "Levels come from the trained model's calibration; none before a model exists.",
    )
    submitted = st.form_submit_button("Predict", type="primary")

if submitted or "comparison_task" not in st.session_state:
    try:
        st.session_state["comparison_task"] = jobs.job_task(
            task_type=None if task_type == FROM_MODE else task_type,
            workload=workload,
            model=None if model_choice in (NO_MODEL, OWN_MODEL) else model_choice,
            precision=None if precision == NOT_STATED else precision,
            batch_size=batch_size,
            work_units=None if tokens else work_units,
            tokens=tokens or None,
            mode=None if mode == FROM_TASK_TYPE else mode,
            model_params_b=own_params_b or None if model_choice == OWN_MODEL else None,
            seq_len=seq_len or None,
            concurrency=concurrency or None,
            input_size_mb=input_mb or None,
            output_size_mb=output_mb or None,
            gpu_memory_required_gb=gpu_mem or None,
            software=software,
        )
    except FedoptInputError as exc:
        st.session_state.pop("comparison_task", None)
        st.error(plain(f"Cannot predict: {exc}"))
        st.stop()
    st.session_state["comparison_goal"] = {
        "providers": providers,
        "max_price": max_price or None,
        "objective": objective,
        "deadline_s": deadline_h * 3600 or None,
        "budget_usd": budget or None,
        "confidence": level if levels else None,
        "anchor": None
        if anchor_gpu == "(none)" or anchor_s <= 0
        else {"gpu_type": anchor_gpu, "gpu_count": anchor_count, "execution_time_s": anchor_s},
    }
task, goal = st.session_state["comparison_task"], st.session_state["comparison_goal"]

candidates = catalog.filter_platforms(
    gpu_platforms, provider=goal["providers"] or None, max_price_per_hour_usd=goal["max_price"]
)
if candidates.empty:
    st.info("No platform matches these filters. Widen the providers or the price limit.")
    st.stop()

try:
    result = advisor.compare(
        task,
        candidates,
        objective=goal["objective"],
        deadline_s=goal["deadline_s"],
        budget_usd=goal["budget_usd"],
        anchor=goal["anchor"],
        record=submitted,
        confidence=goal.get("confidence"),
        model=model,
    )
except FedoptInputError as exc:
    st.error(plain(f"Cannot predict: {exc}"))
    st.stop()

ranked = result.ranking
if result.method == "model":
    st.success(
        f"Model version {result.model_version}, trained on {result.n_training_runs} runs; "
        f"{result.confidence:.0%} intervals."
    )
else:
    st.warning(
        "No trained model yet: these are **heuristic** estimates from GPU datasheets (and your measured "
        "run, if given), with wide intervals. Log actual runs on the Runs page to train a model."
    )
for warning in result.warnings:
    st.warning(plain(warning))

st.subheader("Recommendation")
st.text(result.reason)
if result.recommendation is not None:
    payer = accounts.paying_accounts(
        pd.DataFrame(
            [
                {
                    "provider": result.recommendation["provider"],
                    "expected_hours": result.recommendation["predicted_time_s"] / 3600,
                    "expected_cost_usd": result.recommendation["cost_usd"],
                }
            ]
        )
    )
    st.caption(
        plain(
            f"Who would pay: {payer['paying_account'].iloc[0] or 'no account can'} — {payer['paying_reason'].iloc[0]}"
        )
    )

shown = ranked.assign(
    predicted_h=ranked["predicted_time_s"] / 3600, lower_h=ranked["lower_s"] / 3600, upper_h=ranked["upper_s"] / 3600
)
columns = [
    c
    for c in [
        "platform",
        "provider",
        "gpu_type",
        "gpu_count",
        "predicted_h",
        "lower_h",
        "upper_h",
        "cost_usd",
        "cost_lower_usd",
        "cost_upper_usd",
        "tokens_per_s",
        "cost_per_1m_tokens_usd",
        "meets_deadline",
        "within_budget",
        "fits_memory",
        "memory_per_gpu_gb",
        "pareto_optimal",
        "method",
        "warning",
    ]
    if c in shown.columns
]
if shown["fits_memory"].isna().all():  # the task names no model: nothing is claimed about memory
    columns = [c for c in columns if c not in ("fits_memory", "memory_per_gpu_gb")]
if shown["tokens_per_s"].isna().all():  # work not in tokens
    columns = [c for c in columns if c not in ("tokens_per_s", "cost_per_1m_tokens_usd")]
# Durations as people read them (45 s, 12 min, 3.4 h); the exact hours stay in the frame (and in
# its CSV download) for whoever needs them, out of the columns shown.
shown = shown.assign(
    predicted=shown["predicted_time_s"].map(formatting.duration),
    interval=shown["lower_s"].map(formatting.duration) + " – " + shown["upper_s"].map(formatting.duration),
)
timed = [c for c in columns if c not in ("predicted_h", "lower_h", "upper_h")]
timed[timed.index("gpu_count") + 1 : timed.index("gpu_count") + 1] = ["predicted", "interval"]
st.dataframe(
    shown[[*columns, "predicted", "interval"]],
    hide_index=True,
    width="stretch",
    column_order=timed,
    column_config={
        # Headers in words; the frame (and its CSV download) keeps the field names.
        "platform": "Platform",
        "provider": "Provider",
        "gpu_type": "GPU",
        "gpu_count": st.column_config.NumberColumn("GPUs", format="%d"),
        "predicted": st.column_config.TextColumn("Predicted", help="Predicted wall-clock time of the job"),
        "interval": st.column_config.TextColumn(
            "Interval", help="The prediction interval at the level above (lower – upper bound)"
        ),
        "cost_usd": money_column("Cost"),
        "cost_lower_usd": money_column("Cost low"),
        "cost_upper_usd": money_column("Cost high"),
        "fits_memory": st.column_config.CheckboxColumn("Fits in memory"),
        "memory_per_gpu_gb": st.column_config.NumberColumn("Memory per GPU (GB)", format="%.1f"),
        "tokens_per_s": st.column_config.NumberColumn("Tokens/s", format="%.0f"),
        "cost_per_1m_tokens_usd": money_column("Cost per 1M tokens"),
        "meets_deadline": st.column_config.CheckboxColumn("Meets deadline", help="Upper bound within the deadline"),
        "within_budget": st.column_config.CheckboxColumn("Within budget", help="Upper cost bound within the budget"),
        "pareto_optimal": st.column_config.CheckboxColumn(
            "Best trade-off", help="No other platform is both faster and cheaper (Pareto optimal)"
        ),
        "method": "Method",
        "warning": "Note",
    },
)

if shown["fits_memory"].notna().any():
    by_machine = shown.dropna(subset=["memory_per_gpu_gb"]).drop_duplicates(["gpu_type", "gpu_count"])
    by_machine = by_machine.assign(
        machine=chart_text(by_machine["gpu_count"].astype(int).astype(str) + "x " + by_machine["gpu_type"]),
        memory_note=chart_text(by_machine["memory_note"]),
    )
    memory_chart = go.Figure(
        [
            go.Bar(
                x=by_machine["machine"],
                y=by_machine["memory_per_gpu_gb"],
                name="needed per GPU",
                marker_color=by_machine["fits_memory"].map({True: "#2ca02c", False: "#d62728"}),
                hovertext=by_machine["memory_note"],
            ),
            go.Scatter(
                x=by_machine["machine"],
                y=by_machine["gpu_memory_gb_available"],
                mode="markers",
                name="GPU memory",
                marker={"symbol": "line-ew-open", "size": 28, "color": "black"},
            ),
        ]
    )
    memory_chart.update_layout(
        title="Memory the job needs per GPU (bar) against each GPU's memory (line)", yaxis_title="GB"
    )
    st.plotly_chart(memory_chart, width="stretch")


@st.fragment
def serving_target() -> None:
    st.subheader("Serving a target rate")
    target = st.number_input("Tokens/s to sustain", min_value=1.0, value=1000.0, step=500.0, key="target_rate")
    fleet = serving.serving_fleet(task, result.ranking, target)
    st.caption(
        "Replicas are sized on the slow end of each interval, so the rate holds there. Mean time per output "
        "token = sequences decoded together / tokens per second (derived, not measured; the measured p99 is "
        "about twice it). Time to first token is not predicted: too few measured runs to calibrate one."
    )
    shown_fleet = fleet[fleet["serves_target"]].head(15)
    if shown_fleet.empty:
        st.info("No platform serves this rate within the replica limit, or the model fits none of them.")
        return
    st.dataframe(
        shown_fleet[serving.FLEET_SUMMARY],
        hide_index=True,
        width="stretch",
        column_config={
            "replicas_needed": st.column_config.NumberColumn("Replicas", format="%d"),
            "gpus_needed": st.column_config.NumberColumn("GPUs", format="%d"),
            "fleet_tokens_per_s": st.column_config.NumberColumn("Predicted tokens/s", format="%.0f"),
            "fleet_price_per_hour_usd": money_column("Fleet per hour"),
            "fleet_cost_per_1m_tokens_usd": money_column("Per 1M tokens"),
            "mean_tpot_ms": st.column_config.NumberColumn("Mean TPOT (ms)", format="%.1f"),
        },
    )


if task.get("work_unit") == "tokens" and task.get("task_type") == "inference":
    serving_target()

top = shown.head(20).iloc[::-1]
interval = interval_figure(top, "Predicted time with the interval", horizontal=True)
interval.update_layout(height=120 + 22 * len(top))
st.plotly_chart(interval, width="stretch")

p_unit, p_per_unit = formatting.time_unit(shown["predicted_time_s"])
on_axis = shown.assign(platform=chart_text(shown["platform"]), time_in_unit=shown["predicted_time_s"] / p_per_unit)
pareto = px.scatter(
    on_axis,
    x="time_in_unit",
    y="cost_usd",
    color="pareto_optimal",
    hover_name="platform",
    labels={"time_in_unit": f"predicted time ({p_unit})", "cost_usd": "predicted cost (USD)"},
    title="Time against cost (the Pareto front is highlighted)",
)
front = on_axis[on_axis["pareto_optimal"]].sort_values("time_in_unit")
pareto.add_trace(go.Scatter(x=front["time_in_unit"], y=front["cost_usd"], mode="lines", name="Pareto front"))
st.plotly_chart(pareto, width="stretch")


@st.fragment
def what_if() -> None:
    st.subheader("What if…")
    w1, w2, w3 = st.columns(3)
    gpu = w1.selectbox("GPU", sorted(gpu_platforms["gpu_type"].unique()), key="whatif_gpu")
    counts = w2.multiselect("GPU counts", [1, 2, 4, 8], default=[1, 8], key="whatif_counts")
    precision_choice = w3.selectbox("Precision", schema.PRECISIONS, key="whatif_precision")
    scale = st.slider("Work units x", 0.25, 4.0, 1.0, 0.25, key="whatif_scale")
    if not counts:
        st.caption("Pick at least one GPU count.")
        return
    configs = advisor.what_if_configurations(gpu_platforms, gpu, counts)
    changed = dict(task, precision=precision_choice, work_units=task["work_units"] * scale)
    answer = advisor.what_if(changed, configs, anchor=goal["anchor"], model=model)
    figure = interval_figure(answer, "What if: predicted time with the interval")
    figure.update_traces(
        customdata=answer["cost_usd"],
        hovertemplate="%{x}: %{y:.3g} "
        + formatting.time_unit(answer["predicted_time_s"])[0]
        + ", $%{customdata:.2f}<extra></extra>",
    )
    st.plotly_chart(figure, width="stretch")


what_if()

st.subheader("What drives the prediction")
importances = model.importances()
if importances.empty:
    st.caption("Feature importances appear once a model is trained.")
else:
    importance_chart(importances, "Permutation importance on held-out runs")

if st.button("Log the actual run of this job…"):
    best = result.recommendation or ranked.iloc[0].to_dict()
    st.session_state["prefill_note"] = "Pre-filled from the prediction you opened. Enter the time it actually took."
    st.session_state["prefill_run"] = {
        **task,
        "platform": best["platform"],
        "provider": best["provider"],
        "gpu_type": best["gpu_type"],
        "gpu_count": best["gpu_count"],
    }
    st.switch_page("pages/runs.py")
