"""Schema migrations, run automatically on first use and by `headwater db upgrade`.

Many task processes open the store at once, so the check-and-upgrade runs under a lock:
`pg_advisory_lock` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from headwater.errors import SchemaTooNew

_PG_LOCK_KEY = 0x4857_6D69  # "HWmi": an arbitrary constant shared by every headwater process


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    import headwater.migrations

    config.set_main_option("script_location", str(Path(headwater.migrations.__file__).parent))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    # Parsing the migration scripts costs more than the check itself: once per process.
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    heads = _scripts().get_heads()
    assert len(heads) == 1, f"migrations must have one head, found {heads}"
    return heads[0]


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def check_known(revision: str | None, url: str) -> None:
    if revision is None:
        return
    try:
        _scripts().get_revision(revision)
    except Exception:
        raise SchemaTooNew(
            f"the database {url} has schema revision {revision}, newer than this headwater "
            f"knows (head {head_revision()}): upgrade headwater"
        ) from None


def upgrade(engine: sa.Engine, url: str) -> str:
    """Bring the schema to head; returns the revision. Safe to call from many processes at once."""
    head = head_revision()
    with engine.connect() as probe:
        current = current_revision(probe)
        probe.rollback()
    if current == head:
        return head
    check_known(current, url)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                _upgrade_locked(conn, url)
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
    else:
        with engine.connect().execution_options(sqlite_write=True) as conn:
            _upgrade_locked(conn, url)
    return head


def _upgrade_locked(conn: sa.Connection, url: str) -> None:
    with conn.begin():
        # Another process may have upgraded while we waited for the lock.
        current = current_revision(conn)
        check_known(current, url)
        if current != head_revision():
            command.upgrade(alembic_config(conn), "head")
