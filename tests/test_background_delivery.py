"""HEADWATER_DELIVERY=background: tasks in fresh processes, the detached deliverer, real processes.

The test holds the outbox's drain lock where it must see a state before delivery (a task that
returned, two tasks and their one deliverer): what it asserts then cannot depend on timing. Waits
are on a condition (the outbox empty, the deliverer gone), never on a sleep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import headwater as hw
from headwater.deliverer import ELECTION, LOG
from headwater.events import RunRecorded
from headwater.outbox import _Flock, _lock
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="background delivery is POSIX only")

REPO = Path(__file__).resolve().parents[1]

# A task of an orchestrator in its own process: it reads `raw`, writes `model`, and reports what
# it loaded. The start batch waits for the end one, as the Airflow adapter writes them.
TASK = """
import json, sys
from headwater.observe import now, observer_for
task, source, output = sys.argv[1:4]
observer = observer_for("fresh")
with observer.batch("task start", deliver=False) as b:
    b.run(task, job="dag." + task, kind="task", status="running", started_at=now())
with observer.batch("task end") as b:
    b.used(task, source, name="raw")
    b.produced(task, output, name="model")
    b.run(task, status="succeeded", ended_at=now())
print(json.dumps({"delivered": b.delivered, "modules": sorted(sys.modules)}))
"""


def run_task(task: str, source: Path, output: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", TASK, task, str(source), str(output)],
        env={**os.environ, "HEADWATER_DELIVERY": "background", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    result: dict[str, object] = json.loads(out)
    return result


def deliverers(home: Path) -> list[int]:
    """Live deliverer processes of this home (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if b"headwater.deliverer" not in cmdline:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"HEADWATER_HOME={home}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {what}")
        time.sleep(0.02)


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Callable[[int], Path]]:
    source = tmp_path / "raw.csv"
    source.write_text("a,b\n1,2\n")

    def output(i: int) -> Path:
        path = tmp_path / f"model-{i}.bin"
        path.write_text(f"model {i}")
        return path

    return source, output


def hold_drain_lock(client: hw.Client) -> _Flock:
    client.outbox.folder.mkdir(parents=True, exist_ok=True)
    lock = _lock(client.outbox.folder / ".lock", 0)
    assert isinstance(lock, _Flock)
    return lock


def assert_tasks_recorded(client: hw.Client, tasks: list[str], outputs: list[Path]) -> None:
    """Each task exactly once: succeeded, read raw's one version, produced its own model version."""
    assert sorted((r.id, r.job, r.status, r.kind) for r in client.runs(orchestrator="fresh")) == sorted(
        (t, f"dag.{t}", "succeeded", "task") for t in tasks
    )
    (raw,) = client.versions("raw")
    models = client.versions("model")
    assert sorted(v.label for v in models) == [f"v{i}" for i in range(len(tasks))]
    by_run = {v.produced_by: v for v in models}
    for task, output in zip(tasks, outputs, strict=True):
        run = client.get_run(task)
        assert (run.inputs, run.outputs) == ([f"raw:{raw.label}"], [f"model:{by_run[task].label}"])
        assert by_run[task].digest == client.content(output, store=False).digest
    assert client.outbox.pending() == [] and client.outbox.dead() == []


def test_a_task_returns_before_delivery_and_its_deliverer_delivers_it(headwater_home: Path, inputs) -> None:
    source, output = inputs
    client = hw.Client()
    held = hold_drain_lock(client)
    try:
        result = finished(run_task("t0", source, output(0)))
        # The task is over; its events are durable in the outbox, none in the store.
        assert result["delivered"] is False
        assert len(client.outbox.pending()) == 2
        assert client.runs() == []
        assert len(deliverers(headwater_home)) == 1
        # No store in the task: no SQLAlchemy, no Alembic, no HTTP client.
        unwanted = ("sqlalchemy", "alembic", "httpx", "headwater.store.sql", "headwater.store.http")
        assert [m for m in result["modules"] if m.startswith(unwanted)] == []  # type: ignore[union-attr]
    finally:
        held.release()
    wait_until(lambda: not deliverers(headwater_home), "the deliverer delivered and exited")
    assert_tasks_recorded(client, ["t0"], [output(0)])
    assert (client.outbox.folder / LOG).read_text() == ""  # nothing went wrong
    client.close()


def test_two_concurrent_tasks_start_one_deliverer_and_record_each_event_once(headwater_home: Path, inputs) -> None:
    source, output = inputs
    client = hw.Client()
    held = hold_drain_lock(client)
    try:
        tasks = [run_task(f"t{i}", source, output(i)) for i in range(2)]
        assert [finished(t)["delivered"] for t in tasks] == [False, False]
        assert len(client.outbox.pending()) == 4
        assert len(deliverers(headwater_home)) == 1
    finally:
        held.release()
    wait_until(lambda: not deliverers(headwater_home), "the deliverer delivered and exited")
    assert_tasks_recorded(client, ["t0", "t1"], [output(0), output(1)])
    client.close()


