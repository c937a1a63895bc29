"""Airflow listener hooks: each one hands the event to `tasks` and can never raise.

A listener that raises makes pluggy skip the other listeners of that hook, so every hook here
catches everything and logs one warning line (the same failure once per process).

Task hooks run inside the task's process, on its path: their work is bounded by the time budget
and what cannot be delivered waits in the outbox (`observe.batch`). DAG-run hooks run in the
scheduler's loop: they go to one background thread per process, so the scheduler never waits
for the store; only the task instances of an ended DAG run are read first, in its thread and
session (one query).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pluggy
from airflow.sdk.lineage import HookLineageReader

from headwater.observe import Background, guard

hookimpl = pluggy.HookimplMarker("airflow")


class HeadwaterLineageReader(HookLineageReader):
    """Registering a reader is what turns Airflow's hook lineage collector on."""


def _guard(what: str, func: Callable[..., None], *args: Any) -> None:
    guard(f"airflow {what}", func, *args)


def _tasks() -> Any:
    from headwater.adapters.airflow import tasks  # imported at the first hook, not at plugin load

    return tasks


def _in_task_process(task_instance: Any) -> bool:
    # The scheduler may report a failure with its ORM TaskInstance: no operator, no context.
    return type(task_instance).__name__ == "RuntimeTaskInstance"


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    _guard("task start", lambda: _tasks().task_started(task_instance))


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _guard("task success", lambda: _tasks().task_finished(task_instance, "succeeded"))


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    if _in_task_process(task_instance):
        _guard("task failure", lambda: _tasks().task_finished(task_instance, "failed", error))
    else:
        _guard("task failure", _scheduler_failure, task_instance, error)


def _scheduler_failure(task_instance: Any, error: Any) -> None:
    # Read the ORM object here, in the caller's thread; record it in the background.
    fields = ("dag_id", "task_id", "run_id", "try_number", "map_index", "start_date", "end_date")
    seen = SimpleNamespace(task=None, **{name: getattr(task_instance, name, None) for name in fields})
    _in_background("task failure", _tasks().task_finished, seen, "failed", error)


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _guard("task skip", lambda: _tasks().task_finished(task_instance, "skipped"))


def _dag_run(what: str, dag_run: Any, status: str, msg: Any) -> None:
    # Read the ORM object here, in the scheduler's thread; record it in the background.
    args = (dag_run.dag_id, dag_run.run_id, status, dag_run.start_date, dag_run.end_date, msg)
    never_started: list[SimpleNamespace] = []
    if status != "running":  # the DAG run's status is recorded even if its task instances cannot be read
        found = guard(f"airflow {what}", _never_started, dag_run, outcome="task instances not recorded")
        never_started = found or []
    _in_background(what, _tasks().dag_run_changed, *args, never_started)


def _never_started(dag_run: Any) -> list[SimpleNamespace]:
    """The task instances of an ended DAG run that may have had no try of their own (skipped,
    upstream_failed, removed). Read in the scheduler's thread through the scheduler's own session
    (the DAG run's, else the thread's scoped session, which `dag.test()` uses): that sees the
    states the scheduler has just set and never commits anything of its."""
    from airflow import settings
    from sqlalchemy.orm import object_session

    session = object_session(dag_run) or settings.Session()
    found = dag_run.get_task_instances(state=list(_tasks().NEVER_STARTED), session=session)
    fields = ("task_id", "map_index", "try_number", "end_date")
    return [
        SimpleNamespace(state=str(getattr(ti.state, "value", ti.state)), **{name: getattr(ti, name) for name in fields})
        for ti in found
    ]


@hookimpl
def on_dag_run_running(dag_run: Any, msg: Any) -> None:
    _guard("DAG run start", _dag_run, "DAG run start", dag_run, "running", msg)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: Any) -> None:
    _guard("DAG run success", _dag_run, "DAG run success", dag_run, "succeeded", msg)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: Any) -> None:
    _guard("DAG run failure", _dag_run, "DAG run failure", dag_run, "failed", msg)


# -- one background thread per process, for hooks that run in the scheduler ------------------

_background = Background()


def _in_background(what: str, func: Callable[..., None], *args: Any) -> None:
    _background.submit(_guard, what, func, *args)


def flush(timeout: float | None = None) -> bool:
    """Wait for background records (DAG-run hooks) to be written; True when none is left.

    Interpreter exit waits for them too; tests and benchmarks call this to read the store at once.
    """
    return _background.flush(timeout)
