"""kill -9 at each step of a write: of the writing process, of `headwater sync`, of the server.

Each process stops itself at a named crash point (tests/reliability/crash.py) and is killed there
with SIGKILL. Afterwards `headwater sync` delivers, and the store holds exactly the versions whose
batches were durable in the outbox: none twice, none partial, labels gapless, every blob restorable.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import headwater as hw
from headwater.events import EVENTS, RunRecorded, VersionRecorded
from headwater.outbox import SUFFIX, TMP_PREFIX
from headwater.store import backoff
from tests.reliability.conftest import (
    CrashingServer,
    assert_models_exactly,
    child_env,
    headwater_cli,
    run_to_crash,
)

pytestmark = pytest.mark.slow

# Whether the batch of a writer killed at this step is in the store once `headwater sync` ran.
DURABLE = {
    "blob-stored": False,
    "batch-written": False,
    "batch-durable": True,
    "before-commit": True,
    "committed": True,
}


def _cases() -> list[object]:
    cases: list[object] = [pytest.param("sqlite", step, id=f"sqlite-{step}") for step in DURABLE]
    for backend in ("postgres", "http"):
        marks = [pytest.mark.postgres] if backend == "postgres" else []
        cases += [
            pytest.param(backend, step, id=f"{backend}-{step}", marks=marks)
            for step in ("batch-durable", "before-commit", "committed")
        ]
    return cases


@pytest.mark.parametrize(("store_uri", "step"), _cases(), indirect=["store_uri"])
def test_a_writer_killed_at_each_step(store_uri: str, step: str, tmp_path: Path, headwater_home: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    env = child_env(HEADWATER_URI=store_uri)
    printed = run_to_crash(["write", store_uri, str(folder), "3"], step, 1, env, tmp_path / "writer.log")
    assert printed == ["done 0"]  # killed inside the second write

    synced = headwater_cli("sync", "--json", env=env)
    assert synced.returncode == 0, synced.stderr
    client = hw.Client(uri=store_uri, home=headwater_home)
    written = 2 if DURABLE[step] else 1
    assert_models_exactly(client, written)
    # The next write after the crash takes the next label: nothing reserved one and lost it.
    (folder / f"m{written}").write_text(f"model {written}")
    client.link(f"step-{written}", outputs=[hw.Output("model", folder / f"m{written}")])
    assert_models_exactly(client, written + 1)
    client.close()


def test_a_half_written_batch_leaves_no_file_behind(tmp_path: Path, headwater_home: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    (tmp_path / "models").mkdir()
    env = child_env(HEADWATER_URI=uri, HEADWATER_GC_GRACE="1h")
    run_to_crash(["write", uri, str(tmp_path / "models"), "2"], "batch-written", 0, env, tmp_path / "writer.log")
    assert headwater_cli("sync", env=env).returncode == 0
    client = hw.Client(uri=uri, home=headwater_home)
    assert not client.store.artifact_exists("model")
    [half] = [p for p in client.outbox.folder.iterdir() if p.name != ".lock"]
    assert half.name.startswith(TMP_PREFIX) and half.name.endswith(SUFFIX)
    # Young, it may be a write under way (write_behind fsyncs on a thread): neither sync nor gc
    # can tell, so both leave it.
    assert headwater_cli("gc", env=env).returncode == 0
    assert half.exists()
    hours_ago = time.time() - 2 * 3600  # older than the grace period: its writer is gone
    os.utime(half, (hours_ago, hours_ago))
    assert headwater_cli("gc", env=env).returncode == 0
    assert sorted(p.name for p in client.outbox.folder.iterdir()) == [".lock"]
    client.close()


def _queue(client: hw.Client, folder: Path, n: int) -> None:
    """n batches waiting in the outbox, as a writer whose backend was away leaves them."""
    folder.mkdir()
    for i in range(n):
        (folder / f"m{i}").write_text(f"model {i}")
        run = hw.run_id("queued", i)
        event = client._version_event(
            "model",
            folder / f"m{i}",
            type=None,
            aliases=(),
            metadata=None,
            description=None,
            tags=(),
            store=None,
            run=run,
            direction="produced",
        )
        client.queue([RunRecorded(run_id=run, job=f"step-{i}", status="succeeded"), event])


@pytest.mark.parametrize(
    ("store_uri", "step"),
    [
        pytest.param("sqlite", "before-commit", id="sqlite-before-commit"),
        pytest.param("sqlite", "committed", id="sqlite-committed"),
        pytest.param("postgres", "before-commit", id="postgres-before-commit", marks=pytest.mark.postgres),
        pytest.param("postgres", "committed", id="postgres-committed", marks=pytest.mark.postgres),
        pytest.param("http", "committed", id="http-committed"),
    ],
    indirect=["store_uri"],
)
def test_headwater_sync_killed_mid_delivery(store_uri: str, step: str, tmp_path: Path, headwater_home: Path) -> None:
    n = 80  # more than one group of batches (64): the second group is cut
    client = hw.Client(uri=store_uri, home=headwater_home)
    _queue(client, tmp_path / "models", n)
    assert len(client.outbox.pending()) == n
    env = child_env(HEADWATER_URI=store_uri)
    run_to_crash(["cli", "sync"], step, 1, env, tmp_path / "sync.log")
    left = len(client.outbox.pending())
    # The first group (64 batches) went in; the second was cut before or after its commit.
    assert left == n - 64
    assert len(client.versions("model")) == (64 if step == "before-commit" else n)

    synced = headwater_cli("sync", "--json", env=env)
    assert synced.returncode == 0, synced.stderr
    # The cut group again, whole: the store skips the events it had applied.
    assert json.loads(synced.stdout)["delivered"] == n - 64
    assert_models_exactly(client, n)
    client.close()


def _versions_in(batch: Path) -> list[str]:
    return [e.name for e in EVENTS.validate_json(batch.read_bytes()) if isinstance(e, VersionRecorded)]


@pytest.mark.parametrize("step", ["before-commit", "committed"])
def test_the_server_killed_mid_request_then_restarted(
    step: str, tmp_path: Path, headwater_home: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    server = CrashingServer(tmp_path / "server", env={"HEADWATER_TEST_CRASH": f"{step}:1"}).start()
    try:
        client = hw.Client(uri=server.url, home=headwater_home)
        folder = tmp_path / "models"
        folder.mkdir()
        for i in range(2):
            (folder / f"m{i}").write_text(f"model {i}")
        assert client.link("step-0", outputs=[hw.Output("model", folder / "m0")]).outputs == ["model:v0"]
        queued = client.link("step-1", outputs=[hw.Output("model", folder / "m1")])
        server.wait_for_crash(step, 1)
        server.stop(kill=True)  # SIGKILL to the stopped server, its request unanswered
        # The caller got its answer within the budget: recorded by digest, waiting on disk.
        digest = client.content(folder / "m1").digest
        assert queued.outputs == [f"model@{digest}"]
        [waiting] = client.outbox.pending()
        assert waiting.name.endswith(SUFFIX) and _versions_in(waiting) == ["model"]

        server.env.pop("HEADWATER_TEST_CRASH")
        server.start()
        synced = headwater_cli("sync", "--json", env=child_env(HEADWATER_URI=server.url))
        assert synced.returncode == 0, synced.stderr
        assert (json.loads(synced.stdout)["delivered"], json.loads(synced.stdout)["pending"]) == (1, 0)
        # This process remembers the server let a request time out a moment ago and spares it
        # for one budget; the restarted server is another one.
        backoff.clear(server.url)
        assert_models_exactly(client, 2)
        client.close()
    finally:
        server.stop()
