"""purges, the audit log and retention policies

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=1024), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=4096), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "details", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
    op.create_table(
        "retention_policies",
        sa.Column("selector", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=True),
        sa.Column("older_than_s", sa.Float(), nullable=True),
        sa.Column("protect_lineage", sa.Boolean(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("selector", "value"),
    )
    # A plain ADD COLUMN on both databases (no foreign key: SQLite would rebuild the table).
    op.add_column("entries", sa.Column("purge_id", sa.Integer(), nullable=True))
    op.create_index("ix_entries_purge", "entries", ["purge_id", "version_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_entries_purge", table_name="entries")
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_column("purge_id")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")
    op.drop_table("audit_log")
    op.drop_table("retention_policies")
