"""Digests of files, directories and references; canonical manifests; the stat cache.

A content digest is ``blake3:<hex>`` of a file's bytes. A version digest is the blake3 of the
canonical manifest: entries sorted by path in code-point order, ``\\n``-joined
``path\\0digest\\0size`` (``ref`` is not part of it). A reference that cannot be read cheaply
carries the checksum its storage reports instead, with a prefix that can never be mistaken for
content. The first the storage reports wins, in this order:

- ``s3v:<version id>``: an S3 object's version id (a versioned bucket; S3's ``null`` is none);
- ``gsgen:<generation>``: a Google Cloud Storage object's generation, new at every write;
- ``etag:<etag>``: an HTTP or S3 ETag, quotes stripped (``W/`` kept for weak ones);
- ``mtime:<size>:<ISO time>``: size and modification time in UTC (``unknown`` when not told).

An object store's listing may report less than a lookup of one object: an S3 listing carries no
version id, so an object of a versioned bucket logged as part of a prefix gets ``etag:``, and
alone ``s3v:``. `reference_status` therefore compares a recorded checksum only with the
storage's current checksum *of the same kind*, never with whatever a new lookup would record.

Directory scans follow symlinks to files wherever they point (a Hugging Face snapshot is a
folder of such links into a shared blob folder) but never descend into symlinked directories
(no cycles, no walking out into the whole disk); dangling links, sockets, FIFOs and devices are
skipped. A scan of a folder whose files are to be stored can refuse links to files outside it
(`links_out="refuse"`, the Client's default): storing them would copy what the folder does
not hold. Large files are hashed with buffered reads, not mmap: a mapped file counts towards the
process's RSS and a truncation during hashing would kill it with SIGBUS (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import logging
import os
import posixpath
import re
import sqlite3
import stat as stat_mod
import threading
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple

import blake3

from headwater.config import hash_threads, headwater_home, timeout_s
from headwater.progress import ByteProgress
from headwater.errors import HeadwaterError, InvalidInput, Unavailable
from headwater.models import ManifestEntry

__all__ = [
    "ALGO",
    "ReferenceStatus",
    "StatCache",
    "StatKey",
    "build_manifest",
    "check_entry_paths",
    "check_version_digest",
    "files_hashed",
    "hash_bytes",
    "hash_file",
    "hash_stream",
    "is_content_digest",
    "local_files",
    "manifest_digest",
    "new_hasher",
    "reference_manifest",
    "reference_status",
    "remember_restored",
    "restored_unchanged",
    "validate_entry_path",
]

log = logging.getLogger(__name__)

ALGO = "blake3"
_PREFIX = ALGO + ":"
_HEX_LEN = 64
_HEXDIGITS = frozenset("0123456789abcdef")
_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

# Files below this size are read whole by one pool worker; larger ones are read in chunks of
# this size and hashed by blake3's own threads (one file at a time, so threads never multiply).
LARGE_FILE = 4 << 20
CHUNK = 8 << 20
# Pool tasks carry several small files so that per-future overhead stays small next to hashing.
_BATCH_FILES = 32
_BATCH_BYTES = 8 << 20
# git's racy-index rule: a file modified this close to hashing may change again within the
# file system's timestamp granularity without its stat changing, so its digest is not cached.
RACY_NS = 2_000_000_000
_STAT_CACHE_BUSY_S = 2.0
_SQL_CHUNK = 500  # below SQLite's historical 999 bound-parameter limit


# --- digests of bytes --------------------------------------------------------------------------


def new_hasher(size: int = 0, threads: int | None = None) -> Any:
    """A blake3 hasher for about `size` bytes, multi-threaded only when that pays off.

    The thread count is always explicit: after hashing with ``blake3.AUTO`` a forked child that
    hashes with AUTO hangs (Airflow forks task processes).
    """
    if size >= LARGE_FILE:
        n = threads or hash_threads()
        if n > 1:
            return blake3.blake3(max_threads=n)
    return blake3.blake3()


def hash_bytes(data: bytes) -> str:
    """``blake3:<hex>`` of `data`."""
    hexdigest: str = new_hasher(len(data)).update(data).hexdigest()
    return _PREFIX + hexdigest


def hash_stream(stream: BinaryIO, size_hint: int = 0) -> str:
    """``blake3:<hex>`` of everything left in a binary stream, read in bounded chunks."""
    hasher = new_hasher(size_hint)
    while chunk := stream.read(CHUNK):
        hasher.update(chunk)
    hexdigest: str = hasher.hexdigest()
    return _PREFIX + hexdigest


# A pointer checksum: a lower-case scheme, then printable text without surrounding spaces.
_POINTER = re.compile(r"[a-z][a-z0-9]*:\S(?:.*\S)?", re.DOTALL)


def check_version_digest(d: str) -> str:
    """`d` if it can name a version: ``blake3:<64 hex>``, or a pointer checksum (``ol:…``,
    ``unverified:…``, ``etag:…``); InvalidInput otherwise (an empty, blank or cut digest)."""
    if is_content_digest(d):
        return d
    if d.startswith(_PREFIX) or not _POINTER.fullmatch(d) or not d.isprintable():
        raise InvalidInput(f"{d!r} is not a version digest: blake3:<64 hex digits>, or a checksum such as etag:<etag>")
    return d


def is_content_digest(d: str) -> bool:
    """True for a digest of bytes (``blake3:<64 hex>``); False for pointer checksums
    (``etag:``, ``s3v:``, ``mtime:``) and unverifiable ones (``ol:``, ``unverified:``)."""
    return (
        isinstance(d, str)
        and d.startswith(_PREFIX)
        and len(d) == len(_PREFIX) + _HEX_LEN
        and _HEXDIGITS.issuperset(d[len(_PREFIX) :])
    )


_hashed_lock = threading.Lock()
_hashed_count = 0


def files_hashed() -> int:
    """How many files this process has read and hashed (stat-cache hits are not counted)."""
    return _hashed_count


def _count_hashed(n: int) -> None:
    global _hashed_count
    with _hashed_lock:
        _hashed_count += n


# Both readers hash the `size` bytes that stat reported (fewer if the file shrank) and return
# how many they read, so an entry's size always describes the bytes behind its digest.


def _hash_small(path: str, size: int) -> tuple[str, int]:
    # os.read of the exact size: the io stack and its end-of-file probe cost as much as hashing
    # a small file.
    fd = os.open(path, _O_RDONLY)
    try:
        data = os.read(fd, size)
        if len(data) < size:
            parts = [data]
            got = len(data)
            while got < size and (more := os.read(fd, size - got)):
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
    finally:
        os.close(fd)
    return _PREFIX + blake3.blake3(data).hexdigest(), len(data)


def _hash_large(
    path: str, size: int, threads: int, advance: Callable[[int], None]
) -> tuple[str, int]:
    hasher = blake3.blake3(max_threads=threads) if threads > 1 else blake3.blake3()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got < size and (n := f.readinto(view[: min(CHUNK, size - got)])):
            hasher.update(view[:n])
            got += n
            advance(n)
    return _PREFIX + hasher.hexdigest(), got


def _hash_batch(files: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    return [_hash_small(path, size) for path, size in files]


_pool_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    # A pool inherited over fork() has no threads behind it (Airflow forks task processes), so
    # pools are per pid; an inherited one is dropped without shutdown, which would wait forever.
    key = (os.getpid(), threads)
    with _pool_lock:
        pool = _pools.get(key)
        if pool is None:
            for stale in [k for k in _pools if k[0] != key[0]]:
                del _pools[stale]
            pool = _pools[key] = ThreadPoolExecutor(threads, thread_name_prefix="headwater-hash")
        return pool


# --- the stat cache ----------------------------------------------------------------------------


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
        conn = sqlite3.connect(
            self.path, timeout=_STAT_CACHE_BUSY_S, isolation_level=None, check_same_thread=False
        )
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
                    queries = [("path >= ? AND path < ?", (folder, folder[:-1] + "0"))]
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

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


_default_caches: dict[Path, StatCache] = {}
_default_caches_lock = threading.Lock()

# What a folder scan does with a symbolic link to a file outside the folder.
LinksOut = Literal["follow", "refuse"]

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


# --- manifests of local files ------------------------------------------------------------------


# Printable-ASCII segments joined by '/', none empty, '.' or '..': canonical as they are.
# Printable ASCII but `/` and `\`, no `.`/`..` segment, no drive (`C:/`): canonical already.
_CANONICAL_ASCII = re.compile(r"(?![A-Za-z]:(?:/|$))(?!\.\.?(?:/|$))[ -.0-\[\]-~]+(?:/(?!\.\.?(?:/|$))[ -.0-\[\]-~]+)*")
# Windows forms, refused everywhere: a path written on Windows must not escape on restore there.
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:(?:[/\\]|$)")


def validate_entry_path(p: str) -> str:
    """The canonical form of a manifest path: relative POSIX, NFC, '.'/'..' resolved.

    Raises InvalidInput for an empty or absolute path, a newline or NUL, an empty segment, a path
    that is not valid UTF-8, or one that escapes its root.
    """
    if isinstance(p, str) and p.isascii() and _CANONICAL_ASCII.fullmatch(p):
        return p  # the common case, already canonical: every manifest digest checks every path
    if not isinstance(p, str) or not p:
        raise InvalidInput(f"invalid entry path {p!r}: empty")
    if "\n" in p or "\0" in p:
        raise InvalidInput(f"invalid entry path {p!r}: holds a newline or NUL character")
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"invalid entry path {p!r}: not valid UTF-8") from None
    if p.startswith("/"):
        raise InvalidInput(f"invalid entry path {p!r}: absolute; manifest paths are relative")
    if "\\" in p or _WINDOWS_DRIVE.match(p):
        raise InvalidInput(f"invalid entry path {p!r}: a Windows form (drive or backslash); manifest paths are POSIX")
    normal = unicodedata.normalize("NFC", p)
    parts: list[str] = []
    for segment in normal.split("/"):
        if segment == "":
            raise InvalidInput(f"invalid entry path {p!r}: empty segment")
        if segment == ".":
            continue
        if segment == "..":
            if not parts:
                raise InvalidInput(f"invalid entry path {p!r}: escapes its root")
            parts.pop()
            continue
        parts.append(segment)
    if not parts:
        raise InvalidInput(f"invalid entry path {p!r}: names the root itself")
    return "/".join(parts)


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """``blake3:<hex>`` of the canonical manifest; independent of entry order and of `ref`."""
    rows = sorted((validate_entry_path(e.path), e.digest, e.size) for e in entries)
    for path, digest, _ in rows:
        if not digest or "\n" in digest or "\0" in digest:
            raise InvalidInput(f"entry {path!r} has an invalid digest {digest!r}")
    check_entry_paths(row[0] for row in rows)
    canonical = "\n".join(f"{path}\0{digest}\0{size}" for path, digest, size in rows)
    return hash_bytes(canonical.encode("utf-8"))


def check_entry_paths(paths: Iterable[str]) -> None:
    """Refuse a manifest listing a path twice, or holding both a file `a` and a file under `a/`:
    no folder can restore it."""
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise InvalidInput(f"manifest lists {path!r} twice")
        seen.add(path)
    for path in seen:
        cut = path.rfind("/")
        while cut > 0:
            if path[:cut] in seen:
                raise InvalidInput(f"manifest holds both {path[:cut]!r} and {path!r}: a file cannot also be a folder")
            cut = path.rfind("/", 0, cut)


class _LocalFile(NamedTuple):
    rel: str  # the entry path (NFC)
    abspath: str  # the path it was found at, as the file system spells it
    key: StatKey


def _stat_key(path: str, st: os.stat_result) -> StatKey:
    return StatKey(path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _entry_name(name: str) -> str:
    # One segment from scandir: never empty, '.', '..' or holding '/'. ASCII is already NFC.
    if name.isascii() and "\n" not in name and "\0" not in name:
        return name
    return validate_entry_path(name)


def _missing(path: str | os.PathLike[str]) -> InvalidInput:
    return InvalidInput(f"no such file or directory: {os.fspath(path)!r}")


def _scan(path: str | os.PathLike[str], links_out: LinksOut = "follow") -> tuple[list[_LocalFile], bool]:
    """Every regular file at or below `path`, sorted by entry path; and whether `path` is a file.

    `links_out="refuse"`: raise InvalidInput, naming them, when symbolic links inside the folder
    lead to files outside it (storing them would copy files the folder does not hold)."""
    root = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {root!r}: {exc.strerror}") from None
    if stat_mod.S_ISREG(st.st_mode):
        name = validate_entry_path(os.path.basename(root))
        return [_LocalFile(name, root, _stat_key(root, st))], True
    if not stat_mod.S_ISDIR(st.st_mode):
        raise InvalidInput(f"not a regular file or directory: {root!r}")

    files: list[_LocalFile] = []
    outside: list[str] = []
    real_root = os.path.realpath(root)
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise InvalidInput(f"cannot read directory {folder!r}: {exc.strerror}") from None
        for entry in entries:
            rel = prefix + _entry_name(entry.name)
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                    continue
                est = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue  # a dangling symlink, or removed while we looked
            except OSError as exc:
                raise InvalidInput(f"cannot read {entry.path!r}: {exc.strerror}") from None
            if stat_mod.S_ISREG(est.st_mode):
                if links_out == "refuse" and entry.is_symlink() and not _within(real_root, entry.path):
                    outside.append(f"{rel} -> {os.path.realpath(entry.path)}")
                files.append(_LocalFile(rel, entry.path, _stat_key(entry.path, est)))
            elif stat_mod.S_ISDIR(est.st_mode):
                log.warning("headwater: not following symlinked directory %s", entry.path)
    if outside:
        outside.sort()
        named = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
        raise InvalidInput(
            f"refusing to store {root!r}: symbolic links in it lead outside it ({named}); store "
            "those files themselves, or set HEADWATER_FOLLOW_LINKS=1 to store what the links point to"
        )
    files.sort(key=lambda f: f.rel)
    for before, after in itertools.pairwise(files):
        if before.rel == after.rel:
            raise InvalidInput(
                f"{before.abspath!r} and {after.abspath!r} are one entry path once NFC-normalised"
            )
    return files, False


def _within(real_root: str, path: str) -> bool:
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def local_files(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Entry path -> the file it is read from (NFC entry paths may differ from on-disk names)."""
    return {f.rel: Path(f.abspath) for f in _scan(path)[0]}


