"""Delivery when the backend is away: nothing raised, nothing lost, nothing applied twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import headwater as hw
from headwater.events import RunRecorded
from headwater.outbox import Outbox


def test_a_crash_after_apply_before_unlink_applies_once(client: hw.Client, files) -> None:
    rid = hw.run_id("crash", 1)
    batch = [RunRecorded(run_id=rid, job="j", status="running")]
    name = client.outbox.write(batch)
    client.store.apply(batch)  # delivered, then the process died before removing the file
    assert (client.outbox.folder / name).exists()
    result = client.sync()
    assert (result.delivered, result.pending) == (1, 0)
    assert [r.id for r in client.runs()] == [rid]


def test_the_same_batch_twice_in_one_group_applies_once(client: hw.Client, files) -> None:
    root = files({"a": "1"})
    batch = [
        RunRecorded(run_id=hw.run_id("twice"), job="j", status="running"),
        client._version_event(
            "twice",
            root / "a",
            type=None,
            aliases=(),
            metadata=None,
            description=None,
            tags=(),
            store=None,
            run=None,
            direction=None,
        ),
    ]
    client.outbox.write(batch)
    client.outbox.write(batch)  # a copy, say restored from a backup: one transaction holds both
    assert client.sync().delivered == 2
    assert [v.label for v in client.versions("twice")] == ["v0"] and len(client.runs()) == 1


def test_a_refused_batch_is_set_aside_and_does_not_block_the_rest(client: hw.Client, files) -> None:
    root = files({"a": "1", "b": "2"})
    client.log_artifact("typed", root / "a", type="dataset")
    good = [RunRecorded(run_id=hw.run_id("ok"), job="after")]
    wrong_type = client._version_event(
        "typed",
        root / "b",
        type="model",
        aliases=(),
        metadata=None,
        description=None,
        tags=(),
        store=None,
        run=None,
        direction=None,
    )
    client.outbox.write([wrong_type])
    client.outbox.write(good)
    result = client.sync()
    assert result.delivered == 1 and len(result.dead) == 1
    assert "has type 'dataset'" in str(next(iter(result.dead.values())))
    assert [r.job for r in client.runs()] == ["after"]
    assert len(client.outbox.dead()) == 1 and client.outbox.pending() == []


def test_the_drain_lock_and_filelock_exclude_each_other(client: hw.Client) -> None:
    from filelock import FileLock, Timeout

    from headwater.outbox import _lock

    client.outbox.write([RunRecorded(run_id=hw.run_id("l2"), job="j")])
    held = _lock(client.outbox.folder / ".lock", timeout=0)
    assert held is not None and _lock(client.outbox.folder / ".lock", timeout=0) is None
    with pytest.raises(Timeout):
        FileLock(client.outbox.folder / ".lock").acquire(timeout=0)
    held.release()
    assert client.sync().delivered == 1


def test_a_batch_left_waiting_has_its_folder_fsynced_before_emit_returns(
    tmp_path: Path, headwater_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import headwater.outbox as outbox_module

    synced: list[Path] = []
    real = outbox_module._fsync_dir
    monkeypatch.setattr(outbox_module, "_fsync_dir", lambda folder: (synced.append(folder), real(folder)))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    down = hw.Client(uri=f"sqlite:///{blocker}/db/headwater.db", home=headwater_home)
    assert down.emit([RunRecorded(run_id=hw.run_id("w"), job="j")]) is False
    assert synced == [down.outbox.folder] and len(down.outbox.pending()) == 1
    down.queue([RunRecorded(run_id=hw.run_id("q"), job="j")])  # waits by design: synced at once
    assert synced == [down.outbox.folder] * 2


def test_emit_commits_only_once_its_batch_is_durable_in_the_outbox(
    client: hw.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # emit() fsyncs its batch on a worker thread while the store works: a batch that cannot be
    # made durable is not committed, and what waited before it stays waiting.
    start = [RunRecorded(run_id=hw.run_id("d"), job="j", status="running")]
    client.queue(start)
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(hw.Unwritable) as raised:
        client.emit([RunRecorded(run_id=hw.run_id("d"), job="j", status="succeeded")])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert str(raised.value) == f"cannot write a batch to the outbox {client.outbox.folder}: Input/output error"
    assert client.runs() == [] and len(client.outbox.pending()) == 1
    # Its temporary file is gone with it: only the batch that waited, and the drain lock.
    assert sorted(p.name for p in client.outbox.folder.iterdir()) == sorted([".lock", client.outbox.pending()[0].name])

    assert client.emit([RunRecorded(run_id=hw.run_id("d"), job="j", status="succeeded")]) is True
    assert [r.status for r in client.runs()] == ["succeeded"] and client.outbox.pending() == []


def test_unwritable_backend_leaves_events_in_the_outbox(tmp_path: Path, headwater_home: Path, files) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    client = hw.Client(uri=f"sqlite:///{blocker}/db/headwater.db", home=headwater_home)
    version = client.log_artifact("x", files({"a": "1"}) / "a")
    assert version.label is None and version.ref.startswith("x@blake3:")
    assert len(client.outbox.pending()) == 1
    blocker.unlink()
    assert client.sync().delivered == 1
    assert client.get("x").label == "v0"


def test_outboxes_are_kept_per_backend(tmp_path: Path) -> None:
    a = Outbox(tmp_path, "sqlite:///a.db", lambda: None)  # type: ignore[arg-type,return-value]
    b = Outbox(tmp_path, "sqlite:///b.db", lambda: None)  # type: ignore[arg-type,return-value]
    assert a.folder != b.folder and a.folder.parent == b.folder.parent


def test_sqlite_commits_are_fsynced_before_the_outbox_lets_a_batch_go(tmp_path: Path) -> None:
    """The outbox removes a batch once the store committed it: on SQLite that commit must
    survive a power loss, which WAL mode only promises with synchronous=FULL (2)."""
    from headwater.store.sql import SQLStore

    store = SQLStore(f"sqlite:///{tmp_path / 'store.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()
