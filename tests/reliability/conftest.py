"""Harness of the reliability suite: processes stopped at a crash point and killed with SIGKILL,
and the exact-once checks every fault test ends with."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import headwater as hw
from tests.conftest import ServerProcess

REPO = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """This test's environment (its HEADWATER_HOME) for a child that imports tests.reliability."""
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}


def wait_stopped(pid: int, timeout: float = 30.0) -> None:
    """Until the process is stopped by its own SIGSTOP (state T in /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop at its crash point")


def run_to_crash(args: list[str], step: str, n: int, env: dict[str, str], log: Path) -> list[str]:
    """Run `python -m tests.reliability.crash ARGS` until it stops at the n-th `step`, then kill -9
    it. Returns the lines it printed before the crash marker."""
    with open(log, "ab") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash", *args],
            cwd=REPO,
            env={**env, "HEADWATER_TEST_CRASH": f"{step}:{n}"},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        if line.startswith("crash "):
            assert line.split() == ["crash", step, str(n)]
            break
        lines.append(line.strip())
    else:
        process.wait(30)
        raise AssertionError(f"exited {process.returncode} before {step}:{n}: {log.read_text()[-2000:]}")
    wait_stopped(process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
    assert process.returncode == -signal.SIGKILL
    return lines


def headwater_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headwater.cli", *args],
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class CrashingServer(ServerProcess):
    """`headwater server` with the crash points installed (HEADWATER_TEST_CRASH in its env);
    one worker, so the crash point runs in the process the test kills."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.reliability.crash", "cli", *super().command()[3:]]

    def wait_for_crash(self, step: str, n: int, timeout: float = 30.0) -> None:
        assert self.process is not None
        marker = f"crash {step} {n}"
        deadline = time.monotonic() + timeout
        while marker not in self.log.read_text():
            assert time.monotonic() < deadline, f"the server never reached {step}:{n}"
            time.sleep(0.02)
        wait_stopped(self.process.pid)


def assert_models_exactly(client: hw.Client, n: int) -> None:
    """`model` holds v0..v<n-1>, from step-0..step-<n-1>: no version twice, none partial, no gap
    in the labels, each produced by exactly one run, each one's bytes restorable."""
    versions = client.versions("model")
    assert [v.label for v in versions] == [f"v{i}" for i in range(n)]
    runs = {r.id: r for r in client.runs()}
    assert sorted(r.job for r in runs.values()) == sorted(f"step-{i}" for i in range(n))
    for i in range(n):
        version = client.get(f"model:v{i}")
        assert [(e.path, e.size) for e in version.entries] == [(f"m{i}", len(f"model {i}"))]
        assert [runs[p].job for p in version.producers] == [f"step-{i}"]
        assert version.download().read_text() == f"model {i}"
    assert client.outbox.pending() == [] and client.outbox.dead() == []


class SilentPort:
    """A TCP port that accepts connections and never answers: a backend that hangs."""

    def __init__(self, port: int = 0) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.socket.listen(64)
        self.port = int(self.socket.getsockname()[1])
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        for conn in self.accepted:
            conn.close()


class Refusing503:
    """An HTTP server answering 503 to everything, as a proxy in front of a server that is away."""

    def __init__(self, port: int = 0) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def _refuse(self) -> None:
                body = b"Service Unavailable"
                self.send_response(503)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _refuse  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
