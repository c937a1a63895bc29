"""The example DAG of examples/airflow/ (three tasks over file:// Assets, a plain-URI inlet, an
outlet extra), run as a user would: the graph it records, exactly; with the backend down; off."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import headwater as hw
from headwater.observe import code_identity
from tests.airflow.conftest import AIRFLOW, DAGS, EXAMPLE_DATA
from tests.graphs import tries
from tests.tcp_proxy import TCPProxy

RAW = (DAGS / "data" / "customers.csv").as_uri()
CUSTOMERS, FEATURES, MODEL = ((EXAMPLE_DATA / n).as_uri() for n in ("customers.csv", "features.csv", "model.json"))
TASKS = ("extract", "features", "train")


def churn_graph() -> dict[str, Any]:
    """What one run of the churn DAG records."""
    return {
        "runs": {
            "churn": ("container", "succeeded", None),
            "churn.extract#1": ("task", "succeeded", "churn"),
            "churn.features#1": ("task", "succeeded", "churn"),
            "churn.train#1": ("task", "succeeded", "churn"),
        },
        "versions": {
            f"{RAW}:v0": ({}, None),  # read, never produced: the raw export Airflow does not manage
            f"{CUSTOMERS}:v0": ({"rows": 11}, "churn.extract#1"),  # the outlet's extra
            f"{FEATURES}:v0": ({}, "churn.features#1"),
            f"{MODEL}:v0": ({}, "churn.train#1"),
        },
        "edges": {
            ("churn.extract#1", "used", f"{RAW}:v0", True),
            ("churn.extract#1", "produced", f"{CUSTOMERS}:v0", True),
            ("churn.features#1", "used", f"{CUSTOMERS}:v0", True),
            ("churn.features#1", "produced", f"{FEATURES}:v0", True),
            ("churn.train#1", "used", f"{FEATURES}:v0", True),
            ("churn.train#1", "produced", f"{MODEL}:v0", True),
        },
    }


def test_churn_records_each_task_its_inputs_and_outputs(store: hw.Client, run_dag) -> None:
    dag_run = run_dag("churn")
    assert dag_run.state == "success"
    assert tries(store) == churn_graph()

    # Ids come from Airflow's identity; times, code and the DAG run are Airflow's own.
    container = store.get_run(hw.run_id("airflow", "churn", dag_run.run_id))
    assert (container.job, container.orchestrator, container.job_namespace) == ("churn", "airflow", "airflow")
    assert container.started_at is not None and container.ended_at is not None
    for task_id in TASKS:
        run = store.get_run(hw.run_id("airflow", "churn", task_id, dag_run.run_id, 1, -1))
        assert (run.parent_id, run.error) == (container.id, None)
        assert run.params == {
            "dag_id": "churn",
            "task_id": task_id,
            "dag_run_id": dag_run.run_id,
            "try_number": 1,
            "map_index": -1,
        }
        # The operator and callable, and the identity every adapter records: file, digest (and commit).
        assert run.code.pop("operator") == "airflow.providers.standard.decorators.python._PythonDecoratedOperator"
        assert run.code.pop("callable").endswith(f".{task_id}")
        assert run.code == code_identity(DAGS / "churn.py") and "file_digest" in run.code  # DAGS: in no repository
        assert container.started_at <= run.started_at < run.ended_at <= container.ended_at

    # Content versions of the files as they are, pointing at them (nothing copied).
    model = store.get(f"{MODEL}:v0")
    assert [(e.path, e.ref) for e in model.entries] == [("model.json", MODEL)]
    assert model.digest.startswith("blake3:") and store.verify(model.ref).ok
    assert store.get(f"{RAW}:v0").digest == store.content(DAGS / "data" / "customers.csv", store=False).digest
    assert json.loads(Path(MODEL.removeprefix("file://")).read_text())["threshold"] > 0


@pytest.fixture
def down_backend(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A backend that is down, and a function that brings it back (same URI, same outbox)."""
    proxy = None
    if store_uri.startswith("sqlite"):
        blocker = tmp_path / "not-yet"
        blocker.write_text("a file where the database folder should be")
        uri, bring_up = f"sqlite:///{blocker}/store.db", blocker.unlink
    else:  # PostgreSQL or the tracking server, behind a proxy not started yet: refused
        real = urlsplit(store_uri)
        proxy = TCPProxy(real.hostname or "127.0.0.1", real.port or 5432)
        uri = urlunsplit(real._replace(netloc=real.netloc.rsplit(":", 1)[0] + f":{proxy.port}"))
        bring_up = proxy.start
    monkeypatch.setenv("HEADWATER_URI", uri)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    yield uri, bring_up
    if proxy is not None:
        proxy.stop()


def test_backend_down_every_task_succeeds_and_sync_delivers_everything(
    down_backend, headwater_home: Path, run_dag
) -> None:
    uri, bring_up = down_backend
    dag_run = run_dag("churn")
    assert dag_run.state == "success"
    assert {ti.task_id: ti.state for ti in dag_run.get_task_instances()} == dict.fromkeys(TASKS, "success")

    client = hw.Client(uri=uri, home=headwater_home)
    # Per task a start and an end batch, and the DAG run's own: all waiting in the outbox.
    assert len(client.outbox.pending()) == 2 * len(TASKS) + 1
    bring_up()
    delivery = client.sync()
    assert (delivery.delivered, delivery.pending, delivery.dead) == (2 * len(TASKS) + 1, 0, {})
    assert client.outbox.pending() == [] and client.outbox.dead() == []
    assert tries(client) == churn_graph()
    client.close()


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_disabled_records_nothing(store: hw.Client, monkeypatch: pytest.MonkeyPatch, run_dag) -> None:
    monkeypatch.setenv("HEADWATER_DISABLED", "1")
    assert run_dag("churn").state == "success"
    assert store.runs() == [] and store.artifacts() == [] and store.outbox.pending() == []
    assert Path(MODEL.removeprefix("file://")).is_file()  # the DAG itself ran


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_airflow_cli_lists_the_plugin_and_dags_test_records_with_airflow_cfg_settings(
    store_uri: str, tmp_path: Path
) -> None:
    # Configured the Airflow way ([headwater] in airflow.cfg, here as AIRFLOW__HEADWATER__*).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_") or k == "HEADWATER_EXAMPLE_DATA"}
    env.update(AIRFLOW__HEADWATER__URI=store_uri, AIRFLOW__HEADWATER__HOME=str(tmp_path / "cli-home"))

    plugins = _airflow("plugins", "--output", "json", env=env)
    assert plugins.returncode == 0, plugins.stderr[-2000:]
    [ours] = [p for p in json.loads(plugins.stdout) if p["name"] == "headwater"]
    assert ours["listeners"] == ["headwater.adapters.airflow.listener"]
    assert ours["source"].startswith("headwater==") and "airflow.plugins" in ours["source"]

    done = _airflow("dags", "test", "churn", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = hw.Client(uri=store_uri, home=tmp_path / "cli-home")
    assert tries(client) == churn_graph()
    assert client.outbox.pending() == []
    client.close()
