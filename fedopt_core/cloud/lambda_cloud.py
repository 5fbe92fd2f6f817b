"""Client for the Lambda Cloud API v1 (https://cloud.lambda.ai/api/v1), on httpx.

Contract: the OpenAPI 3.1 document Lambda serves at /api/v1/openapi.json (v1.8.3). Every success
body is ``{"data": ...}`` and every error body ``{"error": {"code", "message", "suggestion"?}}``;
errors are told apart by ``code`` only, as the document asks (message texts may change).  A 429
comes from Lambda's edge proxy as plain text, so it is recognised by status.

Reliability choices, per operation:

* Reads (``instance_types``, ``instances``, ``instance``, ``ssh_keys``, ``file_systems``) are
  retried with exponential backoff and jitter on 429, 5xx and transport failures (timeouts,
  refused or dropped connections), waiting at least ``Retry-After`` when the server sends one.
* ``launch`` is never blindly retried, because a second launch bills a second machine.  It is
  retried only when the request provably never reached the application (a 429 from the edge,
  or a connection that could not be opened).  After an ambiguous failure (timeout after the
  request was sent, dropped connection, 5xx) the client lists the instances and looks for one
  with the requested name, type and region that did not exist before the attempt, for at least
  ``reconcile_window_s`` (default: the read timeout); it returns it when found
  (``LaunchResult.reconciled``), and otherwise raises ``LaunchNotStartedError`` ("not seen", still
  ``outcome_unknown``) or ``LaunchOutcomeUnknownError`` when the list itself could not be read.  The API reports
  no creation time, so "did not exist before" is decided by a unique generated name when none
  is given, or by a snapshot of same-named instances taken just before the launch.
* ``terminate`` and ``delete_ssh_key`` are retried like reads: asking twice has the effect of
  asking once.  When a retry answers "unknown id" (the first attempt went through and the
  object is gone), the client checks the list and reports success if the ids are gone.
* ``restart`` and ``add_ssh_key`` are retried only when the request provably never reached the
  application: a second restart reboots the machine again, and a generated key pair whose reply
  was lost cannot be recovered (Lambda keeps no private key).

Deadlines: besides httpx's per-read timeouts, each attempt must be answered whole (headers and
body) within ``call_deadline_s`` (default: the read timeout), so a server that sends a byte
every half second cannot hold a page.  The header phase is bounded by the read timeout per read.

Pacing: the API allows about one request per second and one launch per 12 s.  Each client
waits so that requests sharing a base URL and API key (across clients of this process) are
at least ``min_request_interval_s`` apart and launches ``min_launch_interval_s`` apart.

The API key never appears in logs, exception texts or reprs: only ``••••`` and its last four
characters are ever shown.

Why one module of about 1,100 lines: the client, its typed errors, its result types and its
pacing are one coherent concept (one API's contract), read together and changed together; it is
kept whole rather than split where no reader would look for the other half.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import random
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote

import httpx

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "INSTANCE_STATUSES",
    "AccountInactiveError",
    "AuthenticationError",
    "FileSystem",
    "FileSystemInWrongRegionError",
    "Instance",
    "InstanceType",
    "InsufficientCapacityError",
    "InvalidParametersError",
    "LambdaCloudClient",
    "LambdaCloudError",
    "LambdaConnectionError",
    "LambdaTimeoutError",
    "LaunchNotStartedError",
    "LaunchOutcomeUnknownError",
    "LaunchResult",
    "NotFoundError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "Region",
    "SshKey",
    "UnexpectedResponseError",
    "error_from_response",
    "redact_key",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"
# A launch can take several seconds server-side, so reads get more room than connects.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=5.0)

INSTANCE_STATUSES = frozenset({"booting", "active", "unhealthy", "terminated", "terminating", "preempted"})
TERMINAL_STATUSES = frozenset({"terminated", "preempted"})

_MASK = "••••"
_BODY_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})
_MAX_NAME_LEN = 64


_SSL_CONTEXT: ssl.SSLContext | None = None
_SSL_LOCK = threading.Lock()


def _default_ssl_context() -> ssl.SSLContext:
    # Building a verifying context (loading the CA bundle) costs ~0.1 s; pages create clients
    # often, so one context is shared (SSLContext is safe to share between connections).
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context()
        return _SSL_CONTEXT


def redact_key(api_key: str) -> str:
    """``••••`` plus the last four characters (only ``••••`` for keys too short to hide)."""
    if len(api_key) < 12:
        return _MASK
    return _MASK + api_key[-4:]


#: Any run of this many characters that also occurs in the API key is masked in server text.
SECRET_FRAGMENT_LEN = 8


def scrub_secret(text: str | None, secret: str | None) -> str | None:
    """``text`` with every fragment of ``secret`` (:data:`SECRET_FRAGMENT_LEN` characters or more)
    replaced by ``••••``: a server that echoes the key minus a character, or a half of it, still
    leaks nothing."""
    if not text or not secret:
        return text
    n = SECRET_FRAGMENT_LEN
    if len(secret) < n:
        return text.replace(secret, _MASK)
    pieces = {secret[i : i + n] for i in range(len(secret) - n + 1)}
    hidden = [False] * len(text)
    for i in range(len(text) - n + 1):
        if text[i : i + n] in pieces:
            hidden[i : i + n] = [True] * n
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append(_MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class _Secret:
    """Holds the API key so that no repr, ``vars()`` dump or debugger view prints it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"_Secret({redact_key(self._value)!r})"

    __str__ = __repr__


