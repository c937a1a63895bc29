"""Schema migrations, run automatically on first use and by `headwater db upgrade`.

Many task processes open the store at once, so the check-and-upgrade runs under a lock:
`pg_advisory_lock` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.

Opening a store at head does not import Alembic (a quarter of a fresh task process's start-up
went to it): the revision is read with one query and compared with `HEAD`, which a test keeps
equal to the migration scripts' head. Alembic is imported only to upgrade or to place an
unknown revision.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from headwater.errors import SchemaTooNew

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest migration in headwater/migrations/versions/ (tests/test_migrations.py checks it).
HEAD = "0005"

_PG_LOCK_KEY = 0x4857_6D69  # "HWmi": an arbitrary constant shared by every headwater process
_VERSION_TABLE = "alembic_version"  # Alembic's default, where it keeps the revision


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    import headwater.migrations

    config.set_main_option("script_location", str(Path(headwater.migrations.__file__).parent))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    # Parsing the migration scripts costs more than the check itself: once per process.
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The scripts' head, as Alembic reads it (slow: `HEAD` is the same, kept so by a test)."""
    heads = _scripts().get_heads()
    assert len(heads) == 1, f"migrations must have one head, found {heads}"
    return heads[0]


def current_revision(connection: sa.Connection) -> str | None:
    """The database's schema revision; None for an empty database."""
    if not sa.inspect(connection).has_table(_VERSION_TABLE):
        return None
    rows = connection.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # branches: never written by headwater's linear history
        raise SchemaTooNew(f"the database holds several schema revisions {sorted(rows)}: upgrade headwater")
    return str(rows[0]) if rows else None


def check_known(revision: str | None, url: str) -> None:
    if revision is None or revision == HEAD:
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
    with engine.connect() as probe:
        current = current_revision(probe)
        probe.rollback()
    if current == HEAD:
        return HEAD
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
    return HEAD


def _upgrade_locked(conn: sa.Connection, url: str) -> None:
    with conn.begin():
        # Another process may have upgraded while we waited for the lock.
        current = current_revision(conn)
        check_known(current, url)
        if current != HEAD:
            from alembic import command

            command.upgrade(alembic_config(conn), "head")
