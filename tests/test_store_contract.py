"""The contract every backend passes: the same tests on SQLite and PostgreSQL (and, with the
tracking server, over HTTP). Each asserts exact versions, labels, edges and statuses."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import headwater as hw
from headwater.events import AliasMoved, ContentPurged, EdgeRecorded, RunRecorded, VersionRecorded
from headwater.refs import Ref


def edges_of(graph: hw.LineageGraph, client: hw.Client) -> set[tuple[str, str, str]]:
    """(job, direction, version ref) for every edge, readable in assertions."""
    jobs = {r.id: r.job for r in graph.runs}
    return {(jobs[e.run_id], e.direction, e.version) for e in graph.edges}


# -- versions ----------------------------------------------------------------------------------


def test_same_content_is_the_same_version_and_moves_latest(client: hw.Client, files) -> None:
    root = files({"a.csv": "1\n"})
    v0 = client.log_artifact("users", root / "a.csv", type="dataset", metadata={"rows": 1})
    assert (v0.ref, v0.label, v0.aliases, v0.type) == ("users:v0", "v0", ["latest"], "dataset")
    assert [(e.path, e.size, e.ref) for e in v0.entries] == [("a.csv", 2, None)]
    (root / "a.csv").write_text("1\n2\n")
    v1 = client.log_artifact("users", root / "a.csv")
    assert v1.label == "v1" and v1.digest != v0.digest
    (root / "a.csv").write_text("1\n")
    again = client.log_artifact("users", root / "a.csv", metadata={"rows": 99})
    assert again.label == "v0" and again.digest == v0.digest
    assert again.metadata == {"rows": 1}  # frozen at the first commit
    assert client.get("users").label == "v0"  # latest moved back to the logged content
    assert [v.label for v in client.versions("users")] == ["v0", "v1"]
    moves = [(m.alias, m.version) for m in client.alias_history("users", "latest")]
    assert moves == [("latest", "users:v0"), ("latest", "users:v1"), ("latest", "users:v0")]


def test_directory_version_and_manifest(client: hw.Client, files) -> None:
    root = files({"train/a.csv": "a", "train/b.csv": "bb", "test/c.csv": "ccc"})
    version = client.log_artifact("mnist", root, type="dataset")
    assert [(e.path, e.size) for e in version.entries] == [
        ("test/c.csv", 3),
        ("train/a.csv", 1),
        ("train/b.csv", 2),
    ]
    assert version.size == 6
    fetched = client.get("mnist:v0")
    assert fetched.entries == version.entries and fetched.digest == version.digest


def test_refs_by_label_alias_digest_and_uri_names(client: hw.Client, files) -> None:
    root = files({"x.txt": "x"})
    version = client.log_artifact("model", root / "x.txt", aliases=["candidate"])
    short = version.digest.split(":", 1)[1][:10]
    for ref in ("model", "model:latest", "model:v0", "model:candidate", f"model@{short}", f"model@blake3:{short}"):
        assert client.get(ref).digest == version.digest, ref
    uri = client.log_reference("file:///" + str(root / "x.txt").lstrip("/") + "/", (root / "x.txt").as_uri())
    assert uri.name == (root / "x.txt").as_uri()
    assert client.get(uri.name + ":v0").digest == uri.digest
    assert uri.entries[0].ref == (root / "x.txt").as_uri()


def test_not_found_errors_name_what_is_missing(client: hw.Client, files) -> None:
    client.log_artifact("ds", files({"a": "a"}) / "a")
    with pytest.raises(hw.NotFound, match="no artifact named 'nope'"):
        client.get("nope")
    with pytest.raises(hw.NotFound, match="has no version v7"):
        client.get("ds:v7")
    with pytest.raises(hw.NotFound, match="has no alias 'production'"):
        client.get("ds:production")
    with pytest.raises(hw.NotFound, match="no version with digest"):
        client.get("ds@00000000")


def test_gapless_labels_across_artifacts_and_blob_dedup(client: hw.Client, files) -> None:
    root = files({"a": "same", "b": "other"})
    assert client.log_artifact("one", root / "a").label == "v0"
    assert client.log_artifact("two", root / "a").label == "v0"
    assert client.log_artifact("one", root / "b").label == "v1"
    assert len(list(client.blobs.iter_digests())) == 2


def test_aliases_move_with_history_and_time_travel(client: hw.Client, files) -> None:
    root = files({"m": "1"})
    client.log_artifact("m", root / "m")
    (root / "m").write_text("2")
    client.log_artifact("m", root / "m")
    client.alias("m:v0", "production")
    between = datetime.now(timezone.utc)
    client.alias("m:v1", "production")
    assert client.get("m:production").label == "v1"
    assert client.get("m:production", at=between).label == "v0"
    assert client.get("m:production", at=between.replace(tzinfo=None)).label == "v0"  # naive = UTC
    with pytest.raises(hw.NotFound):
        client.get("m:production", at=between - timedelta(days=1))
    client.unalias("m", "production")
    with pytest.raises(hw.NotFound):
        client.get("m:production")
    history = [(h.alias, h.version) for h in client.alias_history("m", "production")]
    assert history == [("production", "m:v0"), ("production", "m:v1"), ("production", None)]
    assert client.get("m:v1").aliases == ["latest"]


def test_late_alias_replay_never_overwrites_a_newer_move(client: hw.Client, files) -> None:
    root = files({"m": "1"})
    v0 = client.log_artifact("m", root / "m")
    (root / "m").write_text("2")
    v1 = client.log_artifact("m", root / "m")
    now = datetime.now(timezone.utc)
    client.store.apply([AliasMoved(name="m", alias="prod", digest=v1.digest, time=now)])
    client.store.apply([AliasMoved(name="m", alias="prod", digest=v0.digest, time=now - timedelta(minutes=5))])
    assert client.get("m:prod").label == "v1"
    assert client.get("m:prod", at=now - timedelta(minutes=1)).label == "v0"


def test_tags_metadata_filters_and_limits(client: hw.Client, files) -> None:
    root = files({"a": "1"})
    client.log_artifact("d", root / "a", metadata={"split": "train", "rows": 10}, tags=["pii"])
    (root / "a").write_text("22")
    client.log_artifact("d", root / "a", metadata={"split": "test", "rows": 20, "ok": True})
    client.tag("d:v1", "validated")
    assert [v.label for v in client.versions("d", tags=["pii"])] == ["v0"]
    assert [v.label for v in client.versions("d", tags=["validated"])] == ["v1"]
    assert [v.label for v in client.versions("d", metadata={"split": "test"})] == ["v1"]
    assert [v.label for v in client.versions("d", metadata={"rows": 10})] == ["v0"]
    assert [v.label for v in client.versions("d", metadata={"ok": True})] == ["v1"]
    assert [v.label for v in client.versions("d", limit=1)] == ["v0"]
    client.untag("d:v0", "pii")
    assert client.get("d:v0").tags == []
    arts = client.artifacts()
    assert [(a.name, a.latest, a.versions) for a in arts] == [("d", "v1", 2)]


def test_artifacts_page_by_name_or_last_update_and_filter_by_tag(client: hw.Client, files) -> None:
    root = files({"a": "1"})
    for name in ("b-old", "a-mid", "c-new"):
        (root / "a").write_text(name)
        client.log_artifact(name, root / "a", type="model" if name != "a-mid" else "dataset")
    (root / "a").write_text("again")
    client.log_artifact("b-old", root / "a", tags=["pii"])  # b-old updated last
    names = lambda arts: [a.name for a in arts]  # noqa: E731
    assert names(client.artifacts()) == ["a-mid", "b-old", "c-new"]
    assert names(client.artifacts(order="updated")) == ["b-old", "c-new", "a-mid"]
    assert names(client.artifacts(order="updated", limit=2, offset=1)) == ["c-new", "a-mid"]
    assert names(client.artifacts(limit=2, offset=2)) == ["c-new"]
    assert names(client.artifacts(offset=3)) == []
    assert names(client.artifacts(tag="pii")) == ["b-old"]
    assert names(client.artifacts(name_like="B-O")) == ["b-old"]  # any case, on every backend
    assert names(client.artifacts(type="model", order="updated")) == ["b-old", "c-new"]
    newest = client.artifacts(order="updated")[0]
    assert newest.updated_at == client.get("b-old:v1").created_at and newest.versions == 2
    client.untag("b-old:v1", "pii")
    assert client.artifacts(tag="pii") == []


def test_a_run_lists_which_of_its_edges_are_inexact(client: hw.Client, files) -> None:
    root = files({"a": "1"})
    client.log_artifact("a", root / "a")
    rid = hw.run_id("t", "inexact-listed")
    client.store.apply([RunRecorded(run_id=rid, job="j"), EdgeRecorded(run_id=rid, ref="a:latest", exact=False)])
    assert (client.get_run(rid).inputs, client.get_run(rid).inexact) == (["a:v0"], ["a:v0"])
    assert client.runs(job="j")[0].inexact == ["a:v0"]


def test_artifact_type_cannot_change(client: hw.Client, files) -> None:
    root = files({"a": "1", "b": "2"})
    client.log_artifact("x", root / "a", type="dataset")
    with pytest.raises(hw.Conflict, match="has type 'dataset', not 'model'"):
        client.log_artifact("x", root / "b", type="model")
    assert [v.label for v in client.versions("x")] == ["v0"]  # nothing changed


# -- runs and lineage -------------------------------------------------------------------------


def three_steps(client: hw.Client, files) -> dict[str, object]:
    """raw -> clean (run `clean`) -> model (run `train`) -> report (run `evaluate`)."""
    root = files(
        {"raw/users.csv": "id\n1\n2\n", "raw/orders.csv": "o\n1\n", "clean.csv": "c", "model.pt": "M", "report.md": "R"}
    )
    raw = client.log_artifact("raw", root / "raw", type="dataset")
    with client.run("clean", params={"drop_nulls": True}) as clean:
        clean.use("raw:latest")
        clean.log_artifact("clean", root / "clean.csv", type="dataset")
    with client.run("train") as train:
        train.use("clean")
        train.log_artifact("model", root / "model.pt", type="model", aliases=["candidate"])
    with client.run("evaluate") as evaluate:
        evaluate.use("model:candidate")
        evaluate.use("raw:v0")
        evaluate.log_artifact("report", root / "report.md")
    return {"raw": raw, "root": root, "clean": clean.id, "train": train.id, "evaluate": evaluate.id}


def test_runs_record_inputs_outputs_and_status(client: hw.Client, files) -> None:
    ids = three_steps(client, files)
    train = client.get_run(ids["train"])  # type: ignore[arg-type]
    assert (train.job, train.status, train.orchestrator, train.inputs, train.outputs) == (
        "train",
        "succeeded",
        "manual",
        ["clean:v0"],
        ["model:v0"],
    )
    assert train.started_at is not None and train.ended_at is not None and train.ended_at >= train.started_at
    assert client.get_run(ids["clean"]).params == {"drop_nulls": True}  # type: ignore[arg-type]
    assert [r.job for r in client.runs()] == ["evaluate", "train", "clean"]  # newest first
    assert [r.job for r in client.runs(job="train")] == ["train"]
    model = client.get("model:candidate")
    assert model.produced_by == ids["train"] and model.producers == [ids["train"]]


def test_failed_block_marks_the_run_failed_with_its_error(client: hw.Client) -> None:
    with pytest.raises(ZeroDivisionError), client.run("broken") as run:
        1 / 0  # noqa: B018 (the failure under test)
    recorded = client.get_run(run.id)
    assert recorded.status == "failed" and recorded.error == "ZeroDivisionError: division by zero"


def test_upstream_and_downstream_graphs_are_exact(client: hw.Client, files) -> None:
    three_steps(client, files)
    up = client.upstream("model:candidate")
    assert up.root == "model:v0" and up.direction == "upstream"
    assert sorted(v.ref for v in up.versions) == ["clean:v0", "model:v0", "raw:v0"]
    assert up.depth == {"model:v0": 0, "clean:v0": 1, "raw:v0": 2}
    assert edges_of(up, client) == {
        ("train", "used", "clean:v0"),
        ("train", "produced", "model:v0"),
        ("clean", "used", "raw:v0"),
        ("clean", "produced", "clean:v0"),
    }
    assert "raw:v0" in up and "report:v0" not in up
    down = client.downstream("raw:v0")
    assert sorted(v.ref for v in down.versions) == ["clean:v0", "model:v0", "raw:v0", "report:v0"]
    assert down.depth == {"raw:v0": 0, "clean:v0": 1, "model:v0": 2, "report:v0": 1}
    assert sorted(r.job for r in down.runs) == ["clean", "evaluate", "train"]
    one = client.downstream("raw:v0", depth=1)
    assert sorted(v.ref for v in one.versions) == ["clean:v0", "raw:v0", "report:v0"]
    assert sorted(r.job for r in one.runs) == ["clean", "evaluate"]
    assert [v.ref for v in client.upstream("raw:v0").versions] == ["raw:v0"]


def test_lineage_survives_cycles(client: hw.Client, files) -> None:
    root = files({"a": "same bytes"})
    with client.run("rewrite") as run:
        run.use(root / "a", name="loop")
        run.log_artifact("loop", root / "a", store=False)
    assert [v.ref for v in client.versions("loop")] == ["loop:v0"]
    for graph in (client.upstream("loop"), client.downstream("loop"), client.downstream("loop", depth=5)):
        assert [v.ref for v in graph.versions] == ["loop:v0"]
        assert edges_of(graph, client) == {("rewrite", "used", "loop:v0"), ("rewrite", "produced", "loop:v0")}


def test_runs_using_and_path(client: hw.Client, files) -> None:
    three_steps(client, files)
    assert [r.job for r in client.runs_using("raw")] == ["evaluate", "clean"]
    path = client.path("raw:v0", "model:v0")
    assert sorted(v.ref for v in path.versions) == ["clean:v0", "model:v0", "raw:v0"]
    assert sorted(r.job for r in path.runs) == ["clean", "train"]
    assert client.path("report:v0", "raw:v0").versions == []


@pytest.mark.parametrize("sorted_at_most", [5_000, 1], ids=["sorted", "walked"])
def test_runs_using_pages_newest_first_ties_by_id(client: hw.Client, files, monkeypatch, sorted_at_most) -> None:
    # The SQL stores read a few users whole and walk the runs of many newest first: both ways
    # (the server, in a process of its own, keeps its default).
    monkeypatch.setattr("headwater.store.sql.lineage._SORTED_AT_MOST", sorted_at_most)
    root = files({"ds": "d", "other": "o"})
    ds = client.content(root / "ds")
    other = client.content(root / "other")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    # Five runs of ds: two pairs recorded at the same instant (ties go to the greater id), one
    # using two of its versions (listed once); and a run of another artifact, never listed.
    times = {"r-a": at, "r-b": at + timedelta(seconds=2), "r-c": at + timedelta(seconds=2)}
    times.update({"r-d": at + timedelta(seconds=1), "r-e": at + timedelta(seconds=1), "r-x": at})
    events: list[object] = [
        VersionRecorded(name="ds", digest=ds.digest, entries=ds.entries),
        VersionRecorded(name="ds", digest=other.digest, entries=other.entries),
        VersionRecorded(name="other", digest=other.digest, entries=other.entries),
    ]
    for run_id, time in times.items():
        events.append(RunRecorded(run_id=run_id, job=run_id, status="succeeded", time=time))
        events.append(EdgeRecorded(run_id=run_id, ref="other:v0" if run_id == "r-x" else "ds:v0"))
    events.append(EdgeRecorded(run_id="r-d", ref="ds:v1"))
    client.store.apply(events)  # type: ignore[arg-type]  # events of several kinds
    newest_first = ["r-c", "r-b", "r-e", "r-d", "r-a"]
    assert [r.id for r in client.runs_using("ds")] == newest_first
    pages = [[r.id for r in client.runs_using("ds", limit=2, offset=start)] for start in (0, 2, 4, 6)]
    assert pages == [["r-c", "r-b"], ["r-e", "r-d"], ["r-a"], []]
    assert [r.id for r in client.runs_using("ds", offset=3)] == ["r-d", "r-a"]
    assert client.runs_using("ds", limit=0) == []
    assert client.runs_using("ds", limit=1, offset=3) == [client.get_run("r-d")]
    assert client.get_run("r-d").inputs == ["ds:v0", "ds:v1"]
    with pytest.raises(hw.InvalidInput):
        client.runs_using("ds", offset=-1)
    with pytest.raises(hw.InvalidInput):
        client.runs_using("ds", limit=-1)


def test_downstream_of_several_versions_is_one_graph(client: hw.Client, files) -> None:
    ids = three_steps(client, files)
    root: Path = ids["root"]  # type: ignore[assignment]
    (root / "side.csv").write_text("s")
    (root / "side-out.csv").write_text("so")
    client.log_artifact("side", root / "side.csv")
    with client.run("side-job") as side:
        side.use("side")
        side.log_artifact("side-out", root / "side-out.csv")
    refs = [Ref("clean", label="v0"), Ref("side"), Ref("clean", label="v0")]
    graph = client.store.downstream_of(refs)
    assert (graph.root, graph.direction) == (None, None)
    assert [v.ref for v in graph.versions] == ["clean:v0", "side:v0", "model:v0", "side-out:v0", "report:v0"]
    assert graph.depth == {"clean:v0": 0, "side:v0": 0, "model:v0": 1, "side-out:v0": 1, "report:v0": 2}
    assert sorted(r.job for r in graph.runs) == ["evaluate", "side-job", "train"]
    assert edges_of(graph, client) == {
        ("train", "used", "clean:v0"),
        ("train", "produced", "model:v0"),
        ("evaluate", "used", "model:v0"),
        ("evaluate", "produced", "report:v0"),
        ("side-job", "used", "side:v0"),
        ("side-job", "produced", "side-out:v0"),
    }
    # A run lists all its inputs, the one outside the graph (raw:v0) too.
    evaluate = next(r for r in graph.runs if r.job == "evaluate")
    assert evaluate == client.get_run(ids["evaluate"])  # type: ignore[arg-type]
    assert (evaluate.inputs, evaluate.outputs) == (["model:v0", "raw:v0"], ["report:v0"])
    each = [client.store.lineage(ref, "downstream") for ref in refs[:2]]
    assert {v.ref for v in graph.versions} == {v.ref for g in each for v in g.versions}
    assert client.store.downstream_of([]) == hw.LineageGraph()
    with pytest.raises(hw.NotFound, match="no artifact named 'nope'"):
        client.store.downstream_of([Ref("clean", label="v0"), Ref("nope")])


def test_diff_and_impact_answer_the_takedown_question(client: hw.Client, files) -> None:
    ids = three_steps(client, files)
    root: Path = ids["root"]  # type: ignore[assignment]
    (root / "raw" / "users.csv").write_text("id\n1\n")  # a privacy takedown removes a row
    (root / "raw" / "extra.csv").write_text("e")
    old_size = next(e.size for e in client.get("raw:v0").entries if e.path == "users.csv")
    client.log_artifact("raw", root / "raw", metadata={"rows": 1})
    diff = client.diff("raw:v0", "raw:v1")
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (["extra.csv"], [], ["users.csv"], 1)
    assert diff.sizes == {"extra.csv": [None, 1], "users.csv": [old_size, 5]}
    assert diff.metadata == {"rows": [None, 1]}
    old_users = next(e for e in client.get("raw:v0").entries if e.path == "users.csv")
    impact = client.impact(digest=old_users.digest)
    assert [v.ref for v in impact.holding] == ["raw:v0"]
    assert sorted(v.ref for v in impact.downstream.versions) == ["clean:v0", "model:v0", "raw:v0", "report:v0"]
    by_path = client.impact(path="users.csv")
    assert sorted(v.ref for v in by_path.holding) == ["raw:v0", "raw:v1"]
    # Asked of the version: users.csv as it was, by digest; raw:v1 holds other content there.
    as_it_was = client.impact(ref="raw:v0", path="users.csv")
    assert [v.ref for v in as_it_was.holding] == ["raw:v0"]
    assert sorted(v.ref for v in as_it_was.downstream.versions) == ["clean:v0", "model:v0", "raw:v0", "report:v0"]
    # All of raw:v0's files: raw:v1 still holds the unchanged one, so it is named too.
    assert sorted(v.ref for v in client.impact(ref="raw:v0").holding) == ["raw:v0", "raw:v1"]
    with pytest.raises(hw.NotFound, match="holds no file at 'nope.csv'"):
        client.impact(ref="raw:v0", path="nope.csv")
    with pytest.raises(hw.InvalidInput):
        client.impact(ref="raw:v0", digest=old_users.digest)


def test_a_use_may_arrive_before_its_producer(client: hw.Client, files) -> None:
    root = files({"m": "model"})
    early = client.content(root / "m")
    store = client.store
    consumer, producer = hw.run_id("test", "consumer"), hw.run_id("test", "producer")
    store.apply([RunRecorded(run_id=consumer, job="consume", status="succeeded")])
    store.apply(
        [VersionRecorded(name="m", digest=early.digest, entries=early.entries, run_id=consumer, direction="used")]
    )
    store.apply([RunRecorded(run_id=producer, job="produce", status="succeeded")])
    store.apply(
        [VersionRecorded(name="m", digest=early.digest, entries=early.entries, run_id=producer, direction="produced")]
    )
    version = client.get("m:v0")
    assert version.produced_by == producer
    assert edges_of(client.upstream("m:v0"), client) == {("produce", "produced", "m:v0")}
    assert edges_of(client.downstream("m:v0"), client) == {("consume", "used", "m:v0")}


def test_events_replayed_change_nothing(client: hw.Client, files) -> None:
    root = files({"a": "1"})
    content = client.content(root / "a")
    rid = hw.run_id("airflow", "dag", "task", "run", 1, -1)
    assert rid == hw.run_id("airflow", "dag", "task", "run", 1, -1)
    batch = [
        RunRecorded(run_id=rid, job="t", status="running"),
        VersionRecorded(name="a", digest=content.digest, entries=content.entries, run_id=rid, direction="produced"),
        AliasMoved(name="a", alias="prod", digest=content.digest),
        RunRecorded(run_id=rid, status="succeeded"),
    ]
    client.store.apply(batch)
    client.store.apply(batch)
    assert [m.version for m in client.alias_history("a")] == ["a:v0", "a:v0"]  # latest + prod, once each
    assert client.get_run(rid).status == "succeeded"
    assert len(client.downstream("a:v0").edges) == 0 and len(client.upstream("a:v0").edges) == 1


def test_terminal_states_never_revert(client: hw.Client) -> None:
    rid = hw.run_id("x", 1)
    now = datetime.now(timezone.utc)
    client.store.apply([RunRecorded(run_id=rid, job="j", status="succeeded", time=now)])
    client.store.apply([RunRecorded(run_id=rid, status="running", time=now + timedelta(seconds=5))])
    client.store.apply([RunRecorded(run_id=rid, status="failed", time=now + timedelta(seconds=6))])
    assert client.get_run(rid).status == "succeeded"
    other = hw.run_id("x", 2)
    client.store.apply([RunRecorded(run_id=other, job="j", status="running", time=now)])
    client.store.apply([RunRecorded(run_id=other, status="running", params={"a": 1}, time=now - timedelta(seconds=1))])
    client.store.apply([RunRecorded(run_id=other, status="aborted", time=now - timedelta(seconds=2))])
    assert client.get_run(other).status == "aborted" and client.get_run(other).params == {"a": 1}


def test_input_by_alias_at_event_time_is_marked_inexact(client: hw.Client, files) -> None:
    root = files({"a": "1"})
    client.log_artifact("a", root / "a")
    rid = hw.run_id("t", "inexact")
    then = datetime.now(timezone.utc)
    (root / "a").write_text("2")
    client.log_artifact("a", root / "a")
    client.store.apply(
        [RunRecorded(run_id=rid, job="late"), EdgeRecorded(run_id=rid, ref="a:latest", exact=False, time=then)]
    )
    edge = client.downstream("a:v0").edges[0]
    assert (edge.version, edge.exact, edge.direction) == ("a:v0", False, "used")


# -- bytes ------------------------------------------------------------------------------------


def test_download_restores_verified_bytes(client: hw.Client, files, tmp_path: Path) -> None:
    root = files({"d/x.bin": b"\x00" * 1000, "d/sub/y.txt": "why"})
    version = client.log_artifact("d", root / "d")
    folder = version.download(tmp_path / "out")
    assert (folder / "x.bin").read_bytes() == b"\x00" * 1000 and (folder / "sub/y.txt").read_text() == "why"
    cached = client.get("d:v0").download()
    assert cached.parent.name == "cache" and (cached / "sub" / "y.txt").read_text() == "why"
    single = client.get("d:v0").download(entry="sub/y.txt")
    assert single.read_text() == "why"
    reference = client.log_reference("ref", (root / "d" / "sub" / "y.txt").as_uri())
    assert reference.path == root / "d" / "sub" / "y.txt"
    (root / "d" / "sub" / "y.txt").write_text("drifted")
    with pytest.raises(hw.Conflict, match="changed"):
        reference.download(tmp_path / "drift")


def test_verify_reports_missing_and_changed(client: hw.Client, files, request: pytest.FixtureRequest) -> None:
    root = files({"a.txt": "a", "b.txt": "b"})
    stored = client.log_artifact("s", root)
    client.log_reference("r", root.as_uri())
    assert client.verify("s").ok and client.verify("r").ok
    (root / "a.txt").write_text("A")
    (root / "b.txt").unlink()
    report = client.verify("r")
    assert (report.ok, report.changed, report.missing, report.checked) == (False, ["a.txt"], ["b.txt"], 2)
    assert client.verify("s").ok  # stored bytes do not depend on the source folder
    blob = next(d for d in client.blobs.iter_digests() if d == stored.entries[0].digest)
    server_copy = server_blob(request, blob)
    if server_copy is None:
        client.blobs.delete(blob)
    else:  # the server refuses to delete a blob a live version stores: lose it from its disk
        server_copy.unlink()
    assert client.verify("s").missing == ["a.txt"]


def server_blob(request: pytest.FixtureRequest, digest: str) -> Path | None:
    """The tracking server's file of a blob, when the test runs over HTTP."""
    backend = request.node.callspec.params["store_uri"]
    if not backend.startswith("http"):
        return None
    server = request.getfixturevalue("headwater_server" if backend == "http" else "headwater_server_postgres")
    return server.blobs / "blake3" / digest[7:9] / digest[9:]


