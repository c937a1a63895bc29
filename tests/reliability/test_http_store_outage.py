"""The HTTP store when things go wrong for real: the server killed while runs are logged, and the
client killed (kill -9) in the middle of delivering. Nothing is lost, nothing arrives twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import headwater as hw

pytestmark = pytest.mark.slow


def assert_each_once(client: hw.Client, n: int) -> None:
    runs = client.runs()
    assert len(runs) == n and len({r.id for r in runs}) == n
    assert sorted(r.job for r in runs) == sorted(f"step-{i}" for i in range(n))
    versions = client.versions("model")
    assert [v.label for v in versions] == [f"v{i}" for i in range(n)]  # gapless: none twice
    assert all(len(v.producers) == 1 for v in versions)
    assert len(client.alias_history("model", "latest")) == n
    assert client.outbox.pending() == [] and client.outbox.dead() == []


def test_server_killed_while_200_runs_are_logged(server_factory, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    server = server_factory(workers=2)
    client = hw.Client(uri=server.url)
    data = tmp_path / "models"
    data.mkdir()
    (data / "raw.csv").write_text("raw")
    slowest = 0.0
    for i in range(200):
        if i == 60:
            server.stop(kill=True)  # kill -9: no goodbye, connections cut
        (data / f"m{i}").write_text(f"model {i}")
        started = time.monotonic()
        client.link(f"step-{i}", inputs=[data / "raw.csv"], outputs=[hw.Output("model", data / f"m{i}")])
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 2 * 2 + 1  # never blocked much past the 2 s budget
    pending = len(client.outbox.pending())
    assert 140 <= pending <= 141  # everything from the kill on waits on disk, blobs too
    assert len(list(client.blobs.spool.iter_digests())) >= 139
    server.start()
    delivered = client.sync()
    assert (delivered.delivered, delivered.pending, delivered.dead) == (pending, 0, {})
    assert client.sync().delivered == 0
    assert_each_once(client, 200)
    assert list(client.blobs.spool.iter_digests()) == []  # uploaded, then dropped locally
    assert client.get("model:v150").download().read_text() == "model 150"  # bytes on the server
    assert client.verify("model:v199").ok


_QUEUE = """
import sys
import headwater as hw
from pathlib import Path
client = hw.Client(uri=sys.argv[1])
folder = Path(sys.argv[2])
for i in range(int(sys.argv[3])):
    (folder / f"m{i}").write_text(f"model {i}")
    client.link(f"step-{i}", outputs=[hw.Output("model", folder / f"m{i}")])
print(len(client.outbox.pending()))
"""


def test_client_killed_mid_delivery_loses_nothing(server_factory, tmp_path: Path, headwater_home: Path) -> None:
    n = 150
    server = server_factory(start=False)
    env = {**os.environ, "HEADWATER_TIMEOUT_S": "2", "HEADWATER_URI": server.url}
    (tmp_path / "models").mkdir()
    queued = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_QUEUE), server.url, str(tmp_path / "models"), str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert queued.stdout.split()[-1] == str(n)  # the server was not there: all of it on disk
    server.start()
    client = hw.Client(uri=server.url)
    outbox = client.outbox
    sync = subprocess.Popen(
        [sys.executable, "-m", "headwater.cli", "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while len(outbox.pending()) > n - 25 and time.monotonic() < deadline and sync.poll() is None:
        time.sleep(0.002)
    os.kill(sync.pid, signal.SIGKILL)  # mid-delivery: a batch may be applied but not yet removed
    sync.wait(10)
    left = len(outbox.pending())
    assert 0 < left < n, left
    assert len(client.runs()) >= n - left  # what was delivered is there ...
    delivered = client.sync()  # ... and the rest (a replayed batch is skipped by event id)
    assert delivered.pending == 0 and delivered.dead == {}
    assert_each_once(client, n)


def test_a_server_that_never_answers_costs_one_time_budget(tmp_path: Path, files, monkeypatch) -> None:
    """A hung server (it accepts connections, then says nothing): the caller waits one budget."""
    import socket
    import threading

    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "1")
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(hung.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        client = hw.Client(uri=f"http://127.0.0.1:{hung.getsockname()[1]}")
        root = files({"m.bin": "weights"})
        started = time.monotonic()
        version = client.log_artifact("model", root / "m.bin")
        assert time.monotonic() - started < 1 + 0.9  # one budget, not one per request
        assert version.label is None and len(client.outbox.pending()) == 1
        assert list(client.blobs.spool.iter_digests()) == [version.entries[0].digest]
    finally:
        hung.close()
        for conn in accepted:
            conn.close()
