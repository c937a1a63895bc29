"""Two tracking servers, one PostgreSQL database and one S3 bucket: the servers hold no state of
their own, so writes spread over both keep every guarantee.

Real parts: two `headwater server` processes on a database of this module's own, their blobs in a
bucket of moto's S3 server (`HEADWATER_BLOB_URI`-style `s3://` location), and clients over HTTP
in threads, each with its own outbox, as many workers of a team would be. Asserted exactly: one
version per content whichever server saw it first, gapless labels, the exact runs and edges,
bytes uploaded through one server downloaded through the other, events replayed through both
servers at once applied once, and alias moves that arrive out of order applied in event time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.digest.hashing import hash_bytes, manifest_digest
from headwater.events import AliasMoved, RunRecorded, VersionRecorded, utcnow
from headwater.models import ManifestEntry
from tests import graphs
from tests.conftest import POSTGRES_URL, ServerProcess, _admin_url

# moto's S3 server and a boto3 client of it, shared with that module
from tests.test_references_cloud import s3, s3_endpoint  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BUCKET = "blobs"  # made by the s3_endpoint fixture
WRITERS = 6  # threads, alternating between the two servers
RUNS_EACH = 4
POOL = [b"id,label\n1,cat\n", b"id,label\n2,dog\n", b"id,label\n3,emu\n"]  # content every writer logs
T = TypeVar("T")


class S3Server(ServerProcess):
    """A server whose blobs live in the bucket, under a prefix shared with its peer."""

    def __init__(self, folder: Path, store: str, blobs: str) -> None:
        super().__init__(folder, store)
        self.blob_uri = blobs

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--blobs") + 1] = self.blob_uri
        return command


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
    s3_endpoint: str,  # noqa: F811  (the imported fixture, requested)
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    if not POSTGRES_URL:
        pytest.skip("HEADWATER_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    name = f"headwater_pair_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    store = url.replace("postgresql+psycopg://", "postgresql://")
    blobs = f"s3://{BUCKET}/pair-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("pair")
    # the S3 client's AWS_* variables come from s3_endpoint's environment, copied by each server
    pair = (S3Server(root / "a", store, blobs), S3Server(root / "b", store, blobs))
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        for server in pair:
            server.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def reset(servers: tuple[ServerProcess, ServerProcess]) -> None:
    from tests.conftest import _truncate

    _truncate(servers[0].store)


def _together(count: int, work: Callable[[int, threading.Barrier], T]) -> list[T]:
    """Run work(i, barrier) on `count` threads that start at once; their results, or the first error."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = work(i, barrier)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    return results


def _client(server: ServerProcess, home: Path) -> hw.Client:
    return hw.Client(uri=server.url, home=home)


def test_writers_spread_over_both_servers_keep_every_guarantee(
    servers: tuple[ServerProcess, ServerProcess],
    reset: None,
    tmp_path: Path,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    setup = _client(servers[0], tmp_path / "setup")
    (tmp_path / "base.txt").write_bytes(b"the base everyone reads\n")
    with setup.run("prepare") as prepare:
        base = prepare.log_artifact("base", tmp_path / "base.txt")
    setup.close()

    def write(w: int, barrier: threading.Barrier) -> list[tuple[str, hw.Version, hw.Version, bytes]]:
        client = _client(servers[w % 2], tmp_path / f"home-{w}")
        folder = tmp_path / f"writer-{w}"
        folder.mkdir()
        done = []
        try:
            for i in range(RUNS_EACH):
                model = f"weights of writer {w} run {i}\n".encode()
                (folder / "model.bin").write_bytes(model)
                (folder / "data.csv").write_bytes(POOL[(w + i) % len(POOL)])
                barrier.wait(60)  # every writer logs the same content at the same moment
                with client.run("train", params={"writer": w, "i": i}) as run:
                    run.use("base:v0")
                    data = run.log_artifact("dataset", folder / "data.csv")
                    weights = run.log_artifact("model", folder / "model.bin")
                done.append((run.id, data, weights, model))
        finally:
            client.close()
        return done

    written = [row for rows in _together(WRITERS, write) for row in rows]
    assert len(written) == WRITERS * RUNS_EACH

    reader = _client(servers[1], tmp_path / "reader")
    recorded = graphs.read(reader, edges=True)

    # one version per content: the pool's three contents are three versions, v0..v2, however many
    # writers logged them through whichever server
    datasets = {ref: v for ref, v in recorded.versions.items() if v.name == "dataset"}
    assert sorted(datasets) == ["dataset:v0", "dataset:v1", "dataset:v2"]
    assert {v.entries[0].digest for v in datasets.values()} == {hash_bytes(c) for c in POOL}
    # gapless labels: every distinct model is one version, labelled v0..v23 with no hole
    models = {ref: v for ref, v in recorded.versions.items() if v.name == "model"}
    assert sorted(models, key=lambda r: int(r.split(":v")[1])) == [f"model:v{n}" for n in range(len(written))]
    assert len({v.digest for v in models.values()}) == len(written)
    assert set(recorded.versions) == {"base:v0", *datasets, *models}

    # each client was told the label the store keeps
    for _, data, weights, _ in written:
        assert recorded.versions[data.ref].digest == data.digest
        assert recorded.versions[weights.ref].digest == weights.digest

    # the exact runs and edges
    prepare_id = base.produced_by
    assert set(recorded.runs) == {prepare_id, *(run_id for run_id, *_ in written)}
    assert all(run.status == "succeeded" for run in recorded.runs.values())
    expected_edges = {(prepare_id, "produced", "base:v0", True)}
    for run_id, data, weights, _ in written:
        expected_edges |= {
            (run_id, "used", "base:v0", True),
            (run_id, "produced", data.ref, True),
            (run_id, "produced", weights.ref, True),
        }
        run = recorded.runs[run_id]
        assert (run.inputs, sorted(run.outputs)) == (["base:v0"], sorted([data.ref, weights.ref]))
    assert recorded.edges == expected_edges
    # `latest` moved once per model, and rests where the newest event (not the last commit) put it
    moves = reader.alias_history("model", "latest")
    assert sorted(m.version for m in moves) == sorted(models)
    assert reader.get("model").ref == max(moves, key=lambda m: m.at).version

    # one bucket: bytes uploaded through one server come back through the other
    for _, _, weights, model in written[:: WRITERS // 2]:
        other = _client(servers[0], tmp_path / "other")
        for client in (reader, other):
            path = client.download(client.get(weights.ref), tmp_path / f"dl-{uuid.uuid4().hex[:6]}")
            assert path.name == "model.bin" and path.read_bytes() == model
        other.close()
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=servers[0].blob_uri.split("/")[-1]
        )
        for obj in page.get("Contents", [])
    ]
    stored = {"".join(key.split("/")[-2:]) for key in keys if "/blake3/" in key}
    wanted = {v.entries[0].digest.split(":", 1)[1] for v in (*models.values(), *datasets.values())}
    assert wanted <= stored
    reader.close()


