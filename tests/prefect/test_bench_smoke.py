"""bench/prefect_overhead.py as a tiny smoke run (no timing is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "prefect_overhead.py"


def test_the_overhead_bench_runs() -> None:
    spec = importlib.util.spec_from_file_location("prefect_overhead_bench", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.measure(tasks=3, reps=1, settle=0)
    # warm-up (2 tasks) and one measured run (3 tasks) of each tracked flow, each with its flow run
    assert result["recorded_runs"] == 2 * (3 + 4)
    assert set(result["per_task_ms"]) == {"plain", "no-output", "file"}
    assert "added per task" in bench.table(result)