def _batches(files: Sequence[tuple[str, int]]) -> Iterator[list[tuple[str, int]]]:
    batch: list[tuple[str, int]] = []
    total = 0
    for path, size in files:
        batch.append((path, size))
        total += size
        if len(batch) >= _BATCH_FILES or total >= _BATCH_BYTES:
            yield batch
            batch, total = [], 0
    if batch:
        yield batch


def _digest_files(
    files: Sequence[_LocalFile], cache: StatCache | None, threads: int, progress: bool | None
) -> list[tuple[str, int]]:
    """(content digest, size) of each file, from the stat cache when its stat is unchanged."""
    cached = cache.lookup([f.key for f in files]) if cache is not None else {}
    results: dict[str, tuple[str, int]] = {}
    todo = [f for f in files if f.key.path not in cached]
    if todo:
        started_ns = time.time_ns()
        large = [f for f in todo if f.key.size >= LARGE_FILE]
        small = [f for f in todo if f.key.size < LARGE_FILE]
        hashed: list[tuple[str, int]] = []
        try:
            with ByteProgress("hashing", sum(f.key.size for f in todo), progress) as bar:
                # Large files first, each on all threads; then small files, one per thread.
                for f in large:
                    hashed.append(_hash_large(f.abspath, f.key.size, threads, bar.advance))
                if len(small) == 1 or threads == 1:
                    hashed.extend(_hash_batch([(f.abspath, f.key.size) for f in small]))
                elif small:
                    jobs = list(_batches([(f.abspath, f.key.size) for f in small]))
                    for job, done in zip(jobs, _pool(threads).map(_hash_batch, jobs)):
                        hashed.extend(done)
                        bar.advance(sum(size for _, size in job))
        except FileNotFoundError as exc:
            raise InvalidInput(f"{exc.filename!r} disappeared while being hashed") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {exc.filename!r}: {exc.strerror}") from None
        todo = large + small
        results = dict(zip([f.key.path for f in todo], hashed))
        _count_hashed(len(todo))
        if cache is not None:
            cache.store(
                (f.key, results[f.key.path][0])
                for f in todo
                # A file that changed size under us, or changed recently, is not cached.
                if results[f.key.path][1] == f.key.size and f.key.mtime_ns < started_ns - RACY_NS
            )
    return [
        results[f.key.path] if f.key.path in results else (cached[f.key.path], f.key.size)
        for f in files
    ]


