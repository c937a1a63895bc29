"""Whole-flow tracking: give every task and subflow run inside a tracked flow run headwater's hooks.

Prefect has no global task hook, and a task's parameters and result cannot be fetched after the
run unless persisted, so headwater must be called while the run is still in the engine. Hooks
added with `with_options` reach only the task objects a user passes to `tracker.task`; the tasks a
tracked flow calls are the user's own, module-level objects, which headwater does not copy or
mutate. Instead, on the first `tracker.flow(...)` / `tracker.task(...)`, and only for the Prefect
versions verified (`patches`), headwater wraps exactly these five methods, once per process:

- `prefect.task_engine.SyncTaskRunEngine.call_hooks` and `AsyncTaskRunEngine.call_hooks`: the
  methods with which the task engine runs a task's own state hooks, in the task run's thread and
  context. The wrapper first calls headwater's task hook with the same `(task, task_run, state)`
  when the task run belongs to a tracked flow run (looked up by `task_run.flow_run_id` in a
  lock-guarded map filled by the tracked flow's Running hook), then the original method.
  Direct calls, `.submit`, `.map`, nested tasks and the thread-pool runner all pass through it.
- `prefect.flow_engine.FlowRunEngine.call_hooks` and `AsyncFlowRunEngine.call_hooks`: the same
  for subflow runs. A subflow entering Running while its caller's FlowRunContext is still current
  is tracked with its caller's tracker, and its caller becomes its parent run. For a flow tracked
  with `tracker.flow`, the wrapper only keeps the engine's parameters (Python objects; a hook
  receives Prefect's JSON form) for that flow's own Running hook. An untracked flow run in which
  a `tracker.task` run opened the container is closed with the flow run's final state.
- `prefect.context.AssetContext.emit_events`: called as a materializing task's asset context
  closes; the wrapper copies what `add_asset_metadata()` gathered for a tracked task run, so it
  becomes the metadata of the asset's version.

Each wrapper costs untracked runs one or two dictionary lookups, never raises (one warning line), and the
original method always runs with its original arguments. On other Prefect versions nothing is
wrapped: a tracked flow then records its own run and the tasks tracked with `tracker.task`.
"""

from __future__ import annotations

import logging
from typing import Any

from headwater import config
from headwater.adapters.prefect import hooks, translate
from headwater.adapters.prefect.state import memory
from headwater.observe import one_line
from headwater.observe.install import Patches, Target, awaiting_first, calling_first

log = logging.getLogger("headwater")


def _version() -> str:
    import prefect

    return str(prefect.__version__)


def _targets() -> list[Target]:
    from prefect.context import AssetContext
    from prefect.flow_engine import AsyncFlowRunEngine, FlowRunEngine
    from prefect.task_engine import AsyncTaskRunEngine, SyncTaskRunEngine

    return [
        (SyncTaskRunEngine, "call_hooks", False, calling_first(_task_event)),
        (AsyncTaskRunEngine, "call_hooks", True, awaiting_first(_task_event, _task_wanted)),
        (FlowRunEngine, "call_hooks", False, calling_first(_flow_event)),
        (AsyncFlowRunEngine, "call_hooks", True, awaiting_first(_flow_event, _flow_wanted)),
        (AssetContext, "emit_events", False, calling_first(_asset_metadata)),
    ]


# Verified against 3.9.1; the call_hooks/emit_events shapes are unchanged since 3.4.
patches = Patches(
    "Prefect",
    "whole-flow tracking",
    _version,
    ((3, 4), (3, 10)),
    _targets,
    ["self", "state"],
    "tracked flows record their own runs and tasks tracked with tracker.task",
)


def install() -> bool:
    """Wrap the five methods (once per process). False, with one warning, on unsupported versions."""
    return patches.install()


def _task_wanted(engine: Any, state: Any = None) -> bool:
    try:
        state = state if state is not None else engine.state
        task_run = engine.task_run
        if task_run is None or config.disabled():
            return False
        if translate.own_scope(engine.task) is not None:
            return translate.status_of(state) == "skipped"
        return task_run.flow_run_id is not None and task_run.flow_run_id in memory.tracked_flow_runs
    except Exception:  # noqa: BLE001
        return False


def _task_event(engine: Any, state: Any = None) -> None:
    try:
        state = state if state is not None else engine.state
        if not _task_wanted(engine, state):
            return
        task, task_run = engine.task, engine.task_run
        own = translate.own_scope(task)
        if own is not None:
            # Tracked with tracker.task: its own hooks see Running/Completed/Failed; Prefect runs
            # no hook for a task whose upstream failed (NotReady), so that one is recorded here.
            hooks.guarded("task run", hooks.task_finished, own, task, task_run, state, engine.parameters)
            return
        scope = memory.tracked_flow_runs.get(task_run.flow_run_id)
        if scope is None:
            return
        if state.is_running():
            hooks.guarded("task run", hooks.task_running, scope, task, task_run, state, engine.parameters or {})
        else:
            hooks.guarded("task run", hooks.task_finished, scope, task, task_run, state, engine.parameters)
    except Exception as err:  # noqa: BLE001
        log.warning("headwater: prefect task run not recorded: %s", one_line(err))


def _flow_target(engine: Any, state: Any) -> tuple[Any, Any] | None:
    """(hook, scope) that records this flow run's state, or None when it is not tracked."""
    flow, flow_run = engine.flow, engine.flow_run
    if flow_run is None or config.disabled():
        return None
    if translate.own_scope(flow) is not None:
        # Tracked with tracker.flow: its own hooks record it; they only lack the parameters as
        # Python objects (a hook gets Prefect's JSON form), kept here for them.
        if state.is_running() and engine.parameters:
            memory.flow_parameters.put(flow_run.id, dict(engine.parameters))
        return None
    running = state.is_running()
    scope = memory.tracked_flow_runs.get(flow_run.id)
    if scope is None and running:
        ctx = translate.flow_context()  # the caller's, while a subflow enters Running
        caller = getattr(getattr(ctx, "flow_run", None), "id", None)
        if caller is not None and caller != flow_run.id:
            scope = memory.tracked_flow_runs.get(caller)
    if scope is not None:
        return (hooks.flow_running if running else hooks.flow_finished), scope
    if not running and translate.status_of(state) is not None:
        # An untracked flow run whose container a tracker.task run opened: closed with its end.
        scope = memory.opened_flow_runs.get(flow_run.id)
        if scope is not None:
            return hooks.container_finished, scope
    return None


def _flow_wanted(engine: Any, state: Any = None) -> bool:
    try:
        return _flow_target(engine, state if state is not None else engine.state) is not None
    except Exception:  # noqa: BLE001
        return False


def _flow_event(engine: Any, state: Any = None) -> None:
    try:
        state = state if state is not None else engine.state
        target = _flow_target(engine, state)
        if target is None:
            return
        hook, scope = target
        if hook is hooks.container_finished:
            memory.opened_flow_runs.pop(engine.flow_run.id)
        hooks.guarded("flow run", hook, scope, engine.flow, engine.flow_run, state)
    except Exception as err:  # noqa: BLE001
        log.warning("headwater: prefect flow run not recorded: %s", one_line(err))


def _asset_metadata(context: Any, state: Any = None) -> None:
    """What add_asset_metadata() gathered for a tracked task run, kept for its outputs' versions."""
    try:
        if context.materialization_metadata and context.task_run_id in memory.open_runs:
            memory.asset_metadata.put(
                context.task_run_id, {key: dict(value) for key, value in context.materialization_metadata.items()}
            )
    except Exception:  # noqa: BLE001 - metadata is a nicety; the version is recorded without it
        pass
