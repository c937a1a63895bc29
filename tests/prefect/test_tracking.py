"""The one-line ways to track, what a run carries, and headwater objects as inputs and outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect import flow
from prefect.context import FlowRunContext

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker, log_output
from headwater.observe import code_identity
from tests.graphs import rows
from tests.prefect import flows

RAW = "id,amount\n1,10\n2,\n3,32\n"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    (tmp_path / "raw.csv").write_text(RAW)
    return tmp_path / "raw.csv"


def test_run_ids_times_params_and_code(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    @tracker.flow
    @flow
    def ids(src: Path) -> list:
        first = flows.extract(src, return_state=True)
        second = flows.transform(first.result(), return_state=True)
        flow_run = FlowRunContext.get().flow_run
        return [flow_run.id, first.state_details.task_run_id, second.state_details.task_run_id]

    flow_run_id, extract_id, transform_id = ids(raw)
    runs = {r.id: r for r in store.runs()}
    assert set(runs) == {hw.run_id("prefect", i) for i in (flow_run_id, extract_id, transform_id)}
    container = runs[hw.run_id("prefect", flow_run_id)]
    assert (container.kind, container.orchestrator, container.job_namespace) == ("container", "prefect", "prefect")
    assert container.params == {"src": str(raw)}
    for task_run_id in (extract_id, transform_id):
        run = runs[hw.run_id("prefect", task_run_id)]
        assert (run.parent_id, run.kind, run.orchestrator) == (container.id, "task", "prefect")
        assert run.started_at is not None and run.ended_at is not None and run.started_at <= run.ended_at
        assert container.started_at <= run.started_at and run.ended_at <= container.ended_at
    extract = runs[hw.run_id("prefect", extract_id)]
    assert extract.params == {"src": str(raw)}
    # The code identity every adapter records: the function, its file, the file's digest, the commit.
    assert extract.code == {"function": "tests.prefect.flows.extract", **code_identity(flows.__file__)}
    assert set(extract.code) >= {"file", "file_digest", "git_sha"}


def test_the_decorator_forms(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    @tracker.flow(name="by-decorator", log_prints=False)
    def by_decorator(src: Path) -> Path:
        return flows.transform(flows.extract(src))

    @tracker.flow
    @flow
    def stacked(src: Path) -> Path:
        return flows.extract(src)

    by_decorator(raw)
    stacked(raw)
    assert rows(store, raw.parent) == [
        ("by-decorator", "container", "succeeded", None, ("raw.csv:v0",), ("features.json:v0",)),
        ("by-decorator.extract", "task", "succeeded", "by-decorator", ("raw.csv:v0",), ("clean.csv:v0",)),
        ("by-decorator.transform", "task", "succeeded", "by-decorator", ("clean.csv:v0",), ("features.json:v0",)),
        ("stacked", "container", "succeeded", None, ("raw.csv:v0",), ("clean.csv:v0",)),
        ("stacked.extract", "task", "succeeded", "stacked", ("raw.csv:v0",), ("clean.csv:v0",)),
    ]


def test_a_task_tracked_alone(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    extract = tracker.task(flows.extract)

    @flow
    def untracked(src: Path) -> Path:
        return flows.transform(extract(src))

    @tracker.flow
    @flow
    def tracked(src: Path) -> Path:
        return extract.with_options(retries=1)(src)  # tracked twice over (a copy): recorded once

    untracked(raw)
    extract(raw)  # outside any flow
    tracked(raw)
    assert rows(store, raw.parent) == [
        ("extract", "task", "succeeded", None, ("raw.csv:v0",), ("clean.csv:v0",)),
        ("tracked", "container", "succeeded", None, ("raw.csv:v0",), ("clean.csv:v0",)),
        ("tracked.extract", "task", "succeeded", "tracked", ("raw.csv:v0",), ("clean.csv:v0",)),
        # opened by its tracked task, closed with the flow run's final state
        ("untracked", "container", "succeeded", None, (), ()),
        ("untracked.extract", "task", "succeeded", "untracked", ("raw.csv:v0",), ("clean.csv:v0",)),
    ]


def test_log_output_and_upstream_results_that_are_not_paths(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path
) -> None:
    assert tracker.flow(flows.exporting)(raw) == 3
    assert rows(store, raw.parent) == [
        ("exporting", "container", "succeeded", None, ("raw.csv:v0",), ()),
        ("exporting.export", "task", "succeeded", "exporting", ("raw.csv:v0",), ("exports:v0",)),
        ("exporting.report_rows", "task", "succeeded", "exporting", ("exports:v0",), ()),
    ]
    exports = store.get("exports")
    assert (exports.type, exports.metadata, exports.entries[0].ref) == (
        "dataset",
        {"rows": 3},
        raw.with_name("export.bin").as_uri(),
    )


def test_headwater_output_and_version_objects(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path, tmp_path: Path
) -> None:
    (tmp_path / "baseline.bin").write_bytes(b"b")
    baseline = store.log_artifact("baseline", tmp_path / "baseline.bin", type="model")
    assert tracker.flow(flows.modeling)(raw, baseline) == 0.9
    assert rows(store, tmp_path) == [
        ("modeling", "container", "succeeded", None, ("baseline:v0", "raw.csv:v0"), ()),
        ("modeling.evaluate", "task", "succeeded", "modeling", ("baseline:v0", "weights:v0"), ()),
        ("modeling.fit", "task", "succeeded", "modeling", ("raw.csv:v0",), ("weights:v0",)),
    ]
    weights = store.get("weights")
    assert (weights.type, weights.metadata) == ("model", {"epochs": 3})
    assert (weights.aliases, weights.tags) == (["latest", "candidate"], ["demo"])


def test_log_output_outside_a_tracked_run_is_one_warning(headwater_log: list, raw: Path) -> None:
    assert log_output(raw) == raw
    assert [r.getMessage() for r in headwater_log] == [
        f"headwater: log_output({raw}) outside a tracked Prefect task or flow run: not recorded"
    ]


def test_track_dispatches_and_refuses_other_objects(tracker: HeadwaterTracker) -> None:
    assert tracker.track(flows.pipeline).name == "pipeline"
    assert tracker.track(flows.extract).name == "extract"
    with pytest.raises(TypeError, match="Flow or Task"):
        tracker.track(lambda: None)


def test_ignore_inputs_for_output_folders(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    workdir = raw.parent / "out"
    workdir.mkdir()
    (workdir / "old.txt").write_text("from an earlier run")
    tracker.flow(flows.copying, ignore_inputs=["workdir"])(raw, workdir)
    assert rows(store, raw.parent) == [
        ("copying", "container", "succeeded", None, ("raw.csv:v0",), ("out/copy.csv:v0",)),
        ("copying.write_into", "task", "succeeded", "copying", ("raw.csv:v0",), ("out/copy.csv:v0",)),
    ]
    assert store.runs(job="copying.write_into")[0].params == {"src": str(raw), "workdir": str(workdir)}


def test_submit_and_a_task_called_from_a_task(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    tracker.flow(flows.nesting)(raw)
    assert rows(store, raw.parent) == [
        ("nesting", "container", "succeeded", None, ("raw.csv:v0",), ("raw.double:v0",)),
        ("nesting.calls_a_task", "task", "succeeded", "nesting", ("raw.csv:v0",), ("raw.double:v0",)),
        ("nesting.double", "task", "succeeded", "nesting", ("raw.csv:v0",), ("raw.double:v0",)),
    ]
