"""The durable outbox every write goes through, whatever the backend.

Write-ahead: a batch of events is fsynced and renamed into `$HEADWATER_HOME/outbox/<backend>/`
before any delivery is tried, so a crash, a full disk on the server or a backend that is down
loses nothing; the folder is fsynced too (the rename's own durability) before a batch is reported
as waiting, and not at all for one delivered at once (`Client.emit`). Delivery drains the folder in order under a file lock shared by every process on
the machine; the store skips event ids it has applied, so at-least-once delivery gives
exactly-once effects. A batch the store refuses for good (a Conflict, bad input) is moved to
`dead/` with its reason, so one poison batch never blocks the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: filelock's own lock
    fcntl = None  # type: ignore[assignment]

from headwater.errors import HeadwaterError, Unavailable
from headwater.events import EVENTS, Event, new_id
from headwater.store.base import Store

log = logging.getLogger("headwater.outbox")

SUFFIX = ".json"
# Pending batches applied together in one transaction (one commit, or one request to a server),
# within bounds that keep a request well under the tracking server's body limit.
GROUP_BATCHES = 64
GROUP_EVENTS = 2000
GROUP_BYTES = 8 << 20


@dataclass
class Delivery:
    """What one drain did. `dead` maps a batch file name to the reason it was refused."""

    delivered: int = 0
    pending: int = 0
    dead: dict[str, HeadwaterError] = field(default_factory=dict)
    error: str | None = None  # why delivery stopped early (backend away, lock busy)


class Outbox:
    def __init__(self, home: Path, backend_uri: str, connect: Callable[[], Store]) -> None:
        # One folder per backend: switching HEADWATER_URI never sends events to the wrong store.
        key = hashlib.blake2b(backend_uri.encode(), digest_size=6).hexdigest()
        self.folder = Path(home) / "outbox" / key
        self.dead_folder = self.folder / "dead"
        self.backend_uri = backend_uri
        self._connect = connect

    def write(self, events: Sequence[Event], *, sync_dir: bool = True) -> str:
        """Persist a batch durably; returns its file name. Raises OSError if the disk refuses.

        The bytes are fsynced before the rename, so a name in the folder always holds a whole
        batch. `sync_dir=False` leaves the directory's fsync to the caller: `sync_dir()` before
        it reports the batch as waiting (see `Client.emit`, which delivers it first).
        """
        # uuid7 names sort by time, so the drain keeps each process's order.
        name = new_id() + SUFFIX
        payload = EVENTS.dump_json(list(events))
        tmp = self.folder / f".tmp-{name}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # the first batch for this backend: make its folder
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.folder / name)
        if sync_dir:
            self.sync_dir()
        return name

    def sync_dir(self) -> None:
        """Make the names renamed into the folder durable (the rename is only on disk after this)."""
        _fsync_dir(self.folder)

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def dead(self) -> list[Path]:
        if not self.dead_folder.is_dir():
            return []
        return sorted(p for p in self.dead_folder.iterdir() if p.name.endswith(SUFFIX))

    def deliver(self, timeout: float) -> Delivery:
        """Drain pending batches in order until done, the backend fails, or `timeout` passes."""
        result = Delivery()
        if not self.folder.is_dir():
            return result
        deadline = time.monotonic() + timeout
        lock = _lock(self.folder / ".lock", timeout)
        if lock is None:
            result.pending = len(self.pending())
            result.error = "another process is delivering"
            return result
        try:
            batches = self.pending()
            position = 0
            store: Store | None = None
            while position < len(batches):
                if time.monotonic() > deadline:
                    result.error = f"time budget of {timeout:g}s spent"
                    break
                group, position = self._read_group(batches, position, result)
                if not group:
                    continue
                try:
                    if store is None:
                        store = self._connect()
                    self._apply_group(store, group, result)
                except Unavailable as err:
                    result.error = str(err)
                    break
            result.pending = len(self.pending())
        finally:
            lock.release()
        return result

    def _read_group(
        self, batches: list[Path], position: int, result: Delivery
    ) -> tuple[list[tuple[Path, list[Event]]], int]:
        """Consecutive batches to apply in one transaction (one commit, one request)."""
        group: list[tuple[Path, list[Event]]] = []
        size = events = 0
        while position < len(batches) and len(group) < GROUP_BATCHES:
            path = batches[position]
            try:
                raw = path.read_bytes()
            except FileNotFoundError:
                position += 1  # delivered by a process that held the lock before us
                continue
            if group and (size + len(raw) > GROUP_BYTES or events >= GROUP_EVENTS):
                break
            position += 1
            try:
                parsed = EVENTS.validate_json(raw)
            except ValueError as err:
                self._bury(path, HeadwaterError(f"unreadable outbox batch: {err}"), result)
                continue
            group.append((path, parsed))
            size += len(raw)
            events += len(parsed)
        return group, position

    def _apply_group(self, store: Store, group: list[tuple[Path, list[Event]]], result: Delivery) -> None:
        """Apply a group at once; if the store refuses it, batch by batch, to set the bad one aside."""
        try:
            store.apply([event for _, events in group for event in events])
        except Unavailable:
            raise
        except HeadwaterError as err:
            if len(group) == 1:
                self._bury(group[0][0], err, result)
                return
            for path, events in group:
                try:
                    store.apply(events)
                except Unavailable:
                    raise
                except HeadwaterError as err:
                    self._bury(path, err, result)
                    continue
                path.unlink(missing_ok=True)
                result.delivered += 1
            return
        for path, _ in group:
            path.unlink(missing_ok=True)
            result.delivered += 1

    def _bury(self, path: Path, err: HeadwaterError, result: Delivery) -> None:
        self.dead_folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.dead_folder / path.name)
        (self.dead_folder / (path.name + ".reason")).write_text(
            json.dumps({"error": type(err).__name__, "message": str(err)})
        )
        log.warning("headwater: outbox batch %s refused by %s: %s", path.name, self.backend_uri, err)
        result.dead[path.name] = err


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
    if fcntl is None:  # pragma: no cover - Windows
        lock = FileLock(path)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            return None
        return lock
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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
