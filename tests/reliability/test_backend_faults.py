"""Backends down, hanging and refusing: every write returns within the time budget, its batch
waits in the outbox, and a later sync delivers it exactly once. Budgets are checked with generous
wall-time bounds ("does not hang"), the rest structurally."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.events import RunRecorded
from headwater.observe import Observer
from tests.conftest import ServerProcess
from tests.reliability.conftest import Refusing503, SilentPort
from tests.tcp_proxy import TCPProxy

BUDGET_S = 1.0
# Generous: the budget plus an interpreter's worst pause on a loaded 2-core machine.
NEVER_HANGS_S = BUDGET_S + 5


def _log_models(client: hw.Client, root: Path, start: int, n: int) -> list[hw.Run]:
    runs = []
    for i in range(start, start + n):
        (root / f"m{i}").write_text(f"model {i}")
        started = time.monotonic()
        runs.append(client.link(f"step-{i}", outputs=[hw.Output("model", root / f"m{i}")]))
        assert time.monotonic() - started < NEVER_HANGS_S
    return runs


def _assert_waiting(client: hw.Client, runs: list[hw.Run], root: Path, start: int) -> None:
    """Each call answered with its version by digest (no label: not delivered), each batch on disk."""
    assert [r.outputs for r in runs] == [
        [f"model@{client.content(root / f'm{i}').digest}"] for i in range(start, start + len(runs))
    ]
    assert len(client.outbox.pending()) == len(runs) and client.outbox.dead() == []


def _assert_delivered_once(client: hw.Client, n: int) -> None:
    result = client.sync()
    assert (result.pending, result.dead) == (0, {})
    assert client.sync().delivered == 0
    assert [v.label for v in client.versions("model")] == [f"v{i}" for i in range(n)]
    assert sorted(r.job for r in client.runs()) == sorted(f"step-{i}" for i in range(n))
    assert client.get(f"model:v{n - 1}").download().read_text() == f"model {n - 1}"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", str(BUDGET_S))
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


# -- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_locked_by_another_writer_waits_then_delivers(root: Path, tmp_path: Path, headwater_home: Path) -> None:
    """Another process holds the write lock (a long transaction): writes wait one budget at most."""
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    client = hw.Client(uri=uri, home=headwater_home)
    _log_models(client, root, 0, 1)
    holder = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        runs = _log_models(client, root, 1, 3)
        _assert_waiting(client, runs, root, 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _assert_delivered_once(client, 4)


def test_sqlite_file_that_is_not_a_database(root: Path, tmp_path: Path, headwater_home: Path) -> None:
    path = tmp_path / "store.db"
    path.write_bytes(b"not a database, whatever it was " * 64)
    client = hw.Client(uri=f"sqlite:///{path}", home=headwater_home)
    runs = _log_models(client, root, 0, 2)
    _assert_waiting(client, runs, root, 0)
    path.unlink()
    _assert_delivered_once(client, 2)


# -- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture
def postgres_behind_proxy(postgres_database: str, headwater_home: Path, monkeypatch: pytest.MonkeyPatch):
    """The test database behind a proxy the test can stop: (client, proxy)."""
    url = sa.make_url(postgres_database)
    proxy = TCPProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    uri = url.set(port=proxy.port).render_as_string(hide_password=False)
    client = hw.Client(uri=uri, home=headwater_home)
    yield client, proxy
    proxy.stop()
    client.close()


@pytest.mark.postgres
def test_postgres_that_hangs_costs_one_budget_per_write(postgres_behind_proxy, root: Path, monkeypatch) -> None:
    """The port accepts connections and never answers (a host gone half away)."""
    client, proxy = postgres_behind_proxy
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", str(BUDGET_S))
    _log_models(client, root, 0, 1)
    proxy.stop()
    client.close()  # a pooled connection would see the cut; a new one meets the silence
    silent = SilentPort(proxy.port)
    try:
        runs = _log_models(client, root, 1, 3)
        _assert_waiting(client, runs, root, 1)
    finally:
        silent.close()
    client.close()
    proxy.start()
    _assert_delivered_once(client, 4)


@pytest.mark.postgres
def test_backend_down_then_sync_delivers_everything_once(postgres_behind_proxy, files, caplog) -> None:
    client, proxy = postgres_behind_proxy
    root = files({"raw.csv": "r"})
    client.log_artifact("raw", root / "raw.csv")
    proxy.stop()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="headwater"):
        for i in range(20):
            (root / f"m{i}").write_text(f"model {i}")
            run = client.link(f"train-{i}", inputs=[root / "raw.csv"], outputs=[hw.Output("model", root / f"m{i}")])
            assert run.outputs == [f"model@{client.content(root / f'm{i}').digest}"]  # queued, by digest
    assert time.monotonic() - started < 20 * 2 + 10  # each call within the 2 s budget
    assert len(client.outbox.pending()) == 20
    assert all(r.levelname == "WARNING" and "\n" not in r.getMessage() for r in caplog.records)
    assert "outbox" in caplog.records[-1].getMessage()
    proxy.start()
    delivered = client.sync()
    assert (delivered.delivered, delivered.pending, delivered.dead) == (20, 0, {})
    assert client.sync().delivered == 0
    assert [v.label for v in client.versions("model")] == [f"v{i}" for i in range(20)]
    assert len(client.runs()) == 20
    assert sorted(r.job for r in client.runs_using(root.joinpath("raw.csv").as_uri())) == sorted(
        f"train-{i}" for i in range(20)
    )


# -- the tracking server --------------------------------------------------------------------------


def test_a_server_answering_503_then_back(root: Path, tmp_path: Path, headwater_home: Path) -> None:
    """A proxy answers 503 while the server is away; then the server is back on the same port."""
    refusing = Refusing503()
    url = f"http://127.0.0.1:{refusing.port}"
    client = hw.Client(uri=url, home=headwater_home)
    try:
        runs = _log_models(client, root, 0, 3)
        _assert_waiting(client, runs, root, 0)
        assert len(list(client.blobs.spool.iter_digests())) == 3  # the bytes wait with their batch
    finally:
        refusing.close()
    server = ServerProcess(tmp_path / "server", port=refusing.port).start()
    try:
        _assert_delivered_once(client, 3)
        assert list(client.blobs.spool.iter_digests()) == []
    finally:
        server.stop()


# -- the drain lock and the adapter surface --------------------------------------------------------


def test_delivery_gives_up_within_the_budget_when_another_process_holds_the_lock(client: hw.Client) -> None:
    from filelock import FileLock

    client.outbox.write([RunRecorded(run_id=hw.run_id("l"), job="j")])
    with FileLock(client.outbox.folder / ".lock"):
        started = time.monotonic()
        result = client.outbox.deliver(timeout=0.5)
        assert time.monotonic() - started < 2
    assert (result.delivered, result.pending) == (0, 1)
    assert client.sync().delivered == 1


def test_hashing_past_the_budget_records_an_unverified_output(client: hw.Client, tmp_path: Path, monkeypatch) -> None:
    big = tmp_path / "huge.bin"
    with open(big, "wb") as out:  # sparse: 8 GiB to hash, nothing on disk
        out.truncate(8 << 30)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "0.5")
    observer = Observer("testorch", client_factory=lambda: client)
    task = hw.run_id("testorch", "slow")
    started = time.monotonic()
    with observer.batch() as b:
        b.run(task, job="slow", status="succeeded")
        b.produced(task, big)
    assert time.monotonic() - started < 5  # the budget, not the 8 GiB
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "10")
    client.sync()
    version = client.get(big.as_uri())
    assert version.digest == f"unverified:{task}"
    assert [(e.path, e.ref, e.size) for e in version.entries] == [("huge.bin", big.as_uri(), 0)]


def test_an_openlineage_catalogue_that_is_away_costs_one_warning(tmp_path: Path, caplog) -> None:
    """A catalogue that is away costs one warning line, never a failed or stalled write; its
    events are kept in the spool, not tried again before a back-off."""
    import uuid

    from headwater.openlineage import Emitter, EmittingStore
    from headwater.store.sql import SQLStore

    away = EmittingStore(
        SQLStore(f"sqlite:///{tmp_path / 'away.db'}"), Emitter.from_url("http://127.0.0.1:1", home=tmp_path / "away")
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="headwater"):
        for i in range(3):
            away.apply([RunRecorded(run_id=str(uuid.uuid4()), job=f"j{i}", status="succeeded")])
        deadline = time.monotonic() + 20
        while away.emitter.failures < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert time.monotonic() - started < 10 and len(away.list_runs()) == 3
    assert len(away.emitter.pending()) == 3 and away.emitter.failures == 1
    ours = [r for r in caplog.records if r.name.startswith("headwater")]
    assert [r.getMessage().count("\n") for r in ours] == [0]  # one line, once
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]  # no retry chatter
    assert "OpenLineage event not sent" in caplog.text
