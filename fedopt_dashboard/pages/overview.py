"""Overview: what fedopt does, the key numbers, and where to go next."""

import streamlit as st

from fedopt_dashboard.ui import counts, require_role

require_role("viewer")

st.title("fedopt")
st.markdown(
    "Decide **where** to run your group's GPU work and **how to pay** for it: predicted run times "
    "with honest intervals, platforms ranked by time or cost, and the techniques that get academic "
    "access or cut the bill."
)

numbers = counts()
c1, c2, c3, c4 = st.columns(4)
c1.metric("GPU platforms", numbers["gpu_platforms"], help="Instance types in the catalogue that have a GPU")
c2.metric("Providers", numbers["providers"])
c3.metric("Logged runs", numbers["runs"], help="Actual runs the predictor learns from")
c4.metric("Techniques", numbers["techniques"])

st.subheader("Where to go")
st.page_link(
    "pages/platforms.py",
    label="Platforms — the catalogue, prices per GPU-hour, your own machines",
    icon=":material/dns:",
)
st.page_link(
    "pages/techniques.py", label="Techniques — academic access and ways to cut cost", icon=":material/lightbulb:"
)
