"""foundation tables: platforms, GPU specs, runs, predictions, model versions,
accounts, usage sessions, techniques, app state

Revision ID: 0001
Revises:
Create Date: 2026-11-29 07:22:08.021053
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("institution", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("email_check_reason", sa.String(), nullable=True),
        sa.Column("api_key_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("api_key_last4", sa.String(), nullable=True),
        sa.Column("api_key_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("monthly_quota_hours", sa.Float(), nullable=True),
        sa.Column("monthly_budget_usd", sa.Float(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("project", sa.String(), nullable=True),
        sa.Column("notes", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_account_username"), ["username"], unique=True)

    op.create_table(
        "app_state",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "gpu_spec",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gpu_name", sa.String(), nullable=False),
        sa.Column("architecture", sa.String(), nullable=True),
        sa.Column("release_year", sa.Integer(), nullable=True),
        sa.Column("memory_gb", sa.Float(), nullable=True),
        sa.Column("memory_bandwidth_gb_s", sa.Float(), nullable=True),
        sa.Column("fp16_tflops_nontensor", sa.Float(), nullable=True),
        sa.Column("fp32_tflops", sa.Float(), nullable=True),
        sa.Column("tensor_fp16_tflops", sa.Float(), nullable=True),
        sa.Column("sm_count", sa.Integer(), nullable=True),
        sa.Column("l2_cache_mb", sa.Float(), nullable=True),
        sa.Column("tdp_w", sa.Float(), nullable=True),
        sa.Column("compute_capability", sa.Float(), nullable=True),
        sa.Column("form_factor", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gpu_spec", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gpu_spec_gpu_name"), ["gpu_name"], unique=True)

    op.create_table(
        "model_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("n_train_runs", sa.Integer(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("artifact", sa.LargeBinary(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "platform",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("instance_type", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("gpu_type", sa.String(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("gpu_memory_gb", sa.Float(), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=True),
        sa.Column("ram_gb", sa.Float(), nullable=True),
        sa.Column("storage_gb", sa.Float(), nullable=True),
        sa.Column("network_speed_mbps", sa.Float(), nullable=True),
        sa.Column("price_per_hour_usd", sa.Float(), nullable=True),
        sa.Column("spot_price_per_hour_usd", sa.Float(), nullable=True),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("regions_with_capacity", sa.JSON(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("user_edited", sa.Boolean(), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "instance_type", name="uq_platform_provider_type"),
    )
    with op.batch_alter_table("platform", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_platform_gpu_type"), ["gpu_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_platform_provider"), ["provider"], unique=False)

    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(), nullable=False),
        sa.Column("task_type", sa.String(), nullable=True),
        sa.Column("workload", sa.String(), nullable=True),
        sa.Column("precision", sa.String(), nullable=True),
        sa.Column("batch_size", sa.Float(), nullable=True),
        sa.Column("work_units", sa.Float(), nullable=True),
        sa.Column("software", sa.String(), nullable=True),
        sa.Column("input_size_mb", sa.Float(), nullable=True),
        sa.Column("output_size_mb", sa.Float(), nullable=True),
        sa.Column("memory_required_gb", sa.Float(), nullable=True),
        sa.Column("cpu_cores_required", sa.Float(), nullable=True),
        sa.Column("gpu_memory_required_gb", sa.Float(), nullable=True),
        sa.Column("is_batch_processing", sa.Boolean(), nullable=True),
        sa.Column("platform", sa.String(), nullable=True),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("gpu_type", sa.String(), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("gpu_memory_gb", sa.Float(), nullable=True),
        sa.Column("cpu_type", sa.String(), nullable=True),
        sa.Column("vcpus", sa.Float(), nullable=True),
        sa.Column("ram_gb", sa.Float(), nullable=True),
        sa.Column("network_speed_mbps", sa.Float(), nullable=True),
        sa.Column("price_per_hour_usd", sa.Float(), nullable=True),
        sa.Column("execution_time_s", sa.Float(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("logged_by", sa.String(), nullable=True),
        sa.Column("notes", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_run_gpu_type"), ["gpu_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_run_run_key"), ["run_key"], unique=True)
        batch_op.create_index(batch_op.f("ix_run_workload"), ["workload"], unique=False)

    op.create_table(
        "technique",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("effectiveness", sa.String(), nullable=True),
        sa.Column("savings_max_pct", sa.Float(), nullable=True),
        sa.Column("platforms", sa.JSON(), nullable=False),
        sa.Column("source_url", sa.String(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("user_edited", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("technique", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_technique_slug"), ["slug"], unique=True)

    op.create_table(
        "prediction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_key", sa.String(), nullable=False),
        sa.Column("workload", sa.String(), nullable=True),
        sa.Column("gpu_type", sa.String(), nullable=True),
        sa.Column("gpu_count", sa.Integer(), nullable=True),
        sa.Column("platform", sa.String(), nullable=True),
        sa.Column("predicted_time_s", sa.Float(), nullable=False),
        sa.Column("lower_s", sa.Float(), nullable=True),
        sa.Column("upper_s", sa.Float(), nullable=True),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prediction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prediction_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_prediction_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prediction_task_key"), ["task_key"], unique=False)

    op.create_table(
        "usage_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("instance_id", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("price_per_hour_usd", sa.Float(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("person", sa.String(), nullable=True),
        sa.Column("workload", sa.String(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("usage_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_session_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_session_instance_id"), ["instance_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_session_started_at"), ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_session_started_at"))
        batch_op.drop_index(batch_op.f("ix_usage_session_instance_id"))
        batch_op.drop_index(batch_op.f("ix_usage_session_account_id"))

    op.drop_table("usage_session")
    with op.batch_alter_table("prediction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prediction_task_key"))
        batch_op.drop_index(batch_op.f("ix_prediction_run_id"))
        batch_op.drop_index(batch_op.f("ix_prediction_created_at"))

    op.drop_table("prediction")
    with op.batch_alter_table("technique", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_technique_slug"))

    op.drop_table("technique")
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_workload"))
        batch_op.drop_index(batch_op.f("ix_run_run_key"))
        batch_op.drop_index(batch_op.f("ix_run_gpu_type"))
        batch_op.drop_index(batch_op.f("ix_run_created_at"))

    op.drop_table("run")
    with op.batch_alter_table("platform", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_platform_provider"))
        batch_op.drop_index(batch_op.f("ix_platform_gpu_type"))

    op.drop_table("platform")
    op.drop_table("model_version")
    with op.batch_alter_table("gpu_spec", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gpu_spec_gpu_name"))

    op.drop_table("gpu_spec")
    op.drop_table("app_state")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_username"))

    op.drop_table("account")
