"""Local files: folder scans, and their manifests hashed through the stat cache.

Directory scans follow symlinks to files wherever they point (a Hugging Face snapshot is a
folder of such links into a shared blob folder) but never descend into symlinked directories
(no cycles, no walking out into the whole disk); dangling links, sockets, FIFOs and devices are
skipped. A scan of a folder whose files are to be stored can refuse links to files outside it
(`links_out="refuse"`, the Client's default): storing them would copy what the folder does
not hold.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat as stat_mod
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple, Protocol, runtime_checkable

from headwater.config import hash_threads
from headwater.digest.hashing import (
    LARGE_FILE,
    Staging,
    _batches,
    _count_hashed,
    _hash_batch,
    _hash_file,
    thread_pool,
)
from headwater.digest.paths import validate_entry_path
from headwater.digest.stat_cache import (
    RACY_NS,
    StatCache,
    StatCacheArg,
    StatKey,
    _resolve_cache,
    _stat_key,
)
from headwater.errors import InvalidInput
from headwater.models import ManifestEntry
from headwater.progress import ByteProgress

log = logging.getLogger(__name__)

# What a folder scan does with a symbolic link to a file outside the folder.
LinksOut = Literal["follow", "refuse"]


class _LocalFile(NamedTuple):
    rel: str  # the entry path (NFC)
    abspath: str  # the path it was found at, as the file system spells it
    key: StatKey


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
            raise InvalidInput(f"{before.abspath!r} and {after.abspath!r} are one entry path once NFC-normalised")
    return files, False


def _within(real_root: str, path: str) -> bool:
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def local_files(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Entry path -> the file it is read from (NFC entry paths may differ from on-disk names)."""
    return {f.rel: Path(f.abspath) for f in _scan(path)[0]}


def _digest_files(
    files: Sequence[_LocalFile],
    cache: StatCache | None,
    threads: int,
    progress: bool | None,
    staging: Staging | None = None,
) -> list[tuple[str, int]]:
    """(content digest, size) of each file, from the stat cache when its stat is unchanged.
    With `staging`, the bytes of every file hashed are written there as they are read."""
    cached = cache.lookup([f.key for f in files]) if cache is not None else {}
    results: dict[str, tuple[str, int]] = {}
    # Longest first, so no thread is left with one big file at the end.
    todo = sorted((f for f in files if f.key.path not in cached), key=lambda f: -f.key.size)
    if todo:
        started_ns = time.time_ns()
        share = sum(f.key.size for f in todo) / threads
        # A file larger than a thread's share of the work is hashed alone, on every thread;
        # the rest, files in parallel, one thread each (blake3 hashes fastest single-threaded).
        alone = [f for f in todo if threads > 1 and f.key.size >= LARGE_FILE and f.key.size > share]
        shared = [(f.abspath, f.key.size) for f in todo[len(alone) :]]
        hashed: list[tuple[str, int]] = []
        try:
            with ByteProgress("hashing", sum(f.key.size for f in todo), progress) as bar:
                for f in alone:
                    hashed.append(_hash_file(f.abspath, f.key.size, threads, staging, bar.advance))
                jobs = list(_batches(shared))
                if len(jobs) == 1 or threads == 1:
                    runs: Iterable[list[tuple[str, int]]] = map(lambda job: _hash_batch(job, staging), jobs)
                else:
                    runs = thread_pool(threads).map(_hash_batch, jobs, itertools.repeat(staging))
                for job, done in zip(jobs, runs, strict=True):
                    hashed.extend(done)
                    bar.advance(sum(size for _, size in job))
        except FileNotFoundError as exc:
            raise InvalidInput(f"{exc.filename!r} disappeared while being hashed") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {exc.filename!r}: {exc.strerror}") from None
        results = dict(zip([f.key.path for f in todo], hashed, strict=True))
        _count_hashed(len(todo))
        if cache is not None:
            cache.store(
                (f.key, results[f.key.path][0])
                for f in todo
                # A file that changed size under us, or changed recently, is not cached.
                if results[f.key.path][1] == f.key.size and f.key.mtime_ns < started_ns - RACY_NS
            )
    return [results[f.key.path] if f.key.path in results else (cached[f.key.path], f.key.size) for f in files]


def _manifest(
    files: Sequence[_LocalFile],
    hashed: Sequence[tuple[str, int]],
    ref_of: Callable[[_LocalFile], str | None],
) -> list[ManifestEntry]:
    return [
        ManifestEntry(path=f.rel, digest=digest, size=size, ref=ref_of(f))
        for f, (digest, size) in zip(files, hashed, strict=True)
    ]


def build_manifest(
    path: str | os.PathLike[str],
    *,
    stat_cache: StatCacheArg = None,
    threads: int | None = None,
    progress: bool | None = None,
    ref_prefix: str | None = None,
    links_out: LinksOut = "follow",
    stage_into: object = None,
) -> list[ManifestEntry]:
    """The manifest of a file (one entry named by its basename) or a directory (every regular
    file below it, sorted); an empty directory gives an empty manifest.

    `stat_cache`: None uses the shared cache in $HEADWATER_HOME, False uses none. `ref_prefix`
    sets each entry's ref to ``ref_prefix + "/" + path`` (a single file gets `ref_prefix` itself).
    `progress`: None shows a bar only on a terminal and for more than 256 MiB to hash.
    `links_out`: what to do with symbolic links inside a folder that lead to files outside it:
    "follow" hashes what they point to, "refuse" raises InvalidInput naming them.
    `stage_into`: the blob store these files are about to be stored in; when it can stage
    (a local BlobStore), the bytes hashed are written into it on the way, so that storing them
    reads nothing again. What is not stored is removed once the manifest is dropped.
    """
    files, single = _scan(path, links_out)
    session = stage_into.staging() if isinstance(stage_into, CanStage) else None
    try:
        hashed = _digest_files(files, _resolve_cache(stat_cache), threads or hash_threads(), progress, session)
    except BaseException:
        if session is not None:
            session.close()
        raise

    def ref_of(f: _LocalFile) -> str | None:
        if ref_prefix is None:
            return None
        return ref_prefix if single else f"{ref_prefix.rstrip('/')}/{f.rel}"

    manifest = _Manifest(_manifest(files, hashed, ref_of))
    manifest.sources = {f.rel: f.abspath for f in files}
    if session is not None:
        # Staged copies wait for put_file until the caller is done with the manifest.
        weakref.finalize(manifest, session.close)
    return manifest


class _Manifest(list[ManifestEntry]):
    """A manifest that can carry a finalizer (a plain list cannot be weakly referenced), and
    the files its entries were read from."""

    __slots__ = ("__weakref__", "sources")
    sources: dict[str, str]


def manifest_sources(manifest: list[ManifestEntry]) -> dict[str, str]:
    """Entry path -> the file it was read from: what build_manifest's own scan found, so storing
    a folder walks it once."""
    if not isinstance(manifest, _Manifest):
        raise TypeError("only a manifest from build_manifest knows the files it was read from")
    return manifest.sources


class StagingSession(Staging, Protocol):
    def close(self) -> None:
        """Remove whatever was staged and not stored."""
        ...


@runtime_checkable
class CanStage(Protocol):
    """A blob store that can take a scan's bytes as they are hashed (BlobStore)."""

    def staging(self) -> StagingSession | None: ...


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