def _manifest(
    files: Sequence[_LocalFile],
    hashed: Sequence[tuple[str, int]],
    ref_of: Callable[[_LocalFile], str | None],
) -> list[ManifestEntry]:
    return [
        ManifestEntry(path=f.rel, digest=digest, size=size, ref=ref_of(f))
        for f, (digest, size) in zip(files, hashed)
    ]


def build_manifest(
    path: str | os.PathLike[str],
    *,
    stat_cache: StatCacheArg = None,
    threads: int | None = None,
    progress: bool | None = None,
    ref_prefix: str | None = None,
    links_out: LinksOut = "follow",
) -> list[ManifestEntry]:
    """The manifest of a file (one entry named by its basename) or a directory (every regular
    file below it, sorted); an empty directory gives an empty manifest.

    `stat_cache`: None uses the shared cache in $HEADWATER_HOME, False uses none. `ref_prefix`
    sets each entry's ref to ``ref_prefix + "/" + path`` (a single file gets `ref_prefix` itself).
    `progress`: None shows a bar only on a terminal and for more than 256 MiB to hash.
    `links_out`: what to do with symbolic links inside a folder that lead to files outside it:
    "follow" hashes what they point to, "refuse" raises InvalidInput naming them.
    """
    files, single = _scan(path, links_out)
    hashed = _digest_files(files, _resolve_cache(stat_cache), threads or hash_threads(), progress)

    def ref_of(f: _LocalFile) -> str | None:
        if ref_prefix is None:
            return None
        return ref_prefix if single else f"{ref_prefix.rstrip('/')}/{f.rel}"

    return _manifest(files, hashed, ref_of)


