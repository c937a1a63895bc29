"""per-output inputs: which of a run's inputs made which of its outputs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 00:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "output_inputs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=False),
        sa.Column("input_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["input_id"], ["versions.id"]),
        sa.ForeignKeyConstraint(["output_id"], ["versions.id"]),
        sa.PrimaryKeyConstraint("run_id", "output_id", "input_id"),
    )
    op.create_index("ix_output_inputs_input", "output_inputs", ["input_id", "run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_output_inputs_input", table_name="output_inputs")
    op.drop_table("output_inputs")
