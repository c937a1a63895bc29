"""Time headwater's Airflow plugin adds per task, beside the OpenLineage provider, in one run.

    python bench/airflow_overhead.py [--tasks 30] [--repeat 3] [--shapes assets,trivial]

The same DAG runs with `dag.test()` (every task in one process)
under four set-ups, alternated round by round so drift hits them alike:

  without      no lineage plugin (HEADWATER_DISABLED=1 at start: headwater registers nothing;
               the OpenLineage provider installed but disabled)
  headwater    the headwater plugin, recording to SQLite in a fresh HEADWATER_HOME
  background   the same with HEADWATER_DELIVERY=background: each task's end batch is made durable
               in the outbox and delivered by a deliverer process (one for the whole run: tasks
               follow each other within its linger time); the run waits for it before checking
  openlineage  apache-airflow-providers-openlineage with the file transport, headwater off

Two DAG shapes of independent tasks (dag.test() runs them back to back in one pass; a chain
would add a scheduling pass of ~200 ms between tasks and drown the figures in noise): `assets`,
tasks that each read one file:// Asset (its inlet) and write another (its outlet), a few bytes
each, so hashing them is a rounding error; and `trivial`, tasks that declare nothing. The figure is the time
from one task's start to the next one's, which holds
both the end hook of one task and the start hook of the next (the median gap of a run, then the
median over runs); "added" is that minus `without`.
Each child run checks that its set-up recorded what it should (headwater: every task try;
OpenLineage: a START and a COMPLETE event per task), so a silent no-op cannot look fast.

It runs in its own environment (.nox/airflow-bench, made with uv from constraints/airflow.txt:
headwater[airflow] plus the OpenLineage provider). The `airflow` test session installs the
provider too, for the test of the provider's events landing in headwater's graph; the plugin's
own install stays `headwater[airflow]`.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUPS = ("without", "headwater", "background", "openlineage")

DAG_FILE = """
import os
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset

N = int(os.environ["HW_BENCH_TASKS"])
SHAPE = os.environ["HW_BENCH_SHAPE"]
DATA = Path(os.environ["HW_BENCH_DATA"])


def work(i):
    if SHAPE == "assets":
        text = (DATA / f"in-{i}.txt").read_text()
        (DATA / f"out-{i}.txt").write_text(text.upper())


with DAG("hw_bench", schedule=None, catchup=False, default_args={"retry_delay": timedelta(0)}) as dag:
    for i in range(N):
        lineage = {}
        if SHAPE == "assets":
            lineage = {
                "inlets": [Asset((DATA / f"in-{i}.txt").as_uri())],
                "outlets": [Asset((DATA / f"out-{i}.txt").as_uri())],
            }
        PythonOperator(task_id=f"step_{i:03d}", python_callable=work, op_kwargs={"i": i}, **lineage)
