"""LambdaCloudClient over real HTTP against the fake Lambda server (loopback).

Clients here use tiny pacing intervals and backoff so the file runs in seconds; timing
assertions are lower bounds (what must have been waited), never tight windows.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from fedopt_core.cloud.lambda_cloud import (
    AccountInactiveError,
    AuthenticationError,
    FileSystemInWrongRegionError,
    InsufficientCapacityError,
    InvalidParametersError,
    LambdaCloudClient,
    LambdaCloudError,
    LambdaConnectionError,
    LambdaTimeoutError,
    LaunchNotStartedError,
    LaunchOutcomeUnknownError,
    NotFoundError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    UnexpectedResponseError,
    error_from_response,
    redact_key,
)
from fedopt_core.testing.fake_lambda import PUBLIC_REGIONS, FakeLambdaServer

KEY = "secret_client_test_9f3a7c2e5b1d"
INACTIVE_KEY = "secret_inactive_test_0a1b2c3d4e"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T me@laptop"

FAST = {
    "timeout": httpx.Timeout(2.0),
    "min_request_interval_s": 0.002,
    "min_launch_interval_s": 0.002,
    "max_retries": 3,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "reconcile_checks": 3,
    "reconcile_interval_s": 0.02,
    "reconcile_window_s": 0.0,  # exactly reconcile_checks looks (the tests count them)
}


@pytest.fixture
def srv() -> Iterator[FakeLambdaServer]:
    with FakeLambdaServer(api_keys={KEY}, inactive_api_keys={INACTIVE_KEY}) as server:
        yield server


def make_client(srv: FakeLambdaServer, key: str = KEY, **overrides: Any) -> LambdaCloudClient:
    return LambdaCloudClient(key, base_url=srv.base_url, **{**FAST, **overrides})


@pytest.fixture
def client(srv: FakeLambdaServer) -> Iterator[LambdaCloudClient]:
    with make_client(srv) as c:
        yield c


@pytest.fixture
def keyed(srv: FakeLambdaServer, client: LambdaCloudClient) -> LambdaCloudClient:
    client.add_ssh_key("laptop", PUBLIC_KEY)
    return client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- construction, repr


def test_repr_shows_only_the_last_four_characters_of_the_key(client: LambdaCloudClient) -> None:
    text = repr(client)
    assert "••••" + KEY[-4:] in text
    assert KEY not in text and KEY[:-4] not in text
    assert client.key_hint == "••••" + KEY[-4:]
    assert redact_key("short") == "••••"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api_key": ""}, "api_key"),
        ({"api_key": "secret with space"}, "api_key"),
        ({"api_key": "secret\nInjected: header"}, "api_key"),
        ({"timeout": 5.0}, "timeout"),
        ({"min_request_interval_s": -1}, "min_request_interval_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"reconcile_checks": 0}, "reconcile_checks"),
    ],
)
def test_bad_configuration_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    args = {"api_key": KEY, **kwargs}
    with pytest.raises(ValueError, match=field) as info:
        LambdaCloudClient(**args)
    assert "secret" not in str(info.value)


def test_closed_client_refuses_requests(srv: FakeLambdaServer) -> None:
    with make_client(srv) as c:
        assert c.instances() == []
    assert c.closed
    with pytest.raises(RuntimeError, match="closed"):
        c.instances()


# --------------------------------------------------------------------------- every method


def test_instance_types_are_typed_and_follow_capacity(srv: FakeLambdaServer, client: LambdaCloudClient) -> None:
    srv.set_capacity("gpu_1x_a10", "us-west-2", 0)
    types = {t.name: t for t in client.instance_types()}
    assert set(types) == set(srv.instance_types)
    for name, fake in srv.instance_types.items():
        got = types[name]
        assert got.price_cents_per_hour == fake.price_cents_per_hour
        assert got.price_per_hour_usd == pytest.approx(fake.price_cents_per_hour / 100)
        assert (got.vcpus, got.memory_gib, got.storage_gib, got.gpus) == (
            fake.vcpus,
            fake.memory_gib,
            fake.storage_gib,
            fake.gpus,
        )
        assert got.description == fake.description and got.gpu_description == fake.gpu_description
        expected = [r for r in PUBLIC_REGIONS if srv.capacity(name, r) > 0]
        assert list(got.region_names_with_capacity) == expected
    assert "us-west-2" not in types["gpu_1x_a10"].region_names_with_capacity
    assert (
        types["gpu_1x_a10"].regions_with_capacity[0].description
        == PUBLIC_REGIONS[types["gpu_1x_a10"].regions_with_capacity[0].name]
    )


def test_launch_restart_terminate_lifecycle(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    client = keyed
    result = client.launch("us-west-1", "gpu_1x_a10", ["laptop"])
    assert not result.reconciled and len(result.instance_ids) == 1
    assert result.name.startswith("fedopt-") and len(result.name) <= 64
    (inst_id,) = result.instance_ids

    booting = client.instance(inst_id)
    assert (booting.status, booting.name, booting.ip) == ("booting", result.name, None)
    assert booting.instance_type.name == "gpu_1x_a10" and booting.region.name == "us-west-1"
    assert booting.price_per_hour_usd == pytest.approx(srv.instance_types["gpu_1x_a10"].price_cents_per_hour / 100)
    assert booting.ssh_key_names == ("laptop",)

    srv.advance(61)
    (active,) = client.instances()
    assert active.id == inst_id and active.status == "active" and active.ip
    assert active.jupyter_token and active.jupyter_token not in repr(active)

    restarted = client.restart([inst_id])
    assert [i.status for i in restarted] == ["booting"]
    srv.advance(61)
    assert client.instance(inst_id).status == "active"

    terminated = client.terminate(inst_id)
    assert [(i.id, i.status) for i in terminated] == [(inst_id, "terminating")]
    srv.advance(61)
    assert client.instances() == []
    gone = client.instance(inst_id)
    assert gone.status == "terminated" and gone.is_terminal


def test_generated_names_are_unique(keyed: LambdaCloudClient) -> None:
    first = keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    second = keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert first.name != second.name
    assert {i.name for i in keyed.instances()} == {first.name, second.name}


def test_launch_with_name_and_file_system(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    srv.add_file_system("shared", "us-west-1", bytes_used=4096)
    srv.add_file_system("elsewhere", "us-east-1")
    result = keyed.launch("us-west-1", "gpu_1x_a100", ["laptop"], name="train-1", file_system_names=["shared"])
    assert result.name == "train-1"
    inst = keyed.instance(result.instance_ids[0])
    assert inst.name == "train-1" and inst.file_system_names == ("shared",)
    systems = {f.name: f for f in keyed.file_systems()}
    assert systems["shared"].is_in_use and not systems["elsewhere"].is_in_use
    assert systems["shared"].region.name == "us-west-1" and systems["shared"].bytes_used == 4096
    assert systems["shared"].mount_point == "/lambda/nfs/shared"
    assert isinstance(systems["shared"].created, datetime) and systems["shared"].created.tzinfo is not None
    assert systems["shared"].created_by_email


def test_ssh_keys_generated_uploaded_listed_deleted(keyed: LambdaCloudClient) -> None:
    generated = keyed.add_ssh_key("made-by-lambda")
    assert generated.private_key is not None and generated.private_key.startswith("-----BEGIN")
    assert generated.private_key not in repr(generated)
    uploaded = keyed.add_ssh_key("mine", PUBLIC_KEY)
    assert uploaded.private_key is None and uploaded.public_key == PUBLIC_KEY
    assert {k.name for k in keyed.ssh_keys()} == {"laptop", "made-by-lambda", "mine"}
    keyed.delete_ssh_key(generated.id)
    assert {k.name for k in keyed.ssh_keys()} == {"laptop", "mine"}
    with pytest.raises(InvalidParametersError):  # the contract answers 400 for an unknown key id
        keyed.delete_ssh_key("0123abcd")


# --------------------------------------------------------------------------- error classes


def test_wrong_key_is_authentication_error_with_friendly_text(srv: FakeLambdaServer) -> None:
    with make_client(srv, key="secret_wrong_key_5555aaaa") as c, pytest.raises(AuthenticationError) as info:
        c.instance_types()
    err = info.value
    assert (err.code, err.status_code) == ("global/invalid-api-key", 401)
    assert str(err) == f"{err.message} {err.suggestion}"
    assert err.message and err.suggestion and not err.outcome_unknown
    assert srv.count_requests("GET", "/instance-types") == 1  # a 401 is not retried


def test_inactive_account(srv: FakeLambdaServer) -> None:
    with make_client(srv, key=INACTIVE_KEY) as c, pytest.raises(AccountInactiveError) as info:
        c.instances()
    assert (info.value.code, info.value.status_code) == ("global/account-inactive", 403)


def test_unknown_instance_is_not_found(client: LambdaCloudClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.instance("0123abcd")
    assert info.value.status_code == 404


def test_server_side_validation_error(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    keyed.add_ssh_key("second", PUBLIC_KEY.replace("me@laptop", "me@desk"))
    with pytest.raises(InvalidParametersError) as info:
        keyed.launch("us-west-1", "gpu_1x_a10", ["laptop", "second"])  # Lambda takes exactly one key
    assert (info.value.code, info.value.status_code) == ("global/invalid-parameters", 400)
    assert srv.instances() == []


def test_client_side_validation_names_the_field_and_sends_nothing(
    srv: FakeLambdaServer, client: LambdaCloudClient
) -> None:
    with pytest.raises(InvalidParametersError, match="name"):
        client.launch("us-west-1", "gpu_1x_a10", ["k"], name="n" * 65)
    with pytest.raises(InvalidParametersError, match="ssh_key_names"):
        client.launch("us-west-1", "gpu_1x_a10", [])
    with pytest.raises(InvalidParametersError, match="instance_id"):
        client.instance("../ssh-keys")
    with pytest.raises(InvalidParametersError, match="instance_ids"):
        client.terminate([])
    assert srv.count_requests() == 0


def test_capacity_quota_and_region_errors(keyed: LambdaCloudClient, srv: FakeLambdaServer) -> None:
    srv.set_capacity("gpu_8x_h100_sxm5", "us-west-3", 0)
    with pytest.raises(InsufficientCapacityError) as info:
        keyed.launch("us-west-3", "gpu_8x_h100_sxm5", "laptop")
    assert info.value.code == "instance-operations/launch/insufficient-capacity"
    assert srv.count_requests("GET", "/instances") == 0  # a definite refusal needs no reconciling

    srv.add_file_system("far", "us-east-1")
    with pytest.raises(FileSystemInWrongRegionError):
        keyed.launch("us-west-1", "gpu_1x_a10", "laptop", file_system_names=["far"])

    srv.max_instances = 1
    keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    with pytest.raises(QuotaExceededError) as quota:
        keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert quota.value.code == "global/quota-exceeded"
    assert len(srv.instances()) == 1


def test_rate_limit_error_after_retries_run_out(srv: FakeLambdaServer) -> None:
    srv.inject("rate_limit", times=5, retry_after_s=1)
    with make_client(srv, max_retries=1) as c, pytest.raises(RateLimitError) as info:
        c.ssh_keys()
    err = info.value
    assert err.status_code == 429 and err.retry_after_s == 1
    assert "429 Too Many Requests" not in str(err)  # raw proxy text is not shown
    assert srv.count_requests("GET", "/ssh-keys") == 2


def test_provider_error_after_retries_run_out(srv: FakeLambdaServer) -> None:
    srv.inject("server_error", times=5)
    with make_client(srv, max_retries=2) as c, pytest.raises(ProviderError) as info:
        c.instances()
    assert info.value.code == "provider/internal-unavailable" and info.value.status_code == 500
    assert info.value.outcome_unknown
    assert srv.count_requests("GET", "/instances") == 3


def _response(
    status: int, body: Any = None, text: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    if text is None:
        return httpx.Response(status, json=body, headers=headers)
    return httpx.Response(status, text=text, headers={"Content-Type": "text/plain", **(headers or {})})


@pytest.mark.parametrize(
    ("response", "cls"),
    [
        # The message says one thing, the code another: the code wins.
        (
            _response(400, {"error": {"code": "global/quota-exceeded", "message": "Not enough capacity"}}),
            QuotaExceededError,
        ),
        (
            _response(
                400,
                {"error": {"code": "instance-operations/launch/insufficient-capacity", "message": "Quota exceeded."}},
            ),
            InsufficientCapacityError,
        ),
        (
            _response(401, {"error": {"code": "global/account-inactive", "message": "API key was invalid"}}),
            AccountInactiveError,
        ),
        (_response(400, {"error": {"code": "provider/quota", "message": "x"}}), ProviderError),
        # No (known) code: the status decides.
        (_response(404, {"error": {"message": "gone"}}), NotFoundError),
        (_response(400, {"error": {"code": "global/brand-new", "message": "x"}}), InvalidParametersError),
        (_response(502, text="<html>Bad gateway</html>"), ProviderError),
        (_response(429, text="slow down", headers={"Retry-After": "7"}), RateLimitError),
        (_response(418, text="teapot"), LambdaCloudError),
    ],
)
def test_error_class_comes_from_code_then_status(response: httpx.Response, cls: type[LambdaCloudError]) -> None:
    err = error_from_response(response)
    assert type(err) is cls
    assert err.status_code == response.status_code
    assert str(err)  # always something to show
    if response.headers.get("Content-Type", "").startswith("text/"):
        assert response.text not in str(err)


def test_retry_after_http_date_is_understood() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    err = error_from_response(_response(429, text="x", headers={"Retry-After": format_datetime(when, usegmt=True)}))
    assert err.retry_after_s is not None and 25 <= err.retry_after_s <= 31


def test_server_text_echoing_the_key_is_scrubbed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"code": "global/invalid-parameters", "message": f"bad key {KEY}"}})

    with (
        LambdaCloudClient(KEY, transport=httpx.MockTransport(handler), **FAST) as c,
        pytest.raises(InvalidParametersError) as info,
    ):
        c.instances()
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_malformed_reply_names_the_field() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [{"id": "abc", "ssh_key_names": [], "file_system_names": []}]})

    with (
        LambdaCloudClient(KEY, transport=httpx.MockTransport(handler), **FAST) as c,
        pytest.raises(UnexpectedResponseError) as info,
    ):
        c.instances()
    assert "data[0].status" in str(info.value)


# --------------------------------------------------------------------------- retries and failures


def test_429_storm_is_retried_honouring_retry_after(srv: FakeLambdaServer, client: LambdaCloudClient) -> None:
    srv.inject("rate_limit", times=2, retry_after_s=1, path_prefix="/instances")
    started = time.monotonic()
    assert client.instances() == []
    elapsed = time.monotonic() - started
    # Backoff alone would wait ~0.03 s; the two Retry-After: 1 answers require 2 s.
    assert elapsed >= 2.0
    assert srv.count_requests("GET", "/instances") == 3


def test_5xx_and_dropped_connections_are_retried_for_reads(srv: FakeLambdaServer, client: LambdaCloudClient) -> None:
    srv.inject("server_error", times=2, path_prefix="/ssh-keys")
    srv.inject("drop", times=1, path_prefix="/ssh-keys")
    assert client.ssh_keys() == []
    assert srv.count_requests("GET", "/ssh-keys") == 4


def test_hanging_server_gives_timeout_error_in_bounded_time(srv: FakeLambdaServer) -> None:
    srv.inject("slow", times=10, delay_s=5.0)
    with make_client(srv, timeout=httpx.Timeout(0.2), max_retries=2) as c:
        started = time.monotonic()
        with pytest.raises(LambdaTimeoutError) as info:
            c.instance_types()
        elapsed = time.monotonic() - started
    assert info.value.outcome_unknown  # sent, then no answer
    assert isinstance(info.value, LambdaConnectionError)
    assert srv.count_requests("GET", "/instance-types") == 3
    assert elapsed < 2.5  # 3 attempts x 0.2 s + tiny backoff, far below the 5 s hang


def test_retries_stop_at_max_elapsed_s(srv: FakeLambdaServer) -> None:
    srv.inject("slow", times=50, delay_s=5.0)
    with make_client(srv, timeout=httpx.Timeout(0.2), max_retries=20, max_elapsed_s=0.5) as c:
        started = time.monotonic()
        with pytest.raises(LambdaTimeoutError):
            c.ssh_keys()
        elapsed = time.monotonic() - started
    assert 2 <= srv.count_requests("GET", "/ssh-keys") <= 4  # 20 retries allowed, time ran out first
    assert elapsed < 2.0


def test_long_retry_after_is_not_waited_for(srv: FakeLambdaServer) -> None:
    srv.inject("rate_limit", times=3, retry_after_s=30)
    with make_client(srv, max_retry_after_s=5.0) as c:
        started = time.monotonic()
        with pytest.raises(RateLimitError) as info:
            c.instances()
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after_s == 30 and "30 s" in str(info.value)
    assert srv.count_requests("GET", "/instances") == 1


def test_refused_connection_is_connection_error(srv: FakeLambdaServer) -> None:
    port = _free_port()
    with (
        LambdaCloudClient(KEY, base_url=f"http://127.0.0.1:{port}/api/v1", **{**FAST, "max_retries": 1}) as c,
        pytest.raises(LambdaConnectionError) as info,
    ):
        c.instances()
    assert not isinstance(info.value, LambdaTimeoutError)
    assert not info.value.outcome_unknown  # never connected, so nothing was sent
    assert "connection" in str(info.value).lower()


# --------------------------------------------------------------------------- ambiguous launches


def test_launch_reply_lost_after_launch_is_reconciled_without_second_launch(
    srv: FakeLambdaServer, keyed: LambdaCloudClient
) -> None:
    srv.inject("launch_then_drop")
    result = keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert result.reconciled
    (only,) = srv.instances()
    assert result.instance_ids == (only["id"],) and only["name"] == result.name
    assert srv.count_requests("POST", "/instance-operations/launch") == 1


def test_launch_dropped_before_processing_says_it_did_not_happen(
    srv: FakeLambdaServer, keyed: LambdaCloudClient
) -> None:
    srv.inject("drop", path_prefix="/instance-operations/launch")
    with pytest.raises(LaunchNotStartedError) as info:
        keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    # not seen, but never "nothing was started": a machine listed later would bill
    assert "is not seen" in str(info.value) and info.value.outcome_unknown
    assert "Nothing was started" not in str(info.value) and "try again" not in (info.value.suggestion or "")
    assert isinstance(info.value.__cause__, LambdaConnectionError)
    assert srv.instances() == []
    assert srv.count_requests("POST", "/instance-operations/launch") == 1
    assert srv.count_requests("GET", "/instances") == FAST["reconcile_checks"]


def test_launch_5xx_is_not_retried(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    srv.inject("server_error", path_prefix="/instance-operations/launch")
    with pytest.raises(LaunchNotStartedError) as info:
        keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert isinstance(info.value.__cause__, ProviderError)
    assert srv.count_requests("POST", "/instance-operations/launch") == 1
    assert srv.instances() == []


def test_slow_launch_that_completes_after_the_timeout_is_found(srv: FakeLambdaServer) -> None:
    srv.add_ssh_key("laptop", PUBLIC_KEY)
    srv.inject("slow", delay_s=0.6, path_prefix="/instance-operations/launch")
    with make_client(srv, timeout=httpx.Timeout(0.2), reconcile_checks=15, reconcile_interval_s=0.2) as c:
        result = c.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert result.reconciled
    assert [i["id"] for i in srv.instances()] == list(result.instance_ids)
    assert srv.count_requests("POST", "/instance-operations/launch") == 1


def test_a_launch_created_after_the_timeout_is_looked_for_at_least_as_long_as_the_timeout(
    srv: FakeLambdaServer,
) -> None:
    # The server answers (and creates the machine) 0.5 s after a 0.3 s timeout; three quick looks
    # over 0.1 s would miss it and say it did not start.  The window (the read timeout) finds it.
    srv.add_ssh_key("laptop", PUBLIC_KEY)
    srv.inject("slow", delay_s=0.5, path_prefix="/instance-operations/launch")
    with make_client(srv, timeout=httpx.Timeout(0.3), reconcile_interval_s=0.05, reconcile_window_s=None) as c:
        result = c.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert result.reconciled and [i["id"] for i in srv.instances()] == list(result.instance_ids)
    assert srv.count_requests("POST", "/instance-operations/launch") == 1


def test_reconcile_ignores_an_older_instance_with_the_same_name(
    srv: FakeLambdaServer, keyed: LambdaCloudClient
) -> None:
    older = keyed.launch("us-west-1", "gpu_1x_a10", "laptop", name="nightly")
    srv.inject("drop", path_prefix="/instance-operations/launch")
    with pytest.raises(LaunchNotStartedError):
        keyed.launch("us-west-1", "gpu_1x_a10", "laptop", name="nightly")
    assert [i["id"] for i in srv.instances()] == list(older.instance_ids)


def test_launch_outcome_unknown_when_the_list_cannot_be_read(srv: FakeLambdaServer) -> None:
    srv.add_ssh_key("laptop", PUBLIC_KEY)
    srv.inject("drop", path_prefix="/instance-operations/launch")
    srv.inject("server_error", times=100, path_prefix="/instances", method="GET")
    with make_client(srv, max_retries=1) as c, pytest.raises(LaunchOutcomeUnknownError) as info:
        c.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert info.value.outcome_unknown
    assert "not known" in str(info.value)
    assert srv.count_requests("POST", "/instance-operations/launch") == 1


def test_launch_is_retried_after_an_edge_429(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    srv.inject("rate_limit", retry_after_s=1, path_prefix="/instance-operations/launch")
    started = time.monotonic()
    result = keyed.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert time.monotonic() - started >= 1.0
    assert not result.reconciled
    assert srv.count_requests("POST", "/instance-operations/launch") == 2
    assert len(srv.instances()) == 1


# --------------------------------------------------------------------------- terminate / restart / delete


def test_terminate_is_retried_when_its_reply_is_lost(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    (inst_id,) = keyed.launch("us-west-1", "gpu_1x_a10", "laptop").instance_ids
    srv.inject("process_then_drop", path_prefix="/instance-operations/terminate")
    result = keyed.terminate([inst_id])
    assert [(i.id, i.status) for i in result] == [(inst_id, "terminating")]
    assert srv.count_requests("POST", "/instance-operations/terminate") == 2


def test_terminate_retry_that_finds_the_instance_gone_is_success(srv: FakeLambdaServer) -> None:
    srv.terminate_s = 0.0  # terminated at once, so the retry answers "unknown instance"
    srv.add_ssh_key("laptop", PUBLIC_KEY)
    with make_client(srv) as c:
        (inst_id,) = c.launch("us-west-1", "gpu_1x_a10", "laptop").instance_ids
        srv.inject("process_then_drop", path_prefix="/instance-operations/terminate")
        assert c.terminate(inst_id) == []
        assert c.instances() == []
    assert srv.count_requests("POST", "/instance-operations/terminate") == 2


def test_terminate_of_unknown_instance_still_raises(client: LambdaCloudClient) -> None:
    with pytest.raises(NotFoundError):
        client.terminate("0123abcd")


def test_restart_is_not_retried_after_an_ambiguous_failure(srv: FakeLambdaServer, keyed: LambdaCloudClient) -> None:
    (inst_id,) = keyed.launch("us-west-1", "gpu_1x_a10", "laptop").instance_ids
    srv.advance(61)
    srv.inject("process_then_drop", path_prefix="/instance-operations/restart")
    with pytest.raises(LambdaConnectionError) as info:
        keyed.restart(inst_id)
    assert info.value.outcome_unknown and "restart may or may not" in str(info.value)
    assert srv.count_requests("POST", "/instance-operations/restart") == 1


def test_delete_ssh_key_retry_after_lost_reply_is_success(srv: FakeLambdaServer, client: LambdaCloudClient) -> None:
    key = client.add_ssh_key("temp", PUBLIC_KEY)
    srv.inject("process_then_drop", method="DELETE")
    client.delete_ssh_key(key.id)
    assert client.ssh_keys() == []
    assert srv.count_requests("DELETE", "/ssh-keys") == 2


# --------------------------------------------------------------------------- pacing


def test_requests_are_paced(srv: FakeLambdaServer) -> None:
    interval = 0.05
    with make_client(srv, min_request_interval_s=interval) as c:
        started = time.monotonic()
        for _ in range(7):
            c.ssh_keys()
        elapsed = time.monotonic() - started
    assert elapsed >= 6 * interval  # first request at once, then one per interval


def test_pacing_holds_across_threads_and_clients_of_one_key(srv: FakeLambdaServer) -> None:
    interval = 0.04
    clients = [make_client(srv, min_request_interval_s=interval) for _ in range(2)]
    errors: list[BaseException] = []

    def work(c: LambdaCloudClient) -> None:
        try:
            for _ in range(3):
                c.instances()
        except BaseException as exc:  # noqa: BLE001 - any failure in a thread is collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(clients[n % 2],)) for n in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    for c in clients:
        c.close()
    assert not errors
    arrivals = sorted(r.at_s for r in srv.requests)
    assert len(arrivals) == 12
    assert elapsed >= 11 * interval
    # Seen from the server too (with slack for loopback latency differences).
    assert arrivals[-1] - arrivals[0] >= 11 * interval * 0.75


def test_launches_are_paced_separately(srv: FakeLambdaServer) -> None:
    srv.add_ssh_key("laptop", PUBLIC_KEY)
    with make_client(srv, min_launch_interval_s=0.5) as c:
        started = time.monotonic()
        c.launch("us-west-1", "gpu_1x_a10", "laptop")
        c.launch("us-west-1", "gpu_1x_a10", "laptop")
        launches_s = time.monotonic() - started
        started = time.monotonic()
        c.instances()
        c.instances()
        reads_s = time.monotonic() - started
    assert launches_s >= 0.5
    assert reads_s < 0.5  # reads are not held to the launch interval


# --------------------------------------------------------------------------- the key stays secret


def test_key_never_reaches_logs_or_exception_text(srv: FakeLambdaServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "secret_wrong_key_for_logs_7777abcd"
    caplog.set_level(logging.DEBUG)
    own_logger = logging.getLogger("tests.lambda")
    with make_client(srv, key=secret) as c:
        with pytest.raises(AuthenticationError) as info:
            c.instances()
        own_logger.debug("listing instances failed: %s (%r)", info.value, info.value, exc_info=info.value)
        srv.inject("launch_then_drop")
        with pytest.raises(LambdaCloudError) as launch_info:  # 401 while reconciling
            c.launch("us-west-1", "gpu_1x_a10", "laptop")
        own_logger.debug("launch failed", exc_info=launch_info.value)
        shown = [repr(c), str(c.__dict__)]
    for err in (info.value, launch_info.value):
        shown += [str(err), repr(err), "".join(traceback.format_exception(err))]
    assert any(r.name.startswith("httpx") or r.name.startswith("httpcore") for r in caplog.records), (
        "debug logs captured"
    )
    assert any(r.name == "fedopt_core.cloud.lambda_cloud" for r in caplog.records)
    for text in [caplog.text, *shown, *(r.getMessage() for r in caplog.records)]:
        assert secret not in text
        assert json.dumps(secret) not in text
    assert "••••abcd" in repr(c)


# --------------------------------------------------------------------------- one deadline per call


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """A loopback server that answers 200 at once, then sends its body one byte every 0.1 s: no
    single read ever waits long, so a per-read timeout never fires."""
    import http.server

    body = json.dumps({"data": [{"name": "x" * 200}]}).encode()

    class Drip(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_server_dripping_bytes_is_cut_off_at_the_call_deadline(dripping_server: str) -> None:
    client = LambdaCloudClient(
        KEY, base_url=dripping_server, timeout=httpx.Timeout(2.0), call_deadline_s=1.0, max_retries=0,
        min_request_interval_s=0,
    )  # fmt: skip
    started = time.monotonic()
    with client, pytest.raises(LambdaTimeoutError):
        client.ssh_keys()
    # the whole body would take 2.1 s at one byte per 0.1 s; the deadline ends the call at about 1 s
    assert time.monotonic() - started < 1.8


def test_the_call_deadline_defaults_to_the_read_timeout() -> None:
    with LambdaCloudClient(KEY, timeout=httpx.Timeout(connect=1.0, read=7.0, write=1.0, pool=1.0)) as c:
        assert c.call_deadline_s == 7.0
