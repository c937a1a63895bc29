"""Content-addressed blob store: a local folder or any fsspec location.

A blob is the bytes of one file, kept at ``<root>/blake3/<hex[:2]>/<hex[2:]>`` under its content
digest, so equal files are stored once whoever logs them. Every byte written or restored is
hashed on the way through: a blob never sits under a digest it does not have, and a restore
from a damaged store raises Conflict instead of handing back wrong bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from headwater import config
from headwater.digest import CHUNK, hash_file, is_content_digest, new_hasher
from headwater.errors import Conflict, InvalidInput, NotFound, Unwritable

__all__ = ["BlobStore", "Blobs", "copy_hashed", "default_blob_url", "restore_verified", "sweep_folder"]

log = logging.getLogger(__name__)

_PREFIX = "blake3:"
# Object stores publish an object only once its upload completes, so a blob can be written in
# place; elsewhere it is written under tmp/ and moved.
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})


def default_blob_url() -> str:
    """`$HEADWATER_BLOB_URI`, else the folder `blobs` in $HEADWATER_HOME."""
    return config.blob_uri()


def _hex(digest: str) -> str:
    if not is_content_digest(digest):
        raise InvalidInput(f"not a content digest: {digest!r}; expected blake3:<64 hex>")
    return digest[len(_PREFIX) :]


def _size_of(f: Any) -> int | None:
    size = getattr(f, "size", None)  # fsspec file objects know their size
    if isinstance(size, int):
        return size
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def copy_hashed(src: Any, dst: Any) -> str:
    """Copy `src` to `dst`, returning the digest of every byte that went through."""
    size = _size_of(src)
    # Zero-filling a full chunk for a small blob would cost more than copying it.
    buf = bytearray(CHUNK if size is None else max(1, min(CHUNK, size + 1)))
    view = memoryview(buf)
    hasher = new_hasher(size or 0)
    while n := src.readinto(buf):
        hasher.update(view[:n])
        dst.write(view[:n])
    hexdigest: str = hasher.hexdigest()
    return _PREFIX + hexdigest


def restore_verified(source: Any, digest: str, dest: str | os.PathLike[str], where: str) -> Path:
    """Copy the open blob `source` to `dest`, checking that its bytes hash to `digest`; `dest`
    appears whole or not at all (a temporary file beside it, renamed). `where` names the store
    in the error."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:12]}.headwater-tmp"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with source, open(tmp, "wb") as out:
            got = copy_hashed(source, out)
        if got != digest:
            raise Conflict(f"blob {digest} in {where} is corrupt: expected {digest} got {got}")
        os.replace(tmp, dest)
    except OSError as err:
        if err.errno not in Unwritable.ERRNOS:
            raise
        raise Unwritable.writing(repr(str(dest)), err) from None  # one line, nothing half-written
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return dest


def sweep_folder(folder: str | os.PathLike[str], grace: float, *, dry_run: bool = False, prefix: str = "") -> list[str]:
    """Remove the files in a local `folder` whose names start with `prefix` written more than
    `grace` seconds ago; their names."""
    now = time.time()
    swept = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < grace:
                continue
            if not dry_run:
                os.unlink(entry.path)
        except FileNotFoundError:
            continue  # published or removed by its writer meanwhile
        except OSError as err:  # a read-only folder: what cannot be removed stays, said once
            log.warning("headwater: cannot remove %s: %s", entry.path, err.strerror or err)
            break
        swept.append(entry.name)
    return sorted(swept)


@runtime_checkable
class Blobs(Protocol):
    """Where a Client keeps the bytes of the files it logs: BlobStore (a local folder or any
    fsspec location) or headwater.store.http.HTTPBlobStore (the tracking server's)."""

    url: str

    def has(self, digest: str) -> bool: ...

    def put_file(self, path: str | os.PathLike[str], digest: str | None = None) -> str:
        """Store a file under its digest (hashed when not given); returns the digest."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """The stored bytes as a stream (unverified: get_file verifies)."""
        ...

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Restore a blob to `dest`, verifying every byte."""
        ...

    def delete(self, digest: str) -> None: ...

    def touch(self, digest: str) -> None:
        """Make a stored blob young again for gc's grace period."""
        ...

    def prune(self, digest: str, grace: float, *, dry_run: bool = False) -> bool:
        """Remove an unreferenced blob unless stored within `grace` seconds; whether it went."""
        ...

    def sweep_tmp(self, grace: float, *, dry_run: bool = False) -> list[str]:
        """Remove temporary files older than `grace` seconds that a killed writer left."""
        ...

    def iter_digests(self) -> Iterator[str]: ...

    def local_path(self, digest: str) -> str | None:
        """The local file a blob is (or would be) kept in; None when the blobs are not local."""
        ...


