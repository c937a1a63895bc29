"""The entry points of Prefect's state hooks: a task run's or flow run's Running and its end,
and `log_output`. Everything here runs inside a Prefect state hook (or the whole-flow wrapper in
`headwater.adapters.prefect.whole_flow`), in the engine's process and run context.

A flow run is written twice: at Running (the container, status running, its parameters and
inputs) and at its end. A task run is written once, at its end (status, times, parameters, error,
inputs, outputs), to keep the cost per task low; its inputs are hashed at Running, so a task that
rewrites its input records what it read. What one hook leaves for the next is in
`state.memory`; what Prefect's objects mean is in `translate`; recording goes through
`headwater.observe` batches, which keep the time budget and fall back to the outbox.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from headwater import config
from headwater.adapters.prefect import translate
from headwater.adapters.prefect.state import Scope, memory
from headwater.adapters.prefect.translate import ORCHESTRATOR
from headwater.models import RunStatus
from headwater.observe import (
    Batch,
    Location,
    Observer,
    find,
    guard,
    guarding,
    one_line,
    outputs_in,
    short,
    summarize_params,
    utc,
    warn_once,
)
from headwater.observe.stored import produced_outputs
from headwater.refs import normalize_name

log = logging.getLogger("headwater")

__all__ = [
    "ORCHESTRATOR",
    "Scope",
    "container_finished",
    "flow_finished",
    "flow_running",
    "guarded",
    "log_output",
    "task_finished",
    "task_running",
]


def observer_of(scope: Scope) -> Observer | None:
    """The scope's observer; loading its block may fail (one warning line, nothing recorded)."""
    try:
        return scope.observer()
    except Exception as err:  # noqa: BLE001
        log.warning("headwater: prefect %s not loaded, nothing recorded: %s", scope.describe(), one_line(err))
        return None


def task_running(scope: Scope, task: Any, task_run: Any, state: Any, parameters: dict[str, Any] | None) -> None:
    """Hash the inputs now, as the task starts to read them; they are delivered with its end.

    One outbox batch per task run (its end) keeps the cost per task low; a task run therefore
    appears in headwater when it ends, with the inputs as they were when it started.
    """
    observer = observer_of(scope)
    if observer is None:
        return
    with guarding(f"prefect task run {task_run.name!r} start"):
        info = translate.task_info(scope, task, task_run)
        if parameters is None:
            from prefect.context import TaskRunContext

            ctx = TaskRunContext.get()
            parameters = ctx.parameters if ctx and ctx.task_run and ctx.task_run.id == task_run.id else {}
        params = parameters or {}
        info.params = summarize_params(params)
        info.started_at = utc(task_run.start_time) or utc(state.timestamp)
        memory.open_runs.put(task_run.id, info)
        if info.flow_run_id and info.flow_run_id not in memory.tracked_flow_runs:
            memory.opened_flow_runs.put(info.flow_run_id, scope)  # whole_flow closes it with the flow
        inputs = observer.collect()  # written with the end batch
        deps = list(getattr(task, "asset_deps", None) or ())
        translate.record_inputs(inputs, info.rid, params, task_run.task_inputs, deps, scope.ignore_inputs)
        info.inputs = inputs.events


def task_finished(scope: Scope, task: Any, task_run: Any, state: Any, parameters: dict[str, Any] | None = None) -> None:
    status = translate.status_of(state)
    if status is None or status == "running":
        return
    observer = observer_of(scope)
    if observer is None:
        return
    refs: list[tuple[str, str]] = []
    result: Any = None
    with observer.batch(f"task run {task_run.name!r} end") as b:
        info = memory.open_runs.pop(task_run.id) or translate.task_info(scope, task, task_run)
        if info.params is None and parameters is not None:
            info.params = summarize_params(parameters)
        if info.flow_run_id and info.flow_run_id not in memory.tracked_flow_runs:
            # Tracked alone inside an untracked flow: the container is upserted by its first child
            # and closed by whole_flow when the flow run ends.
            memory.opened_flow_runs.put(info.flow_run_id, scope)
            flow_name = getattr(getattr(translate.flow_context(), "flow", None), "name", None)
            b.run(info.parent_id or "", job=flow_name, job_namespace=info.job_namespace, kind="container")
        b.run(
            info.rid,
            **info.fields(),
            status=status,
            params=info.params,
            started_at=info.started_at or utc(task_run.start_time),
            ended_at=utc(state.timestamp),
            error=translate.error_of(state),
        )
        b.events.extend(info.inputs)
        outputs: list[Location] = []
        if status == "succeeded":
            result = translate.result_of(state)
            outputs.extend(outputs_in(result))
            outputs.extend(translate.asset_outputs(task, task_run.id))
        outputs.extend(memory.logged_outputs.pop(task_run.id) or ())
        refs = produced_outputs(b, info.rid, outputs)
    if b.delivered is not None and refs:  # written (delivered or queued): downstream can link to it
        memory.recorded_outputs.put(task_run.id, tuple(refs))
        if info.flow_run_id and status == "succeeded" and translate.unlinkable(state, result):
            warn_unlinkable(task.name)


