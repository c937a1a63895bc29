"""The durable outbox every write goes through, whatever the backend.

Write-ahead: a batch of events is fsynced and renamed into `$HEADWATER_HOME/outbox/<backend>/`
before any delivery is tried, so a crash, a full disk on the server or a backend that is down
loses nothing. Delivery drains the folder in order under a file lock shared by every process on
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

    def write(self, events: Sequence[Event]) -> str:
        """Persist a batch durably; returns its file name. Raises OSError if the disk refuses."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # uuid7 names sort by time, so the drain keeps each process's order.
        name = new_id() + SUFFIX
        payload = EVENTS.dump_json(list(events))
        tmp = self.folder / f".tmp-{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.folder / name)
        _fsync_dir(self.folder)
        return name

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
        lock = FileLock(self.folder / ".lock")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
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
