"""run: what an LLM job is (mode, work unit, model size, sequence length, inference shape); GPU FP8 peak

Nullable columns only, so every stored run is kept as it is and its identity (``run_key``) does
not change: the new fields join a run's key only when the run sets one of them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TEXT = ["mode", "work_unit"]
_NUMBERS = ["model_params_b", "active_params_b", "seq_len", "prompt_tokens", "output_tokens", "concurrency"]


def upgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        for name in _TEXT:
            batch_op.add_column(sa.Column(name, sa.String(), nullable=True))
        for name in _NUMBERS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
    with op.batch_alter_table("gpu_spec", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tensor_fp8_tflops", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gpu_spec", schema=None) as batch_op:
        batch_op.drop_column("tensor_fp8_tflops")
    with op.batch_alter_table("run", schema=None) as batch_op:
        for name in reversed(_TEXT + _NUMBERS):
            batch_op.drop_column(name)
