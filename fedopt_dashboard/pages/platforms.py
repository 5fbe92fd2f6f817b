"""Platforms: the catalogue, filtered and sorted, with a price chart and custom platforms."""

from typing import Any

import plotly.express as px
import streamlit as st

from fedopt_core import accounts, auth, catalog
from fedopt_core.cloud import lambda_ops
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CsvFormatError
from fedopt_core.errors import FedoptInputError
from fedopt_dashboard.ui import chart_text, clear_caches, money_column, plain, platforms, require_role

require_role("viewer")

st.title("Platforms")
all_platforms = platforms()

with st.sidebar:
    st.subheader("Filter platforms")
    search = st.text_input("Search", placeholder="h100, 8x, sxm …")
    providers = st.multiselect("Provider", sorted(all_platforms["provider"].dropna().unique()))
    gpu_types = st.multiselect("GPU model", sorted(all_platforms["gpu_type"].dropna().unique()))
    min_gpus = st.number_input("At least this many GPUs", min_value=0, max_value=64, value=0, step=1)
    ceiling = (
        float(max(1.0, round(all_platforms["price_per_hour_usd"].max(skipna=True) + 0.5)))
        if len(all_platforms)
        else 1.0
    )
    max_price = st.slider("Max USD per hour", 0.0, ceiling, ceiling, step=0.5)

shown = catalog.filter_platforms(
    all_platforms,
    provider=providers or None,
    gpu_type=gpu_types or None,
    min_gpu_count=int(min_gpus) or None,
    max_price_per_hour_usd=max_price,
    search=search,
)

if shown.empty:
    st.info("No platform matches these filters. Widen them in the sidebar.")
