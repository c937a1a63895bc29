"""Digests of bytes, streams and files; the digest forms; the canonical manifest's digest.

Large files are hashed with buffered reads, not mmap: a mapped file counts towards the
process's RSS and a truncation during hashing would kill it with SIGBUS (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol

import blake3

from headwater.config import hash_threads
from headwater.digest.paths import check_entry_paths, validate_entry_path
from headwater.errors import InvalidInput
from headwater.models import ManifestEntry

ALGO = "blake3"
_PREFIX = ALGO + ":"
_HEX_LEN = 64
_HEXDIGITS = frozenset("0123456789abcdef")
_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)

# A file this large is a pool task of its own (smaller ones go in batches). One larger than
# its share of the work is hashed alone by blake3's own threads, read in chunks of CHUNK.
LARGE_FILE = 4 << 20
CHUNK = 8 << 20
# Pool tasks carry several small files so that per-future overhead stays small next to hashing.
_BATCH_FILES = 32
_BATCH_BYTES = 8 << 20


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


class Staging(Protocol):
    """Where a folder scan also writes the bytes it hashes, so that storing them needs no second
    read (a local blob store's tmp/ folder, see BlobStore.staging). Every call may fail with
    OSError: staging is an optimisation, and a file it could not stage is stored the usual way."""

    def create(self) -> tuple[int, str]:
        """A new temporary file: its descriptor open for writing, and its path."""
        ...

    def keep(self, tmp: str, digest: str, size: int) -> None:
        """`tmp` (closed) holds `size` bytes whose digest is `digest`."""
        ...

    def drop(self, tmp: str) -> None:
        """`tmp` (closed) is not wanted: remove it."""
        ...


# The reader hashes the `size` bytes that stat reported (fewer if the file shrank) and returns
# how many it read, so an entry's size always describes the bytes behind its digest.

# Read, hashed (and staged) in pieces that stay in a core's cache: hashing bytes still in L2
# beats hashing an 8 MiB buffer that went out to memory and back by ~25%.
READ_CHUNK = 512 << 10
_buffers = threading.local()


def _buffer(size: int) -> memoryview:
    """A read buffer of `size` bytes: up to READ_CHUNK, this thread's own, reused (a fresh 1 MiB
    bytes object per file costs 256 page faults); larger ones are not kept."""
    if size > READ_CHUNK:
        return memoryview(bytearray(size))
    buf: memoryview | None = getattr(_buffers, "view", None)
    if buf is None:
        buf = _buffers.view = memoryview(bytearray(READ_CHUNK))
    return buf[:size]


def _readinto(fd: int, view: memoryview) -> int:
    if _HAS_READV:
        return os.readv(fd, [view])
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


_HAS_READV = hasattr(os, "readv")


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _hash_file(
    path: str,
    size: int,
    threads: int = 1,
    staging: Staging | None = None,
    advance: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """(digest, bytes read) of a file; with `staging`, its bytes are written there on the way
    (a failure to write only ends the staging of this file)."""
    hasher = blake3.blake3(max_threads=threads) if threads > 1 else blake3.blake3()
    # blake3's threads need large updates to pay off; alone, a cache-sized piece is fastest.
    chunk = CHUNK if threads > 1 else READ_CHUNK
    buf = _buffer(min(chunk, max(size, 1)))
    out: tuple[int, str] | None = None
    if staging is not None:
        try:
            out = staging.create()
        except OSError:
            out = None
    got = 0
    try:
        fd = os.open(path, _O_RDONLY)
        try:
            while got < size and (n := _readinto(fd, buf[: min(len(buf), size - got)])):
                hasher.update(buf[:n])
                got += n
                if advance is not None:
                    advance(n)
                if out is not None:
                    try:
                        _write_all(out[0], buf[:n])
                    except OSError:  # the store's disk is full, say: storing will say so
                        _abandon(staging, out)
                        out = None
        finally:
            os.close(fd)
    except BaseException:
        if out is not None:
            _abandon(staging, out)
        raise
    digest = _PREFIX + hasher.hexdigest()
    if out is not None and staging is not None:
        try:
            os.close(out[0])
            staging.keep(out[1], digest, got)
        except OSError:
            _abandon(staging, (-1, out[1]))
    return digest, got


def _abandon(staging: Staging | None, out: tuple[int, str]) -> None:
    fd, tmp = out
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    if staging is not None:
        with contextlib.suppress(OSError):
            staging.drop(tmp)


def _hash_batch(files: Sequence[tuple[str, int]], staging: Staging | None = None) -> list[tuple[str, int]]:
    return [_hash_file(path, size, 1, staging) for path, size in files]


_pool_lock = threading.Lock()
_pools: dict[tuple[int, int], ThreadPoolExecutor] = {}


def thread_pool(threads: int) -> ThreadPoolExecutor:
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


# --- the canonical manifest ---------------------------------------------------------------------


def manifest_digest(entries: Iterable[ManifestEntry]) -> str:
    """``blake3:<hex>`` of the canonical manifest; independent of entry order and of `ref`."""
    rows = sorted((validate_entry_path(e.path), e.digest, e.size) for e in entries)
    for path, digest, _ in rows:
        if not digest or "\n" in digest or "\0" in digest:
            raise InvalidInput(f"entry {path!r} has an invalid digest {digest!r}")
    check_entry_paths(row[0] for row in rows)
    canonical = "\n".join(f"{path}\0{digest}\0{size}" for path, digest, size in rows)
    return hash_bytes(canonical.encode("utf-8"))
