"""Exact edges with nothing declared: ObjectStoragePath's shortcuts, AssetAlias inlets, task
instances that never start, and a DAG run's status when its own hook never fires."""

from __future__ import annotations

import logging

import pytest

import headwater as hw
from tests.airflow.conftest import TEST_DATA
from tests.graphs import tries

UPSTREAM_FAILED = "upstream_failed: not run because an upstream task failed"


def uri(name: str) -> str:
    return (TEST_DATA / name).as_uri()


def exact_graph(container: tuple[str, str, None], *, never_started: bool) -> dict:
    """What hw_exact records: every read and write, though the DAG declares only an alias."""
    raw, raw_bin, clean = uri("raw.txt"), uri("raw.bin"), uri("clean.txt")
    published, consumed, kept = uri("published.txt"), uri("consumed.txt"), uri("kept.txt")
    skipped = ("task", "skipped", "hw_exact")
    return {
        "runs": {
            "hw_exact": container,
            "hw_exact.extract#1": ("task", "succeeded", "hw_exact"),
            "hw_exact.transform#1": ("task", "succeeded", "hw_exact"),
            "hw_exact.publish#1": ("task", "succeeded", "hw_exact"),
            "hw_exact.consume#1": ("task", "succeeded", "hw_exact"),
            "hw_exact.choose#1": ("task", "succeeded", "hw_exact"),
            "hw_exact.kept#1": ("task", "succeeded", "hw_exact"),
            # skipped by the branch (and, after it, by the trigger rule): no try ran, try number 0
            **({"hw_exact.dropped#0": skipped, "hw_exact.after_dropped#0": skipped} if never_started else {}),
        },
        "versions": {
            f"{raw}:v0": ({}, "hw_exact.extract#1"),  # write_text
            f"{raw_bin}:v0": ({}, "hw_exact.extract#1"),  # write_bytes
            f"{clean}:v0": ({}, "hw_exact.transform#1"),
            f"{published}:v0": ({}, "hw_exact.publish#1"),  # named by the alias's outlet event
            f"{consumed}:v0": ({}, "hw_exact.consume#1"),
            f"{kept}:v0": ({}, "hw_exact.kept#1"),
        },
        "edges": {
            ("hw_exact.extract#1", "produced", f"{raw}:v0", True),
            ("hw_exact.extract#1", "produced", f"{raw_bin}:v0", True),
            ("hw_exact.transform#1", "used", f"{raw}:v0", True),  # read_text
            ("hw_exact.transform#1", "used", f"{raw_bin}:v0", True),  # read_bytes
            ("hw_exact.transform#1", "produced", f"{clean}:v0", True),
            ("hw_exact.publish#1", "used", f"{clean}:v0", True),
            ("hw_exact.publish#1", "produced", f"{published}:v0", True),
            ("hw_exact.consume#1", "used", f"{published}:v0", True),  # the AssetAlias inlet, resolved
            ("hw_exact.consume#1", "produced", f"{consumed}:v0", True),
            ("hw_exact.kept#1", "produced", f"{kept}:v0", True),
        },
    }


def test_shortcuts_alias_inlets_and_branch_skips_record_exact_edges(store: hw.Client, run_dag) -> None:
    dag_run = run_dag("hw_exact")
    assert dag_run.state == "success"
    assert tries(store) == exact_graph(("container", "succeeded", None), never_started=True)
    # each edge is to the bytes that were there: the reader's input is the writer's output
    assert store.get(uri("clean.txt")).entries[0].size == len("alpha beta gamma 3\n")
    dropped = store.get_run(hw.run_id("airflow", "hw_exact", "dropped", dag_run.run_id, 0, -1))
    assert (dropped.error, dropped.started_at, dropped.ended_at is not None) == (None, None, True)