@pytest.mark.parametrize("step", ["before-commit", "committed"])
def test_a_deliverer_killed_mid_delivery_is_replaced_by_the_next_tasks(
    headwater_home: Path, inputs, tmp_path: Path, step: str
) -> None:
    source, output = inputs
    client = hw.Client()
    held = hold_drain_lock(client)
    try:
        finished(run_task("t0", source, output(0)))
        (first,) = deliverers(headwater_home)
    finally:
        held.release()
    wait_until(lambda: not deliverers(headwater_home), "the first deliverer exited")
    assert_tasks_recorded(client, ["t0"], [output(0)])

    # A task's batches delivered by a deliverer that is killed at `step` (its crash point).
    held = hold_drain_lock(client)
    election = _lock(client.outbox.folder / ELECTION, 0)
    assert isinstance(election, _Flock)
    try:
        finished(run_task("t1", source, output(1)))  # finds the election lock held: starts nobody
        assert deliverers(headwater_home) == [] and len(client.outbox.pending()) == 2
        crashing = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tests.reliability import crash; crash.install()\nfrom headwater.deliverer import main; main()",
                str(election.fd),
            ],
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "HEADWATER_TEST_CRASH": f"{step}:0",
            },
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=(election.fd,),
            start_new_session=True,
        )
    finally:
        os.close(election.fd)  # the deliverer holds it now (unlocking would free its copy too)
        held.release()
    assert crashing.stdout is not None
    assert crashing.stdout.readline().split() == ["crash", step, "0"]
    crashing.kill()
    crashing.wait(30)
    assert len(client.outbox.pending()) == 2  # applied or not, still there
    assert len(client.runs()) == (2 if step == "committed" else 1)

    # The next task finds the election lock free (the dead deliverer's went with it).
    finished(run_task("t2", source, output(2)))
    wait_until(lambda: not deliverers(headwater_home), "the next deliverer delivered and exited")
    assert_tasks_recorded(client, ["t0", "t1", "t2"], [output(0), output(1), output(2)])
    client.close()


def test_a_backend_that_is_down_keeps_the_batches_and_the_task_raises_nothing(headwater_home: Path, inputs) -> None:
    source, output = inputs
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"  # nobody listens there
    result = finished(run_task("t0", source, output(0), HEADWATER_URI=down, HEADWATER_TIMEOUT_S="2"))
    assert result["delivered"] is False
    wait_until(lambda: not deliverers(headwater_home), "the deliverer gave up and exited")
    client = hw.Client(uri=down)
    waiting = [
        RunRecorded.model_validate(e)
        for p in client.outbox.pending()
        for e in json.loads(p.read_bytes())
        if e["kind"] == "run"
    ]
    assert [(e.run_id, e.status) for e in waiting] == [("t0", "running"), ("t0", "succeeded")]
    assert client.outbox.dead() == []
    # One line says why, in the deliverer's log (the task's own output is not the place).
    logged = (client.outbox.folder / LOG).read_text().splitlines()
    assert len(logged) == 1 and "deliverer stopped" in logged[0] and "2 batch(es) wait" in logged[0]


def test_a_read_delivers_what_the_outbox_holds_first(headwater_home: Path, monkeypatch) -> None:
    client = hw.Client()
    client.queue([RunRecorded(run_id="queued", job="dag.queued", status="succeeded")])
    monkeypatch.setenv("HEADWATER_DELIVERY", "inline")
    assert client.runs() == []  # inline: reads go to the store as they always did
    monkeypatch.setenv("HEADWATER_DELIVERY", "background")
    assert (client.get_run("queued").job, client.get_run("queued").status) == ("dag.queued", "succeeded")
    assert client.outbox.pending() == []
    client.close()


def test_a_deliverer_that_cannot_start_is_one_line_and_the_batch_waits(headwater_home: Path, inputs) -> None:
    source, output = inputs
    client = hw.Client()
    (client.outbox.folder / LOG).mkdir(parents=True)  # its log cannot be opened: no deliverer starts
    task = run_task("t0", source, output(0))
    out, err = task.communicate(timeout=120)
    assert task.returncode == 0 and json.loads(out)["delivered"] is False
    (line,) = err.strip().splitlines()  # one line, nothing raised
    assert "the deliverer for" in line and "did not start" in line and "`headwater sync`" in line
    assert deliverers(headwater_home) == []
    assert len(client.outbox.pending()) == 2
    synced = client.sync()  # what `headwater sync` does
    assert (synced.delivered, synced.pending, synced.dead) == (2, 0, {})
    assert_tasks_recorded(client, ["t0"], [output(0)])
    client.close()
