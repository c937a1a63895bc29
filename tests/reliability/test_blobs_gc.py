"""Garbage collection never takes the bytes of a version that is still on its way: blobs of
batches waiting in any outbox of the home are kept, and so are blobs younger than the grace
period; leftovers in blobs/tmp go once they are older than it. The tracking server's DELETE
follows the same rule, by the blob's time, since it cannot see its clients' outboxes."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

import headwater as hw
from headwater.blobs import BlobStore
from headwater.digest import hash_bytes

DAY = 86400


def blob_file(blobs: Path, digest: str) -> Path:
    return blobs / "blake3" / digest[7:9] / digest[9:]


def age(path: Path, seconds: float) -> None:
    """Set a file's times `seconds` into the past, as if it had been written then."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def client_sqlite(tmp_path: Path, headwater_home: Path):
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'store.db'}", home=headwater_home)
    yield client
    client.close()


def test_gc_keeps_the_blobs_of_versions_waiting_in_the_outbox(tmp_path: Path, headwater_home: Path, files) -> None:
    root = files({"gone.txt": "deleted version", "waiting.txt": "not yet delivered"})
    blobs = headwater_home / "blobs"
    up = hw.Client(uri=f"sqlite:///{tmp_path / 'up.db'}", home=headwater_home)
    # A backend that is down: its database's folder is a file, so SQLite cannot open it.
    (tmp_path / "down").write_text("not a folder")
    down = hw.Client(uri=f"sqlite:///{tmp_path / 'down' / 'store.db'}", home=headwater_home)

    gone = up.log_artifact("gone", root / "gone.txt").entries[0].digest
    up.delete("gone:v0")
    waiting = down.log_artifact("waiting", root / "waiting.txt").entries[0].digest
    assert len(down.outbox.pending()) == 1  # the blob is stored, its version is not delivered
    for digest in (gone, waiting):  # old enough that the grace period alone keeps neither
        age(blob_file(blobs, digest), 2 * DAY)

    # gc through another backend sharing the blob store sees this home's every outbox.
    assert up.gc(dry_run=True) == [gone]
    assert up.gc() == [gone]
    assert sorted(BlobStore(blobs).iter_digests()) == [waiting]
    with pytest.raises(hw.Unavailable):
        down.gc(grace=0)  # its store is away: nothing is known, nothing is removed
    assert sorted(BlobStore(blobs).iter_digests()) == [waiting]

    (tmp_path / "down").unlink()
    (tmp_path / "down").mkdir()  # the backend is back; the batch has not been delivered yet
    assert down.gc(grace=0) == []  # its own outbox still holds the version
    delivery = down.sync()
    assert (delivery.delivered, delivery.pending, delivery.dead) == (1, 0, {})
    assert down.gc(grace=0) == []  # now the store references it
    assert down.get("waiting:v0").download().read_text() == "not yet delivered"
    report = down.verify("waiting:v0")
    assert (report.ok, report.missing, report.changed) == (True, [], [])
    up.close()
    down.close()


def test_gc_keeps_blobs_younger_than_the_grace_period(client_sqlite: hw.Client, tmp_path: Path, monkeypatch) -> None:
    client = client_sqlite
    blobs = client.home / "blobs"
    contents = {name: f"unreferenced {name}".encode() for name in ("fresh", "old", "stored-again", "20min", "40min")}
    digests = {name: hash_bytes(data) for name, data in contents.items()}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
        client.blobs.put_file(tmp_path / name)
    age(blob_file(blobs, digests["old"]), 2 * DAY)
    age(blob_file(blobs, digests["stored-again"]), 2 * DAY)
    age(blob_file(blobs, digests["20min"]), 20 * 60)
    age(blob_file(blobs, digests["40min"]), 40 * 60)
    client.blobs.put_file(tmp_path / "stored-again")  # logged again: young again

    monkeypatch.setenv("HEADWATER_GC_GRACE", "30m")
    assert client.gc(dry_run=True) == sorted([digests["old"], digests["40min"]])
    assert len(list(client.blobs.iter_digests())) == 5  # a dry run removes nothing
    assert client.gc() == sorted([digests["old"], digests["40min"]])
    monkeypatch.delenv("HEADWATER_GC_GRACE")
    assert client.gc() == []  # the default, 24 hours, keeps the rest
    assert client.gc(grace=15 * 60) == [digests["20min"]]
    assert sorted(client.blobs.iter_digests()) == sorted([digests["fresh"], digests["stored-again"]])
    with pytest.raises(hw.InvalidInput, match="cannot be negative"):
        client.gc(grace=-1)


def test_a_folder_logged_again_makes_its_stored_blobs_young_again(client_sqlite: hw.Client, tmp_path: Path) -> None:
    """Its files are found stored by a stat each (no copy is opened), and still made young, as
    put_file makes a blob stored again young (the same version: nothing else records it)."""
    client = client_sqlite
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / name).write_text(f"file {name}")
    version = client.log_artifact("ds", folder)
    stored = [blob_file(client.home / "blobs", e.digest) for e in version.entries]
    for path in stored:
        age(path, 2 * DAY)
    assert client.log_artifact("ds", folder).label == version.label
    assert all(time.time() - path.stat().st_mtime < 3600 for path in stored)


