"""What Prefect's objects mean to headwater: statuses, errors, runs, and the inputs and outputs
found in parameters, results, assets and log_output() calls. Called by `hooks`."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from headwater.adapters.prefect.state import RunInfo, Scope, memory
from headwater.api import run_id
from headwater.errors import HeadwaterError
from headwater.models import RunStatus
from headwater.observe import Batch, Location, VersionRef, find, function_code, one_line, short, used_location
from headwater.refs import normalize_name

log = logging.getLogger("headwater")

ORCHESTRATOR = "prefect"


def own_scope(obj: Any) -> Scope | None:
    """The scope of a flow or task tracked with tracker.flow / tracker.task: its hooks record it.

    Found through its on_running hooks, so copies made with `with_options` keep it."""
    for hook in getattr(obj, "on_running_hooks", None) or ():
        scope = getattr(hook, "headwater_scope", None)
        if isinstance(scope, Scope):
            return scope
    return None


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


def result_of(state: Any) -> Any:
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


def unlinkable(state: Any, result: Any) -> bool:
    """True when Prefect records no link from this result to the tasks given it.

    Prefect finds a task's upstream runs by the identity of the objects passed to it: each result
    is kept under its `id()` (`prefect.utilities.engine.link_state_to_result`). None, bools,
    Ellipsis and the ints from -5 to 256 are shared objects in CPython (interned), so Prefect skips
    them and sets `state_details.untrackable_result`; a downstream task's `task_inputs` then name
    no upstream run. Nested values (a tuple holding a 3) set the flag too, but the container
    itself is linked: only the result as a whole counts here.
    """
    if not getattr(state.state_details, "untrackable_result", False):
        return False
    return (
        result is None
        or result is Ellipsis
        or result is NotImplemented
        or (isinstance(result, int) and -5 <= result <= 256)
    )


def error_of(state: Any) -> str | None:
    """One line saying why a run did not succeed: its exception, else Prefect's state message."""
    if status_of(state) not in ("failed", "aborted", "skipped"):
        return None
    text = ""
    try:
        exc = result_of(state)
        # Prefect's own wrappers (FailedRun, CrashedRun, ...) only repeat the state message.
        if isinstance(exc, BaseException) and not type(exc).__module__.startswith("prefect."):
            text = one_line(exc)
    except Exception:  # noqa: BLE001 - the state message below says enough
        pass
    if not text:
        lines = (state.message or state.name or "").strip().splitlines()
        text = lines[0] if lines else ""
    return text[:1000] or None


def links_of(run: Any) -> dict[str, str]:
    try:
        from prefect.utilities.urls import url_for

        url = url_for(run)
    except Exception:  # noqa: BLE001
        url = None
    return {"prefect": url} if url else {}


def flow_context() -> Any:
    from prefect.context import FlowRunContext

    return FlowRunContext.get()


def task_info(scope: Scope, task: Any, task_run: Any) -> RunInfo:
    ctx = flow_context()
    flow_name = getattr(getattr(ctx, "flow", None), "name", None)
    flow_run_id = task_run.flow_run_id
    return RunInfo(
        rid=run_id(ORCHESTRATOR, task_run.id),
        job=f"{flow_name}.{task.name}" if flow_name else task.name,
        kind="task",
        job_namespace=scope.settings().job_namespace,
        parent_id=run_id(ORCHESTRATOR, flow_run_id) if flow_run_id else None,
        flow_run_id=flow_run_id,
        code=function_code(getattr(task, "fn", None)),
        links=links_of(task_run),
    )


def flow_info(scope: Scope, flow: Any, flow_run: Any) -> RunInfo:
    known = memory.open_runs.get(flow_run.id)
    if known is not None:  # a retry: the parent was found on the first attempt
        return known
    ctx = flow_context()
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
        code=function_code(getattr(flow, "fn", None)),
        links=links_of(flow_run),
    )


def record_inputs(
    b: Batch,
    rid: str,
    params: dict[str, Any],
    task_inputs: dict[str, Any] | None,
    asset_deps: list[Any],
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
        found = list(find(value))
        keys = {f.key for f in found if isinstance(f, Location)}
        upstream: list[tuple[str, str]] = []
        for item in (task_inputs or {}).get(pname, ()):
            if getattr(item, "input_type", None) in ("task_run", "flow_run"):
                upstream.extend(memory.recorded_outputs.get(item.id) or ())
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
                used_location(b, rid, item)
                done.add(item.key)
    for dep in asset_deps:
        try:
            key = normalize_name(dep.key)
        except (HeadwaterError, ValueError) as err:
            log.warning("headwater: asset %s ignored: %s", short(dep.key), one_line(err))
            continue
        if key in done:
            continue
        done.add(key)
        linked = [ref for k, ref in upstream_all if k == key]
        if linked:
            b.used_ref(rid, linked[0])
        else:
            used_location(b, rid, Location(dep.key, key, explicit=True))


def asset_outputs(task: Any, task_run_id: UUID) -> list[Location]:
    assets = getattr(task, "assets", None) or ()
    metadata = memory.asset_metadata.pop(task_run_id) or {}
    out = []
    for asset in assets:
        key: str = getattr(asset, "key", None) or ""
        try:
            name = normalize_name(key)
        except (HeadwaterError, ValueError) as err:
            log.warning("headwater: asset %s ignored: %s", short(key), one_line(err))
            continue
        out.append(Location(key, name, name=name, metadata=metadata.get(key), explicit=True))
    return out
