#!/usr/bin/env python
"""headwater against its peers, measured side by side and printed as one table.

    python bench/run.py [--quick] [--tiny] [--only NAME[,NAME]] [--postgres URL] [--json FILE]

Benchmarks (names for --only):
  digest     digest of a folder shaped like docs/architecture.md's (1,000 x 1 MiB + one 512 MiB file,
             page-cached) by build_manifest + manifest_digest, against raw blake3 on one
             thread, md5 (what W&B Artifacts and DVC compute), blake3 update_mmap on 2
             threads and just reading the bytes
  statcache  re-digest of the unchanged 1,000-file folder through a warm StatCache, against
             the first digest (cold cache, page-cached bytes)
  runs       runs logged per second (2 inputs, 1 output, metadata only) through
             Store.apply and through Client.emit (outbox + delivery), on SQLite and
             PostgreSQL, against the same rows written by bare DB-API statements
  closure    downstream closure on a synthetic 200,000-version / 200,000-run DAG:
             SQLStore.closure against networkx descendants; Store.lineage as extra rows

Every benchmark runs in a child process of its own (`--worker NAME`), so peak RSS (VmHWM,
reset through /proc/self/clear_refs before each measured call) belongs to that measurement
alone. Within a worker the headwater side and its peers run interleaved, repetition by
repetition; medians are quoted. Ratios are always "peer time / headwater time": above 1
headwater is faster. Progress goes to stderr; stdout holds the table.

PostgreSQL: --postgres URL, else $HEADWATER_TEST_POSTGRES_URL, else
postgresql://postgres@127.0.0.1:5432/test. A database of the run's own is created there and
dropped at the end; when the server cannot be reached the PostgreSQL rows say so.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

MiB = 1 << 20
HERE = Path(__file__).resolve().parent
BENCHMARKS = ("digest", "statcache", "runs", "closure")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

# Sizes. "full" is the issue's; --quick is for a fast look; --tiny is for the smoke test.
SIZES: dict[str, dict[str, int]] = {
    "full": {
        "n_small": 1000,
        "small": 1 * MiB,
        "big": 512 * MiB,
        "runs": 2000,
        "graph": 200_000,
        "reps_short": 5,
        "reps_long": 3,
    },
    "quick": {
        "n_small": 200,
        "small": 256 << 10,
        "big": 64 * MiB,
        "runs": 500,
        "graph": 20_000,
        "reps_short": 5,
        "reps_long": 3,
    },
    "tiny": {
        "n_small": 20,
        "small": 64 << 10,
        "big": 8 * MiB,
        "runs": 30,
        "graph": 2_000,
        "reps_short": 2,
        "reps_long": 1,
    },
}

# Roots picked for the closure benchmark: (row key, share of all versions its closure reaches).
CLOSURE_ROOTS = (("50pct", 0.50), ("25pct", 0.25), ("10pct", 0.10), ("small", 0.0))
LINEAGE_ROOTS = ("10pct", "small")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- peak RSS ----------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
        return int(m.group(1)) if m else None
    except OSError:
        return None


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """Peak RSS since the last reset_peak(); the whole process's peak where that cannot reset."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


@dataclass
class Series:
    times: list[float]
    peak_mib: float

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def side_by_side(sides: dict[str, Callable[[], float]], reps: int, label: str) -> dict[str, Series]:
    """Run every side once per repetition, rotating the order; each call returns its own time
    (so it can keep set-up out of it). Peak RSS is the max over that side's calls."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    peaks: dict[str, float] = {k: 0.0 for k in sides}
    names = list(sides)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            reset_peak()
            elapsed = sides[name]()
            peaks[name] = max(peaks[name], peak_mib())
            times[name].append(elapsed)
        log(f"{label} rep {rep + 1}/{reps}: " + ", ".join(f"{n} {times[n][-1] * 1000:.1f} ms" for n in names))
    return {n: Series(times[n], peaks[n]) for n in names}


# --- 1 and 2: digests --------------------------------------------------------------------------


def make_folder(root: Path, n_small: int, small: int, big: int) -> int:
    """docs/architecture.md's shape: files/ holding n_small files of `small` bytes, plus big.bin.
    Reused when already there with the right sizes. Returns the total bytes."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600  # older than the 2 s racy-mtime window, so digests are cacheable
    wanted = [(files / f"part-{i:05d}.bin", small) for i in range(n_small)] + [(root / "big.bin", big)]
    rng = random.Random(1)
    for path, size in wanted:
        if not (path.exists() and path.stat().st_size == size):
            with open(path, "wb") as f:
                left = size
                while left:
                    n = min(left, 64 * MiB)
                    f.write(rng.randbytes(n) if n < 4 * MiB else os.urandom(n))
                    left -= n
        os.utime(path, (old, old))
    return sum(size for _, size in wanted)


def walk_files(root: Path) -> list[tuple[str, str]]:
    """(relative POSIX path, absolute path) of every file below root, sorted: what a peer
    tool's directory scan does."""
    out: list[tuple[str, str]] = []
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, prefix + e.name + "/"))
                elif e.is_file():
                    out.append((prefix + e.name, e.path))
    out.sort()
    return out


READ = 8 * MiB


