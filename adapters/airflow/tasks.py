"""Translation of Airflow task instances and DAG runs into headwater runs, inputs and outputs.

Nothing here hashes, writes SQL or talks to a server: it reads what Airflow knows about a task
and calls `headwater.observe` (`batch.run/used/used_ref/produced`), which does the rest within
the time budget and never raises.

Identity: a DAG run is the container run `run_id("airflow", dag_id, run_id)`; each task instance
try is a task run `run_id("airflow", dag_id, task_id, run_id, try_number, map_index)`.

Inputs and outputs, in this order of sources (each location is recorded once per run):
  1. inlets / outlets: Airflow Assets (by URI), headwater objects (`hw.Output`, a `Version`),
     plain URI strings or paths, and REF strings (`"mnist-train:production"`) as inlets; an
     AssetAlias inlet stands for the assets it names when the try starts;
  2. runtime outlet events: the `extra` of each outlet becomes version metadata, and the assets
     an AssetAlias named at run time become outputs;
  3. the hook lineage collector: what ObjectStoragePath and provider hooks read and wrote. It is a
     per-process singleton, so it is snapshotted at task start and diffed at the end. Its
     `read_text`/`write_text`/`read_bytes`/`write_bytes` report there too (`storage_path`).
Inputs declared as inlets are hashed at task start (the exact version read); outputs, and inputs
that only the collector reports, at the end. Failed and skipped tries record their inputs but no
outputs: what a failed try left behind is not a version anyone should build on.

Task instances that never start (skipped by a branch or a short-circuit, `upstream_failed`,
`removed`) have no hook of their own: the DAG run's end records them (`dag_run_changed`), as
NEVER_STARTED says. The DAG run's own status comes from its hook in the scheduler; a task
process that cannot see that hook registered (a worker apart from the scheduler, which may lack
headwater or have stopped) also decides it when it finishes last (`_dag_run_outcome`).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from headwater.adapters.airflow import storage_path
from headwater.adapters.airflow.settings import Settings, load, observer
from headwater.api import Output, run_id
from headwater.models import Version
from headwater.observe import Batch, Seen, code_identity, error_text, guard, locate, location_name, now, utc
from headwater.refs import is_uri, parse_ref, validate_name

log = logging.getLogger("headwater")

ORCHESTRATOR = "airflow"


# -- identity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskKey:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int

    @classmethod
    def of(cls, ti: Any) -> TaskKey:
        map_index = getattr(ti, "map_index", -1)
        return cls(
            str(ti.dag_id),
            str(ti.task_id),
            str(ti.run_id),
            int(ti.try_number),
            -1 if map_index is None else int(map_index),
        )

    # Worked out once per key (a uuid5 each): a hook reads them for every event it records.
    @functools.cached_property
    def container(self) -> str:
        return dag_run_id(self.dag_id, self.run_id)

    @functools.cached_property
    def id(self) -> str:
        return run_id(ORCHESTRATOR, self.dag_id, self.task_id, self.run_id, self.try_number, self.map_index)


def dag_run_id(dag_id: str, airflow_run_id: str) -> str:
    return run_id(ORCHESTRATOR, dag_id, airflow_run_id)


# -- what a task declares and reports -------------------------------------------------------


@dataclass
class Item:
    """One input or output: a location to hash, a REF to resolve (inputs), or only a name."""

    name: str
    target: str | os.PathLike[str] | None = None  # None: no location (unverified if an output)
    ref: str | None = None  # inputs named by a REF, recorded with used_ref
    exact: bool = True
    type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    output: Output | None = None


def _location(target: str | os.PathLike[str], **kwargs: Any) -> Item:
    return Item(name=location_name(target), target=target, **kwargs)


def _ref(text: str) -> Item:
    parsed = parse_ref(text)
    # A label or digest names one version; a bare name or an alias moves, so the edge says so.
    return Item(name=parsed.name, ref=text, exact=parsed.label is not None or parsed.digest is not None)


def _asset_classes() -> tuple[Any, Any, Any, Any]:
    from airflow.sdk.definitions.asset import Asset, AssetAlias, AssetNameRef, AssetUriRef

    return Asset, AssetAlias, AssetNameRef, AssetUriRef


def translate(obj: Any, *, as_input: bool) -> Item | None:
    """An inlet or outlet as an Item; None for what headwater cannot place (logged at debug)."""
    Asset, AssetAlias, AssetNameRef, AssetUriRef = _asset_classes()
    if isinstance(obj, AssetAlias):
        return None  # outlets: the outlet events name its assets; inlets: resolved by _inlets()
    if isinstance(obj, (Asset, AssetUriRef, AssetNameRef)):
        uri = getattr(obj, "uri", None)
        if isinstance(uri, str) and is_uri(uri):
            return _location(uri)
        name = validate_name(getattr(obj, "name", None) or uri or "")
        # An asset with no location: the artifact of that name. Read: whatever version is latest;
        # written: a version that says it could not be verified.
        return Item(name=name, ref=name, exact=False) if as_input else Item(name=name)
    if isinstance(obj, Output):
        return Item(
            name=validate_name(obj.name),
            target=obj.path,
            type=obj.type,
            metadata=dict(obj.metadata or {}),
            output=obj,
        )
    if isinstance(obj, Version):
        return Item(name=obj.name, ref=f"{obj.name}@{obj.digest}") if as_input else None
    if isinstance(obj, str):
        if is_uri(obj):
            parsed = parse_ref(obj)
            if parsed.label is not None or parsed.digest is not None:
                # file:///d/users.csv:v2 names a recorded version: something to read, not write
                return _ref(obj) if as_input else None
            return _location(obj)
        return _ref(obj) if as_input else None
    found = locate(obj)
    if found is not None:  # a path, ObjectStoragePath, UPath or fsspec file
        return Item(name=found.key, target=found.target)
    log.debug("headwater: %s %r is not something headwater records", "inlet" if as_input else "outlet", obj)
    return None


def _alias_assets(alias: Any) -> list[Any]:
    """The assets an AssetAlias names now, resolved as the Task SDK resolves an alias inlet for
    the task's own context (the `GetAssetsByAlias` request to the execution API)."""
    from airflow.sdk.execution_time.comms import AssetsByAliasResult, GetAssetsByAlias
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    Asset, _, _, _ = _asset_classes()
    found = SUPERVISOR_COMMS.send(GetAssetsByAlias(alias_name=alias.name))
    if not isinstance(found, AssetsByAliasResult):
        raise RuntimeError(f"the execution API answered {type(found).__name__}")
    return [Asset(name=asset.name, uri=asset.uri) for asset in found.assets]