def hash_file(path: str | os.PathLike[str], *, stat_cache: StatCacheArg = None) -> tuple[str, int]:
    """(content digest, size) of one file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise InvalidInput(f"not a regular file: {os.fspath(path)!r}")
    abspath = os.path.abspath(os.fspath(path))
    f = _LocalFile(os.path.basename(abspath), abspath, _stat_key(abspath, st))
    ((digest, size),) = _digest_files([f], _resolve_cache(stat_cache), hash_threads(), None)
    return digest, size


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


# --- references --------------------------------------------------------------------------------

_REFERENCE_SCHEMES = (
    'file://, http(s)://, s3:// (pip install "headwater[s3]"), gs:// (pip install "headwater[gcs]")'
)
_EXTRAS = {"s3": "s3", "gs": "gcs"}


def reference_manifest(uri: str, *, stat_cache: StatCacheArg = None) -> list[ManifestEntry]:
    """The manifest of a location, kept as pointers: each entry's ref is the URI of one object.

    ``file://`` content is hashed (bytes are readable); ``http(s)://`` and fsspec locations
    (s3, gs, memory, ...) carry the checksum their storage reports.
    """
    from headwater.refs import file_uri_to_path, is_uri, normalize_uri, path_to_file_uri

    if not isinstance(uri, str) or not is_uri(uri):
        raise InvalidInput(
            f"not a URI: {uri!r}; references need SCHEME://..., e.g. {_REFERENCE_SCHEMES}"
        )
    canonical = normalize_uri(uri)
    scheme = canonical.partition("://")[0]
    if scheme == "file":
        path = file_uri_to_path(canonical)
        files, _ = _scan(path)
        hashed = _digest_files(files, _resolve_cache(stat_cache), hash_threads(), None)
        return _manifest(files, hashed, lambda f: path_to_file_uri(f.abspath))
    if scheme in ("http", "https"):
        return [_http_entry(canonical)]
    return _fsspec_manifest(canonical, scheme)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _iso(value: object) -> str | None:
    """A timestamp reported by some storage as an ISO-8601 UTC string."""
    when: datetime | None = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return value
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _etag(value: str) -> str:
    value = value.strip()
    weak = value.startswith("W/")
    value = value[2:] if weak else value
    return ("W/" if weak else "") + value.strip('"')


_MTIME_KEYS = (
    "mtime",
    "lastmodified",
    "last_modified",
    "updated",
    "modified",
    "created",
    "timecreated",
)


def _lower(info: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in info.items()}


def _version_checksum(low: Mapping[str, Any]) -> str | None:
    version = low.get("versionid") or low.get("version_id")
    if version and version != "null":  # S3 reports "null" for objects from before versioning
        return f"s3v:{version}"
    return None


def _generation_checksum(low: Mapping[str, Any]) -> str | None:
    generation = low.get("generation")  # Google Cloud Storage, as gcsfs reports it
    if generation not in (None, ""):
        return f"gsgen:{generation}"
    return None


def _etag_checksum(low: Mapping[str, Any]) -> str | None:
    etag = low.get("etag")
    if isinstance(etag, str) and etag.strip('" '):
        return f"etag:{_etag(etag)}"
    return None


def _mtime_checksum(low: Mapping[str, Any], size: int) -> str:
    for key in _MTIME_KEYS:
        stamp = _iso(low.get(key))
        if stamp:
            return f"mtime:{size}:{stamp}"
    return f"mtime:{size}:unknown"


# Pointer checksum kinds, in the order of preference of _pointer_checksum.
_CHECKSUM_OF_KIND: dict[str, Callable[[Mapping[str, Any], int], str | None]] = {
    "s3v": lambda low, size: _version_checksum(low),
    "gsgen": lambda low, size: _generation_checksum(low),
    "etag": lambda low, size: _etag_checksum(low),
    "mtime": _mtime_checksum,
}


def _pointer_checksum(info: Mapping[str, Any], size: int) -> str:
    """The storage's own checksum of an object, prefixed so it never looks like content."""
    low = _lower(info)
    for of_kind in _CHECKSUM_OF_KIND.values():
        checksum = of_kind(low, size)
        if checksum:
            return checksum
    raise AssertionError("unreachable: an mtime checksum is always made")


