"""A fake Lambda Cloud API v1 server on loopback, faithful to the OpenAPI contract (v1.8.3).

One coherent concept, kept whole (about 1,100 lines): the fake mirrors the whole contract of
:mod:`fedopt_core.cloud.lambda_cloud`, endpoint by endpoint, and is checked against the OpenAPI
document as one piece (tests/cloud/test_fake_lambda_contract.py).

Real HTTP (stdlib ``ThreadingHTTPServer`` in a background thread), so clients are tested with
their real transport, timeouts and connection handling::

    with FakeLambdaServer(api_keys={"secret_abc"}, port=0) as srv:
        client = LambdaCloudClient("secret_abc", base_url=srv.base_url)
        srv.advance(61)          # a simulated minute: booting instances become active

What it models (each API key is its own account; capacity is shared by all accounts):

* auth: Bearer or Basic (``<key>`` or base64 ``<key>:``); unknown key -> 401
  ``global/invalid-api-key``; keys in ``inactive_api_keys`` -> 403 ``global/account-inactive``.
* ``GET /instance-types`` with ``regions_with_capacity_available`` from the live capacity table.
* launch: validation (400 ``global/invalid-parameters``), unknown type / SSH key / file system
  (404 ``global/object-does-not-exist``), file system elsewhere (400 ``…/file-system-in-wrong-region``),
  quota (400 ``global/quota-exceeded`` past ``max_instances`` live instances), capacity per
  (type, region) (400 ``…/insufficient-capacity``).  A launch takes one unit of capacity until
  the instance is terminated.
* lifecycle on ``srv.clock``: booting -> active after ``boot_s`` (60 s); restart: active ->
  booting for ``restart_s``; terminate: -> terminating -> terminated after ``terminate_s``.
  Terminated instances leave ``GET /instances``; ``GET /instances/{id}`` still shows them as
  ``terminated`` for ``terminated_retention_s`` (300 s), then 404.
* SSH keys (a generated pair when no public key is given) and file systems (seed them with
  ``add_file_system``).
* rate limits: optional token buckets per key (all requests, and launches) answering 429 with a
  plain-text body and ``Retry-After``, as Lambda's edge proxy does.  Off unless configured.
* faults: ``srv.inject(kind, times=1, path_prefix=None)``; see ``FAULT_KINDS``.

Facts the contract does not settle were chosen here and are approximations: region
descriptions, how long state changes take, the burst sizes of the rate limits, that restart
needs an active instance (its ``actions.restart`` is unavailable otherwise), and the 404 /
400 answers on undocumented cases (unknown route, bad terminate body).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import json
import logging
import math
import re
import secrets
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from fedopt_core.csvfiles import read_table

__all__ = [
    "BUILTIN_INSTANCE_TYPES",
    "FAULT_KINDS",
    "PUBLIC_REGIONS",
    "FakeClock",
    "FakeInstanceType",
    "FakeLambdaServer",
    "RequestRecord",
    "load_instance_types_csv",
    "main",
]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

# PublicRegionCode in the contract, with descriptions (the contract gives only "California, USA"
# for us-west-1; the rest follow Lambda's public region list as far as known).
PUBLIC_REGIONS: dict[str, str] = {
    "europe-central-1": "Germany",
    "asia-south-1": "India",
    "australia-east-1": "Australia",
    "me-west-1": "Israel",
    "asia-northeast-1": "Tokyo, Japan",
    "asia-northeast-2": "Seoul, South Korea",
    "us-east-1": "Virginia, USA",
    "us-west-2": "Arizona, USA",
    "us-west-1": "California, USA",
    "us-south-1": "Texas, USA",
    "us-west-3": "Utah, USA",
    "us-midwest-1": "Illinois, USA",
    "us-east-2": "Washington DC, USA",
    "us-south-2": "North Texas, USA",
    "us-south-3": "Central Texas, USA",
    "us-east-3": "Virginia, USA",
    "us-midwest-2": "Midwest, USA",
}

# kind -> what happens to a matching request
FAULT_KINDS: dict[str, str] = {
    "rate_limit": "429 with a plain-text body and Retry-After (retry_after_s), not processed",
    "server_error": "5xx (status, default 500) JSON error envelope with a provider/ code, not processed",
    "slow": "sleep delay_s before handling; the request is then processed and answered as usual",
    "drop": "close the connection without any response; not processed",
    "process_then_drop": "process the request, then close the connection without a response",
    "launch_then_drop": "process_then_drop restricted to POST /instance-operations/launch",
}


@dataclass(frozen=True)
class FakeInstanceType:
    name: str
    description: str
    gpu_description: str
    price_cents_per_hour: int
    vcpus: int
    memory_gib: int
    storage_gib: int
    gpus: int
    regions: tuple[str, ...]

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "gpu_description": self.gpu_description,
            "price_cents_per_hour": self.price_cents_per_hour,
            "specs": {
                "vcpus": self.vcpus,
                "memory_gib": self.memory_gib,
                "storage_gib": self.storage_gib,
                "gpus": self.gpus,
            },
        }


_US = ("us-west-1", "us-west-2", "us-east-1", "us-south-1")
# A handful of types with Lambda's public on-demand prices (USD cents per hour, autumn 2026),
# written here so the fake works without the data folder.
BUILTIN_INSTANCE_TYPES: tuple[FakeInstanceType, ...] = (
    FakeInstanceType("gpu_1x_a10", "1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 129, 30, 200, 1400, 1, _US),
    FakeInstanceType(
        "gpu_1x_a6000", "1x A6000 (48 GB)", "A6000 (48 GB)", 109, 14, 100, 512, 1, ("us-west-1", "us-south-1")
    ),
    FakeInstanceType("gpu_1x_a100", "1x A100 (40 GB PCIe)", "A100 (40 GB PCIe)", 199, 30, 200, 512, 1, _US),
    FakeInstanceType(
        "gpu_1x_h100_pcie",
        "1x H100 (80 GB PCIe)",
        "H100 (80 GB PCIe)",
        329,
        26,
        200,
        1024,
        1,
        ("us-west-3", "us-east-1"),
    ),
    FakeInstanceType(
        "gpu_1x_gh200", "1x GH200 (96 GB)", "GH200 (96 GB)", 229, 64, 432, 4096, 1, ("us-east-3", "us-west-1")
    ),
    FakeInstanceType(
        "gpu_8x_a100_80gb_sxm4", "8x A100 (80 GB SXM4)", "A100 (80 GB SXM4)", 2232, 240, 1800, 19968, 8, ("us-east-1",)
    ),
    FakeInstanceType(
        "gpu_8x_h100_sxm5",
        "8x H100 (80 GB SXM5)",
        "H100 (80 GB SXM5)",
        3192,
        208,
        1800,
        22528,
        8,
        ("us-west-3", "us-south-2"),
    ),
    FakeInstanceType("cpu_4x_general", "4x vCPU (general)", "None", 20, 4, 16, 256, 0, _US),
)

_GPU_NAME = re.compile(r"^(?P<model>.+?)(?:\s+(?P<form>SXM\d|PCIe|NVL))?\s+(?P<mem>\d+)\s*GB$")


def _gpu_description(gpu_name: str, memory_gib: str, plan_name: str) -> str:
    """Lambda's style, e.g. ``A100 SXM4 40GB`` -> ``A100 (40 GB SXM4)``."""
    match = _GPU_NAME.match(gpu_name.strip())
    if match:
        form = f" {match['form']}" if match["form"] else ""
        return f"{match['model']} ({match['mem']} GB{form})"
    form_match = re.search(r"\b(SXM\d|PCIe)\b", plan_name)
    form = f" {form_match.group(1)}" if form_match else ""
    mem = f"{memory_gib} GB" if memory_gib else "GPU"
    return f"{gpu_name.strip()} ({mem}{form})"


