"""Test environments, one per orchestrator (Airflow and Prefect cannot share one), made by uv."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["core"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The library, the store contract on SQLite and PostgreSQL, the CLI."""
    session.install("-c", "constraints/core.txt", "-e", ".[dev,postgres,http]")
    session.run("pytest", *(session.posargs or ["tests"]), env={"PYTHONUNBUFFERED": "1"})


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
