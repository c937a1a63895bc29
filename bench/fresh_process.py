"""What headwater adds to a fresh task process, beside the OpenLineage client, in one run.

    python bench/fresh_process.py [--runs 9] [--preload bare,airflow,dagster,prefect]

Real executors run every task in a process of its own (Airflow's LocalExecutor and Celery
workers, Dagster's multiprocess executor, Prefect's process workers), so whatever headwater
imports and opens is paid again per task. This runs fresh `python -c` processes that do what such
a task process does, alternated round by round so drift hits every set-up alike:

  baseline     the orchestrator's own modules (the preload) and nothing else
  headwater    the preload, then `import headwater.observe`, the task's start batch made durable
               in the outbox (deliver=False, as the Airflow adapter writes it), then its end batch
               delivered to SQLite (the store opened in this process)
  background   as `headwater`, with HEADWATER_DELIVERY=background: the end batch is made durable
               in the outbox and handed to a deliverer process the task starts (the parent waits
               for that deliverer to deliver and exit before the next child, so every child
               starts one: the worst case; a task that finds one running starts none)
  openlineage  the preload, then openlineage-python's client with the file transport, a START and
               a COMPLETE RunEvent (the client's part of the provider's work; skipped where the
               package is not installed)

Preloads (what a task process of that orchestrator has already imported before any listener
runs): `bare` nothing; `airflow` airflow.sdk and the task runner (pydantic, SQLAlchemy, httpx
and the OpenLineage provider come with it); `dagster` dagster and SQLAlchemy (a step process
writes its events through the instance's SQLite storage); `prefect` prefect (pydantic, httpx).
A preload whose package is not importable in this interpreter is skipped.

Columns (medians over the runs, milliseconds): `import` (headwater.observe and the API),
`durable` (the start batch fsynced into the outbox), `delivered` (the end batch in the store,
which opens it; for `background`, the end batch durable and its deliverer started),
`in-process` (their sum, timed inside the child), and `process cpu +` (the
child's user+sys CPU time minus the baseline's: the whole cost, the interpreter's exit
included, and less bent by other load on the machine than wall time; a deliverer's own CPU is
not in it: it runs in a session of its own, after the task). Each headwater child
reports what it loaded; the parent checks that every task run landed in the store and that the
OpenLineage file holds two events per run, so a silent no-op cannot look fast.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOADS = {
    "bare": "",
    "airflow": "import airflow.sdk\nfrom airflow.sdk.execution_time import task_runner",
    "dagster": "import dagster\nimport sqlalchemy",
    "prefect": "import prefect",
}
SETUPS = ("baseline", "headwater", "background", "openlineage")

# Runs inside the child after its preload; prints one JSON line of timings.
CHILD = {
    "baseline": """
import json
print(json.dumps({}))
""",
    "headwater": """
import json, os, sys, time
started = time.perf_counter()
import headwater.api
from headwater.observe import now, observer_for
imported = time.perf_counter()
observer = observer_for("bench")
run = headwater.api.run_id("fresh-process", os.getpid(), time.time_ns())
with observer.batch("task start", deliver=False) as b:
    b.run(run, job="bench.task", job_namespace="bench", kind="task", status="running", started_at=now())
durable = time.perf_counter()
with observer.batch("task end") as b:
    b.run(run, job="bench.task", job_namespace="bench", kind="task", status="succeeded", ended_at=now())
delivered = time.perf_counter()
assert b.delivered is (os.environ.get("HEADWATER_DELIVERY") != "background"), b.delivered
print(json.dumps({
    "import_ms": (imported - started) * 1000,
    "durable_ms": (durable - imported) * 1000,
    "delivered_ms": (delivered - durable) * 1000,
    "in_process_ms": (delivered - started) * 1000,
    "loaded": sorted(m for m in ("pydantic", "sqlalchemy", "alembic", "httpx") if m in sys.modules),
}))
""",
    "openlineage": """
import json, os, sys, time, uuid
from datetime import datetime, timezone
started = time.perf_counter()
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.transport.file import FileConfig, FileTransport
imported = time.perf_counter()
client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=os.environ["HW_BENCH_OL"], append=True)))
run, job = Run(runId=str(uuid.uuid4())), Job(namespace="bench", name="bench.task")
def emit(state):
    client.emit(RunEvent(eventType=state, eventTime=datetime.now(timezone.utc).isoformat(), run=run, job=job,
                         producer="https://headwater.dev/bench"))
emit(RunState.START)
durable = time.perf_counter()
emit(RunState.COMPLETE)
delivered = time.perf_counter()
print(json.dumps({
    "import_ms": (imported - started) * 1000,
    "durable_ms": (durable - imported) * 1000,
    "delivered_ms": (delivered - durable) * 1000,
    "in_process_ms": (delivered - started) * 1000,
}))
""",
}


def importable(python: str, code: str) -> bool:
    return subprocess.run([python, "-c", code], capture_output=True, check=False, timeout=600).returncode == 0


def child_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "OPENLINEAGE"))}
    # Bytecode as an installed package has it (pip compiles it; PYTHONDONTWRITEBYTECODE would make
    # every import compile its source again), kept apart from the environment's own files.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        HEADWATER_HOME=str(work / "hwhome"),
        HW_BENCH_OL=str(work / "ol.jsonl"),
        PYTHONPYCACHEPREFIX=str(work / "pycache"),
        AIRFLOW_HOME=str(work / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        DAGSTER_HOME=str(work / "dagster"),
        PREFECT_HOME=str(work / "prefect"),
    )
    (work / "dagster").mkdir(parents=True, exist_ok=True)
    return env


def run_child(python: str, preload: str, setup: str, env: dict[str, str]) -> dict[str, object]:
    code = PRELOADS[preload] + "\n" + CHILD["headwater" if setup == "background" else setup]
    if setup == "background":
        env = {**env, "HEADWATER_DELIVERY": "background"}
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{preload} / {setup}: the child failed")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu_ms"] = (
        (after.children_user - before.children_user) + (after.children_system - before.children_system)
    ) * 1000
    result["wall_ms"] = wall * 1000
    if setup == "background":
        delivered(Path(env["HEADWATER_HOME"]))
    return result


def delivered(home: Path, timeout: float = 120.0) -> None:
    """Until the outbox is empty and its deliverer has exited (its election lock is free)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folders = list((home / "outbox").glob("*/"))
        if not any(p.suffix == ".json" for f in folders for p in f.iterdir()) and all(map(lock_free, folders)):
            return
        time.sleep(0.02)
    raise SystemExit(f"the deliverer of {home} did not deliver within {timeout:g}s")


