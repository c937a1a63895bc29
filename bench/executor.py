"""What headwater adds per task process under real executors, beside the OpenLineage provider.

    python bench/executor.py [--orchestrators airflow,dagster] [--tasks 12] [--repeat 3]

#17's target: a fresh task process pays at most 50 ms for importing headwater and recording the
task's first batch durably. bench/fresh_process.py measures that outside any orchestrator; this
runs the real ones, each task in a process of its own, set-ups alternated round by round (the
order rotated) so drift hits them alike:

  without      no lineage observer (HEADWATER_DISABLED=1; the OpenLineage provider disabled)
  headwater    headwater, inline delivery to SQLite in a fresh HEADWATER_HOME
  background   headwater with HEADWATER_DELIVERY=background (the outbox, then a deliverer process)
  openlineage  Airflow only: apache-airflow-providers-openlineage, file transport, headwater off
  both         Airflow only: headwater background and the OpenLineage provider together

Airflow 3.3: a fresh AIRFLOW_HOME with SQLite metadata (LocalExecutor accepts it in Airflow 3,
where task processes reach the database only through the api-server's execution API); the
api-server and the dag-processor run for the whole bench (observers off: headwater and the
provider record nothing there), the scheduler with LocalExecutor is started per set-up and round
in that set-up's environment, which its task processes inherit. The DAG is a chain of N
PythonOperator tasks; task i reads file asset i-1 (its inlet) and writes asset i (its outlet).
Parallelism 1: one task process at a time, so consecutive tasks never share the two CPUs.
Per task, from what Airflow records: `process`, start_date (the supervisor sets it right after
the fork) to the task process's last log line (the end of `finalize`, after the success hooks:
the whole fresh process but its interpreter's exit); `duration`, end_date - start_date from the
metadata DB (the task's end is taken before the success hooks, so this holds the process start,
the start hooks with headwater's import and first durable batch, and the task); `gap`, that last
log line to the next task's start_date (the exit, the supervisor, the scheduler's passes with
its idle sleep set to 0.1 s instead of 1 s, the next fork). The supervisor's "Workload finished"
duration is kept in --json only: Airflow 3.3's supervisor, when the task process has closed its
sockets but cannot be reaped yet, sleeps in select() until its next heartbeat (up to
[workers] min_heartbeat_interval, 5 s by default, set to 1 s here), a race hit by a varying
share of tasks in every set-up; `waits` counts them.

Dagster 1.13: a job of N ops in a chain with the multiprocess executor (spawn: every step a
fresh interpreter; max_concurrent 1), FilesystemIOManager alone or wrapped by
HeadwaterIOManager; a persistent DagsterInstance per run. Per step, from the run's event log:
`period`, one step's STEP_WORKER_STARTING to the next one's (the whole step process, teardown
and exit included, plus the executor's polling); `duration`, STEP_WORKER_STARTING to
STEP_SUCCESS (spawn, imports, the step; not the teardown).

The first task or step of each run is left out (it warms the executor's worker), and one
uncounted `without` run comes before the rounds (it warms the api-server). Medians over
tasks, then over rounds; added = minus `without`. Every run is checked: headwater's graph, once
the deliverer has delivered, holds exactly N succeeded task runs under one succeeded container
run, each with one output version and the previous task's output as its input (exact edges);
OpenLineage's file holds a START and a COMPLETE event per task.

Each orchestrator runs in its own environment: Airflow in .nox/airflow-bench (made by
bench/airflow_overhead.py's ensure_env: headwater[airflow] and the provider), Dagster in
.nox/dagster (`nox -s dagster --install-only`). Bytecode is compiled once into a cache of this
bench's own (.nox/executor-pycache), as an installed package has it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_overhead import ensure_env
from airflow_overhead import setup_env as airflow_setup_env
from fresh_process import delivered

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {
    "airflow": ("without", "background", "headwater", "openlineage", "both"),
    "dagster": ("without", "background", "headwater"),
}
HEADWATER_SETUPS = ("headwater", "background", "both")
PYCACHE = ROOT / ".nox" / "executor-pycache"

DAG_FILE = """
import os
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset

