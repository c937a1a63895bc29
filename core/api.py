"""The public Python API: `import headwater as hw`.

Every write becomes events that go through the durable outbox (headwater.outbox) and are then
delivered to the backend within the time budget; reads go to the backend directly.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from headwater import config
from headwater.errors import (
    Conflict,
    HeadwaterError,
    InvalidInput,
    NotFound,
    Unauthorized,
    Unavailable,
    Unwritable,
)
from headwater.events import (
    AliasMoved,
    EdgeRecorded,
    Event,
    RunRecorded,
    TagsChanged,
    VersionDeleted,
    VersionRecorded,
    new_id,
    utcnow,
)
from headwater.models import (
    AliasMove,
    Artifact,
    AuditRecord,
    Diff,
    Drift,
    Impact,
    LineageGraph,
    ManifestEntry,
    Reachable,
    RetentionPolicy,
    Run,
    RunStatus,
    VerifyReport,
    Version,
)
from headwater.outbox import Delivery, Outbox
from headwater.refs import (
    LATEST,
    Ref,
    file_uri_to_path,
    is_uri,
    normalize_name,
    parse_ref,
    path_to_file_uri,
    validate_alias,
    validate_name,
)
from headwater.store import Store, backoff, open_store
from headwater.store.base import ArtifactOrder

if TYPE_CHECKING:  # imported when used: the digest module's hashers cost a task's start-up
    from headwater.blobs import Blobs
    from headwater.purge import PurgePlan, PurgeReport
    from headwater.retention import Removal

log = logging.getLogger("headwater")

# HEADWATER_NAMESPACE_UUID = uuid5(NAMESPACE_URL, "https://headwater.dev/run"); never change it:
# every deterministic run id, uuid5(NAMESPACE_UUID, "\x1f".join(parts)), depends on it.
NAMESPACE_UUID = uuid.UUID("a0d4572f-a9e9-5a56-adb4-f6544a06bd6d")


def run_id(*parts: object) -> str:
    """A run id derived from the orchestrator's own identity: the same event twice, the same run."""
    return str(uuid.uuid5(NAMESPACE_UUID, "\x1f".join(str(p) for p in parts)))


InputLike = str | os.PathLike[str] | Version


@dataclass
class Output:
    """An output to record: a local path (stored) or a URI (referenced) under artifact `name`.

    `inputs`: what made this output (REFs, paths, URIs or Versions), when not every input of the
    run did; each is also recorded as an input of the run. Upstream of this output then follows
    only these, and downstream of another input of the run does not reach it.
    """

    name: str
    path: str | os.PathLike[str]
    type: str | None = None
    aliases: Sequence[str] = ()
    metadata: dict[str, Any] | None = None
    description: str | None = None
    tags: Sequence[str] = ()
    store: bool | None = None
    inputs: Sequence[InputLike] = ()


def _utc(at: datetime | None) -> datetime | None:
    """A naive datetime given by a user is UTC (docs/architecture.md)."""
    if at is None:
        return None
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


@dataclass
class _Content:
    entries: list[ManifestEntry]
    digest: str
    files: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)  # entry path -> local file to store


