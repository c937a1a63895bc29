"""bench/airflow_overhead.py runs end to end (tiny, without OpenLineage); no timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_overhead_bench_runs_and_checks_what_headwater_recorded(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HEADWATER_"))}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "airflow_overhead.py"),
            "--tasks",
            "3",
            "--repeat",
            "1",
            "--shapes",
            "assets",
            "--setups",
            "without,headwater",
            "--env",
            sys.prefix,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = {row["setup"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"without", "headwater"}
    assert {"hooks_ms", "hash_ms", "first_task_hooks_ms"} <= set(rows["headwater"])