def _open_fs(uri: str, scheme: str) -> tuple[Any, str]:
    import fsspec.core

    try:
        fs, root = fsspec.core.url_to_fs(uri)
        return fs, str(root)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme)
        if extra:
            raise InvalidInput(
                f'{scheme}:// references need an extra: pip install "headwater[{extra}]"'
            ) from None
        raise InvalidInput(f"{scheme}:// is not available here: {_one_line(exc)}") from None
    except ValueError as exc:
        if "protocol" in str(exc).lower():
            raise InvalidInput(
                f"unsupported URI scheme {scheme + '://'!r} in {uri!r}; supported: {_REFERENCE_SCHEMES}"
                " and other installed fsspec protocols"
            ) from None
        raise InvalidInput(f"cannot open {uri!r}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - a third-party constructor can fail in any way
        raise InvalidInput(f"cannot open {uri!r}: {_one_line(exc)}") from None


def _forget_listings(fs: Any, path: str) -> None:
    """Drop what `fs` remembers of `path`, its parents and below it: fsspec keeps one file system
    instance per set of options, and its listings cache would answer for the storage."""
    try:
        fs.invalidate_cache(path)
        cache = getattr(fs, "dircache", None)
        if cache:
            below = path.rstrip("/") + "/"
            for key in [k for k in list(cache) if isinstance(k, str) and k.startswith(below)]:
                cache.pop(key, None)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation; never fail on it
        log.debug("listings cache of %s not cleared: %s", path, exc)


def _fsspec_manifest(uri: str, scheme: str) -> list[ManifestEntry]:
    fs, root = _open_fs(uri, scheme)
    root = root.rstrip("/")
    try:
        _forget_listings(fs, root)
        info = fs.info(root)
        if info.get("type") != "directory":
            size = int(info.get("size") or 0)
            name = validate_entry_path(posixpath.basename(root))
            return [
                ManifestEntry(path=name, digest=_pointer_checksum(info, size), size=size, ref=uri)
            ]
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        raise InvalidInput(f"no such object or prefix: {uri!r}") from None
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {uri!r}: {_one_line(exc)}") from None
    except HeadwaterError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot list {uri!r}: {_one_line(exc)}") from None
    prefix = root + "/"
    entries = []
    for name, item in found.items():
        if item.get("type") == "directory" or not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        size = int(item.get("size") or 0)
        entries.append(
            ManifestEntry(
                path=validate_entry_path(rel),
                digest=_pointer_checksum(item, size),
                size=size,
                ref=f"{uri}/{rel}",
            )
        )
    entries.sort(key=lambda e: e.path)
    return entries


class _Gone(InvalidInput):
    """HTTP 404 or 410: the object is not there (any more)."""


class _KeepHeadOnRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected HEAD into a GET, which would download the whole body."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and req.get_method() == "HEAD":
            new.method = "HEAD"
        return new


@contextlib.contextmanager
def _http_errors(url: str, verb: str, timeout: float) -> Iterator[None]:
    """urllib's errors as headwater's: gone (404/410), refused (other 4xx), unreachable."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise _Gone(f"cannot {verb} {url!r}: HTTP {exc.code} {exc.reason}") from None
        if 400 <= exc.code < 500:
            raise InvalidInput(f"cannot {verb} {url!r}: HTTP {exc.code} {exc.reason}") from None
        raise Unavailable(f"cannot {verb} {url!r}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, BaseException) else Exception(str(exc.reason))
        raise Unavailable(f"cannot reach {url!r}: {_one_line(reason)}") from None
    except (TimeoutError, OSError) as exc:
        raise Unavailable(f"cannot {verb} {url!r} within {timeout:g} s: {_one_line(exc)}") from None


def _http_headers(url: str) -> Mapping[str, str]:
    opener = urllib.request.build_opener(_KeepHeadOnRedirect())
    base = {"User-Agent": "headwater"}
    timeout = timeout_s()
    with _http_errors(url, "reference", timeout):
        try:
            head = urllib.request.Request(url, method="HEAD", headers=base)
            with opener.open(head, timeout=timeout) as resp:
                return resp.headers  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 501):
                raise
        # Some servers refuse HEAD; one byte of a ranged GET reports the same headers.
        ranged = urllib.request.Request(url, headers={**base, "Range": "bytes=0-0"})
        with opener.open(ranged, timeout=timeout) as resp:
            return resp.headers  # type: ignore[no-any-return]


def _http_info(url: str) -> tuple[dict[str, Any], int]:
    """(checksum-bearing headers, size) of a URL, from a HEAD request."""
    headers = _http_headers(url)
    size = 0
    content_range = headers.get("Content-Range", "")
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        size = int(total)
    elif (headers.get("Content-Length") or "").isdigit():
        size = int(headers["Content-Length"])
    return {"etag": headers.get("ETag"), "lastmodified": headers.get("Last-Modified")}, size


def _http_entry(url: str) -> ManifestEntry:
    info, size = _http_info(url)
    name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path)) or "index"
    return ManifestEntry(
        path=validate_entry_path(name), digest=_pointer_checksum(info, size), size=size, ref=url
    )


# --- re-checking a recorded reference ----------------------------------------------------------

ReferenceStatus = Literal["ok", "missing", "drifted"]


def reference_status(entry: ManifestEntry, *, stat_cache: StatCacheArg = None) -> ReferenceStatus:
    """Whether the object an entry points to still holds what was recorded.

    ``"ok"``: the storage reports the recorded checksum; ``"missing"``: no object at the ref
    (deleted, an S3 delete marker, HTTP 404/410, or only a prefix/directory there now);
    ``"drifted"``: the object is there with another checksum, or no longer reports a checksum
    of the recorded kind.

    Like is compared with like: a ``blake3:`` entry is re-hashed (a ``file://`` file through the
    stat cache, other schemes streamed); ``s3v:``/``gsgen:``/``etag:``/``mtime:`` entries are
    compared with the current checksum of that same kind (an ``etag:`` recorded from a prefix
    listing of a versioned bucket is compared with the object's ETag, not its version id).
    Listings cached by fsspec are dropped first, so the answer is the storage's, not a cache's.

    Raises InvalidInput for an entry without a ref, a checksum that was never read from the
    storage (``ol:``, ``unverified:``) or access denied; Unavailable when the storage cannot be
    reached. Neither means missing.
    """
    ref, digest = entry.ref, entry.digest
    if not ref:
        raise InvalidInput(f"entry {entry.path!r} is stored, not a reference: nothing to re-check")
    scheme, sep, _ = ref.partition("://")
    if not sep or not scheme:
        raise InvalidInput(f"entry {entry.path!r} has a ref that is not a URI: {ref!r}")
    scheme = scheme.lower()
    kind = digest.partition(":")[0]
    try:
        if is_content_digest(digest):
            return _content_status(ref, scheme, digest, stat_cache)
        if kind in _CHECKSUM_OF_KIND:
            return _pointer_status(ref, scheme, kind, digest)
    except _Gone:
        return "missing"
    raise InvalidInput(
        f"{ref!r} was recorded as {digest!r}, which no storage checksum can be compared with"
    )


def _verdict(current: str | None, recorded: str) -> ReferenceStatus:
    return "ok" if current == recorded else "drifted"


def _local_status(
    path: Path, kind: str, recorded: str, stat_cache: StatCacheArg
) -> ReferenceStatus:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise InvalidInput(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        return "missing"
    if kind == "blake3":
        try:
            return _verdict(hash_file(path, stat_cache=stat_cache)[0], recorded)
        except InvalidInput:
            if not path.is_file():
                return "missing"  # removed while being hashed
            raise
    return _verdict(_CHECKSUM_OF_KIND[kind]({"mtime": st.st_mtime}, st.st_size), recorded)


def _content_status(
    ref: str, scheme: str, recorded: str, stat_cache: StatCacheArg
) -> ReferenceStatus:
    if scheme == "file":
        from headwater.refs import file_uri_to_path

        return _local_status(file_uri_to_path(ref), "blake3", recorded, stat_cache)
    if scheme in ("http", "https"):
        return _verdict(_http_content_digest(ref), recorded)
    fs, path = _open_fs(ref, scheme)
    try:
        _forget_listings(fs, path)
        with fs.open(path, "rb") as stream:
            current = hash_stream(stream, int(getattr(stream, "size", 0) or 0))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "missing"
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {ref!r}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot read {ref!r}: {_one_line(exc)}") from None
    return _verdict(current, recorded)


def _http_content_digest(url: str) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": "headwater"})
    timeout = timeout_s()
    with _http_errors(url, "read", timeout), urllib.request.urlopen(request, timeout=timeout) as resp:
        return hash_stream(resp, int(resp.headers.get("Content-Length") or 0))


def _pointer_status(ref: str, scheme: str, kind: str, recorded: str) -> ReferenceStatus:
    of_kind = _CHECKSUM_OF_KIND[kind]
    if scheme == "file":
        from headwater.refs import file_uri_to_path

        return _local_status(file_uri_to_path(ref), kind, recorded, False)
    if scheme in ("http", "https"):
        info, size = _http_info(ref)
        return _verdict(of_kind(_lower(info), size), recorded)
    fs, path = _open_fs(ref, scheme)
    try:
        _forget_listings(fs, path)
        info = fs.info(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {ref!r}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot look up {ref!r}: {_one_line(exc)}") from None
    if info.get("type") == "directory":
        return "missing"
    return _verdict(of_kind(_lower(info), int(info.get("size") or 0)), recorded)
