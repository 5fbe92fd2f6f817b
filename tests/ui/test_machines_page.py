"""The Machines page against the fake Lambda server over real HTTP (AppTest)."""

from __future__ import annotations

import pytest

from fedopt_core import accounts
from fedopt_core.cloud import lambda_ops
from fedopt_core.testing.fake_lambda import FakeLambdaServer

KEY = "secret_page_key_abcdef0123456789"


@pytest.fixture
def fake(monkeypatch):
    with FakeLambdaServer(api_keys={KEY}) as server:
        monkeypatch.setenv("FEDOPT_LAMBDA_BASE_URL", server.base_url)
        server.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
        yield server


def test_without_a_keyed_account_the_page_says_what_to_do(app) -> None:
    at = app("pages/machines.py")
    assert not at.exception
    assert any("No Lambda account" in i.value for i in at.info)


def test_launch_then_terminate_from_the_page(app, fake) -> None:
    accounts.register_academic_account("lab", KEY, "Uni", "pi@uni.edu")
    assert lambda_ops.refresh_catalogue("lab").ok  # capacity per region comes from the live catalogue
    at = app("pages/machines.py", timeout=120)
    assert not at.exception, [e.value for e in at.exception]
    assert "Nothing running" in " ".join(c.value for c in at.caption)
    type_box = next(s for s in at.selectbox if s.label == "Instance type")
    type_box.select("gpu_1x_a10").run()
    next(t for t in at.text_input if t.label.startswith("SSH key")).input("laptop")
    next(c for c in at.checkbox if c.label.startswith("Yes, launch")).check().run()
    next(b for b in at.button if b.label == "Launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Launched" in s.value for s in at.success), [e.value for e in at.error]
    running = lambda_ops.running_machines("lab")
    assert len(running) == 1 and len(fake.instances()) == 1
    at.run()
    at.multiselect[0].select(running["instance_id"].iloc[0]).run()
    next(c for c in at.checkbox if c.label.startswith("Yes, terminate")).check().run()
    next(b for b in at.button if b.label == "Terminate").click().run()
    assert not at.exception
    assert lambda_ops.running_machines("lab").empty


def test_a_launch_above_the_maximum_price_is_refused_on_the_page(app, fake) -> None:
    accounts.register_academic_account("lab", KEY, "Uni", "pi@uni.edu")
    at = app("pages/machines.py", timeout=120)
    next(s for s in at.selectbox if s.label == "Instance type").select("gpu_1x_a10").run()
    next(n for n in at.number_input if n.label.startswith("Maximum")).set_value(0.5).run()
    next(c for c in at.checkbox if c.label.startswith("Yes, launch")).check().run()
    next(b for b in at.button if b.label == "Launch").click().run()
    assert any("above your maximum" in e.value for e in at.error)
    assert fake.instances() == []


def test_the_platforms_page_refreshes_and_reports_a_failed_refresh(app, fake) -> None:
    accounts.register_academic_account("lab", KEY, "Uni", "pi@uni.edu")
    accounts.register_academic_account("stale", "revoked_key_0000000000000000", "Uni", "pi@uni.edu")
    at = app("pages/platforms.py", timeout=120)
    assert "Never refreshed" in " ".join(c.value for c in at.caption)
    next(s for s in at.selectbox if s.label == "Refresh with account").select("stale").run()
    next(b for b in at.button if b.label == "Refresh from Lambda").click().run()
    assert any("snapshot stays" in e.value for e in at.error)
    assert "revoked_key" not in " ".join(e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "Refresh with account").select("lab").run()
    next(b for b in at.button if b.label == "Refresh from Lambda").click().run()
    assert any("price changes" in s.value for s in at.success)
    at.run()
    assert "Last refreshed" in " ".join(c.value for c in at.caption)
