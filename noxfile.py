"""Test environments, one per orchestrator (Airflow and Prefect cannot share one), made by uv."""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["core"]

PYTHON = "3.11"
ORCHESTRATORS = ("airflow", "prefect", "dagster")
# The story of examples/cross_orchestrator/ pickles a scikit-learn model in Dagster's environment
# and unpickles it in Prefect's and in the manual step's: the same pins in each of them.
STORY_REQUIREMENTS = "examples/cross_orchestrator/requirements.txt"
STORY_ENVS = {"dagster", "prefect"}


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The library, the store contract on SQLite and PostgreSQL, the CLI."""
    session.install("-c", "constraints/core.txt", "-e", ".[dev,postgres,server,openlineage,browser]")
    ignore = [f"--ignore=tests/{name}" for name in (*ORCHESTRATORS, "e2e")]
    session.run("pytest", *(session.posargs or ["tests", *ignore]), env={"PYTHONUNBUFFERED": "1"})


def _orchestrator_session(session: nox.Session, name: str) -> None:
    """One orchestrator's tests, in its own environment, pinned by constraints/<name>.txt."""
    if not any(Path("tests", name).glob("test_*.py")):
        session.skip(f"no tests for {name} yet")
    # `http`: the story of tests/e2e/ also records through a tracking server from these envs.
    session.install("-c", f"constraints/{name}.txt", "-e", f".[{name},dev,postgres,http]")
    if name in STORY_ENVS:
        session.install("-c", f"constraints/{name}.txt", "-r", STORY_REQUIREMENTS)
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


def _story_environments(session: nox.Session, extras: str) -> None:
    """This session's own environment (the manual step's: headwater and scikit-learn), and the
    three orchestrators' environments of their test sessions (built or brought up to date)."""
    session.install("-c", "constraints/core.txt", "-e", f".[{extras}]", "-r", STORY_REQUIREMENTS)
    session.run(sys.executable, "-m", "nox", "--install-only", "-s", *ORCHESTRATORS, external=True)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The story of examples/cross_orchestrator/: Airflow, Dagster, Prefect and a manual step."""
    _story_environments(session, "postgres,server")  # `server`: the story ends with `headwater ui`
    session.run("python", "examples/cross_orchestrator/story.py", *session.posargs)


@nox.session(python=PYTHON)
def e2e(session: nox.Session) -> None:
    """The same story end to end, its joined graph asserted exactly: on SQLite, on PostgreSQL,
    and through a tracking server that every environment writes to with a token."""
    _story_environments(session, "dev,postgres,server,browser")
    session.run("pytest", *(session.posargs or ["tests/e2e"]), env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks in bench/, full size (not part of `make test`)."""
    session.install("-c", "constraints/core.txt", "-e", ".[dev,postgres]")
    session.run("python", "bench/run.py", *session.posargs, env={"PYTHONUNBUFFERED": "1"})
