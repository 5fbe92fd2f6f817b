"""What the page scripts share: the page guard, cached reads of fedopt_core, and how values are shown.

* :func:`require_role` is the first line of every page: it makes sure the page runs inside the app
  shell (``streamlit_app.py``) and that the signed-in user has the role the page needs.
* Cached reads (``st.cache_resource`` for the database bootstrap, ``st.cache_data`` for queries)
  and :func:`clear_caches`, which every write calls so the sidebar and every page agree at once.
* Display helpers: :func:`money_column` and :func:`plain` (user or server text made inert).

No computation lives here: every figure comes from ``fedopt_core``.
"""

from __future__ import annotations

import contextvars
import html
import re
import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from fedopt_core import accounts, auth, catalog, formatting, overview, runs
from fedopt_core.db import DatabaseError, ensure_database

ENTRY_SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"

# --------------------------------------------------------------------------- the page guard

# True while the shell runs a page.  Until some session has called st.navigation, Streamlit treats a
# folder named pages/ beside the entry script as an old-style multipage app and runs a bookmarked
# /runs as pages/runs.py alone; the guard then runs the entry script around the page instead.
_inside_shell: contextvars.ContextVar[bool] = contextvars.ContextVar("fedopt_inside_shell", default=False)


@contextmanager
def inside_shell() -> Iterator[None]:
    """The shell runs the chosen page inside this block."""
    token = _inside_shell.set(True)
    try:
        yield
    finally:
        _inside_shell.reset(token)


def require_role(role: str = "viewer") -> auth.Actor:
    """First line of every page: run inside the shell, signed in, with at least ``role``.

    Outside the shell (a deep link on a fresh server) this runs the entry script, which signs the
    user in and runs this page inside it, and then stops the outer run: the user's widget input is
    kept, which a rerun would drop.
    """
    if not _inside_shell.get():
        runpy.run_path(str(ENTRY_SCRIPT), run_name="__main__")
        st.stop()
    actor = auth.current_actor()
    if not actor.can(role):
        st.title("Not allowed")
        st.error(f"This page needs the {role} role; you are signed in as a {actor.role}.")
        st.stop()
    return actor


# --------------------------------------------------------------------------- cached reads


@st.cache_resource(show_spinner="Preparing the database…")
def _bootstrap(database_label: str) -> None:
    # The label (not the URL) is the cache key so a password never lands in Streamlit's cache keys.
    ensure_database()
    if overview.counts()["platforms"] == 0:
        catalog.load_all()


def ensure_ready() -> None:
    """Create/upgrade the database once per process; stop the page with one line if it fails."""
    try:
        _bootstrap(overview.database_label())
    except DatabaseError as exc:
        st.error(plain(f"Database problem: {exc}"))
        st.stop()


@st.cache_data(ttl=2, show_spinner=False)
def data_stamp() -> tuple[tuple[object, ...], ...]:
    """What changed in the database (see ``overview.data_stamp``), read at most every 2 s: the
    cached reads below are keyed on it, so a write by the CLI or a job script shows at once."""
    return overview.data_stamp()


@st.cache_data(ttl=600, show_spinner=False)
def _counts(stamp: tuple) -> dict[str, int]:
    return overview.counts()


def counts() -> dict[str, int]:
    return _counts(data_stamp())


@st.cache_data(ttl=60, show_spinner=False)
def _budget_alerts(stamp: tuple) -> list[accounts.BudgetAlert]:
    # ttl as well as the stamp: a running machine's spending grows with no write at all
    return accounts.budget_alerts()


def budget_alerts() -> list[accounts.BudgetAlert]:
    """Accounts past 50/80/100% of their monthly budget (the sidebar and the Accounts page read one copy)."""
    return _budget_alerts(data_stamp())


@st.cache_data(ttl=600, show_spinner=False)
def _platforms(stamp: tuple) -> pd.DataFrame:
    return catalog.list_platforms()


def platforms() -> pd.DataFrame:
    """The platform catalogue (every provider, CPU machines too)."""
    return _platforms(data_stamp())


@st.cache_data(ttl=600, show_spinner=False)
def _workloads(stamp: tuple) -> list[str]:
    return runs.run_facets("workload")["workload"]


def known_workloads() -> list[str]:
    """Workloads with stored runs (and resnet50, the forms' example), for the workload pickers."""
    return sorted({*_workloads(data_stamp()), "resnet50"}, key=str.lower)


def available_gpu_platforms() -> pd.DataFrame:
    """The catalogue's GPU platforms that are available now: the candidates on Predict and Plan."""
    return catalog.filter_platforms(platforms(), include_cpu=False, include_unavailable=False)


@st.cache_data(ttl=600, show_spinner=False)
def _techniques(stamp: tuple) -> pd.DataFrame:
    return catalog.list_techniques()


def techniques() -> pd.DataFrame:
    return _techniques(data_stamp())


