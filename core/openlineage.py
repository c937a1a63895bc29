"""OpenLineage <-> headwater, both directions (the `openlineage` extra).

In: `events_from_openlineage(payload)` turns OpenLineage RunEvents (validated with
openlineage-python's models) into headwater events, which the server applies in one transaction:

- the job becomes a run of kind `openlineage` with the OpenLineage run id (a UUID, as every
  headwater run id is); START/RUNNING -> running, COMPLETE -> succeeded, FAIL -> failed (with the
  errorMessage facet), ABORT -> aborted, OTHER (or no eventType) leaves the status unchanged;
  the parent run facet makes (or names) the parent run;
- datasets become artifacts named as docs/architecture.md says (ol_dataset_to_name); an input with a
  dataset version facet is the version `ol:<version>`, one without links to `latest` at event
  time with the edge marked inexact; outputs become versions when the run COMPLETEs, as in
  Marquez: `ol:<version>` from the facet, else `unverified:<run id>` (the event decides);
- event ids are derived from the event's content, so a producer's retry changes nothing.

Out: with HEADWATER_OPENLINEAGE_URL set (a URL, or `config` for openlineage-python's own
configuration: OPENLINEAGE_URL, OPENLINEAGE_CONFIG, openlineage.yml), every run headwater records
is also emitted as a RunEvent through openlineage.client, its inputs and outputs named by
name_to_ol_dataset with the version digest as dataset version, spooled on disk and sent behind
the write (Emitter). Loop guard: runs that came in as OpenLineage are never emitted again, and a
URL pointing at this server is refused.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from headwater import __version__ as _version
from headwater import config
from headwater.errors import HeadwaterError, InvalidInput, InvalidRef, NotFound
from headwater.events import EdgeRecorded, Event, RunRecorded, VersionRecorded
from headwater.models import TERMINAL_STATUSES, AliasMove, Artifact, LineageGraph, Reachable, Run, Version
from headwater.refs import Ref, name_to_ol_dataset, ol_dataset_to_name
from headwater.store.base import ArtifactOrder, LineageDirection, Store

log = logging.getLogger("headwater.openlineage")

PRODUCER = f"https://headwater.dev/producer/{_version}"
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
STATUS_OF_EVENT: dict[str, str | None] = {
    "START": "running",
    "RUNNING": "running",
    "COMPLETE": "succeeded",
    "FAIL": "failed",
    "ABORT": "aborted",
    "OTHER": None,
}
MAX_BATCH = 1000
# uuid5(NAMESPACE_URL, "https://headwater.dev/openlineage"): event ids of OpenLineage input.
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://headwater.dev/openlineage")
_MAX_DIGEST = 190  # the digest column holds 200 characters


def ol_namespace() -> str:
    """The OpenLineage namespace of plain artifact names (HEADWATER_OL_NAMESPACE, default headwater)."""
    namespace: str = config.get("HEADWATER_OL_NAMESPACE")
    return namespace


# --- in ------------------------------------------------------------------------------------------


@dataclass
class Converted:
    events: list[Event] = field(default_factory=list)
    received: int = 0
    ignored: int = 0  # DatasetEvents and JobEvents: accepted, nothing to record


def events_from_openlineage(payload: Any) -> Converted:
    """headwater events for one OpenLineage RunEvent or a JSON array of them (all or nothing).

    Raises InvalidInput (or InvalidRef for a dataset name headwater refuses) naming the event
    and the field at fault.
    """
    batch = isinstance(payload, list)
    items = payload if batch else [payload]
    if batch and not items:
        raise InvalidInput("the batch is empty: send one RunEvent or a JSON array of them")
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} events, not {len(items)}")
    result = Converted(received=len(items))
    for index, raw in enumerate(items):
        try:
            events = _convert(raw)
        except (InvalidInput, InvalidRef) as err:
            where = f"event {index}: " if batch else ""
            raise type(err)(f"{where}{err}") from None
        if events is None:
            result.ignored += 1
        else:
            result.events.extend(events)
    return result


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise InvalidInput(f"missing field {where}{key}")
    return obj[key]


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = _field(obj, key, where)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}{key} must be a non-empty string")
    return value


def _object(obj: dict[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    if not required and obj.get(key) is None:
        return {}
    value = _field(obj, key, where)
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}{key} must be an object")
    return value


def _uuid(value: str, where: str) -> str:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(f"{where} {value[:80]!r} is not a UUID") from None
    return value


def _time(value: str) -> datetime:
    from dateutil import parser

    try:
        parsed = parser.isoparse(value)
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidInput(f"eventTime {value[:80]!r} is not an ISO 8601 date-time") from None


def _datasets(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{key} must be an array of datasets")
    for i, ds in enumerate(value):
        where = f"{key}[{i}]."
        if not isinstance(ds, dict):
            raise InvalidInput(f"{key}[{i}] must be an object")
        _text(ds, "namespace", where)
        _text(ds, "name", where)
        for facets in ("facets", "inputFacets", "outputFacets"):
            _object(ds, facets, where, required=False)
    return value


def validate_run_event(raw: Any) -> Any:
    """The openlineage-python RunEvent for a JSON object; InvalidInput says what is wrong."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, RunEvent, RunState
    from openlineage.client.event_v2 import Run as OLRun

    if not isinstance(raw, dict):
        raise InvalidInput("an OpenLineage event is a JSON object")
    run = _object(raw, "run", "")
    job = _object(raw, "job", "")
    run_id = _uuid(_text(run, "runId", "run."), "run.runId")
    event_type = raw.get("eventType")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InvalidInput(f"eventType {str(event_type)[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
    event_time = _text(raw, "eventTime", "")
    _time(event_time)
    producer = raw.get("producer", "")
    if not isinstance(producer, str):
        raise InvalidInput("producer must be a string (a URI)")
    inputs = _datasets(raw, "inputs")
    outputs = _datasets(raw, "outputs")
    job_namespace, job_name = _text(job, "namespace", "job."), _text(job, "name", "job.")
    run_facets = _object(run, "facets", "run.", required=False)
    job_facets = _object(job, "facets", "job.", required=False)
    try:
        return RunEvent(
            eventTime=event_time,
            producer=producer or PRODUCER,
            eventType=RunState(event_type) if event_type else None,
            run=OLRun(runId=run_id, facets=run_facets),
            job=Job(namespace=job_namespace, name=job_name, facets=job_facets),
            inputs=[
                InputDataset(
                    namespace=ds["namespace"],
                    name=ds["name"],
                    facets=ds.get("facets") or {},
                    inputFacets=ds.get("inputFacets") or {},
                )
                for ds in inputs
            ],
            outputs=[
                OutputDataset(
                    namespace=ds["namespace"],
                    name=ds["name"],
                    facets=ds.get("facets") or {},
                    outputFacets=ds.get("outputFacets") or {},
                )
                for ds in outputs
            ],
        )
    except (ValueError, TypeError, OverflowError) as err:
        raise InvalidInput(f"not a valid OpenLineage RunEvent: {' '.join(str(err).split())}") from None


def _ol_digest(version: object) -> str:
    text = str(version)
    if len(text) <= _MAX_DIGEST and text.isprintable() and text.strip() == text and text:
        return f"ol:{text}"
    return "ol:sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _dataset_version(ds: dict[str, Any]) -> str | None:
    facet = (ds.get("facets") or {}).get("version")
    if isinstance(facet, dict):
        value = facet.get("datasetVersion")
        if isinstance(value, (str, int)) and str(value):
            return str(value)
    return None


def _dataset_metadata(ds: dict[str, Any]) -> dict[str, Any]:
    schema = (ds.get("facets") or {}).get("schema")
    meta: dict[str, Any] = {}
    if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
        fields = [
            {"name": f["name"], **({"type": f["type"]} if isinstance(f.get("type"), str) else {})}
            for f in schema["fields"][:500]
            if isinstance(f, dict) and isinstance(f.get("name"), str)
        ]
        if fields:
            meta["schema"] = fields
    return meta


# The version metadata key that keeps an output's OpenLineage columnLineage dataset facet:
# {"fields": {output field: {"inputFields": [{namespace, name, field, transformations}], ...}},
#  "dataset": [...]}, as the facet has it (without its _producer and _schemaURL).
COLUMN_LINEAGE = "columnLineage"


def _column_lineage(ds: dict[str, Any]) -> dict[str, Any]:
    """The output's columnLineage facet as plain JSON, or nothing when it has no fields."""
    facet = (ds.get("facets") or {}).get(COLUMN_LINEAGE)
    if not isinstance(facet, dict) or not isinstance(facet.get("fields"), dict) or not facet["fields"]:
        return {}
    kept = {key: facet[key] for key in ("fields", "dataset") if facet.get(key) is not None}
    return {COLUMN_LINEAGE: kept}


def _column_lineage_facet(value: Any) -> Any:
    """A ColumnLineageDatasetFacet rebuilt from the metadata `_column_lineage` kept, or None when
    what is kept is not that shape (metadata a user wrote by hand under the same key)."""
    from openlineage.client.facet_v2 import column_lineage_dataset as cl

    def input_field(raw: Any) -> Any:
        transformations = [
            cl.Transformation(**{k: t[k] for k in ("type", "subtype", "description", "masking") if k in t})
            for t in raw.get("transformations") or []
            if isinstance(t, dict) and isinstance(t.get("type"), str)
        ]
        return cl.InputField(
            namespace=raw["namespace"], name=raw["name"], field=raw["field"], transformations=transformations
        )

    try:
        fields = {
            name: cl.Fields(
                inputFields=[input_field(item) for item in spec.get("inputFields") or []],
                transformationDescription=spec.get("transformationDescription"),
                transformationType=spec.get("transformationType"),
            )
            for name, spec in value["fields"].items()
        }
        dataset = [input_field(item) for item in value.get("dataset") or []]
        return cl.ColumnLineageDatasetFacet(fields=fields, dataset=dataset)
    except (KeyError, TypeError, AttributeError):
        return None


def _edge_metadata(ds: dict[str, Any], key: str) -> dict[str, Any]:
    facets = ds.get(key) or {}
    stats = facets.get("outputStatistics") or facets.get("inputStatistics")
    if isinstance(stats, dict):
        return {k: stats[k] for k in ("rowCount", "size", "fileCount") if isinstance(stats.get(k), (int, float))}
    return {}


def _code(raw: dict[str, Any], job_facets: dict[str, Any]) -> dict[str, Any]:
    code: dict[str, Any] = {}
    if isinstance(raw.get("producer"), str) and raw["producer"]:
        code["producer"] = raw["producer"]
    job_type = job_facets.get("jobType")
    if isinstance(job_type, dict) and isinstance(job_type.get("integration"), str):
        code["integration"] = job_type["integration"]
    location = job_facets.get("sourceCodeLocation")
    if isinstance(location, dict):
        for key in ("url", "repoUrl", "path", "version", "branch"):
            if isinstance(location.get(key), str):
                code[key] = location[key]
    return code


def _convert(raw: Any) -> list[Event] | None:
    if isinstance(raw, dict) and "run" not in raw and "eventType" not in raw and ("dataset" in raw or "job" in raw):
        return None  # a DatasetEvent or JobEvent: static metadata, no run to record
    validate_run_event(raw)
    time = _time(raw["eventTime"])
    run_id = raw["run"]["runId"]
    event_type = raw.get("eventType") or "OTHER"
    status = STATUS_OF_EVENT[event_type]
    run_facets = raw["run"].get("facets") or {}
    job_facets = raw["job"].get("facets") or {}
    default_ns = ol_namespace()

    digest = hashlib.sha256(
        json.dumps(raw, sort_keys=True, separators=(",", ":")).encode("utf-8", "surrogatepass")
    ).hexdigest()
    counter = iter(range(1_000_000))

    def event_id() -> str:
        return str(uuid.uuid5(_EVENT_NAMESPACE, f"{digest}\x1f{next(counter)}"))

    events: list[Event] = []
    parent_id = None
    parent = run_facets.get("parent")
    if parent is not None:
        if not isinstance(parent, dict):
            raise InvalidInput("run.facets.parent must be an object")
        parent_run = _object(parent, "run", "run.facets.parent.")
        parent_job = _object(parent, "job", "run.facets.parent.")
        parent_id = _uuid(_text(parent_run, "runId", "run.facets.parent.run."), "run.facets.parent.run.runId")
        if parent_id != run_id:
            events.append(
                RunRecorded(
                    id=event_id(),
                    time=time,
                    run_id=parent_id,
                    job=_text(parent_job, "name", "run.facets.parent.job."),
                    job_namespace=_text(parent_job, "namespace", "run.facets.parent.job."),
                    orchestrator="openlineage",
                    run_kind="openlineage",
                )
            )
        else:
            parent_id = None
    error = None
    message = run_facets.get("errorMessage")
    if isinstance(message, dict) and isinstance(message.get("message"), str):
        error = message["message"][:4000]
    events.append(
        RunRecorded(
            id=event_id(),
            time=time,
            run_id=run_id,
            job=raw["job"]["name"],
            job_namespace=raw["job"]["namespace"],
            orchestrator="openlineage",
            run_kind="openlineage",
            status=status,  # type: ignore[arg-type]  # mapped from the eventType above
            started_at=time,
            ended_at=time if status in TERMINAL_STATUSES else None,
            parent_id=parent_id,
            error=error,
            code=_code(raw, job_facets) or None,
        )
    )
    for ds in raw.get("inputs") or []:
        name = ol_dataset_to_name(ds["namespace"], ds["name"], default_namespace=default_ns)
        version = _dataset_version(ds)
        if version is not None:
            events.append(
                VersionRecorded(
                    id=event_id(),
                    time=time,
                    name=name,
                    digest=_ol_digest(version),
                    entries=[],
                    metadata=_dataset_metadata(ds),
                    run_id=run_id,
                    direction="used",
                    edge_metadata=_edge_metadata(ds, "inputFacets"),
                )
            )
        else:
            events.append(
                EdgeRecorded(
                    id=event_id(),
                    time=time,
                    run_id=run_id,
                    ref=str(Ref(name)),
                    direction="used",
                    exact=False,
                    metadata=_edge_metadata(ds, "inputFacets"),
                )
            )
    if event_type == "COMPLETE":
        for ds in raw.get("outputs") or []:
            name = ol_dataset_to_name(ds["namespace"], ds["name"], default_namespace=default_ns)
            version = _dataset_version(ds)
            events.append(
                VersionRecorded(
                    id=event_id(),
                    time=time,
                    name=name,
                    digest=_ol_digest(version) if version is not None else f"unverified:{run_id}",
                    entries=[],
                    metadata={**_dataset_metadata(ds), **_column_lineage(ds)},
                    run_id=run_id,
                    direction="produced",
                    edge_metadata=_edge_metadata(ds, "outputFacets"),
                )
            )
    else:
        for ds in raw.get("outputs") or []:  # named now so a bad name fails the event, not a later one
            ol_dataset_to_name(ds["namespace"], ds["name"], default_namespace=default_ns)
    return events


# --- out -----------------------------------------------------------------------------------------


def refuse_loop(url: str, bind: str | None, store_uri: str | None = None) -> None:
    """Raise InvalidInput when the OpenLineage output URL points back at this server."""
    if url == "config":
        url = os.environ.get("OPENLINEAGE_URL", "")
        if not url:
            return
    target = urlsplit(url if "://" in url else f"http://{url}")
    here: list[tuple[str, int | None]] = []
    if bind:
        host, _, bound = bind.rpartition(":")
        here.append((host.strip("[]"), int(bound) if bound.isdigit() else None))
    if store_uri and store_uri.split(":", 1)[0].lower() in ("http", "https"):
        parts = urlsplit(store_uri)
        here.append((parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)))
    port = target.port or (443 if target.scheme == "https" else 80)
    local = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", socket.gethostname().lower()}
    for host, here_port in here:
        same_host = (target.hostname or "").lower() == host.lower() or (
            (target.hostname or "").lower() in local and (host.lower() in local or host in ("", "0.0.0.0", "::"))
        )
        if same_host and here_port == port:
            raise InvalidInput(
                f"HEADWATER_OPENLINEAGE_URL {url} points at this headwater server: its own events "
                "would come back in a loop; point it at another OpenLineage backend"
            )


