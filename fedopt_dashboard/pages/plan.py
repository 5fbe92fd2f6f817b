"""Plan: split a divisible job across platforms, and decide between spot and on-demand."""

import pandas as pd
import plotly.express as px
import streamlit as st

from fedopt_core import formatting, schema
from fedopt_core.errors import FedoptInputError
from fedopt_core.planning import advisor, shard_solver, spot
from fedopt_core.runs import jobs
from fedopt_dashboard.ui import (
    available_gpu_platforms,
    chart_text,
    known_workloads,
    money_column,
    plain,
    require_role,
)

require_role("viewer")
st.title("Plan")
st.caption(
    "Split a divisible job (samples, files, seeds) across several platforms to finish sooner or "
    "cheaper. Rates come from the same predictions as Predict & compare; plans hold on the upper bounds."
)

gpu_platforms = available_gpu_platforms()
model = advisor.current_model()  # read once for the plan and the spot advice

NOT_STATED = "(not stated)"
# Keys under "plan_" hold across navigation (ui.keep_page_inputs).
c1, c2, c3 = st.columns(3)
known = known_workloads()
workload = c1.selectbox("Workload", known, index=known.index("resnet50"), accept_new_options=True, key="plan_workload")
precision = c2.selectbox("Precision", [NOT_STATED, *schema.PRECISIONS], key="plan_precision")
work_units = c3.number_input("Work units to split", min_value=1, value=10_000_000, step=100_000, key="plan_work_units")
batch_size = c1.number_input(
    "Global batch size per machine",
    min_value=1,
    value=None,
    placeholder="most measured",
    key="plan_batch_size",
    help="Empty: the workload's most measured batch per GPU, as on Predict & compare.",
)
input_mb = c2.number_input("Input data per shard (MB)", min_value=0.0, value=0.0, format="%g", key="plan_input_mb")
objective = c3.selectbox("Objective", ["makespan", "cost"], key="plan_objective")
deadline_h = c1.number_input("Deadline (hours, 0 = none)", min_value=0.0, value=0.0, format="%g", key="plan_deadline_h")
budget = c2.number_input(
    "Budget (USD, empty = none)",
    min_value=0.0,
    value=None,
    key="plan_budget",
    help="0 keeps the plan to free machines (your own, at $0/h).",
)
try:
    task = jobs.job_task(
        workload=workload,
        precision=None if precision == NOT_STATED else precision,
        batch_size=batch_size,
        work_units=work_units,
        input_size_mb=input_mb or None,
    )
except FedoptInputError as exc:
    st.error(plain(f"Cannot plan: {exc}"))
    st.stop()

defaults = gpu_platforms.sort_values("price_per_gpu_hour_usd").head(4)["instance_type"].tolist()
chosen = st.multiselect(
    "Candidate platforms", gpu_platforms["instance_type"].tolist(), default=defaults, key="plan_platforms"
)
if not chosen:
    st.info("Pick at least one platform.")
    st.stop()
counts = st.data_editor(
    pd.DataFrame({"instance_type": chosen, "count": 1}),
    hide_index=True,
    disabled=["instance_type"],
    key="machines_per_platform",
    column_config={
        "instance_type": "Platform",
        "count": st.column_config.NumberColumn(
            "Machines", min_value=1, max_value=shard_solver.MAX_MACHINES_PER_PLATFORM, step=1
        ),
    },
)
candidates = gpu_platforms.merge(counts, on="instance_type")
candidates = candidates[candidates["count"] > 0]

