"""Test environments, one per orchestrator (Airflow and Prefect cannot share one), made by uv."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["core"]

PYTHON = "3.11"
ORCHESTRATORS = ("airflow", "prefect", "dagster")


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The library, the store contract on SQLite and PostgreSQL, the CLI."""
    session.install("-c", "constraints/core.txt", "-e", ".[dev,postgres,server,openlineage]")
    ignore = [f"--ignore=tests/{name}" for name in ORCHESTRATORS]
    session.run("pytest", *(session.posargs or ["tests", *ignore]), env={"PYTHONUNBUFFERED": "1"})


def _orchestrator_session(session: nox.Session, name: str) -> None:
    """One orchestrator's tests, in its own environment, pinned by constraints/<name>.txt."""
    if not any(Path("tests", name).glob("test_*.py")):
        session.skip(f"no tests for {name} yet")
    session.install("-c", f"constraints/{name}.txt", "-e", f".[{name},dev,postgres]")
    session.run(
        "pytest", *(session.posargs or [f"tests/{name}"]), env={"PYTHONUNBUFFERED": "1", "HEADWATER_TEST_HTTP": "0"}
    )


@nox.session(python=PYTHON)
def airflow(session: nox.Session) -> None:
    # The official OpenLineage provider too (pinned in constraints/airflow.txt), for
    # tests/airflow/test_openlineage_provider.py; `headwater[airflow]` itself stays without it.
    session.install("-c", "constraints/airflow.txt", "apache-airflow-providers-openlineage")
    _orchestrator_session(session, "airflow")


@nox.session(python=PYTHON)
def prefect(session: nox.Session) -> None:
    _orchestrator_session(session, "prefect")


@nox.session(python=PYTHON)
def dagster(session: nox.Session) -> None:
    _orchestrator_session(session, "dagster")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The manual three-step lineage of examples/manual/, printed as a tree."""
    session.install("-c", "constraints/core.txt", "-e", ".")
    session.run("bash", "examples/manual/demo.sh", external=True)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks in bench/, full size (not part of `make test`)."""
    session.install("-c", "constraints/core.txt", "-e", ".[dev,postgres]")
    session.run("python", "bench/run.py", *session.posargs, env={"PYTHONUNBUFFERED": "1"})
