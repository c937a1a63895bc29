#!/usr/bin/env python
"""headwater beside what its users would pick instead: W&B (offline), DVC, MLflow, networkx.

    python bench/peers.py [--quick | --tiny] [--full] [--headwater-only] [--only NAME[,NAME]]

Shapes (names for --only), each headwater against its peers, interleaved repetition by
repetition in one child process, medians quoted:
  folder   logging a folder with defaults (hash and store the bytes): headwater log_artifact
           against W&B Artifact.add_dir (md5 and a staging copy, then logged to an offline run),
           `cp -r` and `cp -r` + `sync`
  hash     hashing it only: headwater log_artifact(store=False) against W&B
           add_dir(policy="immutable"), `dvc add --no-commit` and just reading the bytes
  relog    the unchanged folder logged again (the stat cache) against `dvc add --no-commit`
           unchanged
  manual   a manual run (one dataset REF used, two params, a 1 KiB output logged) against
           MLflow's same run on SQLite; hw.get and run.use of a REF, warm
  users    "which runs used dataset ds": runs_using (the whole answer and its newest page of
           100) and downstream(...).runs against MLflow's search_runs dataset filter, at 600 runs
           (100,000 more with --full), on SQLite and PostgreSQL
  lineage  Store.lineage() of a 20,000-version graph against networkx on the same edges, and
           impact's walk from 100 versions at once (Store.downstream_of) against networkx

The folder is bench/run.py's digest folder: 1,000 x 1 MiB files + one 512 MiB file (1.5 GiB);
--quick ~50 MiB, --tiny ~9 MiB. --headwater-only runs headwater and the floors that need no
peer (cp, reading the bytes, networkx when installed): the smoke test of `make test`. The peers
come from bench/peers-requirements.txt (`make bench-peers`). Ratios are "peer time / headwater
time" (above 1: headwater faster); each row says the target of issue #17 and whether it is met.
Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as common  # noqa: E402  (bench/run.py: the folder, peak RSS, the table)
from run import MiB, Row, Series, fmt_rss, fmt_s, log, peak_mib, read_only, reset_peak, verdict  # noqa: E402

SHAPES = ("folder", "hash", "relog", "manual", "users", "lineage")
PAGE = 100  # runs in the page of runs_using the users shape measures beside the whole answer
PEERS = ("wandb", "dvc", "mlflow")

SIZES: dict[str, dict[str, int]] = {
    "full": {
        "n_small": 1000,
        "small": 1 * MiB,
        "big": 512 * MiB,
        "reps": 3,
        "runs": 200,
        "calls": 2000,
        "users": 600,
        "many_users": 100_000,
        "lineage": 20_000,
    },
    "quick": {
        "n_small": 100,
        "small": 256 << 10,
        "big": 24 * MiB,
        "reps": 5,
        "runs": 50,
        "calls": 500,
        "users": 600,
        "many_users": 100_000,
        "lineage": 20_000,
    },
    "tiny": {
        "n_small": 20,
        "small": 64 << 10,
        "big": 8 * MiB,
        "reps": 2,
        "runs": 5,
        "calls": 50,
        "users": 60,
        "many_users": 1_000,
        "lineage": 2_000,
    },
}


# --- measuring ---------------------------------------------------------------------------------


def child(cmd: Sequence[str], cwd: Path | None = None) -> tuple[float, float]:
    """Run a command; (wall time, its peak RSS in MiB, or -1 where GNU time is missing).

    Its peak comes from GNU time, a small process: a child forked from this one would carry
    this process's high-water mark into its own (the kernel keeps the larger across exec)."""
    gnu_time = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [str(gnu_time), "-f", "%M", "-o", rss.name, *cmd] if gnu_time.exists() else list(cmd)
        start = time.perf_counter()
        proc = subprocess.run(wrapped, cwd=cwd, stdout=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}")
        kib = rss.read().strip().splitlines()
    return elapsed, int(kib[-1]) / 1024 if kib and kib[-1].isdigit() else -1.0


def rss(*values: float | None) -> str:
    """Peak RSS cells; a peak that could not be measured (negative) shows as "-"."""
    return fmt_rss(*(None if v is None or v < 0 else v for v in values))


Side = Callable[[], "float | tuple[float, float]"]