N = int(os.environ["HW_BENCH_TASKS"])
DATA = Path(os.environ["HW_BENCH_DATA"])


def path(i):
    return DATA / ("in.txt" if i < 0 else f"out-{i:03d}.txt")


def work(i):
    path(i).write_text(path(i - 1).read_text() + f"step {i}\\n")


with DAG("hw_exec", schedule=None, catchup=False) as dag:
    previous = None
    for i in range(N):
        task = PythonOperator(
            task_id=f"step_{i:03d}",
            python_callable=work,
            op_kwargs={"i": i},
            inlets=[Asset(path(i - 1).as_uri())],
            outlets=[Asset(path(i).as_uri())],
        )
        if previous is not None:
            previous >> task
        previous = task
"""


# -- checks, run in the orchestrator's interpreter ----------------------------------------------


def check_graph(tasks: int, first_inputs: int) -> int:
    """headwater's graph of one run is exactly the chain; returns the number of versions."""
    import headwater as hw

    runs = hw.runs(limit=None)
    containers = [r for r in runs if r.kind == "container"]
    chain = sorted((r for r in runs if r.kind == "task"), key=lambda r: r.job)
    assert len(containers) == 1 and containers[0].status == "succeeded", [(r.job, r.status) for r in containers]
    assert [r.job for r in chain] == [f"hw_exec.step_{i:03d}" for i in range(tasks)], [r.job for r in chain]
    for r in chain:
        assert r.status == "succeeded" and r.parent_id == containers[0].id, (r.job, r.status, r.parent_id)
        assert len(r.outputs) == 1 and not r.inexact, (r.job, r.outputs, r.inexact)
    assert len(chain[0].inputs) == first_inputs, chain[0].inputs
    for previous, r in itertools.pairwise(chain):
        assert r.inputs == previous.outputs, (r.job, r.inputs, previous.outputs)
    versions = {ref for r in chain for ref in (*r.inputs, *r.outputs)}
    assert len(versions) == tasks + first_inputs, sorted(versions)
    return len(versions)


def check_openlineage(path: Path, tasks: int) -> int:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kinds = {(e["job"]["name"], e["eventType"]) for e in events if e["job"]["name"].startswith("hw_exec.step_")}
    want = {(f"hw_exec.step_{i:03d}", kind) for i in range(tasks) for kind in ("START", "COMPLETE")}
    assert kinds == want, f"OpenLineage wrote {sorted(kinds)}, not a START and a COMPLETE per task"
    return len(events)


# -- Airflow: the parent drives the real scheduler ------------------------------------------------