else:
    st.caption(f"{len(shown)} of {len(all_platforms)} platforms. Click a column header to sort.")
    st.dataframe(
        shown[
            [
                "provider",
                "instance_type",
                "gpu_type",
                "gpu_count",
                "gpu_memory_gb",
                "vcpus",
                "ram_gb",
                "price_per_hour_usd",
                "price_per_gpu_hour_usd",
                "as_of",
                "origin",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "provider": "Provider",
            "instance_type": "Platform",
            "gpu_type": "GPU",
            "gpu_count": st.column_config.NumberColumn("GPUs", format="%d"),
            "vcpus": st.column_config.NumberColumn("vCPUs", format="%d"),
            "ram_gb": st.column_config.NumberColumn("RAM (GB)", format="%g"),
            "origin": "Source",
            "price_per_hour_usd": money_column("USD / hour"),
            "price_per_gpu_hour_usd": money_column("USD / GPU-hour"),
            "gpu_memory_gb": st.column_config.NumberColumn("GPU memory (GB)"),
            "as_of": st.column_config.DateColumn("Price as of"),
        },
    )
    gpu_rows = shown[shown["gpu_count"] > 0].copy()
    if not gpu_rows.empty:
        axis = st.radio(
            "Chart price against", ["Total GPU memory (GB)", "Speed score (datasheet TFLOPS)"], horizontal=True
        )
        if axis.startswith("Speed"):
            gpu_rows["x"] = catalog.speed_scores(gpu_rows["gpu_type"], gpu_rows["gpu_count"])
            x_label = "Dense FP16 tensor TFLOPS x GPUs (datasheet peak, not measured)"
        else:
            gpu_rows["x"] = gpu_rows["total_gpu_memory_gb"]
            x_label = "Total GPU memory (GB)"
        figure = px.scatter(
            gpu_rows.assign(
                instance_type=chart_text(gpu_rows["instance_type"]), gpu_type=chart_text(gpu_rows["gpu_type"])
            ),
            x="x",
            y="price_per_hour_usd",
            color="gpu_type",
            size="gpu_count",
            hover_name="instance_type",
            labels={"x": x_label, "price_per_hour_usd": "USD per hour"},
        )
        st.plotly_chart(figure, width="stretch")

st.subheader("Add or edit a platform")
st.caption("Your own server, another cloud, or a corrected price. Edits survive catalogue reloads.")
choices = {"➕ New platform": None} | {
    f"{r.provider} / {r.instance_type}": int(r.id) for r in all_platforms.itertuples()
}
picked = st.selectbox("Platform", list(choices))
current = all_platforms[all_platforms["id"] == choices[picked]].iloc[0] if choices[picked] else None


def _value(name: str, default: Any = None) -> Any:
    return default if current is None or current[name] is None or current[name] != current[name] else current[name]


with st.form("platform_form"):
    c1, c2 = st.columns(2)
    provider = c1.text_input("Provider", value=_value("provider", "on-prem"))
    instance_type = c2.text_input("Name / instance type", value=_value("instance_type", ""))
    gpu_type = c1.text_input("GPU model (or 'cpu')", value=_value("gpu_type", "A100 SXM4 80GB"))
    gpu_count = c2.number_input("GPU count", min_value=0, max_value=64, value=int(_value("gpu_count", 1)))
    price = c1.number_input("USD per hour", min_value=0.0, value=float(_value("price_per_hour_usd", 0.0)), step=0.1)
    vcpus = c2.number_input("vCPUs", min_value=0, value=int(_value("vcpus", 0) or 0))
    ram = c1.number_input("RAM (GB)", min_value=0.0, value=float(_value("ram_gb", 0.0) or 0.0))
    network = c2.number_input(
        "Network (Mbit/s, 0 = unknown)", min_value=0.0, value=float(_value("network_speed_mbps", 0.0) or 0.0)
    )
    notes = st.text_input("Notes", value=_value("notes", "") or "")
    submitted = st.form_submit_button("Save platform")

if submitted:
    try:
        catalog.save_platform(
            {
                "provider": provider,
                "instance_type": instance_type,
                "gpu_type": gpu_type,
                "gpu_count": gpu_count,
                "price_per_hour_usd": price,
                "vcpus": vcpus or None,
                "ram_gb": ram or None,
                "network_speed_mbps": network or None,
                "notes": notes,
                "gpu_memory_gb": _value("gpu_memory_gb"),
                "regions": _value("regions", []),
            },
            platform_id=choices[picked],
        )
    except FedoptInputError as exc:
        st.error(plain(f"Not saved — {exc}"))
    else:
        clear_caches()
        st.success(plain(f"Saved {provider} / {instance_type}."))
        st.rerun()

st.subheader("Live prices from Lambda")
refreshed = lambda_ops.state(lambda_ops.REFRESH_STATE_KEY)
if refreshed.get("last_success_at"):
    st.caption(
        plain(
            f"Last refreshed {refreshed['last_success_at'][:16].replace('T', ' ')} UTC with account "
            f"{refreshed.get('account')}. Prices without a refresh are the shipped snapshot (see 'Price as of')."
        )
    )
else:
    st.caption("Never refreshed: prices are the snapshot shipped with fedopt (see 'Price as of').")
if refreshed.get("ok") is False:
    st.warning(plain(f"The last refresh failed, so the snapshot stays: {refreshed.get('last_error')}"))
if auth.current_actor().can("admin"):
    keyed = accounts.list_accounts()
    keyed = keyed[(keyed["provider"] == "lambda") & (keyed["api_key"] != "")]
    if keyed.empty:
        st.caption("Add a Lambda account with an API key (Accounts page) to refresh prices and capacity.")
    else:
        refresh_account = st.selectbox("Refresh with account", keyed["username"].tolist())
        if st.button("Refresh from Lambda"):
            report = lambda_ops.refresh_catalogue(refresh_account)
            clear_caches()
            if report.ok:
                st.success(
                    f"{report.seen} types: {len(report.price_changed)} price changes, "
                    f"{len(report.added)} new, {len(report.disappeared)} no longer offered."
                )
                if report.overrode_edits:
                    st.warning(plain("Live prices replaced hand-edited ones: " + "; ".join(report.overrode_edits)))
            else:
                st.error(plain(f"Refresh failed; the snapshot stays: {report.error}"))

history_type = st.selectbox("Price history of", all_platforms["instance_type"].tolist(), key="history_type")
history_id = int(all_platforms.loc[all_platforms["instance_type"] == history_type, "id"].iloc[0])
history = catalog.price_history(history_id)
if len(history) > 1:
    st.plotly_chart(
        px.line(
            history,
            x="observed_at",
            y="price_per_hour_usd",
            markers=True,
            labels={"price_per_hour_usd": "USD per hour", "observed_at": "observed"},
        ),
        width="stretch",
    )
else:
    st.caption("One observation so far; each refresh adds one.")

st.subheader("Other clouds' offers")
st.caption(
    "GPU offers of other clouds, with spot prices where they have them, in the format of "
    "cloud_gpu_prices.csv (`fedopt platforms import FILE` does the same). Spot advice and the "
    "spot card need them: Lambda has no spot market."
)
offers_note = st.session_state.pop("offers_imported", None)
if offers_note:
    st.success(offers_note[0])
    for line in offers_note[1]:
        st.warning(plain(line))
if auth.current_actor().can("admin"):
    shipped = get_settings().shared_data_dir / "cloud_gpu_prices.csv"
    uploaded = st.file_uploader("Offers file (CSV)", type=["csv"], key="offers_file")
    o1, o2 = st.columns(2)
    offers_source = None
    if shipped.is_file() and o1.button(f"Import {shipped.name} (public catalogues)", key="import_offers_shipped"):
        offers_source = shipped
    if o2.button("Import the uploaded file", key="import_offers_upload", disabled=uploaded is None):
        offers_source = uploaded
    if offers_source is not None:
        try:
            imported = catalog.import_cloud_prices(offers_source)
        except (CsvFormatError, FedoptInputError) as exc:
            st.error(plain(f"Not imported — {exc}"))
        else:
            clear_caches()  # the table above, the sidebar and Plan's spot advice see them at once
            st.session_state["offers_imported"] = (
                f"{imported.inserted:,} offers added, {imported.updated:,} updated, "
                f"{imported.unchanged:,} unchanged, {imported.kept_user_edits:,} hand edits kept.",
                [str(e) for e in imported.errors[:20]],
            )
            st.rerun()
else:
    st.caption("An admin imports other clouds' offers.")
