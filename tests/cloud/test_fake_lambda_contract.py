"""The fake Lambda server answers as the Lambda Cloud API v1 contract says.

Every response of every endpoint the fake implements (success and each documented error) is
sent over real HTTP on loopback and validated with openapi-core against
/work/shared/lambda/openapi.json; the requests are validated too when they are meant to be
valid.  Statuses the contract does not list (429 from the edge proxy, 5xx, some 400s) are
checked against the envelope the document's description gives.  The document missing is a
failure, not a skip.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from fedopt_core.testing.fake_lambda import FakeLambdaServer

CONTRACT_PATH = Path("/work/shared/lambda/openapi.json")
KEY = "secret_contract_0123456789abcdef"
INACTIVE_KEY = "secret_inactive_0123456789abcdef"

# The operations the fake implements (postInstance, file system writes, images, firewall and
# audit endpoints are not).
IMPLEMENTED_OPERATIONS = {
    "listInstanceTypes",
    "listInstances",
    "getInstance",
    "launchInstance",
    "restartInstance",
    "terminateInstance",
    "listSSHKeys",
    "addSSHKey",
    "deleteSSHKey",
    "listFilesystems",
}

# From info.description of the contract ("Error responses"): the shape of every error body.
GENERIC_ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "minLength": 1},
                "message": {"type": "string"},
                "suggestion": {"type": "string"},
            },
        }
    },
}


# --------------------------------------------------------------------------- contract loading


def _load_contract(path: Path = CONTRACT_PATH) -> dict[str, Any]:
    if not path.is_file():
        pytest.fail(f"the Lambda Cloud contract {path} is missing: the fake cannot be checked against it")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return _load_contract()


@pytest.fixture(scope="module")
def openapi(contract: dict[str, Any]) -> OpenAPI:
    spec = copy.deepcopy(contract)
    # The document names only the production hosts; add loopback so paths resolve.
    spec["servers"] = [
        {"url": "http://127.0.0.1:{port}/", "variables": {"port": {"default": "80"}}},
        *spec.get("servers", []),
    ]
    # Skip re-validating the document itself (3 s); it is Lambda's published contract.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _operation_statuses(contract: dict[str, Any]) -> dict[str, set[int]]:
    result: dict[str, set[int]] = {}
    for methods in contract["paths"].values():
        for operation in methods.values():
            if isinstance(operation, dict) and "operationId" in operation:
                result[operation["operationId"]] = {int(s) for s in operation.get("responses", {})}
    return result


# --------------------------------------------------------------------------- openapi-core adapters


class _Request:
    """openapi_core.protocols.Request over an ``httpx.Request``."""

    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        self.host_url = f"{url.scheme}://{url.host}:{url.port}"
        self.path = url.path
        self.method = request.method.lower()
        content = request.content
        self.body = content if content else None
        self.content_type = request.headers.get("Content-Type", "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.data = response.content
        self.content_type = response.headers.get("Content-Type", "").lower()
        self.headers = Headers(list(response.headers.items()))


# --------------------------------------------------------------------------- scenarios


class Ctx:
    """One fresh fake server plus helpers to reach a state and make one raw request."""

    def __init__(self, srv: FakeLambdaServer) -> None:
        self.srv = srv
        # Plain HTTP on loopback: no TLS context needed (building one costs ~0.1 s per client).
        self.http = httpx.Client(base_url=srv.base_url + "/", timeout=httpx.Timeout(5.0), verify=False)

    def call(
        self, method: str, path: str, *, key: str | None = KEY, auth: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {}
        if auth is not None:
            headers["Authorization"] = auth
        elif key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.http.request(method, path.lstrip("/"), headers=headers, **kwargs)

    def ssh_key(self, name: str = "main") -> dict[str, Any]:
        return self.srv.add_ssh_key(name)

    def launch(
        self, *, region: str = "us-west-1", type_name: str = "gpu_1x_a10", name: str = "job", **extra: Any
    ) -> str:
        if not any(k["name"] == "main" for k in self.call("GET", "ssh-keys").json()["data"]):
            self.ssh_key("main")
        body = {
            "region_name": region,
            "instance_type_name": type_name,
            "ssh_key_names": ["main"],
            "name": name,
            **extra,
        }
        response = self.call("POST", "instance-operations/launch", json=body)
        assert response.status_code == 200, response.text
        return response.json()["data"]["instance_ids"][0]


@dataclass(frozen=True)
class Scenario:
    name: str
    operation: str  # operationId in the contract
    status: int
    run: Callable[[Ctx], httpx.Response]
    code: str | None = None  # the error code expected (beyond what the schema pins)
    request_valid: bool = True  # False when the scenario sends a deliberately invalid request
    documented: bool = True  # False for statuses the contract does not list for the operation
    server_kwargs: tuple[tuple[str, Any], ...] = ()


def _launch_body(**overrides: Any) -> dict[str, Any]:
    body = {"region_name": "us-west-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["main"], "name": "x"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _launch_with(ctx: Ctx, **overrides: Any) -> httpx.Response:
    ctx.ssh_key("main")
    return ctx.call("POST", "instance-operations/launch", json=_launch_body(**overrides))


def _instances_in_every_state(ctx: Ctx) -> httpx.Response:
    ctx.srv.add_file_system("shared", "us-west-1")
    ctx.launch(name="active-one", file_system_names=["shared"])
    ctx.srv.advance(61)
    ctx.launch(name="booting-one")
    doomed = ctx.launch(name="terminating-one")
    ctx.srv.advance(61)
    assert ctx.call("POST", "instance-operations/terminate", json={"instance_ids": [doomed]}).status_code == 200
    response = ctx.call("GET", "instances")
    statuses = sorted(i["status"] for i in response.json()["data"])
    assert statuses == ["active", "active", "terminating"], statuses
    return response


def _terminated_instance(ctx: Ctx) -> httpx.Response:
    inst = ctx.launch()
    ctx.call("POST", "instance-operations/terminate", json={"instance_ids": [inst]})
    ctx.srv.advance(61)
    response = ctx.call("GET", f"instances/{inst}")
    assert response.json()["data"]["status"] == "terminated"
    assert inst not in [i["id"] for i in ctx.call("GET", "instances").json()["data"]]
    return response


def _restart_active(ctx: Ctx) -> httpx.Response:
    inst = ctx.launch()
    ctx.srv.advance(61)
    return ctx.call("POST", "instance-operations/restart", json={"instance_ids": [inst]})


def _terminate_twice(ctx: Ctx) -> httpx.Response:
    inst = ctx.launch()
    ctx.call("POST", "instance-operations/terminate", json={"instance_ids": [inst]})
    response = ctx.call("POST", "instance-operations/terminate", json={"instance_ids": [inst]})
    assert response.json()["data"]["terminated_instances"][0]["status"] == "terminating"
    return response


def _capacity_gone(ctx: Ctx) -> httpx.Response:
    ctx.srv.set_capacity("gpu_1x_a10", "us-west-1", 1)
    ctx.launch(name="takes-the-last")
    return ctx.call("POST", "instance-operations/launch", json=_launch_body())


def _quota_full(ctx: Ctx) -> httpx.Response:
    ctx.launch(name="one")
    ctx.launch(name="two")
    return ctx.call("POST", "instance-operations/launch", json=_launch_body())


def _fs_wrong_region(ctx: Ctx) -> httpx.Response:
    ctx.srv.add_file_system("far", "us-east-1")
    return _launch_with(ctx, file_system_names=["far"])


def _launch_with_fs(ctx: Ctx) -> httpx.Response:
    ctx.srv.add_file_system("near", "us-west-1")
    return _launch_with(ctx, file_system_names=["near"])


def _file_systems(ctx: Ctx) -> httpx.Response:
    ctx.srv.add_file_system("used", "us-west-1", bytes_used=1234)
    ctx.srv.add_file_system("idle", "us-east-1")
    ctx.launch(file_system_names=["used"])
    response = ctx.call("GET", "file-systems")
    in_use = {f["name"]: f["is_in_use"] for f in response.json()["data"]}
    assert in_use == {"used": True, "idle": False}
    return response


def _delete_key(ctx: Ctx) -> httpx.Response:
    key = ctx.ssh_key("gone")
    response = ctx.call("DELETE", f"ssh-keys/{key['id']}")
    assert ctx.call("GET", "ssh-keys").json()["data"] == []
    return response


def _generated_key(ctx: Ctx) -> httpx.Response:
    response = ctx.call("POST", "ssh-keys", json={"name": "generated"})
    assert response.json()["data"]["private_key"].startswith("-----BEGIN")
    return response


def _uploaded_key(ctx: Ctx) -> httpx.Response:
    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICN+lJwsONkwrdsSnQsu1ydUkIuIg5oOC+Eslvmtt60T me@host"
    response = ctx.call("POST", "ssh-keys", json={"name": "mine", "public_key": public})
    assert "private_key" not in response.json()["data"]
    assert response.json()["data"]["public_key"] == public
    return response


def _duplicate_key(ctx: Ctx) -> httpx.Response:
    ctx.ssh_key("twin")
    return ctx.call("POST", "ssh-keys", json={"name": "twin"})


def _list_types_with_capacity(ctx: Ctx) -> httpx.Response:
    ctx.srv.set_capacity("gpu_1x_a10", "us-west-1", 0)
    response = ctx.call("GET", "instance-types")
    regions = [r["name"] for r in response.json()["data"]["gpu_1x_a10"]["regions_with_capacity_available"]]
    assert "us-west-1" not in regions and regions
    return response


def _basic(value: str) -> str:
    return f"Basic {value}"


def _auth_variants(op: str, method: str, path: str, **kwargs: Any) -> list[Scenario]:
    return [
        Scenario(
            f"{op}-401",
            op,
            401,
            lambda c: c.call(method, path, key="secret_wrong_0000000000", **kwargs),
            "global/invalid-api-key",
        ),
        Scenario(
            f"{op}-403", op, 403, lambda c: c.call(method, path, key=INACTIVE_KEY, **kwargs), "global/account-inactive"
        ),
    ]


SCENARIOS: list[Scenario] = [
    # instance types
    Scenario("types-200", "listInstanceTypes", 200, _list_types_with_capacity),
    *_auth_variants("listInstanceTypes", "GET", "instance-types"),
    Scenario(
        "types-401-no-header",
        "listInstanceTypes",
        401,
        lambda c: c.call("GET", "instance-types", key=None),
        "global/invalid-api-key",
        request_valid=False,
    ),
    # instances
    Scenario("instances-200-empty", "listInstances", 200, lambda c: c.call("GET", "instances")),
    Scenario("instances-200-states", "listInstances", 200, _instances_in_every_state),
    Scenario(
        "instances-200-basic-b64",
        "listInstances",
        200,
        lambda c: c.call("GET", "instances", auth=_basic(base64.b64encode(f"{KEY}:".encode()).decode())),
    ),
    Scenario("instances-200-basic-raw", "listInstances", 200, lambda c: c.call("GET", "instances", auth=_basic(KEY))),
    *_auth_variants("listInstances", "GET", "instances"),
    Scenario("instance-200-booting", "getInstance", 200, lambda c: c.call("GET", f"instances/{c.launch()}")),
    Scenario("instance-200-terminated", "getInstance", 200, _terminated_instance),
    Scenario(
        "instance-404",
        "getInstance",
        404,
        lambda c: c.call("GET", "instances/0123abcd"),
        "global/object-does-not-exist",
    ),
    *_auth_variants("getInstance", "GET", "instances/0123abcd"),
    # launch
    Scenario("launch-200", "launchInstance", 200, lambda c: _launch_with(c)),
    Scenario("launch-200-file-system", "launchInstance", 200, _launch_with_fs),
    Scenario(
        "launch-400-missing-keys",
        "launchInstance",
        400,
        lambda c: _launch_with(c, ssh_key_names=None),
        "global/invalid-parameters",
        request_valid=False,
    ),
    Scenario(
        "launch-400-two-keys",
        "launchInstance",
        400,
        lambda c: _launch_with(c, ssh_key_names=["main", "main"]),
        "global/invalid-parameters",
    ),
    Scenario(
        "launch-400-bad-region",
        "launchInstance",
        400,
        lambda c: _launch_with(c, region_name="mars-north-1"),
        "global/invalid-parameters",
        request_valid=False,
    ),
    Scenario(
        "launch-400-name-too-long",
        "launchInstance",
        400,
        lambda c: _launch_with(c, name="n" * 65),
        "global/invalid-parameters",
        request_valid=False,
    ),
    Scenario(
        "launch-400-capacity", "launchInstance", 400, _capacity_gone, "instance-operations/launch/insufficient-capacity"
    ),
    Scenario(
        "launch-400-quota",
        "launchInstance",
        400,
        _quota_full,
        "global/quota-exceeded",
        server_kwargs=(("max_instances", 2),),
    ),
    Scenario(
        "launch-400-fs-region",
        "launchInstance",
        400,
        _fs_wrong_region,
        "instance-operations/launch/file-system-in-wrong-region",
    ),
    Scenario(
        "launch-404-type",
        "launchInstance",
        404,
        lambda c: _launch_with(c, instance_type_name="gpu_9x_imaginary"),
        "global/object-does-not-exist",
    ),
    Scenario(
        "launch-404-ssh-key",
        "launchInstance",
        404,
        lambda c: c.call("POST", "instance-operations/launch", json=_launch_body(ssh_key_names=["nobody"])),
        "global/object-does-not-exist",
    ),
    Scenario(
        "launch-404-file-system",
        "launchInstance",
        404,
        lambda c: _launch_with(c, file_system_names=["absent"]),
        "global/object-does-not-exist",
    ),
    *_auth_variants("launchInstance", "POST", "instance-operations/launch", json=_launch_body()),
    # restart / terminate
    Scenario("restart-200", "restartInstance", 200, _restart_active),
    Scenario(
        "restart-404",
        "restartInstance",
        404,
        lambda c: c.call("POST", "instance-operations/restart", json={"instance_ids": ["0123abcd"]}),
        "global/object-does-not-exist",
    ),
    *_auth_variants("restartInstance", "POST", "instance-operations/restart", json={"instance_ids": ["0123abcd"]}),
    Scenario(
        "restart-400-booting",
        "restartInstance",
        400,
        lambda c: c.call("POST", "instance-operations/restart", json={"instance_ids": [c.launch()]}),
        "global/invalid-parameters",
        documented=False,
    ),
    Scenario(
        "terminate-200",
        "terminateInstance",
        200,
        lambda c: c.call("POST", "instance-operations/terminate", json={"instance_ids": [c.launch()]}),
    ),
    Scenario("terminate-200-twice", "terminateInstance", 200, _terminate_twice),
    Scenario(
        "terminate-404",
        "terminateInstance",
        404,
        lambda c: c.call("POST", "instance-operations/terminate", json={"instance_ids": ["0123abcd"]}),
        "global/object-does-not-exist",
    ),
    *_auth_variants("terminateInstance", "POST", "instance-operations/terminate", json={"instance_ids": ["0123abcd"]}),
    Scenario(
        "terminate-400-empty",
        "terminateInstance",
        400,
        lambda c: c.call("POST", "instance-operations/terminate", json={"instance_ids": []}),
        "global/invalid-parameters",
        documented=False,
    ),
    # ssh keys
    Scenario("ssh-keys-200", "listSSHKeys", 200, lambda c: (c.ssh_key("a"), c.call("GET", "ssh-keys"))[1]),
    *_auth_variants("listSSHKeys", "GET", "ssh-keys"),
    Scenario("add-key-200-generated", "addSSHKey", 200, _generated_key),
    Scenario("add-key-200-uploaded", "addSSHKey", 200, _uploaded_key),
    Scenario("add-key-400-duplicate", "addSSHKey", 400, _duplicate_key, "global/invalid-parameters"),
    Scenario(
        "add-key-400-bad-public-key",
        "addSSHKey",
        400,
        lambda c: c.call("POST", "ssh-keys", json={"name": "bad", "public_key": "not a key"}),
        "global/invalid-parameters",
    ),
    Scenario(
        "add-key-400-empty-name",
        "addSSHKey",
        400,
        lambda c: c.call("POST", "ssh-keys", json={"name": ""}),
        "global/invalid-parameters",
        request_valid=False,
    ),
    *_auth_variants("addSSHKey", "POST", "ssh-keys", json={"name": "k"}),
    Scenario("delete-key-200", "deleteSSHKey", 200, _delete_key),
    Scenario(
        "delete-key-400-unknown",
        "deleteSSHKey",
        400,
        lambda c: c.call("DELETE", "ssh-keys/0123abcd"),
        "global/invalid-parameters",
    ),
    *_auth_variants("deleteSSHKey", "DELETE", "ssh-keys/0123abcd"),
    # file systems
    Scenario("file-systems-200", "listFilesystems", 200, _file_systems),
    *_auth_variants("listFilesystems", "GET", "file-systems"),
    # faults and the edge proxy (not in the contract's response lists)
    Scenario(
        "instances-500-provider",
        "listInstances",
        500,
        lambda c: (c.srv.inject("server_error"), c.call("GET", "instances"))[1],
        "provider/internal-unavailable",
        documented=False,
    ),
    Scenario(
        "launch-503-provider",
        "launchInstance",
        503,
        lambda c: (c.srv.inject("server_error", status=503), _launch_with(c))[1],
        "provider/internal-unavailable",
        documented=False,
    ),
]

RATE_LIMIT_SCENARIOS = ["injected", "bucket"]


@pytest.fixture
def ctx_factory():
    servers: list[FakeLambdaServer] = []
    contexts: list[Ctx] = []

    def make(**kwargs: Any) -> Ctx:
        srv = FakeLambdaServer(api_keys={KEY}, inactive_api_keys={INACTIVE_KEY}, **kwargs).start()
        servers.append(srv)
        contexts.append(Ctx(srv))
        return contexts[-1]

    yield make
    for c in contexts:
        c.http.close()
    for s in servers:
        s.stop()


def _check_against_contract(openapi: OpenAPI, scenario: Scenario, response: httpx.Response) -> None:
    request = _Request(response.request)
    if scenario.request_valid:
        openapi.validate_request(request)
    if scenario.documented:
        openapi.validate_response(request, _Response(response))
    else:
        assert response.headers["Content-Type"].startswith("application/json")
        jsonschema.validate(response.json(), GENERIC_ERROR_ENVELOPE)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fake_response_matches_contract(scenario: Scenario, openapi: OpenAPI, ctx_factory) -> None:
    ctx = ctx_factory(**dict(scenario.server_kwargs))
    response = scenario.run(ctx)
    assert response.status_code == scenario.status, response.text
    _check_against_contract(openapi, scenario, response)
    if scenario.code is not None:
        assert response.json()["error"]["code"] == scenario.code
    if response.status_code >= 400:
        assert "data" not in response.json()


def test_scenarios_cover_every_documented_response_of_the_fake(contract: dict[str, Any]) -> None:
    declared = _operation_statuses(contract)
    assert declared.keys() >= IMPLEMENTED_OPERATIONS
    covered = {(s.operation, s.status) for s in SCENARIOS if s.documented}
    missing = {(op, st) for op in IMPLEMENTED_OPERATIONS for st in declared[op]} - covered
    assert not missing, f"documented responses with no scenario: {sorted(missing)}"
    for s in SCENARIOS:
        # A scenario marked documented must be one the contract lists, and vice versa.
        assert (s.status in declared[s.operation]) == s.documented, s.name


def test_contract_document_is_the_v1_openapi_31(contract: dict[str, Any]) -> None:
    assert contract["openapi"].startswith("3.1")
    assert contract["info"]["version"].startswith("1.")
    assert "/api/v1/instance-operations/launch" in contract["paths"]


def test_missing_contract_fails_instead_of_skipping(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="absent.json"):
        _load_contract(tmp_path / "absent.json")


@pytest.mark.parametrize("source", RATE_LIMIT_SCENARIOS)
def test_rate_limit_is_plain_text_with_retry_after(source: str, ctx_factory) -> None:
    if source == "injected":
        ctx = ctx_factory()
        ctx.srv.inject("rate_limit", retry_after_s=3)
        response = ctx.call("GET", "instances")
        expected_retry_after = 3
    else:
        ctx = ctx_factory(requests_per_s=0.01, request_burst=2)
        assert [ctx.call("GET", "instances").status_code for _ in range(2)] == [200, 200]
        response = ctx.call("GET", "instances")
        expected_retry_after = 100  # one token per 100 s
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("text/plain")
    with pytest.raises(ValueError):
        response.json()
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    if expected_retry_after is not None:
        assert retry_after == expected_retry_after


def test_bucket_is_per_key_and_refills_with_time(ctx_factory) -> None:
    ctx = ctx_factory(requests_per_s=1.0, request_burst=1)
    assert ctx.call("GET", "instances").status_code == 200
    assert ctx.call("GET", "instances").status_code == 429
    # Another key has its own bucket: it gets past the proxy (and is then refused as inactive).
    assert ctx.call("GET", "instances", key=INACTIVE_KEY).status_code == 403
    ctx.srv.advance(1.5)
    assert ctx.call("GET", "instances").status_code == 200


def test_launch_bucket_limits_launches_only(ctx_factory) -> None:
    ctx = ctx_factory(launches_per_min=5.0, launch_burst=1)
    ctx.launch(name="first")
    second = ctx.call("POST", "instance-operations/launch", json=_launch_body(name="second"))
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) == 12  # 5 per minute -> one token per 12 s
    assert ctx.call("GET", "instances").status_code == 200
    ctx.srv.advance(12.5)
    assert ctx.call("POST", "instance-operations/launch", json=_launch_body(name="third")).status_code == 200


def test_drop_and_launch_then_drop(ctx_factory) -> None:
    ctx = ctx_factory()
    ctx.ssh_key("main")
    ctx.srv.inject("drop", path_prefix="/instance-operations/launch")
    with pytest.raises(httpx.TransportError):
        ctx.call("POST", "instance-operations/launch", json=_launch_body(name="dropped"))
    assert ctx.srv.instances() == []
    ctx.srv.inject("launch_then_drop")
    # launch_then_drop leaves other requests alone.
    assert ctx.call("GET", "instances").status_code == 200
    with pytest.raises(httpx.TransportError):
        ctx.call("POST", "instance-operations/launch", json=_launch_body(name="kept"))
    assert [i["name"] for i in ctx.srv.instances()] == ["kept"]


def test_slow_answers_after_the_delay(ctx_factory) -> None:
    ctx = ctx_factory()
    ctx.srv.inject("slow", delay_s=0.3, path_prefix="/ssh-keys")
    with pytest.raises(httpx.ReadTimeout):
        ctx.call("GET", "ssh-keys", timeout=httpx.Timeout(0.1))
    ctx.srv.inject("slow", delay_s=0.2)
    response = ctx.call("GET", "ssh-keys", timeout=httpx.Timeout(2.0))
    assert response.status_code == 200


def test_catalogue_csv_gives_real_names_and_prices(contract: dict[str, Any], openapi: OpenAPI) -> None:
    import csv

    csv_path = Path("/work/shared/data/lambda_instance_types.csv")
    rows = [r for r in csv.DictReader(csv_path.open()) if r["catalog_version"] == "v8" and r["instance_type"]]
    with (
        FakeLambdaServer(api_keys={KEY}, catalogue_csv=csv_path) as srv,
        httpx.Client(timeout=5.0, verify=False) as http,
    ):
        response = http.get(f"{srv.base_url}/instance-types", headers={"Authorization": f"Bearer {KEY}"})
        openapi.validate_response(_Request(response.request), _Response(response))
        data = response.json()["data"]
    assert set(data) == {r["instance_type"] for r in rows}
    for row in rows:
        assert data[row["instance_type"]]["instance_type"]["price_cents_per_hour"] == round(
            float(row["price_usd_per_hour"]) * 100
        )
    assert data["gpu_8x_h100_sxm5"]["instance_type"]["gpu_description"] == "H100 (80 GB SXM5)"


def test_main_serves_until_interrupted(openapi: OpenAPI) -> None:
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "fedopt_core.testing.fake_lambda", "--port", "0", "--api-key", KEY, "--no-rate-limit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first_line = proc.stdout.readline() if proc.stdout else ""
        assert "http://127.0.0.1:" in first_line, first_line
        base_url = first_line.split(" at ")[1].split()[0]
        assert KEY not in first_line  # a key given on the command line is not echoed
        with httpx.Client(timeout=5.0, verify=False) as http:
            response = http.get(f"{base_url}/instance-types", headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 200
        openapi.validate_response(_Request(response.request), _Response(response))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)  # a loaded CI machine can be slow to schedule the shutdown
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