left, right = st.columns([3, 2])
with left:
    st.subheader("Shard plan")
    try:
        plan = advisor.plan(
            task,
            candidates,
            work_units,
            objective=objective,
            deadline_s=deadline_h * 3600 or None,
            budget_usd=budget,
            model=model,
        )
    except FedoptInputError as exc:
        st.error(plain(f"Cannot plan: {exc}"))
    else:
        (st.success if plan.feasible else st.warning)(plan.message)
        unit, per_unit = formatting.time_unit(plan.shards["finish_upper_s"])
        shards = plan.shards.assign(
            label=chart_text(plan.shards["platform"] + " #" + plan.shards["machine"].astype(str)),
            platform=chart_text(plan.shards["platform"]),
            length=(plan.shards["finish_s"] - plan.shards["start_s"]) / per_unit,
            to_upper=(plan.shards["finish_upper_s"] - plan.shards["finish_s"]) / per_unit,
            no_lower=0.0,  # the whisker reaches the upper bound only, never before the shard starts
        )
        st.plotly_chart(
            px.bar(
                shards,
                x="length",
                y="label",
                base=shards["start_s"] / per_unit,
                error_x="to_upper",
                error_x_minus="no_lower",
                orientation="h",
                color="platform",
                labels={"length": unit, "label": ""},
                title=f"Shards on the predicted rates, in {unit} (whisker: the upper bound)",
            ),
            width="stretch",
        )
        st.dataframe(
            plan.to_frame(),
            hide_index=True,
            width="stretch",
            column_config={
                "platform": "Platform",
                "machines": st.column_config.NumberColumn("Machines", format="%d"),
                "units": st.column_config.NumberColumn("Work units", format="%d"),
                "units_share": st.column_config.NumberColumn("Share of the work", format="percent"),
                "overhead_s": st.column_config.NumberColumn("Start-up and transfer (s)", format="%.0f"),
                "finish_s": st.column_config.NumberColumn("Finishes after (s)", format="%.0f"),
                "finish_upper_s": st.column_config.NumberColumn("At the latest (s)", format="%.0f"),
                "cost_usd": money_column("Cost"),
                "cost_upper_usd": money_column("Cost at the latest"),
            },
        )
        # The same rates as the message: the upper bounds when the plan was made on them.
        single = plan.best_single
        on = "upper bounds" if plan.planned_on == "upper" else "predicted rates"
        m1, m2 = st.columns(2)
        m1.metric(
            f"Finish (h, on {on})",
            f"{plan.planned_makespan_s / 3600:.2f}",
            None
            if single is None
            else f"{(plan.planned_makespan_s - single.planned_makespan_s) / 3600:+.2f} vs best single",
            delta_color="inverse",
        )
        m2.metric(
            f"Cost (USD, on {on})",
            f"{plan.planned_cost_usd:.2f}",
            None if single is None else f"{plan.planned_cost_usd - single.planned_cost_usd:+.2f} vs best single",
            delta_color="inverse",
        )
        if plan.planned_on == "upper":
            st.caption(
                f"On the predicted rates: {plan.totals['makespan_s'] / 3600:.2f} h, ${plan.totals['cost_usd']:,.2f}."
            )

with right:
    st.subheader("Spot or on-demand?")
    rate = st.number_input(
        "Preemptions per hour (0 = learn from usage)", min_value=0.0, value=0.1, format="%g", step=0.05, key="plan_rate"
    )
    checkpoint = st.number_input(
        "Seconds to write a checkpoint", min_value=0.0, value=60.0, format="%g", key="plan_checkpoint"
    )
    advice = advisor.spot_advice(
        task,
        gpu_platforms,
        preemptions_per_hour=rate or None,
        checkpoint_cost_s=checkpoint,
        deadline_s=deadline_h * 3600 or None,
        model=model,
    )
    if advice.empty:
        st.caption(
            "No platform in the catalogue has a spot price (Lambda has none). Import other clouds' offers: "
            "`fedopt platforms import ../shared/data/cloud_gpu_prices.csv`. Without a preemption rate, "
            "one is learned from usage sessions that ended in preemption."
        )
    else:
        st.success(plain(spot.advice_sentence(advice)))  # platform names are catalogue text
        with st.expander(f"Every platform with a spot price ({len(advice)})"):
            st.dataframe(advice, hide_index=True, width="stretch")
