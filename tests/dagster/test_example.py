"""examples/dagster/run.py, as the docs show it, records exactly the documented graph."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import headwater as hw

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dagster" / "run.py"


def test_the_example_records_the_documented_lineage(tmp_path: Path, headwater_home: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "HEADWATER_HOME": str(headwater_home), "EXAMPLE_DATA": str(data)}
    env.pop("HEADWATER_URI", None)
    run = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    orders_csv, report = (data / "orders.csv").as_uri(), (data / "report.txt").as_uri()
    assert f"{report}:v0 [latest]" in run.stdout

    client = hw.Client(home=headwater_home)
    jobs = {r.id: r.job for r in client.runs()}
    assert Counter(
        (r.job, r.kind, r.status, jobs.get(r.parent_id), tuple(r.inputs), tuple(r.outputs)) for r in client.runs()
    ) == Counter(
        {
            ("airflow-export", "manual", "succeeded", None, (), (f"{orders_csv}:v0",)): 1,
            ("__ASSET_JOB", "container", "succeeded", None, (), ()): 2,
            ("__ASSET_JOB.orders", "task", "succeeded", "__ASSET_JOB", (f"{orders_csv}:v0",), ("orders:v0",)): 1,
            ("__ASSET_JOB.revenue", "task", "succeeded", "__ASSET_JOB", ("orders:v0",), ("revenue:v0",)): 2,
            ("__ASSET_JOB.report", "task", "succeeded", "__ASSET_JOB", ("revenue:v0",), (f"{report}:v0",)): 1,
        }
    )
    assert [(e.path, e.ref) for e in client.get("revenue:v0").entries] == [
        ("revenue", (data / "storage" / "revenue").as_uri())
    ]
    client.close()


def test_the_overhead_bench_runs_at_its_smallest(tmp_path: Path) -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "dagster_overhead.py"
    run = subprocess.run(
        [sys.executable, str(bench), "--outputs", "3", "--sizes", "1024", "--postgres", ""],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    header, row = run.stdout.splitlines()[-2:]
    assert header.split()[:3] == ["backend", "output", "n"] and row.split()[:4] == ["sqlite", "1,024", "B", "3"]