def blake3_single(root: Path) -> tuple[str, dict[str, str]]:
    """Plain single-threaded blake3 per file with large reads, then the canonical manifest."""
    import blake3

    buf = bytearray(READ)
    view = memoryview(buf)
    per_file: dict[str, str] = {}
    rows = []
    for rel, path in walk_files(root):
        h = blake3.blake3()
        size = 0
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
                size += n
        d = "blake3:" + h.hexdigest()
        per_file[rel] = d
        rows.append(f"{rel}\0{d}\0{size}")
    return "blake3:" + blake3.blake3("\n".join(rows).encode()).hexdigest(), per_file


def blake3_mmap2(root: Path) -> str:
    import blake3

    rows = []
    for rel, path in walk_files(root):
        d = blake3.blake3(max_threads=2).update_mmap(path).hexdigest()
        rows.append(f"{rel}\0blake3:{d}\0{os.path.getsize(path)}")
    return "blake3:" + blake3.blake3("\n".join(rows).encode()).hexdigest()


def md5_dir(root: Path) -> str:
    """md5 per file with 1 MiB streaming reads, then an md5 of the listing (DVC's .dir idea)."""
    rows = []
    for rel, path in walk_files(root):
        h = hashlib.md5()
        with open(path, "rb") as f:
            while chunk := f.read(MiB):
                h.update(chunk)
        rows.append(f"{rel} {h.hexdigest()}")
    return hashlib.md5("\n".join(rows).encode()).hexdigest()


def read_only(root: Path) -> int:
    buf = bytearray(READ)
    total = 0
    for _, path in walk_files(root):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total


def timed(fn: Callable[[], Any]) -> Callable[[], float]:
    def call() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return call


def worker_digest(size: dict[str, int], work: Path, _pg: str | None) -> dict[str, Any]:
    from headwater.config import hash_threads
    from headwater.digest import build_manifest, manifest_digest

    root = work / "data"
    log(f"digest: writing the folder under {root} (reused when present)")
    total = make_folder(root, size["n_small"], size["small"], size["big"])
    read_only(root)  # page-cache every byte
    read_only(root)

    # Same bytes, same answer: the raw-blake3 peer computes exactly what headwater does.
    manifest = build_manifest(root, stat_cache=False)
    peer_digest, per_file = blake3_single(root)
    assert {e.path: e.digest for e in manifest} == per_file, "headwater and blake3 disagree"
    assert manifest_digest(manifest) == peer_digest, "manifest digests disagree"

    def headwater() -> None:
        # stat_cache=False: None would use the shared cache in $HEADWATER_HOME and turn every
        # repetition after the first into a cache hit.
        manifest_digest(build_manifest(root, stat_cache=False))

    series = side_by_side(
        {
            "headwater": timed(headwater),
            "blake3_1t": timed(lambda: blake3_single(root)),
            "md5": timed(lambda: md5_dir(root)),
            "blake3_mmap_2t": timed(lambda: blake3_mmap2(root)),
            "read": timed(lambda: read_only(root)),
        },
        size["reps_short"],
        "digest",
    )
    return {
        "bytes": total,
        "files": size["n_small"] + 1,
        "threads": hash_threads(),
        "series": {k: asdict(v) for k, v in series.items()},
    }


def worker_statcache(size: dict[str, int], work: Path, _pg: str | None) -> dict[str, Any]:
    from headwater import digest as dg

    root = work / "data"
    log("statcache: preparing the 1,000-file folder")
    make_folder(root, size["n_small"], size["small"], size["big"])
    folder = root / "files"
    read_only(folder)
    caches = work / "statcache"
    shutil.rmtree(caches, ignore_errors=True)
    caches.mkdir()
    state: dict[str, Any] = {"rep": 0, "cache": None, "expected": None}
    hashed_when_warm: list[int] = []

    def cold() -> float:
        state["rep"] += 1
        cache = state["cache"] = dg.StatCache(caches / f"cache-{state['rep']}.db")
        start = time.perf_counter()
        digest = dg.manifest_digest(dg.build_manifest(folder, stat_cache=cache))
        elapsed = time.perf_counter() - start
        state["expected"] = state["expected"] or digest
        assert digest == state["expected"]
        return elapsed

    def warm() -> float:
        before = dg.files_hashed()
        start = time.perf_counter()
        digest = dg.manifest_digest(dg.build_manifest(folder, stat_cache=state["cache"]))
        elapsed = time.perf_counter() - start
        hashed_when_warm.append(dg.files_hashed() - before)
        assert digest == state["expected"]
        state["cache"].close()
        return elapsed

    # cold then warm, always in that order (warm needs the cache cold just filled).
    times: dict[str, list[float]] = {"cold": [], "warm": []}
    peaks = {"cold": 0.0, "warm": 0.0}
    for rep in range(size["reps_short"]):
        for name, fn in (("cold", cold), ("warm", warm)):
            reset_peak()
            times[name].append(fn())
            peaks[name] = max(peaks[name], peak_mib())
        log(f"statcache rep {rep + 1}: cold {times['cold'][-1] * 1000:.1f} ms, warm {times['warm'][-1] * 1000:.1f} ms")
    return {
        "files": size["n_small"],
        "bytes": size["n_small"] * size["small"],
        "hashed_when_warm": hashed_when_warm,
        "series": {n: asdict(Series(times[n], peaks[n])) for n in times},
    }


# --- 3: runs logged per second -----------------------------------------------------------------

N_SEEDS = 20