def _run_event_type(status: str | None, started: bool, current: str) -> str:
    if status == "running":
        return "START" if started else "RUNNING"
    if status in ("succeeded", "skipped"):
        return "COMPLETE"
    if status == "failed":
        return "FAIL"
    if status == "aborted":
        return "ABORT"
    return "RUNNING" if current == "running" else "OTHER"


def _split_version_ref(ref: str) -> Ref:
    name, _, label = ref.rpartition(":")
    return Ref(name, label=label)


def run_events_for(store: Any, events: Sequence[Event]) -> list[Any]:
    """The OpenLineage RunEvents that tell a catalogue what `events` (just applied) recorded.

    One RunEvent per run the batch touched, with every input and output known so far.
    """
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, RunEvent, RunState
    from openlineage.client.event_v2 import Run as OLRun
    from openlineage.client.facet_v2 import dataset_version_dataset, error_message_run, parent_run

    touched: dict[str, tuple[str | None, bool, datetime]] = {}
    for ev in events:
        if isinstance(ev, RunRecorded):
            prior = touched.get(ev.run_id)
            status = ev.status if ev.status is not None else (prior[0] if prior else None)
            started = ev.started_at is not None and ev.status == "running"
            touched[ev.run_id] = (status, started or bool(prior and prior[1]), ev.time)
        elif isinstance(ev, (VersionRecorded, EdgeRecorded)) and ev.run_id:
            touched.setdefault(ev.run_id, (None, False, ev.time))
    out = []
    default_ns = ol_namespace()
    for run_id, (status, started, when) in touched.items():
        try:
            uuid.UUID(run_id)
            run: Run = store.get_run(run_id)
        except (ValueError, NotFound):
            continue  # OpenLineage needs UUID run ids; a run not recorded has nothing to say
        if run.kind == "openlineage":
            continue  # loop guard: it came from OpenLineage
        facets: dict[str, Any] = {}
        if run.parent_id:
            try:
                parent = store.get_run(run.parent_id)
                uuid.UUID(parent.id)
                facets["parent"] = parent_run.ParentRunFacet(
                    run=parent_run.Run(runId=parent.id),
                    job=parent_run.Job(namespace=parent.job_namespace, name=parent.job),
                )
            except (ValueError, NotFound):
                pass
        if run.status == "failed" and run.error:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=run.error, programmingLanguage="python"
            )

        def datasets(refs: Iterable[str], cls: Any) -> list[Any]:
            found = []
            for ref in refs:
                try:
                    version = store.get_version(_split_version_ref(ref))
                except (HeadwaterError, ValueError):
                    continue
                namespace, name = name_to_ol_dataset(version.name, default_namespace=default_ns)
                digest = version.digest.removeprefix("ol:")
                dataset_facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=digest)}
                if cls is OutputDataset and isinstance(version.metadata.get(COLUMN_LINEAGE), dict):
                    column_lineage = _column_lineage_facet(version.metadata[COLUMN_LINEAGE])
                    if column_lineage is not None:
                        dataset_facets[COLUMN_LINEAGE] = column_lineage
                found.append(cls(namespace=namespace, name=name, facets=dataset_facets))
            return found

        event_type = _run_event_type(status, started, run.status)
        out.append(
            RunEvent(
                eventType=RunState(event_type),
                eventTime=when.astimezone(timezone.utc).isoformat(),
                producer=PRODUCER,
                run=OLRun(runId=run.id, facets=facets),
                job=Job(namespace=run.job_namespace, name=run.job),
                inputs=datasets(run.inputs, InputDataset),
                outputs=datasets(run.outputs, OutputDataset),
            )
        )
    return out


