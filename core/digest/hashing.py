"""Digests of bytes, streams and files; the digest forms; the canonical manifest's digest.

Large files are hashed with buffered reads, not mmap: a mapped file counts towards the
process's RSS and a truncation during hashing would kill it with SIGBUS (docs/architecture.md).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

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

# Files below this size are read whole by one pool worker; larger ones are read in chunks of
# this size and hashed by blake3's own threads (one file at a time, so threads never multiply).
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


def _hash_large(path: str, size: int, threads: int, advance: Callable[[int], None]) -> tuple[str, int]:
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
