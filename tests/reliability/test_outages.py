"""#12: a backend that is away costs one time budget, then a back-off; nothing is lost meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import headwater as hw
from headwater.events import RunRecorded
from headwater.store import backoff
from tests.conftest import _truncate


class BlackHole:
    """A TCP port that accepts connections and never answers; counts the connections."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
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


def test_postgres_refusing_is_skipped_for_the_backoff_then_delivers(
    postgres_database: str, headwater_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.tcp_proxy import TCPProxy

    import sqlalchemy as sa

    _truncate(postgres_database)
    target = sa.make_url(postgres_database)
    proxy = TCPProxy(target.host or "127.0.0.1", target.port or 5432)
    uri = target.set(port=proxy.port).render_as_string(hide_password=False)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "0.3")
    client = hw.Client(uri=uri, home=headwater_home)
    assert client.emit([_run("offline")]) is False  # nothing listens: refused at once
    error = client.outbox.deliver(5.0).error
    assert error is not None and "Connection refused" in error and "(moments ago;" in error
    assert client.emit([_run("still offline")]) is False
    proxy.start()
    try:
        # A write within the back-off does not ask; a deliberate sync does.
        assert client.emit([_run("back")]) is False
        delivery = client.sync()
        assert (delivery.delivered, delivery.pending, delivery.error) == (3, 0, None)
        assert sorted(r.job for r in client.runs()) == ["back", "offline", "still offline"]
    finally:
        client.close()
        proxy.stop()
