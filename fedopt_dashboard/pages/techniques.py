"""Techniques: ways to get academic access and to cut cost, searchable."""

import streamlit as st

from fedopt_core import catalog, formatting
from fedopt_core.accounts.savings import technique_savings
from fedopt_dashboard.ui import plain, require_role, techniques

require_role("viewer")


@st.cache_data(ttl=300, show_spinner=False)
def last_month_savings() -> dict[str, dict]:
    """Per technique slug, what it would have saved last month on the group's own sessions."""
    return technique_savings().set_index("slug").to_dict("index")


st.title("Techniques")
st.caption("Ways to get academic access to GPUs and to cut what you pay. Each card links to its source.")
catalogue = techniques()

c1, c2, c3, c4 = st.columns([3, 1, 1, 2])
search = c1.text_input("Search", placeholder="spot, credits, checkpoint …")
kind = c2.selectbox("Kind", ["all", "access", "optimisation"])
level = c3.selectbox("Effectiveness", ["all", "high", "medium", "low"])
all_platforms = sorted({p for ps in catalogue["platforms"] for p in ps})
platform = c4.multiselect("Platform", all_platforms)

shown = catalog.filter_techniques(
    catalogue,
    search=search,
    kind=None if kind == "all" else kind,
    effectiveness=None if level == "all" else level,
    platform=platform or None,
)

savings = last_month_savings()
if shown.empty:
    st.info("No technique matches. Try another word or clear a filter.")
for row in shown.itertuples():
    with st.container(border=True):
        st.markdown("#### " + plain(row.name))
        facts = [row.kind, f"effectiveness: {row.effectiveness or 'n/a'}"]
        if row.savings_max_pct == row.savings_max_pct and row.savings_max_pct is not None:
            facts.append(f"saves up to {row.savings_max_pct:.0f}%")
        facts.append("platforms: " + (", ".join(row.platforms) or "any"))
        st.caption(" · ".join(facts))
        st.text(row.description)  # text, not Markdown: catalogue text is never rendered as markup
        estimate = savings.get(row.slug) if row.kind == "optimisation" else None
        if estimate is not None and estimate["month_cost_usd"] > 0:
            saving = estimate["saving_usd"]
            claim = (
                f"would have saved about {formatting.usd(saving)}. How: "
                if saving == saving  # NaN: too few sessions linked to runs to say
                else ""
            )
            st.caption(
                plain(
                    f"On your own usage in {estimate['month']} ({formatting.usd(estimate['month_cost_usd'])} spent): "
                    + claim
                    + estimate["assumptions"]
                )
            )
        if row.source_url:
            st.markdown(f"[Source]({row.source_url})")
