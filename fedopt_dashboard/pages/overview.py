"""Overview: what fedopt does, what to do first (and what is done already), the key numbers."""

import streamlit as st

from fedopt_core import auth, runs
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CsvFormatError
from fedopt_core.formatting import plural
from fedopt_dashboard.ui import after_runs_logged, counts, plain, require_role

require_role("viewer")
actor = auth.current_actor()

st.title("fedopt")
st.markdown(
    "Decide **where** to run your group's GPU work and **how to pay** for it: predicted run times "
    "with honest intervals, platforms ranked by time or cost, and the techniques that get academic "
    "access or cut the bill."
)

numbers = counts()
benchmark = get_settings().shared_data_dir / "gpu_benchmarks.csv"
st.subheader("Start here")
# Three steps, each with what is done already and one button; done steps stay listed, ticked.
steps = [
    (
        "runs",
        numbers["runs"] > 0,
        "1. Give the predictor real runs",
        f"{plural(numbers['runs'], 'run')} stored: predictions learn from them."
        if numbers["runs"]
        else "Import Lambda's public benchmark (measurements of 30 GPU models), or your own runs on the Runs page.",
    ),
    (
        "predict",
        numbers["predictions"] > 0,
        "2. Predict a job",
        f"{plural(numbers['predictions'], 'prediction')} made so far."
        if numbers["predictions"]
        else "Describe a job (a workload or an LLM, and how much work) and see it ranked on every platform.",
    ),
    (
        "accounts",
        numbers["accounts"] > 0,
        "3. Add an account",
        f"{plural(numbers['accounts'], 'account')}: launches and spending are counted against them."
        if numbers["accounts"]
        else "An allocation or cloud account, with its quota and budget, so fedopt can say who would pay.",
    ),
]
for (step, done, title, text), column in zip(steps, st.columns(3), strict=True):
    with column.container(border=True):
        st.markdown(f"**{title}**" + (" :material/check_circle:" if done else ""))
        st.caption(text)
        if step == "runs":
            if numbers["runs"] == 0 and benchmark.is_file() and actor.can("member"):
                if st.button("Import the public benchmark", type="primary", key="start_import"):
                    try:
                        with st.spinner("Importing…"):
                            result = runs.import_csv(benchmark)
                    except (CsvFormatError, runs.ImportAborted, auth.PermissionDenied) as exc:
                        st.error(plain(f"Not imported — {exc}"))
                    else:
                        after_runs_logged()
                        st.session_state["start_imported"] = result.inserted
                        st.rerun()
            else:
                st.page_link("pages/runs.py", label="Runs", icon=":material/timer:")
        elif step == "predict":
            st.page_link("pages/predict.py", label="Predict & compare", icon=":material/query_stats:")
        elif actor.can("admin"):
            st.page_link("pages/accounts.py", label="Accounts", icon=":material/account_balance_wallet:")
        else:
            st.caption("An admin of your lab adds accounts.")
imported = st.session_state.pop("start_imported", None)
if imported is not None:
    st.success(f"{imported:,} runs imported from the public benchmark. Next: predict a job.")

c1, c2, c3, c4 = st.columns(4)
# Counts with thousands separators, as the steps above write them ("2,661 runs stored").
c1.metric("GPU platforms", f"{numbers['gpu_platforms']:,}", help="Instance types in the catalogue that have a GPU")
c2.metric("Providers", f"{numbers['providers']:,}")
c3.metric("Logged runs", f"{numbers['runs']:,}", help="Actual runs the predictor learns from")
c4.metric("Techniques", f"{numbers['techniques']:,}")

st.subheader("Where to go")
st.page_link(
    "pages/platforms.py",
    label="Platforms — the catalogue, prices per GPU-hour, your own machines",
    icon=":material/dns:",
)
st.page_link(
    "pages/techniques.py", label="Techniques — academic access and ways to cut cost", icon=":material/lightbulb:"
)
