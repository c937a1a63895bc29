"""Many task processes write at once, on SQLite, on PostgreSQL and through tracking servers:
labels stay gapless, equal content stays one version with every producer."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import headwater as hw

WORKERS = 4


def _log(uri: str, home: str, path: str, job: str, barrier: multiprocessing.synchronize.Barrier) -> str:
    # A loaded CI machine must not turn a lock wait into an undelivered batch.
    os.environ["HEADWATER_TIMEOUT_S"] = "60"
    client = hw.Client(uri=uri, home=home)
    with client.run(job) as run:
        barrier.wait(timeout=30)
        version = run.log_artifact("shared", path)
    client.close()
    return f"{version.label} {run.id}"


def _in_parallel(uris: list[str], tmp_path: Path, paths: list[Path]) -> list[str]:
    """Worker i logs paths[i] through uris[i % len(uris)]: "<label> <run id>" each."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(len(paths))
    with ctx.Pool(len(paths)) as pool:
        pending = [
            pool.apply_async(_log, (uris[i % len(uris)], str(tmp_path / f"home{i}"), str(p), f"worker-{i}", barrier))
            for i, p in enumerate(paths)
        ]
        return [p.get(timeout=120) for p in pending]


def _model_files(tmp_path: Path, same: bool) -> list[Path]:
    paths = []
    for i in range(WORKERS):
        (tmp_path / f"w{i}").mkdir()
        paths.append(tmp_path / f"w{i}" / "model.bin")
        paths[-1].write_bytes(b"identical weights" if same else f"weights {i}".encode())
    return paths


@pytest.mark.slow
def test_same_content_from_four_processes_is_one_version_with_four_producers(
    client: hw.Client, store_uri: str, tmp_path: Path
) -> None:
    results = _in_parallel([store_uri], tmp_path, _model_files(tmp_path, same=True))
    assert sorted(r.split()[0] for r in results) == ["v0"] * WORKERS
    version = client.get("shared")
    assert [v.label for v in client.versions("shared")] == ["v0"]
    assert sorted(version.producers) == sorted(r.split()[1] for r in results)
    assert version.produced_by in version.producers
    assert {e.direction for e in client.upstream("shared:v0").edges} == {"produced"}
    assert len(client.upstream("shared:v0").edges) == WORKERS


@pytest.mark.slow
def test_different_content_from_four_processes_gets_gapless_labels(
    client: hw.Client, store_uri: str, tmp_path: Path
) -> None:
    results = _in_parallel([store_uri], tmp_path, _model_files(tmp_path, same=False))
    assert sorted(r.split()[0] for r in results) == [f"v{i}" for i in range(WORKERS)]
    assert [v.label for v in client.versions("shared")] == [f"v{i}" for i in range(WORKERS)]
    assert len({v.digest for v in client.versions("shared")}) == WORKERS


def _log_many(
    uri: str, home: str, folder: str, worker: int, n: int, barrier: multiprocessing.synchronize.Barrier
) -> list[str]:
    os.environ["HEADWATER_TIMEOUT_S"] = "60"
    client = hw.Client(uri=uri, home=home)
    barrier.wait(timeout=60)
    digests = []
    for i in range(n):
        path = Path(folder) / f"w{worker}-{i}.bin"
        path.write_bytes(f"worker {worker} version {i}".encode())
        digests.append(client.log_artifact("shared", path).digest)
    client.close()
    return digests


