"""The durable outbox every write goes through, whatever the backend.

Write-ahead: a batch of events is fsynced and renamed into `$HEADWATER_HOME/outbox/<backend>/`
before any backend commits it, so a crash, a full disk on the server or a backend that is down
loses nothing. A batch delivered at once (`Client.emit`) is fsynced on a worker thread while
the store does its work, and the store commits only after that fsync. The folder is fsynced too
(the rename's own durability) before a batch is reported as waiting; a batch delivered at once
skips that, its file being removed right after. Delivery drains the folder in order under a
file lock shared by every process on the machine; the store skips event ids it has applied, so
at-least-once delivery gives exactly-once effects. A batch the store refuses for good (a
Conflict, bad input) is moved to `dead/` with its reason, so one poison batch never blocks the
rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if sys.platform != "win32":
    import fcntl
else:  # pragma: no cover - Windows: filelock's own lock
    fcntl = None

from pydantic import ValidationError

from headwater import config
from headwater.errors import HeadwaterError, InvalidInput, Unavailable, Unwritable
from headwater.events import EVENTS, Event, VersionRecorded, describe_error, dump_events, new_id
from headwater.store.base import Store

if TYPE_CHECKING:  # imported on Windows only: filelock costs every task process's start-up
    from filelock import FileLock

log = logging.getLogger("headwater.outbox")

SUFFIX = ".json"
TMP_PREFIX = ".tmp-"  # a batch being written, renamed to its name once durable
# Pending batches applied together in one transaction (one commit, or one request to a server),
# within bounds that keep a request well under the tracking server's body limit.
GROUP_BATCHES = 64
GROUP_EVENTS = 2000
GROUP_BYTES = 8 << 20


@dataclass
class Writing:
    """A batch whose bytes are written and whose fsync and rename run behind (write_behind)."""

    name: str
    events: list[Event]
    size: int
    done: Future[None]  # set once the batch is fsynced and renamed into the folder


@dataclass
class Delivery:
    """What one drain did. `dead` maps a batch file name to the reason it was refused."""

    delivered: int = 0
    dead: dict[str, HeadwaterError] = field(default_factory=dict)
    error: str | None = None  # why delivery stopped early (backend away, lock busy)
    notices: list[str] = field(default_factory=list)  # recorded otherwise than asked (Store.apply)
    stopped_by: Unavailable | None = None  # the backend's error behind `error` (Unauthorized: a bad token)
    _pending: int | None = field(default=None, repr=False)
    _outbox: Outbox | None = field(default=None, repr=False)

    @property
    def pending(self) -> int:
        """Batches left in the outbox when the drain ended (for emit()'s drain, which never asks,
        counted when first asked: listing the folder again would cost every task's batch)."""
        if self._pending is None:
            self._pending = len(self._outbox.pending()) if self._outbox is not None else 0
        return self._pending


class Outbox:
    def __init__(self, home: Path, backend_uri: str, connect: Callable[[], Store]) -> None:
        self.folder = self.folder_for(home, backend_uri)
        self.dead_folder = self.folder / "dead"
        self.backend_uri = backend_uri
        self._connect = connect

    @staticmethod
    def folder_for(home: Path, backend_uri: str) -> Path:
        """The outbox folder of a backend under `home`; the HTTP store keeps its blob spool in it."""
        # One folder per backend: switching HEADWATER_URI never sends events to the wrong store.
        key = hashlib.blake2b(backend_uri.encode(), digest_size=6).hexdigest()
        return Path(home) / "outbox" / key

    def write(self, events: Sequence[Event], *, sync_dir: bool = True) -> str:
        """Persist a batch durably; returns its file name. Raises OSError if the disk refuses.

        The bytes are fsynced before the rename, so a name in the folder always holds a whole
        batch; the folder is fsynced after it, so the name survives a power loss. `sync_dir=False`
        leaves that to the caller's next emit(), which syncs the folder when it does not deliver.
        """
        name, _, finish = self._start(events)
        finish()
        if sync_dir:
            self.sync_dir()
        return name

    def write_behind(self, events: Sequence[Event]) -> Writing:
        """Write a batch's bytes now; fsync and rename them into the folder on a worker thread.

        For a batch about to be delivered: `deliver(own=...)` applies it from memory, so its
        fsync overlaps the store's work, and waits for that fsync before the store commits. The
        batch is durable in the outbox before it is in the store, as with write(). The caller
        waits for `done` (and fsyncs the folder) if the batch is left waiting.
        """
        batch = list(events)
        name, size, finish = self._start(batch)
        return Writing(name, batch, size, _behind(finish))

    def _start(self, events: Sequence[Event]) -> tuple[str, int, Callable[[], None]]:
        """The batch's name and size, its bytes written to a temporary file, and what makes it
        durable: fsync the bytes, then rename them into the folder. A write the disk refuses
        (full, read-only) raises Unwritable and leaves no temporary file behind."""
        # uuid7 names sort by time, so the drain keeps each process's order.
        name = new_id() + SUFFIX
        payload = dump_events(events)
        tmp = self.folder / f"{TMP_PREFIX}{name}"
        try:
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileNotFoundError:  # the first batch for this backend: make its folder
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as err:
            raise self._unwritable(err) from None
        try:
            written = memoryview(payload)
            while written:  # a write cut short (the disk filling up) returns a count, not an error
                written = written[os.write(fd, written) :]
        except BaseException as err:
            os.close(fd)
            _discard(tmp)
            if isinstance(err, OSError):
                raise self._unwritable(err) from None
            raise

        def finish() -> None:
            try:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.folder / name)
            except BaseException as err:
                _discard(tmp)
                if isinstance(err, OSError):
                    raise self._unwritable(err) from None
                raise

        return name, len(payload), finish

    def _unwritable(self, err: OSError) -> Unwritable:
        return Unwritable.writing(f"a batch to the outbox {self.folder}", err)

    def sweep_tmp(self, grace: float, *, dry_run: bool = False) -> list[str]:
        """Remove batches left half-written (their writer killed before its rename) more than
        `grace` seconds ago; a younger one may be a write under way. Returns their names."""
        from headwater.blobs import sweep_folder

        return sweep_folder(self.folder, grace, dry_run=dry_run, prefix=TMP_PREFIX)

    def sync_dir(self) -> None:
        """Make the names renamed into the folder durable (the rename is only on disk after this)."""
        _fsync_dir(self.folder)

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = []
        with os.scandir(self.folder) as listing:
            for entry in listing:
                if not entry.name.endswith(SUFFIX) or entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    # Not a batch headwater wrote: reading it would fail every delivery.
                    log.warning("headwater: outbox entry %s is a folder, not a batch: skipped", entry.path)
                    continue
                found.append(Path(entry.path))
        return sorted(found)

    def dead(self) -> list[Path]:
        if not self.dead_folder.is_dir():
            return []
        return sorted(p for p in self.dead_folder.iterdir() if p.name.endswith(SUFFIX))

    def unbury(self, event_id: str) -> bool:
        """Remove the batch set aside in dead/ that holds event `event_id`, with its reason, so
        its events can be delivered again apart (ActiveRun); whether one was found."""
        needle = json.dumps(event_id).encode()
        for path in reversed(self.dead()):  # the newest first: the one just refused
            try:
                if needle not in path.read_bytes():
                    continue
                path.unlink()
            except OSError:
                continue
            (self.dead_folder / (path.name + ".reason")).unlink(missing_ok=True)
            return True
        return False

    def stored_digests(self) -> set[str]:
        """File digests the versions of pending batches store: blobs gc must keep, though no
        store references them yet. A batch delivered meanwhile is skipped (the store has it); one
        that cannot be parsed is skipped too (it can never be delivered); one that cannot be read
        raises OSError, so gc stops rather than guess."""
        digests: set[str] = set()
        for path in self.pending():
            try:
                events = EVENTS.validate_json(path.read_bytes())
            except (FileNotFoundError, ValueError):
                continue
            for event in events:
                if isinstance(event, VersionRecorded):
                    digests.update(e.digest for e in event.entries if e.ref is None)
        return digests

    def deliver(self, timeout: float, own: Writing | None = None) -> Delivery:
        """Drain pending batches in order until done, the backend fails (or the disk refuses a
        write: Unwritable), or `timeout` passes.

        `own`: a batch this process is writing (write_behind), delivered in its place in the
        order whether or not its rename is done yet; the store commits it only once it is durable.
        """
        result = Delivery()
        if not self.folder.is_dir():
            return result
        deadline = time.monotonic() + timeout
        lock = _lock(self.folder / ".lock", timeout)
        if lock is None:
            result._pending = len(self.pending())
            result.error = "another process is delivering"
            return result
        try:
            batches = self.pending()
            if own is not None and self.folder / own.name not in batches:
                batches = sorted([*batches, self.folder / own.name])
            position = 0
            store: Store | None = None
            while position < len(batches):
                if time.monotonic() > deadline:
                    result.error = f"time budget of {timeout:g}s spent"
                    break
                try:
                    group, position = self._read_group(batches, position, result, own)
                    if not group:
                        continue
                    if store is None:
                        store = self._connect()
                    self._apply_group(store, group, result, own)
                except Unavailable as err:
                    result.error, result.stopped_by = str(err), err
                    break
            if own is None:
                result._pending = len(self.pending())
            else:  # emit() asks only whether its own batch went: the folder is listed if asked
                result._outbox = self
        finally:
            lock.release()
        if result.notices:
            # One line, however many edges: runs touched content that was deleted.
            log.warning("headwater: %s", "; ".join(result.notices))
        return result

    def _read_group(
        self, batches: list[Path], position: int, result: Delivery, own: Writing | None = None
    ) -> tuple[list[tuple[Path, list[Event]]], int]:
        """Consecutive batches to apply in one transaction (one commit, one request)."""
        group: list[tuple[Path, list[Event]]] = []
        size = events = 0
        while position < len(batches) and len(group) < GROUP_BATCHES:
            path = batches[position]
            if own is not None and path.name == own.name:
                length, parsed = own.size, own.events  # ours, in memory: its rename may be under way
            else:
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    position += 1  # delivered by a process that held the lock before us
                    continue
                except IsADirectoryError:
                    position += 1  # made a folder since pending() listed it: skipped there too
                    continue
                length, parsed = len(raw), None
            if group and (size + length > GROUP_BYTES or events >= GROUP_EVENTS):
                break
            position += 1
            if parsed is None:
                try:
                    parsed = EVENTS.validate_json(raw)
                except ValidationError as err:
                    # Also a batch written before events were checked when made (a NUL, a bad
                    # time, NaN in metadata): the store would refuse it just the same.
                    self._bury(path, InvalidInput(describe_error(err, "outbox batch")), result)
                    continue
                except ValueError as err:
                    self._bury(path, InvalidInput(f"unreadable outbox batch: {err}"), result)
                    continue
            group.append((path, parsed))
            size += length
            events += len(parsed)
        return group, position

    def _apply_group(
        self, store: Store, group: list[tuple[Path, list[Event]]], result: Delivery, own: Writing | None = None
    ) -> None:
        """Apply a group at once; if the store refuses it, batch by batch, to set the bad one aside.

        A group that holds `own` commits only once `own` is durable in the folder."""

        def durable(paths: list[Path]) -> Callable[[], None] | None:
            if own is not None and any(path.name == own.name for path in paths):
                return own.done.result
            return None

        try:
            everything = [path for path, _ in group]
            notices = store.apply([event for _, events in group for event in events], before_commit=durable(everything))
        except Unavailable:
            raise
        except HeadwaterError as err:
            if len(group) == 1:
                self._bury(group[0][0], err, result, own)
                return
            for path, events in group:
                try:
                    result.notices.extend(store.apply(events, before_commit=durable([path])))
                except Unavailable:
                    raise
                except HeadwaterError as err:
                    self._bury(path, err, result, own)
                    continue
                self._delivered(path, result)
            return
        result.notices.extend(notices)
        for path, _ in group:
            self._delivered(path, result)

    def _delivered(self, path: Path, result: Delivery) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:  # committed: delivered again later, the store skipping its events
            raise Unwritable.writing(f"the outbox {self.folder} (removing delivered {path.name})", err) from None
        result.delivered += 1

    def _bury(self, path: Path, err: HeadwaterError, result: Delivery, own: Writing | None = None) -> None:
        if own is not None and path.name == own.name:
            own.done.result()  # in the folder before it is moved aside
        try:
            self.dead_folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, self.dead_folder / path.name)
            (self.dead_folder / (path.name + ".reason")).write_text(
                json.dumps({"error": type(err).__name__, "message": str(err)})
            )
        except OSError as exc:  # the batch stays where it was, refused again next time
            raise Unwritable.writing(f"the outbox {self.dead_folder} (setting {path.name} aside)", exc) from None
        log.warning("headwater: outbox batch %s refused by %s: %s", path.name, config.mask_uri(self.backend_uri), err)
        result.dead[path.name] = err


