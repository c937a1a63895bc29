"""The schema check on opening a store: Alembic only when there is something to upgrade."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.store import migrate, schema
from headwater.store.sql import SQLStore
from headwater.store.sql.engine import engine_url

OPEN_AND_LOG = """
import sys, headwater as hw
client = hw.Client(uri=sys.argv[1], home=sys.argv[2])
client.log_artifact("ds", sys.argv[3])
client.close()
print(sorted(m for m in sys.modules if m == "alembic" or m.startswith("alembic.")))
"""


def test_head_is_the_migration_scripts_head() -> None:
    assert migrate.head_revision() == migrate.HEAD


def test_a_store_at_head_opens_without_alembic(store_uri: str, headwater_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_text("alembic stays out of the task process")

    def open_and_log() -> str:
        done = subprocess.run(
            [sys.executable, "-c", OPEN_AND_LOG, store_uri, str(headwater_home), str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = open_and_log()  # creates the schema when the database is new
    if store_uri.startswith("sqlite"):
        assert first != "[]"  # a new file: Alembic created its schema
    assert open_and_log() == "[]"
    assert [v.ref for v in hw.Client(uri=store_uri, home=headwater_home).versions("ds")] == ["ds:v0"]


# -- 0005: artifact counts on the artifact row, and search's trigram index -----------------------

_AT = datetime(2025, 1, 1, tzinfo=timezone.utc)
_TRIGRAM = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_artifacts_name_trgm'"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    with _postgres_database() as url:
        yield url


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    request_url = request_postgres_url()
    name = f"headwater_migrate_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(engine_url(request_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield engine_url(request_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def request_postgres_url() -> str:
    from tests.conftest import POSTGRES_URL

    if not POSTGRES_URL:
        pytest.skip("HEADWATER_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    return POSTGRES_URL


def _at_0004_with_versions(url: str) -> sa.Engine:
    """The schema before 0005, holding `ds` (three versions, the newest deleted) and `empty`."""
    from alembic import command

    engine = sa.create_engine(engine_url(url))
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0004")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(schema.artifacts).from_select(  # 0004's columns only
                ["id", "name", "created_at", "next_label"],
                sa.select(
                    sa.literal(1), sa.literal("ds"), sa.literal(_AT, schema.UTCDateTime), sa.literal(3)
                ).union_all(
                    sa.select(sa.literal(2), sa.literal("empty"), sa.literal(_AT, schema.UTCDateTime), sa.literal(0))
                ),
            )
        )
        for label, deleted in ((0, False), (1, False), (2, True)):
            conn.execute(
                sa.insert(schema.versions).values(
                    id=label + 1,
                    artifact_id=1,
                    label=label,
                    digest=f"blake3:{label:064x}",
                    metadata={},
                    created_at=_AT + timedelta(days=label + 1),
                    deleted_at=_AT + timedelta(days=9) if deleted else None,
                )
            )
    return engine


def test_0005_keeps_each_artifacts_live_versions_and_last_update_on_its_row(new_database: str) -> None:
    from alembic import command

    engine = _at_0004_with_versions(new_database)
    assert migrate.upgrade(engine, new_database) == "0005"
    store = SQLStore(new_database)
    listed = {(a.name, a.versions, a.updated_at) for a in store.list_artifacts()}
    # the deleted v2 counts for neither; an artifact without versions was last updated when made
    assert listed == {("ds", 2, _AT + timedelta(days=2)), ("empty", 0, _AT)}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            assert "USING gin (name gin_trgm_ops)" in conn.execute(sa.text(_TRIGRAM)).scalar_one()
    store.close()
    with engine.begin() as conn:  # and back: 0004's schema again
        command.downgrade(migrate.alembic_config(conn), "0004")
    with engine.connect() as conn:
        assert "n_versions" not in {c["name"] for c in sa.inspect(conn).get_columns("artifacts")}
        if engine.dialect.name == "postgresql":
            assert conn.execute(sa.text(_TRIGRAM)).first() is None
    engine.dispose()


@pytest.mark.postgres
def test_0005_without_rights_to_pg_trgm_migrates_without_the_index(caplog: pytest.LogCaptureFixture) -> None:
    role = f"headwater_noext_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(engine_url(request_postgres_url()), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        with _postgres_database() as url:
            owner = sa.create_engine(engine_url(url), isolation_level="AUTOCOMMIT")
            with owner.connect() as conn:  # it may create tables, not extensions (CREATE on the database)
                conn.execute(sa.text(f'GRANT CREATE ON SCHEMA public TO "{role}"'))
            owner.dispose()
            as_role = engine_url(url).set(username=role, password=None).render_as_string(hide_password=False)
            engine = _at_0004_with_versions(as_role)
            with caplog.at_level(logging.WARNING, logger="headwater.migrations"):
                assert migrate.upgrade(engine, as_role) == "0005"
            assert [r.getMessage().split(" (")[0] for r in caplog.records if r.name == "headwater.migrations"] == [
                "pg_trgm is not available"
            ]
            with engine.connect() as conn:
                assert conn.execute(sa.text(_TRIGRAM)).first() is None
                assert migrate.current_revision(conn) == "0005"
            store = SQLStore(as_role)
            assert [(a.name, a.versions) for a in store.list_artifacts(name_like="D")] == [("ds", 2)]
            store.close()
            engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
