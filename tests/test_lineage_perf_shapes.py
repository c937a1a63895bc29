"""The faster lineage reads give exactly what the slower ones gave: impact's one walk from every
holding version against the merge of one walk per version, a graph's versions against
get_version, runs_using's runs against get_run. On every backend (the `client` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

import headwater as hw
from headwater.api import merge_graphs
from headwater.refs import Ref
from headwater.store.sql import SQLStore


def edge_keys(graph: hw.LineageGraph) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {(e.run_id, e.direction, e.version, tuple(e.inputs)) for e in graph.edges}


def one_walk_per_version(client: hw.Client, holding: list[hw.Version]) -> hw.LineageGraph:
    """What impact answered before it walked once: each holding version's downstream, merged."""
    return merge_graphs([client.downstream(v.ref) for v in holding])


def assert_same_graph(found: hw.LineageGraph, expected: hw.LineageGraph) -> None:
    assert (found.root, found.direction) == (expected.root, expected.direction) == (None, None)
    assert sorted(v.ref for v in found.versions) == sorted(v.ref for v in expected.versions)
    assert {v.ref: v for v in found.versions} == {v.ref: v for v in expected.versions}
    assert {r.id: r for r in found.runs} == {r.id: r for r in expected.runs}
    assert edge_keys(found) == edge_keys(expected)
    assert found.depth == expected.depth


def test_impact_walks_once_and_finds_what_one_walk_per_version_found(client: hw.Client, files) -> None:
    """raw:v0 and a copy of its file in `copy` (made from `other` alone, by a run that also read
    raw): the run is downstream of raw, but its output `copy` is not, though `copy` itself is a
    holding version. The walks of each, merged, have no edge from that run to `copy`."""
    root = files({"raw.csv": "same", "other.csv": "o", "copy.csv": "same", "clean.csv": "c", "m": "m"})
    raw = client.log_artifact("raw", root / "raw.csv")
    client.log_artifact("other", root / "other.csv")
    mixed = client.link("mixed", ["raw", "other"], [hw.Output("copy", root / "copy.csv", inputs=["other"])])
    clean = client.link("clean", ["raw"], [hw.Output("clean", root / "clean.csv")])
    model = client.link("model", ["clean", "copy"], [hw.Output("model", root / "m")])
    digest = raw.entries[0].digest
    impact = client.impact(digest=digest)
    assert [v.ref for v in impact.holding] == ["raw:v0", "copy:v0"]
    expected = one_walk_per_version(client, impact.holding)
    assert_same_graph(impact.downstream, expected)
    assert sorted(v.ref for v in impact.downstream.versions) == ["clean:v0", "copy:v0", "model:v0", "raw:v0"]
    assert {(e.run_id, e.direction, e.version) for e in impact.downstream.edges} == {
        (mixed.id, "used", "raw:v0"),
        (clean.id, "used", "raw:v0"),
        (clean.id, "produced", "clean:v0"),
        (model.id, "used", "clean:v0"),
        (model.id, "used", "copy:v0"),
        (model.id, "produced", "model:v0"),
    }
    assert impact.downstream.depth == {"raw:v0": 0, "copy:v0": 0, "clean:v0": 1, "model:v0": 1}


