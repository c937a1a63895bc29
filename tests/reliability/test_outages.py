"""#12: a backend that is away costs one time budget, then a back-off; nothing is lost meanwhile."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import headwater as hw
from headwater.events import RunRecorded
from headwater.store import backoff
from tests.conftest import _truncate, free_port


class BlackHole:
    """A TCP port that accepts connections and never answers; counts the connections."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        # An accept() under way holds the listening socket open past close(): the port is free
        # for a server of the same port (Catalogue) only once that thread has left it.
        self._acceptor.join(timeout=10)
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture(autouse=True)
def fresh_backoff() -> Iterator[None]:
    backoff.clear()
    yield
    backoff.clear()


def _run(job: str = "train") -> RunRecorded:
    return RunRecorded(run_id=hw.run_id(job), job=job, status="running")


# --- PostgreSQL: the time budget below libpq's 2 s, and a back-off --------------------------------


def test_postgres_budget_holds_below_two_seconds_and_backs_off(
    black_hole: BlackHole, headwater_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "0.3")
    client = hw.Client(uri=f"postgresql://postgres@127.0.0.1:{black_hole.port}/hw", home=headwater_home)
    started = time.monotonic()
    assert client.emit([_run("first")]) is False
    assert time.monotonic() - started < 1.5  # libpq alone waits 2 s
    assert len(black_hole.accepted) == 1
    delivery = client.outbox.deliver(5.0)
    # Within the back-off the server is not asked again: no second connection reaches the port.
    assert client.emit([_run("second")]) is False
    assert len(black_hole.accepted) == 1
    assert delivery.pending == 1
    assert delivery.error is not None and delivery.error.startswith(
        f"cannot reach postgresql://postgres@127.0.0.1:{black_hole.port}/hw: no answer within 0.3s (moments ago;"
    )
    assert len(client.outbox.pending()) == 2
    backoff.clear()  # the back-off over: the next write asks again
    assert client.emit([_run("third")]) is False
    assert len(black_hole.accepted) == 2
    assert len(client.outbox.pending()) == 3


def test_postgres_refusing_is_asked_again_at_once_and_delivers(
    postgres_database: str, headwater_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal costs nothing: no back-off, so a server back up is used by the next write (and
    read) of the same process."""
    import sqlalchemy as sa

    from tests.tcp_proxy import TCPProxy

    _truncate(postgres_database)
    target = sa.make_url(postgres_database)
    proxy = TCPProxy(target.host or "127.0.0.1", target.port or 5432)
    uri = target.set(port=proxy.port).render_as_string(hide_password=False)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "0.3")
    client = hw.Client(uri=uri, home=headwater_home)
    assert client.emit([_run("offline")]) is False  # nothing listens: refused at once
    error = client.outbox.deliver(5.0).error
    assert error is not None and "Connection refused" in error and "moments ago" not in error
    assert client.emit([_run("still offline")]) is False
    proxy.start()
    try:
        assert client.emit([_run("back")]) is True  # asked again: everything waiting goes with it
        assert client.outbox.pending() == []
        assert sorted(r.job for r in client.runs()) == ["back", "offline", "still offline"]
    finally:
        client.close()
        proxy.stop()


# --- OpenLineage out: behind the write, spooled while the catalogue is away -----------------------


class Catalogue:
    """A loopback OpenLineage receiver: every RunEvent POSTed to it, in arrival order."""

    def __init__(self, port: int) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        deadline = time.monotonic() + 10
        while True:  # the port a BlackHole just gave up: the kernel may hold it a moment longer
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError as err:
                if err.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self) -> list[tuple[str, str, str]]:
        return [(e["eventType"], e["job"]["name"], e["run"]["runId"]) for e in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_openlineage_never_slows_a_write_and_a_catalogue_back_gets_every_event_once(
    black_hole: BlackHole, headwater_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.openlineage import emitter_for

    url = f"http://127.0.0.1:{black_hole.port}"
    monkeypatch.setenv("HEADWATER_OPENLINEAGE_URL", url)  # accepts, never answers: 5 s a send
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'local.db'}", home=headwater_home)
    (tmp_path / "model.pt").write_text("weights")
    started = time.monotonic()
    with client.run("train") as run:
        model = run.log_artifact("model", tmp_path / "model.pt")
    assert time.monotonic() - started < 2.5  # one delivery; inline emission waited 5 s
    emitter = emitter_for(url, headwater_home)
    # The run's start, output and end went in one delivery, which spooled its RunEvent (the
    # run as it ended) and returned; one send at most is under way, behind.
    assert len(emitter.pending()) == 1 and len(black_hole.accepted) <= 1
    assert client.get_run(run.id).outputs == ["model:v0"]

    black_hole.close()  # the send under way fails: its event is kept
    deadline = time.monotonic() + 20
    while emitter.failures < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emitter.failures == 1 and len(emitter.pending()) == 1
    catalogue = Catalogue(black_hole.port)
    try:
        delivery = client.sync()  # sends the spool now, whatever the back-off
        assert (delivery.delivered, delivery.pending) == (0, 0)
        assert catalogue.seen() == [("COMPLETE", "train", run.id)]
        [output] = catalogue.received[-1]["outputs"]
        assert (output["name"], output["facets"]["version"]["datasetVersion"]) == ("model", model.digest)
        assert emitter.pending() == []
        client.sync()
        assert len(catalogue.received) == 1  # none sent twice
    finally:
        catalogue.close()


def test_openlineage_events_of_a_process_that_exited_are_sent_by_headwater_sync(
    headwater_home: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    port = free_port()  # nothing listens: the catalogue is away
    env = {
        **os.environ,
        "HEADWATER_HOME": str(headwater_home),
        "HEADWATER_URI": f"sqlite:///{tmp_path / 'l.db'}",
        "HEADWATER_OPENLINEAGE_URL": f"http://127.0.0.1:{port}",
    }
    logged = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "log", "--job", "nightly"], env=env, capture_output=True, text=True
    )
    assert logged.returncode == 0, logged.stderr
    assert "OpenLineage event not sent (1 so far): ConnectionError" in logged.stderr
    spooled = list((headwater_home / "openlineage").glob("*/*.json"))
    assert len(spooled) == 1
    catalogue = Catalogue(port)
    try:
        synced = subprocess.run(
            [sys.executable, "-m", "headwater.cli", "sync"], env=env, capture_output=True, text=True
        )
        assert (synced.returncode, synced.stdout, synced.stderr) == (0, "delivered 0, pending 0, dead 0\n", "")
        assert [(kind, job) for kind, job, _ in catalogue.seen()] == [("COMPLETE", "nightly")]
        assert list((headwater_home / "openlineage").glob("*/*.json")) == []
    finally:
        catalogue.close()


def test_the_openlineage_spool_is_bounded_with_one_warning(
    headwater_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from headwater import openlineage

    monkeypatch.setattr(openlineage, "SPOOL_LIMIT", 2)
    monkeypatch.setattr(openlineage, "RETRY_MIN_S", 60.0)  # one failed send, then no retry here
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HEADWATER_OPENLINEAGE_URL", url)
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'l.db'}", home=headwater_home)
    with caplog.at_level(logging.WARNING, logger="headwater"):
        for i in range(4):
            client.emit([_run(f"job-{i}")])
    emitter = openlineage.emitter_for(url, headwater_home)
    assert len(emitter.pending()) == 2
    full = [r.getMessage() for r in caplog.records if "spool" in r.getMessage() and "its most" in r.getMessage()]
    assert full == [
        f"headwater: the OpenLineage spool {emitter.spool} holds 2 events, its most: new ones are dropped "
        "until the catalogue takes some"
    ]