def test_delete_keeps_lineage_and_gc_collects_blobs(client: hw.Client, files, request: pytest.FixtureRequest) -> None:
    root = files({"a": "secret", "b": "fine"})
    client.log_artifact("p", root / "a")
    client.log_artifact("p", root / "b")
    with client.run("use-it") as run:
        run.use("p:v0")
    deleted = client.delete("p:v0")
    assert deleted.deleted and deleted.aliases == []
    assert [v.label for v in client.versions("p")] == ["v1"]
    assert client.get("p").label == "v1"
    assert [r.job for r in client.runs_using("p")] == ["use-it"]  # the tombstone keeps lineage
    secret = client.get("p:v0").entries[0].digest
    assert client.gc() == []  # stored within the grace period (HEADWATER_GC_GRACE, 24h)
    server_copy = server_blob(request, secret)
    if server_copy is not None:
        # The server keeps its own grace period (409 to a younger blob's DELETE): age its copy.
        assert client.gc(grace=0) == []
        os.utime(server_copy, (0, 0))
    assert client.gc(grace=0) == [secret]
    with pytest.raises(hw.NotFound, match="deleted"):
        client.get("p:v0").download()
    with pytest.raises(hw.Conflict, match="deleted"):
        client.log_artifact("p", root / "a")


def test_location_artifacts_are_used_by_path_uri_or_versioned_ref(client: hw.Client, files) -> None:
    root = files({"users.csv": "1\n"})
    uri = (root / "users.csv").as_uri()
    with client.run("first") as first:
        assert first.use(root / "users.csv").ref == f"{uri}:v0"  # a Path: hashed, named by its URI
    (root / "users.csv").write_text("1\n2\n")
    with client.run("second") as second:
        assert second.use(uri).ref == f"{uri}:v1"  # a URI: hashed now
        assert second.use(f"{uri}:v0").ref == f"{uri}:v0"  # a REF to a recorded version
    assert client.get_run(second.id).inputs == [f"{uri}:v0", f"{uri}:v1"]
    assert client.get(uri).label == "v1"
    dumped = client.get(f"{uri}:v0").model_dump(mode="json")
    assert dumped["ref"] == f"{uri}:v0" and hw.Version.model_validate(dumped).ref == f"{uri}:v0"


