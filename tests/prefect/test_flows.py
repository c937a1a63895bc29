"""Real Prefect flows, tracked with one line; the recorded graph is asserted exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker
from tests.graphs import rows
from tests.prefect import flows

RAW = "id,amount\n1,10\n2,\n3,32\n"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "raw.csv").write_text(RAW)
    return root / "raw.csv"


def test_three_task_file_pipeline(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    model = tracker.flow(flows.pipeline)(raw)
    assert model == raw.with_name("model.json")
    assert rows(store, raw.parent) == [
        ("pipeline", "container", "succeeded", None, ("raw.csv:v0",), ("model.json:v0",)),
        ("pipeline.extract", "task", "succeeded", "pipeline", ("raw.csv:v0",), ("clean.csv:v0",)),
        ("pipeline.train", "task", "succeeded", "pipeline", ("features.json:v0",), ("model.json:v0",)),
        ("pipeline.transform", "task", "succeeded", "pipeline", ("clean.csv:v0",), ("features.json:v0",)),
    ]


def test_map_over_several_files(tracker: HeadwaterTracker, store: hw.Client, tmp_path: Path) -> None:
    files = []
    for i, text in enumerate(["a b c", "d e", "f"]):
        files.append(tmp_path / f"doc{i}.txt")
        files[-1].write_text(text)
    counts = tracker.flow(flows.word_counts)(files)
    assert [p.read_text() for p in counts] == ["3", "2", "1"]
    docs = tuple(f"doc{i}.txt:v0" for i in range(3))
    outs = tuple(f"doc{i}.count:v0" for i in range(3))
    assert rows(store, tmp_path) == [
        ("word-counts", "container", "succeeded", None, docs, outs),
        *[
            ("word-counts.count_words", "task", "succeeded", "word-counts", (d,), (o,))
            for d, o in zip(docs, outs, strict=True)
        ],
    ]


def test_a_failing_task_fails_its_run_and_skips_its_downstream(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path
) -> None:
    state = tracker.flow(flows.checked)(raw, return_state=True)
    assert state.is_failed()
    assert rows(store, raw.parent) == [
        ("checked", "container", "failed", None, ("raw.csv:v0",), ()),
        ("checked.extract", "task", "succeeded", "checked", ("raw.csv:v0",), ("clean.csv:v0",)),
        ("checked.publish", "task", "skipped", "checked", (), ()),
        ("checked.validate", "task", "failed", "checked", ("clean.csv:v0",), ()),
    ]
    errors = {r.job: r.error for r in store.runs()}
    assert errors["checked.validate"] == "ValueError: clean.csv: 2 rows have a negative amount"
    assert errors["checked"] == "1/1 states failed."  # Prefect's message: the flow returned a failed future
    assert (
        errors["checked.publish"].startswith("Upstream task run '")
        and "did not reach a 'COMPLETED' state" in errors["checked.publish"]
    )
    assert errors["checked.extract"] is None


def test_a_subflow_is_a_child_of_the_calling_flow_run(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    tracker.flow(flows.outer)(raw)
    assert rows(store, raw.parent) == [
        ("featurize", "container", "succeeded", "outer", ("clean.csv:v0",), ("features.json:v0",)),
        ("featurize.transform", "task", "succeeded", "featurize", ("clean.csv:v0",), ("features.json:v0",)),
        ("outer", "container", "succeeded", None, ("raw.csv:v0",), ("model.json:v0",)),
        ("outer.extract", "task", "succeeded", "outer", ("raw.csv:v0",), ("clean.csv:v0",)),
        ("outer.train", "task", "succeeded", "outer", ("features.json:v0",), ("model.json:v0",)),
    ]


def test_an_async_flow(tracker: HeadwaterTracker, store: hw.Client, tmp_path: Path) -> None:
    import asyncio

    srcs = []
    for name in ("a", "b"):
        srcs.append(tmp_path / f"{name}.csv")
        srcs[-1].write_text(RAW)
    model = asyncio.run(tracker.flow(flows.async_pipeline)(srcs))
    assert model == tmp_path / "model.json"
    assert rows(store, tmp_path) == [
        ("async-pipeline", "container", "succeeded", None, ("a.csv:v0", "b.csv:v0"), ("model.json:v0",)),
        ("async-pipeline.extract", "task", "succeeded", "async-pipeline", ("a.fetched:v0",), ("clean.csv:v0",)),
        ("async-pipeline.fetch", "task", "succeeded", "async-pipeline", ("a.csv:v0",), ("a.fetched:v0",)),
        ("async-pipeline.fetch", "task", "succeeded", "async-pipeline", ("b.csv:v0",), ("b.fetched:v0",)),
        ("async-pipeline.train", "task", "succeeded", "async-pipeline", ("features.json:v0",), ("model.json:v0",)),
        ("async-pipeline.transform", "task", "succeeded", "async-pipeline", ("clean.csv:v0",), ("features.json:v0",)),
    ]


def test_materialize_with_asset_deps(tracker: HeadwaterTracker, store: hw.Client, tmp_path: Path) -> None:
    (tmp_path / "raw.csv").write_text("a\nb\nc\n")
    report, raw = (tmp_path / "report.csv").as_uri(), (tmp_path / "raw.csv").as_uri()
    table = "postgres://db:5432/shop.public.orders"
    tracker.flow(flows.materializing(report, raw, table))()
    assert rows(store, tmp_path) == [
        ("reporting", "container", "succeeded", None, (), ()),
        ("reporting.build_report", "task", "succeeded", "reporting", (f"{table}:v0", "raw.csv:v0"), ("report.csv:v0",)),
    ]
    version = store.get(report)
    assert (version.metadata, [e.path for e in version.entries]) == ({"rows": 3, "source": "raw"}, ["report.csv"])
    assert store.get(table).digest.startswith("unverified:")  # a table headwater cannot read
    edges = {(e.version, e.exact) for e in store.upstream(f"{report}:v0").edges}
    assert edges == {(f"{report}:v0", True), (f"{raw}:v0", True), (f"{table}:v0", False)}


def test_a_crashed_flow_run_is_failed(tracker: HeadwaterTracker, store: hw.Client, raw: Path) -> None:
    with pytest.raises(flows.PowerCut):
        tracker.flow(flows.crashing)(raw)
    assert rows(store, raw.parent) == [
        ("crashing", "container", "failed", None, ("raw.csv:v0",), ()),
        ("crashing.extract", "task", "succeeded", "crashing", ("raw.csv:v0",), ("clean.csv:v0",)),
    ]
    assert store.runs(job="crashing")[0].error == "PowerCut: the machine went away"
