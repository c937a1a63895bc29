"""Real Airflow 3 DAGs run with dag.test() (and `airflow dags test`) against a real store.

Airflow reads AIRFLOW_HOME when it is first imported, so this module sets the environment before
anything imports it: one AIRFLOW_HOME per test session, migrated once, whose DAGs folder holds
the example DAGs of examples/airflow/ and the DAGs of tests/airflow/dags/. The DAG files place
their data under fixed folders of this session (Asset URIs are fixed when a DAG is parsed); each
test starts with those folders empty, and with a store and HEADWATER_HOME of its own.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SESSION = Path(tempfile.mkdtemp(prefix="headwater-airflow-"))
DAGS = SESSION / "dags"
EXAMPLE_DATA = SESSION / "churn"
TEST_DATA = SESSION / "data"

os.environ.update(
    {
        "AIRFLOW_HOME": str(SESSION / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "HEADWATER_EXAMPLE_DATA": str(EXAMPLE_DATA),
        "HEADWATER_AIRFLOW_TEST_DATA": str(TEST_DATA),
    }
)
atexit.register(shutil.rmtree, SESSION, ignore_errors=True)
shutil.copytree(ROOT / "examples" / "airflow", DAGS)
for dag_file in (Path(__file__).parent / "dags").glob("*.py"):
    shutil.copy(dag_file, DAGS / dag_file.name)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Path:
    """`airflow db migrate` once per session, on SQLite in the session's AIRFLOW_HOME."""
    done = subprocess.run([AIRFLOW, "db", "migrate"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return SESSION


@pytest.fixture(autouse=True)
def fresh_data() -> None:
    for folder in (EXAMPLE_DATA, TEST_DATA):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)


@pytest.fixture
def store(client: Any, store_uri: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The test's store (SQLite or PostgreSQL), where the plugin records (HEADWATER_URI)."""
    monkeypatch.setenv("HEADWATER_URI", store_uri)
    return client


def load_dag(name: str) -> Any:
    """The DAG of DAGS/<name>.py, imported from the file Airflow parses (same fileloc, same assets)."""
    spec = importlib.util.spec_from_file_location(f"headwater_test_dag_{name}", DAGS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture
def run_dag() -> Callable[..., Any]:
    """Run a DAG with dag.test(); returns the DagRun once the DAG-run hooks are recorded too."""
    from headwater.adapters.airflow import listener

    def run(name: str) -> Any:
        dag_run = load_dag(name).test()
        assert listener.flush(timeout=60)
        return dag_run

    return run
