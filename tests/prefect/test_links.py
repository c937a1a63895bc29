"""What Prefect cannot link is said, stored outputs keep their bytes, and a flow run that a
tracked task opened is closed with the flow's final state."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker
from headwater.observe import safety
from tests.graphs import rows
from tests.prefect import flows


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    (tmp_path / "raw.csv").write_text("id\n1\n")
    return tmp_path / "raw.csv"


def test_a_small_int_result_links_nothing_and_says_so_once(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path, headwater_log: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety, "_warned", set())  # once per process: this test runs once per backend
    tracker.flow(flows.small_results)(raw)
    assert rows(store, raw.parent) == [
        ("small-results", "container", "succeeded", None, ("raw.csv:v0",), ()),
        ("small-results.export_n", "task", "succeeded", "small-results", ("raw.csv:v0",), ("export-300:v0",)),
        ("small-results.export_n", "task", "succeeded", "small-results", ("raw.csv:v0",), ("export-3:v0",)),
        ("small-results.export_n", "task", "succeeded", "small-results", ("raw.csv:v0",), ("export-5:v0",)),
        # 3 and 5 are interned ints: Prefect records no upstream run for them; 300 is linked
        ("small-results.report", "task", "succeeded", "small-results", (), ()),
        ("small-results.report", "task", "succeeded", "small-results", (), ()),
        ("small-results.report", "task", "succeeded", "small-results", ("export-300:v0",), ()),
    ]
    assert [r.getMessage() for r in headwater_log] == [
        "headwater: prefect task 'export_n' returned a small int, a bool or None, which Prefect cannot tell "
        "apart from the same value returned elsewhere, so a task given this result is not linked to what "
        "'export_n' wrote: return the path or a headwater.Output (or log_output the file and return "
        "something else), or pass the path to the task that reads it"
    ]


def test_an_output_with_store_true_keeps_its_bytes(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path, headwater_log: list
) -> None:
    uri = f"memory://lake/{uuid.uuid4().hex}/remote.bin"  # fsspec's memory store: readable, not storable
    tracker.flow(flows.keeping, ignore_inputs=["uri"])(raw, uri)
    assert rows(store, raw.parent) == [
        ("keeping", "container", "succeeded", None, ("raw.csv:v0",), ()),
        ("keeping.keep", "task", "succeeded", "keeping", ("raw.csv:v0",), ("remote:v0", "weights:v0")),
    ]
    weights = store.get("weights:v0")
    assert [(e.path, e.size, e.ref) for e in weights.entries] == [("weights.bin", 64, None)]  # stored, not referenced
    (raw.parent / "weights.bin").unlink()
    assert store.download(weights).read_bytes() == b"w" * 64
    remote = store.get("remote:v0")
    assert [(e.path, e.ref) for e in remote.entries] == [("remote.bin", uri)]
    assert [r.getMessage() for r in headwater_log] == [
        "headwater: output remote recorded as a reference, not stored (InvalidInput: store=True is supported "
        f"for local paths and file:// URIs, not {uri!r})"
    ]


def test_a_flow_run_opened_by_a_tracked_task_ends_with_the_flow(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path
) -> None:
    with pytest.raises(ValueError, match="the flow itself failed"):
        flows.fails_after(raw, tracker.task(flows.extract))
    assert rows(store, raw.parent) == [
        ("fails-after", "container", "failed", None, (), ()),
        ("fails-after.extract", "task", "succeeded", "fails-after", ("raw.csv:v0",), ("clean.csv:v0",)),
    ]
    (container,) = store.runs(job="fails-after")
    assert container.error == "ValueError: the flow itself failed"
    (task,) = store.runs(job="fails-after.extract")
    assert container.started_at <= task.started_at <= task.ended_at <= container.ended_at


def test_an_async_flow_run_opened_by_a_tracked_task_ends_with_the_flow(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path
) -> None:
    asyncio.run(flows.async_untracked(raw, tracker.task(flows.fetch)))
    assert rows(store, raw.parent) == [
        ("async-untracked", "container", "succeeded", None, (), ()),
        ("async-untracked.fetch", "task", "succeeded", "async-untracked", ("raw.csv:v0",), ("raw.fetched:v0",)),
    ]