def make_batches(n_runs: int) -> tuple[list[Any], list[list[Any]]]:
    """Seed versions (logged untimed first) and one batch per run: RunRecorded, two
    EdgeRecorded inputs by name@digest of versions logged before, one VersionRecorded output."""
    import blake3

    from headwater.digest import manifest_digest
    from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
    from headwater.models import ManifestEntry

    rng = random.Random(3)
    now = datetime.now(timezone.utc)

    def entry(key: str, size: int) -> ManifestEntry:
        return ManifestEntry(path="data.bin", digest="blake3:" + blake3.blake3(key.encode()).hexdigest(), size=size)

    seeds = []
    known: list[tuple[str, str]] = []
    for k in range(N_SEEDS):
        entries = [entry(f"seed-{k}", 1000 + k)]
        ev = VersionRecorded(
            name=f"bench/dataset-{k}",
            digest=manifest_digest(entries),
            entries=entries,
            type="dataset",
        )
        seeds.append(ev)
        known.append((ev.name, ev.digest))
    batches = []
    for i in range(n_runs):
        rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        inputs = rng.sample(known[-200:], 2)  # recent versions, as a pipeline would use
        entries = [entry(f"out-{i}", 10_000 + i)]
        out = VersionRecorded(
            name=f"bench/model-{i % 50}",
            digest=manifest_digest(entries),
            entries=entries,
            type="model",
            run_id=rid,
            direction="produced",
        )
        batches.append(
            [
                RunRecorded(
                    run_id=rid,
                    job=f"train-{i % 20}",
                    job_namespace="bench",
                    orchestrator="manual",
                    run_kind="task",
                    status="succeeded",
                    started_at=now,
                    ended_at=now,
                    params={"lr": 0.01, "step": i},
                ),
                *(EdgeRecorded(run_id=rid, ref=f"{name}@{digest}") for name, digest in inputs),
                out,
            ]
        )
        known.append((out.name, out.digest))
    return seeds, batches


class BareSQL:
    """The rows Store.apply writes for one run, by bare DB-API statements in one transaction:
    the floor the database itself sets (no ORM, no validation, no merging)."""

    def __init__(self, dialect: str, connect: Callable[[], Any]) -> None:
        self.pg = dialect == "postgresql"
        self.conn = connect()
        self.for_update = " FOR UPDATE" if self.pg else ""

    def q(self, sql: str) -> str:
        return sql.replace("?j", "%s::jsonb").replace("?", "%s") if self.pg else sql.replace("?j", "?")

    def t(self, dt: datetime) -> Any:
        return dt if self.pg else dt.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    def log_run(self, batch: Sequence[Any]) -> None:
        from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded

        run, *edges_, out = batch
        assert isinstance(run, RunRecorded) and isinstance(out, VersionRecorded)
        q, t = self.q, self.t
        cur = self.conn.cursor()
        now = t(datetime.now(timezone.utc))
        if not self.pg:
            cur.execute("BEGIN IMMEDIATE")
        for ev in batch:
            cur.execute(
                q("INSERT INTO applied_events (id, applied_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"),
                (ev.id, now),
            )
        cur.execute(
            q(
                "INSERT INTO runs (id, job, job_namespace, orchestrator, kind, status, status_at, started_at,"
                " ended_at, params, parent_id, error, code, links, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?j, NULL, NULL, ?j, ?j, ?) ON CONFLICT (id) DO NOTHING"
            ),
            (
                run.run_id,
                run.job,
                run.job_namespace,
                run.orchestrator,
                run.run_kind,
                run.status,
                t(run.time),
                t(run.started_at),
                t(run.ended_at),
                json.dumps(run.params),
                "{}",
                "{}",
                t(run.time),
            ),
        )
        for edge in edges_:
            assert isinstance(edge, EdgeRecorded)
            name, _, digest = edge.ref.partition("@")
            cur.execute(
                q(
                    "SELECT v.id FROM versions v JOIN artifacts a ON a.id = v.artifact_id WHERE a.name = ? "
                    "AND v.digest = ?"
                ),
                (name, digest),
            )
            (vid,) = cur.fetchone()
            cur.execute(
                q(
                    "INSERT INTO edges (run_id, version_id, direction, exact, metadata, created_at)"
                    " VALUES (?, ?, 'used', ?, ?j, ?) ON CONFLICT DO NOTHING"
                ),
                (edge.run_id, vid, True, "{}", t(edge.time)),
            )
        cur.execute(
            q(
                "INSERT INTO artifacts (name, type, created_at, next_label) VALUES (?, ?, ?, 0) ON CONFLICT "
                "(name) DO NOTHING"
            ),
            (out.name, out.type, t(out.time)),
        )
        cur.execute(q("SELECT id, next_label FROM artifacts WHERE name = ?" + self.for_update), (out.name,))
        art_id, label = cur.fetchone()
        cur.execute(q("SELECT id FROM versions WHERE artifact_id = ? AND digest = ?"), (art_id, out.digest))
        assert cur.fetchone() is None
        cur.execute(
            q("UPDATE artifacts SET next_label = ?, n_versions = n_versions + 1, updated_at = ? WHERE id = ?"),
            (label + 1, t(out.time), art_id),
        )
        cur.execute(
            q(
                "INSERT INTO versions (artifact_id, label, digest, size, n_entries, metadata, created_at, produced_by)"
                " VALUES (?, ?, ?, ?, ?, ?j, ?, ?) RETURNING id"
            ),
            (
                art_id,
                label,
                out.digest,
                sum(e.size for e in out.entries),
                len(out.entries),
                "{}",
                t(out.time),
                out.run_id,
            ),
        )
        (vid,) = cur.fetchone()
        for e in out.entries:
            cur.execute(
                q("INSERT INTO entries (version_id, path, digest, size, ref) VALUES (?, ?, ?, ?, ?)"),
                (vid, e.path, e.digest, e.size, e.ref),
            )
        cur.execute(
            q(
                "INSERT INTO edges (run_id, version_id, direction, exact, metadata, created_at)"
                " VALUES (?, ?, 'produced', ?, ?j, ?) ON CONFLICT DO NOTHING"
            ),
            (out.run_id, vid, True, "{}", t(out.time)),
        )
        cur.execute(
            q("SELECT version_id, moved_at FROM aliases WHERE artifact_id = ? AND alias = 'latest'"),
            (art_id,),
        )
        cur.fetchone()
        cur.execute(
            q("INSERT INTO alias_moves (artifact_id, alias, version_id, at) VALUES (?, 'latest', ?, ?)"),
            (art_id, vid, t(out.time)),
        )
        cur.execute(
            q(
                "INSERT INTO aliases (artifact_id, alias, version_id, moved_at) VALUES (?, 'latest', ?, ?)"
                " ON CONFLICT (artifact_id, alias) DO UPDATE SET version_id = excluded.version_id,"
                " moved_at = excluded.moved_at WHERE aliases.moved_at <= excluded.moved_at"
            ),
            (art_id, vid, t(out.time)),
        )
        self.conn.commit() if self.pg else cur.execute("COMMIT")
        cur.close()

    def close(self) -> None:
        self.conn.close()


