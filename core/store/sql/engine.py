"""The SQL store's engine: opening SQLite or PostgreSQL, connections, and error translation.

A PostgreSQL connection opens within the time budget or not at all (a server that let the budget
pass is backed off, headwater.store.backoff); SQLite runs in WAL mode with FULL sync, and writers
take the lock up front (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from headwater import config
from headwater.errors import Conflict, HeadwaterError, InvalidInput, Unavailable
from headwater.store import backoff, migrate
from headwater.store.base import Store

_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def engine_url(uri: str) -> sa.URL:
    url = sa.make_url(uri)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


class SQLEngine(Store):
    """One database opened through SQLAlchemy 2 Core: the connections every part of the store
    reads and writes through, and the translation of the database's errors into the store's."""

    def __init__(self, uri: str, *, upgrade: bool = True) -> None:
        self.uri = uri
        url = engine_url(uri)
        self.dialect = "postgresql" if url.drivername.startswith("postgresql") else url.get_backend_name()
        timeout = config.timeout_s()
        if self.dialect == "sqlite":
            if url.database and url.database != ":memory:":
                try:
                    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise Unavailable(f"cannot open {url.database}: {err.strerror or err}") from err
            self.engine = sa.create_engine(url, connect_args={"timeout": timeout}, json_deserializer=_json_loads)
            _configure_sqlite(self.engine, timeout)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                connect_args={
                    # libpq counts whole seconds, at least 2: _bound_connect holds the budget itself.
                    "connect_timeout": max(2, math.ceil(timeout)),
                    # A stuck lock must not stall a pipeline past the time budget.
                    "options": f"-c lock_timeout={int(timeout * 1000)}",
                },
            )
            _bound_connect(self.engine, self._safe_url(), timeout)
        else:
            raise InvalidInput(f"unsupported database {url.drivername!r}: use sqlite:///PATH or postgresql://...")
        # What read_token() watches: the SQLite file, through a connection of its own.
        self._watched = _watchable_file(url) if self.dialect == "sqlite" else None
        self._watcher: tuple[int, int, sqlite3.Connection] | None = None  # pid, inode, connection
        self._watchers = 0
        self._watcher_lock = threading.Lock()
        # Version ids of REFs that name one version for good (a label, a whole digest): SQLReads.
        self._pinned_ids: dict[tuple[str, str | None, str | None], int] = {}
        self._insert: Callable[..., Any]
        if self.dialect == "sqlite":
            self._insert = sqlite_insert
        else:  # imported here: SQLite's task processes never load the PostgreSQL dialect
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            self._insert = pg_insert
        self._prepare()
        if upgrade:
            with self._translate_errors():
                migrate.upgrade(self.engine, self._safe_url())
        else:
            with self._translate_errors(), self.engine.connect() as conn:
                migrate.check_known(migrate.current_revision(conn), self._safe_url())

    def _safe_url(self) -> str:
        return config.mask_uri(self.uri)

    def close(self) -> None:
        with self._watcher_lock:
            if self._watcher is not None and self._watcher[0] == os.getpid():
                self._watcher[2].close()
            self._watcher = None
        self.engine.dispose()

    def read_token(self) -> object | None:
        """A value that changes whenever the database may have changed since it was taken, by
        this process or any other; None when that cannot be told cheaply (PostgreSQL, an
        in-memory database): then nothing that can change may be cached.

        SQLite's `PRAGMA data_version` changes on a connection whenever ANOTHER connection
        commits. The watcher is a connection of its own that never writes, so every commit,
        this process's own through the pool included, changes it. Take the token before reading:
        a commit made between the token and the read then invalidates what was read."""
        if self._watched is None:
            return None
        try:
            inode = os.stat(self._watched).st_ino  # a file replaced underneath is another database
        except OSError:
            return None
        with self._watcher_lock:
            pid = os.getpid()
            if self._watcher is None or self._watcher[:2] != (pid, inode):  # never across a fork
                try:
                    watcher = sqlite3.connect(self._watched, check_same_thread=False, isolation_level=None)
                except sqlite3.Error:
                    return None
                self._watchers += 1
                self._watcher = (pid, inode, watcher)
            try:
                row = self._watcher[2].execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                return None
            # Each watcher counts from its own start: its serial keeps two watchers' apart.
            return (pid, self._watchers, row[0])

    @abstractmethod
    def _prepare(self) -> None:
        """Build the statements every write runs, once, as the store opens (SQLWrites)."""

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.OperationalError as err:
            raise Unavailable(f"cannot reach {self._safe_url()}: {_first_line(err.orig or err)}") from err
        except sa_exc.InterfaceError as err:
            raise Unavailable(f"cannot reach {self._safe_url()}: {_first_line(err.orig or err)}") from err
        # Content the database refuses (a value too long, a NUL, a bad bind) is that content's
        # fault, not the database's: retrying it can never succeed, so it is not Unavailable.
        except sa_exc.DataError as err:
            raise InvalidInput(f"the database refused a value: {_first_line(err.orig or err)}") from err
        except sa_exc.IntegrityError as err:
            raise Conflict(f"the database refused the change: {_first_line(err.orig or err)}") from err
        except sa_exc.DBAPIError as err:
            # Any other refusal is the database's state, not the content's (a file that is not a
            # database, a schema it cannot use): the batch waits until it is mended.
            raise Unavailable(f"cannot use {self._safe_url()}: {_first_line(err.orig or err)}") from err
        except sa_exc.StatementError as err:
            raise InvalidInput(f"the database cannot take a value: {_first_line(err.orig or err)}") from err

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._translate_errors(), _refuse_content():
            conn = self.engine.connect()
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_write=True)
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._translate_errors(), self.engine.connect() as conn:
            yield conn

    def _lock(self, query: sa.Select[Any]) -> sa.Select[Any]:
        # SQLite's BEGIN IMMEDIATE already serialises writers; FOR UPDATE is PostgreSQL's way.
        return query.with_for_update() if self.dialect == "postgresql" else query


_NONE_PURGED = "headwater_none_purged_at"  # in a SQLite connection's info: its data_version then
_Q_ANY_PURGE = sa.text("SELECT 1 FROM entries WHERE purge_id IS NOT NULL LIMIT 1")


def none_purged(conn: sa.Connection) -> bool:
    """True when the database is known to hold no purge, cheaply: most never see one, and then
    every write would ask for the purges of its files for nothing.

    SQLite only. A connection's `PRAGMA data_version` changes whenever ANOTHER connection commits;
    its own commits are this process's (a purge applied through it forgets the answer,
    forget_none_purged). So "no purge at data_version D" holds as long as D does; purges are
    never undone, so a purge found is simply looked up, every time. False: not known, ask."""
    if conn.dialect.name != "sqlite":
        return False
    pooled = conn.connection
    raw: Any = pooled.dbapi_connection  # a sqlite3.Connection: its pragma, without a statement
    version = raw.execute("PRAGMA data_version").fetchone()[0]
    if pooled.info.get(_NONE_PURGED) == version:
        return True
    # Read after the version: a purge committed in between only makes it look newer than it is.
    if conn.execute(_Q_ANY_PURGE).first() is not None:
        return False
    pooled.info[_NONE_PURGED] = version
    return True


def forget_none_purged(conn: sa.Connection) -> None:
    """Before this connection applies a purge: its own commits leave its data_version as it was."""
    conn.connection.info.pop(_NONE_PURGED, None)


def _watchable_file(url: sa.URL) -> str | None:
    """The database file read_token() can watch: a plain path, not memory or a URI filename."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        return None
    return str(Path(database).expanduser().absolute())


