"""Test environments, one per orchestrator (Airflow and Prefect cannot share one), made by uv."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["core"]

PYTHON = "3.11"
# The core suite also runs on every other Python headwater supports, with the interpreters found
# on the machine (uv never downloads one: UV_PYTHON_DOWNLOADS=never). pyenv's shims hide them
# from uv, so their paths are looked up here.
OTHER_PYTHONS = ("3.10", "3.12", "3.13")
DEV = ("--group", "dev")  # PEP 735 groups of pyproject.toml, not published extras
ORCHESTRATORS = ("airflow", "prefect", "dagster")
# The story of examples/cross_orchestrator/ pickles a scikit-learn model in Dagster's environment
# and unpickles it in Prefect's and in the manual step's: the same pins in each of them.
STORY_REQUIREMENTS = "examples/cross_orchestrator/requirements.txt"
STORY_ENVS = {"dagster", "prefect"}


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """The library, the store contract on SQLite and PostgreSQL, the CLI."""
    session.install("-c", "constraints/core.txt", "-e", ".[postgres,server,openlineage]", *DEV, "--group", "browser")
    session.run("pytest", *(session.posargs or [*PARALLEL, "tests", *_core_ignores()]), env={"PYTHONUNBUFFERED": "1"})


def _core_ignores() -> list[str]:
    return [f"--ignore=tests/{name}" for name in (*ORCHESTRATORS, "e2e", "reliability")]


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Faults and hostile input: killed processes, backends down, hanging or refusing, full and
    read-only disks, fuzzed REFs, manifests and events, concurrent writers (tests/reliability/)."""
    session.install("-c", "constraints/core.txt", "-e", ".[postgres,server,openlineage,http]", *DEV)
    session.run("pytest", *(session.posargs or ["tests/reliability"]), env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON)
def schemathesis_long(session: nox.Session) -> None:
    """The long fuzzing run, outside `make test` (`make fuzz`): schemathesis against a real server
    with 1000 examples per operation (HEADWATER_SCHEMATHESIS_EXAMPLES), and the hypothesis tests of
    tests/reliability/test_fuzz.py with 5000 each (HEADWATER_FUZZ_EXAMPLES)."""
    session.install("-c", "constraints/core.txt", "-e", ".[postgres,server,openlineage,http]", *DEV)
    session.run(
        "pytest",
        *(session.posargs or ["tests/test_server_schemathesis.py", "tests/reliability/test_fuzz.py"]),
        env={
            "PYTHONUNBUFFERED": "1",
            "HEADWATER_SCHEMATHESIS_EXAMPLES": os.environ.get("HEADWATER_SCHEMATHESIS_EXAMPLES", "1000"),
            "HEADWATER_FUZZ_EXAMPLES": os.environ.get("HEADWATER_FUZZ_EXAMPLES", "5000"),
        },
    )


# Driven from outside (a browser, the documentation's and README's shell blocks, the demo, the
# benches, the HTTP fuzzer, several servers at once): the same code whatever the Python, so only
# 3.11 runs them; what they drive is tested on every Python by the suites that remain.
SAME_ON_EVERY_PYTHON = (
    "test_ui_browser.py",
    "test_docs.py",
    "test_readme.py",
    "test_demo.py",
    "test_bench_smoke.py",
    "test_server_schemathesis.py",
    "test_stateless_servers.py",
    "test_scale_smoke.py",
)
# Files of tests run in two worker processes, whole files to a worker (module-scoped servers
# start once): most tests wait on a subprocess, a server or an fsync, so two share two cores.
PARALLEL = ("-n", "2", "--dist", "loadfile")


def _interpreter(version: str) -> str | None:
    found = shutil.which(f"python{version}")
    if found and "shims" not in found:
        return found
    candidates = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    return str(candidates[-1]) if candidates else None


