"""The Accounts and Usage review pages through AppTest: forms, masking, archive, usage, warnings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fedopt_core import accounts
from tests.support import as_shown

KEY = "secret_UIKEY_9d8c7b6a5f4e1234"


@pytest.fixture(autouse=True)
def _no_outer_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDOPT_SECRET_KEY", raising=False)


def widget(widgets, label: str):
    matches = [w for w in widgets if w.label == label]
    assert matches, f"no widget labelled {label!r}: {[w.label for w in widgets]}"
    return matches[0]


def everything_shown(at) -> str:
    """All text the page put on screen, tables included, plus what its inputs hold."""
    parts = []
    for kind in ("markdown", "caption", "text", "success", "error", "warning", "info", "code", "title", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [e.value.to_csv() for e in at.dataframe]
    parts += [str(w.value) for w in at.text_input] + [str(w.value) for w in at.text_area]
    return "\n".join(parts)


def accounts_table(at):
    return at.dataframe[0].value


def test_accounts_page_opens_with_an_empty_state(app) -> None:
    at = app("pages/accounts.py")
    assert not at.exception, [e.value for e in at.exception]
    assert "Accounts" in [t.value for t in at.title]
    assert any("No accounts yet" in i.value for i in at.info)


def test_adding_an_account_through_the_page_shows_only_the_masked_key(app) -> None:
    at = app("pages/accounts.py")
    widget(at.text_input, "Username").input("<b>lab</b> grant")
    widget(at.text_input, "Institution").input("Uni *bold*")
    widget(at.text_input, "Institutional e-mail").input("pi@cs.example.edu")
    widget(at.text_input, "API key (stored encrypted, never shown again)").input(KEY)
    widget(at.number_input, "Monthly quota (hours)").set_value(100.0)
    widget(at.button, "Save account").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    table = accounts_table(at)
    row = table.set_index("username").loc["<b>lab</b> grant"]
    assert row["api_key"] == "••••1234"
    assert row["eligibility"] == "domain recognised" and row["monthly_quota_hours"] == 100
    assert row["institution"] == "Uni *bold*"  # stored and shown as the text it is
    shown = everything_shown(at)
    assert KEY not in shown and "9d8c7b6a5f4e" not in shown
    assert not any("<b>" in s.value for s in at.success)  # user text is escaped in messages
    assert accounts.decrypted_api_key("<b>lab</b> grant") == KEY


def test_a_bad_account_is_refused_with_the_field_and_nothing_saved(app) -> None:
    at = app("pages/accounts.py")
    widget(at.text_input, "Username").input("lab")
    widget(at.text_input, "Institutional e-mail").input("not-an-email")
    widget(at.button, "Save account").click().run()
    assert not at.exception
    assert any("email" in e.value for e in at.error)
    assert accounts.list_accounts(include_archived=True).empty


def test_archiving_through_the_page(app) -> None:
    accounts.register_academic_account("keep", None, None, None)
    accounts.register_academic_account("retire", None, None, None)
    at = app("pages/accounts.py")
    widget(at.selectbox, "Account to archive").select("retire")
    widget(at.button, "Archive").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert accounts_table(at)["username"].tolist() == ["keep"]
    at.toggle[0].set_value(True).run()
    statuses = accounts_table(at).set_index("username")["status"].to_dict()
    assert statuses == {"keep": "active", "retire": "archived"}


def test_recording_a_usage_session_through_the_page(app) -> None:
    accounts.register_academic_account("grant", None, None, None, monthly_quota_hours=10)
    at = app("pages/accounts.py")
    form_account = [w for w in at.selectbox if w.label == "Account"][0]
    form_account.select("grant")
    widget(at.selectbox, "Platform (instance type)").select("gpu_1x_a10")
    start, _ = accounts.month_bounds()
    widget(at.date_input, "Start date (UTC)").set_value(start.date())
    widget(at.number_input, "Hours").set_value(2.5)
    widget(at.text_input, "Person").input("[click](http://x)")
    widget(at.button, "Record session").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    row = accounts_table(at).set_index("username").loc["grant"]
    assert row["hours_this_month"] == pytest.approx(2.5) and row["hours_left"] == pytest.approx(7.5)
    sessions = at.dataframe[-1].value
    assert sessions["person"].tolist() == ["[click](http://x)"]
    assert sessions["cost_in_window_usd"].iloc[0] == pytest.approx(2.5 * 1.29)


def test_a_session_with_a_given_cost_and_no_form_without_accounts(app) -> None:
    accounts.register_academic_account("grant", None, None, None)
    at = app("pages/accounts.py")
    widget(at.number_input, "Hours").set_value(0.0)
    widget(at.number_input, "Cost (USD; empty = hours x catalogue price)").set_value(5.0)
    widget(at.selectbox, "Platform (instance type)").select("gpu_1x_a10")
    widget(at.button, "Record session").click().run()
    assert not at.exception and not at.error
    recorded = accounts.list_usage_sessions()
    assert recorded["cost_usd"].tolist() == [5.0] and recorded["hours"].tolist() == [0.0]
    accounts.archive_account("grant")
    at = app("pages/accounts.py")
    assert any("Add an account first" in i.value for i in at.info)
    assert not [b for b in at.button if b.label == "Record session"]


def test_replacing_a_key_through_the_page(app) -> None:
    accounts.register_academic_account("grant", "secret_old_key_000000aaaa", None, None)
    at = app("pages/accounts.py")
    widget(at.text_input, "New API key").input("secret_new_key_11111bbbb")
    widget(at.button, "Replace key").click().run()
    assert not at.exception and not at.error
    assert accounts_table(at).set_index("username").loc["grant", "api_key"] == "••••bbbb"
    assert "secret_new_key" not in everything_shown(at)
    widget(at.text_input, "New API key").input("short")
    widget(at.button, "Replace key").click().run()
    assert any("api" in e.value and "key" in e.value for e in at.error)
    assert "short" not in " ".join(e.value for e in at.error)
    assert accounts.decrypted_api_key("grant") == "secret_new_key_11111bbbb"


def test_which_account_would_pay(app) -> None:
    accounts.register_academic_account("tight", None, None, None, monthly_quota_hours=5)
    at = app("pages/accounts.py")
    widget(at.number_input, "Expected hours").set_value(3.0).run()
    assert any("tight" in s.value for s in at.success)
    widget(at.number_input, "Expected hours").set_value(30.0).run()
    assert any("no account can pay" in w.value for w in at.warning)


def test_usage_review_opens_empty(app) -> None:
    at = app("pages/usage_review.py")
    assert not at.exception, [e.value for e in at.exception]
    assert "Usage review" in [t.value for t in at.title]
    assert any("No accounts yet" in i.value for i in at.info)


def test_usage_review_shows_figures_warnings_and_user_text_as_text(app) -> None:
    accounts.register_academic_account("**grant**", None, None, None, monthly_quota_hours=10)
    start, _ = accounts.month_bounds(accounts.previous_month())
    accounts.add_usage_session(
        "**grant**", "gpu_1x_a10", start + timedelta(days=2), hours=9, person="<i>ana</i>", notes="=cmd()"
    )
    at = app("pages/usage_review.py")
    widget(at.selectbox, "Month").select(accounts.previous_month()).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.metric][:2] == ["9.0", "$11.61"]
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 1 and "90%" in warnings[0]
    assert "**grant**" not in warnings[0] and r"\*\*grant\*\*" in warnings[0]  # shown literally
    summary = at.dataframe[0].value.set_index("username")
    assert summary.loc["**grant**", "quota_used_pct"] == pytest.approx(90.0)
    people = [d.value for d in at.dataframe if "person" in d.value.columns]
    assert people and people[0]["person"].tolist() == ["<i>ana</i>"]


def test_techniques_page_shows_last_months_savings(app) -> None:
    accounts.register_academic_account("grant", None, None, None)
    start, _ = accounts.month_bounds(accounts.previous_month())
    accounts.add_usage_session("grant", "gpu_1x_a10", start + timedelta(days=1), hours=10)
    at = app("pages/techniques.py")
    assert not at.exception, [e.value for e in at.exception]
    notes = [as_shown(c.value) for c in at.caption if as_shown(c.value).startswith("On your own usage")]
    assert notes, "no savings note on the technique cards"
    assert any("$12.90 spent" in n and "$12.90 was on Lambda" in n for n in notes)  # why spot saves nothing here
    # no session is linked to a run: the idle-time cards claim nothing, and say why
    idle = [n for n in notes if "not enough linked sessions to estimate: 0 of 1 session linked" in n]
    assert len(idle) == 2 and not any("would have saved" in n for n in idle)


def test_a_budget_past_80_percent_shows_in_the_sidebar_and_on_the_accounts_page(app) -> None:
    from datetime import UTC, datetime

    from fedopt_core import accounts

    accounts.register_academic_account("grant", None, None, None, monthly_budget_usd=100.0)
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    accounts.add_usage_session("grant", "gpu_1x_a10", start, hours=1, cost_usd=85.0)
    at = app("pages/accounts.py")
    assert not at.exception, [e.value for e in at.exception]
    from tests.support import as_shown

    assert any("grant" in w.value and "80%" in as_shown(w.value) for w in at.sidebar.warning)
    page = [as_shown(w.value) for w in at.warning]
    assert any("$85.00 of $100.00" in w and "at this pace the month ends at" in w for w in page)