def test_upstream_failed_is_recorded_as_skipped_and_the_dag_run_as_failed(store: hw.Client, run_dag) -> None:
    dag_run = run_dag("hw_upstream_failed")
    assert dag_run.state == "failed"
    assert tries(store) == {
        "runs": {
            "hw_upstream_failed": ("container", "failed", None),
            "hw_upstream_failed.breaks#1": ("task", "failed", "hw_upstream_failed"),
            "hw_upstream_failed.needs_it#0": ("task", "skipped", "hw_upstream_failed"),
            "hw_upstream_failed.beside#1": ("task", "succeeded", "hw_upstream_failed"),
        },
        # the read of a missing file reports nothing (as open() would); a failed try produces nothing
        "versions": {f"{uri('beside.txt')}:v0": ({}, "hw_upstream_failed.beside#1")},
        "edges": {("hw_upstream_failed.beside#1", "produced", f"{uri('beside.txt')}:v0", True)},
    }
    needs_it = store.get_run(hw.run_id("airflow", "hw_upstream_failed", "needs_it", dag_run.run_id, 0, -1))
    assert needs_it.error == UPSTREAM_FAILED
    container = store.get_run(hw.run_id("airflow", "hw_upstream_failed", dag_run.run_id))
    assert container.error == "task_failure"


@pytest.fixture
def no_dag_run_hooks():
    """A scheduler without headwater: the plugin's listener leaves the DAG-run hooks (Airflow
    core's listener manager); task processes keep theirs (the Task SDK's manager)."""
    from airflow.listeners.listener import get_listener_manager

    from headwater.adapters.airflow import listener

    manager = get_listener_manager()
    assert manager.pm.is_registered(listener)
    manager.pm.unregister(listener)
    yield
    manager.pm.register(listener)


def test_the_last_task_decides_the_dag_run_status_when_its_hook_never_fires(
    store: hw.Client, run_dag, no_dag_run_hooks
) -> None:
    dag_run = run_dag("hw_exact")
    assert dag_run.state == "success"
    # the same lineage; the tasks that never started need the DAG run's end, which never came
    assert tries(store) == exact_graph(("container", "succeeded", None), never_started=False)
    container = store.get_run(hw.run_id("airflow", "hw_exact", dag_run.run_id))
    assert container.ended_at == max(run.ended_at for run in store.runs() if run.kind == "task")  # the last task's end


def test_the_shortcuts_are_wrapped_on_object_storage_path_only_where_verified(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import airflow.sdk
    from airflow.sdk.io.path import ObjectStoragePath
    from upath.extensions import ProxyUPath

    from headwater.adapters.airflow import storage_path

    assert storage_path.install()
    for name in ("read_text", "read_bytes", "write_text", "write_bytes"):
        wrapper = vars(ObjectStoragePath)[name]
        assert wrapper.__headwater_original__ is vars(ProxyUPath)[name]  # the base class keeps its own

    monkeypatch.setattr(storage_path.patches, "_installed", None)
    monkeypatch.setattr(airflow.sdk, "__version__", "1.4.0")
    with caplog.at_level(logging.WARNING, logger="headwater"):
        assert not storage_path.install()
    assert "Task SDK 1.4.0 is not in the verified range 1.3" in caplog.text


def test_removed_task_instances_are_aborted_unless_they_had_finished(store: hw.Client) -> None:
    """What the DAG run's hook hands on for a run whose DAG lost a task and shrank a mapping (the
    listener reads these fields from Airflow's task instances; removal needs a DAG changed mid-run)."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from headwater.adapters.airflow import tasks

    start, end = datetime(2026, 12, 1, 8, tzinfo=timezone.utc), datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
    finished = tasks.TaskKey("hw_gone", "square", "manual__1", 1, 0)
    with tasks.observer(tasks.load()).batch("a try that finished before its task was removed") as b:
        tasks._task_run(b, tasks.load(), finished, status="succeeded", ended_at=start)
    tasks.dag_run_changed(
        "hw_gone",
        "manual__1",
        "succeeded",
        start,
        end,
        "success",
        [
            SimpleNamespace(task_id="square", map_index=0, try_number=1, state="removed", end_date=end),
            SimpleNamespace(task_id="square", map_index=2, try_number=0, state="removed", end_date=end),
            SimpleNamespace(task_id="old", map_index=-1, try_number=0, state="removed", end_date=None),
        ],
    )
    assert tries(store)["runs"] == {
        "hw_gone": ("container", "succeeded", None),
        "hw_gone.square[0]#1": ("task", "succeeded", "hw_gone"),  # finished first: it keeps its status
        "hw_gone.square[2]#0": ("task", "aborted", "hw_gone"),
        "hw_gone.old#0": ("task", "aborted", "hw_gone"),
    }
    old = store.get_run(hw.run_id("airflow", "hw_gone", "old", "manual__1", 0, -1))
    assert old.error == "removed: the task is no longer in the DAG"
