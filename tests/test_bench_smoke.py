"""bench/run.py runs end to end at its smallest size and prints its table with every row.

Timings are never asserted: they depend on the machine. A PostgreSQL that cannot be reached
makes its rows say "skipped", which still counts as printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # several child processes

ROOT = Path(__file__).resolve().parents[1]
ROWS = [
    "digest-vs-blake3",
    "digest-vs-md5",
    "digest-vs-blake3-mmap",
    "digest-vs-read",
    "statcache",
    "runs-apply-sqlite",
    "runs-emit-sqlite",
    "runs-apply-postgres",
    "runs-emit-postgres",
    "closure-50pct",
    "closure-25pct",
    "closure-10pct",
    "closure-small",
    "lineage-10pct",
    "lineage-small",
]
COLUMNS = ["benchmark", "what", "headwater", "peer", "ratio", "target", "met", "peak RSS hw/peer"]


def test_bench_prints_every_row(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--quick",
            "--tiny",
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    header = lines[0]
    for column in COLUMNS:
        assert column in header, header
    assert set(lines[1]) <= {"-", " "}, lines[1]
    body = [line for line in lines[2:] if line.strip()]
    keys = [line.split()[0] for line in body]
    for row in ROWS:
        assert row in keys, f"row {row} missing from:\n{proc.stdout}"
    assert "FAILED" not in proc.stdout, proc.stdout
    # One table: every row has the header's columns filled in (no empty cells, no wrapping).
    table = [line for line in body if line.split()[0] in ROWS]
    assert len(table) == len(ROWS)
    assert all(len(line) > len(row) + 20 for line, row in zip(table, ROWS, strict=True))


def test_large_manifest_bench_stages_and_records_every_entry(tmp_path: Path) -> None:
    """bench/large_manifest.py at a small size, with a body limit its batch crosses."""
    import json

    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "large_manifest.py"),
            "--entries",
            "8000",
            "--max-body-mb",
            "0.5",
            "--json",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    rows = json.loads(proc.stdout)
    assert [row["database"] for row in rows][:1] == ["SQLite"]
    for row in rows:
        assert row["entries"] == 8000
        assert row["one body MiB"] > 0.5  # the batch as one body is over the limit
        assert row["sent MiB"] < row["one body MiB"]  # its manifest went compressed