def test_impact_of_one_version_is_its_downstream_without_a_root(client: hw.Client, files) -> None:
    root = files({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"})
    a = client.log_artifact("a", root / "a")
    client.log_artifact("b", root / "b")
    client.link("split", ["a", "b"], [hw.Output("c", root / "c", inputs=["a"]), hw.Output("d", root / "d")])
    impact = client.impact(digest=a.entries[0].digest)
    assert [v.ref for v in impact.holding] == ["a:v0"]
    assert_same_graph(impact.downstream, one_walk_per_version(client, impact.holding))
    produced = sorted((e.version, e.inputs) for e in impact.downstream.edges if e.direction == "produced")
    assert produced == [("c:v0", ["a:v0"]), ("d:v0", [])]


def test_a_graphs_versions_are_those_get_version_reads(client: hw.Client, files) -> None:
    """Aliases (latest first), tags, producers, deleted and purged versions: read in bulk for a
    graph, each exactly as get_version reads it alone (without its entries)."""
    root = files({"raw.csv": "r", "out.csv": "o", "gone.csv": "g"})
    client.log_artifact("raw", root / "raw.csv", aliases=["stable", "candidate"])
    client.tag("raw:v0", "pii", "audited")
    with client.run("step") as run:
        run.use("raw:v0")
        run.log_artifact("out", root / "out.csv")
        run.log_artifact("gone", root / "gone.csv")
    client.purge(reason="takedown", ref="gone:v0")
    client.delete("gone:v0", reason="test")
    graph = client.downstream("raw:v0")
    assert [v.ref for v in graph.versions] == ["raw:v0", "out:v0", "gone:v0"]
    for version in graph.versions:
        alone = client.get(version.ref).model_copy(update={"entries": []})
        assert version.model_dump() == alone.model_dump(), version.ref
    by_ref = {v.ref: v for v in graph.versions}
    assert by_ref["raw:v0"].aliases == ["latest", "candidate", "stable"]
    assert by_ref["raw:v0"].tags == ["audited", "pii"]
    assert by_ref["gone:v0"].deleted and by_ref["gone:v0"].purged == ["gone.csv"]
    assert by_ref["out:v0"].producers == [run.id]


def test_runs_using_gives_the_runs_get_run_gives(client: hw.Client, files) -> None:
    root = files({"ds": "d", "x": "x", "y": "y"})
    client.log_artifact("ds", root / "ds")
    first = client.link("first", ["ds"], [hw.Output("x", root / "x")], params={"lr": 0.1})
    second = client.link("second", ["ds", "x"], [hw.Output("y", root / "y", inputs=["x"])])
    found = client.runs_using("ds")
    assert [r.id for r in found] == [second.id, first.id]
    assert found == [client.get_run(second.id), client.get_run(first.id)]
    assert (found[0].inputs, found[0].outputs, found[1].params) == (["ds:v0", "x:v0"], ["y:v0"], {"lr": 0.1})


@pytest.mark.parametrize("many", [1, 1200])
def test_a_graph_larger_than_any_bound_list(tmp_path: Path, many: int) -> None:
    """More versions and runs than the store ever put in one IN list (500): bound as one list."""
    from headwater.digest import manifest_digest
    from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
    from headwater.models import ManifestEntry

    store = SQLStore(f"sqlite:///{tmp_path / 'store.db'}")
    seed = [ManifestEntry(path="s", digest="blake3:" + "00" * 32, size=1)]
    store.apply([VersionRecorded(name="seed", digest=manifest_digest(seed), entries=seed)])
    events: list[object] = []
    for i in range(many):
        made = [ManifestEntry(path="o", digest=f"blake3:{i + 1:064x}", size=1)]
        events += [
            RunRecorded(run_id=f"r{i}", job="fan", status="succeeded"),
            EdgeRecorded(run_id=f"r{i}", ref="seed:v0"),
            VersionRecorded(
                name="out", digest=manifest_digest(made), entries=made, run_id=f"r{i}", direction="produced"
            ),
        ]
    store.apply(events)  # type: ignore[arg-type]  # events of several kinds
    graph = store.lineage(Ref("seed", label="v0"), "downstream")
    assert len(graph.versions) == many + 1 and len(graph.runs) == many and len(graph.edges) == 2 * many
    assert [v.ref for v in graph.versions] == ["seed:v0"] + [f"out:v{i}" for i in range(many)]
    assert len(store.runs_using("seed")) == many
    store.close()


def test_the_collector_resumes_after_overlapping_builds(monkeypatch) -> None:
    """Large reads pause the cyclic collector (reads._gc_paused); it runs again once the last
    overlapping build ends, stays off if the program had turned it off, and runs meanwhile when
    builds overlap for longer than the bound (0 here)."""
    import gc

    from headwater.store.sql import reads

    assert gc.isenabled()
    outer, inner = reads._gc_paused(), reads._gc_paused()
    with outer:
        assert not gc.isenabled()
        with inner:
            assert not gc.isenabled()
        assert not gc.isenabled()  # another build is still under way
    assert gc.isenabled()
    collections: list[str] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    monkeypatch.setattr(reads, "_GC_PAUSE_MAX_S", 0.0)
    gc.callbacks.append(seen)
    try:
        with reads._gc_paused():
            with reads._gc_paused():
                pass
            assert collections == ["start"] and not gc.isenabled()  # ran once, still paused
    finally:
        gc.callbacks.remove(seen)
    assert gc.isenabled()
    gc.disable()
    try:
        with reads._gc_paused():
            pass
        assert not gc.isenabled()  # the program's own choice is kept
    finally:
        gc.enable()
