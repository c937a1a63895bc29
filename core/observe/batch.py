"""Batches: the events of one orchestrator hook, hashed and delivered within the time budget.

Nothing here may break or stall a pipeline. A batch catches every exception (the adapter's own
translation code included), logs one warning line and returns; hashing and delivery share one
time budget (HEADWATER_TIMEOUT_S); what cannot be delivered in time stays in the durable outbox.
Outputs are recorded as references to where the orchestrator wrote them (nothing is copied),
inputs as the exact version read, by digest. Content that cannot be read in time is recorded
honestly as `unverified:<run id>`, never invented.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater import config
from headwater.errors import Unauthorized
from headwater.events import EdgeRecorded, Event, RunRecorded, VersionRecorded
from headwater.models import ManifestEntry, RunKind, RunStatus
from headwater.observe.locations import location_name
from headwater.observe.safety import one_line
from headwater.refs import validate_alias

if TYPE_CHECKING:  # pragma: no cover
    from headwater.api import Client

log = logging.getLogger("headwater")


class _DaemonWorkers:
    """Reused daemon threads for hashing under the budget.

    Daemons on purpose: a hash that outlives its budget is abandoned and must never hold up the
    process's exit (concurrent.futures joins its workers at exit). A busy worker is not waited
    for: another one starts.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._serve, name="headwater-hash", daemon=True).start()
        self._queue.put((work, future))
        return future

    def _serve(self) -> None:
        while True:
            work, future = self._queue.get()
            try:
                future.set_result(work())
            except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(err)
            with self._lock:
                self._idle += 1


_workers_lock = threading.Lock()
_workers: tuple[int, _DaemonWorkers] | None = None


def _hashing_pool() -> _DaemonWorkers:
    """The hashing workers of this process (threads do not survive a fork: Airflow forks)."""
    global _workers
    with _workers_lock:
        if _workers is None or _workers[0] != os.getpid():
            _workers = (os.getpid(), _DaemonWorkers())
        return _workers[1]