def worker_runs(size: dict[str, int], work: Path, pg: str | None) -> dict[str, Any]:
    import sqlalchemy as sa

    from headwater.api import Client
    from headwater.store import schema
    from headwater.store.sql import SQLStore

    n = size["runs"]
    seeds, batches = make_batches(n)
    counter = iter(range(1_000_000))

    template = work / "runs" / "template.db"

    def fresh(backend: str) -> str:
        """A store holding only the seed versions, for one measurement (untimed)."""
        if backend == "sqlite":
            if not template.exists():
                seeded = SQLStore(f"sqlite:///{template}")
                seeded.apply(seeds)
                seeded.close()
            db = work / "runs" / f"store-{next(counter)}.db"
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{template}{suffix}").exists():
                    shutil.copyfile(f"{template}{suffix}", f"{db}{suffix}")
            return f"sqlite:///{db}"
        assert pg is not None
        engine = sa.create_engine(sa.make_url(pg).set(drivername="postgresql+psycopg"))
        with engine.begin() as conn:
            if conn.execute(sa.text("SELECT to_regclass('artifacts')")).scalar():
                names = ", ".join(t.name for t in schema.metadata.sorted_tables)
                conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        engine.dispose()
        seeded = SQLStore(pg)
        seeded.apply(seeds)
        seeded.close()
        return pg

    def apply(backend: str) -> Callable[[], float]:
        def call() -> float:
            store = SQLStore(fresh(backend))
            start = time.perf_counter()
            for batch in batches:
                store.apply(batch)
            elapsed = time.perf_counter() - start
            store.close()
            return elapsed

        return call

    def emit(backend: str) -> Callable[[], float]:
        def call() -> float:
            uri = fresh(backend)
            home = work / "runs" / f"home-{next(counter)}"
            client = Client(uri=uri, home=home)
            _ = client.store  # connect (and check the schema) outside the timing
            start = time.perf_counter()
            delivered = sum(client.emit(batch) for batch in batches)
            elapsed = time.perf_counter() - start
            client.close()
            assert delivered == len(batches), f"only {delivered} of {len(batches)} batches delivered"
            return elapsed

        return call

    def bare(backend: str) -> Callable[[], float]:
        def call() -> float:
            uri = fresh(backend)
            if backend == "sqlite":
                import sqlite3

                def connect() -> Any:
                    conn = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None)
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.execute("PRAGMA foreign_keys=ON")
                    return conn

                db = BareSQL("sqlite", connect)
            else:
                import psycopg

                db = BareSQL("postgresql", lambda: psycopg.connect(uri))
            start = time.perf_counter()
            for batch in batches:
                db.log_run(batch)
            elapsed = time.perf_counter() - start
            db.close()
            return elapsed

        return call

    (work / "runs").mkdir(parents=True, exist_ok=True)
    os.environ["HEADWATER_HOME"] = str(work / "runs" / "home")
    result: dict[str, Any] = {"runs": n}
    backends = ["sqlite"] + (["postgresql"] if pg else [])
    for backend in backends:
        series = side_by_side(
            {"apply": apply(backend), "emit": emit(backend), "bare": bare(backend)},
            size["reps_long"],
            f"runs/{backend}",
        )
        result[backend] = {k: asdict(v) for k, v in series.items()}
    return result


# --- 4: lineage closure ------------------------------------------------------------------------


