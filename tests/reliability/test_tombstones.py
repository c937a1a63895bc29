"""A deleted version never dead-letters a run: the run, its other inputs and outputs and the edge
to the deleted content are recorded; the version stays deleted (no alias, not latest, no bytes).

Runs against every backend (SQLite, PostgreSQL, and the tracking server over each)."""

from __future__ import annotations

import logging

import pytest

import headwater as hw
from headwater.errors import Conflict, NotFound
from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
from headwater.observe import Observer, location_name


def _deleted(client: hw.Client, name: str) -> hw.Version:
    """Log `name`'s only version, then delete it; returns it as deleted."""
    version = client.get(name)
    deleted = client.delete(version.ref)
    assert deleted.deleted and deleted.aliases == []
    return deleted


def _edges(client: hw.Client, run_id: str) -> list[tuple[str, str, bool]]:
    """The run's edges, as the lineage graph of each version it touched shows them."""
    run = client.get_run(run_id)
    graphs = [client.downstream(ref, depth=1) for ref in run.inputs]
    graphs += [client.upstream(ref, depth=1) for ref in run.outputs]
    return sorted({(e.version, e.direction, e.exact) for g in graphs for e in g.edges if e.run_id == run_id})


def _assert_still_deleted(client: hw.Client, deleted: hw.Version, latest: str | None) -> None:
    again = client.get(f"{deleted.name}@{deleted.digest}")
    assert (again.label, again.deleted, again.aliases) == (deleted.label, True, [])
    assert [v.label for v in client.versions(deleted.name)] == ([] if latest is None else [latest])
    if latest is None:
        with pytest.raises(NotFound, match=f"artifact '{deleted.name}' has no alias 'latest'"):
            client.get(deleted.name)
    else:
        assert client.get(deleted.name).label == latest
    with pytest.raises(NotFound, match=f"{deleted.ref} was deleted; its content is gone"):
        client.download(again)


def test_an_adapter_batch_reading_deleted_content_records_the_whole_run(
    client: hw.Client, files, caplog: pytest.LogCaptureFixture
) -> None:
    data = files({"users.csv": "id\n1\n", "orders.csv": "id\n7\n", "model.bin": "w=1"})
    observer = Observer("airflow", client_factory=lambda: client)
    users = location_name(data / "users.csv")
    with observer.batch() as batch:  # an export task wrote users.csv, then it was deleted
        batch.run("export-1", job="export", kind="task", status="succeeded")
        batch.produced("export-1", data / "users.csv")
    deleted = _deleted(client, users)

    with caplog.at_level(logging.WARNING, logger="headwater"), observer.batch() as batch:
        batch.run("train-1", job="train", kind="task", status="succeeded")
        batch.used("train-1", data / "users.csv")  # the same bytes: the deleted version
        batch.used("train-1", data / "orders.csv")
        batch.produced("train-1", data / "model.bin", aliases=["candidate"])

    assert batch.delivered is True and client.outbox.dead() == [] and client.outbox.pending() == []
    orders, model = location_name(data / "orders.csv"), location_name(data / "model.bin")
    run = client.get_run("train-1")
    assert (run.job, run.status, run.inexact) == ("train", "succeeded", [])
    assert run.inputs == sorted([f"{orders}:v0", f"{users}:v0"]) and run.outputs == [f"{model}:v0"]
    assert _edges(client, "train-1") == sorted(
        [(f"{orders}:v0", "used", True), (f"{users}:v0", "used", True), (f"{model}:v0", "produced", True)]
    )
    assert client.get(model).aliases == ["latest", "candidate"]
    _assert_still_deleted(client, deleted, latest=None)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        (
            f"headwater: {users}@{deleted.digest} was deleted: run train-1's used edge is kept on its "
            "tombstone, its content is gone"
        )
    ]


def test_a_run_producing_deleted_content_keeps_its_edge_and_moves_no_alias(client: hw.Client, files) -> None:
    old, new = files({"m.bin": "old"}, "old") / "m.bin", files({"m.bin": "new"}, "new") / "m.bin"
    client.log_artifact("model", old)
    v1 = client.log_artifact("model", new, aliases=["prod"])
    deleted = client.delete("model:v0")
    with client.run("retrain") as run:
        other = run.log_artifact("metrics", files({"m.json": "{}"}, "metrics") / "m.json")
        again = run.log_artifact("model", old, aliases=["prod", "fresh"], tags=["retrained"])
    assert (again.label, again.deleted, again.aliases, again.tags) == ("v0", True, [], [])
    recorded = client.get_run(run.id)
    assert (recorded.status, recorded.inputs, recorded.outputs) == ("succeeded", [], ["metrics:v0", "model:v0"])
    assert other.ref == "metrics:v0"
    assert [(m.alias, m.version) for m in client.alias_history("model", "prod")] == [("prod", "model:v1")]
    assert client.get("model:prod").label == v1.label == "v1"
    assert client.versions("model", tags=["retrained"]) == []
    _assert_still_deleted(client, deleted, latest="v1")


def test_a_bare_log_of_deleted_content_is_refused_at_the_call(client: hw.Client, files) -> None:
    path = files({"a.csv": "1"}) / "a.csv"
    client.log_artifact("a", path)
    deleted = client.delete("a:v0")
    with pytest.raises(Conflict, match=rf"^a@{deleted.digest} was deleted; its content cannot be logged again$"):
        client.log_artifact("a", path, aliases=["prod"])
    assert len(client.outbox.dead()) == 1 and client.outbox.pending() == []
    _assert_still_deleted(client, deleted, latest=None)


@pytest.mark.parametrize("ref", ["label", "digest"])
def test_an_edge_by_ref_to_a_deleted_version_is_recorded(
    client: hw.Client, files, ref: str, caplog: pytest.LogCaptureFixture
) -> None:
    client.log_artifact("ds", files({"d.csv": "1"}) / "d.csv")
    deleted = client.delete("ds:v0")
    named = "ds:v0" if ref == "label" else f"ds@{deleted.digest}"
    with caplog.at_level(logging.WARNING, logger="headwater"):
        assert client.emit(
            [RunRecorded(run_id="r1", job="read", status="succeeded"), EdgeRecorded(run_id="r1", ref=named)]
        )
    run = client.get_run("r1")
    assert (run.inputs, run.outputs, run.inexact) == (["ds:v0"], [], [])
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"headwater: ds@{deleted.digest} was deleted: run r1's used edge is kept on its tombstone, its content is gone"
    ]
    _assert_still_deleted(client, deleted, latest=None)


def test_a_replayed_batch_onto_a_tombstone_changes_nothing(client: hw.Client, files) -> None:
    path = files({"a.csv": "1"}) / "a.csv"
    logged = client.log_artifact("a", path)
    deleted = client.delete("a:v0")
    events = [
        RunRecorded(run_id="r2", job="reader", status="succeeded"),
        VersionRecorded(name="a", digest=logged.digest, entries=logged.entries, run_id="r2", direction="used"),
    ]
    assert client.emit(events) and client.emit(events)  # the second time: every event id skipped
    assert client.outbox.dead() == []
    assert _edges(client, "r2") == [("a:v0", "used", True)]
    _assert_still_deleted(client, deleted, latest=None)
