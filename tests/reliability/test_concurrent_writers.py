"""Many task processes write at once: labels stay gapless, equal content stays one version."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

import headwater as hw

WORKERS = 4


def _log(uri: str, home: str, path: str, job: str, barrier: multiprocessing.synchronize.Barrier) -> str:
    # A loaded CI machine must not turn a lock wait into an undelivered batch.
    os.environ["HEADWATER_TIMEOUT_S"] = "60"
    client = hw.Client(uri=uri, home=home)
    with client.run(job) as run:
        barrier.wait(timeout=30)
        version = run.log_artifact("shared", path)
    client.close()
    return f"{version.label} {run.id}"


def _in_parallel(uri: str, tmp_path: Path, paths: list[Path]) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(len(paths))
    with ctx.Pool(len(paths)) as pool:
        pending = [
            pool.apply_async(_log, (uri, str(tmp_path / f"home{i}"), str(p), f"worker-{i}", barrier))
            for i, p in enumerate(paths)
        ]
        return [p.get(timeout=120) for p in pending]


@pytest.mark.slow
def test_same_content_from_four_processes_is_one_version_with_four_producers(
    client: hw.Client, store_uri: str, tmp_path: Path
) -> None:
    paths = []
    for i in range(WORKERS):
        (tmp_path / f"w{i}").mkdir()
        paths.append(tmp_path / f"w{i}" / "model.bin")
        paths[-1].write_bytes(b"identical weights")
    results = _in_parallel(store_uri, tmp_path, paths)
    assert sorted(r.split()[0] for r in results) == ["v0"] * WORKERS
    version = client.get("shared")
    assert [v.label for v in client.versions("shared")] == ["v0"]
    assert sorted(version.producers) == sorted(r.split()[1] for r in results)
    assert version.produced_by in version.producers
    assert {e.direction for e in client.upstream("shared:v0").edges} == {"produced"}
    assert len(client.upstream("shared:v0").edges) == WORKERS


@pytest.mark.slow
def test_different_content_from_four_processes_gets_gapless_labels(
    client: hw.Client, store_uri: str, tmp_path: Path
) -> None:
    paths = []
    for i in range(WORKERS):
        paths.append(tmp_path / f"model{i}.bin")
        paths[-1].write_bytes(f"weights {i}".encode())
    results = _in_parallel(store_uri, tmp_path, paths)
    assert sorted(r.split()[0] for r in results) == [f"v{i}" for i in range(WORKERS)]
    assert [v.label for v in client.versions("shared")] == [f"v{i}" for i in range(WORKERS)]
    assert len({v.digest for v in client.versions("shared")}) == WORKERS
