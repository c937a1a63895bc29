"""headwater at a team's scale: a large graph bulk-loaded into PostgreSQL, measured through two servers.

    python bench/scale.py                   # 1,000,000 runs, 1,000,000 versions, ~3,000,000 edges
    python bench/scale.py --scale 0.1       # 100,000 runs (what this project's 2-core machine runs)
    python bench/scale.py --scale 0.002     # a smoke run in seconds

1. Load: a database of its own (created on the PostgreSQL of --postgres, else
   HEADWATER_TEST_POSTGRES_URL; dropped at the end unless --keep), migrated by headwater, then
   filled with COPY through psycopg: the layered pipeline DAG of bench/run.py's closure benchmark
   (run i produces version i and uses 1-3 earlier versions, mostly recent ones: 3 edges per run
   on average), one artifact with 10,000 versions, `latest` and `production` aliases with their
   history, `validated` and `pii` tags, one entry per version plus a tokenizer file shared by
   100 versions (the "widely used file"), and one applied event id per run.
2. Ingest: 8 client processes, 4 on each of 2 `headwater server` processes, send batches of 100
   events (25 runs: the run, two inputs by REF, one new output version) for --ingest-s seconds.
3. Reads through the servers (alternating), one at a time, with the Python client a user has:
   get by REF, versions of the 10,000-version artifact, runs_using, upstream and downstream at
   depth 3 and unbounded (as graphs, and as refs: hw.reachable), impact of the shared file, the
   web UI's artifact search. p50 and p99.
4. EXPLAIN (ANALYZE, BUFFERS) of every statement those reads run, captured from the store
   in-process; the plans go to --workdir/plans.txt and their scans are summarised.

Prints one table (--markdown for the docs) and writes --workdir/scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import postgres_database, server_process  # noqa: E402  (bench/ is not a package)
from run import reach  # noqa: E402  (the closure benchmark's own walk)

BASE = datetime(2025, 1, 1, tzinfo=timezone.utc)
BIG = "bench/big-artifact"  # the artifact with 10,000 versions
SHARED_FILE = "tokenizer.json"
HOLDERS = 100  # versions holding the shared file
CLIENTS, SERVERS, BATCH = 8, 2, 100


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def hexdigest(kind: str, i: int) -> str:
    return hashlib.blake2b(f"{kind}{i}".encode(), digest_size=32).hexdigest()


# --- 1: the graph --------------------------------------------------------------------------------


@dataclass
class Graph:
    n: int
    n_artifacts: int
    artifact_of: list[int]  # version index -> artifact index (0 is BIG)
    label_of: list[int]
    inputs: list[list[int]]  # run i's used versions; run i produced version i
    holders: list[int]

    def name(self, a: int) -> str:
        return BIG if a == 0 else f"bench/artifact-{a:06d}"

    def ref(self, i: int) -> str:
        return f"{self.name(self.artifact_of[i])}:v{self.label_of[i]}"


def generate(n: int, seed: int = 42) -> Graph:
    rng = random.Random(seed)
    sources = max(5, n // 1000)
    window = max(20, n // 200)
    n_artifacts = max(10, n // 40)
    big_every = max(2, n // 10_000)  # every big_every-th version belongs to BIG: 10,000 of them at 1M
    artifact_of = [0 if i % big_every == 0 else 1 + i % (n_artifacts - 1) for i in range(n)]
    counters = [0] * n_artifacts
    label_of = [0] * n
    for i, a in enumerate(artifact_of):
        label_of[i] = counters[a]
        counters[a] += 1
    inputs: list[list[int]] = []
    for i in range(n):
        if i < sources:
            inputs.append([])
            continue
        k = min(i, rng.choices((1, 2, 3), weights=(3, 4, 3))[0])
        picked: set[int] = set()
        while len(picked) < k:
            picked.add(rng.randrange(max(0, i - window), i) if rng.random() < 0.8 else rng.randrange(0, i))
        inputs.append(sorted(picked))
    holders = sorted(rng.sample(range(n - n // 10, n), min(HOLDERS, n // 10)))
    return Graph(n, n_artifacts, artifact_of, label_of, inputs, holders)


def roots(graph: Graph) -> dict[str, int]:
    """Versions to read from: a mid-graph one (depth 3 both ways), a late one (upstream
    unbounded), one whose downstream closure is near 10% of the graph's versions (100,000
    versions and as many runs at 1M), and one near 5% (the issue's closure of 100,000 nodes)."""
    children: list[list[int]] = [[] for _ in range(graph.n)]
    for run, used in enumerate(graph.inputs):
        for v in used:
            children[v].append(run)
    # Closure sizes fall with the index, but noisily (a late version that a reference dataset
    # joined reaches far): the best of a fixed sample, as bench/run.py picks its roots.
    rng = random.Random(11)
    early = sorted(rng.sample(range(graph.n // 2), min(graph.n // 2, 60)))
    anywhere = sorted(random.Random(12).sample(range(graph.n), min(graph.n, 60)))
    sizes = {i: reach(children, i) for i in {*early, *anywhere}}

    def nearest(target: int, among: list[int]) -> tuple[int, int]:
        best = min(among, key=lambda i: (abs(sizes[i] - target), i))
        return best, sizes[best]

    wide, wide_size = nearest(graph.n // 10, early)
    half, half_size = nearest(graph.n // 20, [*early, *anywhere])
    log(f"roots: downstream-10% root {wide} reaches {wide_size:,} versions, 5% root {half} {half_size:,}")
    # runs_using: an ordinary artifact (about 40 versions at any scale)
    return {
        "mid": graph.n // 2,
        "late": graph.n - graph.n // 100,
        "wide": wide,
        "wide_size": wide_size,
        "half": half,
        "half_size": half_size,
    }


def _tsv(rows: Iterator[tuple[Any, ...]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    for count, row in enumerate(rows, 1):
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row))
        buffer.write("\n")
        if count % 50_000 == 0:
            yield buffer.getvalue().encode()
            buffer = io.StringIO()
    yield buffer.getvalue().encode()


def _at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).isoformat()


def load(url: str, graph: Graph, run_ids: list[str]) -> dict[str, float]:
    """COPY the graph into the (migrated, empty) database; seconds per table."""
    import psycopg

    n = graph.n
    orchestrators = ("airflow", "dagster", "prefect")
    shared = "blake3:" + hexdigest("shared", 0)
    holders = set(graph.holders)
    last_of: dict[int, int] = {}
    for i, a in enumerate(graph.artifact_of):
        last_of[a] = i

    def artifacts() -> Iterator[tuple[Any, ...]]:
        counts = [0] * graph.n_artifacts
        for a in graph.artifact_of:
            counts[a] += 1
        for a in range(graph.n_artifacts):
            kind = "dataset" if a % 4 == 0 else "model"
            # every version is live: the count is the label counter, the last update the newest's
            last = _at(last_of[a] + 1) if a in last_of else None  # a small graph leaves some empty
            yield (a + 1, graph.name(a), kind, None, _at(0), counts[a], counts[a], last)

    def runs() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            a = graph.artifact_of[i]
            params = json.dumps({"i": i, "lr": 0.001 * (i % 7)})
            yield (
                run_ids[i],
                f"job-{a:06d}",
                "bench",
                orchestrators[i % 3],
                "task",
                "succeeded",
                _at(i + 1),
                _at(i),
                _at(i + 1),
                params,
                None,
                None,
                "{}",
                "{}",
                _at(i),
            )

    def versions() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            yield (
                i + 1,
                graph.artifact_of[i] + 1,
                graph.label_of[i],
                "blake3:" + hexdigest("v", i),
                1000 + i,
                2 if i in holders else 1,
                json.dumps({"rows": i * 10}),
                None,
                _at(i + 1),
                run_ids[i],
                None,
            )

    def entries() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            yield (i + 1, "part-0.parquet", "blake3:" + hexdigest("e", i), 1000 + i, None)
            if i in holders:
                yield (i + 1, SHARED_FILE, shared, 2_000_000, None)

    def edges() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = _at(i)
            yield (run_ids[i], i + 1, "produced", "t", "{}", at)
            for v in graph.inputs[i]:
                yield (run_ids[i], v + 1, "used", "t", "{}", at)

    def aliases() -> Iterator[tuple[Any, ...]]:
        for a, i in sorted(last_of.items()):
            yield (a + 1, "latest", i + 1, _at(i + 1))
            if a % 5 == 0:
                yield (a + 1, "production", i + 1, _at(i + 2))

    def alias_moves() -> Iterator[tuple[Any, ...]]:
        # every logged version moved `latest`; a fifth of the artifacts were promoted once
        for i in range(n):
            yield (i + 1, graph.artifact_of[i] + 1, "latest", i + 1, _at(i + 1))
        for a, i in sorted(last_of.items()):
            if a % 5 == 0:
                yield (n + a + 1, a + 1, "production", i + 1, _at(i + 2))

    def tags() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            if i % 5 == 0:
                yield (i + 1, "validated")
            if i % 50 == 0:
                yield (i + 1, "pii")

    def applied() -> Iterator[tuple[Any, ...]]:
        rng = random.Random(9)
        for i in range(n):
            yield (str(uuid.UUID(int=rng.getrandbits(128), version=4)), _at(i))

    tables: list[tuple[str, str, Callable[[], Iterator[tuple[Any, ...]]]]] = [
        ("artifacts", "id, name, type, description, created_at, next_label, n_versions, updated_at", artifacts),
        (
            "runs",
            "id, job, job_namespace, orchestrator, kind, status, status_at, started_at, ended_at, params, "
            "parent_id, error, code, links, created_at",
            runs,
        ),
        (
            "versions",
            "id, artifact_id, label, digest, size, n_entries, metadata, description, created_at, produced_by, "
            "deleted_at",
            versions,
        ),
        ("entries", "version_id, path, digest, size, ref", entries),
        ("edges", "run_id, version_id, direction, exact, metadata, created_at", edges),
        ("aliases", "artifact_id, alias, version_id, moved_at", aliases),
        ("alias_moves", "id, artifact_id, alias, version_id, at", alias_moves),
        ("tags", "version_id, tag", tags),
        ("applied_events", "id, applied_at", applied),
    ]
    seconds: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for table, columns, rows in tables:
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for chunk in _tsv(rows()):
                    copy.write(chunk)
            seconds[table] = time.perf_counter() - started
            log(f"load: {table} in {seconds[table]:.1f} s")
        for table in ("artifacts", "versions", "alias_moves"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        seconds["vacuum analyze"] = time.perf_counter() - started
    return seconds


def sizes(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    return {name: int(size) for name, size in rows}


# --- 2: ingest -----------------------------------------------------------------------------------


def _ingest_worker(url: str, refs: list[str], seconds: float, seed: int, start_at: float) -> tuple[int, float, int]:
    """One client: batches of BATCH events until `seconds` have passed; (events, seconds, retries).

    A batch refused as Unavailable (a deadlock between two servers' transactions, say) is sent
    again, as the outbox would: its event ids make the retry apply once."""
    from headwater.digest.hashing import manifest_digest
    from headwater.errors import Unavailable
    from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
    from headwater.models import ManifestEntry
    from headwater.store.http import HTTPStore

    rng = random.Random(seed)
    store = HTTPStore(url)
    sent = retries = 0
    while time.time() < start_at:
        time.sleep(0.01)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch: list[Any] = []
        for _ in range(BATCH // 4):
            run_id = str(uuid.uuid4())  # never one of the loaded runs' ids (they come from a seeded generator)
            now = datetime.now(timezone.utc)
            batch.append(
                RunRecorded(
                    run_id=run_id,
                    job=f"ingest-{rng.randrange(500)}",
                    job_namespace="bench",
                    orchestrator="airflow",
                    run_kind="task",
                    status="succeeded",
                    started_at=now,
                    ended_at=now,
                )
            )
            for ref in rng.sample(refs, 2):
                batch.append(EdgeRecorded(run_id=run_id, ref=ref, direction="used"))
            entries = [
                ManifestEntry(path="part-0.parquet", digest="etag:" + uuid.uuid4().hex, size=1, ref="s3://lake/p")
            ]
            batch.append(
                VersionRecorded(
                    name=f"bench/ingest-{rng.randrange(200):03d}",
                    digest=manifest_digest(entries),
                    entries=entries,
                    run_id=run_id,
                    direction="produced",
                )
            )
        while True:
            try:
                store.apply(batch)
                break
            except Unavailable:
                retries += 1
                time.sleep(rng.uniform(0.02, 0.2))  # a short random back-off, as the outbox's
        sent += len(batch)
    elapsed = time.perf_counter() - started
    store.close()
    return sent, elapsed, retries


def ingest(urls: list[str], refs: list[str], seconds: float) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")  # no fork after blake3 or open sockets
    start_at = time.time() + 5  # every client imported and connected before the clock starts
    with context.Pool(CLIENTS) as pool:
        jobs = [
            pool.apply_async(_ingest_worker, (urls[c % len(urls)], refs, seconds, c, start_at)) for c in range(CLIENTS)
        ]
        results = [job.get(timeout=seconds + 300) for job in jobs]
    events = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    retries = sum(r[2] for r in results)
    return {"events": events, "seconds": wall, "events_per_s": events / wall, "retried_batches": retries}


# --- 3: reads ------------------------------------------------------------------------------------


@dataclass
class Latency:
    key: str
    what: str
    samples: int
    p50_ms: float
    p99_ms: float
    result: int  # nodes, versions or runs returned
    target_ms: float | None  # p99 target

    @property
    def met(self) -> bool | None:
        return None if self.target_ms is None else self.p99_ms <= self.target_ms


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def queries(graph: Graph, chosen: dict[str, int]) -> list[tuple[str, str, Callable[[Any], int], int, float | None]]:
    """(key, what, call on a Client -> result size, repetitions, p99 target in ms)."""
    rng = random.Random(5)
    sample = [rng.randrange(graph.n) for _ in range(400)]
    present = sorted(set(graph.artifact_of) - {0})  # at small scales some artifacts get no version
    ordinary = graph.name(present[len(present) // 3])
    promoted = graph.name(next(a for a in present if a % 5 == 0))  # holds a `production` alias
    # what a user types in the UI's search box: a part of names (up to 10, or 100 at scale 1, match)
    query = graph.name(present[len(present) // 2]).split("/", 1)[1][: -1 if graph.n < 100_000 else -2]
    mid, late, wide = graph.ref(chosen["mid"]), graph.ref(chosen["late"]), graph.ref(chosen["wide"])
    half = graph.ref(chosen["half"])
    shared = "blake3:" + hexdigest("shared", 0)
    counter = iter(range(10**9))

    def nodes(g: Any) -> int:
        return len(g.versions) + len(g.runs)

    def refs(r: Any) -> int:  # a Reachable's nodes: version refs and run ids
        return len(r.versions) + len(r.runs)

    return [
        (
            "get",
            "get by REF (name:vN), random versions",
            lambda c: bool(c.get(graph.ref(sample[next(counter) % 400]))),
            300,
            50,
        ),
        ("get-alias", "get name:production", lambda c: bool(c.get(f"{promoted}:production")), 200, 50),
        ("versions", f"versions of {BIG} (all of them)", lambda c: len(c.versions(BIG)), 20, None),
        (
            "runs-using",
            f"runs_using of an ordinary artifact ({ordinary})",
            lambda c: len(c.runs_using(ordinary)),
            200,
            50,
        ),
        ("up-3", "upstream, depth 3, mid-graph version", lambda c: nodes(c.upstream(mid, depth=3)), 100, 50),
        ("down-3", "downstream, depth 3, mid-graph version", lambda c: nodes(c.downstream(mid, depth=3)), 100, 50),
        ("up-all", "upstream, unbounded, late version", lambda c: nodes(c.upstream(late)), 2, None),
        (
            "down-all",
            f"downstream, unbounded, {chosen['wide_size']:,}-version closure, as a graph",
            lambda c: nodes(c.downstream(wide)),
            3,
            None,
        ),
        (
            "reach-down",
            f"reachable refs (hw.reachable), downstream, unbounded, {chosen['wide_size']:,}-version closure",
            lambda c: refs(c.reachable(wide)),
            5,
            None,
        ),
        (
            "reach-half",
            f"reachable refs (hw.reachable), downstream, unbounded, {chosen['half_size']:,}-version closure",
            lambda c: refs(c.reachable(half)),
            5,
            2000,
        ),
        (
            "reach-up",
            "reachable refs (hw.reachable), upstream, unbounded, late version",
            lambda c: refs(c.reachable(late, "upstream")),
            3,
            None,
        ),
        (
            "impact",
            f"impact of a file held by {len(graph.holders)} versions",
            lambda c: len(c.impact(digest=shared).holding),
            5,
            None,
        ),
        (
            "search",
            f"web UI search: artifacts ?q={query}, newest first, page of 50",
            lambda c: len(c.artifacts(name_like=query, order="updated", limit=51)),
            50,
            None,
        ),
        (
            "list-page",
            "web UI artifact list, first page by name",
            lambda c: len(c.artifacts(order="name", limit=51)),
            50,
            None,
        ),
    ]


def read_latencies(
    urls: list[str], plan: list[tuple[str, str, Callable[[Any], int], int, float | None]], reps: float
) -> list[Latency]:
    import headwater as hw

    clients = [hw.Client(uri=url, home=Path(tempfile.mkdtemp(prefix="hw-scale-"))) for url in urls]
    out = []
    for key, what, call, count, target in plan:
        count = max(1, int(count * reps))
        if count >= 5:
            call(clients[0])  # warm: connections, caches (the long walks are their own warm-up)
        times, result = [], 0
        for i in range(count):
            started = time.perf_counter()
            result = call(clients[i % len(clients)])
            times.append((time.perf_counter() - started) * 1000)
        row = Latency(key, what, count, _percentile(times, 0.5), _percentile(times, 0.99), int(result), target)
        log(f"read {key}: p50 {row.p50_ms:.1f} ms, p99 {row.p99_ms:.1f} ms ({row.result:,} returned)")
        out.append(row)
    for client in clients:
        client.close()
    return out


# --- 4: plans ------------------------------------------------------------------------------------


def explain(
    url: str,
    plan: list[tuple[str, str, Callable[[Any], int], int, float | None]],
    out: Path,
    wide: int | None = None,
) -> dict[str, Any]:
    """Run each read once in-process on the SQL store, capture its statements, EXPLAIN ANALYZE each."""
    import psycopg
    import sqlalchemy as sa

    import headwater as hw
    from headwater.store.sql import SQLStore

    store = SQLStore(url)
    client = hw.Client(store=store, home=Path(tempfile.mkdtemp(prefix="hw-scale-")))
    captured: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        captured.append((statement, parameters))

    summary: dict[str, Any] = {}
    if wide is not None:
        # The walk alone, without building the graph the API returns: what the closure costs.
        took = []
        for _ in range(3):
            started = time.perf_counter()
            with store.engine.connect() as conn:
                found = store.closure(conn, wide, "downstream", None)
            took.append((time.perf_counter() - started) * 1000)
        summary["closure-sql"] = {"versions": len(found), "ms": sorted(took)}
        log(f"closure SQL alone: {len(found):,} versions in {min(took):.0f} ms (best of 3)")
    raw = psycopg.connect(url)
    with open(out, "w") as plans:
        for key, what, call, _, _ in plan:
            captured.clear()
            call(client)
            summary[key] = []
            for statement, parameters in list(captured):
                if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                    continue
                rows = raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
                text = "\n".join(r[0] for r in rows)
                plans.write(f"=== {key}: {what}\n{statement}\n{parameters}\n{text}\n\n")
                scans = sorted(
                    {
                        " ".join(line.strip().lstrip("->").split(" (cost")[0].split())
                        for line in text.splitlines()
                        if "Scan" in line and ("on " in line or "using " in line)
                    }
                )
                total = next((line for line in text.splitlines() if line.startswith("Execution Time")), "")
                summary[key].append({"execution": total.split(":", 1)[-1].strip(), "scans": scans})
    raw.close()
    store.close()
    return summary


# --- the run -------------------------------------------------------------------------------------


def render(reads: list[Latency], markdown: bool) -> str:
    header = ["benchmark", "what", "n", "p50 ms", "p99 ms", "returned", "p99 target", "met"]
    rows = [
        [
            r.key,
            r.what,
            str(r.samples),
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.result:,}",
            "" if r.target_ms is None else f"≤ {r.target_ms:g} ms",
            {None: "", True: "yes", False: "NO"}[r.met],
        ]
        for r in reads
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows])


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """The database to measure: --database as it is, a new one kept (--keep), or a new one dropped after."""
    import sqlalchemy as sa

    if args.database or args.keep:
        name = args.database or f"headwater_scale_{uuid.uuid4().hex[:8]}"
        if not args.database:
            admin = sa.create_engine(
                sa.make_url(args.postgres).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
            )
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            log(f"--keep: the database {name} stays (measure it again with --database {name})")
        yield sa.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        return
    with postgres_database(args.postgres) as url:
        yield url


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1,000,000 runs and versions (default)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HEADWATER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL URL whose user may create databases",
    )
    parser.add_argument("--database", help="measure an already loaded database of that name (skips the load)")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database (its name is printed)")
    parser.add_argument("--ingest-s", type=float, default=20.0, help="seconds of ingest (default 20)")
    parser.add_argument("--reps", type=float, default=1.0, help="multiplies every read's repetitions")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per server (default 2)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "headwater-scale")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--only", help="comma-separated read keys to measure (default: every read)")
    parser.add_argument("--explain", help="comma-separated read keys to EXPLAIN (default: those measured)")
    parser.add_argument("--no-ingest", action="store_true", help="skip the ingest stage")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    # An unbounded walk of a large closure answers in tens of seconds: the clients (here and in
    # the ingest processes) wait for it rather than give up at the default 10 s budget.
    os.environ["HEADWATER_TIMEOUT_S"] = "900"
    n = max(1000, int(1_000_000 * args.scale))
    result: dict[str, Any] = {"scale": args.scale, "runs": n, "versions": n, "cpus": os.cpu_count()}

    started = time.perf_counter()
    graph = generate(n)
    chosen = roots(graph)
    result["edges"] = n + sum(len(i) for i in graph.inputs)
    result["generate_s"] = time.perf_counter() - started
    log(f"graph: {n:,} runs, {n:,} versions, {result['edges']:,} edges in {result['generate_s']:.1f} s")
    ids = random.Random(7)
    run_ids = [str(uuid.UUID(int=ids.getrandbits(128), version=4)) for _ in range(n)]
    with database(args) as url:
        from headwater.store.sql import SQLStore

        if not args.database:
            SQLStore(url).close()  # the schema, through headwater's migrations
            started = time.perf_counter()
            result["load_s"] = load(url.replace("postgresql+psycopg://", "postgresql://"), graph, run_ids)
            result["load_total_s"] = time.perf_counter() - started
        result["bytes"] = sizes(url.replace("postgresql+psycopg://", "postgresql://"))
        plan = queries(graph, chosen)
        if args.only:
            plan = [q for q in plan if q[0] in args.only.split(",")]
        explained = [
            q for q in queries(graph, chosen) if q[0] in (args.explain or ",".join(q[0] for q in plan)).split(",")
        ]
        with ExitStack() as stack:
            urls = []
            for s in range(SERVERS):
                folder = args.workdir / f"server-{s}"
                folder.mkdir(exist_ok=True)
                url_s, _ = stack.enter_context(server_process(url, folder, args.workers))
                urls.append(url_s)
            log(f"servers: {', '.join(urls)} ({args.workers} workers each)")
            result["reads"] = [asdict(r) | {"met": r.met} for r in read_latencies(urls, plan, args.reps)]
            pick = random.Random(3)
            refs = [graph.ref(pick.randrange(n)) for _ in range(2000)]
            if not args.no_ingest:
                result["ingest"] = ingest(urls, refs, args.ingest_s)
                log(f"ingest: {result['ingest']['events_per_s']:,.0f} events/s ({CLIENTS} clients, {SERVERS} servers)")
        result["plans"] = explain(url, explained, args.workdir / "plans.txt", wide=chosen["wide"] + 1)
        (args.workdir / "scale.json").write_text(json.dumps(result, indent=2, default=str))
        reads = [Latency(**{k: v for k, v in r.items() if k != "met"}) for r in result["reads"]]
        print(render(reads, args.markdown))
        ing = result.get("ingest")
        if ing:
            print(
                f"\ningest: {ing['events']:,} events in {ing['seconds']:.1f} s = {ing['events_per_s']:,.0f} events/s "
                f"({CLIENTS} clients over {SERVERS} servers, batches of {BATCH}, {ing['retried_batches']} batches "
                "retried after Unavailable; target ≥ 5,000)"
            )
        print(f"database: {sum(result['bytes'].values()) / 2**20:,.0f} MiB; plans in {args.workdir / 'plans.txt'}")
    return result


if __name__ == "__main__":
    main()
