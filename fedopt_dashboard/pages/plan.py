"""Plan: split a divisible job across platforms, and decide between spot and on-demand."""

import pandas as pd
import plotly.express as px
import streamlit as st

from fedopt_core import schema
from fedopt_core.errors import FedoptInputError
from fedopt_core.planning import advisor, shard_solver
from fedopt_dashboard.ui import available_gpu_platforms, chart_text, plain, require_role

require_role("viewer")
st.title("Plan")
st.caption(
    "Split a divisible job (samples, files, seeds) across several platforms to finish sooner or "
    "cheaper. Rates come from the same predictions as Predict & compare; plans hold on the upper bounds."
)

gpu_platforms = available_gpu_platforms()
model = advisor.current_model()  # read once for the plan and the spot advice

c1, c2, c3 = st.columns(3)
workload = c1.text_input("Workload", value="resnet50")
precision = c2.selectbox("Precision", schema.PRECISIONS)
work_units = c3.number_input("Work units to split", min_value=1, value=10_000_000, step=100_000)
input_mb = c1.number_input("Input data per shard (MB)", min_value=0.0, value=0.0)
objective = c2.selectbox("Objective", ["makespan", "cost"])
deadline_h = c3.number_input("Deadline (hours, 0 = none)", min_value=0.0, value=0.0)
budget = c1.number_input(
    "Budget (USD, empty = none)",
    min_value=0.0,
    value=None,
    key="plan_budget",
    help="0 keeps the plan to free machines (your own, at $0/h).",
)
task = {
    "task_type": "training",
    "workload": workload or None,
    "precision": precision,
    "input_size_mb": input_mb or None,
}

defaults = gpu_platforms.sort_values("price_per_gpu_hour_usd").head(4)["instance_type"].tolist()
chosen = st.multiselect("Candidate platforms", gpu_platforms["instance_type"].tolist(), default=defaults)
if not chosen:
    st.info("Pick at least one platform.")
    st.stop()
counts = st.data_editor(
    pd.DataFrame({"instance_type": chosen, "count": 1}),
    hide_index=True,
    disabled=["instance_type"],
    key="plan_counts",
    column_config={
        "count": st.column_config.NumberColumn(
            "Machines", min_value=1, max_value=shard_solver.MAX_MACHINES_PER_PLATFORM, step=1
        )
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
        shards = plan.shards.assign(
            label=chart_text(plan.shards["platform"] + " #" + plan.shards["machine"].astype(str)),
            platform=chart_text(plan.shards["platform"]),
            hours=(plan.shards["finish_s"] - plan.shards["start_s"]) / 3600,
            to_upper_h=(plan.shards["finish_upper_s"] - plan.shards["finish_s"]) / 3600,
        )
        st.plotly_chart(
            px.bar(
                shards,
                x="hours",
                y="label",
                base=shards["start_s"] / 3600,
                error_x="to_upper_h",
                orientation="h",
                color="platform",
                labels={"hours": "hours", "label": ""},
                title="Shards on the predicted rates (whisker: the upper bound)",
            ),
            width="stretch",
        )
        st.dataframe(
            plan.to_frame(),
            hide_index=True,
            width="stretch",
            column_config={
                c: st.column_config.NumberColumn(format="%.0f") for c in ("overhead_s", "finish_s", "finish_upper_s")
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
    rate = st.number_input("Preemptions per hour (0 = learn from usage)", min_value=0.0, value=0.1, step=0.05)
    checkpoint = st.number_input("Seconds to write a checkpoint", min_value=0.0, value=60.0)
    advice = advisor.spot_advice(
        dict(task, work_units=work_units),
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
        st.dataframe(advice, hide_index=True, width="stretch")