def lock_free(folder: Path) -> bool:
    import fcntl

    fd = os.open(folder / ".deliverer.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing the descriptor also drops the lock just taken
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="processes per set-up and preload (after one warm-up)")
    parser.add_argument("--preload", default=",".join(PRELOADS), help=f"a subset of {','.join(PRELOADS)}")
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose packages are measured")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="headwater-fresh-"))
    try:
        env = child_env(work)
        preloads = [p.strip() for p in args.preload.split(",") if p.strip()]
        if unknown := set(preloads) - set(PRELOADS):
            parser.error(f"unknown preload(s): {', '.join(sorted(unknown))}")
        preloads = [p for p in preloads if importable(args.python, PRELOADS[p] or "pass")]
        setups = [s for s in SETUPS if s != "openlineage" or importable(args.python, "import openlineage.client")]
        results: dict[tuple[str, str], list[dict[str, object]]] = {}
        for preload in preloads:
            for setup in setups:  # warm-up: bytecode written, the store made and migrated
                run_child(args.python, preload, setup, env)
            for round_ in range(args.runs):
                order = setups[round_ % len(setups) :] + setups[: round_ % len(setups)]
                for setup in order:
                    results.setdefault((preload, setup), []).append(run_child(args.python, preload, setup, env))
                print(f"  {preload}: round {round_ + 1}/{args.runs}", file=sys.stderr)
        check(args.python, env, work, results, preloads, setups)
        report(results, preloads, setups, args)
        if args.json:
            args.json.write_text(json.dumps({f"{p}/{s}": r for (p, s), r in results.items()}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def check(
    python: str,
    env: dict[str, str],
    work: Path,
    results: dict[tuple[str, str], list[dict[str, object]]],
    preloads: list[str],
    setups: list[str],
) -> None:
    """Every headwater child's task run is in the store; every OpenLineage child wrote two events."""
    # Each preload's runs and warm-up, delivered inline or by the deliverer.
    expected = sum(len(results[(p, s)]) + 1 for p in preloads for s in ("headwater", "background") if s in setups)
    count = subprocess.run(
        [python, "-c", "import headwater as hw; print(len(hw.runs(orchestrator='bench', status='succeeded')))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = int(count.stdout.strip())
    assert found == expected, f"headwater recorded {found} task runs, not {expected}"
    if "openlineage" in setups:
        lines = [line for line in (work / "ol.jsonl").read_text().splitlines() if line.strip()]
        want = 2 * sum(len(results[(p, "openlineage")]) + 1 for p in preloads)
        assert len(lines) == want, f"OpenLineage wrote {len(lines)} events, not {want}"


def report(
    results: dict[tuple[str, str], list[dict[str, object]]],
    preloads: list[str],
    setups: list[str],
    args: argparse.Namespace,
) -> None:
    def median(preload: str, setup: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[(preload, setup)])  # type: ignore[arg-type]  # JSON numbers

    load = os.getloadavg()
    print(f"\nFresh task processes: median of {args.runs} per set-up, load average {load[0]:.2f} {load[1]:.2f}")
    columns = ("import", "durable", "delivered", "in-process", "process cpu +")
    print(f"{'preload':9} {'set-up':12} " + " ".join(f"{c:>{max(8, len(c))}}" for c in columns))
    for preload in preloads:
        base_cpu = median(preload, "baseline", "cpu_ms")
        for setup in setups:
            if setup == "baseline":
                print(f"{preload:9} {setup:12} {'':>8} {'':>8} {'':>9} {'':>10} {base_cpu:10.0f} ms")
                continue
            added = median(preload, setup, "cpu_ms") - base_cpu
            timed = [
                median(preload, setup, key) for key in ("import_ms", "durable_ms", "delivered_ms", "in_process_ms")
            ]
            cells = f"{timed[0]:8.1f} {timed[1]:8.1f} {timed[2]:9.1f} {timed[3]:10.1f}"
            print(f"{preload:9} {setup:12} {cells} {added:+10.0f} ms")
        if "openlineage" in setups:
            for setup in ("headwater", "background"):
                ratio = median(preload, setup, "in_process_ms") / median(preload, "openlineage", "in_process_ms")
                print(f"{preload:9} {setup} / openlineage, in-process: {ratio:.2f}x")
        inline, background = (median(preload, s, "in_process_ms") for s in ("headwater", "background"))
        print(f"{preload:9} background / inline, in-process: {background / inline:.2f}x")
        for setup in ("headwater", "background"):
            loaded = results[(preload, setup)][0].get("loaded")
            print(f"{preload:9} loaded by the end of the {setup} child: {', '.join(loaded or []) or 'none of them'}")  # type: ignore[arg-type]  # a JSON list


if __name__ == "__main__":
    raise SystemExit(main())