# --------------------------------------------------------------------------- errors


class LambdaCloudError(Exception):
    """Any failure talking to Lambda Cloud.  ``str()`` is a sentence a page can show.

    ``code`` is the API's error code (``global/invalid-api-key`` …) or, for failures found by
    this client, a ``client/…`` code; ``status_code`` is the HTTP status or None.
    ``outcome_unknown`` is True when the request may have been carried out although it failed
    (timeout after sending, dropped connection, 5xx).  ``retry_after_s`` is the server's
    ``Retry-After`` hint, when it sent one.
    """

    default_message = "The Lambda Cloud API request failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        suggestion: str | None = None,
        status_code: int | None = None,
        outcome_unknown: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        self.code = code
        self.retry_after_s = retry_after_s
        self.message = (message or "").strip() or self.default_message
        self.suggestion = (suggestion or "").strip() or None
        self.status_code = status_code
        self.outcome_unknown = outcome_unknown
        super().__init__(self.user_message)

    @property
    def user_message(self) -> str:
        if self.suggestion:
            return f"{self.message} {self.suggestion}"
        return self.message

    def __str__(self) -> str:
        return self.user_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status_code={self.status_code!r}, message={self.message!r})"


class AuthenticationError(LambdaCloudError):
    """401 ``global/invalid-api-key``: the key is wrong, expired or deleted."""

    default_message = "The Lambda Cloud API key was rejected."


class AccountInactiveError(LambdaCloudError):
    """403 ``global/account-inactive`` (or ``global/invalid-address``): the account cannot act."""

    default_message = "The Lambda Cloud account is inactive."


class NotFoundError(LambdaCloudError):
    """``global/object-does-not-exist`` / 404: an instance, type, key or file system is unknown."""

    default_message = "The requested Lambda Cloud object does not exist."


class InvalidParametersError(LambdaCloudError):
    """``global/invalid-parameters`` / other 400s, and arguments this client rejects itself."""

    default_message = "The request to Lambda Cloud was invalid."


class FileSystemInWrongRegionError(InvalidParametersError):
    """``instance-operations/launch/file-system-in-wrong-region``."""


class InsufficientCapacityError(LambdaCloudError):
    """``instance-operations/launch/insufficient-capacity``: no machine of that type is free there."""

    default_message = "Lambda Cloud has no capacity for this instance type in this region."


class QuotaExceededError(LambdaCloudError):
    """``global/quota-exceeded``: the account's instance quota is used up."""

    default_message = "The Lambda Cloud quota for this account is used up."


class RateLimitError(LambdaCloudError):
    """429 from Lambda's edge proxy (plain text).  ``retry_after_s`` is the server's hint, if any."""

    default_message = "Too many requests to the Lambda Cloud API."


class ProviderError(LambdaCloudError):
    """``provider/…`` codes (upstream failures), ``global/internal-error`` and any 5xx."""

    default_message = "Lambda Cloud or one of its providers failed."


class LambdaConnectionError(LambdaCloudError):
    """The request did not complete: connection refused, dropped, or a transport error."""

    default_message = "Could not reach the Lambda Cloud API."


class LambdaTimeoutError(LambdaConnectionError):
    """The server did not answer within the client's timeout."""

    default_message = "The Lambda Cloud API did not answer in time."


class UnexpectedResponseError(LambdaCloudError):
    """A success reply that does not have the documented shape (the field is named)."""

    default_message = "Lambda Cloud sent a reply this client does not understand."


class LaunchNotStartedError(LambdaCloudError):
    """An ambiguous launch failure, after which the instance list showed no such instance for the
    whole reconcile window.  Still ``outcome_unknown``: a machine listed later would bill."""

    default_message = "The launch was not seen."


class LaunchOutcomeUnknownError(LambdaCloudError):
    """An ambiguous launch failure, and the instance list could not be read to settle it."""

    default_message = "It is not known whether the launch happened."


_CODE_TO_ERROR: dict[str, type[LambdaCloudError]] = {
    "global/invalid-api-key": AuthenticationError,
    "global/account-inactive": AccountInactiveError,
    "global/invalid-address": AccountInactiveError,
    "global/object-does-not-exist": NotFoundError,
    "global/invalid-parameters": InvalidParametersError,
    "global/duplicate": InvalidParametersError,
    "global/quota-exceeded": QuotaExceededError,
    "global/internal-error": ProviderError,
    "instance-operations/launch/insufficient-capacity": InsufficientCapacityError,
    "instance-operations/launch/file-system-in-wrong-region": FileSystemInWrongRegionError,
}