def every_outbox(home: Path) -> list[Outbox]:
    """The outbox of every backend this home has written to, to read (`headwater gc`): their
    backends are not known from their folders, so they cannot deliver."""
    root = Path(home) / "outbox"
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        box = Outbox.__new__(Outbox)
        box.folder, box.dead_folder, box.backend_uri = folder, folder / "dead", ""
        box._connect = _unknown_backend
        found.append(box)
    return found


def _unknown_backend() -> Store:
    raise Unavailable("this outbox was opened to be read: its backend is not known")


_behind_lock = threading.Lock()
_behind_queue: tuple[int, queue.SimpleQueue[tuple[Callable[[], None], Future[None]]]] | None = None


def _behind(work: Callable[[], None]) -> Future[None]:
    """Run `work` on this process's outbox thread (threads do not survive a fork: Airflow forks).

    A daemon: whoever handed it work waits for the result before reporting anything durable."""
    global _behind_queue
    future: Future[None] = Future()
    with _behind_lock:
        if _behind_queue is None or _behind_queue[0] != os.getpid():
            jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]] = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(jobs,), name="headwater-outbox", daemon=True).start()
            _behind_queue = (os.getpid(), jobs)
        _behind_queue[1].put((work, future))
    return future


def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], None], Future[None]]]) -> None:
    while True:
        work, future = jobs.get()
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(err)
        else:
            future.set_result(None)


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError as err:  # the disk went read-only meanwhile: gc sweeps it once it is old
        log.debug("outbox file %s not removed: %s", tmp, err)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_LOCK_POLL_S = 0.05


class _Flock:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


def _lock(path: Path, timeout: float) -> _Flock | FileLock | None:
    """The drain lock, or None when another process holds it past `timeout`.

    On POSIX, flock(2) on the lock file: the very lock filelock takes there, so processes using
    either exclude each other, without filelock's bookkeeping (0.1 ms a call, on every task).
    """
    if sys.platform == "win32":  # pragma: no cover - filelock's own lock
        from filelock import FileLock, Timeout

        lock = FileLock(path)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            return None
        return lock
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a read-only home
            raise Unwritable.writing(f"the outbox lock {path}", err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(_LOCK_POLL_S, left))
            continue
        except BaseException:
            os.close(fd)
            raise
        if os.fstat(fd).st_nlink == 0:  # the file was removed while we waited: lock the new one
            os.close(fd)
            continue
        return _Flock(fd)