def test_gc_removes_tmp_files_older_than_the_grace_period(client_sqlite: hw.Client) -> None:
    tmp = client_sqlite.home / "blobs" / "tmp"
    tmp.mkdir(parents=True)
    # What kill -9 during a put leaves: a partial copy under a random name.
    left, fresh = tmp / uuid.uuid4().hex, tmp / uuid.uuid4().hex
    left.write_bytes(b"partial copy")
    fresh.write_bytes(b"an upload under way")
    age(left, 2 * 3600)
    assert client_sqlite.gc(grace=3600, dry_run=True) == []
    assert sorted(p.name for p in tmp.iterdir()) == sorted([left.name, fresh.name])
    assert client_sqlite.gc(grace=3600) == []
    assert [p.name for p in tmp.iterdir()] == [fresh.name]


def test_server_sweeps_old_uploads_when_it_starts(server_factory) -> None:
    server = server_factory(start=False)
    tmp = server.blobs / "tmp"
    tmp.mkdir(parents=True)
    left, fresh = tmp / uuid.uuid4().hex, tmp / uuid.uuid4().hex
    left.write_bytes(b"cut short by kill -9")
    fresh.write_bytes(b"another worker's upload")
    age(left, 2 * DAY)
    server.start()
    assert [p.name for p in tmp.iterdir()] == [fresh.name]


def test_server_deletes_only_unreferenced_blobs_older_than_its_grace_period(
    server_factory, tmp_path: Path, files
) -> None:
    server = server_factory()
    client = hw.Client(uri=server.url)
    root = files({"kept.txt": "a live version", "gone.txt": "a deleted version"})
    kept = client.log_artifact("kept", root / "kept.txt").entries[0].digest
    gone = client.log_artifact("gone", root / "gone.txt").entries[0].digest
    client.delete("gone:v0")

    def delete(digest: str) -> httpx.Response:
        return httpx.delete(f"{server.url}/api/v1/blobs/{digest}")

    answer = delete(gone)
    assert (answer.status_code, answer.json()) == (
        409,
        {
            "error": "Conflict",
            "message": f"blob {gone} was stored less than 86400 s ago (HEADWATER_GC_GRACE): its version may "
            "still be on its way, not removed",
        },
    )
    assert client.gc(grace=0) == []  # the server's grace period rules over the client's
    age(blob_file(server.blobs, kept), 2 * DAY)
    answer = delete(kept)
    assert (answer.status_code, answer.json()) == (
        409,
        {
            "error": "Conflict",
            "message": f"blob {kept} is stored by a live version: not removed",
        },
    )
    age(blob_file(server.blobs, gone), 2 * DAY)
    assert client.gc(dry_run=True) == [gone]
    assert client.gc() == [gone]
    assert not blob_file(server.blobs, gone).exists() and blob_file(server.blobs, kept).exists()
    assert delete(gone).status_code == 204  # not there: fine
    assert client.get("kept").download().read_text() == "a live version"
    client.close()


def test_gc_over_http_leaves_blobs_spooled_for_a_server_that_was_down(server_factory, files, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    server = server_factory()
    client = hw.Client(uri=server.url)
    root = files({"m.bin": "logged while the server was down"})
    server.stop()
    digest = client.log_artifact("model", root / "m.bin").entries[0].digest
    assert list(client.blobs.spool.iter_digests()) == [digest] and len(client.outbox.pending()) == 1
    server.start()
    assert client.gc(grace=0) == []
    assert list(client.blobs.spool.iter_digests()) == [digest]
    delivery = client.sync()
    assert (delivery.delivered, delivery.pending, delivery.dead) == (1, 0, {})
    assert client.get("model:v0").download().read_text() == "logged while the server was down"
    assert client.verify("model:v0").ok
    client.close()


def test_gc_command_takes_a_grace_period(client_sqlite: hw.Client, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from headwater.cli import cli

    (tmp_path / "x").write_bytes(b"unreferenced")
    digest = client_sqlite.blobs.put_file(tmp_path / "x")
    age(blob_file(client_sqlite.home / "blobs", digest), 3 * 3600)
    args = ["--home", str(client_sqlite.home), "--uri", client_sqlite.uri, "gc", "--json"]
    kept = CliRunner().invoke(cli, [*args, "--grace", "4h"])
    assert (kept.exit_code, json.loads(kept.output)) == (0, {"dry_run": False, "blobs": [], "count": 0})
    removed = CliRunner().invoke(cli, [*args, "--grace", "2h"])
    assert (removed.exit_code, json.loads(removed.output)) == (0, {"dry_run": False, "blobs": [digest], "count": 1})
    bad = CliRunner().invoke(cli, [*args, "--grace", "soon"])
    assert bad.exit_code == 2 and "'soon' is not a duration: use e.g. 90s, 30m, 24h, 7d" in bad.output