_STATUS_TO_ERROR: dict[int, type[LambdaCloudError]] = {
    400: InvalidParametersError,
    401: AuthenticationError,
    403: AccountInactiveError,
    404: NotFoundError,
    409: InvalidParametersError,
    422: InvalidParametersError,
    429: RateLimitError,
}


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_from_response(response: httpx.Response, *, secret: str | None = None) -> LambdaCloudError:
    """Build the typed error for a non-2xx reply.

    The class is chosen from the envelope's ``code`` (exact match, then the ``provider/``
    prefix) and, only when the code is missing or unknown, from the HTTP status.  ``secret``
    is scrubbed from any server text, whole or in fragments, in case a server ever echoes it.
    """
    status = response.status_code
    retry_after_s = _parse_retry_after(response.headers.get("Retry-After"))
    code: str | None = None
    message: str | None = None
    suggestion: str | None = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
        envelope = payload["error"]
        code = envelope.get("code") if isinstance(envelope.get("code"), str) else None
        message = envelope.get("message") if isinstance(envelope.get("message"), str) else None
        suggestion = envelope.get("suggestion") if isinstance(envelope.get("suggestion"), str) else None

    cls: type[LambdaCloudError] | None = _CODE_TO_ERROR.get(code or "")
    if cls is None and code and code.startswith("provider/"):
        cls = ProviderError
    if cls is None:
        cls = _STATUS_TO_ERROR.get(status)
    if cls is None:
        cls = ProviderError if status >= 500 else LambdaCloudError

    message, suggestion = scrub_secret(message, secret), scrub_secret(suggestion, secret)
    if message is None:
        # The body is not an envelope (a 429 or 5xx page from a proxy): never show raw text.
        message = f"{cls.default_message} (HTTP {status})"
    kwargs: dict[str, Any] = {
        "code": code,
        "suggestion": suggestion,
        "status_code": status,
        "outcome_unknown": status >= 500,
        "retry_after_s": retry_after_s,
    }
    if suggestion is None and cls is RateLimitError:
        kwargs["suggestion"] = (
            f"Wait {retry_after_s:.0f} s and try again." if retry_after_s else "Wait a little and try again."
        )
    elif suggestion is None and cls is ProviderError:
        kwargs["suggestion"] = "Try again shortly."
    return cls(message, **kwargs)


# --------------------------------------------------------------------------- results


