"""Events per second through the tracking server, single and batched, on SQLite and PostgreSQL.

    python bench/http_bench.py [--events 2000] [--batch 100] [--postgres postgresql://...]

Starts one `headwater server` per database on 127.0.0.1 (2 workers), then times, from one
client process over real HTTP:

- headwater events: HTTPStore.apply with one event per request (what the outbox sends for a
  single emit) and with `--batch` events per request (what `headwater sync` sends after an outage);
- OpenLineage RunEvents: POST /api/v1/lineage one at a time, and as JSON arrays of `--batch`.

Each event is a new run with an output dataset, so every one writes rows. PostgreSQL comes from
--postgres or HEADWATER_TEST_POSTGRES_URL (a database of its own is created and dropped); without
it that row is skipped. Prints one table; `--json` prints the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(store: str, folder: Path, workers: int) -> Iterator[str]:
    with server_process(store, folder, workers) as (url, _):
        yield url


@contextmanager
def server_process(
    store: str, folder: Path, workers: int, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`headwater server` on 127.0.0.1 until the block ends: its URL and its process."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "OPENLINEAGE_"))}
    env["HEADWATER_HOME"] = str(folder / "home")
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "headwater.cli",
        "server",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--store",
        store,
        "--blobs",
        str(folder / "blobs"),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited: {(folder / 'server.log').read_text()[-1000:]}")
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("server not ready after 60 s") from None
                time.sleep(0.1)
        yield url, process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)


def _headwater_events(n: int) -> list[Any]:
    from headwater.events import RunRecorded, VersionRecorded

    events: list[Any] = []
    for i in range(n):
        run_id = str(uuid.uuid4())
        events.append(RunRecorded(run_id=run_id, job=f"bench-{i % 50}", status="succeeded"))
        events.append(
            VersionRecorded(
                name=f"bench/out-{i % 50}",
                digest=f"unverified:{run_id}",
                entries=[],
                run_id=run_id,
                direction="produced",
            )
        )
    return events


def _ol_events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "eventType": "COMPLETE",
            "eventTime": "2026-01-01T00:00:00Z",
            "producer": "https://headwater.dev/bench",
            "run": {"runId": str(uuid.uuid4())},
            "job": {"namespace": "bench", "name": f"job-{i % 50}"},
            "inputs": [
                {"namespace": "s3://bench", "name": f"in/{i % 20}", "facets": {"version": {"datasetVersion": "1"}}}
            ],
            "outputs": [
                {"namespace": "s3://bench", "name": f"out/{i % 50}", "facets": {"version": {"datasetVersion": str(i)}}}
            ],
        }
        for i in range(n)
    ]


def _rate(n: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    work()
    return n / (time.perf_counter() - started)


def measure(url: str, n: int, batch: int) -> dict[str, float]:
    import httpx

    from headwater.store.http import HTTPStore

    store = HTTPStore(url)
    http = httpx.Client(base_url=url, timeout=60)
    # Each headwater "event" below is a pair (a run and its output version): count both.
    singles = _headwater_events(n // 2)
    batches = _headwater_events(n // 2)
    ol_single = _ol_events(n)
    ol_batch = _ol_events(n)
    store.apply(_headwater_events(5))  # warm up connections and the first artifacts

    def headwater_single() -> None:
        for event in singles:
            store.apply([event])

    def headwater_batch() -> None:
        for start in range(0, len(batches), batch):
            store.apply(batches[start : start + batch])

    def ol_one() -> None:
        for event in ol_single:
            http.post("/api/v1/lineage", json=event).raise_for_status()

    def ol_many() -> None:
        for start in range(0, len(ol_batch), batch):
            http.post("/api/v1/lineage", json=ol_batch[start : start + batch]).raise_for_status()

    result = {
        "headwater single": _rate(len(singles), headwater_single),
        "headwater batch": _rate(len(batches), headwater_batch),
        "openlineage single": _rate(len(ol_single), ol_one),
        "openlineage batch": _rate(len(ol_batch), ol_many),
    }
    store.close()
    http.close()
    return result


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"headwater_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(sa.make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per measurement")
    parser.add_argument("--batch", type=int, default=100, help="events per request when batched")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default=os.environ.get("HEADWATER_TEST_POSTGRES_URL", ""))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="headwater-http-bench-") as tmp:
        folder = Path(tmp)
        (folder / "sqlite").mkdir()
        with server(f"sqlite:///{folder / 'sqlite' / 'bench.db'}", folder / "sqlite", args.workers) as url:
            rows.append({"database": "SQLite", **measure(url, args.events, args.batch)})
        if args.postgres:
            (folder / "pg").mkdir()
            try:
                with postgres_database(args.postgres) as pg, server(pg, folder / "pg", args.workers) as url:
                    rows.append({"database": "PostgreSQL", **measure(url, args.events, args.batch)})
            except Exception as err:  # noqa: BLE001 - say why, keep the SQLite row
                print(f"PostgreSQL skipped: {' '.join(str(err).split())[:200]}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        columns = ["headwater single", "headwater batch", "openlineage single", "openlineage batch"]
        print(f"events/s over HTTP ({args.events} events, batches of {args.batch}, {args.workers} workers)")
        print(f"{'database':<12}" + "".join(f"{c:>20}" for c in columns))
        for row in rows:
            print(f"{row['database']:<12}" + "".join(f"{row[c]:>20.0f}" for c in columns))
    return rows


if __name__ == "__main__":
    main()