def test_an_input_pinned_to_an_unknown_version_is_kept_inexact(client: hw.Client, files) -> None:
    client.log_artifact("ds", files({"a": "1"}) / "a")
    rid = hw.run_id("t", "pinned")
    client.store.apply([RunRecorded(run_id=rid, job="reader"), EdgeRecorded(run_id=rid, ref="ds:v9")])
    [edge] = client.downstream("ds:v0").edges
    assert (edge.version, edge.exact, edge.metadata) == ("ds:v0", False, {"requested": "ds:v9"})
    other = hw.run_id("t", "nothing")
    client.store.apply([RunRecorded(run_id=other, job="reader"), EdgeRecorded(run_id=other, ref="ghost:v2")])
    ghost = client.get("ghost")
    assert (ghost.digest, ghost.entries) == (f"unverified:{other}", [])
    [edge] = client.downstream("ghost:v0").edges
    assert (edge.exact, edge.metadata) == (False, {"requested": "ghost:v2"})


def test_a_placeholder_learns_where_its_bytes_are(client: hw.Client) -> None:
    rid = hw.run_id("t", "same-path")
    entry = hw.ManifestEntry(path="out.csv", digest=f"unverified:{rid}", size=0, ref="s3://b/out.csv")
    client.store.apply(
        [RunRecorded(run_id=rid, job="rewrite"), EdgeRecorded(run_id=rid, ref="s3://b/out.csv", exact=False)]
    )
    client.store.apply(
        [
            VersionRecorded(
                name="s3://b/out.csv", digest=f"unverified:{rid}", entries=[entry], run_id=rid, direction="produced"
            )
        ]
    )
    version = client.get("s3://b/out.csv")
    assert (version.label, version.entries, version.produced_by) == ("v0", [entry], rid)
    assert client.get_run(rid).inputs == client.get_run(rid).outputs == ["s3://b/out.csv:v0"]