class Airflow:
    def __init__(self, python: Path, home: Path, tasks: int) -> None:
        self.airflow = str(python.with_name("airflow"))
        self.python = python
        self.home = home
        self.tasks = tasks
        self.data = home / "data"  # one folder: the assets' URIs are in the DAG the api-server knows
        self.db = home / "airflow" / "airflow.db"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (home / "dags").mkdir(parents=True)
        (home / "dags" / "hw_exec.py").write_text(DAG_FILE)
        self.data.mkdir()
        self.base = child_env(
            AIRFLOW_HOME=str(home / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="1",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            # The scheduler's loop sleeps this long when idle (default 1 s): shorter, so the period
            # between two tasks is less quantised by it.
            AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.1",
            # A supervisor that loses the race described above sleeps this long (default 5 s): with
            # parallelism 1 the next task waits for it.
            AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL="1",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API_AUTH__JWT_SECRET=os.urandom(16).hex(),
            HW_BENCH_TASKS=str(tasks),
            HW_BENCH_DATA=str(self.data),
        )
        self.services: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        quiet = airflow_setup_env(self.base, "without", self.home)
        subprocess.run([self.airflow, "db", "migrate"], env=quiet, check=True, capture_output=True)
        for name in ("api-server", "dag-processor"):
            with open(self.home / f"{name}.log", "wb") as log:
                self.services.append(subprocess.Popen([self.airflow, name], env=quiet, stdout=log, stderr=log))
        deadline = time.monotonic() + 300
        while not self.query("SELECT 1 FROM dag WHERE dag_id = 'hw_exec'"):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.services):
                raise SystemExit(f"the dag-processor did not load the DAG; see {self.home}/dag-processor.log")
            time.sleep(1)

    def stop(self) -> None:
        for proc in self.services:
            stop(proc)

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        for _ in range(50):  # the scheduler may hold a write lock for an instant
            try:
                with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5) as conn:
                    return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):
                    return []
                time.sleep(0.1)
        raise SystemExit(f"cannot read {self.db}")

    def schedule(self, setup: str, run_id: str, env: dict[str, str], log_path: Path) -> tuple[str, list[float]]:
        """A scheduler in the set-up's environment until the DAG run and its last task process end;
        the run's state and the CPU time of each task process, in order."""
        with open(log_path, "wb") as log:
            # A session of its own: the OpenLineage provider's process pool outlives a stopped
            # scheduler, so the whole group goes when it stops (a deliverer is in a session of its own).
            scheduler = subprocess.Popen(
                [self.airflow, "scheduler"], env=env, stdout=log, stderr=log, start_new_session=True
            )
        try:
            with ChildCPU(lambda: worker_of(scheduler.pid)) as cpu:
                deadline = time.monotonic() + 60 + 20 * self.tasks
                while True:
                    state = self.query("SELECT state FROM dag_run WHERE run_id = ?", run_id)
                    # The DAG run ends when the last task has reported success; its process may still
                    # be running its success hook: wait for its supervisor's last word too.
                    ended = state and state[0][0] in ("success", "failed") and len(workloads(log_path)) >= self.tasks
                    if ended and len(cpu.reaped) >= self.tasks:
                        # A few more loops before the scheduler is stopped: once in ~20 headwater runs
                        # stopped at once, the DAG run's container stayed `running` in headwater's
                        # graph (its hook in the scheduler not called, or its batch not written).
                        time.sleep(3)
                        return str(state[0][0]), cpu.reaped
                    if time.monotonic() > deadline or scheduler.poll() is not None:
                        raise SystemExit(f"{setup}: the DAG run did not end; see {log_path}")
                    time.sleep(0.2)
        finally:
            stop(scheduler)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(scheduler.pid, signal.SIGKILL)

    def trial(self, setup: str, round_: int) -> dict[str, Any]:
        work = self.home / f"{setup}-{round_}"
        work.mkdir()
        for old in self.data.glob("out-*.txt"):
            old.unlink()
        (self.data / "in.txt").write_text(f"{setup} {round_}\n")  # new content: new versions
        env = airflow_setup_env(self.base, "background" if setup == "both" else setup, work)
        if setup == "both":
            with_ol = airflow_setup_env(self.base, "openlineage", work)
            env.update({k: v for k, v in with_ol.items() if k.startswith("AIRFLOW__OPENLINEAGE__")})
        run_id = f"bench__{setup}__{round_}"
        subprocess.run(
            [self.airflow, "dags", "trigger", "hw_exec", "--run-id", run_id],
            env=airflow_setup_env(self.base, "without", self.home),
            check=True,
            capture_output=True,
        )
        log_path = work / "scheduler.log"
        with Deliverers(work / "hwhome") as deliverers:
            state, cpu = self.schedule(setup, run_id, env, log_path)
            if setup in HEADWATER_SETUPS:
                delivered(work / "hwhome")
        assert state == "success", f"{setup}: DAG run {state}; see {log_path}"
        rows = self.query(
            "SELECT task_id, id, state, start_date, end_date FROM task_instance WHERE run_id = ? ORDER BY task_id",
            run_id,
        )
        assert len(rows) == self.tasks and all(r[2] == "success" for r in rows), rows
        took = workloads(log_path)
        logs = self.home / "airflow" / "logs" / "dag_id=hw_exec" / f"run_id={run_id}"
        start = [parse_time(r[3]) for r in rows]
        end = [parse_time(r[4]) for r in rows]
        last = [last_logged(logs / f"task_id={r[0]}" / "attempt=1.log") for r in rows]
        workload = [took[r[1].replace("-", "")] for r in rows]
        result: dict[str, Any] = {
            "lifetime_ms": median_ms(b - a for a, b in zip(start[1:], last[1:], strict=True)),
            "duration_ms": median_ms(b - a for a, b in zip(start[1:], end[1:], strict=True)),
            "gap_ms": median_ms(start[i + 1] - last[i] for i in range(1, self.tasks - 1)),
            "cpu_ms": median_ms(cpu[1 : self.tasks]),
            "workload_ms": median_ms(workload[1:]),
            # Tasks whose supervisor slept until its next heartbeat after the process had closed its
            # sockets but before it could be reaped (Airflow's, not the observers': see the docstring).
            "waits": sum(w - (b - a) > 0.5 for w, a, b in zip(workload[1:], start[1:], last[1:], strict=True)),
        }
        if setup in HEADWATER_SETUPS:
            result["deliverers"] = len(deliverers.cpu)
            result["deliverer_cpu_ms"] = sum(deliverers.cpu.values()) * 1000
            checked = subprocess.run(
                [str(self.python), __file__, "--check-graph", str(self.tasks), "--first-inputs", "1"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if checked.returncode != 0:
                sys.stderr.write(checked.stderr[-4000:])
                raise SystemExit(f"{setup}: headwater's graph is not the chain it ran")
            result["versions"] = int(checked.stdout.strip())
        if setup in ("openlineage", "both"):
            result["ol_events"] = check_openlineage(work / "ol.jsonl", self.tasks)
        return result


def workloads(log: Path) -> dict[str, float]:
    """The supervisors' "Workload finished" durations in a scheduler's log, by task instance id."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        if "Workload finished" in line and "ExecuteTask" in line:
            took, ti = re.search(r"duration=([\d.e-]+)", line), re.search(r"workload_id=([\w-]+)", line)
            if took and ti:
                found[ti.group(1).replace("-", "")] = float(took.group(1))  # the DB keeps it without dashes
    return found


def last_logged(log: Path) -> float:
    """When a task process logged its last line: the end of `finalize`, after the success hooks."""
    return parse_time(json.loads(log.read_text().strip().splitlines()[-1])["timestamp"])


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- Dagster: a child in the Dagster environment runs the job -------------------------------------


def dagster_trial(setup: str, tasks: int, work: Path) -> dict[str, Any]:
    import dagster as dg
    import executor_dagster_job

    (work / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(work / "dagster"))
    result = dg.execute_job(dg.reconstructable(executor_dagster_job.bench_job), instance=instance)
    assert result.success, f"{setup}: the Dagster run failed"
    seen: dict[tuple[str, str], float] = {}
    for entry in instance.all_logs(result.run_id):
        if entry.dagster_event is not None and entry.step_key:
            seen.setdefault((entry.step_key, entry.dagster_event.event_type_value), entry.timestamp)
    steps = [f"step_{i:03d}" for i in range(tasks)]
    starting = [seen[(s, "STEP_WORKER_STARTING")] for s in steps]
    out: dict[str, Any] = {
        "period_ms": median_ms(b - a for a, b in itertools.pairwise(starting[1:])),
        "duration_ms": median_ms(seen[(s, "STEP_SUCCESS")] - seen[(s, "STEP_WORKER_STARTING")] for s in steps[1:]),
    }
    instance.dispose()
    if setup in HEADWATER_SETUPS:
        from headwater.api import default_client
        from headwater.deliverer import wait_delivered

        assert wait_delivered(default_client()), "the deliverer did not deliver the outbox"
        out["versions"] = check_graph(tasks, first_inputs=0)
    return out


def dagster_run(python: Path, home: Path, tasks: int, setup: str, round_: int) -> dict[str, Any]:
    work = home / f"dagster-{setup}-{round_}"
    work.mkdir(parents=True)
    env = child_env(
        HW_BENCH_SETUP=setup,
        HW_BENCH_TASKS=str(tasks),
        HW_BENCH_DATA=str(work / "data"),
        HEADWATER_HOME=str(work / "hwhome"),
        DAGSTER_HOME=str(work / "dagster"),
    )
    if setup == "without":
        env["HEADWATER_DISABLED"] = "1"
    if setup == "background":
        env["HEADWATER_DELIVERY"] = "background"
    with Deliverers(work / "hwhome") as deliverers, open(work / "child.log", "wb") as log:
        child = subprocess.Popen(
            [str(python), __file__, "--dagster-child", setup, "--tasks", str(tasks), "--work", str(work)],
            env=env,
            cwd=Path(__file__).parent,  # where the step processes find the job's module
            stdout=log,
            stderr=log,
        )
        with ChildCPU(child.pid) as cpu:  # its children: the step processes, in order
            child.wait(1800)
    if child.returncode != 0 or not (work / "result.json").is_file():
        sys.stderr.write((work / "child.log").read_text(errors="replace")[-6000:])
        raise SystemExit(f"dagster / {setup}: the child run failed")
    result: dict[str, Any] = json.loads((work / "result.json").read_text())
    result["cpu_ms"] = median_ms(cpu.reaped[1:tasks])
    result["reaped"] = cpu.reaped
    if setup in HEADWATER_SETUPS:
        result["deliverers"] = len(deliverers.cpu)
        result["deliverer_cpu_ms"] = sum(deliverers.cpu.values()) * 1000
    return result


# -- shared -------------------------------------------------------------------------------------


class _Watcher:
    """A thread that calls `look()` every `interval` seconds while the `with` block runs."""

    interval = 0.01

    def __init__(self) -> None:
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Any:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            self.look()

    def look(self) -> None:
        raise NotImplementedError


class ChildCPU(_Watcher):
    """The CPU time of each child process one process reaps, one at a time: the cutime + cstime
    of its /proc stat, sampled every 10 ms, grows by a child's whole CPU time when it is reaped.
    Less bent by a busy machine than wall time; a deliverer is not anyone's reaped child here."""

    def __init__(self, pid: Any) -> None:
        super().__init__()
        self.pid = pid  # an int, or a function that finds it (None until it exists)
        self.reaped: list[float] = []
        self.found: int | None = None
        self.last = 0

    def look(self) -> None:
        self.found = self.found or (self.pid() if callable(self.pid) else self.pid)
        try:
            with open(f"/proc/{self.found}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError, TypeError):
            return
        total = int(fields[13]) + int(fields[14])  # cutime, cstime: fields 16 and 17
        if total != self.last:
            self.reaped.append((total - self.last) / os.sysconf("SC_CLK_TCK"))
            self.last = total


def worker_of(parent: int) -> int | None:
    """The pid of the LocalExecutor worker the scheduler `parent` forked (parallelism 1: one)."""
    for entry in os.scandir("/proc"):
        try:
            with open(f"/proc/{entry.name}/stat") as stat, open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                if stat.read().rsplit(")", 1)[1].split()[1] == str(parent) and cmdline.read().startswith(
                    b"airflow worker"
                ):
                    return int(entry.name)
        except (OSError, IndexError):
            continue
    return None


class Deliverers(_Watcher):
    """The deliverer processes started for one HEADWATER_HOME while it is open, and the CPU time
    each used (every 20 ms: a deliverer lives at least its 2 s linger)."""

    interval = 0.02

    def __init__(self, home: Path) -> None:
        super().__init__()
        self.marker = f"HEADWATER_HOME={home}".encode()
        self.cpu: dict[int, float] = {}  # pid -> user + sys seconds, last seen
        # Other processes, by when first seen: looked at again for a second, as a deliverer's
        # cmdline is its parent's between the fork and the exec.
        self.others: dict[int, float] = {}

    def look(self) -> None:
        now = time.monotonic()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or now - self.others.get(int(entry.name), now) > 1:
                continue
            pid = int(entry.name)
            try:
                if pid not in self.cpu:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        ours = b"headwater.deliverer" in f.read()
                    if ours:
                        with open(f"/proc/{pid}/environ", "rb") as f:
                            ours = self.marker in f.read().split(b"\0")
                    if not ours:
                        self.others.setdefault(pid, now)
                        continue
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
            except (OSError, IndexError):  # gone meanwhile, or not ours to read
                continue


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HEADWATER_", "OPENLINEAGE", "DAGSTER"))}
    # Bytecode as an installed package has it, compiled before the first round (compile_bytecode).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPYCACHEPREFIX=str(PYCACHE), PYTHONUNBUFFERED="1", **extra)
    return env


def compile_bytecode(python: Path) -> None:
    """Compile the environment and headwater once, so no round pays for it (or the first more)."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "-j", "2", site, str(ROOT / "core"), str(ROOT / "adapters")],
        env=child_env(),
        capture_output=True,
        check=False,  # a stray unparsable test file in some package must not stop the bench
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def median_ms(seconds: Any) -> float:
    return statistics.median(seconds) * 1000


def dagster_env(path: Path) -> Path:
    python = path / "bin" / "python"
    probe = "import dagster, headwater.adapters.dagster"
    if not python.exists() or subprocess.run([python, "-c", probe], capture_output=True, check=False).returncode:
        raise SystemExit(f"no Dagster environment at {path}: make it with `nox -s dagster --install-only`")
    return python


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orchestrators", default="airflow,dagster")
    parser.add_argument("--tasks", type=int, default=12, help="tasks (Airflow) or ops (Dagster) in the chain")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; every set-up runs once a round")
    parser.add_argument("--setups", help="a subset of each orchestrator's set-ups, `without` included")
    parser.add_argument("--airflow-env", type=Path, default=ROOT / ".nox" / "airflow-bench")
    parser.add_argument("--dagster-env", type=Path, default=ROOT / ".nox" / "dagster")
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    parser.add_argument("--dagster-child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--check-graph", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-inputs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check_graph:
        print(check_graph(args.check_graph, args.first_inputs))
        return 0
    if args.dagster_child:
        result = dagster_trial(args.dagster_child, args.tasks, args.work)
        (args.work / "result.json").write_text(json.dumps(result))
        return 0
    if args.tasks < 4:
        parser.error("--tasks: at least 4 (the first task is left out, and medians need a few)")

    orchestrators = [o.strip() for o in args.orchestrators.split(",") if o.strip()]
    if not set(orchestrators) <= set(SETUPS):
        parser.error(f"--orchestrators: a subset of {','.join(SETUPS)}")
    wanted = set(args.setups.split(",")) if args.setups else None
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the services are stopped on the way out
    loads: list[tuple[float, float, float]] = [os.getloadavg()]
    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="headwater-executor-bench-"))
    kept = False
    try:
        for orchestrator in orchestrators:
            setups = tuple(s for s in SETUPS[orchestrator] if wanted is None or s in wanted)
            if "without" not in setups:
                parser.error("--setups must include `without`")
            if orchestrator == "airflow":
                python = ensure_env(args.airflow_env, openlineage=True)
                compile_bytecode(python)
                airflow = Airflow(python, home / "airflow", args.tasks)
                airflow.start()
                run = airflow.trial
            else:
                python = dagster_env(args.dagster_env)
                compile_bytecode(python)

                def run(setup: str, round_: int, python: Path = python) -> dict[str, Any]:
                    return dagster_run(python, home, args.tasks, setup, round_)

            try:
                # Uncounted: the api-server's and the workers' first requests import and warm what later
                # ones reuse (the very first Airflow run here took seconds per task).
                warm = run("without", -1)
                print(f"  {orchestrator} warm-up (without, not counted): {warm}", file=sys.stderr)
                for round_ in range(args.repeat):
                    order = setups[round_ % len(setups) :] + setups[: round_ % len(setups)]
                    for setup in order:
                        figures = run(setup, round_)
                        figures["load"] = os.getloadavg()[0]
                        results.setdefault((orchestrator, setup), []).append(figures)
                        shown = " ".join(f"{k} {v:.1f}" for k, v in figures.items() if k.endswith("_ms"))
                        print(
                            f"  {orchestrator} round {round_ + 1} {setup:12} {shown}  load {figures['load']:.2f}",
                            file=sys.stderr,
                        )
                    loads.append(os.getloadavg())
            finally:
                if orchestrator == "airflow":
                    airflow.stop()
    except (SystemExit, AssertionError):
        kept = True  # the logs and stores of a failed check, to look at
        print(f"kept {home}", file=sys.stderr)
        raise
    finally:
        if not kept:
            shutil.rmtree(home, ignore_errors=True)
    report(results, orchestrators, args, loads, time.monotonic() - started)
    if args.json:
        args.json.write_text(json.dumps({f"{o}/{s}": r for (o, s), r in results.items()}, indent=1))
    return 0


def report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    orchestrators: list[str],
    args: argparse.Namespace,
    loads: list[tuple[float, float, float]],
    seconds: float,
) -> None:
    def med(orchestrator: str, setup: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(orchestrator, setup)])

    print(
        f"Task processes under real executors: a chain of {args.tasks}, median over tasks then over "
        f"{args.repeat} rounds ({seconds:.0f} s)"
    )
    print(
        f"{'executor':21} {'set-up':11} {'process':>7} {'added':>6} {'ratio':>5} {'cpu':>6} {'added':>6} "
        f"{'duration':>8} {'added':>6} {'gap':>6} {'added':>6} {'waits':>5}   checked"
    )
    columns = {  # process, cpu, duration, gap
        "airflow": ("lifetime_ms", "cpu_ms", "duration_ms", "gap_ms"),
        "dagster": ("period_ms", "cpu_ms", "duration_ms", None),
    }
    for orchestrator in orchestrators:
        name = "Airflow LocalExecutor" if orchestrator == "airflow" else "Dagster multiprocess"
        keys = columns[orchestrator]
        for setup in SETUPS[orchestrator]:
            if (orchestrator, setup) not in results:
                continue
            cells = []
            for key, width in zip(keys, (7, 6, 8, 6), strict=True):
                if key is None:
                    cells.append(f"{'':{width}} {'':>6}")
                    continue
                value, base = med(orchestrator, setup, key), med(orchestrator, "without", key)
                cells.append(f"{value:{width}.0f} {'-' if setup == 'without' else f'{value - base:+.0f}':>6}")
                if key == keys[0]:
                    cells.append(f"{value / base:5.2f}")
            runs = results[(orchestrator, setup)]
            cells.append(f"{sum(r['waits'] for r in runs):5}" if "waits" in runs[0] else f"{'':5}")
            checked = []
            if "versions" in runs[0]:
                checked.append(f"graph exact ({runs[0]['versions']} versions a run)")
            if "deliverers" in runs[0] and any(r["deliverers"] for r in runs):
                cpu = statistics.median(r["deliverer_cpu_ms"] / r["deliverers"] for r in runs if r["deliverers"])
                counts = ", ".join(str(r["deliverers"]) for r in runs)
                checked.append(f"deliverers a run: {counts} ({cpu:.0f} ms CPU each)")
            if "ol_events" in runs[0]:
                checked.append(f"{runs[0]['ol_events']} OpenLineage events a run")
            print(f"{name:21} {setup:11} {' '.join(cells)}   {', '.join(checked) or '-'}")
    print("process: the whole task process, wall time (Airflow: start_date to its last log line, after the")
    print("success hooks; Dagster: one step's worker start to the next one's); cpu: its CPU time, user + sys, as")
    print("the process that reaps it counts it; duration: Airflow end_date - start_date (no success hook),")
    print("Dagster worker start to STEP_SUCCESS; gap: Airflow's last log line to the next start_date.")
    print("ms; added: minus `without`; ratio: process / without's. Target (#17): <= 50 ms added per process.")
    print("waits: tasks (all rounds) whose supervisor slept until its next heartbeat before reaping the process.")
    print("load average (1 min) at the start and after each round: " + ", ".join(f"{x[0]:.2f}" for x in loads))


if __name__ == "__main__":
    raise SystemExit(main())