def interleave(sides: dict[str, Side], reps: int, label: str, prepare: Callable[[], None] | None = None) -> dict:
    """bench/run.py's side_by_side, for sides that may run a child process: a side returns its
    time, or (time, the child's peak RSS). `prepare` runs before every call, off the clock."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    peaks: dict[str, float] = {k: -1.0 for k in sides}  # -1: not measured (rss() shows "-")
    names = list(sides)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            if prepare:
                prepare()
            reset_peak()
            got = sides[name]()
            elapsed, peak = got if isinstance(got, tuple) else (got, peak_mib())
            times[name].append(elapsed)
            peaks[name] = max(peaks[name], peak)
        log(f"{label} rep {rep + 1}/{reps}: " + ", ".join(f"{n} {times[n][-1] * 1000:.1f} ms" for n in names))
    return {n: asdict(Series(times[n], peaks[n])) for n in names}


def settle() -> None:
    """Every side starts with no dirty pages of another's (a `sync` would otherwise flush them)."""
    os.sync()


def fresh_client(work: Path, tag: str, uri: str | None = None) -> Any:
    """A headwater client with a home of its own (no blobs, no stat cache yet), store opened."""
    import headwater as hw

    home = work / "homes" / f"{tag}-{time.monotonic_ns()}"
    client = hw.Client(uri=uri, home=home)
    _ = client.store  # opening (and creating) the database is not what is measured
    return client


def drop_client(client: Any) -> None:
    client.close()
    shutil.rmtree(client.home, ignore_errors=True)


def folder(size: dict[str, int], work: Path) -> tuple[Path, int, int]:
    """bench/run.py's digest folder under work/tree/data (a DVC repository is work/tree), page-cached."""
    root = work / "tree" / "data"
    total = common.make_folder(root, size["n_small"], size["small"], size["big"])
    read_only(root)
    read_only(root)
    return root, total, size["n_small"] + 1


