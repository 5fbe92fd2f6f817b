"""fedopt dashboard: navigation and the shared sidebar.  Run with `make run`."""

import streamlit as st

from fedopt_core import overview
from pages.ui_common import counts, ensure_ready

st.set_page_config(page_title="fedopt", page_icon="⚡", layout="wide")
ensure_ready()

pages = {
    "Start": [
        st.Page("pages/overview.py", title="Overview", icon=":material/home:", default=True),
    ],
    "Catalogue": [
        st.Page("pages/platforms.py", title="Platforms", icon=":material/dns:", url_path="platforms"),
        st.Page("pages/techniques.py", title="Techniques", icon=":material/lightbulb:", url_path="techniques"),
    ],
}

navigation = st.navigation(pages)

with st.sidebar:
    numbers = counts()
    st.caption("Database")
    st.code(overview.database_label(), language=None)
    st.caption(
        f"{numbers['gpu_platforms']} GPU platforms · {numbers['runs']} runs · "
        f"{numbers['techniques']} techniques · {numbers['accounts']} accounts"
    )

navigation.run()