def _inlets(ti: Any) -> Iterator[Any]:
    """The task's inlets, each AssetAlias replaced by the assets it names now."""
    _, AssetAlias, _, _ = _asset_classes()
    for inlet in getattr(ti.task, "inlets", None) or ():
        if isinstance(inlet, AssetAlias):
            yield from _safely(f"inlet {inlet!r}", _alias_assets, inlet, default=[])
        else:
            yield inlet


def _declared(objs: Iterable[Any] | None, *, as_input: bool) -> Iterator[Item]:
    for obj in objs or ():
        item = _safely(f"{'inlet' if as_input else 'outlet'} {obj!r}", translate, obj, as_input=as_input)
        if item is not None:
            yield item


def _safely(what: str, func: Any, *args: Any, default: Any = None, **kwargs: Any) -> Any:
    """One source or item that cannot be read is skipped (one warning line), not the whole run."""
    return guard(f"airflow {what}", func, *args, default=default, outcome="skipped", **kwargs)


def _outlet_events(ti: Any, declared: dict[str, Item]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(uri, extra) of every asset event this task emits: its outlets' and its aliases'."""
    Asset, _, _, _ = _asset_classes()
    events = _context(ti).get("outlet_events")
    for key in list(events or ()):
        accessor = events[key]
        if isinstance(key, Asset) and is_uri(key.uri):
            name = location_name(key.uri)
            if name in declared:  # Airflow emits events only for declared outlets
                yield key.uri, dict(accessor.extra or {})
        for alias_event in getattr(accessor, "asset_alias_events", ()) or ():
            uri = alias_event.dest_asset_key.uri
            if is_uri(uri):
                yield uri, dict(alias_event.extra or {})


# -- the hook lineage collector -------------------------------------------------------------


def _collector_counts() -> tuple[dict[str, int], dict[str, int]]:
    """How often each URI was read and written so far in this process."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    lineage = get_hook_lineage_collector().collected_assets
    counts: tuple[dict[str, int], dict[str, int]] = ({}, {})
    for side, infos in zip(counts, (lineage.inputs, lineage.outputs), strict=True):
        for info in infos:
            uri = info.asset.uri
            side[uri] = side.get(uri, 0) + info.count
    return counts


def _new_since(before: dict[str, int], now: dict[str, int]) -> list[str]:
    return [uri for uri, count in now.items() if count > before.get(uri, 0) and is_uri(uri)]


def _hook_items(uris: list[str]) -> list[Item]:
    items = (_safely(f"hook lineage {uri!r}", _location, uri) for uri in uris)
    return [item for item in items if item is not None]


# -- runs ----------------------------------------------------------------------------------


@dataclass
class _Started:
    """What the start hook leaves for the end hook of the same try (same process)."""

    collector: tuple[dict[str, int], dict[str, int]] | None
    inputs: set[str]


_started: dict[TaskKey, _Started] = {}


def _code(ti: Any) -> dict[str, Any]:
    task = getattr(ti, "task", None)
    if task is None:
        return {}
    code: dict[str, Any] = {"operator": f"{type(task).__module__}.{type(task).__qualname__}"}
    func = getattr(task, "python_callable", None)
    if func is not None and hasattr(func, "__qualname__"):
        code["callable"] = f"{getattr(func, '__module__', '?')}.{func.__qualname__}"
    code.update(code_identity(getattr(getattr(task, "dag", None), "fileloc", None)))
    return code


_containers: Seen[str] = Seen()  # DAG runs this process has written (their container run)


def _context(ti: Any) -> Any:
    """The task's template context. The Task SDK builds it once per try and keeps it; asking for
    it again re-validates the DAG's params every time (a third of a millisecond), so the kept
    one is read when it is there."""
    kept = getattr(ti, "_cached_template_context", None)
    return kept if isinstance(kept, dict) else ti.get_template_context()


def _describe(b: Batch, ti: Any, settings: Settings, key: TaskKey, **fields: Any) -> None:
    """The task try, fully, and its container unless this process already wrote it."""
    if _containers.missing([key.container]):
        dag_run = None
        try:
            dag_run = _context(ti).get("dag_run")
        except Exception:  # noqa: BLE001 - an ORM task instance in the scheduler has no context
            dag_run = None
        b.run(
            key.container,
            job=key.dag_id,
            job_namespace=settings.namespace,
            kind="container",
            started_at=utc(getattr(dag_run, "start_date", None)),
            params={"dag_id": key.dag_id, "dag_run_id": key.run_id},
        )
    _task_run(b, settings, key, started_at=utc(getattr(ti, "start_date", None)), code=_code(ti), **fields)


def _task_run(b: Batch, settings: Settings, key: TaskKey, **fields: Any) -> None:
    b.run(
        key.id,
        job=f"{key.dag_id}.{key.task_id}",
        job_namespace=settings.namespace,
        kind="task",
        parent_id=key.container,
        params={
            "dag_id": key.dag_id,
            "task_id": key.task_id,
            "dag_run_id": key.run_id,
            "try_number": key.try_number,
            "map_index": key.map_index,
        },
        **fields,
    )


def _written(b: Batch, key: TaskKey) -> None:
    """Once a batch is in the outbox (delivered or waiting), its container run will land."""
    if b.delivered is not None:
        _containers.add([key.container])


def task_started(ti: Any) -> None:
    settings = load()
    if settings.disabled:
        return
    key = TaskKey.of(ti)
    started = _Started(collector=None, inputs=set())
    if "hooks" in settings.sources:
        storage_path.install()
        started.collector = _safely("hook lineage", _collector_counts)
    _started[key] = started
    # Made durable now, delivered with the task's end batch: one delivery per task, not two.
    with observer(settings).batch("task start", deliver=False) as b:
        _describe(b, ti, settings, key, status="running")
        if "inlets" in settings.sources:
            for item in _declared(_inlets(ti), as_input=True):
                if item.name in started.inputs:
                    continue
                started.inputs.add(item.name)
                if item.ref is not None:
                    # A REF the store has not seen (model:v9 before v9 exists) becomes an inexact edge.
                    b.used_ref(key.id, item.ref, exact=item.exact)
                else:
                    b.used(key.id, item.target, name=item.name)  # type: ignore[arg-type]  # an input has a target or a ref
    _written(b, key)


def task_finished(ti: Any, status: str, error: Any = None) -> None:
    settings = load()
    if settings.disabled:
        return
    key = TaskKey.of(ti)
    started = _started.pop(key, None)
    ended = utc(getattr(ti, "end_date", None)) or now()
    with observer(settings).batch(f"task {status}") as b:
        _describe(b, ti, settings, key, status=status, ended_at=ended, error=error_text(error))
        if getattr(ti, "task", None) is None or not hasattr(ti, "get_template_context"):
            return  # the scheduler's view of a task (no operator, no context): the status is all

        outputs: dict[str, Item] = {}
        if status == "succeeded":
            declared: dict[str, Item] = {}
            for item in _declared(getattr(ti.task, "outlets", None), as_input=False):
                declared.setdefault(item.name, item)
            if "outlets" in settings.sources:
                outputs.update(declared)
            if "events" in settings.sources:
                for uri, extra in _safely("outlet events", lambda: list(_outlet_events(ti, declared)), default=[]):
                    event_item = _safely(f"outlet event {uri!r}", _location, uri)
                    if event_item is not None:
                        item = outputs.get(event_item.name) or declared.get(event_item.name) or event_item
                        item.metadata.update(extra)
                        outputs.setdefault(item.name, item)

        hook_inputs: list[Item] = []
        if started is not None and started.collector is not None:
            counts = _safely("hook lineage", _collector_counts)
            if counts is not None:
                reads, writes = counts
                hook_inputs = _hook_items(_new_since(started.collector[0], reads))
                if status == "succeeded":
                    for item in _hook_items(_new_since(started.collector[1], writes)):
                        outputs.setdefault(item.name, item)

        # Inputs first: a location this try both read and wrote was read before it was written.
        seen = started.inputs if started is not None else set()
        for item in hook_inputs:
            if item.name in seen:
                continue
            seen.add(item.name)
            if item.name in outputs:
                b.used_ref(key.id, item.name, exact=False)  # its bytes now are the output's
            else:
                b.used(key.id, item.target, name=item.name)  # type: ignore[arg-type]  # an input has a target or a ref
        for item in outputs.values():
            out = item.output
            b.produced(
                key.id,
                item.target,
                name=item.name,
                type=item.type,
                metadata=item.metadata,
                aliases=out.aliases if out else (),
                tags=out.tags if out else (),
                description=out.description if out else None,
            )
        # A try that will be retried (status failed, Airflow's up_for_retry) finds the run unfinished.
        if status in ("succeeded", "failed", "skipped") and not _safely("DAG run hooks", _dag_run_hooks_here):
            outcome = _safely("DAG run outcome", _dag_run_outcome, ti)
            if outcome is not None:
                _container(b, settings, key.dag_id, key.run_id, outcome, ended=ended)
    _written(b, key)


# -- the DAG run's end --------------------------------------------------------------------

# Task instance states that end without a try of their own -> (headwater status, error). A
# task that never started because an upstream one failed did not fail itself: it is skipped, as
# Dagster and dbt record it, and the error names Airflow's state. A removed task instance was
# withdrawn from the DAG run: aborted (one that had already finished keeps its status).
NEVER_STARTED = {
    "skipped": ("skipped", None),
    "upstream_failed": ("skipped", "upstream_failed: not run because an upstream task failed"),
    "removed": ("aborted", "removed: the task is no longer in the DAG"),
}
_FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


def _state(value: Any) -> str:
    return str(getattr(value, "value", value))


def _dag_run_hooks_here() -> bool:
    """Whether the DAG run's hooks fire in this process, or in the scheduler it was forked from,
    with headwater's listener: `dag.test()` and `airflow dags test` run the DAG run's loop in the
    task's own process (the Task SDK's in-process supervisor); a task process forked from a
    scheduler that has used its listener manager (LocalExecutor) inherits that manager. Airflow
    core's manager is created here only in the first case, where Airflow creates it anyway."""
    manager = getattr(sys.modules.get("airflow.listeners.listener"), "get_listener_manager", None)
    if manager is None:
        return False
    supervisor = sys.modules.get("airflow.sdk.execution_time.supervisor")
    in_process = getattr(supervisor, "InProcessSupervisorComms", None)
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if not (in_process is not None and isinstance(comms, in_process)) and not manager.cache_info().currsize:
        return False
    from headwater.adapters.airflow import listener

    return bool(manager().pm.is_registered(listener))


def _dag_run_outcome(ti: Any) -> str | None:
    """The DAG run's status once every task instance in it has finished, decided the way the
    scheduler decides it (`DagRun.update_state`): failed when an effective leaf failed or is
    upstream_failed, succeeded when every one succeeded or was skipped; None until then.

    Only a task with no downstream task asks, through the Task SDK: a task with downstream tasks
    finishes before they start, so it is not the last. One request counts the unfinished task
    instances; a second, when there are none, reads their states."""
    dag = ti.task.dag
    if ti.task.downstream_task_ids:
        return None
    from airflow.sdk import TaskInstanceState
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    unfinished = ["null"] + [state.value for state in TaskInstanceState if state.value not in _FINISHED]
    if RuntimeTaskInstance.get_ti_count(dag_id=ti.dag_id, run_ids=[ti.run_id], states=unfinished):
        return None
    states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id) or {}
    if not states or any(_state(value) not in _FINISHED for value in states.values()):
        return None
    leaves = {task.task_id for task in dag.tasks if _effective_leaf(dag, task)} or {
        task.task_id for task in dag.tasks if not task.downstream_task_ids
    }
    leaf_states = [_state(value) for key, value in states.items() if _task_id(key, dag.task_ids) in leaves]
    leaf_states = [state for state in leaf_states if state != "removed"]
    if any(state in ("failed", "upstream_failed") for state in leaf_states):
        return "failed"
    if all(state in ("success", "skipped") for state in leaf_states):
        return "succeeded"
    return None


