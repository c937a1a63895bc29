"""Failures are recorded; headwater's own failures never touch the task or other listeners."""

from __future__ import annotations

from typing import Any

import pluggy
import pytest

import headwater as hw
from headwater.adapters.airflow import listener, tasks
from headwater.observe import safety
from tests.graphs import tries

hookimpl = pluggy.HookimplMarker("airflow")


def test_a_failing_task_fails_its_run_and_the_dag_run(store: hw.Client, run_dag) -> None:
    dag_run = run_dag("hw_safety")
    assert dag_run.state == "failed"
    assert tries(store)["runs"] == {
        "hw_safety": ("container", "failed", None),
        "hw_safety.ok#1": ("task", "succeeded", "hw_safety"),
        "hw_safety.broken#1": ("task", "failed", "hw_safety"),
    }
    broken = store.get_run(hw.run_id("airflow", "hw_safety", "broken", dag_run.run_id, 1, -1))
    assert (broken.error, broken.inputs, broken.outputs) == ("RuntimeError: disk full", [], [])
    assert store.get_run(hw.run_id("airflow", "hw_safety", dag_run.run_id)).error == "task_failure"


class Spy:
    """Another listener, called after headwater's (trylast): it must see every hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl(trylast=True)
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self.calls.append(("running", task_instance.task_id))

    @hookimpl(trylast=True)
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self.calls.append(("success", task_instance.task_id))

    @hookimpl(trylast=True)
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.calls.append(("failed", task_instance.task_id))


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.lines.append(message % args if args else message)


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_a_raising_headwater_is_logged_once_and_silences_nobody(store: hw.Client, run_dag, monkeypatch) -> None:
    from airflow.sdk.listener import get_listener_manager

    def explode() -> None:
        raise RuntimeError("settings exploded\nsecond line")

    monkeypatch.setattr(tasks, "load", explode)
    monkeypatch.setattr(safety, "_warned", set())
    monkeypatch.setattr(safety, "log", Lines())
    spy, manager = Spy(), get_listener_manager()
    assert listener in manager.pm.get_plugins()
    manager.add_listener(spy)
    try:
        dag_run = run_dag("hw_safety")
    finally:
        manager.pm.unregister(spy)

    # The tasks did exactly what they do without headwater, and the other listener saw it all.
    assert dag_run.state == "failed"
    assert {ti.task_id: ti.state for ti in dag_run.get_task_instances()} == {"ok": "success", "broken": "failed"}
    assert spy.calls == [("running", "ok"), ("success", "ok"), ("running", "broken"), ("failed", "broken")]
    # One line per failure, once per process (both tasks' starts failed alike).
    assert safety.log.lines == [
        f"headwater: airflow {what} not recorded: RuntimeError: settings exploded"
        for what in ("task start", "task success", "task failure", "DAG run failure")
    ]
    assert store.runs() == [] and store.outbox.pending() == []


class SchedulerTaskInstance:
    """What the scheduler hands the failure hook for a task whose process died: no operator."""

    dag_id, task_id, run_id, try_number, map_index = "hw_safety", "broken", "manual__lost", 3, -1
    start_date = end_date = None


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_a_failure_the_scheduler_reports_is_recorded_in_the_background(store: hw.Client) -> None:
    listener.on_task_instance_failed(None, SchedulerTaskInstance(), "Task was killed externally")
    assert listener.flush(timeout=60)
    run = store.get_run(hw.run_id("airflow", "hw_safety", "broken", "manual__lost", 3, -1))
    assert (run.job, run.kind, run.status, run.error) == (
        "hw_safety.broken",
        "task",
        "failed",
        "Task was killed externally",
    )
    assert run.parent_id == hw.run_id("airflow", "hw_safety", "manual__lost") and run.ended_at is not None