class BlobStore:
    """Blobs under one root: a local path, ``file://``, ``s3://``, ``gs://``, ``memory://``, ..."""

    def __init__(self, url: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """`fsync`: make each local blob durable before it is published. Off by default: it
        costs ~4 ms a blob on a typical disk, and a blob cut short by a crash is replaced by
        the next put_file of that content (and a restore of it fails loudly, never silently)."""
        import fsspec.core
        from fsspec.implementations.local import LocalFileSystem

        self.url = os.fspath(url)
        if "://" in self.url:
            try:
                fs, root = fsspec.core.url_to_fs(self.url)
            except ImportError as exc:
                extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(self.url.partition(":")[0])
                need = f'pip install "headwater[{extra}]"' if extra else " ".join(str(exc).split())
                raise InvalidInput(f"blob store {self.url!r} needs an extra: {need}") from None
            except ValueError as exc:
                raise InvalidInput(f"unsupported blob store URL {self.url!r}: {exc}") from None
        else:
            fs, root = LocalFileSystem(), os.path.abspath(os.path.expanduser(self.url))
        self._fs: Any = fs
        self._root: str = root.rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)
        self._fsync = fsync
        self._made: set[str] = set()  # local folders known to exist: mkdir costs as much as a copy
        # digest -> (tmp file, size): bytes a folder scan wrote while hashing, for put_file.
        self._staged: dict[str, tuple[str, int]] = {}
        self._staged_lock = threading.Lock()
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        self._in_place = bool(_OBJECT_STORES.intersection(protocols))

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    def _path(self, digest: str) -> str:
        hexd = _hex(digest)
        return f"{self._root}/blake3/{hexd[:2]}/{hexd[2:]}"

    def local_path(self, digest: str) -> str | None:
        """The file a blob is (or would be) kept in, when this store is a local folder."""
        return self._path(digest) if self._local else None

    @property
    def local_root(self) -> str | None:
        """The folder this store keeps its blobs under, when it is a local one."""
        return self._root if self._local else None

    @property
    def object_store(self) -> tuple[Any, str] | None:
        """(the fsspec file system, the root path) when the blobs live in an object store written
        in place (s3://, gs://, ...), for transfers that bypass this process; None otherwise."""
        return (self._fs, self._root) if self._in_place and not self._local else None

    def object_path(self, digest: str) -> str:
        """The fsspec path a blob is (or would be) kept at."""
        return self._path(digest)

    def has(self, digest: str) -> bool:
        path = self._path(digest)
        return os.path.isfile(path) if self._local else self._exists(path)

    def _exists(self, path: str) -> bool:
        # fsspec keeps one file system instance per set of options, with a listings cache
        # (filled by iter_digests, say): ask the store, not what this process listed earlier.
        try:
            self._fs.invalidate_cache(path)
        except Exception as exc:  # noqa: BLE001 - a cache is an optimisation; never fail on it
            log.debug("listings cache of %s not cleared: %s", path, exc)
        return bool(self._fs.exists(path))

    def put_file(self, path: str | os.PathLike[str], digest: str | None = None) -> str:
        """Store a file under its digest (a no-op when already stored); returns the digest.

        The bytes are hashed while they are copied; when they do not match `digest` (given, or
        computed just before) nothing is kept and Conflict is raised.
        """
        if digest is None:
            digest, _ = hash_file(path)  # cheap when the stat cache knows the file
        final = self._path(digest)
        staged = self._claim(digest)
        # Its bytes were written and hashed while its folder was scanned (unless gc swept them).
        if staged is not None and self._publish(staged, final, digest, path):
            return digest
        try:
            src = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with` below
        except FileNotFoundError:
            raise InvalidInput(f"no such file: {os.fspath(path)!r}") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
        with src:
            if self._stored(final, os.fstat(src.fileno()).st_size):
                self.touch(digest)  # stored again: young again for gc's grace period
                return digest
            if self._local:
                self._put_local(src, final, digest, path)
            elif self._in_place:
                self._put_in_place(src, final, digest, path)
            else:
                self._put_moved(src, final, digest, path)
        return digest

    def keep_if_stored(self, digest: str, size: int) -> bool:
        """Whether a local blob of this digest is stored whole; if so it is made young again,
        as put_file would, without opening the file it would have been copied from."""
        if not self._local or not self._stored(self._path(digest), size):
            return False
        self.touch(digest)
        return True

    def _stored(self, final: str, size: int) -> bool:
        if not self._local:
            return self._exists(final)  # object stores never publish a partial object
        try:
            # A local blob of the wrong size was cut short by a crash: store it again.
            return os.stat(final).st_size == size
        except FileNotFoundError:
            return False

    def _mkdir(self, folder: str) -> str:
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        return folder

    def _changed(self, path: str | os.PathLike[str], expected: str, got: str) -> Conflict:
        return Conflict(f"{os.fspath(path)!r} changed while being stored: expected {expected}, got {got}")

    def _put_local(self, src: BinaryIO, final: str, digest: str, path: str | os.PathLike[str]) -> None:
        tmp = os.path.join(self._root, "tmp", uuid.uuid4().hex)
        try:
            with self._create(tmp) as out:
                got = copy_hashed(src, out)
                if got != digest:
                    raise self._changed(path, digest, got)
                if self._fsync:
                    out.flush()
                    os.fsync(out.fileno())
            self._mkdir(os.path.dirname(final))
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # its shard folder was removed since we made it
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(tmp, final)
        except OSError as exc:  # the disk is full or read-only: one line, not a traceback
            raise Unwritable.writing(f"{os.fspath(path)!r} to the blob store {self.url}", exc) from None
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass  # renamed into place, or never made
            except OSError as exc:  # the disk went read-only meanwhile: gc sweeps tmp/
                log.debug("blob tmp file %s not removed: %s", tmp, exc)

    # --- staging: a folder scan writes the bytes it hashes into tmp/ (build_manifest's stage_into)

    def staging(self) -> _Staging | None:
        """A staging session for one folder scan, when this store is a local folder that does
        not fsync each blob (the tracking server's stores do: they store the usual way)."""
        if not self._local or self._fsync:
            return None
        return _Staging(self)

    def _stage(self, tmp: str, digest: str, size: int) -> bool:
        """Offer a staged file for `digest`; False when it is not needed (already stored, or
        already staged): the caller removes it."""
        if self._stored(self._path(digest), size):
            return False
        with self._staged_lock:
            if digest in self._staged:
                return False
            self._staged[digest] = (tmp, size)
        return True

    def _claim(self, digest: str) -> tuple[str, int] | None:
        if not self._staged:
            return None
        with self._staged_lock:
            return self._staged.pop(digest, None)

    def _unstage(self, digest: str, tmp: str) -> bool:
        """Take back a staged file that was not stored; False when put_file has claimed it."""
        with self._staged_lock:
            if self._staged.get(digest, (None, 0))[0] != tmp:
                return False
            del self._staged[digest]
            return True

    def _publish(self, staged: tuple[str, int], final: str, digest: str, path: str | os.PathLike[str]) -> bool:
        """Move a staged file into place; False when it is gone (swept by a gc meanwhile)."""
        tmp, size = staged
        try:
            if self._stored(final, size):
                self.touch(digest)  # stored meanwhile (another process): young again
                return True
            self._mkdir(os.path.dirname(final))
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # its shard folder was removed since we made it, or tmp went
                os.makedirs(os.path.dirname(final), exist_ok=True)
                if not os.path.exists(tmp):
                    return False
                os.replace(tmp, final)
            return True
        except OSError as exc:
            raise Unwritable.writing(f"{os.fspath(path)!r} to the blob store {self.url}", exc) from None
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass  # moved into place
            except OSError as exc:  # the disk went read-only meanwhile: gc sweeps tmp/
                log.debug("staged blob %s not removed: %s", tmp, exc)

    def _create(self, tmp: str) -> BinaryIO:
        self._mkdir(os.path.dirname(tmp))
        try:
            return open(tmp, "xb")
        except FileNotFoundError:  # removed since we made it
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            return open(tmp, "xb")

    def _put_in_place(self, src: BinaryIO, final: str, digest: str, path: str | os.PathLike[str]) -> None:
        with self._fs.open(final, "wb") as out:
            got = copy_hashed(src, out)
        if got != digest:
            self._fs.rm_file(final)
            raise self._changed(path, digest, got)

    def _put_moved(self, src: BinaryIO, final: str, digest: str, path: str | os.PathLike[str]) -> None:
        tmp = f"{self._root}/tmp/{uuid.uuid4().hex}"
        self._fs.makedirs(f"{self._root}/tmp", exist_ok=True)
        try:
            with self._fs.open(tmp, "wb") as out:
                got = copy_hashed(src, out)
            if got != digest:
                raise self._changed(path, digest, got)
            self._fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self._fs.mv(tmp, final)
        finally:
            if self._fs.exists(tmp):
                self._fs.rm_file(tmp)

    def open(self, digest: str) -> BinaryIO:
        """The stored bytes, unverified (get_file verifies)."""
        path = self._path(digest)
        try:
            return open(path, "rb") if self._local else self._fs.open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in {self.url}") from None

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Restore a blob to `dest`, verifying every byte; nothing is left at `dest` on failure."""
        return restore_verified(self.open(digest), digest, dest, self.url)

    def delete(self, digest: str) -> None:
        """Remove a blob; removing one that is not there is not an error."""
        path = self._path(digest)
        try:
            if self._local:
                os.unlink(path)
            else:
                self._fs.rm_file(path)
        except FileNotFoundError:
            pass

    def touch(self, digest: str) -> None:
        """Mark a stored blob as just stored, so `gc` counts its grace period from now.

        Local stores only: an object store cannot change an object's time without rewriting it
        (docs/concepts.md says what that leaves to the grace period)."""
        if not self._local:
            return
        try:
            os.utime(self._path(digest))
        except OSError as exc:  # a blob of another user's in a shared folder: its time stays
            log.debug("blob %s not touched: %s", digest, exc)

    def _modified(self, path: str) -> float | None:
        """When `path` was last written (seconds since the epoch), None when it is not there."""
        if self._local:
            try:
                return os.stat(path).st_mtime
            except FileNotFoundError:
                return None
        try:
            self._fs.invalidate_cache(path)
            return float(self._fs.modified(path).timestamp())
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a store that cannot tell counts as just written
            log.warning("headwater: cannot tell when %s was written (%s): kept", path, exc)
            return time.time()

    def prune(self, digest: str, grace: float, *, dry_run: bool = False) -> bool:
        """Remove an unreferenced blob unless it was stored less than `grace` seconds ago
        (its version may still wait in an outbox somewhere); True when removed (or it would be)."""
        written = self._modified(self._path(digest))
        if written is None or time.time() - written < grace:
            return False
        if not dry_run:
            self.delete(digest)
        return True

    def sweep_tmp(self, grace: float, *, dry_run: bool = False) -> list[str]:
        """Remove files left in `tmp/` more than `grace` seconds ago (an upload cut short by
        kill -9 or a crash); younger ones may be uploads under way. Returns their names."""
        folder = f"{self._root}/tmp"
        if self._local:
            return sweep_folder(folder, grace, dry_run=dry_run)
        if self._in_place:
            return []  # written in place: an object store has no tmp/
        try:
            names = self._fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        swept = []
        now = time.time()
        for name in names:
            written = self._modified(name)
            if written is not None and now - written >= grace:
                if not dry_run:
                    self._fs.rm_file(name)
                swept.append(name.rpartition("/")[2])
        return sorted(swept)

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in no particular order."""
        base = f"{self._root}/blake3"
        if self._local:
            try:
                shards = [e for e in os.scandir(base) if e.is_dir()]
            except FileNotFoundError:
                return
            for shard in shards:
                for entry in os.scandir(shard.path):
                    digest = _PREFIX + shard.name + entry.name
                    if is_content_digest(digest):
                        yield digest
            return
        try:
            paths = self._fs.find(base)
        except FileNotFoundError:
            return
        for path in paths:
            shard, _, name = path.rstrip("/").rpartition("/")
            digest = _PREFIX + shard.rpartition("/")[2] + name
            if is_content_digest(digest):
                yield digest


class _Staging:
    """One folder scan's staged files (headwater.digest.hashing.Staging): written into tmp/ as
    they are hashed, then moved into place by put_file; close() removes what was not stored.

    The blob store's invariant holds: a staged file holds exactly the bytes its digest was
    computed from, in the same pass, so it is published under that digest without a re-read."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._folder = os.path.join(store._root, "tmp")
        self._mine: list[tuple[str, str]] = []  # (digest, tmp) offered by this session
        self._lock = threading.Lock()

    def create(self) -> tuple[int, str]:
        tmp = os.path.join(self._folder, uuid.uuid4().hex)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileNotFoundError:  # tmp/ not made yet, or removed since
            os.makedirs(self._folder, exist_ok=True)
            return os.open(tmp, flags, 0o666), tmp

    def keep(self, tmp: str, digest: str, size: int) -> None:
        if not self._store._stage(tmp, digest, size):
            self.drop(tmp)
            return
        with self._lock:
            self._mine.append((digest, tmp))

    def drop(self, tmp: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)

    def close(self) -> None:
        with self._lock:
            mine, self._mine = self._mine, []
        for digest, tmp in mine:
            if self._store._unstage(digest, tmp):
                try:
                    self.drop(tmp)
                except OSError as exc:  # gc sweeps tmp/
                    log.debug("staged blob %s not removed: %s", tmp, exc)
