"""Model: versions and their metrics, accuracy from real outcomes, calibration, importances."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from fedopt_core import auth, runs
from fedopt_core.errors import FedoptInputError
from fedopt_core.formatting import plural
from fedopt_core.prediction import SUSPECT_FACTOR, training
from fedopt_dashboard.ui import clear_caches, counts, importance_chart, plain, require_role

require_role("viewer")
st.title("Model")
st.caption(
    "Each trained model is a version, scored on the newest runs it did not see. A new version becomes "
    "active only if it is at least as good as the active one on the same runs."
)


@st.fragment(run_every=2)
def training_panel() -> None:
    status = training.training_status()
    # A retrain that ends while the page is open (started here or anywhere else) changes the
    # versions, metrics and charts below this fragment: rerun the whole page once when it does.
    ended_at = status.get("at") if status.get("stage") in ("done", "failed") and not status.get("running") else None
    if "training_ended_at" not in st.session_state:
        st.session_state.training_ended_at = ended_at
    elif ended_at != st.session_state.training_ended_at:
        st.session_state.training_ended_at = ended_at
        clear_caches()
        st.rerun(scope="app")
    running = bool(status.get("running"))
    # One state at a time, redrawn every 2 s: training (button off), failed, or idle.
    if running:
        st.progress(float(status.get("fraction", 0.0)), text=f"Training: {status.get('stage', '…')}")
        if counts()["model_versions"] == 0:
            st.info("No model yet: the first one is training; predictions stay heuristic until it is done.")
    elif status.get("stage") == "failed":
        st.error(plain(f"The last retrain failed: {status.get('error')}"))
    elif counts()["model_versions"] == 0:
        st.info("No model yet: predictions are heuristic. Log runs (Runs page) and press Train now.")
    if not running:
        due = training.runs_since_last_version()
        st.caption(
            f"{plural(due, 'run')} logged since the last version; a retrain starts in the background after "
            f"{plural(training.retrain_threshold(), 'new run')}."
        )
    if auth.current_actor().can("member"):
        clicked = st.button(
            "Train now", disabled=running, help="A retrain is running: wait for it to finish." if running else None
        )
        if clicked:
            started = training.maybe_retrain_async(force=True, separate_process=True)
            st.toast("Training started in the background." if started else "A retrain is already running.")


training_panel()
versions = training.list_versions()
if not versions.empty:
    st.dataframe(
        versions,
        hide_index=True,
        width="stretch",
        column_config={
            "median_ape": st.column_config.NumberColumn("Median APE", format="%.3f"),
            "coverage": st.column_config.NumberColumn("Interval coverage", format="%.2f"),
        },
    )
    stored = versions[versions["status"] != "active"]["version"].tolist()
    if stored and auth.current_actor().can("member"):
        c1, c2 = st.columns([2, 1])
        chosen = c1.selectbox("Activate an older version (roll back)", stored)
        if c2.button("Activate"):
            try:
                training.activate_version(int(chosen))
            except FedoptInputError as exc:
                st.error(plain(str(exc)))
            else:
                clear_caches()
                st.rerun()

st.subheader("Accuracy on real outcomes")
pairs = runs.prediction_pairs()
if pairs.empty:
    st.caption(
        "No prediction has been followed by an actual run yet. Predictions made on the Predict page are "
        "kept, and scored when the matching run is logged."
    )
else:
    weekly = runs.weekly_accuracy(pairs)
    st.plotly_chart(
        px.line(
            weekly,
            x="week",
            y=["median_ape", "coverage"],
            markers=True,
            title="Median absolute % error and interval coverage, by week",
        ),
        width="stretch",
    )
    by = st.radio("Residuals by", ["gpu_type", "workload"], horizontal=True)
    st.plotly_chart(
        px.box(pairs, x=by, y="log_ratio", points="all", labels={"log_ratio": "log(predicted / actual)"}),
        width="stretch",
    )


@st.cache_data(ttl=300, show_spinner="Scoring the intervals at each level…")
def calibration(version: int, n_runs: int) -> pd.DataFrame:
    """Keyed by the active version and the run count: a dozen predictions of the held-out runs."""
    model, _ = training.active_model()
    return training.calibration_curve(model)


model, facts = training.active_model()
if model is not None:
    st.subheader("Calibration")
    curve = calibration(int(facts["version"]), counts()["runs"])
    if curve.empty:
        st.caption("Calibration needs held-out runs; log more runs.")
    else:
        figure = go.Figure(
            [
                go.Scatter(x=curve["nominal"], y=curve["observed"], mode="lines+markers", name="model"),
                go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="ideal", line={"dash": "dot"}),
            ]
        )
        figure.update_layout(
            xaxis_title="nominal coverage",
            yaxis_title="observed coverage on the newest runs",
            xaxis_range=[0.45, 1.0],
            yaxis_range=[0.0, 1.02],
        )
        st.plotly_chart(figure, width="stretch")
        st.caption(
            f"Intervals of version {facts['version']} at each nominal level, scored on the "
            f"{int(curve['n'].iloc[0])} newest runs it did not train on. Above the diagonal: wider than "
            "needed; below: overconfident."
        )
    suspects = training.suspect_configurations(model)
    if not suspects.empty:
        st.subheader("Runs to check")
        st.caption(
            f"Measured times that the other GPUs' runs of the same workload contradict by more than "
            f"{SUSPECT_FACTOR:g}x (each judged with its own GPU held out). They are still used for training; "
            "check them for a unit mix-up, a throughput logged as a time, or a failed run logged as a success."
        )
        st.dataframe(
            suspects,
            hide_index=True,
            width="stretch",
            column_config={
                "measured_s_per_unit": st.column_config.NumberColumn("measured (s/unit)", format="%.3g"),
                "expected_s_per_unit": st.column_config.NumberColumn("other GPUs say (s/unit)", format="%.3g"),
                "measured_vs_expected": st.column_config.NumberColumn("measured / expected", format="%.3gx"),
            },
        )
    st.subheader("Feature importances of the active model")
    importances = training.active_importances()
    importance_chart(importances)