def wandb_env(work: Path) -> None:
    for var, sub in (("WANDB_DIR", "wandb"), ("WANDB_DATA_DIR", "wandb-data"), ("WANDB_CACHE_DIR", "wandb-cache")):
        (work / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(work / sub)
    os.environ["WANDB_CONFIG_DIR"] = str(work / "wandb-config")
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")


def dvc_command() -> str:
    return str(Path(sys.executable).with_name("dvc"))


def dvc_reset(repo: Path) -> None:
    """A repository that has never seen the folder: no .dvc file, no hash cache (its "state",
    kept under the site cache folder), no temporary index."""
    (repo / "data.dvc").unlink(missing_ok=True)
    shutil.rmtree(repo.parent / "dvc-site", ignore_errors=True)
    shutil.rmtree(repo / ".dvc" / "tmp", ignore_errors=True)
    if not (repo / ".dvc").exists():
        subprocess.run([dvc_command(), "init", "--no-scm", "-q"], cwd=repo, check=True)
        settings = {"no_scm": "True", "site_cache_dir": repo.parent / "dvc-site", "analytics": "false"}
        settings["check_update"] = "false"
        (repo / ".dvc" / "config").write_text("[core]\n" + "".join(f"    {k} = {v}\n" for k, v in settings.items()))


def dvc_add(repo: Path) -> tuple[float, float]:
    return child([dvc_command(), "add", "--no-commit", "-q", "data"], cwd=repo)


# --- the shapes (each a child process) ---------------------------------------------------------


def shape_folder(size: dict[str, int], work: Path, peers: bool) -> dict[str, Any]:
    root, total, files = folder(size, work)
    copies = work / "copies"
    sides: dict[str, Side] = {}

    def headwater() -> float:
        client = fresh_client(work, "log")
        start = time.perf_counter()
        version = client.log_artifact("bench/folder", root)
        elapsed = time.perf_counter() - start
        assert len(version.entries) == files, len(version.entries)
        drop_client(client)
        return elapsed

    sides["headwater"] = headwater
    peers_mib = 0.0  # what importing and starting W&B added to this process, which headwater shares
    if peers:
        wandb_env(work)
        before = common._status_kib("VmRSS") or 0
        import wandb

        wb_run = wandb.init(project="headwater-bench", mode="offline")
        peers_mib = ((common._status_kib("VmRSS") or 0) - before) / 1024

        def wandb_default() -> float:
            start = time.perf_counter()
            artifact = wandb.Artifact("folder", type="dataset")
            artifact.add_dir(str(root))  # policy="mutable": md5 each file and copy it to staging
            wb_run.log_artifact(artifact)
            elapsed = time.perf_counter() - start
            assert len(artifact.manifest.entries) == files
            return elapsed

        sides["wandb"] = wandb_default

    def cp(then_sync: bool) -> Side:
        def call() -> tuple[float, float]:
            dest = copies / f"cp-{time.monotonic_ns()}"
            copies.mkdir(exist_ok=True)
            cmd = ["sh", "-c", f'cp -r "$0" "$1"{" && sync" if then_sync else ""}', str(root), str(dest)]
            elapsed, rss = child(cmd)
            shutil.rmtree(dest)
            return elapsed, rss

        return call

    sides["cp"] = cp(False)
    sides["cp_sync"] = cp(True)
    series = interleave(sides, size["reps"], "folder", settle)
    result = {"bytes": total, "files": files, "series": series, "peers_mib": peers_mib}
    if peers:
        wb_run.finish()
        shutil.rmtree(work / "wandb-data", ignore_errors=True)  # the staging copies
    return result


def shape_hash(size: dict[str, int], work: Path, peers: bool) -> dict[str, Any]:
    root, total, files = folder(size, work)
    sides: dict[str, Side] = {}

    def headwater() -> float:
        client = fresh_client(work, "hash")  # an empty stat cache: every file is hashed
        start = time.perf_counter()
        version = client.log_artifact("bench/folder", root, store=False)
        elapsed = time.perf_counter() - start
        assert len(version.entries) == files and version.entries[0].digest.startswith("blake3:")
        drop_client(client)
        return elapsed

    sides["headwater"] = headwater
    if peers:
        wandb_env(work)
        import wandb

        def wandb_immutable() -> float:
            start = time.perf_counter()
            artifact = wandb.Artifact("folder", type="dataset")
            artifact.add_dir(str(root), policy="immutable")  # md5 of each file, no copy
            elapsed = time.perf_counter() - start
            assert len(artifact.manifest.entries) == files
            return elapsed

        def dvc() -> tuple[float, float]:
            dvc_reset(root.parent)
            elapsed, rss = dvc_add(root.parent)
            assert f"nfiles: {files}" in (root.parent / "data.dvc").read_text()
            return elapsed, rss

        sides["wandb"] = wandb_immutable
        sides["dvc"] = dvc
    sides["read"] = lambda: common.timed(lambda: read_only(root))()
    return {"bytes": total, "files": files, "series": interleave(sides, size["reps"], "hash")}


def shape_relog(size: dict[str, int], work: Path, peers: bool) -> dict[str, Any]:
    from headwater.digest import files_hashed

    root, total, files = folder(size, work)
    client = fresh_client(work, "relog")
    first_start = time.perf_counter()
    first = client.log_artifact("bench/folder", root)
    first_s = time.perf_counter() - first_start
    hashed: list[int] = []

    def headwater() -> float:
        before = files_hashed()
        start = time.perf_counter()
        again = client.log_artifact("bench/folder", root)
        elapsed = time.perf_counter() - start
        hashed.append(files_hashed() - before)
        assert again.digest == first.digest and again.label == first.label
        return elapsed

    sides: dict[str, Side] = {"headwater": headwater}
    if peers:
        dvc_reset(root.parent)
        dvc_add(root.parent)  # the first add: DVC's hash cache learns every file
        sides["dvc"] = lambda: dvc_add(root.parent)
    series = interleave(sides, size["reps"], "relog")
    drop_client(client)
    return {"bytes": total, "files": files, "first_s": first_s, "hashed_when_unchanged": hashed, "series": series}


def durable_run_floor(folder: Path, n: int) -> float:
    """Seconds for `n` runs made of a durable manual run's I/O and nothing else: its start and its
    end written to outbox files (write, fsync, rename), the end's events committed to SQLite in
    WAL mode with synchronous=FULL (headwater's settings), both files removed. What no code can go
    below without giving up a durable start or a durable record per run."""
    import sqlite3

    db = sqlite3.connect(folder / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, body BLOB)")
    payload = os.urandom(1500)  # about a manual run's end batch

    def batch() -> Path:
        name = folder / f"{uuid.uuid4().hex}.jsonl"
        tmp = folder / f".tmp-{name.name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name)
        return name

    start = time.perf_counter()
    for _ in range(n):
        started = batch()
        ended = batch()
        db.execute("BEGIN")
        db.execute("INSERT INTO events VALUES (?, ?)", (uuid.uuid4().hex, payload))
        db.execute("COMMIT")
        started.unlink()
        ended.unlink()
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def shape_manual(size: dict[str, int], work: Path, peers: bool) -> dict[str, Any]:
    import headwater as hw

    n = size["runs"]
    os.environ["HEADWATER_HOME"] = str(work / "manual-home")  # hw.run's default client
    dataset = work / "manual-ds.csv"
    dataset.write_text("x,y\n1,2\n")
    hw.log_artifact("ds", dataset, type="dataset")
    outputs = work / "outputs"
    outputs.mkdir(exist_ok=True)

    def one_kib_files(tag: str) -> list[Path]:
        paths = [outputs / f"{tag}-{i}.bin" for i in range(n)]
        for path in paths:
            path.write_bytes(os.urandom(1024))  # new content: every run logs a new version
        return paths

    def headwater() -> float:
        files = one_kib_files("hw")
        start = time.perf_counter()
        for path in files:
            with hw.run("train", params={"lr": 0.01, "epochs": 3}) as run:
                run.use("ds:v0")
                run.log_artifact("model", path)
        elapsed = time.perf_counter() - start
        # Every run delivered, whole: its input, its output, its end.
        last = hw.default_client().get_run(run.id)
        assert (last.status, last.inputs, len(last.outputs)) == ("succeeded", ["ds:v0"], 1), last
        assert hw.default_client().outbox.pending() == []
        return elapsed

    floor_box = work / "floor"
    floor_box.mkdir(exist_ok=True)

    def floor() -> float:
        return durable_run_floor(floor_box, n)

    sides: dict[str, Side] = {"headwater": headwater, "floor": floor}
    if peers:
        import mlflow
        import mlflow.data
        import pandas as pd

        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
        experiment = mlflow.create_experiment("bench", artifact_location=(work / "mlartifacts").as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        ml_dataset = mlflow.data.from_pandas(pd.read_csv(dataset), source=str(dataset), name="ds")

        def mlflow_runs() -> float:
            files = one_kib_files("ml")
            start = time.perf_counter()
            for path in files:
                with mlflow.start_run():
                    mlflow.log_input(ml_dataset, context="training")
                    mlflow.log_param("lr", 0.01)
                    mlflow.log_param("epochs", 3)
                    mlflow.log_artifact(str(path))
            return time.perf_counter() - start

        sides["mlflow"] = mlflow_runs
    runs = interleave(sides, size["reps"], "manual")

    calls = size["calls"]
    hw.get("ds:v0")  # warm

    def get() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            hw.get("ds:v0")
        return (time.perf_counter() - start) / calls

    def use() -> float:
        with hw.run("use-many") as run:
            run.use("ds:v0")
            start = time.perf_counter()
            for _ in range(calls):
                run.use("ds:v0")
            return (time.perf_counter() - start) / calls

    refs = interleave({"get": get, "use": use}, size["reps"], "get/use")
    return {"runs": n, "calls": calls, "series": runs, "refs": refs}


def user_events(n: int) -> tuple[list[Any], list[list[Any]]]:
    """The dataset `ds` and n finished manual runs that each used it, as batches of events."""
    from headwater.digest import manifest_digest
    from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
    from headwater.models import ManifestEntry

    entries = [ManifestEntry(path="ds.csv", digest="blake3:" + "ab" * 32, size=8)]
    seed = VersionRecorded(name="ds", digest=manifest_digest(entries), entries=entries, type="dataset")
    rng = random.Random(5)
    now = datetime.now(timezone.utc)
    chunks = []
    for lo in range(0, n, 500):
        chunk: list[Any] = []
        for i in range(lo, min(n, lo + 500)):
            rid = f"{rng.getrandbits(128):032x}"
            rid = f"{rid[:8]}-{rid[8:12]}-4{rid[13:16]}-8{rid[17:20]}-{rid[20:]}"
            chunk.append(
                RunRecorded(
                    run_id=rid,
                    job=f"train-{i % 20}",
                    job_namespace="bench",
                    orchestrator="manual",
                    run_kind="manual",
                    status="succeeded",
                    started_at=now,
                    ended_at=now,
                    params={"lr": 0.01, "epochs": 3},
                )
            )
            chunk.append(EdgeRecorded(run_id=rid, ref=f"ds@{seed.digest}"))
        chunks.append(chunk)
    return [seed], chunks


def shape_users(size: dict[str, int], work: Path, peers: bool, pg: str | None, many: bool) -> dict[str, Any]:
    import sqlalchemy as sa

    from headwater.store.sql import SQLStore

    counts = [size["users"]] + ([size["many_users"]] if many else [])
    out: dict[str, Any] = {}
    ml: tuple[Any, str] | None = None
    if peers:
        import mlflow
        import mlflow.data
        import pandas as pd
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow-users.db'}")
        experiment = mlflow.create_experiment("users", artifact_location=(work / "mlartifacts-users").as_uri())
        mlflow.set_experiment(experiment_id=experiment)
        ml_dataset = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2]}), source="ds.csv", name="ds")
        log(f"users: recording {size['users']} MLflow runs that used ds (log_input)")
        for _ in range(size["users"]):
            with mlflow.start_run():
                mlflow.log_input(ml_dataset, context="training")
        ml = (MlflowClient(), experiment)
    for n in counts:
        seeds, chunks = user_events(n)
        backends = [("sqlite", f"sqlite:///{work / f'users-{n}.db'}")] + ([("postgres", pg)] if pg else [])
        for backend, uri in backends:
            log(f"users: applying {n:,} runs to {backend}")
            store = SQLStore(uri)
            store.apply(seeds)
            for chunk in chunks:
                store.apply(chunk)
            if backend == "postgres":
                # What autovacuum does within a minute of a load this size: without statistics
                # the planner takes the newest page for a sort of every use.
                with store.engine.connect() as conn:
                    conn.execute(sa.text("ANALYZE"))
                    conn.commit()
            store.close()
            client = fresh_client(work, f"users-{backend}", uri)

            def runs_using(client: Any = client, n: int = n) -> float:
                start = time.perf_counter()
                found = client.runs_using("ds")
                elapsed = time.perf_counter() - start
                assert len(found) == n, len(found)
                return elapsed

            def page(client: Any = client, n: int = n) -> float:
                start = time.perf_counter()
                found = client.runs_using("ds", limit=PAGE)
                elapsed = time.perf_counter() - start
                assert len(found) == min(n, PAGE), len(found)
                return elapsed

            def downstream(client: Any = client, n: int = n) -> float:
                start = time.perf_counter()
                found = client.downstream("ds:v0").runs
                elapsed = time.perf_counter() - start
                assert len(found) == n, len(found)
                return elapsed

            sides: dict[str, Side] = {"runs_using": runs_using, "page": page, "downstream": downstream}
            if ml is not None and n == size["users"]:
                mlflow_client, experiment = ml

                def search_runs(mlflow_client: Any = mlflow_client, experiment: str = experiment) -> float:
                    start = time.perf_counter()
                    found = mlflow_client.search_runs([experiment], "dataset.name = 'ds'", max_results=50_000)
                    elapsed = time.perf_counter() - start
                    assert len(found) == size["users"], len(found)
                    return elapsed

                sides["mlflow"] = search_runs
            out[f"{backend}-{n}"] = interleave(sides, size["reps"], f"users/{backend}/{n}")
            drop_client(client)
    return {"counts": counts, "series": out}


