"""an index on aliases(version_id): a version's aliases without scanning every alias

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:00:00.000000
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_aliases_version", "aliases", ["version_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_aliases_version", table_name="aliases")
