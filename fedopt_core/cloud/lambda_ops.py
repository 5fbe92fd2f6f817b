"""Lambda Cloud, end to end: refresh the live catalogue, launch and terminate with usage, sync.

Every operation reads from the API first and writes to the database only after the API call
succeeded, in one transaction, so a failed call leaves the database as it was (apart from the
note of the failure that the Platforms page shows, and a launch's intent row).

A launch is the one call that spends money, so it is recorded *before* the call as a
:class:`~fedopt_core.models.LaunchIntent` keyed by the user's confirmation: one confirmation
starts at most one machine; the machine's name comes from the confirmation, so a lost reply is
found again by it; and while a launch's outcome is unknown no other launch of the account is
made, until :func:`sync` finds the machine (and opens its session) or the settle window passes.

One coherent concept, kept whole (about 600 lines): launch, its intents, sync (which settles
them) and terminate share the rules above and are read and changed together.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from fedopt_core import auth, db
from fedopt_core.accounts.caps import check_launch
from fedopt_core.accounts.fields import read_text
from fedopt_core.accounts.registry import decrypted_api_key
from fedopt_core.accounts.usage import add_usage_session, session_text_fields
from fedopt_core.catalog import gpus
from fedopt_core.cloud.lambda_cloud import Instance, LambdaCloudClient, LambdaCloudError
from fedopt_core.config import get_settings
from fedopt_core.crypto import SecretKeyError
from fedopt_core.errors import AccountInputError
from fedopt_core.models import Account, AppState, LaunchIntent, Platform, PlatformPrice, UsageSession, utcnow
from fedopt_core.schema import CPU_ONLY

PROVIDER = "lambda"
REFRESH_STATE_KEY = "lambda_refresh"
SYNC_STATE_KEY = "lambda_sync"
SYNC_MIN_INTERVAL = timedelta(minutes=1)

ClientFactory = Callable[[str], LambdaCloudClient]


class LambdaOperationError(RuntimeError):
    """An operation could not be done; the message is fit for a page, and nothing was written."""


def default_client(api_key: str) -> LambdaCloudClient:
    return LambdaCloudClient(api_key, base_url=get_settings().lambda_base_url)


def _client_for(username: str, client_factory: ClientFactory | None, session: Session | None) -> LambdaCloudClient:
    try:
        key = decrypted_api_key(username, session=session)
    except SecretKeyError as exc:  # a lost or changed secret key: one line that says the fix
        raise LambdaOperationError(str(exc)) from None
    if not key:
        raise LambdaOperationError(f"account {username!r} has no API key; add one on the Accounts page")
    return (client_factory or default_client)(key)


def _set_state(session, key: str, value: dict[str, Any]) -> None:  # noqa: ANN001 - Session
    row = session.get(AppState, key) or AppState(key=key)
    row.value, row.updated_at = value, utcnow()
    session.add(row)


def state(key: str, *, session: Session | None = None) -> dict[str, Any]:
    with db.use(session) as db_session:
        row = db_session.get(AppState, key)
        return dict(row.value) if row else {}


# --------------------------------------------------------------------------- live catalogue


@dataclass
class RefreshReport:
    ok: bool
    added: list[str] = field(default_factory=list)
    price_changed: list[str] = field(default_factory=list)
    disappeared: list[str] = field(default_factory=list)
    seen: int = 0
    error: str | None = None
    overrode_edits: list[str] = field(default_factory=list)  # hand-edited prices the live ones replaced


_GPU_COUNT = re.compile(r"gpu_(\d+)x_")


def _gpu_fields(instance_type: str, gpus_count: int, gpu_description: str) -> tuple[str, int]:
    if gpus_count <= 0 and not _GPU_COUNT.match(instance_type):
        return CPU_ONLY, 0
    canonical = gpus.normalise_gpu_name(instance_type) or gpus.normalise_gpu_name(gpu_description)
    return canonical or (gpu_description or instance_type), max(1, gpus_count)


def refresh_catalogue(
    username: str, *, client_factory: ClientFactory | None = None, session: Session | None = None
) -> RefreshReport:
    """Fetch Lambda's instance types with one account and update prices, capacity and history.

    Types that no longer appear are marked unavailable (kept, with their history).  On any API
    error the catalogue is left as it was and the failure is noted for the page.
    """
    auth.require("admin", "refreshing the catalogue with an account's key")
    now = utcnow()
    try:
        with _client_for(username, client_factory, session) as client:
            types = client.instance_types()
    except (LambdaCloudError, LambdaOperationError) as exc:
        with db.use(session) as db_session:
            previous = state(REFRESH_STATE_KEY, session=db_session)
            _set_state(
                db_session,
                REFRESH_STATE_KEY,
                {**previous, "last_error": str(exc), "last_attempt_at": now.isoformat(), "ok": False},
            )
        return RefreshReport(ok=False, error=str(exc))

    report = RefreshReport(ok=True, seen=len(types))
    with db.use(session) as db_session:
        existing = {p.instance_type: p for p in db_session.exec(select(Platform).where(Platform.provider == PROVIDER))}
        for item in types:
            price = item.price_per_hour_usd
            capacity = list(item.region_names_with_capacity)
            platform = existing.get(item.name)
            if platform is None:
                gpu_type, count = _gpu_fields(item.name, item.gpus, item.gpu_description)
                platform = Platform(
                    provider=PROVIDER,
                    instance_type=item.name,
                    description=item.description,
                    gpu_type=gpu_type,
                    gpu_count=count,
                    vcpus=item.vcpus,
                    ram_gb=round(item.memory_gib * 1.073741824, 1),
                    storage_gb=round(item.storage_gib * 1.073741824, 1),
                    price_per_hour_usd=price,
                    regions=capacity,
                    source="Lambda Cloud API",
                    origin="catalogue",
                )
                report.added.append(item.name)
            elif platform.price_per_hour_usd != price:
                # A live price always wins: a hand-edited price is stale the moment Lambda's differs.
                if platform.user_edited:
                    report.overrode_edits.append(f"{item.name}: ${platform.price_per_hour_usd:.2f} -> ${price:.2f}")
                platform.price_per_hour_usd = price
                report.price_changed.append(item.name)
            platform.regions_with_capacity = capacity
            platform.available = True
            platform.last_refreshed_at = now
            platform.as_of = now.date()
            platform.updated_at = now
            db_session.add(platform)
            db_session.flush()
            # Every refresh is an observation: the history shows capacity as well as price.
            db_session.add(
                PlatformPrice(
                    platform_id=platform.id,
                    observed_at=now,
                    price_per_hour_usd=price,
                    regions_with_capacity=capacity,
                    source="lambda_api",
                )
            )
        listed = {item.name for item in types}
        for name, platform in existing.items():
            if name not in listed and platform.origin != "user" and platform.available:
                platform.available = False
                platform.regions_with_capacity = []
                platform.updated_at = now
                db_session.add(platform)
                report.disappeared.append(name)
        _set_state(
            db_session,
            REFRESH_STATE_KEY,
            {
                "last_success_at": now.isoformat(),
                "last_attempt_at": now.isoformat(),
                "ok": True,
                "last_error": None,
                "account": username,
                "types": len(types),
            },
        )
        auth.record(
            "catalogue.refresh",
            PROVIDER,
            {
                "account": username,
                "added": report.added,
                "price_changed": report.price_changed,
                "overrode_edits": report.overrode_edits,
                "disappeared": report.disappeared,
            },
            session=db_session,
        )
    return report


# --------------------------------------------------------------------------- launch / terminate


@dataclass
class LaunchOutcome:
    instance_ids: list[str]
    session_ids: list[int]
    price_per_hour_usd: float
    name: str = ""


#: A launch whose outcome is unknown stays "unsettled" this long unless sync sees its machine;
#: meanwhile no other launch on the account is accepted (it could be a second machine).
SETTLE_WINDOW = timedelta(minutes=10)
UNSETTLED = ("pending", "unknown")
_TOKEN = re.compile(r"[0-9a-f]{32}")


def new_confirmation() -> str:
    """A fresh confirmation token: one per "yes, launch" the user gives."""
    return uuid.uuid4().hex


def machine_name(confirmation: str) -> str:
    """The name Lambda is told to give the machine of a confirmation (found again by it)."""
    return f"fedopt-{confirmation[:16]}"


def launch_intent(confirmation: str, *, session: Session | None = None) -> dict[str, Any] | None:
    """What became of a confirmation: its state, machine name and instance ids (None: never used)."""
    with db.use(session) as db_session:
        row = db_session.get(LaunchIntent, confirmation)
        return None if row is None else row.model_dump()


def _unsettled(db_session: Session, account_id: int, now: datetime) -> LaunchIntent | None:
    rows = db_session.exec(
        select(LaunchIntent).where(LaunchIntent.account_id == account_id, LaunchIntent.state.in_(UNSETTLED))
    ).all()
    recent = [r for r in rows if now - _aware(r.created_at) < SETTLE_WINDOW]
    return recent[0] if recent else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _settle(token: str, state: str, *, error: str | None = None, session: Session | None = None) -> None:
    """Record how a launch call ended; only a pending intent changes (an unknown one waits for sync)."""
    with db.use(session) as db_session:
        row = db_session.get(LaunchIntent, token)
        if row is not None and row.state == "pending":
            row.state, row.error, row.settled_at = state, error, utcnow()
            db_session.add(row)


def launch(
    username: str,
    instance_type: str,
    region: str,
    ssh_key_names: Sequence[str],
    *,
    max_price_per_hour_usd: float,
    confirmation: str | None = None,
    expected_hours: float | None = None,
    override_reason: str | None = None,
    person: str | None = None,
    workload: str | None = None,
    client_factory: ClientFactory | None = None,
    session: Session | None = None,
) -> LaunchOutcome:
    """Launch one machine for one confirmation; refuse when its live hourly price is above the guard.

    In order: every field the usage session and the audit row need is checked; the confirmation
    is recorded (a second call with the same ``confirmation`` is refused, so a double click starts
    one machine); no launch is made while another of the account is unsettled; the live price is
    checked; then the one API call, with a name derived from the confirmation, so that a lost
    reply is found again by it (here, and later by :func:`sync`).  The session is opened with it.
    The account's caps (:func:`~fedopt_core.accounts.caps.check_launch`, for ``expected_hours``,
    the job's predicted upper bound) refuse a launch past them, unless ``override_reason`` says why.
    """
    actor = auth.require("admin", "launching a machine")
    if max_price_per_hour_usd is None or not max_price_per_hour_usd > 0:
        raise LambdaOperationError("max_price_per_hour_usd: set a maximum hourly cost above zero")
    token = confirmation or new_confirmation()
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise LambdaOperationError("confirmation: not a token from new_confirmation()")
    name = machine_name(token)
    try:  # before anything is started: what the session and the audit row will need
        read_text(instance_type, "platform", required=True)
        fields = session_text_fields(person=person or actor.identity, workload=workload, region=region)
        reason = read_text(override_reason, "override_reason", max_len=500)
        if expected_hours is not None and not (math.isfinite(expected_hours) and 0 < expected_hours <= 1e5):
            raise AccountInputError("expected_hours", "must be a number of hours above 0 (the job's upper bound)")
    except AccountInputError as exc:
        raise LambdaOperationError(f"not launched: {exc}") from None
    now = utcnow()
    with db.use(session) as db_session:
        account = db_session.exec(select(Account).where(Account.username == username)).first()
        if account is None:
            raise LambdaOperationError(f"no account named {username!r}")
        other = _unsettled(db_session, int(account.id), now)
        # Read after the account's open launches: a concurrent press of this confirmation that
        # committed in between is then seen as what it is, this confirmation, used.
        used = db_session.get(LaunchIntent, token) or (other if other is not None and other.token == token else None)
        if used is not None:
            raise LambdaOperationError(
                f"this confirmation was already used (machine {used.name}: {used.state}); "
                "confirm again to launch another machine"
            )
        if other is not None:
            raise LambdaOperationError(
                f"the launch of {other.instance_type} (machine {other.name}) is not settled yet: it may be "
                "running. Sync checks for it; no other launch on this account until then"
            )
        try:
            db_session.add(
                LaunchIntent(
                    token=token,
                    account_id=int(account.id),
                    name=name,
                    instance_type=instance_type,
                    region=region,
                    max_price_per_hour_usd=float(max_price_per_hour_usd),
                    expected_hours=expected_hours,
                    override_reason=reason,
                    person=fields["person"],
                    workload=fields["workload"],
                    created_at=now,
                )
            )
            db_session.flush()
        except IntegrityError:  # the same confirmation, recorded by a concurrent request first
            raise LambdaOperationError("this confirmation was already used; confirm again to launch another") from None
    try:
        with _client_for(username, client_factory, session) as client:
            try:
                live = {t.name: t for t in client.instance_types()}
            except LambdaCloudError as exc:
                raise LambdaOperationError(f"could not read prices before launching: {exc}") from None
            if instance_type not in live:
                raise LambdaOperationError(f"instance_type: Lambda offers no {instance_type!r} now")
            price = live[instance_type].price_per_hour_usd
            if price > max_price_per_hour_usd:
                raise LambdaOperationError(
                    f"{instance_type} costs ${price:.2f}/h, above your maximum of "
                    f"${max_price_per_hour_usd:.2f}/h; not launched"
                )
            caps = check_launch(username, price, expected_hours, session=session)
            if caps.refused and not reason:
                raise LambdaOperationError(f"not launched: {caps.refused}. An admin may launch anyway with a reason")
            try:
                result = client.launch(region, instance_type, list(ssh_key_names), name=name)
            except LambdaCloudError as exc:
                if exc.outcome_unknown:
                    _settle(token, "unknown", error=str(exc), session=session)
                    raise LambdaOperationError(
                        f"the launch of {instance_type} (machine {name}) got no usable reply and the machine is "
                        f"not seen yet: it may still start. Sync keeps looking for it by its name; no other "
                        f"launch on this account for {int(SETTLE_WINDOW.total_seconds() // 60)} minutes unless "
                        "it is found or found absent"
                    ) from None
                raise LambdaOperationError(f"launch failed: {exc}") from None
    except LambdaOperationError as exc:
        _settle(token, "not_started", error=str(exc), session=session)
        raise
    except BaseException:
        _settle(token, "unknown", error="interrupted during the launch call", session=session)
        raise
    return _record_started(username, token, list(result.instance_ids), price, session=session)


def _record_started(
    username: str,
    token: str,
    instance_ids: list[str],
    price: float,
    *,
    action: str = "instance.launch",
    session: Session | None = None,
) -> LaunchOutcome:
    """The machine runs: its usage session(s), the audit row and the settled intent, in one transaction."""
    with db.use(session) as db_session:
        intent = db_session.get(LaunchIntent, token)
        already = set(
            db_session.exec(select(UsageSession.instance_id).where(UsageSession.instance_id.in_(instance_ids))).all()
        )
        started = _aware(intent.created_at)
        session_ids = [
            add_usage_session(
                username,
                intent.instance_type,
                started,
                None,
                source="lambda_sync",
                provider=PROVIDER,
                price_per_hour_usd=price,
                instance_id=instance_id,
                region=intent.region,
                person=intent.person,
                workload=intent.workload,
                session=db_session,
            )
            for instance_id in instance_ids
            if instance_id not in already  # sync may have opened it first
        ]
        intent.state, intent.instance_ids, intent.price_per_hour_usd = "started", instance_ids, price
        intent.settled_at = utcnow()
        db_session.add(intent)
        auth.record(
            action,
            ",".join(instance_ids),
            {
                "account": username,
                "instance_type": intent.instance_type,
                "region": intent.region,
                "price_per_hour_usd": price,
                "name": intent.name,
                "expected_hours": intent.expected_hours,
                "override_reason": intent.override_reason,
            },
            session=db_session,
        )
        return LaunchOutcome(instance_ids, session_ids, price, intent.name)


def _close_sessions(session: Session, instance_ids: Sequence[str], ended_at: datetime, outcome: str) -> list[int]:
    closed = []
    rows = session.exec(
        select(UsageSession).where(UsageSession.instance_id.in_(list(instance_ids)), UsageSession.ended_at.is_(None))
    ).all()
    for row in rows:
        started = row.started_at if row.started_at.tzinfo else row.started_at.replace(tzinfo=ended_at.tzinfo)
        hours = max(0.0, (ended_at - started).total_seconds() / 3600.0)
        row.ended_at = ended_at
        row.outcome = outcome
        if row.price_per_hour_usd is not None:
            row.cost_usd = hours * row.price_per_hour_usd
        session.add(row)
        closed.append(int(row.id))
    return closed


def terminate(
    username: str,
    instance_ids: Sequence[str],
    *,
    client_factory: ClientFactory | None = None,
    session: Session | None = None,
) -> list[int]:
    """Terminate machines and close their usage sessions; returns the closed session ids."""
    auth.require("admin", "terminating a machine")
    ids = [instance_ids] if isinstance(instance_ids, str) else list(instance_ids)
    with _client_for(username, client_factory, session) as client:
        try:
            client.terminate(ids)
        except LambdaCloudError as exc:
            raise LambdaOperationError(f"terminate failed: {exc}") from None
    with db.use(session) as db_session:
        closed = _close_sessions(db_session, ids, utcnow(), "completed")
        auth.record("instance.terminate", ",".join(ids), {"account": username, "sessions": closed}, session=db_session)
    return closed


# --------------------------------------------------------------------------- sync


@dataclass
class SyncReport:
    ok: bool
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    running: int = 0
    skipped: bool = False
    error: str | None = None
    settled: list[str] = field(default_factory=list)  # launches whose outcome sync found out


def sync(
    username: str, *, force: bool = True, client_factory: ClientFactory | None = None, session: Session | None = None
) -> SyncReport:
    """Reconcile usage sessions with the machines Lambda says are running for this account.

    Opens a session for a machine launched elsewhere (from now: the API gives no launch time)
    and closes the sessions of machines terminated elsewhere.  With ``force=False`` it does
    nothing when the last sync of this account was less than a minute ago (page loads).
    """
    auth.require("member", "syncing usage")
    now = utcnow()
    last = state(SYNC_STATE_KEY, session=session).get(username)
    if not force and last and now - datetime.fromisoformat(last) < SYNC_MIN_INTERVAL:
        return SyncReport(ok=True, skipped=True)
    try:
        with _client_for(username, client_factory, session) as client:
            live: list[Instance] = [i for i in client.instances() if not i.is_terminal]
    except (LambdaCloudError, LambdaOperationError) as exc:
        return SyncReport(ok=False, error=str(exc))
    report = SyncReport(ok=True, running=len(live))
    live_ids = {i.id for i in live}
    with db.use(session) as db_session:
        account = db_session.exec(select(Account).where(Account.username == username)).one()
        report.settled = _settle_intents(username, int(account.id), live, now, db_session)
        open_rows = db_session.exec(
            select(UsageSession).where(
                UsageSession.account_id == account.id,
                UsageSession.provider == PROVIDER,
                UsageSession.instance_id.is_not(None),
                UsageSession.ended_at.is_(None),
            )
        ).all()
        open_ids = {row.instance_id for row in open_rows}
        gone = sorted(open_ids - live_ids)
        _close_sessions(db_session, gone, now, "completed")
        report.closed = gone
        for instance in live:
            if instance.id in open_ids:
                continue
            price = instance.price_per_hour_usd
            db_session.add(
                UsageSession(
                    account_id=account.id,
                    platform=instance.instance_type.name if instance.instance_type else "unknown",
                    provider=PROVIDER,
                    instance_id=instance.id,
                    region=instance.region.name if instance.region else None,
                    started_at=now,
                    price_per_hour_usd=price,
                    outcome="running",
                    source="lambda_sync",
                    notes="opened by sync: launched outside fedopt; start time is when fedopt first saw it",
                )
            )
            report.opened.append(instance.id)
        synced = state(SYNC_STATE_KEY, session=db_session)
        synced[username] = now.isoformat()
        _set_state(db_session, SYNC_STATE_KEY, synced)
    return report


def _settle_intents(
    username: str, account_id: int, live: list[Instance], now: datetime, db_session: Session
) -> list[str]:
    """Launches whose outcome was not known: a machine listed under the launch's name opens its
    session (from when it was confirmed); one still unseen after :data:`SETTLE_WINDOW` did not start."""
    settled = []
    open_intents = db_session.exec(
        select(LaunchIntent).where(LaunchIntent.account_id == account_id, LaunchIntent.state.in_(UNSETTLED))
    ).all()
    for intent in open_intents:
        found = [i for i in live if i.name == intent.name]
        if found:
            price = (
                found[0].price_per_hour_usd if found[0].price_per_hour_usd is not None else intent.price_per_hour_usd
            )
            _record_started(
                username, intent.token, [i.id for i in found], price, action="instance.launch.found", session=db_session
            )
            settled.append(intent.name)
        elif now - _aware(intent.created_at) >= SETTLE_WINDOW:
            intent.state, intent.settled_at = "not_started", now
            intent.error = f"not listed by Lambda within {int(SETTLE_WINDOW.total_seconds() // 60)} minutes"
            db_session.add(intent)
            settled.append(intent.name)
    db_session.flush()
    return settled


def running_machines(username: str, *, session: Session | None = None) -> pd.DataFrame:
    """The open Lambda sessions of an account: what fedopt believes is running and billing now."""
    with db.use(session) as db_session:
        account = db_session.exec(select(Account).where(Account.username == username)).first()
        if account is None:
            raise LambdaOperationError(f"no account named {username!r}")
        rows = db_session.exec(
            select(UsageSession)
            .where(
                UsageSession.account_id == account.id,
                UsageSession.provider == PROVIDER,
                UsageSession.instance_id.is_not(None),
                UsageSession.ended_at.is_(None),
            )
            .order_by(UsageSession.started_at)
        ).all()
    now = utcnow()
    frame = pd.DataFrame(
        [
            {
                "instance_id": r.instance_id,
                "instance_type": r.platform,
                "region": r.region,
                "started_at": r.started_at,
                "price_per_hour_usd": r.price_per_hour_usd,
                "source": r.source,
            }
            for r in rows
        ],
        columns=["instance_id", "instance_type", "region", "started_at", "price_per_hour_usd", "source"],
    )
    started = pd.to_datetime(frame["started_at"], utc=True)
    frame["hours_so_far"] = (pd.Timestamp(now) - started).dt.total_seconds() / 3600.0
    frame["cost_so_far_usd"] = frame["hours_so_far"] * frame["price_per_hour_usd"]
    return frame