def load_instance_types_csv(path: str | Path, catalog_version: str = "v8") -> list[FakeInstanceType]:
    """Instance types from ``lambda_instance_types.csv`` (one row per type of ``catalog_version``).

    Prices become integer cents.  Types without a storage figure get 512 GiB per GPU (the
    contract requires a number; the catalogue often lacks it).
    """
    result: dict[str, FakeInstanceType] = {}
    table, _ = read_table(path)  # a row the reader cannot use is simply not offered by the fake
    for row in table.drop(columns="_line").to_dict("records"):
        name = (row.get("instance_type") or "").strip()
        if not name or row.get("catalog_version") != catalog_version or name in result:
            continue
        gpus = int(float(row.get("gpu_count") or 0))
        storage = row.get("storage_gib") or ""
        storage_gib = int(round(float(storage))) if storage else 512 * max(gpus, 1)
        if gpus:
            gpu_description = _gpu_description(
                row.get("gpu_name") or "", row.get("gpu_memory_gib") or "", row.get("plan_name") or ""
            )
            description = f"{gpus}x {gpu_description}"
        else:
            gpu_description = "None"
            description = f"{row.get('vcpus')}x vCPU ({name})"
        regions = tuple(r for r in (row.get("regions") or "").split(";") if r in PUBLIC_REGIONS)
        result[name] = FakeInstanceType(
            name=name,
            description=description,
            gpu_description=gpu_description,
            price_cents_per_hour=int(round(float(row["price_usd_per_hour"]) * 100)),
            vcpus=int(float(row.get("vcpus") or 0)),
            memory_gib=int(float(row.get("ram_gib") or 0)),
            storage_gib=storage_gib,
            gpus=gpus,
            regions=regions,
        )
    if not result:
        raise ValueError(f"{path}: no instance types with catalog_version={catalog_version!r}")
    return list(result.values())


