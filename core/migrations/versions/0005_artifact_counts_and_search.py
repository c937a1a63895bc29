"""each artifact's count of live versions and last update on its row, and a trigram index for search

The artifact list and search counted every artifact's versions (`GROUP BY` over all versions) on
each page; the write path keeps both on the artifact row instead, under the row lock that already
bumps `next_label`. On PostgreSQL, `name ILIKE '%q%'` gets a trigram index when the pg_trgm
extension can be had (a managed database may refuse CREATE EXTENSION: the search then scans).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 09:00:00.000000
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("headwater.migrations")

TRIGRAM_INDEX = "ix_artifacts_name_trgm"


def upgrade() -> None:
    # Plain ADD COLUMNs on both databases (batch mode would rebuild the table on SQLite).
    op.add_column("artifacts", sa.Column("n_versions", sa.Integer(), server_default="0", nullable=False))
    op.add_column("artifacts", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE artifacts SET"
        " n_versions = (SELECT count(*) FROM versions v WHERE v.artifact_id = artifacts.id AND v.deleted_at IS NULL),"
        " updated_at = (SELECT max(v.created_at) FROM versions v"
        " WHERE v.artifact_id = artifacts.id AND v.deleted_at IS NULL)"
    )
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    try:
        with conn.begin_nested():  # a refused extension must not abort the migration's transaction
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as err:
        first = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err)
        log.warning("pg_trgm is not available (%s): artifact search by name scans the artifacts table", first)
        return
    op.execute(f"CREATE INDEX {TRIGRAM_INDEX} ON artifacts USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("n_versions")