"""


# -- the child: one dag.test() under one set-up -------------------------------------------------


def child(setup: str, tasks: int, work: Path) -> dict[str, float]:
    import importlib.util

    hooks: list[float] = []  # seconds in headwater's task hooks, start and end alternately
    hashing: list[float] = []  # seconds of that spent hashing inputs and outputs
    if setup in ("headwater", "background"):
        from headwater.adapters.airflow import tasks as hw_tasks
        from headwater.observe import Batch

        def timed(func, into):
            def wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    into.append(time.perf_counter() - started)

            return wrapper

        hw_tasks.task_started = timed(hw_tasks.task_started, hooks)
        hw_tasks.task_finished = timed(hw_tasks.task_finished, hooks)
        Batch._hash = timed(Batch._hash, hashing)

    gc_seconds = [0.0]
    gc_started = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_seconds[0] += time.perf_counter() - gc_started[0]

    gc.callbacks.append(on_gc)
    spec = importlib.util.spec_from_file_location(
        "hw_bench_dag", Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "hw_bench.py"
    )
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    dag_run = module.dag.test()
    if setup in ("headwater", "background"):
        from headwater.adapters.airflow import listener
        from headwater.api import default_client
        from headwater.deliverer import wait_delivered

        listener.flush(60)
        assert wait_delivered(default_client()), "the deliverer did not deliver the outbox"
    tis = sorted(dag_run.get_task_instances(), key=lambda ti: ti.start_date)
    assert dag_run.state == "success" and len(tis) == tasks, (dag_run.state, len(tis))
    starts = [ti.start_date.timestamp() for ti in tis]
    # The first task also starts the in-process execution API (seconds): leave its gap out. The
    # median gap, not the mean: a 2-core machine shared with other work preempts now and then.
    period = statistics.median(b - a for a, b in itertools.pairwise(starts[1:]))
    checked = 0
    if setup in ("headwater", "background"):
        import headwater as hw

        runs = [r for r in hw.runs() if r.kind == "task" and r.status == "succeeded"]
        assert len(runs) == tasks, f"headwater recorded {len(runs)} task runs, not {tasks}"
        if os.environ["HW_BENCH_SHAPE"] == "assets":
            assert all(len(r.outputs) == 1 for r in runs)
        checked = len(runs)
    elif setup == "openlineage":
        events = [json.loads(line) for line in (work / "ol.jsonl").read_text().splitlines() if line.strip()]
        task_events = [e for e in events if e["job"]["name"].startswith("hw_bench.step_")]
        kinds = {(e["job"]["name"], e["eventType"]) for e in task_events}
        assert len(kinds) == 2 * tasks, f"OpenLineage wrote {len(kinds)} task START/COMPLETE events, not {2 * tasks}"
        checked = len(task_events)
    result = {
        "period_ms": period * 1000,
        "gc_ms": gc_seconds[0] * 1000 / tasks,  # garbage collection per task, whole run
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checked": checked,
    }
    if hooks:
        per_task = [hooks[i] + hooks[i + 1] for i in range(2, len(hooks) - 1, 2)]  # after the first task
        per_hash = len(hashing) // tasks or 1
        result["hooks_ms"] = statistics.median(per_task) * 1000
        result["first_task_hooks_ms"] = (hooks[0] + hooks[1]) * 1000  # opens the store: once per process
        result["hash_ms"] = (
            statistics.median(sum(hashing[i : i + per_hash]) for i in range(per_hash, len(hashing), per_hash)) * 1000
            if hashing
            else 0.0
        )
    return result


# -- the parent: environment, rounds, table -----------------------------------------------------


def ensure_env(env_dir: Path, openlineage: bool = True) -> Path:
    python = env_dir / "bin" / "python"
    probe = "import headwater.adapters.airflow.plugin" + (", airflow.providers.openlineage" if openlineage else "")
    if python.exists() and subprocess.run([python, "-c", probe], capture_output=True, check=False).returncode == 0:
        return python
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(env_dir)], check=True, env=env)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            "-c",
            str(ROOT / "constraints" / "airflow.txt"),
            "-e",
            f"{ROOT}[airflow]",
            "apache-airflow-providers-openlineage",
        ],
        check=True,
        env=env,
    )
    return python


def setup_env(base: dict[str, str], setup: str, work: Path) -> dict[str, str]:
    env = dict(base)
    env["HEADWATER_HOME"] = str(work / "hwhome")
    env.pop("HEADWATER_URI", None)
    if setup in ("headwater", "background"):
        env.pop("HEADWATER_DISABLED", None)
    else:
        env["HEADWATER_DISABLED"] = "1"
    if setup == "background":
        env["HEADWATER_DELIVERY"] = "background"
    if setup == "openlineage":
        env["AIRFLOW__OPENLINEAGE__DISABLED"] = "False"
        env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "bench"
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
            {"type": "file", "log_file_path": str(work / "ol.jsonl"), "append": True}
        )
    else:
        env["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", default="assets,trivial")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--env", type=Path, default=ROOT / ".nox" / "airflow-bench")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--child", choices=SETUPS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.tasks, args.work)
        (args.work / "result.json").write_text(json.dumps(result))
        return 0

    setups = tuple(s.strip() for s in args.setups.split(",") if s.strip())
    if "without" not in setups or not set(setups) <= set(SETUPS):
        parser.error(f"--setups: a subset of {','.join(SETUPS)} that includes `without`")
    python = ensure_env(args.env, openlineage="openlineage" in setups)
    home = Path(tempfile.mkdtemp(prefix="headwater-airflow-bench-"))
    try:
        (home / "dags").mkdir()
        (home / "dags" / "hw_bench.py").write_text(DAG_FILE)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HEADWATER_", "OPENLINEAGE"))}
        base.update(
            AIRFLOW_HOME=str(home / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            HW_BENCH_TASKS=str(args.tasks),
            PYTHONUNBUFFERED="1",
        )
        airflow = str(python.with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=base, check=True, capture_output=True)
        shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        started = time.monotonic()
        for round_ in range(args.repeat):
            for shape in shapes:
                order = setups[round_ % len(setups) :] + setups[: round_ % len(setups)]  # rotate who goes first
                for setup in order:
                    work = home / f"{shape}-{setup}-{round_}"
                    (work / "data").mkdir(parents=True)
                    for i in range(args.tasks):
                        (work / "data" / f"in-{i}.txt").write_text(f"input {i}\n")
                    env = setup_env(base, setup, work)
                    env.update(HW_BENCH_SHAPE=shape, HW_BENCH_DATA=str(work / "data"))
                    done = subprocess.run(
                        [python, __file__, "--child", setup, "--tasks", str(args.tasks), "--work", str(work)],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=900,
                        check=False,
                    )
                    if done.returncode != 0 or not (work / "result.json").is_file():
                        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
                        raise SystemExit(f"{setup} / {shape}: the child run failed")
                    results.setdefault((shape, setup), []).append(json.loads((work / "result.json").read_text()))
                    print(
                        f"  round {round_ + 1} {shape:8} {setup:12} "
                        f"{results[(shape, setup)][-1]['period_ms']:7.1f} ms/task",
                        file=sys.stderr,
                    )
        report(results, shapes, setups, args, time.monotonic() - started)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def report(
    results: dict[tuple[str, str], list[dict[str, float]]],
    shapes: list[str],
    setups: tuple[str, ...],
    args: argparse.Namespace,
    seconds: float,
) -> None:
    rows = []
    for shape in shapes:
        base = statistics.median(r["period_ms"] for r in results[(shape, "without")])
        for setup in setups:
            runs = results[(shape, setup)]
            period = statistics.median(r["period_ms"] for r in runs)
            row = {
                "shape": shape,
                "setup": setup,
                "ms_per_task": round(period, 2),
                "added_ms_per_task": round(period - base, 2),
                "spread_ms": round(max(r["period_ms"] for r in runs) - min(r["period_ms"] for r in runs), 2),
                "peak_rss_mb": round(statistics.median(r["rss_mb"] for r in runs)),
            }
            for key in ("gc_ms", "hooks_ms", "hash_ms", "first_task_hooks_ms"):
                if key in runs[0]:
                    row[key] = round(statistics.median(r[key] for r in runs), 2)
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"Airflow task overhead: dag.test(), {args.tasks} tasks, median of {args.repeat} runs ({seconds:.0f} s)")
    print(
        f"{'DAG':9} {'set-up':12} {'ms/task':>8} {'added':>8} {'spread':>8} {'GC/task':>8} {'peak RSS':>9}   "
        f"in headwater's hooks"
    )
    for row in rows:
        added = "-" if row["setup"] == "without" else f"{row['added_ms_per_task']:+.1f}"
        inside = ""
        if "hooks_ms" in row:
            inside = (
                f"   {row['hooks_ms']:.1f} ms/task, {row['hash_ms']:.1f} of it hashing; "
                f"first task {row['first_task_hooks_ms']:.0f} ms (opens the store, or starts the deliverer)"
            )
        print(
            f"{row['shape']:9} {row['setup']:12} {row['ms_per_task']:8.1f} {added:>8} "
            f"{row['spread_ms']:8.1f} {row['gc_ms']:8.1f} {row['peak_rss_mb']:>6} MB{inside}"
        )
    print("ms/task: one task's start to the next one's (median gap; median over runs); added: minus `without`;")
    print("spread: max - min over runs. In headwater's hooks: the time its start and end hooks take")
    print("per task (median over tasks), measured inside the same runs. GC/task: Python's garbage")
    print("collector's time over the whole run, per task.")


if __name__ == "__main__":
    raise SystemExit(main())