def after_runs_logged() -> None:
    """New runs: drop cached results, and start a background retrain when enough runs arrived."""
    # Imported here: only pages that write runs pay for loading the predictor's modules.
    from fedopt_core.prediction import training

    clear_caches()
    if training.maybe_retrain_async(separate_process=True) is not None:
        st.toast("Enough new runs: a model is training in the background (see the Model page).")


def clear_caches() -> None:
    """After a write: drop cached query results so every page shows the new rows."""
    # The stamp is enough for the next read to be fresh; the rest frees memory at once.
    for cached in (data_stamp, _counts, _budget_alerts, _platforms, _techniques, _workloads):
        cached.clear()


# --------------------------------------------------------------------------- inputs that hold

#: Pages whose inputs hold when you leave and come back: a widget keyed with one of these
#: prefixes keeps its value (only widgets whose value may be set: no buttons, editors, uploads).
KEPT_INPUT_PREFIXES = ("predict_", "plan_")


def keep_page_inputs() -> None:
    """Keep every page's kept inputs (see :data:`KEPT_INPUT_PREFIXES`) across navigation.

    Streamlit drops a widget's state at the end of a run that did not draw it, so a form would
    come back with its defaults above the answer it made.  A value written through the Session
    State API is kept; the shell calls this on every run, before the page draws.
    """
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(KEPT_INPUT_PREFIXES):
            st.session_state[key] = st.session_state[key]


# --------------------------------------------------------------------------- showing values


#: Dot colours of an answer by where it came from.
METHOD_COLOURS = {"model": "#1f77b4", "heuristic": "#ff7f0e"}


def interval_figure(answer: pd.DataFrame, title: str, *, horizontal: bool = False) -> go.Figure:
    """Predictions as dots with their intervals (``platform``, ``predicted_time_s``, ``lower_s``,
    ``upper_s``, ``method`` columns), in one time unit, on a log axis where the intervals span
    more than 10x; the unit ends the title.  A range, never a bar: a heuristic's range is the point."""
    unit, per_unit = formatting.time_unit(answer["predicted_time_s"])
    value = answer["predicted_time_s"] / per_unit
    error = {
        "type": "data",
        "symmetric": False,
        "array": (answer["upper_s"] - answer["predicted_time_s"]) / per_unit,
        "arrayminus": (answer["predicted_time_s"] - answer["lower_s"]) / per_unit,
    }
    names = chart_text(answer["platform"])
    marker = {"size": 9 if horizontal else 12, "color": answer["method"].map(METHOD_COLOURS)}
    # The hover gives the exact seconds; the axis reads in one unit.
    exact = {
        "customdata": answer[["predicted_time_s", "lower_s", "upper_s"]].to_numpy(float).tolist(),
        "hovertemplate": "%{customdata[0]:,.0f} s (%{customdata[1]:,.0f} – %{customdata[2]:,.0f} s)<extra></extra>",
    }
    trace = (
        go.Scatter(x=value, y=names, error_x=error, mode="markers", marker=marker, **exact)
        if horizontal
        else go.Scatter(x=names, y=value, error_y=error, mode="markers", marker=marker, **exact)
    )
    figure = go.Figure(trace)
    figure.update_layout(title=f"{title} ({unit})")
    wide = formatting.spans_orders(answer["lower_s"], answer["upper_s"])
    axis = figure.update_xaxes if horizontal else figure.update_yaxes
    axis(title=f"{unit} (log scale)" if wide else unit, type="log" if wide else None)
    return figure


def importance_chart(importances: pd.DataFrame, title: str | None = None) -> None:
    """The 15 largest permutation importances, named in plain words (the internal name on hover)."""
    import plotly.express as px

    from fedopt_core.prediction.features import plain_feature_name

    top = importances.sort_values("importance").tail(15)
    top = top.assign(label=chart_text(top["feature"].map(plain_feature_name)), feature=chart_text(top["feature"]))
    figure = px.bar(
        top,
        x="importance",
        y="label",
        error_x="std",
        orientation="h",
        hover_data={"feature": True, "label": False},
        labels={"label": "", "importance": "importance (drop in accuracy when shuffled)"},
        title=title,
    )
    st.plotly_chart(figure, width="stretch")


def money_column(label: str) -> dict[str, Any]:
    """A USD column for ``st.dataframe``, so money reads the same way on every page."""
    return st.column_config.NumberColumn(label, format="$%.2f")


def chart_text(values: pd.Series) -> pd.Series:
    """User or server text for chart labels and hover text: plotly reads ``<a href>``, ``<img>`` and
    other tags in them as markup, so the angle brackets and ampersands are made entities."""
    return values.astype(str).map(html.escape)


def plain(text: object) -> str:
    """User or server text made inert for st.markdown-based elements (no Markdown, links, colours or HTML).

    Markdown syntax is escaped; a bare address (``http://…``, ``www.…``) would still be made a link
    by the renderer, so an invisible word joiner goes into it: it reads the same and cannot be clicked.
    """
    text = _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "\u2060" + m.group(0)[-1], str(text))
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])", r"\\\1", text)


_AUTOLINK = re.compile(r"(?i)(?:https?|ftp|mailto):/|www\.|@(?=[a-z0-9-]+\.)")