def test_impact_of_a_version_skips_unverified_digests_and_takes_local_paths(client: hw.Client, files) -> None:
    # One run's two unreadable outputs share the placeholder digest `unverified:<run id>`:
    # that is not content, so asking about one of them must not name the other.
    rid = hw.run_id("t", "two-unreadable")
    events = [RunRecorded(run_id=rid, job="export")]
    for name in ("s3://b/a.csv", "s3://b/b.csv"):
        entry = hw.ManifestEntry(path=name.rsplit("/", 1)[1], digest=f"unverified:{rid}", size=0, ref=name)
        events.append(
            VersionRecorded(name=name, digest=f"unverified:{rid}", entries=[entry], run_id=rid, direction="produced")
        )
    client.store.apply(events)
    assert [v.ref for v in client.impact(ref="s3://b/a.csv:v0").holding] == ["s3://b/a.csv:v0"]
    # A local path narrows REF as it does for impact(path=): by the file:// URI it was recorded at.
    root = files({"users.csv": "id\n1\n", "other.csv": "o"})
    client.log_reference("users", root.as_uri())
    as_path = client.impact(ref="users:v0", path=root / "users.csv")
    assert (
        [v.ref for v in as_path.holding]
        == ["users:v0"]
        == [v.ref for v in client.impact(path=root / "users.csv").holding]
    )


