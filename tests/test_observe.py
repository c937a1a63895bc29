"""The adapter surface: exact events, never an exception, the time budget kept."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import headwater as hw
from headwater.observe import Observer, location_name


@pytest.fixture
def observer(client: hw.Client) -> Observer:
    return Observer("testorch", client_factory=lambda: client)


def test_a_task_batch_records_run_inputs_and_outputs_as_references(observer: Observer, client: hw.Client, files) -> None:
    root = files({"in.csv": "a\n", "out/part-0": "b", "out/part-1": "c"})
    container, task = hw.run_id("testorch", "dag", "r1"), hw.run_id("testorch", "dag", "t", "r1", 1)
    with observer.batch("task start") as b:
        b.run(container, job="dag", kind="container", status="running")
        b.run(task, job="dag.t", kind="task", status="running", parent_id=container, params={"n": 1})
        used = b.used(task, root / "in.csv")
    with observer.batch("task end") as b:
        produced = b.produced(task, root / "out", type="dataset", metadata={"rows": 2})
        b.run(task, status="succeeded")
    assert b.delivered is True
    run = client.get_run(task)
    assert (run.status, run.parent_id, run.orchestrator, run.kind, run.params) == ("succeeded", container, "testorch", "task", {"n": 1})
    in_uri, out_uri = (root / "in.csv").as_uri(), (root / "out").as_uri()
    assert run.inputs == [f"{in_uri}:v0"] and run.outputs == [f"{out_uri}:v0"]
    assert used == f"{in_uri}@{client.get(in_uri).digest}" and produced == f"{out_uri}@{client.get(out_uri).digest}"
    output = client.get(out_uri)
    assert [(e.path, e.ref) for e in output.entries] == [
        ("part-0", f"{out_uri}/part-0"), ("part-1", f"{out_uri}/part-1"),
    ]
    assert (output.type, output.metadata) == ("dataset", {"rows": 2})
    assert list(client.blobs.iter_digests()) == []  # observed, never copied


def test_errors_inside_a_batch_are_one_warning_line(observer: Observer, client: hw.Client, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="headwater"):
        with observer.batch("task end") as b:
            b.run(hw.run_id("x"), job="j")
            raise KeyError("task_instance")
    assert [r.getMessage() for r in caplog.records] == ["headwater: testorch task end not recorded: KeyError: 'task_instance'"]
    assert client.runs() == [] and client.outbox.pending() == []


def test_unreadable_input_links_to_latest_inexactly_or_says_unverified(observer: Observer, client: hw.Client, files, tmp_path: Path) -> None:
    root = files({"data.csv": "1"})
    client.log_reference(location_name(root / "data.csv"), (root / "data.csv").as_uri())
    (root / "data.csv").unlink()  # gone by the time the task runs
    task = hw.run_id("testorch", "reader")
    with observer.batch() as b:
        b.run(task, job="reader", status="succeeded")
        assert b.used(task, root / "data.csv") is None
        assert b.used(task, tmp_path / "never-existed.csv") is None
    edges = {(e.version, e.exact) for e in client.downstream(f"{(root / 'data.csv').as_uri()}:v0").edges}
    assert edges == {(f"{(root / 'data.csv').as_uri()}:v0", False)}
    ghost = client.get((tmp_path / "never-existed.csv").as_uri())
    assert (ghost.digest, ghost.entries) == (f"unverified:{task}", [])


def test_backend_down_leaves_the_batch_in_the_outbox(tmp_path: Path, headwater_home: Path, files) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    down = hw.Client(uri=f"sqlite:///{blocker}/x.db", home=headwater_home)
    observer = Observer("testorch", client_factory=lambda: down)
    root = files({"o": "1"})
    with observer.batch() as b:
        b.run(hw.run_id("d"), job="j", status="succeeded")
        b.produced(hw.run_id("d"), root / "o")
    assert b.delivered is False and len(down.outbox.pending()) == 1
    blocker.unlink()
    assert down.sync().delivered == 1
    assert down.get_run(hw.run_id("d")).outputs == [f"{(root / 'o').as_uri()}:v0"]


def test_disabled_records_nothing(observer: Observer, client: hw.Client, files, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_DISABLED", "1")
    with observer.batch() as b:
        b.run(hw.run_id("off"), job="j")
        assert b.produced(hw.run_id("off"), files({"o": "1"}) / "o") is None
    assert b.delivered is None and client.outbox.pending() == [] and client.runs() == []


def test_an_output_without_a_location_is_unverified(observer: Observer, client: hw.Client) -> None:
    task = hw.run_id("testorch", "nowhere")
    with observer.batch() as b:
        b.run(task, job="nowhere", status="succeeded")
        assert b.produced(task, None, name="in-memory-table") == f"in-memory-table@unverified:{task}"
    version = client.get("in-memory-table")
    assert (version.digest, version.entries, version.produced_by) == (f"unverified:{task}", [], task)


def test_a_queued_batch_goes_out_with_the_next_delivering_one(observer: Observer, client: hw.Client, files) -> None:
    task = hw.run_id("testorch", "queued")
    with observer.batch("task start", deliver=False) as start:
        start.run(task, job="t", status="running")
    assert start.delivered is False and len(client.outbox.pending()) == 1 and client.runs() == []
    with observer.batch("task end") as end:
        end.produced(task, files({"o": "1"}) / "o")
        end.run(task, status="succeeded")
    assert end.delivered is True and client.outbox.pending() == []
    assert (client.get_run(task).status, client.get_run(task).job) == ("succeeded", "t")
