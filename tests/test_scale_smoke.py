"""bench/scale.py runs end to end at its smallest size: loads, serves, ingests, reads, explains.

Timings are never asserted (they depend on the machine); what is asserted is that every stage
ran and reported: every read row, the ingest line, a plan for every read, sizes of every table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]  # two servers and eight client processes

ROOT = Path(__file__).resolve().parents[1]
READS = [
    "get",
    "get-alias",
    "versions",
    "runs-using",
    "up-3",
    "down-3",
    "up-all",
    "down-all",
    "reach-down",
    "reach-half",
    "reach-up",
    "impact",
    "search",
    "list-page",
]
TABLES = {"artifacts", "versions", "entries", "runs", "edges", "aliases", "alias_moves", "tags", "applied_events"}


def test_scale_bench_smoke(tmp_path: Path) -> None:
    postgres = os.environ.get("HEADWATER_TEST_POSTGRES_URL")
    if not postgres:
        if os.environ.get("CI"):
            pytest.fail("HEADWATER_TEST_POSTGRES_URL is not set")
        pytest.skip("HEADWATER_TEST_POSTGRES_URL is not set: the scale benchmark needs PostgreSQL")
    work = tmp_path / "work"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scale.py"),
            "--scale",
            "0.001",
            "--ingest-s",
            "1",
            "--reps",
            "0.01",
            "--postgres",
            postgres,
            "--workdir",
            str(work),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:5] == ["benchmark", "what", "n", "p50", "ms"]
    assert [line.split()[0] for line in lines[1 : 1 + len(READS)]] == READS
    assert any(line.startswith("ingest: ") and "events/s" in line for line in lines)

    result = json.loads((work / "scale.json").read_text())
    assert (result["runs"], result["versions"]) == (1000, 1000)
    assert 2000 < result["edges"] < 4000  # 1 produced + 1-3 used (2 on average) per run
    assert set(result["bytes"]) >= TABLES and all(result["bytes"][t] > 0 for t in TABLES)
    reads = {r["key"]: r for r in result["reads"]}
    assert list(reads) == READS and all(r["result"] > 0 for r in reads.values())
    assert reads["versions"]["result"] == 500  # the big artifact: every second version at this size
    assert reads["impact"]["result"] == 100  # the shared file's holders
    # the refs of a walk are its graph's nodes, one for one
    assert (reads["reach-down"]["result"], reads["reach-up"]["result"]) == (
        reads["down-all"]["result"],
        reads["up-all"]["result"],
    )
    assert result["ingest"]["events"] >= 8 * 100  # every client sent at least one batch
    assert set(result["plans"]) == {*READS, "closure-sql"}
    assert all(result["plans"][key] for key in READS), "every read ran at least one SELECT"
    assert "Execution Time" in (work / "plans.txt").read_text()