def generate_graph(n: int, seed: int = 42) -> tuple[list[list[int]], int]:
    """A layered pipeline DAG: run i produces version i and uses 1-3 earlier versions, mostly
    recent ones (the previous stages), sometimes any older one (a reference dataset). The first
    n/1000 runs are ingest runs with no inputs. Returns each run's inputs and the source count."""
    rng = random.Random(seed)
    sources = max(5, n // 1000)
    window = max(20, n // 200)
    inputs: list[list[int]] = []
    for i in range(n):
        if i < sources:
            inputs.append([])
            continue
        k = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
        picked: set[int] = set()
        while len(picked) < min(k, i):
            if rng.random() < 0.8:
                picked.add(rng.randrange(max(0, i - window), i))
            else:
                picked.add(rng.randrange(0, i))
        inputs.append(sorted(picked))
    return inputs, sources


def reach(children: list[list[int]], root: int) -> int:
    seen = {root}
    frontier = [root]
    while frontier:
        nxt = []
        for v in frontier:
            for c in children[v]:
                if c not in seen:
                    seen.add(c)
                    nxt.append(c)
        frontier = nxt
    return len(seen)


def pick_roots(children: list[list[int]], n: int) -> dict[str, tuple[int, int]]:
    """Row key -> (version index, closure size): roots whose closure is near each share,
    the best of a fixed sample of candidates (closure size falls, noisily, with the index)."""
    rng = random.Random(11)
    sizes = {i: reach(children, i) for i in rng.sample(range(n), min(n, 80))}
    chosen: dict[str, tuple[int, int]] = {}
    for key, share in CLOSURE_ROOTS:
        if share == 0.0:
            # A late version with a small but non-trivial closure.
            for i in range(n - n // 100, n):
                sizes.setdefault(i, reach(children, i))
                if 3 <= sizes[i] <= 100:
                    break
        else:
            i = min(sizes, key=lambda j: abs(sizes[j] - share * n))
        chosen[key] = (i, sizes[i])
    return chosen


def worker_closure_load(size: dict[str, int], work: Path, _pg: str | None) -> dict[str, Any]:
    import blake3
    import sqlalchemy as sa

    from headwater.store import schema
    from headwater.store.sql import SQLStore

    n = size["graph"]
    db = work / "closure" / "graph.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    log(f"closure: generating a DAG of {n:,} versions and {n:,} runs")
    inputs, sources = generate_graph(n)
    children: list[list[int]] = [[] for _ in range(n)]
    for run, used in enumerate(inputs):
        for v in used:
            children[v].append(run)  # run i produces version i
    roots = pick_roots(children, n)
    log("closure: roots " + ", ".join(f"{k}: index {i} reaches {s:,}" for k, (i, s) in roots.items()))

    store = SQLStore(f"sqlite:///{db}")  # creates the schema through the migrations
    n_artifacts = max(10, n // 40)
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(7)
    run_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    labels = [0] * n_artifacts
    label_of = [0] * n
    last_of = [0] * n_artifacts  # the index of each artifact's newest version
    for i in range(n):
        label_of[i] = labels[i % n_artifacts]
        labels[i % n_artifacts] += 1
        last_of[i % n_artifacts] = i
    start = time.perf_counter()
    chunk = 20_000
    n_edges = 0
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(schema.artifacts),
            [
                {
                    "id": a + 1,
                    "name": f"bench/artifact-{a:05d}",
                    "type": "dataset" if a % 4 == 0 else "model",
                    "created_at": base,
                    "next_label": labels[a],
                    # The artifact row keeps its count and last update (as every write path does).
                    "n_versions": labels[a],
                    "updated_at": base + timedelta(seconds=last_of[a] + 1) if labels[a] else None,
                }
                for a in range(n_artifacts)
            ],
        )
        for lo in range(0, n, chunk):
            idx = range(lo, min(n, lo + chunk))
            conn.execute(
                sa.insert(schema.runs),
                [
                    {
                        "id": run_ids[i],
                        "job": f"job-{i % n_artifacts:05d}",
                        "job_namespace": "bench",
                        "orchestrator": "airflow",
                        "kind": "task",
                        "status": "succeeded",
                        "status_at": base + timedelta(seconds=i),
                        "started_at": base + timedelta(seconds=i),
                        "ended_at": base + timedelta(seconds=i + 1),
                        "params": {"i": i},
                        "parent_id": None,
                        "error": None,
                        "code": {},
                        "links": {},
                        "created_at": base + timedelta(seconds=i),
                    }
                    for i in idx
                ],
            )
            conn.execute(
                sa.insert(schema.versions),
                [
                    {
                        "id": i + 1,
                        "artifact_id": i % n_artifacts + 1,
                        "label": label_of[i],
                        "digest": "blake3:" + blake3.blake3(i.to_bytes(8, "little")).hexdigest(),
                        "size": 1000 + i,
                        "n_entries": 1,
                        "metadata": {},
                        "description": None,
                        "created_at": base + timedelta(seconds=i + 1),
                        "produced_by": run_ids[i],
                        "deleted_at": None,
                    }
                    for i in idx
                ],
            )
            edge_rows = []
            for i in idx:
                at = base + timedelta(seconds=i)
                edge_rows.append(
                    {
                        "run_id": run_ids[i],
                        "version_id": i + 1,
                        "direction": "produced",
                        "exact": True,
                        "metadata": {},
                        "created_at": at,
                    }
                )
                for v in inputs[i]:
                    edge_rows.append(
                        {
                            "run_id": run_ids[i],
                            "version_id": v + 1,
                            "direction": "used",
                            "exact": True,
                            "metadata": {},
                            "created_at": at,
                        }
                    )
            n_edges += len(edge_rows)
            conn.execute(sa.insert(schema.edges), edge_rows)
        latest = {}
        for i in range(n):
            latest[i % n_artifacts] = i
        conn.execute(
            sa.insert(schema.aliases),
            [
                {"artifact_id": a + 1, "alias": "latest", "version_id": i + 1, "moved_at": base}
                for a, i in latest.items()
            ],
        )
    load_s = time.perf_counter() - start
    store.close()
    log(f"closure: loaded {n_edges:,} edges in {load_s:.1f} s")
    return {
        "db": str(db),
        "versions": n,
        "runs": n,
        "edges": n_edges,
        "sources": sources,
        "load_s": load_s,
        "roots": {
            key: {
                "version_id": i + 1,
                "name": f"bench/artifact-{i % n_artifacts:05d}",
                "label": label_of[i],
                "size": s,
            }
            for key, (i, s) in roots.items()
        },
    }


def worker_closure_sql(size: dict[str, int], work: Path, _pg: str | None) -> dict[str, Any]:
    from headwater.refs import Ref
    from headwater.store.sql import SQLStore

    meta = json.loads((work / "closure" / "load.json").read_text())
    store = SQLStore(f"sqlite:///{meta['db']}")
    gc.collect()
    gc.freeze()  # as on the networkx side
    out: dict[str, Any] = {"closure": {}, "lineage": {}}
    for key, root in meta["roots"].items():

        def closure(root: dict[str, Any] = root) -> float:
            with store.engine.connect() as conn:
                start = time.perf_counter()
                depths = store.closure(conn, root["version_id"], "downstream", None)
                elapsed = time.perf_counter() - start
            assert len(depths) == root["size"], (len(depths), root["size"])
            return elapsed

        out["closure"][key] = asdict(side_by_side({"sql": closure}, size["reps_short"], f"closure/{key}")["sql"])
    for key in LINEAGE_ROOTS:
        root = meta["roots"][key]

        def lineage(root: dict[str, Any] = root) -> float:
            ref = Ref(root["name"], label=f"v{root['label']}")
            start = time.perf_counter()
            graph = store.lineage(ref, "downstream")
            elapsed = time.perf_counter() - start
            assert len(graph.versions) == root["size"], (len(graph.versions), root["size"])
            return elapsed

        out["lineage"][key] = asdict(side_by_side({"lineage": lineage}, size["reps_long"], f"lineage/{key}")["lineage"])
    store.close()
    return out


def worker_closure_nx(size: dict[str, int], work: Path, _pg: str | None) -> dict[str, Any]:
    import sqlite3

    import networkx as nx  # type: ignore[import-untyped]

    meta = json.loads((work / "closure" / "load.json").read_text())
    reset_peak()
    start = time.perf_counter()
    # Version ids are positive ints, runs negative ints: one node per version and per run.
    conn = sqlite3.connect(meta["db"])
    run_node: dict[str, int] = {}
    g = nx.DiGraph()
    for run_id, version_id, direction in conn.execute("SELECT run_id, version_id, direction FROM edges"):
        r = run_node.setdefault(run_id, -1 - len(run_node))
        if direction == "used":
            g.add_edge(version_id, r)
        else:
            g.add_edge(r, version_id)
    conn.close()
    build_s = time.perf_counter() - start
    graph_mib = peak_mib()
    # The graph is long-lived: take it out of the cyclic GC's scans, as a tuned in-memory
    # service would. Without this a BFS over half the graph runs ~4x slower (gen-2 collections
    # traverse all 400,000 nodes' dicts while the BFS allocates).
    gc.collect()
    gc.freeze()
    log(f"closure: networkx graph of {g.number_of_nodes():,} nodes built in {build_s:.1f} s")
    out: dict[str, Any] = {"build_s": build_s, "graph_peak_mib": graph_mib, "closure": {}}
    for key, root in meta["roots"].items():

        def descendants(root: dict[str, Any] = root) -> float:
            start = time.perf_counter()
            found = nx.descendants(g, root["version_id"])
            n_versions = 1 + sum(1 for node in found if node > 0)
            elapsed = time.perf_counter() - start
            assert n_versions == root["size"], (n_versions, root["size"])
            return elapsed

        out["closure"][key] = asdict(side_by_side({"nx": descendants}, size["reps_short"], f"nx/{key}")["nx"])
    return out


WORKERS: dict[str, Callable[[dict[str, int], Path, str | None], dict[str, Any]]] = {
    "digest": worker_digest,
    "statcache": worker_statcache,
    "runs": worker_runs,
    "closure-load": worker_closure_load,
    "closure-sql": worker_closure_sql,
    "closure-nx": worker_closure_nx,
}


# --- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    what: str
    headwater: str = "-"
    peer: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: str = "-"
    rss: str = "-"
    numbers: dict[str, Any] | None = None


def fmt_s(s: float) -> str:
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.001:
        return f"{s * 1000:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_rss(*values: float | None) -> str:
    return " / ".join("-" if v is None else f"{v:.0f}" for v in values) + " MiB"


def share(x: float) -> str:
    return f"{x:.1%}" if x >= 0.001 else "<0.1%"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def rows_digest(r: dict[str, Any]) -> list[Row]:
    s = {k: Series(**v) for k, v in r["series"].items()}
    mib = r["bytes"] / MiB
    hw = s["headwater"]
    shape = (
        f"{r['files']:,} files, {r['bytes'] / (1 << 30):.2f} GiB"
        if mib >= 1024
        else f"{r['files']:,} files, {mib:.0f} MiB"
    )

    def tp(x: Series) -> str:
        return f"{fmt_s(x.median)} ({mib / x.median:,.0f} MiB/s)"

    out = []
    for key, peer, what, target in (
        ("digest-vs-blake3", "blake3_1t", f"digest {shape} vs blake3, 1 thread", 0.7),
        ("digest-vs-md5", "md5", f"digest {shape} vs md5 (W&B, DVC)", 3.0),
        (
            "digest-vs-blake3-mmap",
            "blake3_mmap_2t",
            f"digest {shape} vs blake3 mmap, 2 threads",
            None,
        ),
        ("digest-vs-read", "read", f"digest {shape} vs reading the bytes", None),
    ):
        ratio = s[peer].median / hw.median
        out.append(
            Row(
                key=key,
                what=what,
                headwater=tp(hw),
                peer=tp(s[peer]),
                ratio=f"{ratio:.2f}x",
                target=f">= {target:g}x" if target else "(reference)",
                met=verdict(None if target is None else ratio >= target),
                rss=fmt_rss(hw.peak_mib, s[peer].peak_mib),
                numbers={
                    "headwater_s": hw.times,
                    "peer_s": s[peer].times,
                    "bytes": r["bytes"],
                    "threads": r["threads"],
                },
            )
        )
    return out


def rows_statcache(r: dict[str, Any]) -> list[Row]:
    cold, warm = Series(**r["series"]["cold"]), Series(**r["series"]["warm"])
    ratio = cold.median / warm.median
    hashed = max(r["hashed_when_warm"])
    return [
        Row(
            key="statcache",
            what=f"re-digest {r['files']:,} files, warm stat cache vs first digest",
            headwater=fmt_s(warm.median) + ("" if hashed == 0 else f" ({hashed} files re-hashed!)"),
            peer=fmt_s(cold.median),
            ratio=f"{ratio:.1f}x",
            target=">= 20x",
            met=verdict(ratio >= 20 and hashed == 0),
            rss=fmt_rss(warm.peak_mib, cold.peak_mib),
            numbers={
                "warm_s": warm.times,
                "cold_s": cold.times,
                "hashed_when_warm": r["hashed_when_warm"],
            },
        )
    ]


def rows_runs(r: dict[str, Any] | None, pg_note: str | None, n_runs: int) -> list[Row]:
    out = []
    for backend, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        data = (r or {}).get(backend)
        for how, what in (("apply", "Store.apply"), ("emit", "Client.emit")):
            key = f"runs-{how}-{'sqlite' if backend == 'sqlite' else 'postgres'}"
            text = f"runs/s, {label}, {what} vs bare DB-API"
            if data is None:
                out.append(Row(key=key, what=text, headwater=f"skipped: {pg_note or 'not run'}"))
                continue
            hw, bare = Series(**data[how]), Series(**data["bare"])
            rate, floor = n_runs / hw.median, n_runs / bare.median
            target = 1000 if backend == "sqlite" else None
            out.append(
                Row(
                    key=key,
                    what=text,
                    headwater=f"{rate:,.0f} runs/s ({hw.median / n_runs * 1000:.2f} ms/run)",
                    peer=f"{floor:,.0f} runs/s",
                    ratio=f"{bare.median / hw.median:.2f}x",
                    target=">= 1,000 runs/s" if target else "-",
                    met=verdict(None if target is None else rate >= target),
                    rss=fmt_rss(hw.peak_mib, bare.peak_mib),
                    numbers={"runs": n_runs, "headwater_s": hw.times, "peer_s": bare.times},
                )
            )
    return out


def rows_closure(load: dict[str, Any], sql: dict[str, Any], nxr: dict[str, Any]) -> list[Row]:
    n = load["versions"]
    out = []
    for key, _ in CLOSURE_ROOTS:
        root = load["roots"][key]
        a, b = Series(**sql["closure"][key]), Series(**nxr["closure"][key])
        ratio = b.median / a.median
        out.append(
            Row(
                key=f"closure-{key}",
                what=f"closure, {root['size']:,} of {n:,} versions ({share(root['size'] / n)}) vs networkx",
                headwater=fmt_s(a.median),
                peer=fmt_s(b.median),
                ratio=f"{ratio:.2f}x",
                target=">= 0.2x (within 5x)",
                met=verdict(ratio >= 0.2),
                rss=fmt_rss(a.peak_mib, b.peak_mib),
                numbers={"headwater_s": a.times, "peer_s": b.times, "size": root["size"]},
            )
        )
    for key in LINEAGE_ROOTS:
        root = load["roots"][key]
        a, b = Series(**sql["lineage"][key]), Series(**nxr["closure"][key])
        out.append(
            Row(
                key=f"lineage-{key}",
                what=f"Store.lineage(), {root['size']:,} versions vs networkx closure",
                headwater=fmt_s(a.median),
                peer=fmt_s(b.median),
                ratio=f"{b.median / a.median:.3f}x",
                target="(none)",
                rss=fmt_rss(a.peak_mib, b.peak_mib),
                numbers={"headwater_s": a.times, "peer_s": b.times, "size": root["size"]},
            )
        )
    return out


HEADERS = ("benchmark", "what", "headwater", "peer", "ratio", "target", "met", "peak RSS hw/peer")


def render(rows: Sequence[Row], markdown: bool = False) -> str:
    cells = [HEADERS] + [(r.key, r.what, r.headwater, r.peer, r.ratio, r.target, r.met, r.rss) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADERS))]

    def fmt(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]])


