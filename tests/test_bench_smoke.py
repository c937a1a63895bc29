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


def bench(script: str, *args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run bench/<script> with this interpreter; its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_bench_prints_every_row(tmp_path: Path) -> None:
    proc = bench("run.py", "--quick", "--tiny", "--workdir", str(tmp_path / "work"), cwd=ROOT, timeout=300)
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

    proc = bench("large_manifest.py", "--entries", "8000", "--max-body-mb", "0.5", "--json", cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    rows = json.loads(proc.stdout)
    assert [row["database"] for row in rows][:1] == ["SQLite"]
    for row in rows:
        assert row["entries"] == 8000
        assert row["one body MiB"] > 0.5  # the batch as one body is over the limit
        assert row["sent MiB"] < row["one body MiB"]  # its manifest went compressed


PEER_ROWS = [
    "log-vs-wandb",
    "log-vs-cp",
    "log-vs-cp-sync",
    "log-rss",
    "hash-vs-wandb",
    "hash-vs-dvc",
    "hash-vs-read",
    "relog-vs-first",
    "relog-vs-dvc",
    "run-vs-mlflow",
    "get-ref",
    "use-ref",
    "users-runs_using-sqlite-60",
    "users-page-sqlite-60",
    "users-downstream-sqlite-60",
    "lineage",
]


def test_peers_bench_runs_every_shape_without_the_peers(tmp_path: Path) -> None:
    """bench/peers.py --tiny --headwater-only: every shape's headwater side and the floors that
    need no peer (cp, reading the bytes, networkx), each row with its target and verdict. The
    peers themselves (W&B, DVC, MLflow) run in `make bench-peers`, in an environment of their own."""
    proc = bench("peers.py", "--tiny", "--headwater-only", "--json", "rows.json", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert "FAILED" not in proc.stdout, proc.stdout
    import json

    rows = {row["key"]: row for row in json.loads((tmp_path / "rows.json").read_text())}
    assert set(PEER_ROWS) <= set(rows), sorted(rows)
    for key in PEER_ROWS:
        row = rows[key]
        assert row["headwater"] not in ("", "-"), row
        assert row["target"] not in ("", "-"), row  # every row states the target
    # The floors measured beside headwater, and the peers said to be skipped, not silently absent.
    for key in ("log-vs-cp", "log-vs-cp-sync", "hash-vs-read", "lineage"):
        assert rows[key]["ratio"].endswith("x"), rows[key]
    for key in ("log-vs-wandb", "hash-vs-wandb", "hash-vs-dvc", "relog-vs-dvc", "run-vs-mlflow"):
        assert rows[key]["peer"] == "not run (--headwater-only)", rows[key]
    assert "re-hashed" not in rows["relog-vs-first"]["headwater"], rows["relog-vs-first"]
