"""Op jobs, retries, the multiprocess executor, and the backend down while Dagster runs."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.adapters.dagster import HeadwaterIOManager
from tests.graphs import by_id
from tests.tcp_proxy import TCPProxy

from . import mp_job
from .assets import greetings, users
from .conftest import container, step


@dg.op
def extract() -> dict:
    return {"rows": 3}


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def transform(context: dg.OpExecutionContext, data: dict) -> dict:
    if context.retry_number == 0:
        raise ConnectionError("warehouse busy")
    return {"rows": data["rows"] * 2}


@dg.graph
def etl() -> None:
    transform(extract())


def test_an_op_job_with_a_retried_step(store: hw.Client, instance: dg.DagsterInstance, storage: Path) -> None:
    job = etl.to_job(
        name="etl",
        resource_defs={"io_manager": HeadwaterIOManager(inner=dg.FilesystemIOManager(base_dir=str(storage)))},
    )
    r = job.execute_in_process(instance=instance).run_id
    extracted, transformed = "etl/extract/result:v0", "etl/transform/result:v0"
    assert by_id(store) == {
        "runs": {
            container(r): ("etl", "container", "succeeded", None, [], []),
            step(r, "extract"): ("etl.extract", "task", "succeeded", container(r), [], [extracted]),
            step(r, "transform", 0): ("etl.transform", "task", "failed", container(r), [extracted], []),
            step(r, "transform", 1): ("etl.transform", "task", "succeeded", container(r), [extracted], [transformed]),
        },
        "versions": {
            extracted: [("result", (storage / r / "extract" / "result").as_uri())],
            transformed: [("result", (storage / r / "transform" / "result").as_uri())],
        },
    }
    assert store.get_run(step(r, "transform", 0)).error == "ConnectionError: warehouse busy"
    assert store.get_run(step(r, "transform", 1)).params == {"dagster_run_id": r, "step_key": "transform", "attempt": 1}


@pytest.mark.slow
def test_the_multiprocess_executor_records_from_each_worker(store: hw.Client, tmp_path: Path) -> None:
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.execute_job(dg.reconstructable(mp_job.numbers), instance=instance)
        assert result.success
        r = result.run_id
    stored = tmp_path / "dagster" / "storage" / r
    produced, summed = "numbers/produce/result:v0", "numbers/total/result:v0"
    assert by_id(store) == {
        "runs": {
            container(r): ("numbers", "container", "succeeded", None, [], []),
            step(r, "produce"): ("numbers.produce", "task", "succeeded", container(r), [], [produced]),
            step(r, "total"): ("numbers.total", "task", "succeeded", container(r), [produced], [summed]),
        },
        "versions": {
            produced: [("result", (stored / "produce" / "result").as_uri())],
            summed: [("result", (stored / "total" / "result").as_uri())],
        },
    }


def test_backend_down_then_headwater_sync_delivers_the_same_graph(
    store_uri: str,
    headwater_home: Path,
    instance: dg.DagsterInstance,
    storage: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if store_uri.startswith("sqlite"):  # a database path that cannot be created until unblocked
        blocker = tmp_path / "blocker"
        blocker.write_text("not a folder")
        uri, come_back = f"sqlite:///{blocker}/headwater.db", blocker.unlink
    else:  # PostgreSQL behind a proxy that is not listening yet
        url = sa.make_url(store_uri)
        proxy = TCPProxy(url.host or "127.0.0.1", url.port or 5432)
        uri, come_back = url.set(port=proxy.port).render_as_string(hide_password=False), proxy.start
    monkeypatch.setenv("HEADWATER_URI", uri)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    io = HeadwaterIOManager(inner=dg.FilesystemIOManager(base_dir=str(storage)))
    result = dg.materialize([users, greetings], resources={"io_manager": io}, instance=instance)
    assert result.success  # the pipeline never waits for headwater
    client = hw.Client(uri=uri, home=headwater_home)
    assert len(client.outbox.pending()) >= 3
    # Without the backend the materialization still names the exact version, by digest.
    metadata = instance.get_latest_materialization_event(dg.AssetKey("users")).asset_materialization.metadata
    assert metadata["headwater/version"].value == f"users@{metadata['headwater/digest'].value}"

    come_back()
    sync = subprocess.run(
        [str(Path(sys.executable).parent / "headwater"), "sync"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert sync.returncode == 0, sync.stderr
    assert client.outbox.pending() == []
    r = result.run_id
    assert by_id(client) == {
        "runs": {
            container(r): ("__ephemeral_asset_job__", "container", "succeeded", None, [], []),
            step(r, "users"): ("__ephemeral_asset_job__.users", "task", "succeeded", container(r), [], ["users:v0"]),
            step(r, "greetings"): (
                "__ephemeral_asset_job__.greetings",
                "task",
                "succeeded",
                container(r),
                ["users:v0"],
                ["greetings:v0"],
            ),
        },
        "versions": {
            "users:v0": [("users", (storage / "users").as_uri())],
            "greetings:v0": [("greetings", (storage / "greetings").as_uri())],
        },
    }
    if not store_uri.startswith("sqlite"):
        proxy.stop()
