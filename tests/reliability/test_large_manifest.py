"""A version larger than the server's request limit records through it (its entries staged apart),
and a version too large for any route is refused before any of its blobs is uploaded.

The server's body limit is lowered through HEADWATER_SERVER_MAX_BODY_MB so a few thousand files
cross it; bench/large_manifest.py measures a million entries."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.digest import hash_bytes, manifest_digest
from headwater.errors import Conflict, InvalidInput
from headwater.events import EVENTS, RunRecorded, VersionRecorded
from headwater.models import ManifestEntry
from headwater.store.http import HTTPStore


def _server(server_factory, request: pytest.FixtureRequest, backend: str, max_body_mb: float):
    store = None
    if backend == "postgres":
        from tests.conftest import _truncate

        store = request.getfixturevalue("postgres_database")
        _truncate(store)
    return server_factory(store=store, env={"HEADWATER_SERVER_MAX_BODY_MB": str(max_body_mb)})


def _folder(root: Path, count: int) -> Path:
    root.mkdir()
    for i in range(count):
        (root / f"f{i:05d}.txt").write_text(str(i))
    return root


def _blob_files(server) -> list[Path]:
    return sorted(p for p in server.blobs.rglob("*") if p.is_file())


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_version_over_the_body_limit_records_through_the_server(
    server_factory, request: pytest.FixtureRequest, backend: str, tmp_path: Path, headwater_home: Path
) -> None:
    server = _server(server_factory, request, backend, 0.5)
    client = hw.Client(uri=server.url, home=headwater_home)
    folder = _folder(tmp_path / "refs", 3000)
    content = client.content(folder, store=False)
    body = len(EVENTS.dump_json([VersionRecorded(name="refs", digest=content.digest, entries=content.entries)]))
    assert body > 0.5 * (1 << 20)  # one request could not carry it

    with client.run("index") as run:
        version = run.log_artifact("refs", folder, store=False)

    assert client.outbox.dead() == [] and client.outbox.pending() == []
    recorded = client.get("refs")
    assert (recorded.label, recorded.digest, len(recorded.entries)) == ("v0", content.digest, 3000)
    assert version.ref == "refs:v0" and manifest_digest(recorded.entries) == content.digest
    assert sorted(recorded.entries, key=lambda e: e.path) == sorted(content.entries, key=lambda e: e.path)
    assert client.get_run(run.id).outputs == ["refs:v0"]
    client.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stored_files_over_the_body_limit_upload_and_record(
    server_factory, request: pytest.FixtureRequest, backend: str, tmp_path: Path, headwater_home: Path
) -> None:
    server = _server(server_factory, request, backend, 0.05)
    client = hw.Client(uri=server.url, home=headwater_home)
    folder = _folder(tmp_path / "data", 500)
    version = client.log_artifact("data", folder)
    recorded = client.get("data")
    assert (recorded.label, recorded.digest, len(recorded.entries)) == ("v0", version.digest, 500)
    assert manifest_digest(recorded.entries) == client.content(folder).digest
    restored = client.download(recorded, tmp_path / "back")
    assert sorted(p.name for p in restored.iterdir()) == sorted(p.name for p in folder.iterdir())
    assert (restored / "f00499.txt").read_text() == "499"
    client.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("too_large", ["manifest", "metadata"])
def test_a_version_too_large_for_any_route_is_refused_before_any_upload(
    server_factory, request: pytest.FixtureRequest, backend: str, too_large: str, tmp_path: Path, headwater_home: Path
) -> None:
    # 0.05 MB: a request of 52,428 bytes, a staged manifest of 4 times that (209,712 bytes).
    server = _server(server_factory, request, backend, 0.05)
    client = hw.Client(uri=server.url, home=headwater_home)
    if too_large == "manifest":
        folder = _folder(tmp_path / "big", 2000)  # some 250,000 bytes of entries
        message = (
            rf"^big@blake3:[0-9a-f]{{64}}: its 2000 entries take \d+ bytes, over {server.url}'s limit of "
            r"209712 for a manifest; nothing was stored$"
        )
        kwargs = {}
    else:
        folder = _folder(tmp_path / "big", 3)
        message = (
            rf"^version big@blake3:[0-9a-f]{{64}} takes \d+ bytes without its entries, over {server.url}'s "
            r"limit of 52428 for a request; nothing was stored$"
        )
        kwargs = {"metadata": {"notes": "x" * 60_000}}
    with pytest.raises(InvalidInput, match=message):
        client.log_artifact("big", folder, **kwargs)
    assert _blob_files(server) == []  # not one blob went up
    assert client.outbox.pending() == [] and client.outbox.dead() == []
    assert client.artifacts() == []
    client.close()


def test_a_replayed_staged_batch_records_each_entry_once(server_factory, tmp_path: Path, headwater_home: Path) -> None:
    server = server_factory(env={"HEADWATER_SERVER_MAX_BODY_MB": "0.5"})
    store = HTTPStore(server.url, home=headwater_home)
    entries = [ManifestEntry(path=f"d/{i:05d}", digest="blake3:" + f"{i:064x}", size=i) for i in range(5000)]
    events = [
        RunRecorded(run_id="r", job="index", status="succeeded"),
        VersionRecorded(name="ds", digest=manifest_digest(entries), entries=entries, run_id="r", direction="produced"),
    ]
    assert store.apply(events) == []
    assert store.apply(events) == []  # a replay, as after a lost answer: every id seen before
    engine = sa.create_engine(server.store)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM entries")).scalar() == 5000
        assert conn.execute(sa.text("SELECT count(*) FROM versions")).scalar() == 1
    engine.dispose()
    assert store.get_run("r").outputs == ["ds:v0"]
    store.close()


def test_a_staged_manifest_is_published_whole_or_not_at_all(server_factory, headwater_home: Path) -> None:
    server = server_factory()
    store = HTTPStore(server.url, home=headwater_home)
    entries = [ManifestEntry(path="a", digest="blake3:" + "1" * 64, size=1)]
    packed = gzip.compress(json.dumps([e.model_dump() for e in entries]).encode())
    wrong = "blake3:" + "0" * 64
    with pytest.raises(
        Conflict, match=rf"^the {len(packed)} bytes sent hash to {hash_bytes(packed)}, not {wrong}: nothing was stored$"
    ):
        store._conn.request(
            "PUT", f"/manifests/{wrong}", content=packed, headers={"Content-Type": "application/octet-stream"}
        )
    assert _blob_files(server) == []
    # An event naming a manifest the server does not hold is refused, and records nothing.
    named = VersionRecorded(name="ds", digest=manifest_digest(entries), entries=[], manifest=hash_bytes(packed))
    with pytest.raises(InvalidInput, match=rf"^version ds@{named.digest} names a staged manifest"):
        store.apply([named])
    assert store.list_artifacts() == []
    store.close()
