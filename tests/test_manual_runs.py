"""Manual runs deliver their events at their end, and hw.get answers from a cache: what must
still hold. A REF read again sees what another process changed (a delete, a purge, an alias
moved, a new version); a run killed midway leaves its start in the outbox; a run's batch is
applied exactly once, even when the process dies between the commit and the outbox's cleanup."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.digest import hash_file
from headwater.errors import Conflict
from headwater.events import EVENTS, RunRecorded

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SQL_BACKENDS)
def sql_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    from tests.conftest import _truncate

    url = str(request.getfixturevalue("postgres_database"))
    _truncate(url)
    return url


def _other_process(uri: str, home: Path, code: str) -> None:
    """Run `code` with `client` (a Client of the same store) in a process of its own."""
    script = f"import headwater as hw\nclient = hw.Client(uri={uri!r}, home={str(home)!r})\n" + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def _statements(client: hw.Client) -> list[str]:
    """Every statement the client's store runs from now on (a real listener on its engine)."""
    seen: list[str] = []
    sa.event.listen(client.store.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))  # type: ignore[attr-defined]
    return seen


def test_a_warm_get_on_sqlite_runs_no_statement(tmp_path: Path, files) -> None:
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'store.db'}", home=tmp_path / "home")
    client.log_artifact("ds", files({"a.csv": "1"}) / "a.csv")
    first = client.get("ds:v0")
    seen = _statements(client)
    again = client.get("ds:v0")
    assert seen == []  # answered from the cache: the database did not change
    assert again == first and again is not first  # a copy: changing it leaves the cache intact
    again.tags.append("mine")
    assert client.get("ds:v0").tags == []
    client.close()


@pytest.mark.parametrize("ref", ["ds:v0", "ds", "ds:prod"])
def test_a_get_sees_another_process_delete_purge_and_alias(sql_uri: str, tmp_path: Path, files, ref: str) -> None:
    home = tmp_path / "home"
    client = hw.Client(uri=sql_uri, home=home)
    data = files({"a.csv": "secret", "b.csv": "other"})
    client.log_artifact("ds", data / "a.csv", aliases=["prod"])
    before = client.get(ref)
    assert (before.label, before.deleted, before.purged) == ("v0", False, [])
    assert client.get(ref) == before  # warm

    # another process logs a new version and moves `prod` to it: `ds` and `ds:prod` follow
    _other_process(sql_uri, tmp_path / "other", f"client.log_artifact('ds', {str(data / 'b.csv')!r}, aliases=['prod'])")
    moved = client.get(ref)
    assert moved.label == ("v0" if ref == "ds:v0" else "v1")
    assert client.get("ds:v0").aliases == []

    # another process deletes v0, then v1
    _other_process(sql_uri, tmp_path / "other", "client.delete('ds:v0', reason='test')")
    assert client.get("ds:v0").deleted is True
    if ref == "ds:v0":
        # ... and purges its content: the next get says which paths were purged
        _other_process(sql_uri, tmp_path / "other", "client.purge(reason='takedown', ref='ds:v0')")
        assert client.get(ref).purged == ["a.csv"]
    else:
        _other_process(sql_uri, tmp_path / "other", "client.unalias('ds', 'prod'); client.delete('ds:v1')")
        with pytest.raises(hw.NotFound):
            client.get(ref)
    client.close()


def test_a_get_sees_this_process_other_client(tmp_path: Path, files) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    reader, writer = hw.Client(uri=uri, home=tmp_path / "r"), hw.Client(uri=uri, home=tmp_path / "w")
    data = files({"a": "1", "b": "2"})
    writer.log_artifact("ds", data / "a")
    assert reader.get("ds").label == "v0"
    writer.log_artifact("ds", data / "b")
    assert reader.get("ds").label == "v1"
    writer.alias("ds:v0", "prod")
    assert reader.get("ds:v0").aliases == ["prod"]
    reader.close()
    writer.close()


def test_a_run_is_delivered_in_one_transaction_with_its_start(client: hw.Client, files) -> None:
    data = files({"ds.csv": "x\n1\n", "model.bin": b"\0" * 1024})
    client.log_artifact("ds", data / "ds.csv")
    with client.run("train", params={"lr": 0.01}) as run:
        assert run.use("ds:v0").ref == "ds:v0"
        run.use("ds:v0")  # the same edge again: kept once
        model = run.log_artifact("model", data / "model.bin")
        assert model.label is None  # delivered with the run's end
        assert len(client.outbox.pending()) == 1  # the start, durable since the block began
    assert client.outbox.pending() == [] and client.outbox.dead() == []
    assert model.ref == "model:v0" and model.producers == [run.id]  # filled in once delivered
    recorded = client.get_run(run.id)
    assert (recorded.status, recorded.params, recorded.inputs, recorded.outputs) == (
        "succeeded",
        {"lr": 0.01},
        ["ds:v0"],
        ["model:v0"],
    )