# --- orchestration -----------------------------------------------------------------------------


def call_worker(name: str, args: argparse.Namespace, work: Path, pg: str | None) -> dict[str, Any] | str:
    """Run one worker in a child process; its result, or the reason it failed."""
    out = work / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--workdir",
        str(work),
        "--out",
        str(out),
        "--size",
        args.size,
    ]
    if pg:
        cmd += ["--postgres", pg]
    env = {**os.environ, "HEADWATER_HOME": str(work / "home"), "PYTHONUNBUFFERED": "1"}
    env.pop("HEADWATER_URI", None)
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0 or not out.exists():
        return f"worker {name} failed (exit {proc.returncode}; see stderr)"
    return json.loads(out.read_text())


def postgres_database(url: str) -> tuple[str | None, str | None, Callable[[], None]]:
    """(URL of a new database, why none, drop it)."""
    import sqlalchemy as sa

    name = f"headwater_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as err:  # noqa: BLE001 - any failure means: no PostgreSQL rows
        return (
            None,
            f"PostgreSQL at {url} unreachable ({str(err).strip().splitlines()[0][:80]})",
            lambda: None,
        )

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    db_url = sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    return db_url.replace("postgresql+psycopg://", "postgresql://"), None, drop


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="much smaller shapes (a minute or so)")
    p.add_argument("--tiny", action="store_true", help="smallest shapes, for the smoke test (seconds)")
    p.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    p.add_argument("--postgres", help="PostgreSQL server URL (a database is created and dropped there)")
    p.add_argument("--json", type=Path, help="also write every measurement to this file")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep data here (reused between invocations) instead of a temp dir",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        work = args.workdir
        try:
            result = WORKERS[args.worker](SIZES[args.size], work, args.postgres)
        except Exception:  # noqa: BLE001 - the parent reports the failure in the table
            traceback.print_exc()
            return 1
        args.out.write_text(json.dumps(result))
        return 0

    args.size = "tiny" if args.tiny else "quick" if args.quick else "full"
    size = SIZES[args.size]
    only = BENCHMARKS if not args.only else tuple(x.strip() for x in args.only.split(","))
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    work = work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    failed = False
    notes: list[str] = []
    started = time.time()

    def failure(key: str, what: str, reason: str) -> Row:
        nonlocal failed
        failed = True
        return Row(key=key, what=what, headwater=f"FAILED: {reason}")

    try:
        if "digest" in only:
            r = call_worker("digest", args, work, None)
            if isinstance(r, str):
                rows += [
                    failure(k, "digest", r)
                    for k in (
                        "digest-vs-blake3",
                        "digest-vs-md5",
                        "digest-vs-blake3-mmap",
                        "digest-vs-read",
                    )
                ]
            else:
                rows += rows_digest(r)
                notes.append(f"digest: headwater hashes with HEADWATER_HASH_THREADS={r['threads']} (its default here)")
        if "statcache" in only:
            r = call_worker("statcache", args, work, None)
            rows += [failure("statcache", "statcache", r)] if isinstance(r, str) else rows_statcache(r)
        if "runs" in only:
            server = args.postgres or os.environ.get("HEADWATER_TEST_POSTGRES_URL") or DEFAULT_PG
            pg, pg_note, drop = postgres_database(server)
            try:
                r = call_worker("runs", args, work, pg)
            finally:
                drop()
            if isinstance(r, str):
                rows += [failure(f"runs-{h}-{b}", "runs", r) for b in ("sqlite", "postgres") for h in ("apply", "emit")]
            else:
                rows += rows_runs(r, pg_note, size["runs"])
        if "closure" in only:
            load = call_worker("closure-load", args, work, None)
            sql: dict[str, Any] | str = "not run"
            nxr: dict[str, Any] | str = "not run"
            if not isinstance(load, str):
                (work / "closure" / "load.json").write_text(json.dumps(load))
                sql = call_worker("closure-sql", args, work, None)
                nxr = call_worker("closure-nx", args, work, None)
            problem = next((x for x in (load, sql, nxr) if isinstance(x, str)), None)
            if problem is not None:
                keys = [f"closure-{k}" for k, _ in CLOSURE_ROOTS] + [f"lineage-{k}" for k in LINEAGE_ROOTS]
                rows += [failure(k, "closure", problem) for k in keys]
            else:
                assert isinstance(load, dict) and isinstance(sql, dict) and isinstance(nxr, dict)
                rows += rows_closure(load, sql, nxr)
                notes.append(
                    f"closure: {load['versions']:,} versions, {load['runs']:,} runs, {load['edges']:,} edges;"
                    f" bulk load {load['load_s']:.0f} s; networkx graph built in {nxr['build_s']:.1f} s,"
                    f" peak {nxr['graph_peak_mib']:.0f} MiB"
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(render(rows, markdown=args.markdown))
    print()
    print(
        f"shape: {args.size}; medians of {size['reps_short']} runs (digests, closures) or {size['reps_long']}"
        f" (runs/s, lineage); ratio = peer time / headwater time (> 1: headwater faster);"
        f" wall time {time.time() - started:.0f} s"
    )
    for note in notes:
        print(note)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