@pytest.mark.slow
@pytest.mark.parametrize("store_uri", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_four_processes_logging_eight_versions_each(client: hw.Client, store_uri: str, tmp_path: Path) -> None:
    n = 8
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(WORKERS)
    with ctx.Pool(WORKERS) as pool:
        pending = [
            pool.apply_async(_log_many, (store_uri, str(tmp_path / f"home{w}"), str(tmp_path), w, n, barrier))
            for w in range(WORKERS)
        ]
        logged = [digest for p in pending for digest in p.get(timeout=300)]
    versions = client.versions("shared")
    assert [v.label for v in versions] == [f"v{i}" for i in range(WORKERS * n)]  # gapless, none twice
    assert sorted(v.digest for v in versions) == sorted(logged) and len(set(logged)) == WORKERS * n
    assert client.get("shared").label == f"v{WORKERS * n - 1}"  # latest is the last one labelled


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("same", [True, False], ids=["same-content", "different-content"])
def test_writers_through_two_servers_on_one_postgres(
    same: bool, postgres_database: str, server_factory, tmp_path: Path
) -> None:
    """Two tracking servers share one PostgreSQL; four processes write through both of them."""
    from tests.conftest import _truncate

    _truncate(postgres_database)
    servers = [server_factory(f"server{i}", postgres_database, start=False) for i in range(2)]
    for server in servers:
        server.blobs = tmp_path / "shared-blobs"  # as any deployment of several servers shares one
        server.start()
    paths = _model_files(tmp_path, same)
    results = _in_parallel([s.url for s in servers], tmp_path, paths)
    reader = hw.Client(uri=servers[0].url, home=tmp_path / "reader")
    labels = sorted(r.split()[0] for r in results)
    if same:
        assert labels == ["v0"] * WORKERS and [v.label for v in reader.versions("shared")] == ["v0"]
        assert sorted(reader.get("shared").producers) == sorted(r.split()[1] for r in results)
    else:
        assert labels == [f"v{i}" for i in range(WORKERS)]
        assert [v.label for v in reader.versions("shared")] == [f"v{i}" for i in range(WORKERS)]
    restored = {reader.get(f"shared:{v.label}").download().read_bytes() for v in reader.versions("shared")}
    assert restored == {p.read_bytes() for p in paths}  # every blob reached the shared store
    reader.close()


@pytest.mark.postgres
def in_threads(write, writers: int, failures: list[BaseException]) -> list[BaseException]:
    """`write(worker)` in one thread per writer, all joined; what they raised (each `write` adds
    its own exception to `failures`)."""
    import threading

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return failures


def test_batches_naming_artifacts_in_opposite_orders_never_deadlock(postgres_database: str, tmp_path: Path) -> None:
    """Writers each writing the same artifacts per run, half of them in the other order (as two
    servers applying two pipelines' batches would): every batch lands at once, none is left
    waiting in an outbox by a deadlock PostgreSQL broke."""
    import threading
    import uuid

    names = [f"part{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
    writers, rounds = 4, 15
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        client = hw.Client(uri=postgres_database, home=tmp_path / f"home{worker}")
        try:
            outputs = []
            for n in range(rounds):
                folder = tmp_path / f"w{worker}-{n}"
                folder.mkdir()
                for name in names:
                    (folder / name).write_text(f"{worker} {n} {name}")
                batch = [hw.Output(name, folder / name) for name in names]
                outputs.append(batch if worker % 2 == 0 else batch[::-1])
            start.wait(timeout=30)
            for batch in outputs:
                client.link(f"writer-{worker}", [], batch)
            assert client.outbox.pending() == []  # delivered, not left waiting by a deadlock
        except BaseException as err:  # noqa: BLE001 - reported below, from the test's thread
            failures.append(err)
        finally:
            client.close()

    os.environ["HEADWATER_TIMEOUT_S"] = "60"
    assert in_threads(write, writers, failures) == []
    client = hw.Client(uri=postgres_database, home=tmp_path / "reader")
    for name in names:
        assert [v.label for v in client.versions(name)] == [f"v{i}" for i in range(writers * rounds)]


@pytest.mark.postgres
def test_concurrent_batches_keep_one_version_per_content_and_gapless_labels(postgres_database: str) -> None:
    """Batches written in multi-row statements (headwater.store.sql.write_batch), four at a time on
    one PostgreSQL: content sent by several writers is one version, labels stay gapless, every run's
    edges land."""
    import random
    import threading
    import uuid

    from headwater.digest.hashing import manifest_digest
    from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
    from headwater.models import ManifestEntry
    from headwater.store.sql import SQLStore
    from tests.conftest import _truncate

    _truncate(postgres_database)
    os.environ["HEADWATER_TIMEOUT_S"] = "60"
    names = [f"batch/part-{i}" for i in range(5)]
    pool = [[ManifestEntry(path="p", digest=f"etag:{i}", size=i + 1, ref=f"s3://b/{i}")] for i in range(60)]
    SQLStore(postgres_database).apply(
        [VersionRecorded(name="batch/source", digest=manifest_digest(pool[0]), entries=pool[0])]
    )
    writers, rounds = 4, 10
    start = threading.Barrier(writers)
    sent: list[tuple[str, str, str]] = []  # (name, digest, run id), from every writer
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        rng = random.Random(worker)
        store = SQLStore(postgres_database)
        try:
            batches = []
            for _ in range(rounds):
                batch: list = []
                for name in rng.sample(names, len(names)):
                    run_id = str(uuid.uuid4())
                    entries = rng.choice(pool)
                    batch.append(RunRecorded(run_id=run_id, job=f"w{worker}", status="succeeded"))
                    batch.append(EdgeRecorded(run_id=run_id, ref="batch/source:v0"))
                    batch.append(
                        VersionRecorded(
                            name=name,
                            digest=manifest_digest(entries),
                            entries=entries,
                            run_id=run_id,
                            direction="produced",
                        )
                    )
                    sent.append((name, manifest_digest(entries), run_id))
                batches.append(batch)
            start.wait(timeout=30)
            for batch in batches:
                store.apply(batch)
        except BaseException as err:  # noqa: BLE001 - reported below, from the test's thread
            failures.append(err)
        finally:
            store.close()

    assert in_threads(write, writers, failures) == []
    reader = SQLStore(postgres_database)
    for name in names:
        versions = reader.list_versions(name)
        expected = {digest for n, digest, _ in sent if n == name}
        assert [v.label for v in versions] == [f"v{i}" for i in range(len(expected))]  # gapless, none twice
        assert {v.digest for v in versions} == expected  # one version per content
        producers = {v.digest: set(v.producers) for v in versions}
        assert producers == {d: {r for n, d2, r in sent if n == name and d2 == d} for d in expected}
    runs = reader.runs_using("batch/source")
    assert len(runs) == writers * rounds * len(names)  # every run's input edge landed
    reader.close()