# RunEvents kept for a catalogue that is away, at most this many (a few kB each); past it, new
# ones are dropped with a warning until the catalogue answers again.
SPOOL_LIMIT = 10_000
# After a failed send the spool is retried after this long, doubling up to RETRY_MAX_S.
RETRY_MIN_S = 5.0
RETRY_MAX_S = 300.0
# At exit, how long a process waits for a send under way (what is not sent stays spooled).
EXIT_GRACE_S = 1.0
_STOP = object()
_DRAIN = object()


def spool_folder(home: Path, url: str) -> Path:
    """Where RunEvents for the catalogue at `url` wait: one folder per catalogue, as the outbox
    keeps one per backend, so changing HEADWATER_OPENLINEAGE_URL never sends them elsewhere."""
    key = hashlib.blake2b(url.encode(), digest_size=6).hexdigest()
    return Path(home) / "openlineage" / key


class _Refused(Exception):
    """The catalogue refused an event for good (a 4xx other than auth or throttling)."""


class Emitter:
    """Sends RunEvents through an openlineage.client; never raises, one warning line per failure.

    Every RunEvent is first written to a spool folder (`$HEADWATER_HOME/openlineage/<key>/`, one
    JSON file each, in order); a thread of this process sends them and removes each once the
    catalogue took it, so a write never waits on the catalogue. A catalogue that is away keeps
    them there: the thread tries again after a back-off, and any later process, or
    `headwater sync`, sends what an earlier one could not. Processes share the spool under a
    file lock. At exit a process waits at most EXIT_GRACE_S for a send under way.

    In the server (`background=True`) the RunEvents are also built on that thread, so not even
    the store reads they need slow a request; elsewhere they are built at once (a few reads of
    the local store) so a process that exits right after its write has them on disk.
    """

    def __init__(self, client: Any, *, background: bool = False, spool: Path | None = None) -> None:
        self.client = client
        self.failures = 0
        self.background = background
        self.spool = spool if spool is not None else spool_folder(config.headwater_home(), "default")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self._outstanding = 0  # items put on the queue and not yet done with
        self._done = threading.Condition()
        self._retry_at = 0.0
        self._retry_s = RETRY_MIN_S
        self._spooled: int | None = None  # files in the spool, counted once, then kept up to date
        self._full_warned = False

    @classmethod
    def from_url(cls, url: str, *, background: bool = False, home: Path | None = None) -> Emitter:
        """`url`: an OpenLineage HTTP endpoint base (Marquez: http://host:5000), or `config`."""
        from openlineage.client import OpenLineageClient

        spool = spool_folder(home if home is not None else config.headwater_home(), url)
        if url == "config":
            return cls(OpenLineageClient(), background=background, spool=spool)
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        settings: dict[str, Any] = {
            "url": url,
            "timeout": min(5.0, config.timeout_s()),
            # No retries of its own (urllib3 would log each): the spool retries, after a back-off.
            "retry": {"total": 0, "read": 0, "connect": 0, "backoff_factor": 0},
        }
        key = config.get("HEADWATER_OPENLINEAGE_API_KEY")
        if key:
            settings["auth"] = {"type": "api_key", "apiKey": key}
        transport = HttpTransport(HttpConfig.from_dict(settings))
        return cls(OpenLineageClient(transport=transport), background=background, spool=spool)

    # -- the write path ----------------------------------------------------------------------

    def submit(self, store: Any, events: Sequence[Event]) -> None:
        """Spool the RunEvents of `events` (just applied to `store`) and have them sent behind."""
        try:
            if self.background:
                self._put((store, list(events)))
                return
            self._spool_events(store, events)
            self._wake()
        except queue.Full:
            self._fail("the OpenLineage queue is full; events dropped")
        except Exception as err:  # noqa: BLE001 - emitting must never break recording
            self._fail(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")

    def _spool_events(self, store: Any, events: Sequence[Event]) -> None:
        from openlineage.client.serde import Serde

        for run_event in run_events_for(store, events):
            if self._spooled is None:
                self._spooled = len(self.pending())
            if self._spooled >= SPOOL_LIMIT:
                if not self._full_warned:
                    self._full_warned = True
                    log.warning(
                        "headwater: the OpenLineage spool %s holds %d events, its most: new ones are "
                        "dropped until the catalogue takes some",
                        self.spool,
                        self._spooled,
                    )
                continue
            self._write(Serde.to_json(run_event).encode())
            self._spooled += 1

    def _write(self, payload: bytes) -> None:
        # Named by time (uuid7), so the spool is sent in order; renamed in whole, never half-read.
        from headwater.events import new_id

        name = new_id() + ".json"
        self.spool.mkdir(parents=True, exist_ok=True)
        tmp = self.spool / f".tmp-{name}"
        tmp.write_bytes(payload)
        os.replace(tmp, self.spool / name)

    def pending(self) -> list[Path]:
        """The RunEvents waiting in the spool, oldest first."""
        if not self.spool.is_dir():
            return []
        return sorted(p for p in self.spool.iterdir() if p.suffix == ".json" and not p.name.startswith("."))

    # -- the sending side --------------------------------------------------------------------

    def _worker(self) -> None:
        # Threads do not survive a fork (Airflow forks task processes): one per pid.
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid():
                self._queue = queue.Queue(maxsize=10_000)
                self._outstanding, self._done = 0, threading.Condition()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._work, name="headwater-openlineage", daemon=True)
                self._thread.start()
                atexit.register(self._at_exit)

    def _wake(self) -> None:
        if self._queue.empty() or self._pid != os.getpid():
            self._put(_DRAIN)

    def _put(self, item: Any) -> None:
        self._worker()
        with self._done:
            self._queue.put_nowait(item)
            self._outstanding += 1

    def _wait_done(self, timeout: float) -> bool:
        with self._done:
            return self._done.wait_for(lambda: self._outstanding == 0, timeout)

    def _work(self) -> None:
        while True:
            wait = self._retry_at - time.monotonic() if self.pending() else None
            queued = True
            try:
                item = self._queue.get(timeout=max(wait, 0.0) if wait is not None else None)
            except queue.Empty:
                item, queued = _DRAIN, False  # the back-off is over: try the spool again
            try:
                if item is _STOP:
                    return
                if item is not _DRAIN:
                    self._spool_events(*item)
                if time.monotonic() >= self._retry_at:
                    self.send(deadline=None)
            except Exception as err:  # noqa: BLE001 - the thread must go on
                self._fail(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")
            finally:
                if queued:
                    with self._done:
                        self._outstanding -= 1
                        self._done.notify_all()

    def send(self, deadline: float | None) -> tuple[int, str | None]:
        """Send the spooled RunEvents in order until done, a failure, or `deadline` (monotonic).

        Returns (sent, why it stopped early or None). Another process sending holds the lock:
        then nothing is sent here."""
        from headwater.outbox import _lock

        if not self.pending():
            return 0, None
        lock = _lock(self.spool / ".lock", 0.0)
        if lock is None:
            self._retry_at = time.monotonic() + RETRY_MIN_S  # its sender sends ours too
            return 0, "another process is sending"
        sent, error = 0, None
        try:
            for path in self.pending():
                if deadline is not None and time.monotonic() > deadline:
                    error = "time budget spent"
                    break
                try:
                    self._send_one(path)
                except _Refused as err:
                    log.warning("headwater: OpenLineage event %s refused, dropped: %s", path.name, err)
                except Exception as err:  # noqa: BLE001 - kept, and tried again later
                    error = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
                    self._retry_at = time.monotonic() + self._retry_s
                    self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
                    self._fail(f"{error}; {len(self.pending())} kept in {self.spool}, tried again later")
                    break
                else:
                    sent += 1
                    self._retry_at, self._retry_s = 0.0, RETRY_MIN_S  # it answers: no back-off
                path.unlink(missing_ok=True)
            self._spooled = len(self.pending())
        finally:
            lock.release()
        return sent, error

    def _send_one(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_bytes())
            run_event = validate_run_event(raw)
        except FileNotFoundError:
            return  # sent by a process that held the lock before us
        except (ValueError, HeadwaterError) as err:
            raise _Refused(f"unreadable: {err}") from None
        try:
            self.client.emit(run_event)
        except Exception as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 408, 429):
                raise _Refused(f"{status}: {' '.join(str(err).split())[:200]}") from None
            raise

    def _fail(self, message: str) -> None:
        self.failures += 1
        if self.failures == 1 or self.failures % 100 == 0:
            log.warning("headwater: OpenLineage event not sent (%d so far): %s", self.failures, message)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the thread is idle and the spool empty; False if time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._wait_done(deadline - time.monotonic()) and not self.pending():
                return True
            time.sleep(0.02)
        return False

    def _at_exit(self) -> None:
        # A send under way may finish; nothing new starts. What is not sent stays in the spool.
        if self._pid == os.getpid():
            self._wait_done(EXIT_GRACE_S)

    def close(self, timeout: float = 5.0) -> None:
        if self._thread is not None and self._pid == os.getpid():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
        try:
            self.client.close(timeout)
        except Exception as err:  # noqa: BLE001 - closing must not fail a shutdown
            log.debug("headwater: closing the OpenLineage client: %s", err)