class Client:
    """One backend plus the local outbox, blob store and caches under HEADWATER_HOME."""

    def __init__(
        self,
        uri: str | None = None,
        home: str | os.PathLike[str] | None = None,
        *,
        token: str | None = None,
        store: Store | None = None,
    ) -> None:
        """`store`: an open store to read and write through (the tracking server's own), else
        the one `uri` names, opened on first use."""
        if home is None:
            self.home = config.headwater_home()
            uri = uri or config.store_uri()
        else:
            self.home = Path(home).expanduser().absolute()
            uri = uri or config.raw("HEADWATER_URI") or f"sqlite:///{self.home / 'headwater.db'}"
        self.uri = uri if store is None else store.uri
        self._token = token  # for the tracking server; never logged
        self.outbox = Outbox(self.home, self.uri, self._connect)
        self._store: Store | None = store
        self._store_pid = os.getpid() if store is not None else 0
        self._blobs: Blobs | None = None
        self._stat_cache: Any = None
        self._lock = threading.Lock()
        # get()'s answers, each with the store and the store's read token it was read under
        # (Store.read_token: SQLite's; other backends give none, and nothing is kept).
        self._got: dict[tuple[str, datetime | None], tuple[Store, object, Version]] = {}
        # Open runs holding outputs not yet delivered: a read of this client delivers them
        # first, so it sees this process's own versions (ActiveRun buffers them).
        self._unflushed: list[ActiveRun] = []

    # -- plumbing ----------------------------------------------------------------------------

    def _connect(self) -> Store:
        # Connections do not survive fork (Airflow forks task processes): one store per pid.
        with self._lock:
            if self._store is None or self._store_pid != os.getpid():
                self._store = open_store(self.uri, token=self._token, home=self.home)
                if config.get("HEADWATER_OPENLINEAGE_URL"):  # the backend stays plain; emitting is ours
                    from headwater.openlineage import wrap_store

                    self._store = wrap_store(self._store, self.home)
                self._store_pid = os.getpid()
            return self._store

    @property
    def store(self) -> Store:
        """The backend, to read from: what this client's open runs buffered is delivered first,
        and with HEADWATER_DELIVERY=background what waits in the outbox (a deliverer's work)."""
        if self._unflushed:
            self._flush_runs()
        if config.background_delivery() and self.outbox.pending():
            self._deliver_waiting()
        return self._connect()

    def _deliver_waiting(self) -> None:
        # A read must not miss what a task handed to its deliverer: drain first, under the same
        # lock. A backend that is away or a busy lock is the read's own business, not an error.
        try:
            self.outbox.deliver(config.timeout_s())
        except HeadwaterError as err:
            log.debug("outbox not delivered before a read: %s", err)

    def _flush_runs(self) -> None:
        runs, self._unflushed = self._unflushed, []
        for run in runs:
            run.flush()

    @property
    def blobs(self) -> Blobs:
        if self._blobs is None:
            if self.uri.split(":", 1)[0].lower() in ("http", "https"):  # blobs upload to the server
                from headwater.store.http import HTTPStore

                store = self.store
                if not isinstance(store, HTTPStore):
                    raise InvalidInput(
                        f"{config.mask_uri(self.uri)} is served by {type(store).__name__}, which keeps no blobs"
                    )
                self._blobs = store.blobs
            else:
                from headwater.blobs import BlobStore

                self._blobs = BlobStore(config.blob_uri(home=self.home))
        return self._blobs

    @property
    def stat_cache(self) -> Any:
        if self._stat_cache is None:
            from headwater.digest import StatCache

            self._stat_cache = StatCache(self.home / "statcache.db")
        return self._stat_cache

    def close(self) -> None:
        self._got.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def queue(self, events: Sequence[Event], *, until_emit: bool = False) -> None:
        """Write events to the outbox without delivering them: the next emit() or sync() will.

        For a hook whose events can wait a moment (a task's start, delivered with its end).
        `until_emit`: a batch written after it in this process makes the folder durable, so the
        folder's fsync is left to it (an emit() syncs the folder whenever it does not deliver, a
        queue() without `until_emit` always does); a crash keeps the batch either way."""
        self.outbox.write(events, sync_dir=not until_emit)

    def emit(self, events: Sequence[Event], timeout: float | None = None) -> bool:
        """Write events to the outbox, then deliver within the time budget.

        Returns True when this batch reached the backend, False when it waits in the outbox.
        Raises the store's error when the backend refused this batch for good, and Unauthorized
        when it refused the token: the batch then waits in the outbox until the token is fixed.
        """
        # Write-ahead, with the waits overlapped: the batch's bytes are fsynced and renamed into
        # the outbox on a worker thread while the store does its work, and the store commits
        # only once that is done (deliver(own=...)). The folder's fsync (which makes the name
        # survive a power loss) waits until we know the batch is still there. Delivered, it is in
        # the store and its file is removed: the name's durability no longer matters. Not
        # delivered, the folder is fsynced before we return. A process crash at any point keeps
        # the file (a rename needs no fsync to be seen); a power loss before we return loses at
        # most a batch nobody was told was recorded, as one a moment earlier would.
        own = self.outbox.write_behind(events)
        result: Delivery | None = None
        try:
            result = self.outbox.deliver(config.timeout_s() if timeout is None else timeout, own=own)
        finally:
            own.done.result()  # in the folder (or its error raised) before anything is reported
            delivered = result is not None and not (self.outbox.folder / own.name).exists()
            if not delivered:
                self.outbox.sync_dir()
        if own.name in result.dead:
            raise result.dead[own.name]
        if not delivered and isinstance(result.stopped_by, Unauthorized):
            # Not an outage that passes by itself: saying "waits" would look like success.
            raise Unauthorized(f"{result.stopped_by}; the batch waits in the outbox until the token is fixed")
        if not delivered:
            log.warning(
                "headwater: %s not delivered (%s); %d batch(es) wait in the outbox, `headwater sync` delivers them",
                self.uri.split("@")[-1],
                result.error or "backend busy",
                len(self.outbox.pending()),
            )
        return delivered

    def sync(self, timeout: float | None = None) -> Delivery:
        """Deliver everything waiting in the outbox, asking a backend found down again at once
        (the back-off spares a pipeline's writes, not a deliberate sync)."""
        backoff.clear()
        budget = timeout if timeout is not None else max(60.0, config.timeout_s())
        result = self.outbox.deliver(budget)
        if config.get("HEADWATER_OPENLINEAGE_URL"):
            # RunEvents an earlier process spooled for a catalogue that was away (a warning
            # line says how many still wait); they never hold up the store's own delivery.
            try:
                from headwater.openlineage import send_spooled

                send_spooled(self.home, self.uri, budget)
            except Exception as err:  # noqa: BLE001 - the catalogue is secondary to the record
                log.warning("headwater: OpenLineage events not sent: %s", " ".join(str(err).split())[:300])
        return result

    def parse(self, ref: str | Ref) -> Ref:
        if isinstance(ref, Ref):
            return ref
        if not isinstance(ref, str):
            raise InvalidInput(f"expected a reference string, got {type(ref).__name__}")
        return parse_ref(ref, is_artifact=self.store.artifact_exists)

    def _bind(self, version: Version) -> Version:
        version._client = self
        return version

    # -- content -----------------------------------------------------------------------------

    def content(self, target: str | os.PathLike[str], *, store: bool | None = None) -> _Content:
        """Hash a local path (stored by default) or a URI (referenced by default)."""
        from headwater.digest import build_manifest, manifest_digest, reference_manifest
        from headwater.digest.scan import manifest_sources

        if isinstance(target, str) and is_uri(target):
            if target.startswith("file:"):
                path = file_uri_to_path(normalize_name(target))
                stored = bool(store)
            else:
                if store:
                    raise InvalidInput(f"store=True is supported for local paths and file:// URIs, not {target!r}")
                entries = reference_manifest(target, stat_cache=self.stat_cache)
                return _Content(entries, manifest_digest(entries))
        else:
            path = Path(target)
            stored = store is not False
        if not path.exists():
            raise InvalidInput(f"no such file or directory: {path}")
        path = path.absolute()
        if not stored:
            entries = reference_manifest(path_to_file_uri(path), stat_cache=self.stat_cache)
            return _Content(entries, manifest_digest(entries))
        # Storing copies bytes, possibly to a shared store: a link out of the folder (to ~/.ssh,
        # say) is refused unless HEADWATER_FOLLOW_LINKS asks for it. A reference copies none.
        links_out: Literal["follow", "refuse"] = "follow" if config.follow_links() else "refuse"
        entries = build_manifest(path, stat_cache=self.stat_cache, links_out=links_out, stage_into=self.blobs)
        return _Content(entries, manifest_digest(entries), manifest_sources(entries))

    def _store_blobs(self, content: _Content, skip: set[str] | frozenset[str] = frozenset()) -> None:
        # Blobs land before their event is queued, so a delivered version is always restorable.
        # `skip`: purged content, recorded as purged and not stored again (headwater.purge).
        from headwater.blobs import BlobStore
        from headwater.digest.hashing import thread_pool
        from headwater.progress import ByteProgress

        stored = [e for e in content.entries if e.path in content.files and e.digest not in skip]
        if isinstance(self.blobs, BlobStore) and self.blobs.local_root is not None:
            # A re-logged folder is mostly stored already: a stat each here, not a task each.
            stored = [e for e in stored if not self.blobs.keep_if_stored(e.digest, e.size)]
        put = self.blobs.put_file
        with ByteProgress("storing", sum(e.size for e in stored)) as bar:
            if len(stored) < 2 or self.blobs.local_path(stored[0].digest) is None:
                for entry in stored:
                    put(content.files[entry.path], entry.digest)
                    bar.advance(entry.size)
                return
            # A local folder takes files in parallel, as they were hashed: copying and hashing
            # release the GIL. Each copy is still hashed and checked against its digest.
            work = {thread_pool(config.hash_threads()).submit(put, content.files[e.path], e.digest): e for e in stored}
            try:
                for done in as_completed(work):
                    done.result()
                    bar.advance(work[done].size)
            finally:
                for future in work:
                    future.cancel()  # after a failure: the files not yet started stay unstored

    def _store_checked(self, events: Sequence[Event], blobs: Sequence[_Content]) -> None:
        """Store the blobs of versions about to be recorded, once the backend is known to take
        their events: a version too large for it is refused before any of its bytes go up."""
        if any(c.files for c in blobs):
            try:
                self._connect().check_sendable(events)
            except Unavailable:
                pass  # the backend is away: the events wait in the outbox, as they would anyway
        skip = self._purged_to_skip(events, blobs)
        for content in blobs:
            self._store_blobs(content, skip=skip)

    def _version_event(
        self,
        name: str,
        target: str | os.PathLike[str],
        *,
        type: str | None,
        aliases: Sequence[str],
        metadata: dict[str, Any] | None,
        description: str | None,
        tags: Sequence[str],
        store: bool | None,
        run: str | None,
        direction: str | None,
        blobs_to_store: list[_Content] | None = None,
        inputs: Sequence[str] = (),
        allow_purged: bool = False,
    ) -> VersionRecorded:
        """The event for `target`'s content. Its blobs are stored now, or, when `blobs_to_store`
        is given, appended to it so a caller can check every input before writing any blob."""
        name = validate_name(name)
        aliases = [validate_alias(a) for a in aliases]
        content = self.content(target, store=store)
        event = VersionRecorded(  # checked before any blob is stored: a refused call stores nothing
            name=name,
            digest=content.digest,
            entries=content.entries,
            type=type,
            metadata=metadata or {},
            description=description,
            tags=list(tags),
            aliases=aliases,
            run_id=run,
            direction=direction,  # type: ignore[arg-type]  # "used" or "produced", from the callers
            inputs=list(dict.fromkeys(inputs)),
            allow_purged=allow_purged,
        )
        if blobs_to_store is None:
            self._store_blobs(content, skip=self._purged_to_skip([event], [content]))
        else:
            blobs_to_store.append(content)
        return event

    def _version_after(self, event: VersionRecorded, delivered: bool) -> Version:
        if delivered:
            return self._bind(self._connect().get_version(Ref(event.name, digest=event.digest)))
        return self._bind(
            Version(
                name=event.name,
                type=event.type,
                digest=event.digest,
                entries=event.entries,
                metadata=event.metadata,
                description=event.description,
                aliases=list(event.aliases),
                tags=list(event.tags),
                size=sum(e.size for e in event.entries),
            )
        )

    def log_artifact(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        type: str | None = None,
        aliases: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        store: bool | None = None,
        run: str | None = None,
        allow_purged: bool = False,
    ) -> Version:
        """Record the content at `path` as a version of `name` (the same content: the same version).

        Files whose content was purged are recorded as purged and not stored (one warning line),
        unless `allow_purged` stores them again (docs/purge.md)."""
        event = self._output_event(
            name,
            path,
            type=type,
            aliases=aliases,
            metadata=metadata,
            description=description,
            tags=tags,
            store=store,
            run=run,
            allow_purged=allow_purged,
        )
        return self._version_after(event, self.emit([event]))

    def _output_event(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        type: str | None = None,
        aliases: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        description: str | None = None,
        tags: Sequence[str] = (),
        store: bool | None = None,
        run: str | None = None,
        allow_purged: bool = False,
    ) -> VersionRecorded:
        """The event of log_artifact, its bytes already stored: ready to be delivered."""
        blobs: list[_Content] = []
        event = self._version_event(
            name,
            path,
            type=type,
            aliases=aliases,
            metadata=metadata,
            description=description,
            tags=tags,
            store=store,
            run=run,
            direction="produced" if run else None,
            blobs_to_store=blobs,
            allow_purged=allow_purged,
        )
        self._store_checked([event], blobs)
        return event

    def log_reference(self, name: str, uri: str, **kwargs: Any) -> Version:
        """Record a pointer to `uri` with the checksum its storage reports; nothing is uploaded."""
        kwargs["store"] = False
        return self.log_artifact(name, uri, **kwargs)

    def _use_event(
        self, run: str, item: InputLike, *, name: str | None, type: str | None
    ) -> tuple[VersionRecorded | EdgeRecorded, Version | None]:
        if isinstance(item, Version):
            return EdgeRecorded(run_id=run, ref=f"{item.name}@{item.digest}"), item
        if isinstance(item, str) and is_uri(item) and name is None:
            # `file:///d/users.csv:v2` names a recorded version; `file:///d/users.csv` is read now.
            try:
                ref = parse_ref(item, is_artifact=self.store.artifact_exists)
                if (ref.label or ref.digest or ref.alias != LATEST) and self.store.artifact_exists(ref.name):
                    version = self.get(item)
                    return EdgeRecorded(run_id=run, ref=f"{version.name}@{version.digest}"), version
            except Unavailable:
                ref = parse_ref(item)
                if ref.label or ref.digest or ref.alias != LATEST:
                    return _queued_use(run, item, ref), None
        if isinstance(item, os.PathLike) or (isinstance(item, str) and is_uri(item)):
            location = item if isinstance(item, str) else path_to_file_uri(Path(item).absolute())
            event = self._version_event(
                name or normalize_name(location),
                item,
                type=type,
                aliases=(),
                metadata=None,
                description=None,
                tags=(),
                store=False,
                run=run,
                direction="used",
            )
            return event, None
        try:
            version = self.get(item)
        except Unavailable:
            return _queued_use(run, item, parse_ref(item)), None
        return EdgeRecorded(run_id=run, ref=f"{version.name}@{version.digest}"), version

    # -- runs --------------------------------------------------------------------------------

    def run(
        self,
        job: str,
        *,
        job_namespace: str = "manual",
        params: dict[str, Any] | None = None,
        parent_id: str | None = None,
        links: dict[str, str] | None = None,
        code: dict[str, Any] | None = None,
    ) -> ActiveRun:
        return ActiveRun(
            self, job, job_namespace=job_namespace, params=params, parent_id=parent_id, links=links, code=code
        )

    def link(
        self,
        job: str | None = None,
        inputs: Iterable[InputLike] = (),
        outputs: Iterable[Output | tuple[str, str | os.PathLike[str]]] = (),
        *,
        run_id: str | None = None,
        job_namespace: str = "manual",
        params: dict[str, Any] | None = None,
        status: RunStatus = "succeeded",
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        error: str | None = None,
        links: dict[str, str] | None = None,
    ) -> Run:
        """Attach a step done elsewhere (by hand, by another team) to the graph in one call.

        With `run_id`, the inputs and outputs are added to that existing run (of any
        orchestrator), each edge with the time of this call; the run itself is left as it is.
        """
        existing: Run | None = None
        if run_id is not None:
            if job is not None or params or error is not None or links or started_at or ended_at:
                raise InvalidInput("link(run_id=...) adds inputs and outputs to a run; its job and fields stay")
            try:
                existing = self.store.get_run(run_id)
            except Unavailable:
                pass  # the backend is away: the edges wait in the outbox, beside the run's own
        elif not job or not job.strip():
            raise InvalidInput("a run needs a job name")
        now = utcnow()
        rid = run_id or new_id()
        events: list[Event] = []
        if run_id is None:
            events.append(
                RunRecorded(
                    run_id=rid,
                    job=job,
                    job_namespace=job_namespace,
                    orchestrator="manual",
                    run_kind="manual",
                    status=status,
                    started_at=_utc(started_at) or now,
                    ended_at=_utc(ended_at) or now,
                    params=params or {},
                    error=error,
                    links=links,
                )
            )
        used: dict[str, str] = {}  # the input as given -> the REF of its edge
        shown: list[str] = []

        def use(item: InputLike) -> str:
            key = item.ref if isinstance(item, Version) else os.fspath(item)
            if key not in used:
                event, known = self._use_event(rid, item, name=None, type=None)
                events.append(event)
                # _use_event makes an EdgeRecorded (by REF) or a VersionRecorded (hashed content).
                edge_ref = event.ref if isinstance(event, EdgeRecorded) else f"{event.name}@{event.digest}"
                used[key] = edge_ref  # resolved on delivery when the backend is away
                shown.append(known.ref if known is not None else edge_ref)
            return used[key]

        for item in inputs:
            use(item)
        produced: list[str] = []
        blobs: list[_Content] = []
        for out in outputs:
            if isinstance(out, tuple):
                out = Output(*out)
            made_from = [use(item) for item in out.inputs]
            event = self._version_event(
                out.name,
                out.path,
                type=out.type,
                aliases=out.aliases,
                metadata=out.metadata,
                description=out.description,
                tags=out.tags,
                store=out.store,
                run=rid,
                direction="produced",
                blobs_to_store=blobs,
                inputs=made_from,
            )
            events.append(event)
            produced.append(f"{event.name}@{event.digest}")
        if not events:
            raise InvalidInput("nothing to add: give inputs or outputs")
        self._store_checked(events, blobs)
        if self.emit(events):
            return self.store.get_run(rid)
        # Still in the outbox: say what will be recorded, by digest since labels come on delivery.
        if existing is not None:
            return existing.model_copy(
                update={"inputs": [*existing.inputs, *shown], "outputs": [*existing.outputs, *produced]}
            )
        return Run(
            id=rid,
            job=job or "unknown",
            job_namespace=job_namespace,
            status=status,
            params=params or {},
            inputs=shown,
            outputs=produced,
        )

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def runs_by_id(self, run_ids: Iterable[str]) -> dict[str, Run | None]:
        """Each distinct run id, in order, with its run, or None when it is not recorded (an edge
        can arrive before its run)."""
        found: dict[str, Run | None] = {}
        for rid in dict.fromkeys(run_ids):
            try:
                found[rid] = self.store.get_run(rid)
            except NotFound:
                found[rid] = None
        return found

    def runs(
        self,
        job: str | None = None,
        orchestrator: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        return self.store.list_runs(job=job, orchestrator=orchestrator, status=status, parent_id=parent_id, limit=limit)

    # -- reads -------------------------------------------------------------------------------

    def get(self, ref: str, at: datetime | None = None) -> Version:
        store = self.store
        read_token = getattr(store, "read_token", None)
        token = read_token() if read_token is not None else None  # taken before reading
        key = (ref, at) if token is not None and isinstance(ref, str) else None
        if key is not None:
            hit = self._got.get(key)
            if hit is not None and hit[0] is store and hit[1] == token:
                return self._bind(_own_copy(hit[2]))
        version = store.get_version(self.parse(ref), at=_utc(at))
        if key is not None:
            if len(self._got) >= _GOT_MAX:
                self._got.clear()
            self._got[key] = (store, token, version)
            version = _own_copy(version)
        return self._bind(version)

    def artifacts(
        self,
        type: str | None = None,
        limit: int | None = None,
        name_like: str | None = None,
        *,
        tag: str | None = None,
        order: ArtifactOrder = "name",
        offset: int = 0,
    ) -> list[Artifact]:
        """Artifacts by name (`order="updated"`: newest update first), `limit` of them from `offset`."""
        return self.store.list_artifacts(
            type=type, limit=limit, name_like=name_like, tag=tag, order=order, offset=offset
        )

    def versions(
        self,
        name: str,
        limit: int | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> list[Version]:
        found = self.store.list_versions(
            normalize_name(name), limit=limit, tags=tags, metadata=metadata, include_deleted=include_deleted
        )
        return [self._bind(v) for v in found]

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        return self.store.alias_history(normalize_name(name), alias)

    def upstream(self, ref: str, depth: int | None = None) -> LineageGraph:
        return self.store.lineage(self.parse(ref), "upstream", depth)

    def downstream(self, ref: str, depth: int | None = None) -> LineageGraph:
        return self.store.lineage(self.parse(ref), "downstream", depth)

    def reachable(
        self, ref: str, direction: Literal["upstream", "downstream"] = "downstream", depth: int | None = None
    ) -> Reachable:
        """The refs `upstream`/`downstream` would hold, without the rest of each node: each
        version's ref with its hops from `ref`, and the ids of the runs walked through."""
        return self.store.reachable(self.parse(ref), direction, depth)

    def path(self, source: str, target: str) -> LineageGraph:
        return self.store.lineage_path(self.parse(source), self.parse(target))

    def runs_using(self, name: str, limit: int | None = None, offset: int = 0) -> list[Run]:
        """Runs that used any version of artifact `name`, newest first (ties: the greater id
        first); a page of `limit` from the `offset`-th when given."""
        return self.store.runs_using(normalize_name(name), limit=limit, offset=offset)

    def diff(self, left: str, right: str) -> Diff:
        a, b = self.get(left), self.get(right)
        old = {e.path: e for e in a.entries}
        new = {e.path: e for e in b.entries}
        changed = sorted(p for p in set(old) & set(new) if old[p].digest != new[p].digest)
        added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
        keys = set(a.metadata) | set(b.metadata)
        return Diff(
            left=a.ref,
            right=b.ref,
            added=added,
            removed=removed,
            changed=changed,
            unchanged=len(set(old) & set(new)) - len(changed),
            sizes={
                p: [old[p].size if p in old else None, new[p].size if p in new else None]
                for p in [*added, *removed, *changed]
            },
            metadata={
                k: [a.metadata.get(k), b.metadata.get(k)]
                for k in sorted(keys)
                if a.metadata.get(k) != b.metadata.get(k)
            },
        )

    def impact(
        self,
        digest: str | None = None,
        path: str | os.PathLike[str] | None = None,
        ref: str | None = None,
        *,
        read_files: bool = True,
    ) -> Impact:
        """Versions that hold a file (by digest or path), or the files of version `ref`, and
        everything downstream of them.

        `ref` asks the takedown question of a version ("what was built on the export as it
        was?"): its files (with `path`, only the files of it at that path) are looked up by
        digest, so copies of that content are found wherever they live, and a later version at
        the same location (the export after the takedown) is not.

        `read_files=False` matches a path only as recorded (a manifest path or a URI) and never
        hashes a local file: what a server does for its users, whose files are not its own.
        """
        if (ref is None and (digest is None) == (path is None)) or (ref is not None and digest is not None):
            raise InvalidInput(
                "impact takes exactly one of a REF, a path or a digest (a REF may be narrowed by a path)"
            )
        holding: dict[str, Version] = {}
        if ref is not None:
            version, files = self._files_of(ref, path)
            if not files:
                raise NotFound(f"{version.ref} holds no file at {os.fspath(path or '')!r}")
            found = []
            # `unverified:<run id>` is shared by every unreadable output of that run: not content.
            for file_digest in sorted({e.digest for e in files if not e.digest.startswith("unverified:")}):
                found.extend(self.store.versions_holding(digest=file_digest))
            found.append(version.model_copy(update={"entries": []}))  # listed as versions_holding lists
        elif digest is not None:
            if ":" not in digest:
                digest = f"blake3:{digest}"
            found = self.store.versions_holding(digest=digest)
        else:
            text = os.fspath(path)  # type: ignore[arg-type]  # set: one of ref, digest, path is given
            found = []
            for place in sorted(_places(text)):
                found.extend(self.store.versions_holding(path=place))
            local = Path(text)
            if read_files and not is_uri(text) and local.is_file():
                from headwater.digest import hash_file

                found.extend(self.store.versions_holding(digest=hash_file(local.absolute())[0]))
        for version in found:
            holding.setdefault(version.ref, version)
        walk = self.store.downstream_of([Ref(v.name, label=v.label) for v in holding.values()])
        return Impact(holding=list(holding.values()), downstream=walk)

    def _files_of(self, ref: str, path: str | os.PathLike[str] | None = None) -> tuple[Version, list[ManifestEntry]]:
        """Version `ref` and its entries, only those at `path` (a name in it, a local path or a
        URI) when given: what `impact` and `purge` select by a REF."""
        version = self.get(ref)
        if path is None:
            return version, list(version.entries)
        places = _places(os.fspath(path))
        return version, [e for e in version.entries if _entry_at(e, places)]

    # -- changes -----------------------------------------------------------------------------

    def alias(self, ref: str, alias: str) -> Version:
        version = self.get(ref)
        if version.deleted:
            raise Conflict(f"{version.ref} is deleted: an alias cannot point to it")
        self.emit([AliasMoved(name=version.name, alias=validate_alias(alias), digest=version.digest)])
        return self._bind(self.store.get_version(Ref(version.name, digest=version.digest)))

    def unalias(self, name: str, alias: str) -> None:
        name = normalize_name(name)
        if not self.store.artifact_exists(name):
            raise NotFound(f"no artifact named {name!r}")
        self.emit([AliasMoved(name=name, alias=validate_alias(alias), digest=None)])

    def tag(self, ref: str, *tags: str) -> Version:
        version = self.get(ref)
        self.emit([TagsChanged(name=version.name, digest=version.digest, add=list(tags))])
        return self._bind(self.store.get_version(Ref(version.name, digest=version.digest)))

    def untag(self, ref: str, *tags: str) -> Version:
        version = self.get(ref)
        self.emit([TagsChanged(name=version.name, digest=version.digest, remove=list(tags))])
        return self._bind(self.store.get_version(Ref(version.name, digest=version.digest)))

    def delete(self, ref: str, reason: str | None = None) -> Version:
        """Tombstone a version: lineage stays, aliases go, its blobs become collectable by gc().
        The audit log records who (the OS user) and `reason`."""
        from headwater.purge import who

        version = self.get(ref)
        self.emit([VersionDeleted(name=version.name, digest=version.digest, who=who(), reason=reason)])
        return self._bind(self.store.get_version(Ref(version.name, digest=version.digest)))

    def gc(self, dry_run: bool = False, grace: float | None = None) -> list[str]:
        """Remove stored blobs that no live version references; returns their digests.

        Kept besides: blobs that a batch pending in any outbox of this home stores (its version
        is not delivered yet), and blobs stored or stored again less than `grace` seconds ago
        (default HEADWATER_GC_GRACE): another machine's outbox may be waiting with them. Files
        left in the blob store's tmp/, and outbox batches left half-written (their writer killed
        before its rename), longer than `grace` ago are removed too.
        """
        from headwater.outbox import every_outbox

        grace = config.gc_grace_s() if grace is None else grace
        if grace < 0:
            raise InvalidInput(f"the grace period cannot be negative: {grace:g} s")
        # The outboxes first, then the store: a batch delivered in between is in the store's
        # answer; one written after is younger than any grace period.
        outboxes = every_outbox(self.home)
        keep = set().union(*(box.stored_digests() for box in outboxes))
        keep |= self.store.referenced_blob_digests()
        unreferenced = sorted(d for d in self.blobs.iter_digests() if d not in keep)
        purged = self._purged_among(unreferenced)  # no grace: nothing may still be on its way with them
        doomed = [d for d in unreferenced if self.blobs.prune(d, 0 if d in purged else grace, dry_run=dry_run)]
        # Leftovers of writes cut short (kill -9): a blob copy in tmp/, a batch before its rename.
        _log_swept(self.blobs.sweep_tmp(grace, dry_run=dry_run), f"{self.blobs.url}/tmp", dry_run)
        for box in outboxes:
            _log_swept(box.sweep_tmp(grace, dry_run=dry_run), str(box.folder), dry_run)
        return doomed

    # -- bytes -------------------------------------------------------------------------------

    def download(self, version: Version, dest: str | os.PathLike[str] | None = None, entry: str | None = None) -> Path:
        """Restore a version's files, every byte verified. Returns the file for a single-file
        version (or `entry`), else the folder."""
        if version.deleted:
            raise NotFound(f"{version.ref} was deleted; its content is gone")
        if not version.entries:
            version = self.get(version.ref)
        chosen = version.entries
        if entry is not None:
            chosen = [e for e in version.entries if e.path == entry]
            if not chosen:
                raise NotFound(f"{version.ref} has no entry {entry!r}")
        self._refuse_purged(version, [e.path for e in chosen])
        root = Path(dest) if dest is not None else self.home / "cache" / version.digest.replace(":", "-")
        targets = [(item, _inside(root, item.path, version.ref)) for item in chosen]
        cached = self._cached_copies(targets) if dest is None else set()
        restored = []
        for item, target in targets:
            if target not in cached:
                try:
                    restored.append((target, self._restore(version, item, target)))
                except OSError as err:  # a full or read-only destination: one line
                    if err.errno not in Unwritable.ERRNOS:
                        raise
                    raise Unwritable.writing(repr(str(target)), err) from None
        if dest is None:
            from headwater.digest import remember_restored

            remember_restored(restored, stat_cache=self.stat_cache)
        if entry is not None or len(version.entries) == 1:
            return root / chosen[0].path
        return root

    def _cached_copies(self, targets: list[tuple[ManifestEntry, Path]]) -> set[Path]:
        """The download cache's copies that still hold their entry's bytes: unchanged (size,
        mtime, ctime, inode) since they were restored, else re-hashed to their content digest.
        A copy of a reference entry (etag:, s3v:, ...) has nothing to be re-hashed against: if
        it changed, it is restored again."""
        from headwater.digest import hash_file, is_content_digest, remember_restored, restored_unchanged

        unchanged = restored_unchanged([t for _, t in targets], stat_cache=self.stat_cache)
        good: set[Path] = set()
        rehashed = []
        for item, target in targets:
            recorded = unchanged.get(os.path.abspath(target))
            if recorded is not None and (recorded == item.digest or not is_content_digest(item.digest)):
                good.add(target)
            elif recorded is None and is_content_digest(item.digest) and target.is_file():
                try:
                    if hash_file(target, stat_cache=False)[0] == item.digest:
                        good.add(target)
                        rehashed.append((target, item.digest))
                except InvalidInput:
                    pass  # unreadable, or removed meanwhile: restored again
        remember_restored(rehashed, stat_cache=self.stat_cache)
        return good

    def _restore(self, version: Version, item: ManifestEntry, target: Path) -> str:
        """Restore one entry to `target`; returns the blake3 digest of the bytes written."""
        from headwater.blobs import copy_hashed
        from headwater.digest import is_content_digest, open_pinned, reference_status

        target.parent.mkdir(parents=True, exist_ok=True)
        if item.ref is None:
            self.blobs.get_file(item.digest, target)
            return item.digest
        # An s3v:/gsgen: entry names the object version it was: that version is read, not the
        # object's current bytes, so a pinned reference downloads after the object changed.
        pinned = open_pinned(item)
        if pinned is None and not is_content_digest(item.digest):
            status = reference_status(item, stat_cache=self.stat_cache)
            if status == "missing":
                raise NotFound(f"{item.ref} is gone since {version.ref} was recorded")
            if status != "ok":
                raise Conflict(f"{item.ref} has changed since {version.ref} was recorded ({item.digest})")
        import fsspec

        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".headwater-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with pinned or fsspec.open(item.ref, "rb") as src, open(tmp, "wb") as out:
                got = copy_hashed(src, out)
            if is_content_digest(item.digest) and got != item.digest:
                raise Conflict(f"{item.ref} has changed since {version.ref} was recorded")
            if pinned is not None and tmp.stat().st_size != item.size:
                raise Conflict(f"{item.ref} at {item.digest} is not the size recorded in {version.ref}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return got

    def check(self, version: Version | str) -> list[Drift]:
        """The referenced entries of a version whose location no longer holds what was logged:
        local files changed, storage checksums moved, objects gone. Stored entries (their bytes
        are headwater's own) and checksums never read from a storage (`ol:`, `unverified:`) are
        not checked."""
        from headwater.digest import is_content_digest, reference_status

        if isinstance(version, str) or not version.entries:
            version = self.get(version if isinstance(version, str) else version.ref)
        found = []
        for item in version.entries:
            if item.ref is None or item.digest.startswith(("ol:", "unverified:")):
                continue
            detail = None
            status: str
            try:
                status = reference_status(item, stat_cache=self.stat_cache)
            except (InvalidInput, Unavailable) as err:  # access denied, no such extra, storage away
                status, detail = "unreachable", str(err)
            except OSError as err:
                status, detail = "unreachable", f"{type(err).__name__}: {err}"
            if status == "ok":
                continue
            if status == "drifted" and is_content_digest(item.digest):
                status = "changed"
            found.append(
                Drift(
                    version=version.ref,
                    path=item.path,
                    ref=item.ref,
                    digest=item.digest,
                    status=status,  # type: ignore[arg-type]  # one of Drift.status: missing, drifted, changed, unreachable
                    detail=detail,
                )
            )
        return found

    def status(self, refs: Sequence[str] = ()) -> list[Drift]:
        """What changed under the versions in use, as `dvc status` tells: for each REF given,
        else for every artifact's `latest` and every version an alias points to, the referenced
        entries whose location no longer holds what was logged (`check`)."""
        if isinstance(refs, str):
            refs = [refs]
        found: list[Drift] = []
        for ref in dict.fromkeys(self.get(ref).ref for ref in refs) if refs else self.versions_in_use():
            found.extend(self.check(ref))
        return found

    def versions_in_use(self) -> list[str]:
        """Refs of every artifact's `latest` and every version an alias points to."""
        return [
            v.ref for artifact in self.artifacts() for v in self.versions(artifact.name) if v.aliases and not v.deleted
        ]

    def verify(self, ref: str) -> VerifyReport:
        """Re-hash every entry of a version: missing files, changed bytes, drifted references."""
        from headwater.digest import is_content_digest, reference_status

        version = self.get(ref)
        self._refuse_purged(version, [e.path for e in version.entries])
        report = VerifyReport(ref=version.ref, ok=True, checked=len(version.entries))
        for item in version.entries:
            try:
                if item.ref is None:
                    if not self.blobs.has(item.digest):
                        report.missing.append(item.path)
                        continue
                    with tempfile.TemporaryDirectory() as tmp:
                        try:
                            self.blobs.get_file(item.digest, Path(tmp) / "blob")
                        except Conflict:
                            report.changed.append(item.path)
                else:
                    status = reference_status(item, stat_cache=self.stat_cache)
                    if status == "missing":
                        report.missing.append(item.path)
                    elif status == "drifted":
                        (report.changed if is_content_digest(item.digest) else report.drifted).append(item.path)
            except InvalidInput:
                # ol:/unverified: checksums were never content: nothing to compare them with.
                report.unchecked.append(item.path)
            except OSError:
                report.missing.append(item.path)
        report.ok = not (report.missing or report.changed or report.drifted)
        return report

    # -- purges and the audit log (headwater.purge) ------------------------------------------

    def purge(
        self,
        *,
        reason: str,
        path: str | os.PathLike[str] | None = None,
        digest: str | None = None,
        ref: str | None = None,
        redact_path: bool = False,
        dry_run: bool = False,
    ) -> PurgePlan | PurgeReport:
        """Purge content everywhere headwater keeps it, keeping the lineage (a privacy takedown).

        Selected as `impact()` selects: a file by `path` (in every version holding it), by
        `digest`, or the files of version `ref` (narrowed by `path`). `dry_run` returns the plan
        (versions, blobs, cached copies, downstream impact) and changes nothing."""
        from headwater.purge import purge

        return purge(self, reason=reason, path=path, digest=digest, ref=ref, redact_path=redact_path, dry_run=dry_run)

    def audit(self, limit: int | None = None, action: str | None = None) -> list[AuditRecord]:
        """The append-only audit log of purges, deletes and retention removals, newest first."""
        from headwater.purge import backend_of

        return backend_of(self.store).audit(limit=limit, action=action)

    def set_retention(
        self,
        *,
        name: str | None = None,
        type: str | None = None,
        keep_last: int | None = None,
        older_than_s: float | None = None,
        protect_lineage: bool = True,
        remove: bool = False,
    ) -> None:
        """Set (or `remove`) the retention policy of an artifact name or a type (headwater.retention)."""
        from headwater.retention import set_policy

        set_policy(
            self,
            name=name,
            type=type,
            keep_last=keep_last,
            older_than_s=older_than_s,
            protect_lineage=protect_lineage,
            remove=remove,
        )

    def retention(self) -> list[RetentionPolicy]:
        """The retention policies set."""
        from headwater.purge import backend_of

        return backend_of(self.store).retention_policies()

    def apply_retention(self, dry_run: bool = False) -> list[Removal]:
        """Delete (lineage kept, audited) the versions the retention policies select; `gc` then
        frees their bytes."""
        from headwater.retention import apply

        return apply(self, dry_run=dry_run)

    def _purged_among(self, digests: Sequence[str]) -> set[str]:
        from headwater.purge import backend_of

        if not digests:
            return set()
        try:
            return backend_of(self._connect()).purged_digests(digests)
        except (Unavailable, InvalidInput):  # away, or a backend without purges: nothing to skip
            return set()

    def _purged_to_skip(self, events: Sequence[Event], blobs: Sequence[_Content]) -> set[str]:
        """Stored files whose content was purged, unless every event re-admits it (allow_purged)."""
        if all(getattr(ev, "allow_purged", True) for ev in events):
            return set()
        digests = sorted({e.digest for c in blobs for e in c.entries if e.path in c.files})
        skip = self._purged_among(digests)
        if skip:
            log.warning(
                "headwater: %d file(s) hold content that was purged: recorded as purged, not stored "
                "(allow_purged=True stores them again)",
                len(skip),
            )
        return skip

    def _refuse_purged(self, version: Version, paths: Sequence[str]) -> None:
        hit = sorted(set(paths) & set(version.purged))
        if hit:
            from headwater.purge import purged_error

            raise purged_error(version, hit)


_GOT_MAX = 1024  # get() answers kept per client


def _own_copy(version: Version) -> Version:
    """A copy whose lists and dicts are its own: a caller changing them leaves the cache intact."""
    return version.model_copy(
        update={
            "aliases": list(version.aliases),
            "tags": list(version.tags),
            "entries": list(version.entries),  # ManifestEntry is frozen
            "metadata": copy.deepcopy(version.metadata) if version.metadata else {},
            "producers": list(version.producers),
            "purged": list(version.purged),
            "purges": [p.model_copy() for p in version.purges],
        }
    )


def _fill_in(held: Version, recorded: Version) -> None:
    """Give a version returned before delivery (no label yet) what the store recorded."""
    for name in Version.model_fields:
        # Past Version's guard, which refuses changes once a label is set.
        BaseModel.__setattr__(held, name, getattr(recorded, name))


def _log_swept(names: list[str], folder: str, dry_run: bool) -> None:
    if names:
        log.info("headwater: %s %d file(s) left in %s", "would remove" if dry_run else "removed", len(names), folder)


def _queued_use(run: str, text: str, ref: Ref) -> EdgeRecorded:
    """An input named by a REF while the backend is away: the edge waits in the outbox by REF and
    the store resolves it on delivery, as of the event's time. A label or digest is exact; `latest`
    or an alias is the version it pointed at then, resolved later, so marked inexact."""
    return EdgeRecorded(run_id=run, ref=text, exact=ref.label is not None or ref.digest is not None)


def merge_graphs(graphs: Sequence[LineageGraph]) -> LineageGraph:
    merged = LineageGraph()
    seen_versions: set[str] = set()
    seen_runs: set[str] = set()
    seen_edges: set[tuple[str, str, str]] = set()
    for graph in graphs:
        for version in graph.versions:
            if version.ref not in seen_versions:
                seen_versions.add(version.ref)
                merged.versions.append(version)
        for run in graph.runs:
            if run.id not in seen_runs:
                seen_runs.add(run.id)
                merged.runs.append(run)
        for edge in graph.edges:
            key = (edge.run_id, edge.version, edge.direction)
            if key not in seen_edges:
                seen_edges.add(key)
                merged.edges.append(edge)
        for ref, hops in graph.depth.items():
            merged.depth[ref] = min(hops, merged.depth.get(ref, hops))
    return merged


class ActiveRun:
    """A manual run: `with hw.run("train") as run: ...`. Fails (with the error) if the block raises.

    Its start is made durable in the outbox when it begins, as the adapters do; its inputs and
    outputs are kept in memory (an output's bytes are stored at once) and delivered with its end,
    in one transaction. A crash mid-run leaves the start in the outbox: the run is recorded as
    running. A read of this client (hw.get, run.use of a REF, ...) delivers the outputs kept so
    far first, so it sees them; run.info() delivers everything kept."""

    def __init__(
        self,
        client: Client,
        job: str,
        *,
        job_namespace: str = "manual",
        params: dict[str, Any] | None = None,
        parent_id: str | None = None,
        links: dict[str, str] | None = None,
        code: dict[str, Any] | None = None,
    ) -> None:
        if not job or not job.strip():
            raise InvalidInput("a run needs a job name")
        self.client = client
        self.id = new_id()
        self.job = job
        self.job_namespace = job_namespace
        self.params = params or {}
        self.parent_id = parent_id
        self.links = links
        self.code = code
        self.status: RunStatus = "running"
        self._started = False
        self._kept: list[Event] = []  # inputs and outputs not delivered yet
        # Outputs returned before delivery, filled in after: those the caller still holds.
        self._unlabelled: list[weakref.ref[Version]] = []
        self._used: set[str] = set()  # the REFs of the input edges made (an edge is unique per run)

    def start(self) -> ActiveRun:
        # The start is durable (fsynced) before the block runs; the folder's fsync is left to the
        # delivery of the run's end (Client.queue(until_emit=True)).
        if not self._started:
            self._started = True
            self.client.queue(
                [
                    RunRecorded(
                        run_id=self.id,
                        job=self.job,
                        job_namespace=self.job_namespace,
                        orchestrator="manual",
                        run_kind="manual",
                        status="running",
                        started_at=utcnow(),
                        params=self.params,
                        parent_id=self.parent_id,
                        links=self.links,
                        code=self.code,
                    )
                ],
                until_emit=True,
            )
        return self

    def finish(self, status: RunStatus = "succeeded", error: str | None = None) -> None:
        self.start()
        self.status = status
        self._deliver(RunRecorded(run_id=self.id, status=status, ended_at=utcnow(), error=error))

    def flush(self) -> bool:
        """Deliver the inputs and outputs kept so far; True when they reached the backend."""
        return self._deliver(None)

    def __enter__(self) -> ActiveRun:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.finish("succeeded")
        else:
            self.finish("failed", error=f"{exc_type.__name__ if exc_type else 'Error'}: {exc}")

    def use(self, item: InputLike, *, name: str | None = None, type: str | None = None) -> Version | None:
        """Record an input: a REF string, a Version, a Path or a URI (hashed; created if new).

        Returns the version used; None for a REF while the backend cannot be reached: the edge
        then waits in the outbox by REF, and the backend resolves it on delivery to the version
        the REF named at this call (`users:v0` exactly; `users` or an alias as it pointed then).
        """
        self.start()
        if isinstance(item, Version) or (isinstance(item, str) and not is_uri(item)):
            # A recorded version, or a REF to one: the same version again is the same edge
            # (unique per run), so a repeated input builds no event.
            try:
                version = item if isinstance(item, Version) else self.client.get(item)
            except Unavailable:
                pass  # offline: _use_event keeps the REF to be resolved on delivery
            else:
                edge = f"{version.name}@{version.digest}"
                if edge not in self._used:
                    self._used.add(edge)
                    self._kept.append(EdgeRecorded(run_id=self.id, ref=edge))
                return version
        event, known = self.client._use_event(self.id, item, name=name, type=type)
        if isinstance(event, EdgeRecorded):  # a recorded version's URI, or a REF kept offline
            self._kept.append(event)
            return known
        self._kept.append(event)
        # Content hashed now (a path, a URI): its version is recorded at once, with its label.
        delivered = self.flush()
        return known or self.client._version_after(event, delivered)

    def log_artifact(self, name: str, path: str | os.PathLike[str], **kwargs: Any) -> Version:
        """Record an output; its bytes are stored now, its version delivered with the run's end.

        The Version returned has no label until then (its `ref` is `name@digest`); the label,
        aliases and the rest are filled in on it once the run's events are delivered."""
        self.start()
        event = self.client._output_event(name, path, run=self.id, **kwargs)
        version = self.client._version_after(event, False)
        self._kept.append(event)
        self._unlabelled.append(weakref.ref(version))
        if self not in self.client._unflushed:
            self.client._unflushed.append(self)
        return version

    def log_reference(self, name: str, uri: str, **kwargs: Any) -> Version:
        kwargs["store"] = False
        return self.log_artifact(name, uri, **kwargs)

    def info(self) -> Run:
        self.flush()
        self.client.sync()  # the start, if it still waits
        return self.client.get_run(self.id)

    def _deliver(self, end: RunRecorded | None) -> bool:
        """Deliver what is kept (and the run's `end`) as one batch, in one transaction with the
        run's start. A batch the backend refuses (one output, say) is delivered again event by
        event, so only what was refused is set aside in dead/; the run then ends failed, with why,
        and the refusal is raised."""
        if self in self.client._unflushed:
            self.client._unflushed.remove(self)
        kept, self._kept = self._kept, []
        unlabelled, self._unlabelled = self._unlabelled, []
        batch: list[Event] = [*kept, end] if end is not None else kept
        if not batch:
            return True
        try:
            delivered = self.client.emit(batch)
        except Unavailable:
            raise
        except HeadwaterError as err:
            if len(batch) == 1 or not self.client.outbox.unbury(batch[-1].id):
                raise
            refused = err
        else:
            if delivered:
                self._label(unlabelled)
            return delivered
        for event in kept:
            try:
                self.client.emit([event])
            except Unavailable:
                raise
            except HeadwaterError:
                pass  # set aside alone, with its reason
        self._label(unlabelled)
        if end is not None:
            self.status = "failed"
            why = end.error or f"{type(refused).__name__}: {refused}"
            self.client.emit([end.model_copy(update={"status": "failed", "error": why})])
        raise refused

    def _label(self, held: list[weakref.ref[Version]]) -> None:
        store = self.client._connect()
        for ref in held:
            version = ref()
            if version is None:
                continue  # dropped by the caller: nobody to tell
            try:
                _fill_in(version, store.get_version(Ref(version.name, digest=version.digest)))
            except (NotFound, Unavailable):
                continue  # refused, or the backend went away just now: it stays as it was returned


_default: Client | None = None
_default_key: tuple[str | None, str | None] | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The client for HEADWATER_URI / HEADWATER_HOME, rebuilt when they change."""
    global _default, _default_key
    key = (config.raw("HEADWATER_URI"), config.raw("HEADWATER_HOME"))
    with _default_lock:
        if _default is None or key != _default_key:
            if _default is not None:
                _default.close()
            _default = Client()
            _default_key = key
        return _default


def _inside(root: Path, path: str, ref: str) -> Path:
    """Where entry `path` is restored under `root`, checked again here whoever wrote the manifest
    (a compromised server, rows written straight into a shared database): never outside `root`,
    through `..`, an absolute or Windows form, or a symbolic link already in `root`."""
    from headwater.digest import validate_entry_path

    try:
        canonical = validate_entry_path(path)
    except InvalidInput as err:
        raise InvalidInput(f"refusing to restore {ref}: {err}") from None
    if canonical != path:
        raise InvalidInput(f"refusing to restore {ref}: entry path {path!r} is not canonical ({canonical!r})")
    target = root / path
    base = os.path.realpath(root)
    if os.path.commonpath([base, os.path.realpath(target)]) != base:
        raise InvalidInput(f"refusing to restore {ref}: entry path {path!r} leads outside {os.fspath(root)!r}")
    return target


def _places(path: str) -> set[str]:
    """What a user's path may be recorded as: itself, and its file:// URI when it is local."""
    places = {path}
    if not is_uri(path):
        places.add(path_to_file_uri(Path(path).absolute()))
    return places


def _entry_at(entry: ManifestEntry, places: set[str]) -> bool:
    """The entry is the file at one of `places`, matched as Store.versions_holding(path=) does:
    its ref or manifest path, whole or as a trailing path."""
    for place in places:
        tail = place.strip("/")
        if entry.ref == place or entry.path == tail or entry.path.endswith("/" + tail):
            return True
        if entry.ref is not None and entry.ref.endswith("/" + tail):
            return True
    return False
