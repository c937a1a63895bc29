"""Shared fixtures: an isolated HEADWATER_HOME per test, and every store backend to run against.

PostgreSQL comes from HEADWATER_TEST_POSTGRES_URL (the Makefile points it at 127.0.0.1:5432/test).
Each test session creates its own database and drops it at the end. Under CI a PostgreSQL that
cannot be reached fails the run; elsewhere its tests are skipped with one line saying why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.store import schema

POSTGRES_URL = os.environ.get("HEADWATER_TEST_POSTGRES_URL", "")
# The web UI's fixtures: its story store and server, and a browser (imported lazily).
pytest_plugins = ("tests.ui_story", "tests.browser")


@pytest.fixture(autouse=True)
def headwater_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hwhome"
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    monkeypatch.delenv("HEADWATER_URI", raising=False)
    monkeypatch.delenv("HEADWATER_BLOB_URI", raising=False)
    monkeypatch.delenv("HEADWATER_DISABLED", raising=False)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "10")
    return home


def _admin_url() -> sa.URL:
    return sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own, as a postgresql:// URL."""
    if not POSTGRES_URL:
        message = "HEADWATER_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"headwater_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as err:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({str(err.orig).strip().splitlines()[0]})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url.replace("postgresql+psycopg://", "postgresql://")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        names = ", ".join(t.name for t in schema.metadata.sorted_tables)
        if conn.execute(sa.text("SELECT to_regclass('artifacts')")).scalar():
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        "http",
        pytest.param("http-postgres", marks=pytest.mark.postgres),
    ]
)
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every backend; the contract tests run once per backend. `http` is a real tracking server
    process over SQLite, `http-postgres` one over PostgreSQL (each emptied before every test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
        _truncate(url)
        return url
    server: ServerProcess = request.getfixturevalue(
        "headwater_server" if request.param == "http" else "headwater_server_postgres"
    )
    server.reset()
    return server.url


# -- the tracking server, as a real process ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """`headwater server` in a subprocess on 127.0.0.1, with its own store, blobs and log file."""

    def __init__(
        self,
        folder: Path,
        store: str | None = None,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.store = store or f"sqlite:///{folder / 'server.db'}"
        self.blobs = folder / "blobs"
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.workers = workers
        self.args = list(args)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "OPENLINEAGE_"))}
        self.env.update({"HEADWATER_HOME": str(folder / "home"), "HEADWATER_TIMEOUT_S": "10", "PYTHONUNBUFFERED": "1"})
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "headwater.cli",
            "server",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--store",
            self.store,
            "--blobs",
            str(self.blobs),
            *self.args,
        ]

    def start(self, wait: float = 60.0) -> ServerProcess:
        with open(self.log, "ab") as out:
            # A session of its own: kill -9 must take the workers too, as a crashed host would.
            self.process = subprocess.Popen(
                self.command(), env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"headwater server exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"headwater server not ready after {wait}s: {self.log.read_text()[-2000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            if kill:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind
        except ProcessLookupError:
            pass
        self.process = None

    def reset(self) -> None:
        """Empty the server's database and blobs (between tests; the server keeps running)."""
        if self.store.startswith("sqlite"):
            engine = sa.create_engine(self.store)
            with engine.begin() as conn:
                for table in reversed(schema.metadata.sorted_tables):
                    conn.execute(table.delete())
            engine.dispose()
        else:
            _truncate(self.store)
        shutil.rmtree(self.blobs / "blake3", ignore_errors=True)


@pytest.fixture(scope="session")
def headwater_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One tracking server over SQLite for the whole session."""
    server = ServerProcess(tmp_path_factory.mktemp("hwserver")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def headwater_server_postgres(
    tmp_path_factory: pytest.TempPathFactory, postgres_database: str
) -> Iterator[ServerProcess]:
    """One tracking server over a PostgreSQL database of its own, for the whole session."""
    name = f"headwater_http_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    server = ServerProcess(
        tmp_path_factory.mktemp("hwserver-pg"), url.replace("postgresql+psycopg://", "postgresql://")
    )
    server.start()
    yield server
    server.stop()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers of a test's own (`server_factory(workers=2, env={...})`); stopped at the end."""
    started: list[ServerProcess] = []

    def make(name: str = "server", store: str | None = None, *, start: bool = True, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(tmp_path / name, store, **kwargs)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def client(store_uri: str, headwater_home: Path) -> Iterator[hw.Client]:
    c = hw.Client(uri=store_uri, home=headwater_home)
    yield c
    c.close()


@pytest.fixture
def files(tmp_path: Path):
    """Write small files: files({"a.csv": "x,y\\n"}) -> the folder holding them."""

    def make(contents: dict[str, str | bytes], folder: str = "data") -> Path:
        root = tmp_path / folder
        for rel, data in contents.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                data = data.encode()
            target.write_bytes(data)
        return root

    return make


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """HEADWATER_TEST_HTTP=0 (the orchestrator sessions) runs their tests on the SQL stores only:
    the tracking server is proven by the core session's contract suite, and those environments
    need not carry its dependencies."""
    if os.environ.get("HEADWATER_TEST_HTTP", "1") != "0":
        return
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("store_uri") if callspec else None
        (dropped if isinstance(backend, str) and backend.startswith("http") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
