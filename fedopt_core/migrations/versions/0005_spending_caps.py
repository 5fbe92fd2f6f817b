"""spending caps: an account's maximum USD per hour and auto-terminate; a launch's expected hours and override reason

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_usd_per_hour", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("auto_terminate", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("launch_intent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expected_hours", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("override_reason", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("launch_intent", schema=None) as batch_op:
        batch_op.drop_column("override_reason")
        batch_op.drop_column("expected_hours")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("auto_terminate")
        batch_op.drop_column("max_usd_per_hour")