def _task_id(key: str, task_ids: Iterable[str]) -> str:
    """The task of a `get_task_states` key: `task_id`, or `task_id_<map index>` for a mapped one."""
    if key in task_ids:
        return key
    task_id, _, index = key.rpartition("_")
    return task_id if index.isdigit() else key


def _effective_leaf(dag: Any, task: Any) -> bool:
    """As the scheduler counts leaves: teardown tasks count only with on_failure_fail_dagrun."""
    for downstream_id in task.downstream_task_ids:
        downstream = dag.get_task(downstream_id)
        if not downstream.is_teardown or downstream.on_failure_fail_dagrun:
            return False
    return not task.is_teardown or task.on_failure_fail_dagrun


def _container(
    b: Batch,
    settings: Settings,
    dag_id: str,
    airflow_run_id: str,
    status: str,
    *,
    started: Any = None,
    ended: Any,
    error: str | None = None,
) -> None:
    b.run(
        dag_run_id(dag_id, airflow_run_id),
        job=dag_id,
        job_namespace=settings.namespace,
        kind="container",
        status=status,  # type: ignore[arg-type]  # one of the statuses above
        started_at=utc(started),
        ended_at=utc(ended) if status != "running" else None,
        error=error,
        params={"dag_id": dag_id, "dag_run_id": airflow_run_id},
    )


def dag_run_changed(
    dag_id: str,
    airflow_run_id: str,
    status: str,
    started: Any,
    ended: Any,
    msg: Any,
    never_started: Iterable[Any] = (),
) -> None:
    """The DAG run's status, and, as it ends, a run for each task instance that never started
    (`never_started`: task_id, map_index, try_number, state, end_date of each, as NEVER_STARTED maps)."""
    settings = load()
    if settings.disabled:
        return
    with observer(settings).batch(f"DAG run {status}") as b:
        error = str(msg)[:4000] if status == "failed" and msg else None
        _container(b, settings, dag_id, airflow_run_id, status, started=started, ended=ended, error=error)
        for ti in never_started:
            ti_status, ti_error = NEVER_STARTED[ti.state]
            key = TaskKey(dag_id, str(ti.task_id), airflow_run_id, int(ti.try_number), int(ti.map_index))
            _task_run(b, settings, key, status=ti_status, ended_at=utc(ti.end_date), error=ti_error)