class FakeClock:
    """Monotonic time that also moves when told: ``advance(60)`` is a simulated minute.

    Real time keeps flowing too, so rate-limit buckets refill while a client waits.
    """

    def __init__(self) -> None:
        self._offset_s = 0.0
        self._lock = threading.Lock()
        self._wall_start = datetime.now(UTC)
        self._mono_start = time.monotonic()

    def __call__(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("seconds: must be >= 0")
        with self._lock:
            self._offset_s += seconds

    def wall(self) -> datetime:
        """The simulated wall-clock time (UTC)."""
        return self._wall_start + timedelta(seconds=self() - self._mono_start)


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int | None  # None when the connection was dropped
    fault: str | None
    at_s: float  # time.monotonic() at arrival


@dataclass
class _Injection:
    kind: str
    remaining: int
    path_prefix: str | None
    method: str | None
    delay_s: float
    retry_after_s: int
    status: int
    code: str

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if self.kind == "launch_then_drop" and not (
            method == "POST" and path == f"{API_PREFIX}/instance-operations/launch"
        ):
            return False
        if self.path_prefix:
            return path.startswith(self.path_prefix) or path.startswith(API_PREFIX + self.path_prefix)
        return True


class _Bucket:
    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s


@dataclass
class _Account:
    api_key: str
    user_id: str
    email: str
    active: bool = True
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    ssh_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_systems: dict[str, dict[str, Any]] = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if suggestion is not None:
            self.body["suggestion"] = suggestion


def _invalid(message: str, suggestion: str | None = None) -> _ApiError:
    return _ApiError(400, "global/invalid-parameters", message, suggestion)


_UNAUTHORIZED = (
    401,
    "global/invalid-api-key",
    "API key was invalid, expired, or deleted.",
    "Check your API key or create a new one, then try again.",
)
_INACTIVE = (
    403,
    "global/account-inactive",
    "Your account is inactive.",
    "Make sure you have verified your email address and have a valid payment method. "
    "Contact Support if problems continue.",
)
_PUBLIC_KEY = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$")


def _fake_private_key() -> str:
    body = base64.b64encode(secrets.token_bytes(1190)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n"


def _fake_public_key(name: str) -> str:
    return "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + base64.b64encode(secrets.token_bytes(24)).decode() + f" {name}"


class FakeLambdaServer:
    """The fake server.  Start with ``start()`` or ``with``; ``base_url`` ends in ``/api/v1``.

    ``capacity`` maps ``(instance_type, region)`` to how many more instances fit there; pairs
    not given get ``default_capacity`` in each of the type's regions (and 0 elsewhere).
    ``requests_per_s`` / ``launches_per_min`` switch on the 429 token buckets (None = off).
    """

    def __init__(
        self,
        api_keys: Iterable[str] | str | None = None,
        *,
        inactive_api_keys: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        instance_types: Sequence[FakeInstanceType] | None = None,
        catalogue_csv: str | Path | None = None,
        capacity: Mapping[tuple[str, str], int] | None = None,
        default_capacity: int = 3,
        max_instances: int = 10,
        boot_s: float = 60.0,
        restart_s: float = 60.0,
        terminate_s: float = 60.0,
        terminated_retention_s: float = 300.0,
        requests_per_s: float | None = None,
        request_burst: int = 10,
        launches_per_min: float | None = None,
        launch_burst: int = 1,
        clock: FakeClock | Callable[[], float] | None = None,
    ) -> None:
        if isinstance(api_keys, str):
            api_keys = [api_keys]
        keys = list(api_keys) if api_keys is not None else [f"secret_fake_{secrets.token_hex(16)}"]
        if not keys:
            raise ValueError("api_keys: give at least one key")
        self.host = host
        self.port = port
        self.clock: FakeClock | Callable[[], float] = clock or FakeClock()
        if instance_types is None:
            instance_types = load_instance_types_csv(catalogue_csv) if catalogue_csv else BUILTIN_INSTANCE_TYPES
        self.instance_types: dict[str, FakeInstanceType] = {t.name: t for t in instance_types}
        self.max_instances = max_instances
        self.boot_s = boot_s
        self.restart_s = restart_s
        self.terminate_s = terminate_s
        self.terminated_retention_s = terminated_retention_s
        self.requests_per_s = requests_per_s
        self.request_burst = request_burst
        self.launches_per_min = launches_per_min
        self.launch_burst = launch_burst

        self._lock = threading.RLock()
        self._stop = threading.Event()
        inactive = list(inactive_api_keys)
        self._accounts: dict[str, _Account] = {}
        for n, key in enumerate([*keys, *inactive]):
            if not isinstance(key, str) or not key:
                raise ValueError("api_keys: every key must be a non-empty string")
            self._accounts[key] = _Account(
                api_key=key,
                user_id=uuid.uuid4().hex,
                email=f"user{n}@example.com",
                active=key not in inactive,
            )
        self.api_key = keys[0]
        self._capacity: dict[tuple[str, str], int] = {}
        for t in self.instance_types.values():
            for region in t.regions:
                self._capacity[(t.name, region)] = default_capacity
        for (type_name, region), count in (capacity or {}).items():
            self.set_capacity(type_name, region, count)
        self._injections: list[_Injection] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.requests: list[RequestRecord] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake server is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def start(self) -> FakeLambdaServer:
        if self._server is not None:
            return self
        handler = _make_handler(self)
        server = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._stop.clear()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.name = f"fake-lambda-{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stop.set()  # wakes handlers sleeping in a "slow" fault
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeLambdaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- controls for tests

    def now(self) -> float:
        return self.clock()

    def advance(self, seconds: float) -> None:
        """Move the simulated clock forward (needs the default ``FakeClock``)."""
        advance = getattr(self.clock, "advance", None)
        if advance is None:
            raise TypeError("advance(): the clock given to FakeLambdaServer has no advance() method")
        advance(seconds)

    def inject(
        self,
        kind: str,
        times: int = 1,
        path_prefix: str | None = None,
        *,
        method: str | None = None,
        delay_s: float = 5.0,
        retry_after_s: int = 1,
        status: int = 500,
        code: str = "provider/internal-unavailable",
    ) -> None:
        """Make the next ``times`` matching requests fail as ``kind`` (see ``FAULT_KINDS``).

        ``path_prefix`` may include ``/api/v1`` or not (``"/instances"`` matches both).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind: must be one of {sorted(FAULT_KINDS)}, got {kind!r}")
        if times < 1:
            raise ValueError("times: must be >= 1")
        with self._lock:
            self._injections.append(
                _Injection(
                    kind, times, path_prefix, method.upper() if method else None, delay_s, retry_after_s, status, code
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._injections.clear()

    def set_capacity(self, instance_type: str, region: str, count: int) -> None:
        if instance_type not in self.instance_types:
            raise ValueError(f"instance_type: unknown {instance_type!r}")
        if region not in PUBLIC_REGIONS:
            raise ValueError(f"region: unknown {region!r}")
        with self._lock:
            self._capacity[(instance_type, region)] = max(0, int(count))

    def capacity(self, instance_type: str, region: str) -> int:
        with self._lock:
            return self._capacity.get((instance_type, region), 0)

    def _account(self, api_key: str | None) -> _Account:
        return self._accounts[api_key or self.api_key]

    def add_file_system(
        self, name: str, region: str, *, api_key: str | None = None, bytes_used: int = 0
    ) -> dict[str, Any]:
        """Create a file system for the account of ``api_key`` (the first key by default)."""
        if region not in PUBLIC_REGIONS:
            raise ValueError(f"region: unknown {region!r}")
        with self._lock:
            account = self._account(api_key)
            fs = {
                "id": uuid.uuid4().hex,
                "name": name,
                "mount_point": f"/lambda/nfs/{name}",
                "created": self.clock_wall().isoformat(),
                "region": region,
                "bytes_used": bytes_used,
            }
            account.file_systems[fs["id"]] = fs
            return dict(fs)

    def add_ssh_key(self, name: str, public_key: str | None = None, *, api_key: str | None = None) -> dict[str, Any]:
        """Seed an SSH key without going through HTTP."""
        with self._lock:
            account = self._account(api_key)
            key = {"id": uuid.uuid4().hex, "name": name, "public_key": public_key or _fake_public_key(name)}
            account.ssh_keys[key["id"]] = key
            return dict(key)

    def instances(self, *, api_key: str | None = None, include_terminated: bool = False) -> list[dict[str, Any]]:
        """The account's instances as the API would show them (for assertions)."""
        with self._lock:
            self._tick()
            account = self._account(api_key)
            return [
                self._instance_json(account, inst)
                for inst in account.instances.values()
                if include_terminated or inst["status"] != "terminated"
            ]

    def count_requests(self, method: str | None = None, path_prefix: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (
                    path_prefix is None or r.path.startswith(path_prefix) or r.path.startswith(API_PREFIX + path_prefix)
                )
            )

    def clock_wall(self) -> datetime:
        wall = getattr(self.clock, "wall", None)
        return wall() if wall else datetime.now(UTC)

    # -- state machine

    def _tick(self) -> None:
        now = self.clock()
        for account in self._accounts.values():
            for inst_id in list(account.instances):
                inst = account.instances[inst_id]
                if inst["status"] == "booting" and now >= inst["until"]:
                    inst["status"] = "active"
                    inst["until"] = math.inf
                    # Reached active once: it has an address from now on, also while restarting.
                    inst["launched"] = True
                elif inst["status"] == "terminating" and now >= inst["until"]:
                    inst["status"] = "terminated"
                    key = (inst["instance_type"], inst["region"])
                    self._capacity[key] = self._capacity.get(key, 0) + 1
                    inst["until"] = inst["until"] + self.terminated_retention_s
                elif inst["status"] == "terminated" and now >= inst["until"]:
                    del account.instances[inst_id]

    def _region_json(self, name: str) -> dict[str, str]:
        return {"name": name, "description": PUBLIC_REGIONS[name]}

    def _instance_json(self, account: _Account, inst: dict[str, Any]) -> dict[str, Any]:
        status = inst["status"]
        launched = inst["launched"]

        def action(available: bool, reason: str | None = None, text: str | None = None) -> dict[str, Any]:
            entry: dict[str, Any] = {"available": available}
            if not available and reason:
                entry["reason_code"] = reason
                entry["reason_description"] = text or reason
            return entry

        if status in ("terminating", "terminated"):
            gone = action(False, "vm-is-terminating", "The instance is terminating.")
            actions = {k: gone for k in ("migrate", "rebuild", "restart", "cold_reboot", "terminate")}
        else:
            ready = (
                action(True)
                if status in ("active", "unhealthy")
                else action(False, "vm-has-not-launched", "The instance has not finished booting.")
            )
            actions = {
                "migrate": ready,
                "rebuild": ready,
                "restart": ready,
                "cold_reboot": ready,
                "terminate": action(True),
            }
        mounts = [
            {"mount_point": account.file_systems[fs_id]["mount_point"], "file_system_id": fs_id}
            for fs_id in inst["file_system_ids"]
            if fs_id in account.file_systems
        ]
        body: dict[str, Any] = {
            "id": inst["id"],
            "name": inst["name"],
            "status": status,
            "ssh_key_names": list(inst["ssh_key_names"]),
            "file_system_names": [
                account.file_systems[f]["name"] for f in inst["file_system_ids"] if f in account.file_systems
            ],
            "region": self._region_json(inst["region"]),
            "instance_type": self.instance_types[inst["instance_type"]].to_api(),
            "actions": actions,
            "tags": [],
        }
        if mounts:
            body["file_system_mounts"] = mounts
        if launched and status != "terminated":
            body.update(
                ip=inst["ip"],
                private_ip=inst["private_ip"],
                hostname=inst["hostname"],
                jupyter_token=inst["jupyter_token"],
                jupyter_url=f"https://jupyter-{inst['id']}.lambdaspaces.com/?token={inst['jupyter_token']}",
            )
        return body

    # -- request handling (called from handler threads)

    def _take_injection(self, method: str, path: str) -> _Injection | None:
        with self._lock:
            for inj in self._injections:
                if inj.matches(method, path):
                    inj.remaining -= 1
                    if inj.remaining <= 0:
                        self._injections.remove(inj)
                    return inj
        return None

    def _rate_limited(self, auth_header: str, is_launch: bool) -> float:
        """Seconds to wait (0 = allowed).  Keyed by the Authorization header, like an edge proxy."""
        now = self.clock()
        with self._lock:
            waits = []
            if self.requests_per_s:
                bucket = self._buckets.setdefault(
                    ("all", auth_header), _Bucket(self.requests_per_s, self.request_burst, now)
                )
                waits.append(bucket.take(now))
            if is_launch and self.launches_per_min:
                bucket = self._buckets.setdefault(
                    ("launch", auth_header), _Bucket(self.launches_per_min / 60.0, self.launch_burst, now)
                )
                waits.append(bucket.take(now))
            return max(waits, default=0.0)

    def _authenticate(self, header: str) -> _Account:
        key = None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            key = value
        elif scheme.lower() == "basic":
            key = value
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = None
            if decoded is not None and decoded.endswith(":"):
                key = decoded[:-1]
        account = self._accounts.get(key or "")
        if account is None:
            raise _ApiError(*_UNAUTHORIZED)
        if not account.active:
            raise _ApiError(*_INACTIVE)
        return account

    def handle(self, method: str, path: str, auth_header: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Route one authenticated API request; returns (status, JSON body)."""
        account = self._authenticate(auth_header)
        parts = (
            [unquote(p) for p in path[len(API_PREFIX) :].strip("/").split("/")]
            if path.startswith(API_PREFIX + "/")
            else None
        )
        if not parts:
            raise _ApiError(404, "global/object-does-not-exist", "No such API endpoint.", "Check the URL.")
        payload: Any = None
        if method in ("POST", "PUT", "PATCH"):
            try:
                payload = json.loads(body or b"null")
            except ValueError:
                raise _invalid("Request body is not valid JSON.", "Send a JSON object.") from None
            if not isinstance(payload, dict):
                raise _invalid("Request body must be a JSON object.", "Send a JSON object.")
        with self._lock:
            self._tick()
            route = (method, *parts)
            if route == ("GET", "instance-types"):
                return 200, {"data": self._list_instance_types()}
            if route == ("GET", "instances"):
                return 200, {
                    "data": [
                        self._instance_json(account, i)
                        for i in account.instances.values()
                        if i["status"] != "terminated"
                    ]
                }
            if len(parts) == 2 and parts[0] == "instances" and method == "GET":
                return 200, {"data": self._instance_json(account, self._find_instance(account, parts[1]))}
            if route == ("POST", "instance-operations", "launch"):
                return 200, {"data": self._launch(account, payload)}
            if route == ("POST", "instance-operations", "terminate"):
                return 200, {"data": {"terminated_instances": self._terminate(account, payload)}}
            if route == ("POST", "instance-operations", "restart"):
                return 200, {"data": {"restarted_instances": self._restart(account, payload)}}
            if route == ("GET", "ssh-keys"):
                return 200, {"data": [dict(k) for k in account.ssh_keys.values()]}
            if route == ("POST", "ssh-keys"):
                return 200, {"data": self._add_ssh_key(account, payload)}
            if len(parts) == 2 and parts[0] == "ssh-keys" and method == "DELETE":
                if parts[1] not in account.ssh_keys:
                    raise _invalid(f"SSH key {parts[1]!r} does not exist.", "Check the SSH key ID.")
                del account.ssh_keys[parts[1]]
                return 200, {"data": {}}
            if route == ("GET", "file-systems"):
                return 200, {"data": self._list_file_systems(account)}
        raise _ApiError(
            404, "global/object-does-not-exist", f"No such API endpoint: {method} {path}.", "Check the URL."
        )

    def _list_instance_types(self) -> dict[str, Any]:
        result = {}
        for t in self.instance_types.values():
            regions = [r for r in PUBLIC_REGIONS if self._capacity.get((t.name, r), 0) > 0]
            result[t.name] = {
                "instance_type": t.to_api(),
                "regions_with_capacity_available": [self._region_json(r) for r in regions],
            }
        return result

    def _find_instance(self, account: _Account, inst_id: str) -> dict[str, Any]:
        inst = account.instances.get(inst_id)
        if inst is None:
            raise _ApiError(
                404, "global/object-does-not-exist", "Specified instance does not exist.", "Check the instance ID."
            )
        return inst

    @staticmethod
    def _str_list(payload: Mapping[str, Any], key: str, required: bool) -> list[str]:
        if key not in payload:
            if required:
                raise _invalid(f"Missing required field '{key}'.")
            return []
        value = payload[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _invalid(f"Field '{key}' must be a list of strings.")
        return value

    def _launch(self, account: _Account, payload: dict[str, Any]) -> dict[str, Any]:
        region = payload.get("region_name")
        type_name = payload.get("instance_type_name")
        if not isinstance(region, str) or not region:
            raise _invalid("Missing or invalid field 'region_name'.")
        if region not in PUBLIC_REGIONS:
            raise _invalid(
                f"Field 'region_name': {region!r} is not a valid region.", "Choose one of the listed regions."
            )
        if not isinstance(type_name, str) or not type_name:
            raise _invalid("Missing or invalid field 'instance_type_name'.")
        ssh_key_names = self._str_list(payload, "ssh_key_names", required=True)
        if len(ssh_key_names) != 1:
            raise _invalid("Field 'ssh_key_names': exactly one SSH key must be specified.")
        fs_names = self._str_list(payload, "file_system_names", required=False)
        name = payload.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 64):
            raise _invalid("Field 'name' must be a string of 64 characters or fewer.")
        if type_name not in self.instance_types:
            raise _ApiError(
                404,
                "global/object-does-not-exist",
                f"Instance type {type_name!r} does not exist.",
                "Check the instance type name.",
            )
        key_names = {k["name"] for k in account.ssh_keys.values()}
        for key_name in ssh_key_names:
            if key_name not in key_names:
                raise _ApiError(
                    404,
                    "global/object-does-not-exist",
                    f"SSH key {key_name!r} does not exist.",
                    "Add the SSH key first.",
                )
        fs_ids = []
        for fs_name in fs_names:
            match = [f for f in account.file_systems.values() if f["name"] == fs_name]
            if not match:
                raise _ApiError(
                    404,
                    "global/object-does-not-exist",
                    f"File system {fs_name!r} does not exist.",
                    "Check the file system name.",
                )
            if match[0]["region"] != region:
                raise _ApiError(
                    400,
                    "instance-operations/launch/file-system-in-wrong-region",
                    f"File system {fs_name!r} is in {match[0]['region']}, not {region}.",
                    "Launch in the file system's region.",
                )
            fs_ids.append(match[0]["id"])
        live = sum(1 for i in account.instances.values() if i["status"] != "terminated")
        if live >= self.max_instances:
            raise _ApiError(400, "global/quota-exceeded", "Quota exceeded.", "Contact Support to increase your quota.")
        if self._capacity.get((type_name, region), 0) <= 0:
            raise _ApiError(
                400,
                "instance-operations/launch/insufficient-capacity",
                "Not enough capacity to fulfill launch request.",
                "Choose another region or instance type, or try again later.",
            )
        self._capacity[(type_name, region)] -= 1
        inst_id = uuid.uuid4().hex
        octet = (len(account.instances) % 250) + 2
        account.instances[inst_id] = {
            "id": inst_id,
            "name": name or "",
            "instance_type": type_name,
            "region": region,
            "ssh_key_names": list(ssh_key_names),
            "file_system_ids": fs_ids,
            "status": "booting",
            "until": self.clock() + self.boot_s,
            "launched": False,
            "ip": f"198.51.100.{octet}",
            "private_ip": f"10.0.2.{octet}",
            "hostname": f"198-51-100-{octet}",
            "jupyter_token": secrets.token_hex(16),
        }
        return {"instance_ids": [inst_id]}

    def _terminate(self, account: _Account, payload: dict[str, Any]) -> list[dict[str, Any]]:
        ids = self._str_list(payload, "instance_ids", required=True)
        if not ids:
            raise _invalid("Field 'instance_ids' must not be empty.")
        instances = [self._find_instance(account, i) for i in ids]
        if any(i["status"] == "terminated" for i in instances):
            raise _ApiError(
                404, "global/object-does-not-exist", "Specified instance does not exist.", "Check the instance ID."
            )
        now = self.clock()
        for inst in instances:
            if inst["status"] != "terminating":
                inst["status"] = "terminating"
                inst["until"] = now + self.terminate_s
        return [self._instance_json(account, i) for i in instances]

    def _restart(self, account: _Account, payload: dict[str, Any]) -> list[dict[str, Any]]:
        ids = self._str_list(payload, "instance_ids", required=True)
        if not ids:
            raise _invalid("Field 'instance_ids' must not be empty.")
        instances = [self._find_instance(account, i) for i in ids]
        for inst in instances:
            if inst["status"] == "terminated":
                raise _ApiError(
                    404, "global/object-does-not-exist", "Specified instance does not exist.", "Check the instance ID."
                )
            if inst["status"] not in ("active", "unhealthy"):
                raise _invalid(
                    f"Instance {inst['id']} is {inst['status']} and cannot be restarted.", "Wait until it is active."
                )
        now = self.clock()
        for inst in instances:
            inst["status"] = "booting"
            inst["until"] = now + self.restart_s
        return [self._instance_json(account, i) for i in instances]

    def _add_ssh_key(self, account: _Account, payload: dict[str, Any]) -> dict[str, Any]:
        name = payload.get("name")
        if not isinstance(name, str) or not (1 <= len(name) <= 64):
            raise _invalid("Field 'name' must be a string of 1 to 64 characters.")
        if any(k["name"] == name for k in account.ssh_keys.values()):
            raise _invalid(f"An SSH key named {name!r} already exists.", "Choose another name.")
        public_key = payload.get("public_key")
        private_key = None
        if public_key is None:
            public_key = _fake_public_key(name)
            private_key = _fake_private_key()
        elif (
            not isinstance(public_key, str)
            or not (1 <= len(public_key) <= 4096)
            or not _PUBLIC_KEY.match(public_key.strip())
        ):
            raise _invalid("Field 'public_key' is not a valid SSH public key.", "Paste the contents of your .pub file.")
        key = {"id": uuid.uuid4().hex, "name": name, "public_key": public_key.strip()}
        account.ssh_keys[key["id"]] = key
        return {**key, "private_key": private_key} if private_key else dict(key)

    def _list_file_systems(self, account: _Account) -> list[dict[str, Any]]:
        in_use = {f for i in account.instances.values() if i["status"] != "terminated" for f in i["file_system_ids"]}
        return [
            {
                "id": fs["id"],
                "name": fs["name"],
                "mount_point": fs["mount_point"],
                "created": fs["created"],
                "created_by": {"id": account.user_id, "email": account.email, "status": "active"},
                "is_in_use": fs["id"] in in_use,
                "region": self._region_json(fs["region"]),
                "bytes_used": fs["bytes_used"],
            }
            for fs in account.file_systems.values()
        ]


def _make_handler(server: FakeLambdaServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeLambdaCloud/1.8.3"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs
            # add ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            # Request lines only (never headers): the API key must stay out of logs.
            logger.debug("fake lambda: " + format, *args)

        def _dispatch(self) -> None:
            arrived = time.monotonic()
            method = self.command
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            auth = self.headers.get("Authorization") or ""
            record = RequestRecord(method, path, None, None, arrived)
            with server._lock:
                server.requests.append(record)

            injection = server._take_injection(method, path)
            drop_after = False
            if injection is not None:
                record.fault = injection.kind
                if injection.kind == "drop":
                    self._drop()
                    return
                if injection.kind == "rate_limit":
                    self._text(record, 429, "429 Too Many Requests\n", {"Retry-After": str(injection.retry_after_s)})
                    return
                if injection.kind == "server_error":
                    error = {
                        "code": injection.code,
                        "message": "Provider unavailable",
                        "suggestion": "Try again shortly",
                    }
                    self._json(record, injection.status, {"error": error})
                    return
                if injection.kind == "slow" and server._stop.wait(injection.delay_s):
                    self._drop()
                    return
                drop_after = injection.kind in ("process_then_drop", "launch_then_drop")

            wait_s = server._rate_limited(auth, method == "POST" and path == f"{API_PREFIX}/instance-operations/launch")
            if wait_s > 0:
                retry_after = max(1, math.ceil(wait_s))
                self._text(record, 429, "429 Too Many Requests\n", {"Retry-After": str(retry_after)})
                return
            try:
                status, payload = server.handle(method, path, auth, body)
            except _ApiError as exc:
                status, payload = exc.status, {"error": exc.body}
            except Exception:  # a bug in the fake must still answer like a server would
                logger.exception("fake lambda: internal error on %s %s", method, path)
                status = 500
                payload = {
                    "error": {
                        "code": "global/internal-error",
                        "message": "An internal server error occurred.",
                        "suggestion": "Try again later. Contact Support if the problem persists.",
                    }
                }
            if drop_after:
                self._drop()
                return
            self._json(record, status, payload)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _send(
            self, record: RequestRecord, status: int, content_type: str, data: bytes, headers: Mapping[str, str]
        ) -> None:
            record.status = status
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout) before the answer
                self.close_connection = True

        def _json(self, record: RequestRecord, status: int, payload: Any) -> None:
            self._send(record, status, "application/json", json.dumps(payload).encode(), {})

        def _text(self, record: RequestRecord, status: int, text: str, headers: Mapping[str, str]) -> None:
            self._send(record, status, "text/plain; charset=utf-8", text.encode(), headers)

        # BaseHTTPRequestHandler finds its handlers by these names.
        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch  # noqa: N815 - http.server calls do_<METHOD> by name

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the fake until Ctrl-C: ``python -m fedopt_core.testing.fake_lambda --port 8765``."""
    parser = argparse.ArgumentParser(prog="fake_lambda", description="Fake Lambda Cloud API v1 on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--api-key", action="append", dest="api_keys", help="accepted key (repeatable); one is generated if none"
    )
    parser.add_argument(
        "--inactive-api-key", action="append", default=[], help="key answered with 403 account-inactive"
    )
    parser.add_argument("--catalogue", help="lambda_instance_types.csv to take instance types and prices from")
    parser.add_argument("--max-instances", type=int, default=10)
    parser.add_argument(
        "--no-rate-limit", action="store_true", help="switch off the 1 request/s and 5 launches/min limits"
    )
    args = parser.parse_args(argv)

    limits: dict[str, Any] = {}
    if not args.no_rate_limit:
        limits = {"requests_per_s": 1.0, "request_burst": 10, "launches_per_min": 5.0, "launch_burst": 1}
    generated = not args.api_keys
    srv = FakeLambdaServer(
        api_keys=args.api_keys,
        inactive_api_keys=args.inactive_api_key,
        host=args.host,
        port=args.port,
        catalogue_csv=args.catalogue,
        max_instances=args.max_instances,
        **limits,
    )
    # Handlers first: a Ctrl-C (or SIGTERM) that arrives as soon as the address is printed still stops
    # the server cleanly, instead of racing the start of a try block.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    srv.start()
    try:
        print(f"fake Lambda Cloud API at {srv.base_url} ({len(srv.instance_types)} instance types)", flush=True)
        if generated:
            # A made-up key for this fake only: it must be shown, or nobody could use the server.
            print(f"accepted API key: {srv.api_key}", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