def _need(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise UnexpectedResponseError(f"Lambda Cloud reply is missing field '{where}.{key}'.", code="client/bad-reply")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UnexpectedResponseError(
            f"Lambda Cloud reply field '{where}.{key}' has type {type(value).__name__}.", code="client/bad-reply"
        )
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value != "" else None


def _str_tuple(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> tuple[str, ...]:
    if not required and key not in obj:
        return ()
    values = _need(obj, key, where, list)
    return tuple(str(v) for v in values)


@dataclass(frozen=True)
class Region:
    name: str
    description: str = ""

    @classmethod
    def from_api(cls, data: Any, where: str = "region") -> Region:
        return cls(name=_need(data, "name", where, str), description=str(data.get("description") or ""))


@dataclass(frozen=True)
class InstanceType:
    """An instance type with its price and specs; ``regions_with_capacity`` is filled by
    ``instance_types()`` (empty when the type is embedded in an ``Instance``)."""

    name: str
    description: str
    gpu_description: str
    price_cents_per_hour: int
    vcpus: int
    memory_gib: int
    storage_gib: int
    gpus: int
    regions_with_capacity: tuple[Region, ...] = ()

    @property
    def price_per_hour_usd(self) -> float:
        return self.price_cents_per_hour / 100.0

    @property
    def region_names_with_capacity(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions_with_capacity)

    @classmethod
    def from_api(cls, data: Any, regions: Iterable[Region] = (), where: str = "instance_type") -> InstanceType:
        specs = _need(data, "specs", where, Mapping)
        return cls(
            name=_need(data, "name", where, str),
            description=str(data.get("description") or ""),
            gpu_description=str(data.get("gpu_description") or ""),
            price_cents_per_hour=_need(data, "price_cents_per_hour", where, int),
            vcpus=_need(specs, "vcpus", f"{where}.specs", int),
            memory_gib=_need(specs, "memory_gib", f"{where}.specs", int),
            storage_gib=_need(specs, "storage_gib", f"{where}.specs", int),
            gpus=_need(specs, "gpus", f"{where}.specs", int),
            regions_with_capacity=tuple(regions),
        )


@dataclass(frozen=True)
class Instance:
    id: str
    status: str
    instance_type: InstanceType
    region: Region
    name: str | None = None
    ip: str | None = None
    private_ip: str | None = None
    hostname: str | None = None
    ssh_key_names: tuple[str, ...] = ()
    file_system_names: tuple[str, ...] = ()
    jupyter_url: str | None = field(default=None, repr=False)
    jupyter_token: str | None = field(default=None, repr=False)
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def price_per_hour_usd(self) -> float:
        return self.instance_type.price_per_hour_usd

    @property
    def is_terminal(self) -> bool:
        """True once the machine is gone (terminated or preempted) and no longer bills."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_api(cls, data: Any, where: str = "instance") -> Instance:
        tags = data.get("tags") if isinstance(data, Mapping) else None
        return cls(
            id=_need(data, "id", where, str),
            status=_need(data, "status", where, str),
            instance_type=InstanceType.from_api(
                _need(data, "instance_type", where, Mapping), where=f"{where}.instance_type"
            ),
            region=Region.from_api(_need(data, "region", where, Mapping), where=f"{where}.region"),
            name=_opt_str(data, "name"),
            ip=_opt_str(data, "ip"),
            private_ip=_opt_str(data, "private_ip"),
            hostname=_opt_str(data, "hostname"),
            ssh_key_names=_str_tuple(data, "ssh_key_names", where),
            file_system_names=_str_tuple(data, "file_system_names", where),
            jupyter_url=_opt_str(data, "jupyter_url"),
            jupyter_token=_opt_str(data, "jupyter_token"),
            tags=tuple(
                (str(t.get("key")), str(t.get("value")))
                for t in (tags if isinstance(tags, list) else [])
                if isinstance(t, Mapping)
            ),
        )


@dataclass(frozen=True)
class SshKey:
    """An SSH key.  ``private_key`` is set only in the reply to ``add_ssh_key`` without a public
    key: Lambda keeps no copy, so the caller must store it (it is hidden from ``repr``)."""

    id: str
    name: str
    public_key: str = field(repr=False)
    private_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_api(cls, data: Any, where: str = "ssh_key") -> SshKey:
        private_key = data.get("private_key") if isinstance(data, Mapping) else None
        return cls(
            id=_need(data, "id", where, str),
            name=_need(data, "name", where, str),
            public_key=_need(data, "public_key", where, str),
            private_key=private_key if isinstance(private_key, str) else None,
        )


@dataclass(frozen=True)
class FileSystem:
    id: str
    name: str
    mount_point: str
    created: datetime | None
    is_in_use: bool
    region: Region
    created_by_email: str | None = None
    bytes_used: int | None = None

    @classmethod
    def from_api(cls, data: Any, where: str = "file_system") -> FileSystem:
        created_raw = _need(data, "created", where, str)
        try:
            created: datetime | None = datetime.fromisoformat(created_raw.replace("Z", "+00:00"))
        except ValueError:
            created = None
        created_by = data.get("created_by")
        bytes_used = data.get("bytes_used")
        return cls(
            id=_need(data, "id", where, str),
            name=_need(data, "name", where, str),
            mount_point=_need(data, "mount_point", where, str),
            created=created,
            is_in_use=_need(data, "is_in_use", where, bool),
            region=Region.from_api(_need(data, "region", where, Mapping), where=f"{where}.region"),
            created_by_email=_opt_str(created_by, "email") if isinstance(created_by, Mapping) else None,
            bytes_used=bytes_used if isinstance(bytes_used, int) and not isinstance(bytes_used, bool) else None,
        )


@dataclass(frozen=True)
class LaunchResult:
    """What a launch produced.  ``reconciled`` is True when the reply was lost and the ids were
    found afterwards in the instance list."""

    instance_ids: tuple[str, ...]
    name: str
    instance_type: str
    region: str
    reconciled: bool = False


# --------------------------------------------------------------------------- pacing


class _Pacer:
    """Hands out start times at least ``interval_s`` apart; sleeps outside the lock so that
    waiting threads queue up in order instead of all waking at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_slot = float("-inf")

    def wait(self, interval_s: float) -> None:
        if interval_s <= 0:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._last_slot + interval_s)
            self._last_slot = slot
        delay = slot - now
        if delay > 0:
            time.sleep(delay)


_PACERS: dict[tuple[str, str, str], _Pacer] = {}
_PACERS_LOCK = threading.Lock()


def _shared_pacer(base_url: str, api_key: str, kind: str) -> _Pacer:
    # Lambda limits per key, and pages may create several clients for one key: share the
    # pacing state per (server, key).  Only a hash of the key is kept.
    fingerprint = hashlib.sha256(api_key.encode()).hexdigest()
    key = (base_url, fingerprint, kind)
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None:
            pacer = _PACERS[key] = _Pacer()
        return pacer


# --------------------------------------------------------------------------- client


class _Retry(Enum):
    IDEMPOTENT = "idempotent"  # retry on 429, 5xx and any transport failure
    # Like IDEMPOTENT, but a "not found"/"invalid" answer after an ambiguous attempt is raised as
    # _RetriedNotFound, because the earlier attempt may have done the job.
    IDEMPOTENT_WRITE = "idempotent_write"
    UNPROCESSED_ONLY = "unprocessed_only"  # retry only when the request surely was not carried out


class _RetriedNotFound(Exception):
    def __init__(self, error: LambdaCloudError) -> None:
        super().__init__(str(error))
        self.error = error


class LambdaCloudClient:
    """Synchronous Lambda Cloud API client.  Use as a context manager or call ``close()``.

    ``transport`` replaces the network (an ``httpx.MockTransport`` or ``httpx.HTTPTransport``).
    Intervals and backoff are in seconds; see the module docstring for the retry policy.
    Retries stop after ``max_retries`` or when the next one would start later than
    ``max_elapsed_s`` after the first attempt; a ``Retry-After`` above ``max_retry_after_s``
    is not waited for (the ``RateLimitError`` carries it).  Safe to share between threads.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        *,
        min_request_interval_s: float = 1.0,
        min_launch_interval_s: float = 12.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        max_elapsed_s: float = 90.0,
        reconcile_checks: int = 3,
        reconcile_interval_s: float = 5.0,
        reconcile_window_s: float | None = None,
        call_deadline_s: float | None = None,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key: must be a non-empty string")
        if any(c.isspace() for c in api_key) or not api_key.isprintable():
            raise ValueError("api_key: must not contain whitespace or control characters")
        if not isinstance(timeout, httpx.Timeout):
            raise ValueError("timeout: must be an httpx.Timeout (explicit connect/read/write/pool)")
        for field_name, value in (
            ("min_request_interval_s", min_request_interval_s),
            ("min_launch_interval_s", min_launch_interval_s),
            ("backoff_base_s", backoff_base_s),
            ("backoff_max_s", backoff_max_s),
            ("max_retry_after_s", max_retry_after_s),
            ("max_elapsed_s", max_elapsed_s),
            ("reconcile_interval_s", reconcile_interval_s),
            ("reconcile_window_s", 0.0 if reconcile_window_s is None else reconcile_window_s),
            ("call_deadline_s", 1.0 if call_deadline_s is None else call_deadline_s),
        ):
            if not isinstance(value, (int, float)) or value < 0 or value != value:
                raise ValueError(f"{field_name}: must be a number >= 0")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries: must be an integer >= 0")
        if not isinstance(reconcile_checks, int) or reconcile_checks < 1:
            raise ValueError("reconcile_checks: must be an integer >= 1")

        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.min_request_interval_s = float(min_request_interval_s)
        self.min_launch_interval_s = float(min_launch_interval_s)
        self.max_retries = max_retries
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.max_elapsed_s = float(max_elapsed_s)
        self.reconcile_checks = reconcile_checks
        self.reconcile_interval_s = float(reconcile_interval_s)
        # A server may create the machine up to the read timeout after the request and list it
        # later still: look for it at least that long before calling it not started.
        self.reconcile_window_s = (
            float(timeout.read or 0.0) if reconcile_window_s is None else float(reconcile_window_s)
        )
        # httpx's read timeout is per read: a server that sends a byte every half second never
        # trips it.  Each attempt must be answered, headers and body, within this total.
        if call_deadline_s is None:
            call_deadline_s = float(timeout.read) if timeout.read is not None else 30.0
        self.call_deadline_s = float(call_deadline_s)
        self._secret = _Secret(api_key)
        self._request_pacer = _shared_pacer(self.base_url, api_key, "request")
        self._launch_pacer = _shared_pacer(self.base_url, api_key, "launch")
        self._closed = False
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            timeout=timeout,
            transport=transport,
            verify=_default_ssl_context(),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            follow_redirects=False,
        )

    # -- housekeeping

    @property
    def key_hint(self) -> str:
        """``••••`` and the key's last four characters, for showing which key is in use."""
        return redact_key(self._secret.reveal())

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"LambdaCloudClient(base_url={self.base_url!r}, api_key={self.key_hint!r})"

    def close(self) -> None:
        self._closed = True
        self._http.close()

    def __enter__(self) -> LambdaCloudClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport with retries

    def _backoff_s(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        # "Equal jitter": never less than half the step, so the wait still grows with attempts.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _retry_delay_s(self, error: LambdaCloudError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        backoff = self._backoff_s(attempt)
        retry_after = error.retry_after_s
        if retry_after is None:
            return backoff
        if retry_after > self.max_retry_after_s:
            return None
        # Honour the hint, plus a little jitter so that clients sharing a key do not stampede.
        return retry_after + random.uniform(0, 0.1 * retry_after)

    @staticmethod
    def _retryable(error: LambdaCloudError, policy: _Retry) -> bool:
        if isinstance(error, RateLimitError):
            return True  # rejected by the edge proxy before the application saw it
        if isinstance(error, LambdaConnectionError):
            return policy is not _Retry.UNPROCESSED_ONLY or not error.outcome_unknown
        if isinstance(error, ProviderError) and (error.status_code or 0) >= 500:
            return policy is not _Retry.UNPROCESSED_ONLY
        return False

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        policy: _Retry,
        is_launch: bool = False,
    ) -> httpx.Response:
        if self._closed:
            raise RuntimeError("LambdaCloudClient is closed")
        attempt = 0
        earlier_ambiguous = False
        first_started = time.monotonic()
        while True:
            if is_launch:
                self._launch_pacer.wait(self.min_launch_interval_s)
            self._request_pacer.wait(self.min_request_interval_s)
            started = time.monotonic()
            cause: BaseException | None = None
            try:
                response = self._request_within_deadline(method, path, json_body)
            except httpx.TimeoutException as exc:
                cause = exc
                # Connect/pool timeouts happen before anything was sent.
                sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
                error: LambdaCloudError = LambdaTimeoutError(
                    f"The Lambda Cloud API did not answer {method} /{path} in time.",
                    code="client/timeout",
                    suggestion="Check your network and try again; Lambda Cloud may be slow right now.",
                    outcome_unknown=sent,
                )
            except httpx.TransportError as exc:
                cause = exc
                sent = not isinstance(exc, httpx.ConnectError)
                error = LambdaConnectionError(
                    f"Could not complete {method} /{path} with the Lambda Cloud API ({type(exc).__name__}).",
                    code="client/connection-error",
                    suggestion="Check your network connection and try again.",
                    outcome_unknown=sent,
                )
            else:
                elapsed = time.monotonic() - started
                logger.debug(
                    "%s /%s -> HTTP %d in %.3f s (attempt %d)", method, path, response.status_code, elapsed, attempt + 1
                )
                if response.is_success:
                    return response
                error = error_from_response(response, secret=self._secret.reveal())
            if cause is not None:
                logger.debug("%s /%s failed: %s (attempt %d)", method, path, type(cause).__name__, attempt + 1)
            if (
                policy is _Retry.IDEMPOTENT_WRITE
                and earlier_ambiguous
                and isinstance(error, (NotFoundError, InvalidParametersError))
            ):
                raise _RetriedNotFound(error)
            if attempt >= self.max_retries or not self._retryable(error, policy):
                raise error from cause
            delay = self._retry_delay_s(error, attempt)
            # No retry that would start after max_elapsed_s: a page waits a bounded time.
            if delay is None or time.monotonic() - first_started + delay > self.max_elapsed_s:
                raise error from cause
            earlier_ambiguous = earlier_ambiguous or error.outcome_unknown
            logger.debug("retrying %s /%s in %.2f s after %s", method, path, delay, error.code or error.status_code)
            time.sleep(delay)
            attempt += 1

    def _request_within_deadline(self, method: str, path: str, json_body: Any) -> httpx.Response:
        """One HTTP exchange, read as a stream so that the whole answer must arrive within
        ``call_deadline_s``; raises ``httpx.ReadTimeout`` past it (the request was sent)."""
        deadline = time.monotonic() + self.call_deadline_s
        request = self._http.build_request(method, path, json=json_body)
        streamed = self._http.send(request, stream=True)
        try:
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("no complete answer within the call deadline", request=request)
            chunks = []
            for chunk in streamed.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("no complete answer within the call deadline", request=request)
        finally:
            streamed.close()
        # The body is decoded already: its encoding headers no longer describe it.
        headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _BODY_FRAMING_HEADERS]
        return httpx.Response(streamed.status_code, headers=headers, content=b"".join(chunks), request=request)

    def _data(self, response: httpx.Response) -> Any:
        try:
            payload = response.json()
        except ValueError:
            raise UnexpectedResponseError(
                f"Lambda Cloud replied with HTTP {response.status_code} but the body is not JSON.",
                code="client/bad-reply",
                status_code=response.status_code,
            ) from None
        if not isinstance(payload, Mapping) or "data" not in payload:
            raise UnexpectedResponseError(
                "Lambda Cloud reply is missing field 'data'.", code="client/bad-reply", status_code=response.status_code
            )
        return payload["data"]

    def _get(self, path: str) -> Any:
        return self._data(self._send("GET", path, policy=_Retry.IDEMPOTENT))

    # -- reads

    def instance_types(self) -> list[InstanceType]:
        """Every instance type on offer, with price, specs and the regions that have capacity now."""
        data = self._get("instance-types")
        if not isinstance(data, Mapping):
            raise UnexpectedResponseError("Lambda Cloud reply field 'data' is not an object.", code="client/bad-reply")
        result = []
        for key, item in data.items():
            where = f"data.{key}"
            regions = _need(item, "regions_with_capacity_available", where, list)
            result.append(
                InstanceType.from_api(
                    _need(item, "instance_type", where, Mapping),
                    regions=[Region.from_api(r, where=f"{where}.regions_with_capacity_available") for r in regions],
                    where=f"{where}.instance_type",
                )
            )
        return result

    def instances(self) -> list[Instance]:
        """Instances of the account that are not terminated."""
        data = self._get("instances")
        if not isinstance(data, list):
            raise UnexpectedResponseError("Lambda Cloud reply field 'data' is not a list.", code="client/bad-reply")
        return [Instance.from_api(item, where=f"data[{i}]") for i, item in enumerate(data)]

    def instance(self, instance_id: str) -> Instance:
        """One instance by id; ``NotFoundError`` when it does not exist (any more)."""
        instance_id = _check_id(instance_id, "instance_id")
        return Instance.from_api(self._get(f"instances/{quote(instance_id, safe='')}"), where="data")

    def ssh_keys(self) -> list[SshKey]:
        data = self._get("ssh-keys")
        if not isinstance(data, list):
            raise UnexpectedResponseError("Lambda Cloud reply field 'data' is not a list.", code="client/bad-reply")
        return [SshKey.from_api(item, where=f"data[{i}]") for i, item in enumerate(data)]

    def file_systems(self) -> list[FileSystem]:
        data = self._get("file-systems")
        if not isinstance(data, list):
            raise UnexpectedResponseError("Lambda Cloud reply field 'data' is not a list.", code="client/bad-reply")
        return [FileSystem.from_api(item, where=f"data[{i}]") for i, item in enumerate(data)]

    # -- launch

    def launch(
        self,
        region: str,
        instance_type: str,
        ssh_key_names: Sequence[str] | str,
        name: str | None = None,
        file_system_names: Sequence[str] | None = None,
    ) -> LaunchResult:
        """Launch one instance.  Never launches twice: see the module docstring.

        A unique name ``fedopt-<12 hex>`` is generated when ``name`` is None, so a lost reply can
        be matched against the instance list.
        """
        region = _check_name(region, "region")
        instance_type = _check_name(instance_type, "instance_type")
        keys = _check_names(ssh_key_names, "ssh_key_names")
        if not keys:
            raise InvalidParametersError("ssh_key_names: give one SSH key name.", code="client/invalid-parameters")
        file_systems = _check_names(file_system_names or [], "file_system_names")
        user_named = name is not None
        if name is None:
            name = f"fedopt-{uuid.uuid4().hex[:12]}"
        if not isinstance(name, str):
            raise InvalidParametersError("name: must be a string.", code="client/invalid-parameters")
        if len(name) > _MAX_NAME_LEN:
            raise InvalidParametersError(
                f"name: must be {_MAX_NAME_LEN} characters or fewer (got {len(name)}).",
                code="client/invalid-parameters",
            )

        existing_ids: frozenset[str] = frozenset()
        if user_named:
            # The API has no creation time: remember which same-named instances already exist,
            # so a lost reply is never matched to an older machine.
            existing_ids = frozenset(i.id for i in self.instances() if i.name == name)

        body: dict[str, Any] = {
            "region_name": region,
            "instance_type_name": instance_type,
            "ssh_key_names": list(keys),
            "name": name,
        }
        if file_systems:
            body["file_system_names"] = list(file_systems)
        try:
            response = self._send(
                "POST", "instance-operations/launch", json_body=body, policy=_Retry.UNPROCESSED_ONLY, is_launch=True
            )
        except LambdaCloudError as exc:
            if not exc.outcome_unknown:
                raise
            logger.warning(
                "launch of %s in %s ended ambiguously (%s); checking the instance list",
                instance_type,
                region,
                exc.code or exc.status_code,
            )
            return self._reconcile_launch(name, instance_type, region, existing_ids, exc)
        try:
            ids = _need(self._data(response), "instance_ids", "data", list)
        except UnexpectedResponseError as exc:
            # HTTP 2xx: the launch happened even though the reply cannot be read.
            exc.outcome_unknown = True
            return self._reconcile_launch(name, instance_type, region, existing_ids, exc)
        return LaunchResult(
            instance_ids=tuple(str(i) for i in ids), name=name, instance_type=instance_type, region=region
        )

    def _reconcile_launch(
        self, name: str, instance_type: str, region: str, existing_ids: frozenset[str], cause: LambdaCloudError
    ) -> LaunchResult:
        listed = False
        list_error: LambdaCloudError | None = None
        began = time.monotonic()
        check = 0
        while check < self.reconcile_checks or time.monotonic() - began < self.reconcile_window_s:
            if check:
                time.sleep(self.reconcile_interval_s)
            check += 1
            try:
                instances = self.instances()
            except LambdaCloudError as exc:
                list_error = exc
                continue
            listed = True
            found = [
                i
                for i in instances
                if i.name == name
                and i.instance_type.name == instance_type
                and i.region.name == region
                and i.id not in existing_ids
            ]
            if found:
                logger.warning("launch reply was lost but instance(s) %s exist: using them", [i.id for i in found])
                return LaunchResult(
                    instance_ids=tuple(i.id for i in found),
                    name=name,
                    instance_type=instance_type,
                    region=region,
                    reconciled=True,
                )
        what = f"{instance_type} in {region} (name '{name}')"
        if not listed:
            error: LambdaCloudError = LaunchOutcomeUnknownError(
                f"The launch of {what} got no usable reply ({_describe(cause)}) and the instance list could not "
                f"be read ({_describe(list_error) if list_error else 'no reply'}), "
                "so it is not known whether it happened.",
                code="client/launch-outcome-unknown",
                suggestion="Check the instances in the Lambda Cloud dashboard before launching again.",
                status_code=cause.status_code,
                outcome_unknown=True,
            )
        else:
            error = LaunchNotStartedError(
                f"The launch of {what} is not seen: it got no usable reply ({_describe(cause)}) and no such "
                f"instance appeared in {check} check(s) of the instance list over "
                f"{time.monotonic() - began:.0f} s. Most likely it did not start, but one that appears later bills.",
                code="client/launch-not-started",
                suggestion=f"Look for an instance named '{name}' again before launching another.",
                status_code=cause.status_code,
                outcome_unknown=True,
            )
        error.cause = cause  # type: ignore[attr-defined]
        raise error from cause

    # -- instance operations

    def terminate(self, instance_ids: Sequence[str] | str) -> list[Instance]:
        """Terminate instances.  On return every id is terminating or already gone.

        Retried like a read (terminating twice is terminating once).  If a retry answers
        "unknown id" because the first attempt went through, the list is checked instead.
        """
        ids = _check_names(instance_ids, "instance_ids")
        if not ids:
            raise InvalidParametersError(
                "instance_ids: give at least one instance id.", code="client/invalid-parameters"
            )
        try:
            data = self._data(
                self._send(
                    "POST",
                    "instance-operations/terminate",
                    json_body={"instance_ids": list(ids)},
                    policy=_Retry.IDEMPOTENT_WRITE,
                )
            )
        except _RetriedNotFound as wrapped:
            remaining = {i.id: i for i in self.instances() if i.id in ids}
            still_running = [i for i in remaining.values() if i.status not in ("terminating", *TERMINAL_STATUSES)]
            if still_running:
                raise wrapped.error from None
            return list(remaining.values())
        items = _need(data, "terminated_instances", "data", list)
        return [Instance.from_api(item, where=f"data.terminated_instances[{n}]") for n, item in enumerate(items)]

    def restart(self, instance_ids: Sequence[str] | str) -> list[Instance]:
        """Restart instances.  Retried only when the request surely did not arrive, since a
        second restart would reboot again; an ambiguous failure raises with ``outcome_unknown``."""
        ids = _check_names(instance_ids, "instance_ids")
        if not ids:
            raise InvalidParametersError(
                "instance_ids: give at least one instance id.", code="client/invalid-parameters"
            )
        try:
            response = self._send(
                "POST",
                "instance-operations/restart",
                json_body={"instance_ids": list(ids)},
                policy=_Retry.UNPROCESSED_ONLY,
            )
        except LambdaCloudError as exc:
            if exc.outcome_unknown:
                exc.suggestion = "The restart may or may not have happened: check the instance status before retrying."
            raise
        items = _need(self._data(response), "restarted_instances", "data", list)
        return [Instance.from_api(item, where=f"data.restarted_instances[{n}]") for n, item in enumerate(items)]

    # -- ssh keys

    def add_ssh_key(self, name: str, public_key: str | None = None) -> SshKey:
        """Add a public key, or let Lambda generate a pair (then ``private_key`` is set, once)."""
        name = _check_name(name, "name")
        if len(name) > _MAX_NAME_LEN:
            raise InvalidParametersError(
                f"name: must be {_MAX_NAME_LEN} characters or fewer (got {len(name)}).",
                code="client/invalid-parameters",
            )
        body: dict[str, Any] = {"name": name}
        if public_key is not None:
            if not isinstance(public_key, str) or not public_key.strip():
                raise InvalidParametersError(
                    "public_key: must be a non-empty string.", code="client/invalid-parameters"
                )
            body["public_key"] = public_key.strip()
        response = self._send("POST", "ssh-keys", json_body=body, policy=_Retry.UNPROCESSED_ONLY)
        return SshKey.from_api(self._data(response), where="data")

    def delete_ssh_key(self, ssh_key_id: str) -> None:
        """Delete an SSH key by id (retried like a read; a retry that finds it gone is success)."""
        ssh_key_id = _check_id(ssh_key_id, "ssh_key_id")
        try:
            self._send("DELETE", f"ssh-keys/{quote(ssh_key_id, safe='')}", policy=_Retry.IDEMPOTENT_WRITE)
        except _RetriedNotFound as wrapped:
            if any(k.id == ssh_key_id for k in self.ssh_keys()):
                raise wrapped.error from None


def _describe(error: LambdaCloudError) -> str:
    """A short phrase for what went wrong, for use inside another message."""
    if isinstance(error, LambdaTimeoutError):
        return "no answer in time"
    if isinstance(error, LambdaConnectionError):
        return "the connection broke"
    if isinstance(error, UnexpectedResponseError):
        return "the reply could not be read"
    if error.status_code is not None:
        return f"HTTP {error.status_code}" + (f" {error.code}" if error.code else "")
    return error.code or type(error).__name__


def _check_name(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParametersError(f"{field_name}: must be a non-empty string.", code="client/invalid-parameters")
    return value.strip()


def _check_id(value: Any, field_name: str) -> str:
    value = _check_name(value, field_name)
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
        raise InvalidParametersError(
            f"{field_name}: may contain only letters, digits, '-', '_' and '.'.", code="client/invalid-parameters"
        )
    return value


def _check_names(values: Any, field_name: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]  # a lone string is one name, not a sequence of characters
    if not isinstance(values, Iterable):
        raise InvalidParametersError(f"{field_name}: must be a list of strings.", code="client/invalid-parameters")
    result = []
    for n, value in enumerate(values):
        result.append(_check_name(value, f"{field_name}[{n}]"))
    return tuple(result)