def test_replays_through_both_servers_apply_once(servers: tuple[ServerProcess, ServerProcess], reset: None) -> None:
    run_id = str(uuid.uuid4())
    entries = [ManifestEntry(path="part-0.parquet", digest="etag:0123abcd", size=10, ref="s3://lake/part-0")]
    digest = manifest_digest(entries)
    batch = [
        RunRecorded(run_id=run_id, job="export", run_kind="manual", status="succeeded", started_at=utcnow()),
        VersionRecorded(
            name="exported",
            digest=digest,
            entries=entries,
            run_id=run_id,
            direction="produced",
            aliases=["candidate"],
        ),
        AliasMoved(name="exported", alias="production", digest=digest),
    ]

    def replay(i: int, barrier: threading.Barrier) -> None:
        store = hw.Client(uri=servers[i % 2].url).store
        barrier.wait(60)
        for _ in range(3):
            store.apply(batch)

    _together(8, replay)

    client = hw.Client(uri=servers[0].url)
    recorded = graphs.read(client, edges=True)
    assert list(recorded.runs) == [run_id]
    assert list(recorded.versions) == ["exported:v0"]
    assert recorded.edges == {(run_id, "produced", "exported:v0", True)}
    history = [(m.alias, m.version) for m in client.alias_history("exported")]
    assert sorted(history) == [("candidate", "exported:v0"), ("latest", "exported:v0"), ("production", "exported:v0")]


def test_alias_moves_arriving_out_of_order_apply_in_event_time(
    servers: tuple[ServerProcess, ServerProcess], reset: None, tmp_path: Path
) -> None:
    a, b = (hw.Client(uri=s.url, home=tmp_path / f"home-{n}") for n, s in enumerate(servers))
    versions = []
    for n in range(3):
        (tmp_path / "ranker.onnx").write_bytes(f"ranker {n}".encode())
        versions.append(a.log_artifact("ranker", tmp_path / "ranker.onnx"))
    assert [v.label for v in versions] == ["v0", "v1", "v2"]
    start = utcnow()
    moves = [
        AliasMoved(name="ranker", alias="production", digest=v.digest, time=start + timedelta(seconds=n + 1))
        for n, v in enumerate(versions)
    ]
    # the newest move first, then the two older ones at once through different servers
    a.store.apply([moves[2]])
    _together(2, lambda i, barrier: (barrier.wait(60), (a, b)[i].store.apply([moves[i]])))

    for client in (a, b):
        assert client.get("ranker:production").label == "v2"
        for n, move in enumerate(moves):
            assert client.get("ranker:production", at=move.time + timedelta(milliseconds=500)).label == f"v{n}"
        history = client.alias_history("ranker", "production")
        assert [(m.version, m.at) for m in history] == [(f"ranker:v{n}", m.time) for n, m in enumerate(moves)]
