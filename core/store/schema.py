"""Tables of the SQL store. Alembic migrations (headwater.migrations) create exactly these."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from headwater.events import ALIAS_MAX, DIGEST_MAX, ID_MAX, NAME_MAX, ORCHESTRATOR_MAX, PATH_MAX, TYPE_MAX


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite would hand back naive ones).

    On SQLite the value is the text SQLAlchemy's DateTime writes ("YYYY-MM-DD HH:MM:SS.ffffff",
    which compares correctly as text), formatted and parsed here directly: its regex parser was
    most of the cost of loading a large lineage graph.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            # strftime("%Y") does not pad years before 1000; the text must sort as it compares.
            return f"{value.year:04d}" + value.strftime("-%m-%d %H:%M:%S.%f")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)  # a DateTime column gives datetimes, SQLite's text aside
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class _JSON(sa.types.TypeDecorator[Any]):
    """JSON, stored as JSONB on PostgreSQL.

    Picked when a dialect loads it, so that SQLite's task processes never import SQLAlchemy's
    PostgreSQL dialect (a fifth of opening a store); `with_variant(JSONB())` would import it here.
    """

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSON = _JSON()
RunId = sa.String(ID_MAX)

metadata = sa.MetaData()

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(NAME_MAX), nullable=False, unique=True),
    sa.Column("type", sa.String(TYPE_MAX)),
    sa.Column("description", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Next label number; bumped under a row lock so labels stay gapless (no sequences).
    sa.Column("next_label", sa.Integer, nullable=False, server_default="0"),
    # Its live (not deleted) versions and the newest one's created_at (NULL: none), kept by every
    # write that adds or deletes a version, under the same lock: the artifact list reads them
    # instead of counting versions. On PostgreSQL, migration 0005 adds a trigram index on `name`
    # for search where pg_trgm is available (not declared here: it depends on the database).
    sa.Column("n_versions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(DIGEST_MAX), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("n_entries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("produced_by", RunId),
    sa.Column("deleted_at", UTCDateTime),
    sa.UniqueConstraint("artifact_id", "digest", name="uq_versions_artifact_digest"),
    sa.UniqueConstraint("artifact_id", "label", name="uq_versions_artifact_label"),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("path", sa.String(PATH_MAX), primary_key=True),
    sa.Column("digest", sa.String(DIGEST_MAX), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("ref", sa.String(PATH_MAX)),
    # The audit row of the purge that removed this entry's bytes (NULL: not purged).
    sa.Column("purge_id", sa.Integer),
    sa.Index("ix_entries_digest", "digest"),
    sa.Index("ix_entries_ref", "ref"),
    sa.Index("ix_entries_purge", "purge_id", "version_id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", RunId, primary_key=True),
    sa.Column("job", sa.String(NAME_MAX), nullable=False),
    sa.Column("job_namespace", sa.String(NAME_MAX), nullable=False),
    sa.Column("orchestrator", sa.String(ORCHESTRATOR_MAX), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("params", JSON, nullable=False),
    sa.Column("parent_id", RunId),
    sa.Column("error", sa.Text),
    sa.Column("code", JSON, nullable=False),
    sa.Column("links", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_runs_job", "job"),
    sa.Index("ix_runs_parent", "parent_id"),
    sa.Index("ix_runs_created", "created_at"),
)

edges = sa.Table(
    "edges",
    metadata,
    sa.Column("run_id", RunId, primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("direction", sa.String(8), primary_key=True),
    sa.Column("exact", sa.Boolean, nullable=False),
    sa.Column("metadata", JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Walks go version -> runs that used it -> versions they produced (and back): both orders.
    sa.Index("ix_edges_version", "version_id", "direction", "run_id"),
)

# Which of a run's inputs made which of its outputs, where the orchestrator or the user says so.
# An output of a run with no rows here was made from all of the run's inputs (the fallback).
output_inputs = sa.Table(
    "output_inputs",
    metadata,
    sa.Column("run_id", RunId, primary_key=True),
    sa.Column("output_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("input_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_output_inputs_input", "input_id", "run_id"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), primary_key=True),
    sa.Column("alias", sa.String(ALIAS_MAX), primary_key=True),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id")),  # NULL: removed
    sa.Column("moved_at", UTCDateTime, nullable=False),
    # every read of a version loads its aliases (and retention asks which versions hold one)
    sa.Index("ix_aliases_version", "version_id"),
)

alias_moves = sa.Table(
    "alias_moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("artifact_id", sa.Integer, sa.ForeignKey("artifacts.id"), nullable=False),
    sa.Column("alias", sa.String(ALIAS_MAX), nullable=False),
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id")),  # NULL: removed
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_alias_moves_lookup", "artifact_id", "alias", "at"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("version_id", sa.Integer, sa.ForeignKey("versions.id"), primary_key=True),
    sa.Column("tag", sa.String(ALIAS_MAX), primary_key=True),
    sa.Index("ix_tags_tag", "tag"),
)

applied_events = sa.Table(
    "applied_events",
    metadata,
    sa.Column("id", sa.String(ID_MAX), primary_key=True),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

# Append-only: rows are inserted, never updated or deleted (purges, deletes, retention removals).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(ID_MAX), nullable=False, unique=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("who", sa.String(NAME_MAX), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(PATH_MAX), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("details", JSON, nullable=False),
    sa.Index("ix_audit_log_at", "at"),
)

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    sa.Column("selector", sa.String(16), primary_key=True),  # name or type
    sa.Column("value", sa.String(NAME_MAX), primary_key=True),
    sa.Column("keep_last", sa.Integer),
    sa.Column("older_than_s", sa.Float),
    sa.Column("protect_lineage", sa.Boolean, nullable=False),
    sa.Column("set_at", UTCDateTime, nullable=False),
    sa.Column("who", sa.String(NAME_MAX), nullable=False),
)