def shape_lineage(size: dict[str, int], work: Path, peers: bool) -> dict[str, Any]:
    """A graph a quarter larger than the lineage asked for, so that an early version's
    downstream holds about that many versions."""
    import sqlite3

    from headwater.refs import Ref
    from headwater.store.sql import SQLStore

    want = size["lineage"]
    n = want * 5 // 4
    common.CLOSURE_ROOTS = (("lineage", want / n),)  # pick_roots: the root nearest that share
    load = common.worker_closure_load({"graph": n}, work, None)
    root = load["roots"]["lineage"]
    store = SQLStore(f"sqlite:///{load['db']}")
    sides: dict[str, Side] = {}

    def lineage() -> float:
        start = time.perf_counter()
        graph = store.lineage(Ref(root["name"], label=f"v{root['label']}"), "downstream")
        elapsed = time.perf_counter() - start
        assert len(graph.versions) == root["size"], (len(graph.versions), root["size"])
        return elapsed

    sides["headwater"] = lineage
    # impact's question: everything downstream of 100 versions from the last tenth of the graph
    # (bench/scale.py's holders of a shared file), one walk from all of them.
    holders = sorted(random.Random(3).sample(range(n - n // 10, n), 100))
    with sqlite3.connect(load["db"]) as conn:
        holder_refs = [
            Ref(name, label=f"v{label}")
            for name, label in (
                conn.execute(
                    "SELECT a.name, v.label FROM versions v JOIN artifacts a ON a.id = v.artifact_id WHERE v.id = ?",
                    (i + 1,),
                ).fetchone()
                for i in holders
            )
        ]
    reached: dict[str, int] = {}

    def impact() -> float:
        start = time.perf_counter()
        graph = store.downstream_of(holder_refs)
        elapsed = time.perf_counter() - start
        reached["headwater"] = len(graph.versions)
        return elapsed

    impact_sides: dict[str, Side] = {"headwater": impact}
    graph_mib = 0.0
    try:
        import networkx as nx  # type: ignore[import-untyped]  (no stubs in the peers' environment)
    except ImportError:
        nx = None
    if nx is not None:
        # One node per version (positive ids) and per run (negative), as bench/run.py builds it.
        before = common._status_kib("VmRSS") or 0
        g = nx.DiGraph()
        run_node: dict[str, int] = {}
        conn = sqlite3.connect(load["db"])
        for run_id, version_id, direction in conn.execute("SELECT run_id, version_id, direction FROM edges"):
            r = run_node.setdefault(run_id, -1 - len(run_node))
            g.add_edge(*((version_id, r) if direction == "used" else (r, version_id)))
        conn.close()
        graph_mib = ((common._status_kib("VmRSS") or 0) - before) / 1024

        def descendants() -> float:
            start = time.perf_counter()
            found = 1 + sum(1 for node in nx.descendants(g, root["version_id"]) if node > 0)
            elapsed = time.perf_counter() - start
            assert found == root["size"], (found, root["size"])
            return elapsed

        sides["networkx"] = descendants

        def impact_nx() -> float:
            start = time.perf_counter()
            found: set[int] = set(i + 1 for i in holders)
            for i in holders:
                found.update(nx.descendants(g, i + 1))
            elapsed = time.perf_counter() - start
            reached["networkx"] = sum(1 for node in found if node > 0)
            return elapsed

        impact_sides["networkx"] = impact_nx
    gc.collect()
    gc.freeze()  # both sides: the long-lived graph and store stay out of the collector's scans
    base = peak_mib()
    series = interleave(sides, size["reps"], "lineage")
    impact_series = interleave(impact_sides, size["reps"], "impact")
    if "networkx" in reached:
        assert reached["headwater"] == reached["networkx"], reached
    for s in [*series.values(), *impact_series.values()]:
        s["peak_mib"] -= base  # the rise above the shared process (which holds networkx's graph)
    store.close()
    return {
        "graph": n,
        "edges": load["edges"],
        "size": root["size"],
        "graph_mib": graph_mib,
        "series": series,
        "impact": {"series": impact_series, "holders": len(holders), "size": reached["headwater"]},
    }


# --- the table ---------------------------------------------------------------------------------


def ratio_row(
    key: str,
    what: str,
    r: dict[str, Any],
    peer: str | None,
    *,
    minimum: float | None,
    show: Callable[[float], str] = fmt_s,
    series: str = "series",
    hw: str = "headwater",
    target: str | None = None,
) -> Row:
    """headwater against one peer: ratio = peer time / headwater time, met when >= `minimum`."""
    a = Series(**r[series][hw])
    if peer is None or peer not in r[series]:
        why = "not run (--headwater-only)" if peer is not None else "-"
        stated = target or (f">= {minimum:g}x" if minimum is not None else "(reference)")
        return Row(key, what, show(a.median), why, "-", stated, "-", rss(a.peak_mib, None))
    b = Series(**r[series][peer])
    ratio = b.median / a.median
    return Row(
        key,
        what,
        show(a.median),
        show(b.median),
        f"{ratio:.2f}x",
        target or (f">= {minimum:g}x" if minimum is not None else "(reference)"),
        verdict(None if minimum is None else ratio >= minimum),
        rss(a.peak_mib, b.peak_mib),
        numbers={"headwater_s": a.times, "peer_s": b.times},
    )


def rows_folder(r: dict[str, Any]) -> list[Row]:
    shape = f"{r['files']:,} files, {r['bytes'] / MiB:,.0f} MiB"
    hw = Series(**r["series"]["headwater"])
    own = hw.peak_mib - r["peers_mib"]  # less what W&B's import added to the shared process
    return [
        ratio_row("log-vs-wandb", f"log {shape}, defaults, vs W&B add_dir (offline)", r, "wandb", minimum=2),
        ratio_row("log-vs-cp", f"log {shape}, defaults, vs cp -r", r, "cp", minimum=1 / 1.5, target="within 1.5x"),
        ratio_row("log-vs-cp-sync", f"log {shape}, defaults, vs cp -r + sync", r, "cp_sync", minimum=None),
        Row(
            "log-rss",
            f"log {shape}, defaults: peak RSS (less W&B's {r['peers_mib']:.0f} MiB in the process)",
            f"{own:.0f} MiB",
            "-",
            "-",
            "< 200 MiB",
            verdict(own < 200),
            rss(own, None),
        ),
    ]


def rows_hash(r: dict[str, Any]) -> list[Row]:
    shape = f"{r['files']:,} files, {r['bytes'] / MiB:,.0f} MiB"
    return [
        ratio_row("hash-vs-wandb", f"hash {shape} vs W&B add_dir(immutable)", r, "wandb", minimum=5),
        ratio_row("hash-vs-dvc", f"hash {shape} vs dvc add --no-commit", r, "dvc", minimum=None),
        ratio_row("hash-vs-read", f"hash {shape} vs reading the bytes", r, "read", minimum=0.5, target="within 2x"),
    ]


def rows_relog(r: dict[str, Any], first_s: float | None) -> list[Row]:
    hw = Series(**r["series"]["headwater"])
    first = first_s if first_s is not None else r["first_s"]
    hashed = max(r["hashed_when_unchanged"])
    ratio = first / hw.median
    return [
        Row(
            "relog-vs-first",
            f"re-log {r['files']:,} unchanged files vs the first log",
            fmt_s(hw.median) + ("" if hashed == 0 else f" ({hashed} files re-hashed!)"),
            fmt_s(first),
            f"{ratio:.1f}x",
            ">= 20x",
            verdict(ratio >= 20 and hashed == 0),
            rss(hw.peak_mib, None),
        ),
        ratio_row("relog-vs-dvc", f"re-log {r['files']:,} unchanged files vs dvc add unchanged", r, "dvc", minimum=20),
    ]


def rows_manual(r: dict[str, Any]) -> list[Row]:
    n = r["runs"]

    def rate(s: float) -> str:
        return f"{n / s:,.1f} runs/s"

    rows = [
        ratio_row("run-vs-mlflow", "manual run: 1 REF used, 2 params, 1 KiB logged", r, "mlflow", minimum=15, show=rate)
    ]
    if "floor" in r["series"]:
        # The floor's time over headwater's: the share of a run that is its durable I/O.
        floor = ratio_row("run-vs-floor", "manual run vs its durable I/O alone", r, "floor", minimum=None, show=rate)
        if "mlflow" in r["series"]:
            best = Series(**r["series"]["mlflow"]).median / Series(**r["series"]["floor"]).median
            floor = replace(floor, target=f"(MLflow / floor: {best:.1f}x)")
        rows.append(floor)
    for key, what in (("get", "hw.get of a REF, warm, SQLite"), ("use", "run.use of a REF, warm, SQLite")):
        s = Series(**r["refs"][key])
        rows.append(
            Row(
                f"{key}-ref",
                what,
                fmt_s(s.median),
                "-",
                "-",
                "<= 0.3 ms",
                verdict(s.median <= 0.0003),
                rss(s.peak_mib, None),
            )
        )
    return rows


def rows_users(r: dict[str, Any]) -> list[Row]:
    rows = []
    for key, series in r["series"].items():
        backend, n = key.split("-")
        limit = 0.005 if int(n) <= 600 else 0.05  # #17: 5 ms at 600 runs, 50 ms at 100,000
        view = {"series": series}
        for how, call in (
            ("runs_using", "runs_using"),
            ("page", f"runs_using(limit={PAGE}), the newest page"),
            ("downstream", "downstream(...).runs"),
        ):
            if how not in series:
                continue  # a result from before pages were measured
            compared = "mlflow" in series and how != "page"  # MLflow's answer is every run
            row = ratio_row(
                f"users-{how}-{backend}-{n}",
                f"runs that used ds, {int(n):,} runs, {call}, {'SQLite' if backend == 'sqlite' else 'PostgreSQL'}"
                + (" vs MLflow search_runs (SQLite)" if how != "page" else ""),
                view,
                "mlflow" if compared else None,
                minimum=None,
                hw=how,
            )
            hw = Series(**series[how])
            if how in ("runs_using", "page"):
                row.target, row.met = f"<= {limit * 1000:g} ms", verdict(hw.median <= limit)
            else:
                row.target, row.met = "(none)", "-"
            if how == "page":
                row.peer = "(no peer pages)"
            elif "mlflow" not in series:
                row.peer = "not measured at this size" if int(n) > 600 else "not run (--headwater-only)"
            rows.append(row)
    return rows


def rows_lineage(r: dict[str, Any]) -> list[Row]:
    row = ratio_row(
        "lineage",
        f"Store.lineage(), {r['size']:,} of {r['graph']:,} versions vs networkx descendants",
        r,
        "networkx" if "networkx" in r["series"] else None,
        minimum=None,
    )
    hw = Series(**r["series"]["headwater"])
    row.target, row.met = "<= 0.5 s", verdict(hw.median <= 0.5)
    if "networkx" not in r["series"]:
        row.peer = "networkx not installed"
    impact = r["impact"]
    impact_row = ratio_row(
        "impact",
        f"Store.downstream_of() {impact['holders']} versions (impact), {impact['size']:,} reached,"
        " vs networkx descendants of each",
        impact,
        "networkx" if "networkx" in impact["series"] else None,
        minimum=None,
    )
    if "networkx" not in impact["series"]:
        impact_row.peer = "networkx not installed"
    return [row, impact_row]


# --- orchestration -----------------------------------------------------------------------------


def call_shape(name: str, args: argparse.Namespace, work: Path, pg: str | None) -> dict[str, Any] | str:
    """One shape in a child process of its own (peak RSS is its own); its result, or why not."""
    out = work / f"{name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--workdir", str(work), "--out", str(out)]
    cmd += ["--size", args.size] + (["--headwater-only"] if args.headwater_only else [])
    cmd += (["--postgres", pg] if pg else []) + (["--full"] if args.full else [])
    env = {**os.environ, "HEADWATER_HOME": str(work / "home"), "PYTHONUNBUFFERED": "1"}
    env.pop("HEADWATER_URI", None)
    env.update(DVC_NO_ANALYTICS="1", GIT_PYTHON_REFRESH="quiet")
    # cwd: the work folder, not a git checkout, so MLflow does not look up a commit for each run
    # (headwater records code only when asked).
    proc = subprocess.run(cmd, env=env, cwd=work, check=False)
    if proc.returncode != 0 or not out.exists():
        return f"shape {name} failed (exit {proc.returncode}; see stderr)"
    return json.loads(out.read_text())


def run_worker(args: argparse.Namespace) -> int:
    size, work, peers = SIZES[args.size], args.workdir, not args.headwater_only
    try:
        if args.worker == "users":
            result = shape_users(size, work, peers, args.postgres, args.full)
        else:
            shapes = {"folder": shape_folder, "hash": shape_hash, "relog": shape_relog}
            shapes.update(manual=shape_manual, lineage=shape_lineage)
            result = shapes[args.worker](size, work, peers)
    except Exception:  # noqa: BLE001 - the parent reports the failure in the table
        traceback.print_exc()
        return 1
    args.out.write_text(json.dumps(result))
    return 0


KEYS = {
    "folder": ["log-vs-wandb", "log-vs-cp", "log-vs-cp-sync", "log-rss"],
    "hash": ["hash-vs-wandb", "hash-vs-dvc", "hash-vs-read"],
    "relog": ["relog-vs-first", "relog-vs-dvc"],
    "manual": ["run-vs-mlflow", "run-vs-floor", "get-ref", "use-ref"],
    "users": ["users-runs_using-sqlite", "users-page-sqlite", "users-downstream-sqlite"],
    "lineage": ["lineage", "impact"],
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a ~50 MiB folder (a few minutes)")
    p.add_argument("--tiny", action="store_true", help="the smallest shapes, for the smoke test")
    p.add_argument("--full", action="store_true", help="also ask which runs used ds at 100,000 runs (--tiny: 1,000)")
    p.add_argument("--headwater-only", action="store_true", help="no W&B, DVC or MLflow (they need not be installed)")
    p.add_argument("--only", help=f"comma-separated subset of {', '.join(SHAPES)}")
    p.add_argument("--postgres", help="PostgreSQL server URL for the users shape (a database is made and dropped)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", type=Path, help="also write every measurement to this file")
    p.add_argument("--workdir", type=Path, help="keep the data here (the folder is reused) instead of a temp dir")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return run_worker(args)

    args.size = "tiny" if args.tiny else "quick" if args.quick else "full"
    only = SHAPES if not args.only else tuple(x.strip() for x in args.only.split(","))
    if set(only) - set(SHAPES):
        p.error(f"unknown shape(s) {', '.join(sorted(set(only) - set(SHAPES)))}; choose from {', '.join(SHAPES)}")
    if not args.headwater_only:
        import importlib.util

        missing = [name for name in PEERS if importlib.util.find_spec(name) is None]
        if missing or not Path(dvc_command()).exists():
            p.error(
                f"{', '.join(missing or ['the dvc command'])} not installed here:"
                " `make bench-peers`, or --headwater-only"
            )
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="headwater-peers-"))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    notes: list[str] = []
    failed = False
    started = time.time()
    load = os.getloadavg()[0]
    first_log: float | None = None
    try:
        for name in only:
            pg, pg_note, drop = None, None, lambda: None
            if name == "users":
                server = args.postgres or os.environ.get("HEADWATER_TEST_POSTGRES_URL") or common.DEFAULT_PG
                pg, pg_note, drop = common.postgres_database(server)
            try:
                r = call_shape(name, args, work, pg)
            finally:
                drop()
            if isinstance(r, str):
                failed = True
                rows += [Row(key, name, f"FAILED: {r}") for key in KEYS[name]]
                continue
            if name == "folder":
                rows += rows_folder(r)
                first_log = Series(**r["series"]["headwater"]).median
            elif name == "hash":
                rows += rows_hash(r)
            elif name == "relog":
                rows += rows_relog(r, first_log)
            elif name == "manual":
                rows += rows_manual(r)
                notes.append(f"manual: {r['runs']} runs a repetition; get/use: {r['calls']} calls, the mean of each")
            elif name == "users":
                rows += rows_users(r)
                if pg_note:
                    notes.append(f"users: no PostgreSQL rows: {pg_note}")
            else:
                rows += rows_lineage(r)
                notes.append(
                    f"lineage: {r['graph']:,} versions and runs, {r['edges']:,} edges; networkx's graph"
                    f" {r['graph_mib']:.0f} MiB; RSS is each call's rise above the process holding both"
                )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(common.render(rows, markdown=args.markdown))
    print()
    print(
        f"shape: {args.size}{' --headwater-only' if args.headwater_only else ''}; medians of"
        f" {SIZES[args.size]['reps']}; ratio = peer time / headwater time (> 1: headwater faster);"
        f" load average {load:.2f} at the start; wall time {time.time() - started:.0f} s"
    )
    for note in notes:
        print(note)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
