"""Translation of Prefect flow runs and task runs into headwater runs, inputs and outputs.

Everything here runs inside a Prefect state hook (or the whole-flow wrapper in
`headwater.adapters.prefect.whole_flow`, which calls the same functions), in the engine's process
and run context. Every entry point catches everything and logs one warning line; recording goes
through `headwater.observe` batches, which keep the time budget and fall back to the outbox.

A flow run is written twice: at Running (the container, status running, its parameters and
inputs) and at its end. A task run is written once, at its end (status, times, parameters, error,
inputs, outputs), to keep the cost per task low; its inputs are hashed at Running, so a task that
rewrites its input records what it read. Bookkeeping between the hooks lives in small,
lock-guarded, bounded maps keyed by Prefect's run ids, so the thread-pool task runner is safe.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from headwater import config
from headwater.api import Output, run_id
from headwater.errors import HeadwaterError
from headwater.models import RunStatus, Version
from headwater.observe import Batch, Observer, location_name
from headwater.refs import Ref, is_uri, normalize_name

if TYPE_CHECKING:  # pragma: no cover
    from headwater.adapters.prefect.block import Tracking

log = logging.getLogger("headwater")

ORCHESTRATOR = "prefect"

K = TypeVar("K")
V = TypeVar("V")


class _Bounded(Generic[K, V]):
    """A thread-safe map that forgets its oldest entries past `size` (runs that never ended)."""

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._data.get(key)

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._data.pop(key, None)

    def append(self, key: K, item: Any) -> None:
        with self._lock:
            self._data.setdefault(key, []).append(item)  # type: ignore[attr-defined]
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def items(self) -> list[tuple[K, V]]:
        with self._lock:
            return list(self._data.items())


@dataclass(frozen=True)
class Scope:
    """What a tracked flow (and everything in it) or a tracked task records with."""

    tracker: Tracking
    ignore_inputs: frozenset[str] = frozenset()  # parameter names never taken as inputs

    def observer(self) -> Observer:
        return self.tracker.observer()

    def settings(self) -> Any:
        return self.tracker.settings()

    def describe(self) -> str:
        return self.tracker.describe()


def own_scope(obj: Any) -> Scope | None:
    """The scope of a flow or task tracked with tracker.flow / tracker.task: its hooks record it.

    Found through its on_running hooks, so copies made with `with_options` keep it."""
    for hook in getattr(obj, "on_running_hooks", None) or ():
        scope = getattr(hook, "headwater_scope", None)
        if isinstance(scope, Scope):
            return scope
    return None


@dataclass
class RunInfo:
    """What a run's start and end events both carry (so either alone creates a complete run)."""

    rid: str
    job: str
    kind: str
    job_namespace: str
    parent_id: str | None
    flow_run_id: UUID | None  # the Prefect flow run a task run belongs to
    code: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    started_at: datetime | None = None
    inputs: list[Any] = field(default_factory=list)  # a task run's input events, hashed at its start

    def fields(self) -> dict[str, Any]:
        return dict(
            job=self.job, job_namespace=self.job_namespace, kind=self.kind, parent_id=self.parent_id,
            code=self.code or None, links=self.links or None,
        )


# Flow run id -> the scope that tracks it and every task and subflow inside it.
tracked_flow_runs: _Bounded[UUID, Scope] = _Bounded(4096)
# Run id (task or flow) -> its run between the Running hook and the end.
open_runs: _Bounded[UUID, RunInfo] = _Bounded(20000)
# Run id -> ((location, "name@digest"), ...) recorded as its outputs: what downstream tasks link to.
recorded_outputs: _Bounded[UUID, tuple[tuple[str, str], ...]] = _Bounded(20000)
# Run id -> outputs given to log_output(), recorded with the run's end.
logged_outputs: _Bounded[UUID, list[Any]] = _Bounded(20000)
# Task run id -> {asset key: metadata} given to add_asset_metadata() (captured by whole_flow).
asset_metadata: _Bounded[UUID, dict[str, dict[str, Any]]] = _Bounded(20000)
# Flow run id -> its parameters as Python objects (captured by whole_flow at Running).
flow_parameters: _Bounded[UUID, dict[str, Any]] = _Bounded(4096)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- what a value is: a location, a headwater version, or nothing we track -----------------------

# Strings with these schemes name a place the task talks to, not data it reads.
_NOT_DATA_SCHEMES = frozenset({"http", "https", "ws", "wss", "mailto", "data"})
_MAX_ITEMS = 1000  # values walked per parameter or result
_MAX_DEPTH = 3


