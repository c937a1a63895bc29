"""A batch of events is applied as if each event were applied alone, in order.

The SQL store applies a batch from what it read once and writes in multi-row statements
(headwater.store.sql.write_batch). Here seeded random batches (new and existing artifacts, the same
content twice, edges by label, digest, alias and to unknown artifacts, alias moves in and out of
event-time order, tags, deletes in the middle of a batch) go to one store in batches and to another
one event at a time; every table must end the same."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from headwater.digest.hashing import manifest_digest
from headwater.events import (
    AliasMoved,
    ContentPurged,
    EdgeRecorded,
    Event,
    RunRecorded,
    TagsChanged,
    VersionDeleted,
    VersionRecorded,
)
from headwater.models import ManifestEntry
from headwater.store.schema import artifacts, runs, versions
from headwater.store.sql import SQLStore

BASE = datetime(2025, 3, 1, tzinfo=timezone.utc)


def _events(seed: int, count: int) -> list[Event]:
    rng = random.Random(seed)
    names = [f"team/ds-{i}" for i in range(4)] + ["s3://bucket/a:b"]  # a name holding ':'
    recorded: dict[str, list[str]] = {name: [] for name in names}  # digests in label order
    deleted: set[tuple[str, str]] = set()
    out: list[Event] = []
    clock = 0

    def at() -> datetime:
        nonlocal clock
        clock += 1
        # one event in five comes late (an outbox replayed after newer events)
        return BASE + timedelta(seconds=clock - (rng.randrange(50) if rng.random() < 0.2 else 0))

    def content(stored: bool) -> tuple[str, list[ManifestEntry]]:
        digest = f"blake3:{rng.getrandbits(256):064x}"
        ref = None if stored else f"s3://lake/{rng.randrange(10**6)}"
        entries = [ManifestEntry(path="part-0.parquet", digest=digest, size=rng.randrange(1, 99), ref=ref)]
        return manifest_digest(entries), entries

    def live(name: str) -> list[str]:
        return [d for d in recorded[name] if (name, d) not in deleted]

    while len(out) < count:
        run_id = str(uuid.uuid4())
        out.append(RunRecorded(run_id=run_id, job=f"job-{rng.randrange(3)}", status="running", time=at()))
        for _ in range(rng.randrange(3)):
            name = rng.choice(names)
            choices = [name, f"{name}:latest", f"{name}:v{rng.randrange(4)}", "never/logged", f"{name}:prod"]
            if live(name):
                choices.append(f"{name}@{rng.choice(live(name))}")
            out.append(EdgeRecorded(run_id=run_id, ref=rng.choice(choices), direction="used", time=at()))
        name = rng.choice(names)
        if live(name) and rng.random() < 0.3:
            digest = rng.choice(live(name))  # the same content again: the same version
            out.append(
                VersionRecorded(
                    name=name,
                    digest=digest,
                    entries=_entries_of[digest],
                    run_id=run_id,
                    direction=rng.choice(["produced", "used"]),
                    time=at(),
                )
            )
        else:
            digest, entries = content(stored=rng.random() < 0.5)
            _entries_of[digest] = entries
            recorded[name].append(digest)
            out.append(
                VersionRecorded(
                    name=name,
                    digest=digest,
                    entries=entries,
                    run_id=run_id,
                    direction="produced",
                    aliases=["prod"] if rng.random() < 0.3 else [],
                    tags=rng.sample(["pii", "validated", "big"], rng.randrange(3)),
                    metadata={"n": rng.randrange(5)},
                    time=at(),
                )
            )
        out.append(RunRecorded(run_id=run_id, status="succeeded", ended_at=BASE, time=at()))
        roll = rng.random()
        target = name if rng.random() < 0.5 else rng.choice(names)  # often what this run just wrote
        if roll < 0.08 and live(target):
            out.append(AliasMoved(name=target, alias="prod", digest=rng.choice(live(target)), time=at()))
        elif roll < 0.16 and live(target):
            digest = rng.choice(live(target))
            out.append(TagsChanged(name=target, digest=digest, add=["checked"], remove=["pii"], time=at()))
        elif roll < 0.22 and len(live(target)) > 1:
            digest = rng.choice(live(target))
            deleted.add((target, digest))
            out.append(VersionDeleted(name=target, digest=digest, reason="test", time=at()))
    return out


_entries_of: dict[str, list[ManifestEntry]] = {}


def _dump(store: SQLStore) -> dict[str, Any]:
    """Every table by natural keys (ids may differ: a batch takes version ids ahead)."""
    query = {
        "artifacts": "SELECT name, type, next_label, n_versions, updated_at FROM artifacts ORDER BY name",
        "versions": (
            "SELECT a.name, v.label, v.digest, v.size, v.n_entries, v.metadata, v.produced_by, v.deleted_at"
            " FROM versions v JOIN artifacts a ON a.id = v.artifact_id ORDER BY a.name, v.label"
        ),
        "entries": (
            "SELECT a.name, v.label, e.path, e.digest, e.size, e.ref FROM entries e"
            " JOIN versions v ON v.id = e.version_id JOIN artifacts a ON a.id = v.artifact_id"
            " ORDER BY a.name, v.label, e.path"
        ),
        "edges": (
            "SELECT e.run_id, a.name, v.label, e.direction, e.exact, e.metadata FROM edges e"
            " JOIN versions v ON v.id = e.version_id JOIN artifacts a ON a.id = v.artifact_id"
            " ORDER BY e.run_id, a.name, v.label, e.direction"
        ),
        "aliases": (
            "SELECT a.name, x.alias, v.label, x.moved_at FROM aliases x JOIN artifacts a ON a.id = x.artifact_id"
            " LEFT JOIN versions v ON v.id = x.version_id ORDER BY a.name, x.alias"
        ),
        "alias_moves": (
            "SELECT a.name, m.alias, v.label, m.at FROM alias_moves m JOIN artifacts a ON a.id = m.artifact_id"
            " LEFT JOIN versions v ON v.id = m.version_id ORDER BY a.name, m.alias, m.id"
        ),
        "tags": (
            "SELECT a.name, v.label, t.tag FROM tags t JOIN versions v ON v.id = t.version_id"
            " JOIN artifacts a ON a.id = v.artifact_id ORDER BY a.name, v.label, t.tag"
        ),
        "runs": "SELECT id, job, status, status_at, started_at, ended_at, error FROM runs ORDER BY id",
        "applied": "SELECT count(*) FROM applied_events",
    }
    with store.engine.connect() as conn:
        return {table: [tuple(row) for row in conn.execute(sa.text(sql))] for table, sql in query.items()}


def _kept(store: SQLStore) -> list[tuple[Any, ...]]:
    query = sa.select(artifacts.c.name, artifacts.c.n_versions, artifacts.c.updated_at).order_by(artifacts.c.name)
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def _counted(store: SQLStore) -> list[tuple[Any, ...]]:
    live = versions.c.deleted_at.is_(None)
    query = (
        sa.select(
            artifacts.c.name,
            sa.func.count(versions.c.id).filter(live),
            sa.func.max(versions.c.created_at).filter(live),
        )
        .outerjoin(versions, versions.c.artifact_id == artifacts.c.id)
        .group_by(artifacts.c.name)
        .order_by(artifacts.c.name)
    )
    with store.engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(query)]
    # max() over a SQLite text column gives text: read it as the column reads it
    return [(name, n, at if at is None or isinstance(at, datetime) else _utc(at)) for name, n, at in rows]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        stores = [SQLStore(f"sqlite:///{tmp_path / name}.db") for name in ("batched", "alone")]
    else:
        from tests.conftest import _admin_url

        admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
        names = [f"headwater_batch_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        stores = [SQLStore(_admin_url().set(database=name).render_as_string(hide_password=False)) for name in names]
    yield stores
    for store in stores:
        store.close()
    if request.param == "postgres":
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_ends_as_its_events_applied_one_by_one(two_stores: list[SQLStore], seed: int) -> None:
    batched, alone = two_stores
    events = _events(seed, 400)
    notices_batched: list[str] = []
    for start in range(0, len(events), 100):
        notices_batched += batched.apply(events[start : start + 100])
    notices_alone: list[str] = []
    for event in events:
        notices_alone += alone.apply([event])
    expected = _dump(alone)
    assert _dump(batched) == expected
    assert notices_batched == notices_alone
    # the graph is not trivial: placeholders, deletes, late moves and tags all happened
    assert any(row[2].startswith("unverified:") for row in expected["versions"])
    assert any(row[7] is not None for row in expected["versions"])
    assert {row[1] for row in expected["aliases"]} == {"latest", "prod"}
    assert expected["tags"] and expected["applied"] == [(len(events),)]
    # each artifact's count and last update, kept on its row, are what counting its versions says
    assert _counted(batched) == _kept(batched)
    # a replay of every batch changes nothing
    for start in range(0, len(events), 100):
        assert batched.apply(events[start : start + 100]) == []
    assert _dump(batched) == expected


@pytest.mark.postgres
def test_batches_creating_the_same_artifacts_in_other_orders_never_deadlock(postgres_database: str) -> None:
    """Two writers create the same new artifacts, one in the other's reverse order: neither waits
    on the other's new row while holding one of its own (PostgreSQL would break the deadlock after
    a second, and the batch be applied again)."""
    import threading

    from tests.conftest import _truncate
    from tests.reliability.test_concurrent_writers import in_threads

    _truncate(postgres_database)
    rounds, names_each = 5, 8
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def new_version(name: str, worker: int) -> VersionRecorded:
        entries = [ManifestEntry(path="p", digest=f"etag:{name}-{worker}", size=1, ref=f"s3://b/{name}")]
        return VersionRecorded(name=name, digest=manifest_digest(entries), entries=entries)

    def write(worker: int) -> None:
        store = SQLStore(postgres_database)
        try:
            for n in range(rounds):
                names = [f"new/{n}-{i}" for i in range(names_each)]
                batch = [new_version(name, worker) for name in (names if worker == 0 else names[::-1])]
                start.wait(timeout=30)
                store.apply(batch)
        except BaseException as err:  # noqa: BLE001 - reported below, from the test's thread
            failures.append(err)
        finally:
            store.close()

    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    with sa.create_engine(postgres_database.replace("postgresql://", "postgresql+psycopg://")).connect() as conn:
        before = conn.execute(sa.text(deadlocks)).scalar_one()
    assert in_threads(write, 2, failures) == []
    engine = sa.create_engine(postgres_database.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:  # a new session: the writers' counts are flushed as they close
        assert conn.execute(sa.text(deadlocks)).scalar_one() == before
        labels = conn.execute(
            sa.select(artifacts.c.name, sa.func.count(), sa.func.min(versions.c.label), sa.func.max(versions.c.label))
            .join(versions, versions.c.artifact_id == artifacts.c.id)
            .group_by(artifacts.c.name)
        ).all()
    engine.dispose()
    assert sorted(labels) == sorted((f"new/{n}-{i}", 2, 0, 1) for n in range(rounds) for i in range(names_each))


def _runs(store: SQLStore) -> list[tuple[Any, ...]]:
    c = runs.c
    columns = (c.id, c.job, c.job_namespace, c.orchestrator, c.kind, c.status, c.status_at, c.started_at)
    more = (c.ended_at, c.params, c.parent_id, c.error, c.code, c.links, c.created_at)
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(*columns, *more).order_by(c.id))]


def test_a_runs_events_in_one_batch_end_as_applied_one_by_one(two_stores: list[SQLStore]) -> None:
    """A run's events in one batch are written as one row (its start and end folded together):
    every rule of how run events merge still holds, as if each were applied alone."""
    batched, alone = two_stores
    t = [BASE + timedelta(seconds=s) for s in range(10)]
    a, b, c, d = (str(uuid.uuid4()) for _ in range(4))
    events: list[Event] = [
        RunRecorded(run_id=a, job="train", status="running", started_at=t[2], params={"lr": 1}, time=t[2]),
        RunRecorded(run_id=a, params={"lr": 2, "epochs": 3}, code={"sha": "x"}, links={"ui": "u"}, time=t[3]),
        RunRecorded(run_id=a, started_at=t[1], job_namespace="ns", parent_id=b, time=t[4]),
        RunRecorded(run_id=a, status="succeeded", ended_at=t[5], time=t[5]),
        RunRecorded(run_id=a, status="running", time=t[6]),  # late: a terminal state never reverts
        RunRecorded(run_id=a, status="failed", error="boom", ended_at=t[7], time=t[7]),  # keeps succeeded
        # b: its events out of time order, an error filled in by the same outcome
        RunRecorded(run_id=b, status="failed", time=t[5]),
        RunRecorded(run_id=b, job="late", status="running", orchestrator="airflow", time=t[1]),
        RunRecorded(run_id=b, status="failed", error="oom", time=t[6]),
        # c: an older event that changes nothing, then a terminal state, older yet, that wins
        RunRecorded(run_id=c, status="running", time=t[3]),
        RunRecorded(run_id=c, status="running", started_at=t[3], time=t[2]),
        RunRecorded(run_id=c, status="skipped", time=t[1]),
        # an event of another kind: what follows is applied after it
        ContentPurged(digests=[f"blake3:{0:064x}"], reason="an event of another kind", who="ops", time=t[8]),
        RunRecorded(run_id=c, status="succeeded", ended_at=t[9], time=t[9]),
        RunRecorded(run_id=d, job="after", time=t[9]),
    ]
    batched.apply(events)
    for event in events:
        alone.apply([event])
    assert _runs(batched) == _runs(alone)
    # the same events again, and a run that exists already, folded from its new events
    more = [
        RunRecorded(run_id=c, params={"k": "v"}, time=t[9]),
        RunRecorded(run_id=c, error="late", time=t[9]),
    ]
    batched.apply(events + more)
    for event in more:
        alone.apply([event])
    rows = _runs(batched)
    assert rows == _runs(alone)
    by_id = {row[0]: row for row in rows}
    assert by_id[a][5] == "succeeded" and by_id[a][11] is None and by_id[a][7] == t[1]
    assert by_id[a][9] == {"lr": 2, "epochs": 3} and by_id[a][10] == b and by_id[a][2] == "ns"
    assert by_id[b][1:6] == ("late", "default", "airflow", "manual", "failed") and by_id[b][11] == "oom"
    assert by_id[c][5] == "skipped" and by_id[c][9] == {"k": "v"} and by_id[c][11] == "late"


def test_content_purged_by_another_connection_is_marked_as_it_arrives(tmp_path: Path) -> None:
    """A store that found no purge stops asking until another connection commits (SQLite's
    data_version): a purge committed by another store, or by its own connection, is never missed."""
    uri = f"sqlite:///{tmp_path / 'p.db'}"
    writer, purger = SQLStore(uri), SQLStore(uri)

    def logged(n: int, digest: str) -> VersionRecorded:
        entries = [ManifestEntry(path=f"f{n}", digest=digest, size=1)]
        return VersionRecorded(name=f"ds{n}", digest=manifest_digest(entries), entries=entries)

    def purged_paths(store: SQLStore) -> list[str]:
        with store.engine.connect() as conn:
            return sorted(conn.execute(sa.text("SELECT path FROM entries WHERE purge_id IS NOT NULL")).scalars())

    digests = [f"blake3:{n:064x}" for n in range(4)]
    try:
        # held by versions before their purge: a purge marks the entries holding its digests
        writer.apply([logged(10 + n, digest) for n, digest in enumerate(digests)])
        writer.apply([logged(0, digests[0])])  # no purge anywhere: known, and remembered
        assert writer.purged_digests([digests[0]]) == set()
        purger.apply([ContentPurged(digests=[digests[1]], reason="gdpr", who="ops")])
        assert writer.purged_digests([digests[1]]) == {digests[1]}
        notices = writer.apply([logged(1, digests[1])])
        assert purged_paths(writer) == ["f1", "f11"] and "purged content" in notices[0]
        # its own connection's purge: its data_version does not change, the purge forgets
        writer.apply([ContentPurged(digests=[digests[2]], reason="gdpr", who="ops")])
        writer.apply([logged(2, digests[2])])
        assert purged_paths(writer) == ["f1", "f11", "f12", "f2"]
        writer.apply([logged(3, digests[3])])
        assert purged_paths(writer) == ["f1", "f11", "f12", "f2"]
    finally:
        writer.close()
        purger.close()
