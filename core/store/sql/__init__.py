"""The SQL store: SQLite (the default, embedded) and PostgreSQL, through SQLAlchemy 2 Core.

Both databases run the same statements. Labels stay gapless under concurrency because every
write transaction holds a lock before it reads the label counter: `BEGIN IMMEDIATE` on SQLite
(a deferred read-then-write transaction fails at once in WAL mode), `SELECT ... FOR UPDATE` of
the artifact row on PostgreSQL.

The store is composed of one class per concern, each a module here: engine (opening the
database, connections, error translation), reads (resolving refs, artifacts, versions, runs),
lineage (closures and graphs, on top of the reads), reach (the refs a walk reaches, on top of
lineage's closure), writes (Store.apply), purge (purges and the audit log) and retention (its
policies).
"""

from __future__ import annotations

from headwater.store.sql.engine import engine_url
from headwater.store.sql.purge import SQLPurge
from headwater.store.sql.reach import SQLReach
from headwater.store.sql.retention import SQLRetention
from headwater.store.sql.writes import SQLWrites

__all__ = ["SQLStore", "engine_url"]


class SQLStore(SQLWrites, SQLReach, SQLPurge, SQLRetention):
    """The SQL store (SQLite or PostgreSQL, chosen by URI); see the module docstrings of
    engine, reads, lineage, reach and writes for each part."""
