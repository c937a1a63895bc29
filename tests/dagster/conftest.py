"""Real Dagster runs against headwater's stores: the store, a Dagster instance, run ids."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

import headwater as hw


@pytest.fixture
def store(client: hw.Client, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> hw.Client:
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


def container(dagster_run_id: str) -> str:
    return hw.run_id("dagster", dagster_run_id)


def step(dagster_run_id: str, step_key: str, attempt: int = 0) -> str:
    return hw.run_id("dagster", dagster_run_id, step_key, attempt)