def _json_loads(text: str) -> Any:
    # Most metadata and params cells are empty: a graph of 20,000 nodes holds ~70,000 of them.
    return {} if text == "{}" else json.loads(text)


@contextlib.contextmanager
def _refuse_content() -> Iterator[None]:
    """A write whose events were made without validation (an old outbox batch, an adapter's
    model_construct) fails in Python on its content: refused as InvalidInput, so the outbox sets
    that batch aside instead of failing on it forever."""
    try:
        yield
    except HeadwaterError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as err:
        raise InvalidInput(f"the store cannot apply this batch: {type(err).__name__}: {_first_line(err)}") from err


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _NoAnswer(Exception):
    pass


def _bound_connect(engine: sa.Engine, key: str, budget: float) -> None:
    """Every new PostgreSQL connection opens within `budget` seconds, or fails; a server that
    let the budget pass without answering is not asked again for a back-off
    (headwater.store.backoff). One that refuses at once costs nothing and is asked every time, so
    a server back up is used at once."""

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        failure = dialect.loaded_dbapi.OperationalError  # wrapped, then translated, by SQLAlchemy
        try:
            backoff.check(key)
        except Unavailable as err:
            raise failure(str(err)) from None
        try:
            return _within(budget, lambda: dialect.connect(*cargs, **cparams))
        except _NoAnswer as err:
            backoff.mark_down(key, str(err), budget)
            raise failure(str(err)) from None


def _within(budget: float, connect: Callable[[], Any]) -> Any:
    """connect() on a thread of its own, waited for at most `budget` seconds; a connection
    that arrives after that is closed (libpq's own timeout ends the attempt soon after)."""
    future: Future[Any] = Future()

    def attempt() -> None:
        try:
            conn = connect()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            with contextlib.suppress(InvalidStateError):
                future.set_exception(err)
            return
        try:
            future.set_result(conn)
        except InvalidStateError:  # abandoned: the caller has moved on
            conn.close()

    threading.Thread(target=attempt, name="headwater-connect", daemon=True).start()
    try:
        return future.result(timeout=budget)
    except FutureTimeout:
        if future.cancel():
            raise _NoAnswer(f"no answer within {budget:g}s") from None
        return future.result()  # it came in just now


def _configure_sqlite(engine: sa.Engine, timeout: float) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit's WAL frames are fsynced. With NORMAL a commit can vanish at a power
        # loss, after the outbox has already removed the batch it came from (~0.25 ms a commit).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the lock up front: a deferred read-then-write transaction would fail
        # with "database is locked" instead of waiting for the busy timeout.
        immediate = conn.get_execution_options().get("sqlite_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