@dataclass(frozen=True)
class Location:
    """A path or URI seen in a parameter or result, or given to log_output / hw.Output."""

    target: str | os.PathLike[str]  # what observe hashes
    key: str  # its canonical location URI
    name: str | None = None  # artifact name when it is not the location (hw.Output, assets)
    type: str | None = None
    metadata: dict[str, Any] | None = None
    explicit: bool = False  # given on purpose: recorded even when it does not exist
    aliases: tuple[str, ...] = ()  # an hw.Output's labels, applied to the version it becomes
    tags: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class VersionRef:
    ref: str
    exact: bool


def _fsspec_schemes() -> frozenset[str]:
    try:
        from fsspec.registry import known_implementations, registry

        return frozenset(known_implementations) | frozenset(registry) | {"file", "s3a", "s3n"}
    except Exception:  # noqa: BLE001 - fsspec is a core dependency; be safe anyway
        return frozenset({"file", "s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "hdfs", "memory"})


_SCHEMES: frozenset[str] | None = None


def readable_uri(uri: str) -> bool:
    """True when headwater can hash what the URI names (fsspec knows the scheme, and it is data)."""
    global _SCHEMES
    if _SCHEMES is None:
        _SCHEMES = _fsspec_schemes()
    scheme = uri.split(":", 1)[0].lower()
    return scheme in _SCHEMES and scheme not in _NOT_DATA_SCHEMES


def _location_of(value: Any) -> Location | None:
    """The location a single value names, if any (paths, URIs, fsspec and UPath objects)."""
    try:
        return _location(value)
    except (HeadwaterError, ValueError, OSError):  # not a valid location ('s3://' alone, say)
        return None


def _location(value: Any) -> Location | None:
    if isinstance(value, str):
        if len(value) > 4096 or "\n" in value:
            return None
        if is_uri(value):
            if not readable_uri(value):
                return None
            return Location(value, normalize_name(value))
        # A plain string counts as a path only when it looks like one and exists.
        if ("/" in value or os.sep in value or "." in value) and os.path.exists(value):
            return Location(value, location_name(value))
        return None
    protocol = getattr(value, "protocol", None)
    if protocol is not None and hasattr(value, "storage_options") and hasattr(value, "path"):
        # universal_pathlib's UPath: str() is its URI (or a plain path for local ones).
        text = str(value)
        if is_uri(text) or isinstance(value, os.PathLike):
            return _location_of(text) if is_uri(text) else Location(os.fspath(value), location_name(os.fspath(value)))
        return None
    if hasattr(value, "fs") and hasattr(value, "path") and hasattr(value.fs, "unstrip_protocol"):
        uri = value.fs.unstrip_protocol(value.path)  # fsspec OpenFile
        return _location_of(uri) if isinstance(uri, str) else None
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return Location(path, location_name(path))
    return None


def extract(value: Any, *, depth: int = 0, count: list[int] | None = None) -> Iterator[Location | VersionRef]:
    """Locations and headwater versions inside a parameter value or a return value."""
    count = count if count is not None else [0]
    count[0] += 1
    if count[0] > _MAX_ITEMS:
        return
    if isinstance(value, Output):
        try:
            yield Location(value.path, location_name(value.path), name=normalize_name(value.name), type=value.type,
                           metadata=value.metadata, explicit=True, aliases=tuple(value.aliases),
                           tags=tuple(value.tags), description=value.description)
        except (HeadwaterError, ValueError, OSError) as err:
            log.warning("headwater: %s ignored: %s", _short(value), _one_line(err))
        return
    if isinstance(value, Version):
        if value.digest.startswith("blake3:"):
            yield VersionRef(f"{value.name}@{value.digest}", exact=True)
        elif value.label:
            yield VersionRef(f"{value.name}:{value.label}", exact=True)
        return
    if isinstance(value, Ref):
        yield VersionRef(str(value), exact=value.alias is None)
        return
    if isinstance(value, (bool, int, float, complex, bytes, bytearray)) or value is None:
        return
    location = _location_of(value)
    if location is not None:
        yield location
        return
    if depth >= _MAX_DEPTH:
        return
    if isinstance(value, dict):
        for item in list(value.values())[:_MAX_ITEMS]:
            yield from extract(item, depth=depth + 1, count=count)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in list(value)[:_MAX_ITEMS]:
            yield from extract(item, depth=depth + 1, count=count)


def _exists(location: Location) -> bool:
    """Local paths must exist to count as data read or written; remote ones are checked by hashing."""
    if isinstance(location.target, str) and is_uri(location.target):
        if location.key.startswith("file://"):
            from headwater.refs import file_uri_to_path

            return file_uri_to_path(location.key).exists()
        return True
    return os.path.exists(location.target)


def _linkable(ref: str) -> bool:
    """A `name@digest` a later event can resolve (unverified digests are not REFs)."""
    return "@blake3:" in ref


# -- parameters as a JSON-safe summary -------------------------------------------------------------


def summarize(value: Any, depth: int = 0) -> Any:
    """A small JSON-safe picture of a value: what a parameter was, never the data itself."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= 500 else value[:497] + "..."
    if isinstance(value, Enum):
        return summarize(value.value, depth)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, Version):
        return value.ref
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Output):
        return {"name": value.name, "path": str(value.path)}
    if isinstance(value, (bytes, bytearray)):
        return f"<{type(value).__name__}: {len(value)} bytes>"
    location = _location_of(value) if not isinstance(value, (dict, list, tuple, set, frozenset)) else None
    if location is not None:
        return str(value)
    if depth >= _MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:200]: summarize(v, depth + 1) for k, v in items[:50]}
        if len(items) > 50:
            out["..."] = f"{len(items) - 50} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value) if not isinstance(value, (set, frozenset)) else sorted(value, key=repr)
        out_list = [summarize(v, depth + 1) for v in items[:20]]
        if len(items) > 20:
            out_list.append(f"... {len(items) - 20} more")
        return out_list
    dump = getattr(value, "model_dump", None)  # pydantic models (secrets stay masked in JSON mode)
    if callable(dump) and not isinstance(value, type):
        try:
            return summarize(dump(mode="json"), depth + 1)
        except Exception:  # noqa: BLE001
            pass
    # Anything else (data frames, models, clients): its type, never its repr (size, secrets).
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def summarize_params(params: dict[str, Any] | None) -> dict[str, Any]:
    if not params:
        return {}
    return {str(k): summarize(v) for k, v in params.items()}


# -- Prefect states and objects --------------------------------------------------------------------


def status_of(state: Any) -> RunStatus | None:
    """Completed → succeeded, Failed/Crashed → failed, Cancelled → aborted, NotReady → skipped."""
    if state.is_completed():
        return "succeeded"
    if state.is_failed() or state.is_crashed():
        return "failed"
    if state.is_cancelled() or state.is_cancelling():
        return "aborted"
    if state.is_pending() and state.name == "NotReady":
        return "skipped"
    if state.is_running():
        return "running"
    return None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _result(state: Any) -> Any:
    """A run's return value (or exception), as `state.result(raise_on_failure=False)` gives it.

    In memory it is read directly (State.result runs a coroutine to completion: ~2 ms a call);
    a result persisted elsewhere is left to Prefect to read.
    """
    from prefect.results import ResultRecord, ResultRecordMetadata

    data = state.data
    if isinstance(data, ResultRecord):
        return data.result
    if data is not None and not isinstance(data, ResultRecordMetadata):
        return data
    # _sync=True: in an async flow the dispatch would otherwise hand back a coroutine.
    return state.result(raise_on_failure=False, _sync=True)


def error_of(state: Any) -> str | None:
    """One line saying why a run did not succeed: its exception, else Prefect's state message."""
    if status_of(state) not in ("failed", "aborted", "skipped"):
        return None
    text = ""
    try:
        exc = _result(state)
        # Prefect's own wrappers (FailedRun, CrashedRun, ...) only repeat the state message.
        if isinstance(exc, BaseException) and not type(exc).__module__.startswith("prefect."):
            text = _one_line(exc)
    except Exception:  # noqa: BLE001 - the state message below says enough
        pass
    if not text:
        lines = (state.message or state.name or "").strip().splitlines()
        text = lines[0] if lines else ""
    return text[:1000] or None


def _code(fn: Any) -> dict[str, Any]:
    code = getattr(fn, "__code__", None)
    out: dict[str, Any] = {"function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"}
    if code is not None:
        out["file"] = code.co_filename
    return out


def _links(run: Any) -> dict[str, str]:
    try:
        from prefect.utilities.urls import url_for

        url = url_for(run)
    except Exception:  # noqa: BLE001
        url = None
    return {"prefect": url} if url else {}


def _flow_context() -> Any:
    from prefect.context import FlowRunContext

    return FlowRunContext.get()


def task_info(scope: Scope, task: Any, task_run: Any) -> RunInfo:
    ctx = _flow_context()
    flow_name = getattr(getattr(ctx, "flow", None), "name", None)
    flow_run_id = task_run.flow_run_id
    return RunInfo(
        rid=run_id(ORCHESTRATOR, task_run.id),
        job=f"{flow_name}.{task.name}" if flow_name else task.name,
        kind="task",
        job_namespace=scope.settings().job_namespace,
        parent_id=run_id(ORCHESTRATOR, flow_run_id) if flow_run_id else None,
        flow_run_id=flow_run_id,
        code=_code(getattr(task, "fn", None)),
        links=_links(task_run),
    )


def flow_info(scope: Scope, flow: Any, flow_run: Any) -> RunInfo:
    known = open_runs.get(flow_run.id)
    if known is not None:  # a retry: the parent was found on the first attempt
        return known
    ctx = _flow_context()
    # At Running, a subflow's engine has not entered its own context yet: this is the caller's.
    parent = getattr(getattr(ctx, "flow_run", None), "id", None)
    if parent == flow_run.id:
        parent = None
    return RunInfo(
        rid=run_id(ORCHESTRATOR, flow_run.id),
        job=flow.name,
        kind="container",
        job_namespace=scope.settings().job_namespace,
        parent_id=run_id(ORCHESTRATOR, parent) if parent else None,
        flow_run_id=flow_run.id,
        code=_code(getattr(flow, "fn", None)),
        links=_links(flow_run),
    )


# -- inputs and outputs ----------------------------------------------------------------------------


def record_inputs(
    b: Batch, rid: str, params: dict[str, Any], task_inputs: dict[str, Any] | None, asset_deps: list[Any],
    ignore: frozenset[str] = frozenset(),
) -> None:
    """Inputs: upstream runs' recorded outputs (through Prefect's task_inputs), then every path, URI
    or headwater version in the parameters (but those named in `ignore`), then declared asset
    dependencies."""
    done: set[str] = set()  # location keys and refs already linked
    upstream_all: list[tuple[str, str]] = []
    for pname, value in params.items():
        if pname in ignore:
            continue
        found = list(extract(value))
        keys = {f.key for f in found if isinstance(f, Location)}
        upstream: list[tuple[str, str]] = []
        for item in (task_inputs or {}).get(pname, ()):
            if getattr(item, "input_type", None) in ("task_run", "flow_run"):
                upstream.extend(recorded_outputs.get(item.id) or ())
        upstream_all.extend(upstream)
        # The upstream result itself is a location: link exactly that one; otherwise (a data frame,
        # a model) the task received what the upstream recorded: link all of it.
        for key, ref in upstream:
            if (key in keys or not keys) and ref not in done:
                b.used_ref(rid, ref)
                done.update((ref, key))
        for item in found:
            if isinstance(item, VersionRef):
                if item.ref not in done:
                    b.used_ref(rid, item.ref, exact=item.exact)
                    done.add(item.ref)
            elif item.key not in done:
                _use_location(b, rid, item)
                done.add(item.key)
    for dep in asset_deps:
        try:
            key = normalize_name(dep.key)
        except (HeadwaterError, ValueError) as err:
            log.warning("headwater: asset %s ignored: %s", _short(dep.key), _one_line(err))
            continue
        if key in done:
            continue
        done.add(key)
        linked = [ref for k, ref in upstream_all if k == key]
        if linked:
            b.used_ref(rid, linked[0])
        else:
            _use_location(b, rid, Location(dep.key, key, explicit=True))


def _use_location(b: Batch, rid: str, item: Location) -> None:
    if is_uri(str(item.target)) and not readable_uri(str(item.target)):
        # A table or a service headwater cannot read: its latest version, said to be inexact.
        b.used_ref(rid, item.name or item.key, exact=False)
        return
    if not _exists(item):
        return  # not there when the task started: not something it read (an output path, say)
    b.used(rid, item.target, name=item.name)


def record_outputs(b: Batch, rid: str, outputs: list[Location]) -> list[tuple[str, str]]:
    recorded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in outputs:
        name = item.name or item.key
        if name in seen:
            continue
        seen.add(name)
        if is_uri(str(item.target)) and not readable_uri(str(item.target)):
            # A table or a service headwater cannot read: an unverified version, said to be so.
            b.produced(rid, None, name=name, type=item.type, metadata=item.metadata)
            continue
        ref = b.produced(
            rid, item.target, name=item.name, type=item.type, metadata=item.metadata,
            aliases=item.aliases, tags=item.tags, description=item.description,
        )
        if ref is not None and _linkable(ref):
            recorded.append((item.key, ref))
    return recorded


def outputs_of(value: Any) -> list[Location]:
    """Return values that are paths, URIs or headwater outputs (local paths only if they exist)."""
    return [item for item in extract(value) if isinstance(item, Location) and (item.explicit or _exists(item))]


def _asset_outputs(task: Any, task_run_id: UUID) -> list[Location]:
    assets = getattr(task, "assets", None) or ()
    metadata = asset_metadata.pop(task_run_id) or {}
    out = []
    for asset in assets:
        key = getattr(asset, "key", None)
        try:
            name = normalize_name(key)
        except (HeadwaterError, ValueError) as err:
            log.warning("headwater: asset %s ignored: %s", _short(key), _one_line(err))
            continue
        out.append(Location(key, name, name=name, metadata=metadata.get(key), explicit=True))
    return out


# -- the hooks -------------------------------------------------------------------------------------


def observer_of(scope: Scope) -> Observer | None:
    """The scope's observer; loading its block may fail (one warning line, nothing recorded)."""
    try:
        return scope.observer()
    except Exception as err:  # noqa: BLE001
        log.warning("headwater: prefect %s not loaded, nothing recorded: %s", scope.describe(), _one_line(err))
        return None


def task_running(scope: Scope, task: Any, task_run: Any, state: Any, parameters: dict[str, Any] | None) -> None:
    """Hash the inputs now, as the task starts to read them; they are delivered with its end.

    One outbox batch per task run (its end) keeps the cost per task low; a task run therefore
    appears in headwater when it ends, with the inputs as they were when it started.
    """
    observer = observer_of(scope)
    if observer is None:
        return
    with attempt(f"task run {task_run.name!r} start"):
        info = task_info(scope, task, task_run)
        if parameters is None:
            from prefect.context import TaskRunContext

            ctx = TaskRunContext.get()
            parameters = ctx.parameters if ctx and ctx.task_run and ctx.task_run.id == task_run.id else {}
        params = parameters or {}
        info.params = summarize_params(params)
        info.started_at = _utc(task_run.start_time) or _utc(state.timestamp)
        open_runs.put(task_run.id, info)
        inputs = observer.collect()  # written with the end batch
        record_inputs(inputs, info.rid, params, task_run.task_inputs, list(getattr(task, "asset_deps", None) or ()),
                      scope.ignore_inputs)
        info.inputs = inputs.events


def task_finished(scope: Scope, task: Any, task_run: Any, state: Any, parameters: dict[str, Any] | None = None) -> None:
    status = status_of(state)
    if status is None or status == "running":
        return
    observer = observer_of(scope)
    if observer is None:
        return
    refs: list[tuple[str, str]] = []
    with observer.batch(f"task run {task_run.name!r} end") as b:
        info = open_runs.pop(task_run.id) or task_info(scope, task, task_run)
        if info.params is None and parameters is not None:
            info.params = summarize_params(parameters)
        if info.flow_run_id and info.flow_run_id not in tracked_flow_runs:
            # Tracked alone inside an untracked flow: the container is upserted by its first child.
            flow_name = getattr(getattr(_flow_context(), "flow", None), "name", None)
            b.run(info.parent_id or "", job=flow_name, job_namespace=info.job_namespace, kind="container")
        b.run(
            info.rid, **info.fields(), status=status, params=info.params,
            started_at=info.started_at or _utc(task_run.start_time), ended_at=_utc(state.timestamp),
            error=error_of(state),
        )
        b.events.extend(info.inputs)
        outputs: list[Location] = []
        if status == "succeeded":
            outputs.extend(outputs_of(_result(state)))
            outputs.extend(_asset_outputs(task, task_run.id))
        outputs.extend(logged_outputs.pop(task_run.id) or ())
        refs = record_outputs(b, info.rid, outputs)
    if b.delivered is not None and refs:  # written (delivered or queued): downstream can link to it
        recorded_outputs.put(task_run.id, tuple(refs))


def flow_running(scope: Scope, flow: Any, flow_run: Any, state: Any) -> None:
    tracked_flow_runs.put(flow_run.id, scope)  # before anything: the flow's tasks look it up
    observer = observer_of(scope)
    if observer is None:
        return
    with observer.batch(f"flow run {flow_run.name!r} start") as b:
        info = flow_info(scope, flow, flow_run)
        params = flow_parameters.pop(flow_run.id)
        if params is None:
            # Only Prefect's JSON form: paths are strings there, but objects are dicts whose
            # strings are not parameters (a Version's entries), so look at strings and lists only.
            params = {k: v for k, v in (flow_run.parameters or {}).items() if isinstance(v, (str, list))}
            info.params = summarize_params(flow_run.parameters)
        else:
            info.params = summarize_params(params)
        open_runs.put(flow_run.id, info)
        b.run(
            info.rid, **info.fields(), status="running",
            started_at=_utc(flow_run.start_time) or _utc(state.timestamp), params=info.params,
        )
        record_inputs(b, info.rid, params, None, [], scope.ignore_inputs)


def flow_finished(scope: Scope, flow: Any, flow_run: Any, state: Any) -> None:
    status = status_of(state)
    if status is None or status == "running":
        return
    observer = observer_of(scope)
    if observer is None:
        return
    refs: list[tuple[str, str]] = []
    with observer.batch(f"flow run {flow_run.name!r} end") as b:
        info = open_runs.pop(flow_run.id) or flow_info(scope, flow, flow_run)
        outputs: list[Location] = []
        if status == "succeeded":
            outputs.extend(outputs_of(_result(state)))
        outputs.extend(logged_outputs.pop(flow_run.id) or ())
        error = error_of(state)
        b.run(
            info.rid, **info.fields(), status=status, params=info.params,
            started_at=_utc(flow_run.start_time), ended_at=_utc(state.timestamp), error=error,
        )
        refs = record_outputs(b, info.rid, outputs)
        if state.is_crashed() or state.is_cancelling() or state.is_cancelled():
            # The process is going away: its task runs that started will never report an end.
            for run_uuid, task in open_runs.items():
                if task.kind == "task" and task.flow_run_id == flow_run.id and open_runs.pop(run_uuid):
                    why = f"flow run {state.name.lower()}"
                    b.run(task.rid, **task.fields(), status=status, params=task.params, started_at=task.started_at,
                          ended_at=_utc(state.timestamp), error=f"{why}: {error}" if error else why)
                    b.events.extend(task.inputs)
    if b.delivered is not None and refs:
        recorded_outputs.put(flow_run.id, tuple(refs))


# -- log_output ------------------------------------------------------------------------------------


def log_output(
    target: Any, *, name: str | None = None, type: str | None = None, metadata: dict[str, Any] | None = None
) -> Any:
    """Record `target` (a path, a URI, an fsspec/UPath object or a `headwater.Output`) as an output
    of the tracked task run (or flow run) this is called in. It is hashed when the run ends, with its
    other outputs. Returns `target`, so `return log_output(path)` works. Never raises."""
    try:
        if config.disabled():
            return target
        from prefect.context import FlowRunContext, TaskRunContext

        task_ctx = TaskRunContext.get()
        run = task_ctx.task_run if task_ctx else getattr(FlowRunContext.get(), "flow_run", None)
        if run is None or run.id not in open_runs:
            log.warning("headwater: log_output(%s) outside a tracked Prefect task or flow run: not recorded",
                        _short(target))
            return target
        found = [item for item in extract(target) if isinstance(item, Location)]
        if not found:
            log.warning("headwater: log_output(%s): not a path, URI or headwater.Output: not recorded", _short(target))
            return target
        for item in found:
            logged_outputs.append(run.id, Location(
                item.target, item.key, name=normalize_name(name) if name else item.name,
                type=type or item.type, metadata=metadata if metadata is not None else item.metadata, explicit=True,
                aliases=item.aliases, tags=item.tags, description=item.description,
            ))
    except Exception as err:  # noqa: BLE001
        log.warning("headwater: log_output not recorded: %s", _one_line(err))
    return target


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


# -- running a hook without blocking an async engine's event loop ----------------------------------


def in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextmanager
def attempt(what: str) -> Iterator[None]:
    """Like observe.batch for work outside a batch: an error is one warning line, never raised."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - never break the flow
        log.warning("headwater: prefect %s not recorded: %s", what, _one_line(err))


def guarded(what: str, fn: Any, *args: Any) -> None:
    """Run one hook's translation; anything it raises is one warning line."""
    try:
        fn(*args)
    except Exception as err:  # noqa: BLE001 - never break the flow
        log.warning("headwater: prefect %s not recorded: %s", what, _one_line(err))