def test_a_read_in_a_run_sees_its_outputs(client: hw.Client, files) -> None:
    data = files({"clean.csv": "1", "model.bin": "2"})
    with client.run("prep") as prep:
        prep.log_artifact("clean", data / "clean.csv")
        assert client.get("clean").label == "v0"  # delivered first, so the read sees it
        with client.run("train") as train:
            assert train.use("clean:latest").ref == "clean:v0"
            train.log_artifact("model", data / "model.bin")
    assert client.get_run(prep.id).outputs == ["clean:v0"]
    assert (client.get_run(train.id).inputs, client.get_run(train.id).outputs) == (["clean:v0"], ["model:v0"])


def test_a_refused_output_sets_aside_only_itself_and_fails_the_run(client: hw.Client, files) -> None:
    data = files({"ds.csv": "1", "model.bin": "2", "metrics.json": "{}"})
    client.log_artifact("ds", data / "ds.csv", type="dataset")
    with pytest.raises(Conflict), client.run("train") as run:
        run.use("ds:v0")
        run.log_artifact("metrics", data / "metrics.json")
        run.log_artifact("ds", data / "model.bin", type="model")  # ds is a dataset: refused
    recorded = client.get_run(run.id)
    assert (recorded.status, recorded.inputs, recorded.outputs) == ("failed", ["ds:v0"], ["metrics:v0"])
    assert recorded.error is not None and "type" in recorded.error
    dead = client.outbox.dead()
    assert len(dead) == 1
    assert [type(e).__name__ for e in EVENTS.validate_json(dead[0].read_bytes())] == ["VersionRecorded"]
    assert client.outbox.pending() == []


_KILLED_MIDWAY = """
import os, signal
with client.run("train") as run:
    run.use("ds:v0")
    run.log_artifact("model", {model!r})
    print(run.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_run_killed_midway_leaves_its_start_in_the_outbox(tmp_path: Path, files) -> None:
    uri, home = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "home"
    data = files({"ds.csv": "1", "model.bin": b"weights"})
    client = hw.Client(uri=uri, home=home)
    client.log_artifact("ds", data / "ds.csv")
    script = f"import headwater as hw\nclient = hw.Client(uri={uri!r}, home={str(home)!r})\n" + _KILLED_MIDWAY.format(
        model=str(data / "model.bin")
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    run_id = killed.stdout.strip()
    pending = client.outbox.pending()
    assert len(pending) == 1
    (start,) = EVENTS.validate_json(pending[0].read_bytes())
    assert isinstance(start, RunRecorded) and (start.run_id, start.status) == (run_id, "running")
    assert client.sync().delivered == 1
    recorded = client.get_run(run_id)
    # the start is recorded; what the run kept in memory died with it, the output's bytes stay
    assert (recorded.job, recorded.status, recorded.inputs, recorded.outputs) == ("train", "running", [], [])
    assert [a.name for a in client.artifacts()] == ["ds"]
    assert client.blobs.has(hash_file(data / "model.bin")[0])
    client.close()


_DIES_AFTER_COMMIT = """
import os
from headwater.outbox import Outbox
def die(self, path, result):
    os._exit(9)  # committed, the outbox's files not yet removed
Outbox._delivered = die
with client.run("train") as run:
    run.use("ds:v0")
    run.log_artifact("model", {model!r})
    print(run.id, flush=True)
"""


def test_a_run_delivered_twice_is_applied_once(tmp_path: Path, files) -> None:
    uri, home = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "home"
    data = files({"ds.csv": "1", "model.bin": b"weights"})
    client = hw.Client(uri=uri, home=home)
    client.log_artifact("ds", data / "ds.csv")
    script = (
        f"import headwater as hw\nclient = hw.Client(uri={uri!r}, home={str(home)!r})\n"
        + _DIES_AFTER_COMMIT.format(model=str(data / "model.bin"))
    )
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    run_id = died.stdout.strip()
    assert len(client.outbox.pending()) == 2  # the start and the rest, both committed already
    recorded = client.get_run(run_id)
    assert (recorded.status, recorded.inputs, recorded.outputs) == ("succeeded", ["ds:v0"], ["model:v0"])
    delivery = client.sync()
    assert (delivery.delivered, delivery.pending, delivery.dead) == (2, 0, {})
    again = client.get_run(run_id)
    assert again == recorded  # the store skipped every event it had applied
    assert [v.ref for v in client.versions("model")] == ["model:v0"]
    with client.store.engine.connect() as conn:  # type: ignore[attr-defined]
        edges = conn.exec_driver_sql("SELECT direction FROM edges WHERE run_id = ?", (run_id,)).scalars().all()
    assert sorted(edges) == ["produced", "used"]
    client.close()
