"""Refresh, launch, terminate and sync end to end: real HTTP to the fake Lambda server on loopback,
usage rows read back from the database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from fedopt_core import accounts, catalog
from fedopt_core.cloud import lambda_ops
from fedopt_core.cloud.lambda_cloud import LambdaCloudClient
from fedopt_core.db import session_scope
from fedopt_core.models import UsageSession
from fedopt_core.testing.fake_lambda import FakeLambdaServer

KEY = "secret_lambda_key_0123456789abcd"


@pytest.fixture
def fake():
    with FakeLambdaServer(api_keys={KEY}, boot_s=60) as server:
        yield server


@pytest.fixture
def factory(fake):
    def make(api_key: str) -> LambdaCloudClient:
        return LambdaCloudClient(
            api_key,
            base_url=fake.base_url,
            min_request_interval_s=0,
            min_launch_interval_s=0,
            backoff_base_s=0.01,
            max_retries=2,
            reconcile_interval_s=0.01,
            reconcile_window_s=0.2,
        )

    return make


@pytest.fixture
def account(loaded_db: str) -> str:
    accounts.register_academic_account("lab-lambda", KEY, "Uni", "pi@uni.edu", monthly_budget_usd=500)
    return "lab-lambda"


def sessions() -> list[UsageSession]:
    with session_scope() as session:
        return list(session.exec(select(UsageSession).order_by(UsageSession.id)).all())


def test_refresh_updates_prices_capacity_history_and_marks_vanished_types(account, factory, fake) -> None:
    before = catalog.list_platforms(provider="lambda").set_index("instance_type")
    report = lambda_ops.refresh_catalogue(account, client_factory=factory)
    assert report.ok and report.seen == len(fake.instance_types)
    after = catalog.list_platforms(provider="lambda").set_index("instance_type")
    live = set(fake.instance_types)
    assert after.loc[sorted(live), "available"].all()
    vanished = set(before.index) - live
    assert vanished and not after.loc[sorted(vanished), "available"].any()
    a10 = after.loc["gpu_1x_a10"]
    assert a10["price_per_hour_usd"] == fake.instance_types["gpu_1x_a10"].price_cents_per_hour / 100
    assert set(a10["regions_with_capacity"]) <= set(fake.instance_types["gpu_1x_a10"].regions)
    history = catalog.price_history(int(a10["id"]))
    assert len(history) >= 2 and history["source"].iloc[-1] == "lambda_api"
    assert lambda_ops.state(lambda_ops.REFRESH_STATE_KEY)["ok"] is True


def test_a_failed_refresh_keeps_the_snapshot_and_says_why(loaded_db, factory, fake) -> None:
    accounts.register_academic_account("wrong-key", "not_the_right_key_0000", "Uni", "pi@uni.edu")
    before = catalog.list_platforms(provider="lambda")
    report = lambda_ops.refresh_catalogue("wrong-key", client_factory=factory)
    assert not report.ok and "API key" in report.error
    after = catalog.list_platforms(provider="lambda")
    assert after[["instance_type", "price_per_hour_usd", "available"]].equals(
        before[["instance_type", "price_per_hour_usd", "available"]]
    )
    noted = lambda_ops.state(lambda_ops.REFRESH_STATE_KEY)
    assert noted["ok"] is False and "API key" in noted["last_error"]
    assert "not_the_right_key" not in noted["last_error"]


def test_launch_opens_a_session_and_terminate_closes_it(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    region = fake.instance_types["gpu_1x_a10"].regions[0]
    outcome = lambda_ops.launch(
        account, "gpu_1x_a10", region, ["laptop"], max_price_per_hour_usd=5, client_factory=factory
    )
    assert len(outcome.instance_ids) == 1 and outcome.price_per_hour_usd == 1.29
    [opened] = sessions()
    assert opened.instance_id == outcome.instance_ids[0] and opened.ended_at is None
    assert opened.price_per_hour_usd == 1.29 and opened.outcome == "running"
    closed = lambda_ops.terminate(account, outcome.instance_ids, client_factory=factory)
    [done] = sessions()
    assert closed == [done.id] and done.ended_at is not None and done.outcome == "completed"
    assert done.cost_usd is not None and done.cost_usd >= 0


def test_the_hourly_cost_guard_refuses_before_launching(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    with pytest.raises(lambda_ops.LambdaOperationError, match="above your maximum"):
        lambda_ops.launch(
            account, "gpu_8x_a100_80gb_sxm4", "us-east-1", ["laptop"], max_price_per_hour_usd=2, client_factory=factory
        )
    assert fake.instances() == [] and sessions() == []


def test_a_launch_without_capacity_leaves_the_database_as_it_was(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    region = fake.instance_types["gpu_1x_a10"].regions[0]
    fake.set_capacity("gpu_1x_a10", region, 0)
    with pytest.raises(lambda_ops.LambdaOperationError, match="launch failed"):
        lambda_ops.launch(account, "gpu_1x_a10", region, ["laptop"], max_price_per_hour_usd=5, client_factory=factory)
    assert sessions() == []


def test_sync_adopts_machines_launched_elsewhere_and_closes_those_terminated_elsewhere(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    region = fake.instance_types["gpu_1x_a10"].regions[0]
    with factory(KEY) as client:  # someone launches from Lambda's own console
        elsewhere = client.launch(region, "gpu_1x_a10", ["laptop"], name="console-box").instance_ids[0]
    report = lambda_ops.sync(account, client_factory=factory)
    assert report.opened == [elsewhere]
    [adopted] = sessions()
    assert adopted.instance_id == elsewhere and adopted.source == "lambda_sync" and adopted.ended_at is None
    assert lambda_ops.sync(account, force=False, client_factory=factory).skipped  # at most once a minute
    with factory(KEY) as client:
        client.terminate([elsewhere])
    fake.advance(120)
    report = lambda_ops.sync(account, client_factory=factory)
    assert report.closed == [elsewhere]
    [closed] = sessions()
    assert closed.ended_at is not None


# ---------------------------------------------------------------- one machine per confirmation


def _launch(account, factory, fake, **extra):
    region = fake.instance_types["gpu_1x_a10"].regions[0]
    return lambda_ops.launch(
        account, "gpu_1x_a10", region, ["laptop"], max_price_per_hour_usd=5, client_factory=factory, **extra
    )


def test_one_confirmation_starts_one_machine_however_often_it_is_sent(account, factory, fake) -> None:
    import threading

    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    fake.inject("slow", delay_s=0.5, path_prefix="/instance-operations/launch")  # the server is slow to answer
    token = lambda_ops.new_confirmation()
    outcomes, errors = [], []

    def press() -> None:
        try:
            outcomes.append(_launch(account, factory, fake, confirmation=token))
        except lambda_ops.LambdaOperationError as exc:
            errors.append(str(exc))

    presses = [threading.Thread(target=press) for _ in range(2)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join(30)
    assert len(outcomes) == 1 and len(errors) == 1 and "already used" in errors[0]
    assert len(fake.instances()) == 1 and fake.count_requests("POST", "/instance-operations/launch") == 1
    [opened] = sessions()
    assert opened.instance_id == outcomes[0].instance_ids[0]
    assert fake.instances()[0]["name"] == lambda_ops.machine_name(token)
    assert lambda_ops.launch_intent(token)["state"] == "started"
    with pytest.raises(lambda_ops.LambdaOperationError, match="already used"):  # later, too
        _launch(account, factory, fake, confirmation=token)
    assert len(fake.instances()) == 1


def test_a_launch_not_seen_yet_blocks_another_until_sync_finds_it(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")

    def late_factory(api_key: str) -> LambdaCloudClient:  # gives up on the reply, then looks only briefly
        import httpx

        return LambdaCloudClient(
            api_key, base_url=fake.base_url, timeout=httpx.Timeout(0.2), min_request_interval_s=0,
            min_launch_interval_s=0, reconcile_interval_s=0.01, reconcile_window_s=0.05,
        )  # fmt: skip

    fake.inject("slow", delay_s=1.0, path_prefix="/instance-operations/launch")  # created after the client gave up
    token = lambda_ops.new_confirmation()
    with pytest.raises(lambda_ops.LambdaOperationError, match="not seen yet") as info:
        _launch(account, late_factory, fake, confirmation=token)
    assert "Nothing was started" not in str(info.value)
    assert lambda_ops.launch_intent(token)["state"] == "unknown"
    with pytest.raises(lambda_ops.LambdaOperationError, match="not settled yet"):  # no second machine meanwhile
        _launch(account, factory, fake)
    import time

    deadline = time.monotonic() + 10
    while not fake.instances() and time.monotonic() < deadline:
        time.sleep(0.05)
    report = lambda_ops.sync(account, client_factory=factory)
    assert report.settled == [lambda_ops.machine_name(token)]
    [opened] = sessions()  # the machine that runs has its session, at the price seen
    assert opened.instance_id == fake.instances()[0]["id"] and opened.ended_at is None
    assert lambda_ops.launch_intent(token)["state"] == "started"
    second = _launch(account, factory, fake)  # settled: launching again is allowed
    assert len(second.instance_ids) == 1 and len(sessions()) == 2


def test_a_launch_never_seen_is_settled_as_not_started_after_the_window(account, factory, fake, monkeypatch) -> None:
    from datetime import timedelta

    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    fake.inject("drop", path_prefix="/instance-operations/launch")  # not processed, but the client cannot know
    token = lambda_ops.new_confirmation()
    with pytest.raises(lambda_ops.LambdaOperationError, match="not seen yet"):
        _launch(account, factory, fake, confirmation=token)
    assert lambda_ops.sync(account, client_factory=factory).settled == []  # too early to say
    monkeypatch.setattr(lambda_ops, "SETTLE_WINDOW", timedelta(0))
    assert lambda_ops.sync(account, client_factory=factory).settled == [lambda_ops.machine_name(token)]
    assert lambda_ops.launch_intent(token)["state"] == "not_started" and fake.instances() == []


def test_what_the_session_needs_is_checked_before_anything_starts(account, factory, fake) -> None:
    from fedopt_core import auth

    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    long_name = auth.Actor(name="A" * 150, role="admin", signed_in=True)
    with auth.acting_as(long_name), pytest.raises(lambda_ops.LambdaOperationError, match="person"):
        _launch(account, factory, fake)
    with pytest.raises(lambda_ops.LambdaOperationError, match="workload"):
        _launch(account, factory, fake, workload="w" * 500)
    assert fake.instances() == [] and fake.count_requests("POST", "/instance-operations/launch") == 0
    assert sessions() == []


# ---------------------------------------------------------------- a server that echoes the key


@pytest.fixture
def echoing_server():
    """A hostile API on loopback: every request is refused with the key (minus its last
    character, and half of it) echoed in the error message and suggestion."""
    import http.server
    import json
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(
                {
                    "error": {
                        "code": "global/invalid-parameters",
                        "message": f"token {KEY[:-1]} is not valid here",
                        "suggestion": f"check the key ending {KEY[len(KEY) // 2 :]}",
                    }
                }
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_error_echoing_fragments_of_the_key_is_masked_where_it_is_stored(account, echoing_server) -> None:
    from fedopt_core.cloud.lambda_cloud import SECRET_FRAGMENT_LEN

    def factory(api_key: str) -> LambdaCloudClient:
        return LambdaCloudClient(api_key, base_url=echoing_server, min_request_interval_s=0, max_retries=0)

    report = lambda_ops.refresh_catalogue(account, client_factory=factory)
    stored = lambda_ops.state(lambda_ops.REFRESH_STATE_KEY)["last_error"]
    assert not report.ok and "is not valid here" in stored
    for text in (report.error, stored):
        leaked = [KEY[i : i + SECRET_FRAGMENT_LEN] for i in range(len(KEY) - SECRET_FRAGMENT_LEN + 1)]
        assert not any(piece in text for piece in leaked), text


def test_a_lost_secret_key_is_one_line_on_the_machines_path(account, factory, fake, tmp_path) -> None:
    from fedopt_core import crypto
    from fedopt_core.config import get_settings

    crypto.key_file_path(get_settings()).unlink()  # the key that opens the account's API key is gone
    report = lambda_ops.sync(account, client_factory=factory)
    assert not report.ok and "cannot be decrypted" in report.error
    with pytest.raises(lambda_ops.LambdaOperationError, match="cannot be decrypted"):
        _launch(account, factory, fake)
    assert fake.count_requests("POST", "/instance-operations/launch") == 0


def test_catalogue_prices_are_for_admins_and_a_live_price_replaces_a_stale_edit(account, factory, fake) -> None:
    from fedopt_core import auth

    a10 = catalog.list_platforms(provider="lambda").set_index("instance_type").loc["gpu_1x_a10"]
    edit = {"provider": "lambda", "instance_type": "gpu_1x_a10", "gpu_type": a10["gpu_type"], "gpu_count": 1}
    member = auth.Actor(name="mia", role="member", email="mia@uni.edu", email_verified=True, signed_in=True)
    with auth.acting_as(member), pytest.raises(auth.PermissionDenied, match="admin"):
        catalog.save_platform(edit | {"price_per_hour_usd": 0.01}, platform_id=int(a10["id"]))
    catalog.save_platform(edit | {"price_per_hour_usd": 0.01}, platform_id=int(a10["id"]))  # an admin may
    report = lambda_ops.refresh_catalogue(account, client_factory=factory)
    live = fake.instance_types["gpu_1x_a10"].price_cents_per_hour / 100
    after = catalog.list_platforms(provider="lambda").set_index("instance_type").loc["gpu_1x_a10"]
    assert after["price_per_hour_usd"] == live and "gpu_1x_a10" in report.price_changed
    assert report.overrode_edits == [f"gpu_1x_a10: $0.01 -> ${live:.2f}"]


# ---------------------------------------------------------------- spending caps


def test_a_launch_past_the_monthly_budget_is_refused_with_the_figures(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    accounts.update_account(account, monthly_budget_usd=10.0)
    # 1.29 $/h for an upper bound of 10 h is $12.90: past the $10 budget
    with pytest.raises(lambda_ops.LambdaOperationError, match="monthly budget of \\$10.00") as info:
        _launch(account, factory, fake, expected_hours=10)
    assert "$12.90" in str(info.value) and "10 h at $1.29/h" in str(info.value)
    assert fake.count_requests("POST", "/instance-operations/launch") == 0 and sessions() == []
    within = _launch(account, factory, fake, expected_hours=5)  # $6.45 fits
    assert len(within.instance_ids) == 1


def test_an_hourly_cap_counts_the_machines_already_running(account, factory, fake) -> None:
    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    accounts.update_account(account, max_usd_per_hour=2.0)
    first = _launch(account, factory, fake)  # 1.29 $/h: within 2 $/h
    assert len(first.instance_ids) == 1
    with pytest.raises(lambda_ops.LambdaOperationError, match="cap of \\$2.00/h") as info:
        _launch(account, factory, fake)  # another 1.29 $/h with 1.29 running: 2.58
    assert "$1.29/h already running" in str(info.value)
    assert len(fake.instances()) == 1


def test_an_admin_may_launch_past_a_cap_with_a_reason_that_is_recorded(account, factory, fake) -> None:
    from fedopt_core import auth

    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    accounts.update_account(account, monthly_budget_usd=1.0)
    outcome = _launch(account, factory, fake, expected_hours=3, override_reason="deadline tomorrow, PI approved")
    assert len(outcome.instance_ids) == 1
    event = auth.audit_log(action="instance.launch").iloc[0]
    assert event["details"]["override_reason"] == "deadline tomorrow, PI approved"
    assert event["details"]["expected_hours"] == 3


# ---------------------------------------------------------------- machines that outlive their job


def test_enforce_warns_then_terminates_a_machine_past_its_upper_bound_only_where_agreed(account, factory, fake) -> None:
    from datetime import timedelta

    from fedopt_core.cloud.enforce import enforce

    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    outcome = _launch(account, factory, fake, expected_hours=2)
    [machine] = outcome.instance_ids
    soon = enforce(now=datetime.now(UTC) + timedelta(hours=1), client_factory=factory)
    assert soon.ok and soon.actions == []  # within its bound: nothing to say
    later = datetime.now(UTC) + timedelta(hours=3)
    warned = enforce(now=later, client_factory=factory)
    assert [(a.instance_id, a.action) for a in warned.actions] == [(machine, "warned")]
    assert "past its job's predicted upper bound of 2 h" in warned.actions[0].reason
    accounts.update_account(account, auto_terminate=True)
    dry = enforce(now=later, dry_run=True, client_factory=factory)
    assert [a.action for a in dry.actions] == ["would terminate"] and fake.instances()[0]["status"] != "terminating"
    done = enforce(now=later, client_factory=factory)
    assert [a.action for a in done.actions] == ["terminated"]
    assert fake.instances() == [] or fake.instances()[0]["status"] in ("terminating", "terminated")
    [closed] = sessions()
    assert closed.ended_at is not None


def test_enforce_terminates_everything_of_an_account_past_its_budget(account, factory, fake) -> None:
    from datetime import timedelta

    from fedopt_core.cloud.enforce import enforce

    fake.add_ssh_key("laptop", "ssh-ed25519 AAAA test")
    machines = [_launch(account, factory, fake).instance_ids[0] for _ in range(2)]
    start = datetime.now(UTC).replace(day=1, hour=0, minute=5, second=0, microsecond=0)
    accounts.add_usage_session(account, "gpu_1x_a10", start, hours=100, cost_usd=129.0)  # earlier this month
    accounts.update_account(account, monthly_budget_usd=100.0)
    report = enforce(now=datetime.now(UTC) + timedelta(minutes=1), client_factory=factory)
    assert sorted(a.instance_id for a in report.actions) == sorted(machines)
    assert all(a.action == "terminated" and "hard cap" in a.reason for a in report.actions)
    assert all(s.ended_at is not None for s in sessions())
