"""price history, leases, audit log and roles

Added as a second step so that the upgrade path (rows kept across a migration)
is exercised from the first release on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 07:22:08.021053
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)

    op.create_table(
        "lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "user_role",
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )
    op.create_table(
        "platform_price",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_per_hour_usd", sa.Float(), nullable=False),
        sa.Column("regions_with_capacity", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["platform.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("platform_price", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_platform_price_observed_at"), ["observed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_platform_price_platform_id"), ["platform_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("platform_price", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_platform_price_platform_id"))
        batch_op.drop_index(batch_op.f("ix_platform_price_observed_at"))

    op.drop_table("platform_price")
    op.drop_table("user_role")
    op.drop_table("lease")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))

    op.drop_table("audit_event")