class EmittingStore(Store):
    """A store that also emits, after each apply, the OpenLineage events of what it recorded.
    Every other call goes to the store it wraps."""

    def __init__(self, store: Store, emitter: Emitter) -> None:
        self.inner = store
        self.emitter = emitter
        self.uri = store.uri

    def apply(self, events: Sequence[Event], *, before_commit: Callable[[], None] | None = None) -> list[str]:
        notices = self.inner.apply(events, before_commit=before_commit)
        self.emitter.submit(self.inner, events)
        return notices

    def check_sendable(self, events: Sequence[Event]) -> None:
        self.inner.check_sendable(events)

    def close(self) -> None:
        self.inner.close()  # the emitter is the process's, shared by every store (emitter_for)

    def artifact_exists(self, name: str) -> bool:
        return self.inner.artifact_exists(name)

    def get_artifact(self, name: str) -> Artifact:
        return self.inner.get_artifact(name)

    def get_version(self, ref: Ref, at: datetime | None = None) -> Version:
        return self.inner.get_version(ref, at)

    def list_artifacts(
        self,
        type: str | None = None,
        limit: int | None = None,
        name_like: str | None = None,
        *,
        tag: str | None = None,
        order: ArtifactOrder = "name",
        offset: int = 0,
    ) -> list[Artifact]:
        return self.inner.list_artifacts(type, limit, name_like, tag=tag, order=order, offset=offset)

    def list_versions(
        self,
        name: str,
        limit: int | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> list[Version]:
        return self.inner.list_versions(name, limit, tags, metadata, include_deleted)

    def get_run(self, run_id: str) -> Run:
        return self.inner.get_run(run_id)

    def list_runs(
        self,
        job: str | None = None,
        orchestrator: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        return self.inner.list_runs(job, orchestrator, status, parent_id, limit)

    def lineage(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> LineageGraph:
        return self.inner.lineage(ref, direction, depth)

    def reachable(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> Reachable:
        return self.inner.reachable(ref, direction, depth)

    def downstream_of(self, refs: Sequence[Ref]) -> LineageGraph:
        return self.inner.downstream_of(refs)

    def lineage_path(self, source: Ref, target: Ref) -> LineageGraph:
        return self.inner.lineage_path(source, target)

    def runs_using(self, name: str, limit: int | None = None, offset: int = 0) -> list[Run]:
        return self.inner.runs_using(name, limit, offset)

    def versions_holding(self, digest: str | None = None, path: str | None = None) -> list[Version]:
        return self.inner.versions_holding(digest, path)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        return self.inner.alias_history(name, alias)

    def referenced_blob_digests(self) -> set[str]:
        return self.inner.referenced_blob_digests()


_emitters: dict[tuple[int, Path], Emitter] = {}
_emitters_lock = threading.Lock()


def emitter_for(url: str, home: Path) -> Emitter:
    """This process's emitter for the catalogue at `url`: one thread, one spool per catalogue."""
    folder = spool_folder(home, url)
    with _emitters_lock:
        found = _emitters.get((os.getpid(), folder))
        if found is None:
            found = _emitters[(os.getpid(), folder)] = Emitter.from_url(url, home=home)
        return found


def wrap_store(store: Store, home: Path | None = None) -> Store:
    """`store`, emitting OpenLineage when HEADWATER_OPENLINEAGE_URL is set (SQL stores only: with
    the HTTP store the server emits). A misconfiguration is one warning, never a failure."""
    url = config.get("HEADWATER_OPENLINEAGE_URL")
    if not url or isinstance(store, EmittingStore) or store.uri.split(":", 1)[0].lower() in ("http", "https"):
        return store
    try:
        return EmittingStore(store, emitter_for(url, home if home is not None else config.headwater_home()))
    except Exception as err:  # noqa: BLE001 - recording goes on without emitting
        log.warning("headwater: OpenLineage emission is off: %s", " ".join(str(err).split())[:300])
        return store


def send_spooled(home: Path, store_uri: str, timeout: float) -> tuple[int, int, str | None] | None:
    """`headwater sync`'s part: send what waits in the spool now, ignoring the back-off.

    (sent, still waiting, why it stopped) when HEADWATER_OPENLINEAGE_URL is set, else None."""
    url = config.get("HEADWATER_OPENLINEAGE_URL")
    if not url or store_uri.split(":", 1)[0].lower() in ("http", "https"):
        return None
    emitter = emitter_for(url, home)
    sent, error = emitter.send(deadline=time.monotonic() + timeout)
    waiting = len(emitter.pending())
    if waiting:
        log.warning(
            "headwater: %d OpenLineage event(s) wait in %s: %s", waiting, emitter.spool, error or "catalogue busy"
        )
    return sent, waiting, error
