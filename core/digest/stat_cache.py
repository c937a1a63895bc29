"""The stat cache: a file's digest kept while its stat is unchanged, and the download cache's
records of the copies this process wrote (``restored:`` rows)."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat as stat_mod
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from headwater.config import headwater_home

log = logging.getLogger(__name__)

# git's racy-index rule: a file modified this close to hashing may change again within the
# file system's timestamp granularity without its stat changing, so its digest is not cached.
RACY_NS = 2_000_000_000
_STAT_CACHE_BUSY_S = 2.0
_SQL_CHUNK = 500  # below SQLite's historical 999 bound-parameter limit


class StatKey(NamedTuple):
    """What must be unchanged for a cached digest to be trusted."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


# Connections inherited over fork() are kept referenced forever: closing one in the child could
# disturb the parent's locks, and SQLite forbids using it there at all.
_inherited_connections: list[sqlite3.Connection] = []


class StatCache:
    """(absolute path, size, mtime_ns, ctime_ns, inode) -> content digest, in one SQLite file.

    An optimisation only: every failure to open, read or write it is logged at debug level and
    ignored. Shared by many processes (WAL, busy timeout); one connection per process.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else headwater_home() / "statcache.db"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:
            _inherited_connections.append(self._conn)
            self._conn = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=_STAT_CACHE_BUSY_S, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS stat_cache (path TEXT PRIMARY KEY, size INTEGER NOT NULL,"
                " mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,"
                " digest TEXT NOT NULL) WITHOUT ROWID"
            )
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def lookup(self, keys: Sequence[StatKey]) -> dict[str, str]:
        """Path -> digest for every key whose cached stat matches exactly."""
        if not keys:
            return {}
        wanted = {k.path: k for k in keys}
        paths = list(wanted)
        found: dict[str, str] = {}
        try:
            with self._lock:
                conn = self._connect()
                if len(paths) > _SQL_CHUNK:
                    # A folder's files: one range scan of the primary key over their common
                    # directory beats binding thousands of parameters ('0' sorts right after '/').
                    shared = os.path.commonprefix([min(paths), max(paths)])  # of all: sorted ends
                    folder = shared[: shared.rfind("/") + 1]
                    queries: list[tuple[str, tuple[str, ...]]] = [
                        ("path >= ? AND path < ?", (folder, folder[:-1] + "0"))
                    ]
                else:
                    queries = [(f"path IN ({','.join('?' * len(paths))})", tuple(paths))]
                for where, params in queries:
                    rows = conn.execute(
                        f"SELECT path, size, mtime_ns, ctime_ns, inode, digest FROM stat_cache WHERE {where}", params
                    )
                    for path, size, mtime_ns, ctime_ns, inode, digest in rows:
                        key = wanted.get(path)
                        if key is not None and key == (path, size, mtime_ns, ctime_ns, inode):
                            found[path] = digest
        except (sqlite3.Error, OSError) as exc:
            log.debug("stat cache %s not read: %s", self.path, exc)
        return found

    def store(self, items: Iterable[tuple[StatKey, str]]) -> None:
        """Remember digests, all in one transaction."""
        rows = [(*key, digest) for key, digest in items]
        if not rows:
            return
        try:
            with self._lock:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO stat_cache"
                        " (path, size, mtime_ns, ctime_ns, inode, digest) VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            log.debug("stat cache %s not written: %s", self.path, exc)

    def forget(self, digests: Iterable[str]) -> int:
        """Remove every row recording one of `digests` (a purge: the rows name the purged files);
        returns how many. Unlike the other calls, a failure raises: a purge must know."""
        wanted = sorted(set(digests))
        if not wanted or not self.path.exists():
            return 0
        removed = 0
        with self._lock:
            conn = self._connect()
            conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left holding names
            for start in range(0, len(wanted), _SQL_CHUNK):
                part = wanted[start : start + _SQL_CHUNK]
                removed += conn.execute(
                    f"DELETE FROM stat_cache WHERE digest IN ({','.join('?' * len(part))})", part
                ).rowcount
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the names leave the WAL file too
        return removed

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


_default_caches: dict[Path, StatCache] = {}
_default_caches_lock = threading.Lock()

# None: the shared cache at $HEADWATER_HOME/statcache.db; False: no cache.
StatCacheArg = StatCache | Literal[False] | None


def _resolve_cache(stat_cache: StatCacheArg) -> StatCache | None:
    if stat_cache is False:
        return None
    if stat_cache is not None:
        return stat_cache
    path = headwater_home() / "statcache.db"
    with _default_caches_lock:
        cache = _default_caches.get(path)
        if cache is None:
            cache = _default_caches[path] = StatCache(path)
        return cache


def _stat_key(path: str, st: os.stat_result) -> StatKey:
    return StatKey(path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


# --- copies this process wrote ------------------------------------------------------------------

# Stat cache rows of restored copies live beside those of hashed files, under their own keys:
# a copy of a reference entry has no content digest to re-hash against, so only "unchanged since
# it was restored" can vouch for it, never a later hash of whatever the file holds by then.
_RESTORED = "restored:"


def remember_restored(copies: Iterable[tuple[str | os.PathLike[str], str]], *, stat_cache: StatCache) -> None:
    """Record the stat of files just written and verified, with the blake3 of their bytes."""
    rows = []
    for path, digest in copies:
        abspath = os.path.abspath(os.fspath(path))
        try:
            rows.append((_stat_key(_RESTORED + abspath, os.stat(abspath)), digest))
        except OSError:
            continue  # gone already: nothing to vouch for
    stat_cache.store(rows)


def restored_unchanged(paths: Iterable[str | os.PathLike[str]], *, stat_cache: StatCache) -> dict[str, str]:
    """Absolute path -> blake3 recorded by remember_restored, for those files whose size, mtime,
    ctime and inode are still what they were when restored."""
    keys = []
    for path in paths:
        abspath = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(abspath)
        except OSError:
            continue
        if stat_mod.S_ISREG(st.st_mode):
            keys.append(_stat_key(_RESTORED + abspath, st))
    return {path[len(_RESTORED) :]: digest for path, digest in stat_cache.lookup(keys).items()}
