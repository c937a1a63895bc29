"""What Dagster's event log tells headwater: step and run statuses, and materializations that did
not go through an IO manager (`MaterializeResult`, `deps=[...]`, assets written by the op itself).

Used by the IO manager's teardown (statuses of the steps it saw, right after they end), by
`record_run` (one whole run, for scripts and tests) and by `headwater_sensor` (every run that
ends, in the Dagster daemon).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
from dagster import DagsterEventType as T

from headwater.adapters.dagster import _common as common
from headwater.adapters.dagster import deps
from headwater.models import RunStatus
from headwater.observe import now, one_line, utc
from headwater.observe.outcomes import Outcome, status_from_children
from headwater.refs import is_uri

log = logging.getLogger("headwater")

STEP_EVENTS = {T.STEP_START, T.STEP_RESTARTED, T.STEP_UP_FOR_RETRY, T.STEP_SUCCESS, T.STEP_FAILURE, T.STEP_SKIPPED}
RUN_END: dict[T, RunStatus] = {T.RUN_SUCCESS: "succeeded", T.RUN_FAILURE: "failed", T.RUN_CANCELED: "aborted"}
RUN_EVENTS = {T.RUN_START, *RUN_END}


@dataclass
class _Materialization:
    step_key: str
    attempt: int
    storage_id: int
    entry: Any


def _is_wrapper(cls_name: str) -> bool:
    """Dagster's own wrappers around the user's exception (`.cause` holds the user's)."""
    return cls_name.startswith("Dagster") or cls_name.startswith("RetryRequested")


def _error(info: Any) -> str | None:
    """One line naming the user's exception (Dagster wraps it in a step execution error)."""
    if info is None:
        return None
    while getattr(info, "cause", None) is not None and _is_wrapper(info.cls_name or ""):
        info = info.cause
    text = (info.message or "").strip().splitlines()
    return text[0] if text else info.cls_name


def read_steps(records: Iterable[Any]) -> tuple[dict[tuple[str, int], Outcome], list[_Materialization]]:
    """Each step attempt's outcome, and the materializations, from a run's records in order."""
    outcomes: dict[tuple[str, int], Outcome] = {}
    attempts: dict[str, int] = {}
    materializations: list[_Materialization] = []
    for record in records:
        entry = record.event_log_entry
        event = entry.dagster_event
        key = entry.step_key
        if event is None or key is None:
            continue
        attempt = attempts.get(key, 0)
        at = utc(entry.timestamp)
        kind = event.event_type
        if kind == T.ASSET_MATERIALIZATION:
            materializations.append(_Materialization(key, attempt, record.storage_id, entry))
            continue
        if kind not in STEP_EVENTS:
            continue
        outcome = outcomes.setdefault((key, attempt), Outcome())
        if kind in (T.STEP_START, T.STEP_RESTARTED):
            outcome.started_at = outcome.started_at or at
        elif kind == T.STEP_UP_FOR_RETRY:
            outcome.status, outcome.ended_at, outcome.final = "failed", at, False
            outcome.error = _error(getattr(event.event_specific_data, "error", None)) or "retry requested"
            attempts[key] = attempt + 1
        elif kind == T.STEP_SUCCESS:
            outcome.status, outcome.ended_at = "succeeded", at
        elif kind == T.STEP_FAILURE:
            outcome.status, outcome.ended_at = "failed", at
            outcome.error = _error(getattr(event.event_specific_data, "error", None))
        elif kind == T.STEP_SKIPPED:
            outcome.status, outcome.ended_at = "skipped", at
    return outcomes, materializations


def _plan_steps(instance: Any, dagster_run: Any) -> list[str] | None:
    if dagster_run.step_keys_to_execute:
        return list(dagster_run.step_keys_to_execute)
    if dagster_run.execution_plan_snapshot_id:
        snap = instance.get_execution_plan_snapshot(dagster_run.execution_plan_snapshot_id)
        return list(snap.step_keys_to_execute)
    return None


def _attempts(outcomes: dict[tuple[str, int], Outcome]) -> list[tuple[str, Outcome]]:
    return [(key, outcome) for (key, _), outcome in sorted(outcomes.items())]


def _records(instance: Any, dagster_run_id: str, of_type: set[Any]) -> list[Any]:
    return list(instance.get_records_for_run(dagster_run_id, of_type=of_type, limit=None).records)


def record_step_outcomes(
    instance: Any, dagster_run: Any, steps: Iterable[tuple[str, int]], *, uri: str | None, job_namespace: str
) -> None:
    """Statuses of the step attempts this process saw, and the Dagster run's when its steps
    decide it (a failed step; or every planned step ended). Called when the IO manager is torn
    down: at the end of an in-process run, at the end of each step in a multiprocess worker."""
    with common.observer(uri).batch("step statuses") as b:
        outcomes, _ = read_steps(_records(instance, dagster_run.run_id, STEP_EVENTS))
        for key, attempt in sorted(steps):
            outcome = outcomes.get((key, attempt))
            if outcome is not None and outcome.status != "running":
                b.run(
                    common.step_id(dagster_run.run_id, key, attempt),
                    status=outcome.status,
                    ended_at=outcome.ended_at,
                    error=outcome.error,
                )
        status, error = status_from_children(_attempts(outcomes), _plan_steps(instance, dagster_run))
        if status is not None:
            ended = [o.ended_at for o in outcomes.values() if o.ended_at is not None]
            b.run(
                common.container_id(dagster_run.run_id),
                status=status,
                ended_at=max(ended) if ended else now(),
                error=error,
            )


def record_run(
    instance: dg.DagsterInstance,
    dagster_run_id: str,
    *,
    asset_graph: Any = None,
    uri: str | None = None,
    job_namespace: str = "dagster",
    dagster_url: str | None = None,
) -> None:
    """Record one Dagster run from its event log: the run and every step attempt with their
    statuses, and the materializations that bypassed HeadwaterIOManager (with their `deps`).

    Idempotent (deterministic run ids, terminal statuses stick), so it may follow what the IO
    manager recorded. `asset_graph` (e.g. `defs.resolve_asset_graph()`) supplies each asset's
    `headwater/uri` and its deps; without it materializations are named by asset key and their
    deps are not recorded. Never raises.
    """
    with common.observer(uri).batch(f"run {dagster_run_id}") as b:
        dagster_run = instance.get_run_by_id(dagster_run_id)
        if dagster_run is None:
            return
        records = _records(instance, dagster_run_id, STEP_EVENTS | RUN_EVENTS | {T.ASSET_MATERIALIZATION})
        outcomes, materializations = read_steps(records)
        started: datetime | None = None
        ended: datetime | None = None
        status: RunStatus | None = None
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is not None and event.event_type == T.RUN_START:
                started = utc(record.event_log_entry.timestamp)
            elif event is not None and event.event_type in RUN_END:
                status, ended = RUN_END[event.event_type], utc(record.event_log_entry.timestamp)
        error = None
        if status is None:
            status, error = status_from_children(_attempts(outcomes), _plan_steps(instance, dagster_run))
        elif status == "failed":
            error = status_from_children(_attempts(outcomes), None)[1]
        run = common.DagsterRun(
            dagster_run_id,
            dagster_run.job_name,
            job_namespace,
            dagster_run.tags.get(common.PARTITION_TAG),
            common.run_link(dagster_url, dagster_run_id),
        )
        run.container(b, status=status, started_at=started, ended_at=ended, error=error)
        run_over = ended is not None
        for (key, attempt), outcome in sorted(outcomes.items()):
            step_status, step_error = outcome.status, outcome.error
            if step_status == "running" and run_over:  # the run ended without this step's end
                step_status = "aborted" if status == "aborted" else "failed"
                step_error = f"the Dagster run ended ({status}) before this step did"
            run.step(
                b,
                key,
                attempt,
                status=step_status,
                started_at=outcome.started_at,
                ended_at=outcome.ended_at or (ended if run_over else None),
                error=step_error,
            )
        try:
            _record_materializations(b, instance, dagster_run_id, materializations, asset_graph)
        except Exception as err:  # noqa: BLE001 - the run and its steps must survive this
            log.warning("headwater: dagster materializations of run %s not recorded: %s", dagster_run_id, one_line(err))


def _node(asset_graph: Any, key: Any) -> Any:
    if asset_graph is None or not asset_graph.has(key):
        return None
    return asset_graph.get(key)


def _record_materializations(
    b: Any, instance: Any, dagster_run_id: str, found: list[_Materialization], asset_graph: Any
) -> None:
    """The materializations HeadwaterIOManager did not record (no headwater/digest; the IO
    manager records its outputs' deps itself): per step attempt, first the deps each asset
    declares (the partitions its partition mapping reads; edges are idempotent, so inputs the IO
    manager loaded are the same versions), then each version, at its `path`/`uri` metadata or its
    `headwater/uri`, made from its own deps (an `AssetSpec`'s `deps` in a multi-asset)."""
    steps: dict[tuple[str, int], list[tuple[_Materialization, Any]]] = {}
    for item in found:
        materialization = item.entry.asset_materialization
        if materialization is not None and common.DIGEST_KEY not in materialization.metadata:
            steps.setdefault((item.step_key, item.attempt), []).append((item, materialization))
    for (step_key, attempt), written in steps.items():
        run = common.step_id(dagster_run_id, step_key, attempt)
        read: dict[tuple[Any, str | None], list[str]] = {}  # (dep, partition) -> REFs
        declared: list[list[tuple[Any, str | None]] | None] = []
        for item, materialization in written:
            key, partition = materialization.asset_key, materialization.partition
            node = _node(asset_graph, key)
            mine: list[tuple[Any, str | None]] = []
            for parent in sorted(node.parent_keys if node is not None else (), key=lambda k: k.to_user_string()):
                parent_node = _node(asset_graph, parent)
                metadata = parent_node.metadata if parent_node is not None else None
                partitions = (
                    deps.parent_partitions(instance, asset_graph, key, partition, parent)
                    if metadata is not None
                    else None
                )
                for one in partitions if partitions is not None else [None]:
                    if (parent, one) not in read:
                        parts = None if one is None else [one]
                        read[(parent, one)] = deps.record(
                            b, instance, run, parent, metadata, parts, before=item.storage_id
                        )
                    mine.append((parent, one))
            declared.append(mine if node is not None else None)
        for (_, materialization), own in zip(written, declared, strict=True):
            _record_version(b, run, materialization, asset_graph, deps.made_from(read.items(), own))


def _record_version(b: Any, run: str, materialization: Any, asset_graph: Any, inputs: list[str]) -> None:
    key, partition = materialization.asset_key, materialization.partition
    node = _node(asset_graph, key)
    definition = node.metadata if node is not None else {}
    name = common.partition_name(common.asset_name(key.path, definition), partition)
    location = common.location_of(materialization.metadata)
    uri = common.uri_of(definition)
    if location is None and uri is not None and is_uri(uri):
        location = common.partition_name(uri, partition)
    if location is None:
        log.warning(
            "headwater: dagster materialization of %s not recorded: no `path` or `uri` metadata and no %s",
            name,
            common.URI_KEY,
        )
        return
    metadata: dict[str, Any] = {"dagster/asset_key": key.to_user_string()}
    if partition is not None:
        metadata["dagster/partition"] = partition
    b.produced(run, location, name=name, metadata=metadata, type=common.type_of(definition), inputs=inputs)


def headwater_sensor(
    *,
    name: str = "headwater",
    uri: str | None = None,
    job_namespace: str = "dagster",
    dagster_url: str | None = None,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    runs_per_tick: int = 50,
) -> dg.SensorDefinition:
    """A sensor (run by the Dagster daemon) that records every run ending after its first tick:
    the final status of the run and of its steps, and what bypassed the IO manager. Its cursor is
    one storage id per run-end event type; the first tick only sets it (as run status sensors do)."""
    kinds = list(RUN_END)

    @dg.sensor(name=name, minimum_interval_seconds=minimum_interval_seconds, default_status=default_status)
    def _headwater(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        try:
            instance = context.instance
            cursor: dict[str, str | None] = json.loads(context.cursor) if context.cursor else {}
            first = not cursor
            repository = getattr(context, "repository_def", None)
            graph = repository.asset_graph if repository is not None else None
            recorded = 0
            for kind in kinds:
                if first:  # start from now: the newest record's cursor (None: no such event yet)
                    newest = instance.fetch_run_status_changes(kind, limit=1, ascending=False)
                    cursor[kind.value] = newest.cursor if newest.records else None
                    continue
                result = instance.fetch_run_status_changes(
                    kind, limit=runs_per_tick, cursor=cursor.get(kind.value), ascending=True
                )
                for record in result.records:
                    record_run(
                        instance,
                        record.event_log_entry.run_id,
                        asset_graph=graph,
                        uri=uri,
                        job_namespace=job_namespace,
                        dagster_url=dagster_url,
                    )
                    recorded += 1
                if result.records:
                    cursor[kind.value] = result.cursor
            context.update_cursor(json.dumps(cursor, sort_keys=True))
            return dg.SkipReason("headwater: started" if first else f"headwater: recorded {recorded} run(s)")
        except Exception as err:  # noqa: BLE001 - a sensor error must not stop the daemon's others
            log.warning("headwater: dagster sensor tick not recorded: %s", one_line(err))
            return dg.SkipReason(f"headwater: {type(err).__name__}")

    return _headwater