class Batch:
    """Events of one orchestrator hook, written to the outbox as one batch when the block ends."""

    def __init__(self, observer: Observer, deadline: float) -> None:
        self.observer = observer
        self.deadline = deadline
        self.events: list[Event] = []
        self.delivered: bool | None = None  # set after the block: None if nothing was emitted
        self.active = observer.enabled  # HEADWATER_DISABLED=1: every method does nothing

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def run(
        self,
        run_id: str,
        *,
        job: str | None = None,
        job_namespace: str | None = None,
        kind: RunKind | None = None,
        status: RunStatus | None = None,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        params: dict[str, Any] | None = None,
        parent_id: str | None = None,
        error: str | None = None,
        code: dict[str, Any] | None = None,
        links: dict[str, str] | None = None,
    ) -> None:
        """Create or update a run (a task try, a flow run, a step, or their container)."""
        if not self.active:
            return None
        self.events.append(
            RunRecorded(
                run_id=run_id,
                job=job,
                job_namespace=job_namespace,
                orchestrator=self.observer.orchestrator,
                run_kind=kind,
                status=status,
                started_at=started_at,
                ended_at=ended_at,
                params=params,
                parent_id=parent_id,
                error=error,
                code=code,
                links=links,
            )
        )

    def _hash(self, target: str | os.PathLike[str]) -> tuple[str, list[ManifestEntry]] | None:
        """Hash a location within what is left of the budget; None when it cannot be read in time."""
        client = self.observer.client()
        done = _hashing_pool().submit(lambda: client.content(target, store=False))
        # A fifth of the budget stays for delivery, so a slow hash does not strand the batch.
        try:
            content = done.result(timeout=max(0.0, self.remaining() - 0.2 * self.observer.timeout))
        except FutureTimeout:
            reason = f"not hashed within {self.observer.timeout:g}s"
        except Exception as err:  # noqa: BLE001 - unreadable content is recorded, not raised
            reason = one_line(err)
        else:
            return content.digest, content.entries
        log.warning("headwater: %s recorded as unverified (%s)", location_name(target), reason)
        return None

    def extend(self, other: Batch) -> None:
        """Take the events another batch collected (say, inputs hashed when a task started)."""
        self.events.extend(other.events)

    def _unverified(self, run_id: str, target: str | os.PathLike[str]) -> tuple[str, list[ManifestEntry]]:
        uri = location_name(target)
        digest = f"unverified:{run_id}"
        basename = uri.rstrip("/").rsplit("/", 1)[-1] or "data"
        return digest, [ManifestEntry(path=basename, digest=digest, size=0, ref=uri)]

    def used(
        self,
        run_id: str,
        target: str | os.PathLike[str],
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str | None:
        """The run read `target` (a path or URI): an edge to the exact version, by digest.

        Returns `name@digest`, or None when the content could not be read (the edge then goes
        to the artifact's latest version at this time, marked inexact).
        """
        if not self.active:
            return None
        artifact = name or location_name(target)
        hashed = self._hash(target)
        if hashed is None:
            self.events.append(EdgeRecorded(run_id=run_id, ref=artifact, exact=False, metadata=metadata or {}))
            return None
        digest, entries = hashed
        self.events.append(
            VersionRecorded(
                name=artifact,
                digest=digest,
                entries=entries,
                run_id=run_id,
                direction="used",
                edge_metadata=metadata or {},
            )
        )
        return f"{artifact}@{digest}"

    def used_ref(self, run_id: str, ref: str, *, exact: bool = True, metadata: dict[str, Any] | None = None) -> None:
        """The run read a version named by a REF (resolved when the event is applied)."""
        if not self.active:
            return None
        self.events.append(EdgeRecorded(run_id=run_id, ref=ref, exact=exact, metadata=metadata or {}))

    def produced(
        self,
        run_id: str,
        target: str | os.PathLike[str] | None,
        *,
        name: str | None = None,
        type: str | None = None,
        metadata: dict[str, Any] | None = None,
        aliases: Sequence[str] = (),
        tags: Sequence[str] = (),
        description: str | None = None,
        inputs: Sequence[str] = (),
    ) -> str | None:
        """The run wrote `target`: a version (a reference to where the bytes are) and its edge.

        With no target (an output whose location the orchestrator does not report), `name` is
        required and the version is `unverified:<run id>` with no entries. `inputs`: the REFs of
        the run's input edges (recorded before this) that made this output, where the orchestrator
        says so; none: every input of the run made it.
        """
        if not self.active:
            return None
        if target is None:
            if not name:
                raise ValueError("an output without a location needs a name")
            artifact, digest, entries = name, f"unverified:{run_id}", list[ManifestEntry]()
        else:
            artifact = name or location_name(target)
            digest, entries = self._hash(target) or self._unverified(run_id, target)
        self.events.append(
            VersionRecorded(
                name=artifact,
                digest=digest,
                entries=entries,
                type=type,
                metadata=metadata or {},
                aliases=[validate_alias(a) for a in aliases],
                tags=list(tags),
                description=description,
                run_id=run_id,
                direction="produced",
                inputs=list(dict.fromkeys(inputs)),
            )
        )
        return f"{artifact}@{digest}"


def _default_client() -> Client:
    from headwater.api import default_client

    return default_client()


class Observer:
    """One per adapter (per orchestrator); cheap to create, safe to share between threads."""

    def __init__(
        self,
        orchestrator: str,
        client_factory: Callable[[], Client] | None = None,
        *,
        timeout: float | None = None,
        disabled: bool = False,
    ) -> None:
        """`timeout` and `disabled`: an orchestrator's own settings (airflow.cfg), which win over
        HEADWATER_TIMEOUT_S and add to HEADWATER_DISABLED."""
        self.orchestrator = orchestrator
        self._client_factory = client_factory or _default_client
        self._timeout = timeout
        self._disabled = disabled

    @property
    def enabled(self) -> bool:
        return not (self._disabled or config.disabled())

    @property
    def timeout(self) -> float:
        return self._timeout or config.timeout_s()

    def client(self) -> Client:
        return self._client_factory()

    def collect(self) -> Batch:
        """A batch that is never written by itself: its events join a later batch (extend())."""
        return Batch(self, time.monotonic() + self.timeout)

    @contextmanager
    def batch(self, what: str = "event", *, deliver: bool = True) -> Iterator[Batch]:
        """Collect one hook's events; on exit write them to the outbox and deliver within budget.

        With HEADWATER_DELIVERY=background a delivering batch is made durable in the outbox and
        handed to this outbox's deliverer process (headwater.deliverer); `delivered` is then False.
        With `deliver=False` the batch is only made durable in the outbox; the next delivering
        batch of this process (or `headwater sync`) carries it, in order. A task's start can wait
        for its end that way, and the task pays for one delivery instead of two.

        Never raises: an error anywhere (translation, hashing, the disk, the backend) is logged as
        one warning line naming `what`, and the pipeline goes on.
        """
        batch = Batch(self, time.monotonic() + self.timeout)
        try:
            yield batch
            if batch.events and batch.active:
                if deliver and not config.background_delivery():
                    batch.delivered = self.client().emit(batch.events, timeout=batch.remaining())
                else:
                    client = self.client()
                    # A batch that is not delivered (a task's start) leaves the folder's fsync to
                    # the delivering batch that follows it in this process (its end), as a manual
                    # run's start does: a crash keeps it either way (it is fsynced and renamed).
                    client.queue(batch.events, until_emit=not deliver)
                    batch.delivered = False
                    if deliver:  # HEADWATER_DELIVERY=background: a deliverer process delivers it
                        from headwater.deliverer import hand_over

                        hand_over(client)
        except Unauthorized as err:  # the batch is in the outbox: it waits for a good token
            log.warning("headwater: %s %s waits in the outbox: %s", self.orchestrator, what, one_line(err))
        except Exception as err:  # noqa: BLE001 - the whole point: never break the pipeline
            log.warning("headwater: %s %s not recorded: %s", self.orchestrator, what, one_line(err))
