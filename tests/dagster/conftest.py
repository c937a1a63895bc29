"""Real Dagster runs against headwater's stores, and the recorded graph as plain data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import headwater as hw
import pytest


@pytest.fixture
def hw_env(client: hw.Client, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> hw.Client:
    """The IO manager finds the test's store the way a deployment does: HEADWATER_URI (+ HOME)."""
    monkeypatch.setenv("HEADWATER_URI", store_uri)
    return client


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """Where the wrapped FilesystemIOManager stores outputs (one folder per test)."""
    path = tmp_path / "storage"
    path.mkdir()
    return path


def graph(client: hw.Client) -> dict[str, Any]:
    """Everything recorded, exactly: runs by id -> (job, kind, status, parent id, inputs,
    outputs), and versions by ref -> [(entry path, entry ref)]."""
    runs = {
        r.id: (r.job, r.kind, r.status, r.parent_id, sorted(r.inputs), sorted(r.outputs))
        for r in client.runs()
    }
    versions = {}
    for artifact in client.artifacts():
        for v in client.versions(artifact.name):
            versions[v.ref] = [(e.path, e.ref) for e in client.get(v.ref).entries]
    return {"runs": runs, "versions": versions}


def container(dagster_run_id: str) -> str:
    return hw.run_id("dagster", dagster_run_id)


def step(dagster_run_id: str, step_key: str, attempt: int = 0) -> str:
    return hw.run_id("dagster", dagster_run_id, step_key, attempt)