def warn_unlinkable(task_name: str) -> None:
    """Say once per task name (per process) that a task given this result is not linked to its outputs."""
    warn_once(
        f"headwater: prefect task {task_name!r} returned a small int, a bool or None, which Prefect cannot "
        "tell apart from the same value returned elsewhere, so a task given this result is not linked to "
        f"what {task_name!r} wrote: return the path or a headwater.Output (or log_output the file and "
        "return something else), or pass the path to the task that reads it"
    )


def flow_running(scope: Scope, flow: Any, flow_run: Any, state: Any) -> None:
    memory.tracked_flow_runs.put(flow_run.id, scope)  # before anything: the flow's tasks look it up
    observer = observer_of(scope)
    if observer is None:
        return
    with observer.batch(f"flow run {flow_run.name!r} start") as b:
        info = translate.flow_info(scope, flow, flow_run)
        params = memory.flow_parameters.pop(flow_run.id)
        if params is None:
            # Only Prefect's JSON form: paths are strings there, but objects are dicts whose
            # strings are not parameters (a Version's entries), so look at strings and lists only.
            params = {k: v for k, v in (flow_run.parameters or {}).items() if isinstance(v, (str, list))}
            info.params = summarize_params(flow_run.parameters)
        else:
            info.params = summarize_params(params)
        memory.open_runs.put(flow_run.id, info)
        b.run(
            info.rid,
            **info.fields(),
            status="running",
            started_at=utc(flow_run.start_time) or utc(state.timestamp),
            params=info.params,
        )
        translate.record_inputs(b, info.rid, params, None, [], scope.ignore_inputs)


def flow_finished(scope: Scope, flow: Any, flow_run: Any, state: Any, *, tracked: bool = True) -> None:
    status = translate.status_of(state)
    if status is None or status == "running":
        return
    observer = observer_of(scope)
    if observer is None:
        return
    refs: list[tuple[str, str]] = []
    with observer.batch(f"flow run {flow_run.name!r} end") as b:
        info = memory.open_runs.pop(flow_run.id) or translate.flow_info(scope, flow, flow_run)
        outputs: list[Location] = []
        if status == "succeeded" and tracked:
            outputs.extend(outputs_in(translate.result_of(state)))
        outputs.extend(memory.logged_outputs.pop(flow_run.id) or ())
        error = translate.error_of(state)
        b.run(
            info.rid,
            **info.fields(),
            status=status,
            params=info.params,
            started_at=utc(flow_run.start_time),
            ended_at=utc(state.timestamp),
            error=error,
        )
        refs = produced_outputs(b, info.rid, outputs)
        end_open_tasks(b, flow_run.id, state, status, error)
    if b.delivered is not None and refs:
        memory.recorded_outputs.put(flow_run.id, tuple(refs))


def container_finished(scope: Scope, flow: Any, flow_run: Any, state: Any) -> None:
    """The end of an untracked flow run whose container a `tracker.task` run in it opened: its
    status, times and error (the flow's own parameters and result are not tracked)."""
    flow_finished(scope, flow, flow_run, state, tracked=False)


def end_open_tasks(b: Batch, flow_run_id: Any, state: Any, status: RunStatus, error: str | None) -> None:
    """A crashed or cancelled flow run's process is going away: its task runs that started will
    never report an end, so they end with it."""
    if not (state.is_crashed() or state.is_cancelling() or state.is_cancelled()):
        return
    why = f"flow run {state.name.lower()}"
    for run_uuid, task in memory.open_runs.items():
        if task.kind == "task" and task.flow_run_id == flow_run_id and memory.open_runs.pop(run_uuid):
            b.run(
                task.rid,
                **task.fields(),
                status=status,
                params=task.params,
                started_at=task.started_at,
                ended_at=utc(state.timestamp),
                error=f"{why}: {error}" if error else why,
            )
            b.events.extend(task.inputs)


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
        if run is None or run.id not in memory.open_runs:
            log.warning(
                "headwater: log_output(%s) outside a tracked Prefect task or flow run: not recorded", short(target)
            )
            return target
        found = [item for item in find(target) if isinstance(item, Location)]
        if not found:
            log.warning("headwater: log_output(%s): not a path, URI or headwater.Output: not recorded", short(target))
            return target
        for item in found:
            named = normalize_name(name) if name else item.name
            given = item.metadata if metadata is None else metadata
            memory.logged_outputs.append(
                run.id, replace(item, name=named, type=type or item.type, metadata=given, explicit=True)
            )
    except Exception as err:  # noqa: BLE001
        log.warning("headwater: log_output not recorded: %s", one_line(err))
    return target


# -- every hook's translation passes here ---------------------------------------------------------


def guarded(what: str, fn: Any, *args: Any) -> None:
    """Run one hook's translation; anything it raises is one warning line (every hook passes here)."""
    guard(f"prefect {what}", fn, *args)