# -- per-output edges and edges added later ----------------------------------------------------


def split_step(client: hw.Client, files) -> hw.Run:
    """One run reading a and b and writing c (from a) and d (from b), plus e (said from nothing:
    made from every input, the fallback)."""
    root = files({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"})
    client.log_artifact("a", root / "a")
    client.log_artifact("b", root / "b")
    return client.link(
        "split",
        ["a", "b"],
        [
            hw.Output("c", root / "c", inputs=["a:v0"]),
            hw.Output("d", root / "d", inputs=["b"]),
            hw.Output("e", root / "e"),
        ],
    )


def test_upstream_of_an_output_follows_only_its_own_inputs(client: hw.Client, files) -> None:
    run = split_step(client, files)
    assert (run.inputs, run.outputs) == (["a:v0", "b:v0"], ["c:v0", "d:v0", "e:v0"])
    up = client.upstream("c")
    assert sorted(v.ref for v in up.versions) == ["a:v0", "c:v0"]
    assert edges_of(up, client) == {("split", "used", "a:v0"), ("split", "produced", "c:v0")}
    assert [(e.version, e.inputs) for e in up.edges if e.direction == "produced"] == [("c:v0", ["a:v0"])]
    for depth in (None, 1):
        assert sorted(v.ref for v in client.upstream("d", depth=depth).versions) == ["b:v0", "d:v0"]
        assert sorted(v.ref for v in client.upstream("e", depth=depth).versions) == ["a:v0", "b:v0", "e:v0"]
        down = client.downstream("a", depth=depth)
        assert sorted(v.ref for v in down.versions) == ["a:v0", "c:v0", "e:v0"]
        assert edges_of(down, client) == {
            ("split", "used", "a:v0"),
            ("split", "produced", "c:v0"),
            ("split", "produced", "e:v0"),
        }
        assert sorted(v.ref for v in client.downstream("b", depth=depth).versions) == ["b:v0", "d:v0", "e:v0"]
    produced = [(e.version, e.inputs) for e in down.edges if e.direction == "produced"]
    assert produced == [("c:v0", ["a:v0"]), ("e:v0", [])]
    assert sorted(v.ref for v in client.path("a", "c").versions) == ["a:v0", "c:v0"]
    assert client.path("a", "d").versions == []


def test_an_input_named_only_by_its_output_is_an_input_of_the_run(client: hw.Client, files) -> None:
    root = files({"a": "A", "m": "M"})
    client.log_artifact("a", root / "a")
    run = client.link("only", outputs=[hw.Output("m", root / "m", inputs=["a", "a:v0"])])
    assert (run.inputs, run.outputs) == (["a:v0"], ["m:v0"])
    up = client.upstream("m")
    assert [(e.version, e.inputs) for e in up.edges if e.direction == "produced"] == [("m:v0", ["a:v0"])]


def test_inputs_and_outputs_are_added_to_an_existing_run(client: hw.Client, files) -> None:
    root = files({"a": "A", "b": "B", "c": "C", "late": "L"})
    client.log_artifact("a", root / "a")
    client.log_artifact("b", root / "b")
    rid = hw.run_id("airflow", "dag", "task", "run-1", 1, -1)  # a run another orchestrator recorded
    client.emit(
        [
            RunRecorded(run_id=rid, job="dag.task", orchestrator="airflow", run_kind="task", status="succeeded"),
            EdgeRecorded(run_id=rid, ref="a"),
        ]
    )
    before = datetime.now(timezone.utc)
    run = client.link(run_id=rid, inputs=["b"], outputs=[hw.Output("late", root / "late", inputs=["b"])])
    assert (run.id, run.job, run.orchestrator, run.status) == (rid, "dag.task", "airflow", "succeeded")
    assert (run.inputs, run.outputs) == (["a:v0", "b:v0"], ["late:v0"])
    up = client.upstream("late")
    assert sorted(v.ref for v in up.versions) == ["b:v0", "late:v0"]
    added = {e.version: e.created_at for e in up.edges}
    assert all(at is not None and at >= before for at in added.values())
    down = client.downstream("a")
    assert sorted(v.ref for v in down.versions) == ["a:v0"]  # late was made from b alone
    assert edges_of(client.downstream("b"), client) == {
        ("dag.task", "used", "b:v0"),
        ("dag.task", "produced", "late:v0"),
    }
    with pytest.raises(hw.NotFound, match="no run"):
        client.link(run_id="no-such-run", inputs=["a"])
    with pytest.raises(hw.InvalidInput, match="stay"):
        client.link("other", run_id=rid, inputs=["a"])
    with pytest.raises(hw.InvalidInput, match="nothing to add"):
        client.link(run_id=rid)


def test_declared_inputs_by_ref_resolve_as_their_edges_did(client: hw.Client, files) -> None:
    """Events as a queued link sends them: the inputs by REF, resolved by the store on delivery
    (a REF of a version, `latest` at the event's time, an artifact nobody recorded yet)."""
    root = files({"a": "A", "b": "B", "out": "O"})
    a = client.log_artifact("a", root / "a")
    client.log_artifact("b", root / "b")
    out = client.content(root / "out")
    client.emit(
        [
            RunRecorded(run_id="r1", job="queued", status="succeeded"),
            EdgeRecorded(run_id="r1", ref="a:v0"),
            EdgeRecorded(run_id="r1", ref="b", exact=False),
            EdgeRecorded(run_id="r1", ref="ghost", exact=False),
            VersionRecorded(
                name="out",
                digest=out.digest,
                entries=out.entries,
                run_id="r1",
                direction="produced",
                inputs=["a:v0", "ghost"],
            ),
        ]
    )
    up = client.upstream("out")
    assert sorted(v.ref for v in up.versions) == ["a:v0", "ghost:v0", "out:v0"]
    assert [e.inputs for e in up.edges if e.direction == "produced"] == [["a:v0", "ghost:v0"]]
    assert [v.ref for v in client.downstream("b").versions] == ["b:v0"]
    assert sorted(v.ref for v in client.downstream(a.ref).versions) == ["a:v0", "out:v0"]
    with pytest.raises(hw.InvalidInput, match="only an output"):
        VersionRecorded(name="x", digest=out.digest, entries=out.entries, run_id="r1", direction="used", inputs=["a"])


def test_check_lists_local_references_that_changed(client: hw.Client, files) -> None:
    root = files({"d/u.csv": "1\n", "d/v.csv": "2\n"})
    version = client.log_reference("d", (root / "d").as_uri())
    assert client.check(version.ref) == [] and client.status() == []
    (root / "d" / "u.csv").write_text("1\n2\n")
    (root / "d" / "v.csv").unlink()
    found = [(d.version, d.path, d.status) for d in client.status()]
    assert found == [("d:v0", "u.csv", "changed"), ("d:v0", "v.csv", "missing")]


# -- purges and the audit log -------------------------------------------------------------------

MARKER = b"MARKER-7f3a-ALICE-PERSONAL-DATA"


def files_holding(marker: bytes, *folders: Path) -> list[Path]:
    """Every file under the folders whose bytes hold `marker` (what a data-protection officer
    would search for)."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file() and not path.is_symlink() and marker in path.read_bytes():
                found.append(path)
    return found


def server_blob_folder(request: pytest.FixtureRequest) -> Path | None:
    backend = request.node.callspec.params["store_uri"]
    if not backend.startswith("http"):
        return None
    server = request.getfixturevalue("headwater_server" if backend == "http" else "headwater_server_postgres")
    return Path(server.blobs)


def test_purge_by_path_removes_the_bytes_everywhere_and_keeps_the_lineage(
    client: hw.Client, files, headwater_home: Path, request: pytest.FixtureRequest
) -> None:
    root = files({"users_eu.csv": b"id,name\n1," + MARKER + b"\n", "users_us.csv": "id,name\n2,bob\n"})
    with client.run("export") as export:
        export.log_artifact("users", root, type="dataset")
    with client.run("train") as train:
        train.use("users:v0")
        train.log_artifact("model", files({"m.bin": "weights"}, "model") / "m.bin", type="model")
    client.get("users:v0").download()  # a cached copy in HEADWATER_HOME/cache
    secret = next(e for e in client.get("users:v0").entries if e.path == "users_eu.csv")
    server_blobs = server_blob_folder(request)
    assert files_holding(MARKER, headwater_home, *([server_blobs] if server_blobs else []))  # there before

    plan = client.purge(reason="erasure request #12", path="users_eu.csv", dry_run=True)
    assert isinstance(plan, hw.PurgePlan) and not isinstance(plan, hw.PurgeReport)
    assert (plan.digests, plan.holding, plan.files, plan.blobs) == ([secret.digest], ["users:v0"], 1, [secret.digest])
    assert [Path(p).name for p in plan.cached] == ["users_eu.csv"]
    assert {v.ref for v in plan.impact.downstream.versions} == {"users:v0", "model:v0"}
    assert client.get("users:v0").purged == [] and client.audit() == []  # a dry run changes nothing

    report = client.purge(reason="erasure request #12", path="users_eu.csv")
    assert isinstance(report, hw.PurgeReport)
    assert report.record.action == "purge" and report.record.reason == "erasure request #12"
    assert report.record.details["versions"] == ["users:v0"] and report.record.details["files"] == 1
    assert [Path(p).name for p in report.removed_cached] == ["users_eu.csv"]
    assert files_holding(MARKER, headwater_home, *([server_blobs] if server_blobs else [])) == []
    assert not client.blobs.has(secret.digest)

    version = client.get("users:v0")
    assert version.purged == ["users_eu.csv"]
    assert [(p.reason, p.id) for p in version.purges] == [("erasure request #12", report.record.id)]
    assert secret in version.entries  # digest and size kept, the path too (not redacted)
    with pytest.raises(hw.Purged, match=r"users:v0: 1 file\(s\) purged .*erasure request #12.*users_eu.csv"):
        version.download()
    with pytest.raises(hw.Purged, match="users_eu.csv"):
        client.verify("users:v0")
    kept = version.download(entry="users_us.csv")  # the other file is still there
    assert kept.read_text() == "id,name\n2,bob\n"
    # Lineage stays: the same runs, versions and edges.
    graph = client.upstream("model:v0")
    assert edges_of(graph, client) == {
        ("export", "produced", "users:v0"),
        ("train", "produced", "model:v0"),
        ("train", "used", "users:v0"),
    }
    assert {v.ref for v in client.impact(ref="users:v0").downstream.versions} == {"users:v0", "model:v0"}
    assert client.diff("users:v0", "users:v0").unchanged == 2
    [record] = client.audit()
    assert record == report.record and record.who and record.target == "--path users_eu.csv"


def test_purge_with_redacted_paths_and_content_logged_again(
    client: hw.Client, files, request: pytest.FixtureRequest
) -> None:
    root = files({"user_1234.jpg": MARKER, "ok.txt": "ok"})
    client.log_artifact("photos", root)
    digest = next(e.digest for e in client.get("photos:v0").entries if e.path == "user_1234.jpg")
    report = client.purge(reason="takedown", digest=digest, redact_path=True)
    assert isinstance(report, hw.PurgeReport)
    version = client.get("photos:v0")
    redacted = f"purged-{report.record.id}-0"
    assert version.purged == [redacted]
    assert sorted((e.path, e.digest) for e in version.entries) == sorted(
        [("ok.txt", next(e.digest for e in version.entries if e.path == "ok.txt")), (redacted, digest)]
    )
    assert "user_1234" not in client.audit()[0].model_dump_json()
    assert client.impact(digest=digest).holding[0].ref == "photos:v0"  # still found by content

    # Logged again: a new version, its purged file recorded as purged and not stored.
    again = client.log_artifact("avatars", root / "user_1234.jpg")
    assert (again.ref, again.purged) == ("avatars:v0", [redacted])
    assert not client.blobs.has(digest)
    with pytest.raises(hw.Purged):
        again.download()
    # allow_purged stores it again, on purpose.
    back = client.log_artifact("restored", root / "user_1234.jpg", allow_purged=True)
    assert (back.ref, back.purged) == ("restored:v0", [])
    assert back.download().read_bytes() == MARKER
    assert client.get("avatars:v0").purged == [redacted]  # the earlier records stay purged


def test_purge_of_a_version_narrowed_to_one_file_leaves_later_content(client: hw.Client, files) -> None:
    root = files({"users.csv": "1,alice\n2,bob\n", "schema.json": "{}"})
    client.log_artifact("export", root)
    (root / "users.csv").write_text("2,bob\n")  # the export after the takedown
    client.log_artifact("export", root)
    copy = client.log_artifact("copy", files({"users.csv": "1,alice\n2,bob\n"}, "elsewhere") / "users.csv")
    report = client.purge(reason="alice asked", ref="export:v0", path="users.csv")
    assert isinstance(report, hw.PurgeReport)
    assert sorted(report.holding) == ["copy:v0", "export:v0"]  # the copy elsewhere is found by content
    assert client.get("export:v0").purged == ["users.csv"]
    assert client.get(copy.ref).purged == ["users.csv"]
    assert client.get("export:v1").purged == []
    assert client.get("export:v1").download().joinpath("users.csv").read_text() == "2,bob\n"
    with pytest.raises(hw.InvalidInput, match="reason"):
        client.purge(reason=" ", ref="export:v1")
    with pytest.raises(hw.NotFound, match="holds no file"):
        client.purge(reason="x", ref="export:v1", path="nope.csv")


def test_a_purge_under_an_event_id_already_used_is_refused_and_purges_nothing(client: hw.Client, files) -> None:
    version = client.log_artifact("users", files({"users.csv": "1,alice\n"}) / "users.csv")
    run = RunRecorded(run_id=hw.run_id("taken"), job="j")
    client.emit([run])
    digest = version.entries[0].digest
    taken = ContentPurged(id=run.id, digests=[digest], reason="alice asked", who="ops")
    with pytest.raises(hw.Conflict, match="already used by another event"):
        client.store.purge(taken)
    assert client.get("users:v0").purged == [] and client.audit() == []
    record, _ = client.store.purge(ContentPurged(digests=[digest], reason="alice asked", who="ops"))
    assert (record.action, client.get("users:v0").purged) == ("purge", ["users.csv"])


def test_purge_reports_referenced_objects_without_deleting_them(client: hw.Client, files) -> None:
    root = files({"local.csv": "a", "remote.csv": "b"})
    client.log_artifact("mixed", root / "local.csv")
    client.log_reference("pointer", (root / "remote.csv").as_uri())
    client.log_artifact("stored", root / "remote.csv", store=True)
    report = client.purge(reason="r", path=str(root / "remote.csv"))
    assert isinstance(report, hw.PurgeReport)
    assert report.references == [(root / "remote.csv").as_uri()]
    assert report.record.details["references"] == [(root / "remote.csv").as_uri()]
    assert (root / "remote.csv").read_text() == "b"  # not headwater's to delete
    assert client.get("pointer:v0").purged == []  # a reference entry holds no bytes of ours
    assert client.get("stored:v0").purged == ["remote.csv"]
    assert sorted(report.holding) == ["pointer:v0", "stored:v0"]
    # A version of references only: nothing of ours but cached copies; reported and recorded.
    cached = client.get("pointer:v0").download()
    only = client.purge(reason="reported", ref="pointer:v0")
    assert isinstance(only, hw.PurgeReport)
    assert (only.digests, only.references, only.files) == ([], [(root / "remote.csv").as_uri()], 0)
    assert only.removed_cached == [str(cached)] and not cached.exists()
    assert only.record.details["references"] == [(root / "remote.csv").as_uri()]
    assert only.reference_status == {(root / "remote.csv").as_uri(): "holds it"}
    assert (root / "remote.csv").read_text() == "b" and client.get("pointer:v0").purged == []


def test_deletes_are_in_the_audit_log(client: hw.Client, files) -> None:
    root = files({"a": "1", "b": "2"})
    client.log_artifact("d", root / "a")
    client.log_artifact("d", root / "b")
    client.delete("d:v0", reason="wrong export")
    client.delete("d:v1")
    records = client.audit()
    assert [(r.action, r.target, r.reason) for r in records] == [
        ("delete", "d:v1", None),
        ("delete", "d:v0", "wrong export"),
    ]
    assert records[0].id > records[1].id and records[0].who == records[1].who != "unknown"
    assert [r.target for r in client.audit(limit=1)] == ["d:v1"]
    assert client.audit(action="purge") == []


def test_retention_policies_delete_old_versions_but_not_what_production_was_built_from(
    client: hw.Client, files
) -> None:
    from datetime import datetime, timedelta, timezone

    from headwater import retention

    root = files({"d.csv": "0"})
    for i in range(4):
        (root / "d.csv").write_text(str(i))
        client.log_artifact("ds", root / "d.csv", type="dataset")
    with client.run("train") as train:
        train.use("ds:v1")
        train.log_artifact("model", files({"m": "w"}, "m") / "m", type="model", aliases=["production"])
    client.alias("ds:v2", "candidate")
    assert client.apply_retention() == []  # no policy: nothing

    client.set_retention(type="dataset", keep_last=1)
    [policy] = client.retention()
    assert (policy.selector, policy.value, policy.keep_last, policy.protect_lineage) == ("type", "dataset", 1, True)
    assert policy.who and policy.set_at is not None
    assert [r.ref for r in client.apply_retention(dry_run=True)] == ["ds:v0"]  # v1 made production; v2 aliased
    assert [v.label for v in client.versions("ds")] == ["v0", "v1", "v2", "v3"]  # a dry run deletes nothing

    removed = client.apply_retention()
    assert [(r.ref, r.policy) for r in removed] == [("ds:v0", "type dataset: keep last 1")]
    assert [v.label for v in client.versions("ds")] == ["v1", "v2", "v3"]
    assert client.get("ds:v0").deleted
    [record] = client.audit(action="retention")
    assert (record.target, record.reason) == ("ds:v0", "retention: type dataset: keep last 1")

    # A policy for the name wins over the type's; without lineage protection v1 goes too.
    client.set_retention(name="ds", keep_last=1, protect_lineage=False)
    assert [r.ref for r in client.apply_retention()] == ["ds:v1"]
    assert "train" in {r.job for r in client.upstream("model:production").runs}  # lineage kept
    # Older than: measured from each version's creation.
    client.set_retention(name="ds", older_than_s=3600, protect_lineage=False, remove=False)
    client.alias("ds:v3", "production")
    assert retention.plan(client) == []  # all younger than an hour
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    assert [r.ref for r in retention.plan(client, now=later)] == []  # v2 and v3 hold aliases
    client.unalias("ds", "candidate")
    assert [r.ref for r in retention.plan(client, now=later)] == ["ds:v2"]
    client.set_retention(name="ds", remove=True)
    assert [(p.selector, p.value) for p in client.retention()] == [("type", "dataset")]
    with pytest.raises(hw.InvalidInput, match="--keep-last"):
        client.set_retention(type="model")


# -- reachable: the refs of a walk ----------------------------------------------------------------


def ref_order(ref: str) -> tuple[str, int]:
    name, label = ref.rsplit(":v", 1)
    return name, int(label)


def agrees_with_lineage(client: hw.Client, ref: str, direction: str, depth: int | None) -> hw.Reachable:
    """`reachable` holds exactly the refs, hops and runs of `lineage` from the same version, in
    order of hops, then name and label."""
    reached = client.reachable(ref, direction, depth=depth)  # type: ignore[arg-type]
    graph = client.store.lineage(client.parse(ref), direction, depth)  # type: ignore[arg-type]
    where = (ref, direction, depth)
    assert (reached.root, reached.direction) == (graph.root, graph.direction), where
    assert reached.versions == graph.depth, where
    assert list(reached.versions) == sorted(reached.versions, key=lambda r: (reached.versions[r], ref_order(r)))
    assert set(reached.runs) == {r.id for r in graph.runs}, where
    assert list(reached.runs) == sorted(reached.runs, key=lambda r: (reached.runs[r], r))
    for hop in set(reached.runs.values()):  # a run's hop: the depth of the first graph holding it
        within = {r.id for r in client.store.lineage(client.parse(ref), direction, hop).runs}  # type: ignore[arg-type]
        assert within == {r for r, at in reached.runs.items() if at <= hop}, (where, hop)
    return reached


def test_reachable_refs_hops_and_runs_are_the_graphs(client: hw.Client, files) -> None:
    ids = three_steps(client, files)
    down = agrees_with_lineage(client, "raw:v0", "downstream", None)
    assert list(down.versions.items()) == [("raw:v0", 0), ("clean:v0", 1), ("report:v0", 1), ("model:v0", 2)]
    assert down.runs == {ids["clean"]: 1, ids["evaluate"]: 1, ids["train"]: 2}
    assert "model:v0" in down and ids["train"] in down and "raw:v1" not in down
    one = agrees_with_lineage(client, "raw:v0", "downstream", 1)
    assert list(one.versions.items()) == [("raw:v0", 0), ("clean:v0", 1), ("report:v0", 1)]
    assert one.runs == {ids["clean"]: 1, ids["evaluate"]: 1}
    up = agrees_with_lineage(client, "model:candidate", "upstream", None)
    assert (up.root, list(up.versions.items())) == ("model:v0", [("model:v0", 0), ("clean:v0", 1), ("raw:v0", 2)])
    assert up.runs == {ids["train"]: 1, ids["clean"]: 2}
    none = agrees_with_lineage(client, "raw", "downstream", 0)
    assert (none.versions, none.runs) == ({"raw:v0": 0}, {})
    assert client.reachable("raw:v0", "upstream") == hw.Reachable(
        root="raw:v0", direction="upstream", versions={"raw:v0": 0}
    )
    with pytest.raises(hw.NotFound, match="no artifact named 'nope'"):
        client.reachable("nope")
    with pytest.raises(hw.NotFound, match="has no version v9"):
        client.reachable("raw:v9", "upstream")
    with pytest.raises(hw.InvalidInput, match="depth"):
        client.reachable("raw", depth=-1)


def test_reachable_through_cycles_declared_inputs_and_runs_that_write_nothing(client: hw.Client, files) -> None:
    run = split_step(client, files)  # a,b -> split -> c (from a), d (from b), e (from both)
    root = files({"same": "same bytes"})
    with client.run("rewrite") as rewrite:  # uses and produces loop:v0: a cycle of one run
        rewrite.use("c")
        rewrite.use(root / "same", name="loop")
        rewrite.log_artifact("loop", root / "same", store=False)
    with client.run("look") as look:  # uses e and writes nothing
        look.use("e")
    one = agrees_with_lineage(client, "a", "downstream", 1)
    assert (one.versions, one.runs) == ({"a:v0": 0, "c:v0": 1, "e:v0": 1}, {run.id: 1})
    for depth in (None, 2):
        down = agrees_with_lineage(client, "a", "downstream", depth)
        assert down.versions == {"a:v0": 0, "c:v0": 1, "e:v0": 1, "loop:v0": 2}
        assert down.runs == {run.id: 1, rewrite.id: 2, look.id: 2}
    for depth, runs in ((None, {run.id: 1, look.id: 2}), (1, {run.id: 1})):  # at 1, e's users are a run too far
        b = agrees_with_lineage(client, "b", "downstream", depth)
        assert (b.versions, b.runs) == ({"b:v0": 0, "d:v0": 1, "e:v0": 1}, runs)  # not c: made from a
        assert agrees_with_lineage(client, "d", "upstream", depth).versions == {"d:v0": 0, "b:v0": 1}
    loop = agrees_with_lineage(client, "loop", "upstream", None)
    assert loop.versions == {"loop:v0": 0, "c:v0": 1, "a:v0": 2}
    assert loop.runs == {rewrite.id: 1, run.id: 2}
    assert agrees_with_lineage(client, "loop", "downstream", None).versions == {"loop:v0": 0}


def test_reachable_agrees_with_lineage_on_a_tangled_graph(client: hw.Client, files, monkeypatch) -> None:
    """A seeded graph of 20 runs over 4 sources: outputs that declare some of their run's
    inputs, outputs that rewrite bytes already recorded (cycles through several runs), new
    versions of earlier artifacts, runs that write nothing. Every version, both ways, at every
    depth that matters, gives lineage's refs, hops and runs; on the SQL store also when every
    level is read on its own, and when a walk to the end is given up at once."""
    import random

    from headwater.store.sql import SQLStore

    rng = random.Random(18)
    root = files({f"f{i}": f"content {i}" for i in range(40)})
    file_of: dict[str, Path] = {}
    for i in range(4):
        file_of[client.log_artifact(f"src{i}", root / f"f{i}").ref] = root / f"f{i}"
    fresh = iter(range(4, 40))
    declaring = 0
    for r in range(20):
        rid = f"run-{r:02d}"
        used = rng.sample(sorted(file_of), k=min(len(file_of), rng.choice((1, 2, 3))))
        events: list[object] = [RunRecorded(run_id=rid, job=f"job{r % 5}", status="succeeded")]
        events += [EdgeRecorded(run_id=rid, ref=ref) for ref in used]
        for k in range(rng.choice((0, 1, 2))):
            kind = rng.random()
            if kind < 0.25:  # bytes already recorded, under their own name: a cycle
                again = rng.choice(sorted(file_of))
                name, path = again.rsplit(":", 1)[0], file_of[again]
            else:  # new bytes, under a new name or as the next version of an earlier one
                name = f"out{r}-{k}" if kind < 0.75 else rng.choice(sorted(file_of)).rsplit(":", 1)[0]
                path = root / f"f{next(fresh)}"
            declared = rng.sample(used, k=rng.randint(1, len(used))) if rng.random() < 0.4 else []
            declaring += bool(declared)
            content = client.content(path)
            events.append(
                VersionRecorded(
                    name=name,
                    digest=content.digest,
                    entries=content.entries,
                    run_id=rid,
                    direction="produced",
                    inputs=declared,
                )
            )
        client.emit(events)  # type: ignore[arg-type]
        for version in client.get_run(rid).outputs:
            file_of.setdefault(version, root / f"f{int(client.get(version).entries[0].path[1:])}")
    longest, below = 0, {}
    for ref in sorted(file_of):
        for direction in ("downstream", "upstream"):
            for depth in (None, 0, 1, 2):
                reached = agrees_with_lineage(client, ref, direction, depth)
                longest = max(longest, *reached.versions.values())
                if direction == "downstream" and depth is None:
                    below[ref] = set(reached.versions) - {ref}
    if isinstance(client.store, SQLStore):
        for narrow, at_once_rows in ((0, 10_000), (1_000, 6)):
            monkeypatch.setattr("headwater.store.sql.reach._NARROW", narrow)
            monkeypatch.setattr("headwater.store.sql.reach._AT_ONCE_ROWS", at_once_rows)
            for ref in sorted(file_of):
                for direction in ("downstream", "upstream"):
                    for depth in (None, 1, 3):
                        agrees_with_lineage(client, ref, direction, depth)
    # The graph is as tangled as the docstring says: the walks go deep, some pass a cycle
    # through several runs, some outputs declare their inputs.
    assert len(file_of) >= 20 and declaring >= 3 and longest >= 4, (len(file_of), declaring, longest)
    assert any(ref in below[other] for ref in below for other in below[ref])
