"""Every page opens without an exception, and its widgets do what they say (AppTest)."""

from __future__ import annotations

import time

import pytest

from fedopt_core import overview, runs, schema
from fedopt_core.catalog import datasets
from tests.support import as_shown

PAGES = [
    ("pages/overview.py", "fedopt"),
    ("pages/platforms.py", "Platforms"),
    ("pages/techniques.py", "Techniques"),
    ("pages/admin.py", "Audit & roles"),
]


@pytest.mark.parametrize(("page", "heading"), PAGES)
def test_every_page_opens_without_exception(app, page: str, heading: str) -> None:
    at = app(page)
    assert not at.exception, [e.value for e in at.exception]
    assert heading in [t.value for t in at.title]


def test_sidebar_shows_database_and_counts(app) -> None:
    at = app()
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "GPU platforms" in captions and "techniques" in captions
    assert any("fedopt.db" in c.value for c in at.sidebar.code)


def test_a_write_by_another_process_shows_on_the_next_rerun(app, shared_data) -> None:
    """The CLI or a job script writes behind the dashboard's caches: the sidebar agrees at once
    (within the 2 s the data stamp is kept), not after the caches' ttl of minutes."""
    at = app("pages/platforms.py")
    assert " 0 runs " in " ".join(c.value for c in at.sidebar.caption)
    bench = datasets.load_lambda_benchmarks(shared_data / "gpu_benchmarks.csv").head(40)
    runs.store_runs(bench[schema.RUN_FIELDS], source="benchmark")  # not through a page: nothing cleared
    time.sleep(2.1)
    at.run()
    assert " 40 runs " in " ".join(c.value for c in at.sidebar.caption)


@pytest.mark.parametrize("page", ["pages/runs.py", "pages/model.py", "pages/accounts.py"])
def test_a_page_opened_directly_runs_once_inside_the_shell(app, page: str, loaded_db: str) -> None:
    """AppTest starts every run in Streamlit's old pages/ mode, as a fresh server does for a deep link
    (widget input surviving that is checked by the form tests, e.g. adding an account)."""
    at = app(page)
    assert not at.exception, [e.value for e in at.exception]
    assert any("GPU platforms" in c.value for c in at.sidebar.caption)
    assert len([t for t in at.title]) == 1  # the page ran once, inside the shell


def test_platform_search_filters_and_empty_state(app) -> None:
    at = app("pages/platforms.py")
    total = len(at.dataframe[0].value)
    at.sidebar.text_input[0].input("h100").run()
    filtered = at.dataframe[0].value
    assert 0 < len(filtered) < total
    assert filtered["gpu_type"].str.contains("H100").all()
    at.sidebar.text_input[0].input("no-such-thing").run()
    assert not at.exception
    assert any("No platform matches" in i.value for i in at.info)


def test_adding_a_custom_platform_shows_it(app) -> None:
    at = app("pages/platforms.py")
    form_inputs = at.text_input
    form_inputs[1].input("on-prem")  # sidebar search is text_input[0]
    form_inputs[2].input("lab-box-<b>")
    form_inputs[3].input("RTX A6000")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    at.sidebar.text_input[0].input("lab-box").run()
    assert at.dataframe[0].value["instance_type"].tolist() == ["lab-box-<b>"]


def test_a_bad_custom_platform_is_refused_with_the_field(app) -> None:
    at = app("pages/platforms.py")
    at.text_input[2].input("")  # empty instance type
    at.button[0].click().run()
    assert any("instance_type" in as_shown(e.value) for e in at.error)


def test_technique_search_and_empty_state(app) -> None:
    at = app("pages/techniques.py")

    def cards() -> list[str]:
        return [m.value for m in at.markdown if m.value.startswith("####")]

    everything = cards()
    at.text_input[0].input("spot").run()
    assert not at.exception
    assert 0 < len(cards()) < len(everything)
    assert any("spot" in card.lower() for card in cards())
    at.text_input[0].input("zzzz-nothing").run()
    assert any("No technique matches" in i.value for i in at.info)


def test_the_admin_page_shows_audited_changes_and_sets_roles(app) -> None:
    at = app("pages/platforms.py")
    at.text_input[2].input("audited-box")
    at.button[0].click().run()
    at.switch_page("pages/admin.py").run()
    assert not at.exception
    assert "platform.add" in at.dataframe[0].value["action"].tolist()
    at.text_input[0].input("ada@uni.edu")
    at.selectbox[1].select("member")
    at.button[0].click().run()
    assert at.dataframe[1].value["email"].tolist() == ["ada@uni.edu"]


def test_a_viewer_is_refused_in_one_line_and_is_not_shown_where_the_database_is(app, monkeypatch) -> None:
    from fedopt_core import auth

    # Without sign-in configured the shell acts as auth.LOCAL_ADMIN: make that a viewer.
    monkeypatch.setattr(auth, "LOCAL_ADMIN", auth.Actor(name="guest", role="viewer", signed_in=True))
    at = app("pages/platforms.py")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.sidebar.code and not any("Database" in c.value for c in at.sidebar.caption)
    at.text_input[1].input("on-prem")
    at.text_input[2].input("lab-box")
    at.text_input[3].input("RTX A6000")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]  # no traceback with server paths
    assert any("needs the member role" in e.value for e in at.error)


def test_other_clouds_offers_are_imported_from_the_platforms_page_and_counted_at_once(app) -> None:
    at = app("pages/platforms.py")
    before = overview.counts()
    at.button(key="import_offers_shipped").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    after = overview.counts()
    assert after["gpu_platforms"] > before["gpu_platforms"] and after["providers"] > before["providers"]
    assert any("offers added" in s.value for s in at.success)
    # the sidebar, drawn after the import, already counts them
    assert f"{after['gpu_platforms']} GPU platforms" in " ".join(c.value for c in at.sidebar.caption)


def test_the_overview_walks_a_new_user_through_three_steps(app, loaded_db: str) -> None:
    at = app()
    assert not at.exception, [e.value for e in at.exception]
    steps = [m.value for m in at.markdown if m.value.startswith("**")]
    assert steps == ["**1. Give the predictor real runs**", "**2. Predict a job**", "**3. Add an account**"]
    at.button(key="start_import").click().run(timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    imported = len(runs.list_runs(limit=None))
    assert imported > 2000  # the public benchmark, in the test's database
    assert [s.value for s in at.success] == [
        f"{imported:,} runs imported from the public benchmark. Next: predict a job."
    ]
    ticked = [m.value for m in at.markdown if m.value.endswith(":material/check_circle:")]
    assert ticked == ["**1. Give the predictor real runs** :material/check_circle:"]
    assert any(f"{imported:,} runs stored" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "start_import"]  # done: no second import offered
    # the count in the figures below reads as the step writes it
    assert [m.value for m in at.metric if m.label == "Logged runs"] == [f"{imported:,}"]
