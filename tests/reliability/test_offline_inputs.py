"""#12: an input named by a REF is recorded while the backend is down, and resolved on delivery."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import headwater as hw
from headwater.api import merge_graphs
from headwater.cli import cli
from headwater.observe import Observer
from headwater.store import backoff
from tests.conftest import _truncate
from tests.tcp_proxy import TCPProxy


@dataclass
class Backend:
    uri: str
    down: Callable[[], None]
    up: Callable[[], None]


@pytest.fixture(params=["http", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, headwater_home: Path) -> Iterator[Backend]:
    """A backend a test can take down and bring back: a tracking server process, or PostgreSQL
    behind a TCP proxy that stops forwarding."""
    backoff.clear()
    if request.param == "http":
        server = request.getfixturevalue("server_factory")("offline")
        yield Backend(server.url, server.stop, server.start)
    else:
        database: str = request.getfixturevalue("postgres_database")
        _truncate(database)
        target = sa.make_url(database)
        proxy = TCPProxy(target.host or "127.0.0.1", target.port or 5432)
        proxy.start()

        def up() -> None:
            proxy.start()
            backoff.clear()  # the back-off after the outage is over

        yield Backend(target.set(port=proxy.port).render_as_string(hide_password=False), proxy.stop, up)
        proxy.stop()
    backoff.clear()


@pytest.fixture
def users(backend: Backend, tmp_path: Path, headwater_home: Path) -> tuple[hw.Version, hw.Version]:
    """users:v0 and users:v1 (latest), recorded while the backend is up."""
    client = hw.Client(uri=backend.uri, home=headwater_home)
    export = tmp_path / "users.csv"
    export.write_text("id\n1\n")
    v0 = client.log_artifact("users", export)
    export.write_text("id\n1\n2\n")
    v1 = client.log_artifact("users", export)
    client.close()
    assert (v0.label, v1.label) == ("v0", "v1")
    return v0, v1


def _used_edges(client: hw.Client, run_id: str) -> list[tuple[str, bool]]:
    """The run's input edges as (version, exact), checked against the run's own inputs."""
    run = client.get_run(run_id)
    downstream = merge_graphs([client.downstream("users:v0"), client.downstream("users:v1")])
    edges = [e for e in downstream.edges if e.run_id == run_id and e.direction == "used"]
    assert run.inputs == [e.version for e in edges]
    return [(e.version, e.exact) for e in edges]


def test_run_use_by_ref_while_down_records_and_resolves_on_sync(
    backend: Backend, users: tuple[hw.Version, hw.Version], headwater_home: Path
) -> None:
    v0, _ = users
    client = hw.Client(uri=backend.uri, home=headwater_home)
    backend.down()
    with client.run("train") as run:
        assert run.use("users:v0") is None  # not resolvable now: the edge waits by REF
    assert len(client.outbox.pending()) == 2  # the run's start; the edge with the run's end
    backend.up()
    delivery = client.sync()
    assert (delivery.delivered, delivery.pending, delivery.dead) == (2, 0, {})
    assert _used_edges(client, run.id) == [("users:v0", True)]
    assert client.get("users:v0").digest == v0.digest
    recorded = client.get_run(run.id)
    assert (recorded.job, recorded.status, recorded.outputs) == ("train", "succeeded", [])


def test_link_by_ref_while_down_says_what_will_be_recorded(
    backend: Backend, users: tuple[hw.Version, hw.Version], headwater_home: Path
) -> None:
    client = hw.Client(uri=backend.uri, home=headwater_home)
    backend.down()
    queued = client.link("report", inputs=["users:v0", "users"])
    assert queued.inputs == ["users:v0", "users"]
    backend.up()
    assert client.sync().delivered == 1
    # `users` is the version latest named when the step ran (v1), an edge resolved later: inexact.
    assert sorted(_used_edges(client, queued.id)) == [("users:v0", True), ("users:v1", False)]


def test_cli_log_input_by_ref_while_down_exits_0_and_the_edge_exists_after_sync(
    backend: Backend,
    users: tuple[hw.Version, hw.Version],
    headwater_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEADWATER_URI", backend.uri)
    backend.down()
    logged = CliRunner().invoke(cli, ["log", "--job", "label", "--input", "users:v0"], catch_exceptions=False)
    assert logged.exit_code == 0, logged.stderr
    assert logged.stderr.startswith("headwater: ") and "batch(es) wait in the outbox" in logged.stderr
    client = hw.Client(uri=backend.uri, home=headwater_home)
    assert len(client.outbox.pending()) == 1
    backend.up()
    synced = CliRunner().invoke(cli, ["sync"], catch_exceptions=False)
    assert (synced.exit_code, synced.stdout) == (0, "delivered 1, pending 0, dead 0\n")
    [run] = client.runs(job="label")
    assert _used_edges(client, run.id) == [("users:v0", True)]


def test_adapter_ref_input_while_down_never_raises_and_resolves_on_sync(
    backend: Backend, users: tuple[hw.Version, hw.Version], headwater_home: Path, caplog: Any
) -> None:
    """Every adapter records a REF input through Batch.used_ref: no lookup, nothing to raise."""
    v0, _ = users
    client = hw.Client(uri=backend.uri, home=headwater_home)
    observer = Observer("prefect", lambda: client)
    rid = hw.run_id("flow", "task")
    backend.down()
    with observer.batch("task end") as batch:
        batch.run(rid, job="flow.task", status="succeeded")
        batch.used_ref(rid, f"users@{v0.digest}")
    assert batch.delivered is False
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.levelname == "WARNING"] == [
        f"headwater: {backend.uri.split('@')[-1]} not delivered"
    ]
    backend.up()
    assert client.sync().delivered == 1
    assert _used_edges(client, rid) == [("users:v0", True)]