@nox.session(python=False)
@nox.parametrize("version", OTHER_PYTHONS)
def core_pythons(session: nox.Session, version: str) -> None:
    """The core suite on another supported Python (the browser and documentation tests stay on 3.11)."""
    interpreter = _interpreter(version)
    if interpreter is None:
        session.error(f"Python {version} is not installed: the core suite must run on it")
    venv = Path(".nox", f"core-{version}")
    if not (venv / "bin" / "python").exists():
        session.run("uv", "venv", "-q", "--python", interpreter, str(venv), external=True)
    python = str(venv / "bin" / "python")
    constraints = f"constraints/core-{version}.txt"
    session.run(
        "uv",
        "pip",
        "install",
        "-q",
        "--python",
        python,
        "-c",
        constraints,
        "-e",
        ".[postgres,server,openlineage]",
        *DEV,
        external=True,
    )
    session.run(
        # The browser tests, the documentation's examples and the multi-server and scale runs (the
        # same server code, driven from outside) do not depend on the Python version: 3.11 runs them.
        python,
        "-m",
        "pytest",
        *(
            session.posargs
            or [*PARALLEL, "tests", *_core_ignores(), *(f"--ignore=tests/{name}" for name in SAME_ON_EVERY_PYTHON)]
        ),
        env={"PYTHONUNBUFFERED": "1"},
        external=True,
    )


def _orchestrator_session(session: nox.Session, name: str) -> None:
    """One orchestrator's tests, in its own environment, pinned by constraints/<name>.txt."""
    if not any(Path("tests", name).glob("test_*.py")):
        session.skip(f"no tests for {name} yet")
    # `http`: the story of tests/e2e/ also records through a tracking server from these envs.
    session.install("-c", f"constraints/{name}.txt", "-e", f".[{name},postgres,http]", *DEV)
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


def _story_environments(session: nox.Session, extras: str, *groups: str) -> None:
    """This session's own environment (the manual step's: headwater and scikit-learn), and the
    three orchestrators' environments of their test sessions (built or brought up to date)."""
    session.install("-c", "constraints/core.txt", "-e", f".[{extras}]", *groups, "-r", STORY_REQUIREMENTS)
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
    _story_environments(session, "postgres,server", *DEV, "--group", "browser")
    session.run("pytest", *(session.posargs or ["tests/e2e"]), env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint and format) on the repository, and mypy on the package: strict on the core,
    relaxed for the adapters where the orchestrators' untyped APIs force it (pyproject.toml)."""
    session.install("-c", "constraints/core.txt", "-e", ".[postgres,server,openlineage,http]", "--group", "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    unexplained = [
        f"{path}:{number}"
        for path in sorted([*Path("core").rglob("*.py"), *Path("adapters").rglob("*.py")])
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "type: ignore" in line and not re.search(r"type: ignore\[[a-z, -]+\]  # \S", line)
    ]
    if unexplained:
        session.error("a `type: ignore[code]` needs its reason after it (`  # why`): " + ", ".join(unexplained))
    # mypy needs the package under its import name (core/ is `headwater`, adapters/ is
    # `headwater.adapters`, docs/architecture.md) and cannot follow the editable install's import
    # hook: a tree of links gives it that layout, and its messages name `headwater/...` paths.
    tree = Path("build", "typecheck", "headwater")
    shutil.rmtree(tree.parent, ignore_errors=True)
    tree.mkdir(parents=True)
    for entry in [*Path("core").iterdir(), Path("adapters")]:
        if entry.name != "__pycache__":
            (tree / entry.name).symlink_to(Path("..", "..", "..", entry))
    session.chdir(tree.parent)
    session.run("mypy", "--config-file", str(Path("..", "..", "pyproject.toml")), "-p", "headwater")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs-material), built with --strict into site/."""
    session.install("-c", "constraints/docs.txt", "-e", ".[server]", "--group", "docs")
    source = Path("build", "docs-src")
    source.mkdir(parents=True, exist_ok=True)
    link = source / "headwater"
    if not link.is_symlink():
        link.symlink_to(Path("..", "..", "core"))
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmarks in bench/, full size (not part of `make test`)."""
    session.install("-c", "constraints/core.txt", "-e", ".[postgres,server]", *DEV, "--group", "browser")
    session.run("python", "bench/run.py", *session.posargs, env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON)
def peers(session: nox.Session) -> None:
    """headwater beside W&B (offline), DVC, MLflow (SQLite) and networkx, in an environment of
    their own (bench/peers-requirements.txt); not part of `make test` (`make bench-peers`)."""
    session.install("-e", ".[postgres,server]", "-r", "bench/peers-requirements.txt")
    session.run("python", "bench/peers.py", *session.posargs, env={"PYTHONUNBUFFERED": "1"})
