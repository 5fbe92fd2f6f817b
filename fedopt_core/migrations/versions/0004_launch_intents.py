"""launch_intent: one row per confirmed launch, written before the API call and settled after it

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "launch_intent",
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("instance_type", sa.String(), nullable=False),
        sa.Column("region", sa.String(), nullable=False),
        sa.Column("max_price_per_hour_usd", sa.Float(), nullable=False),
        sa.Column("price_per_hour_usd", sa.Float(), nullable=True),
        sa.Column("person", sa.String(), nullable=True),
        sa.Column("workload", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("instance_ids", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("token"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_launch_intent_account_id", "launch_intent", ["account_id"])
    op.create_index("ix_launch_intent_state", "launch_intent", ["state"])


def downgrade() -> None:
    op.drop_index("ix_launch_intent_state", table_name="launch_intent")
    op.drop_index("ix_launch_intent_account_id", table_name="launch_intent")
    op.drop_table("launch_intent")
