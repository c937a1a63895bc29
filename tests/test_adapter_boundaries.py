"""An adapter only translates: no SQL, hashing, HTTP, storage or environment reading of its own.

Read from the adapters' source (they import their orchestrators, which the core environment does
not have): every import and every `os.environ`/`os.getenv` use is checked against what the
toolkit offers, so plumbing that creeps back into an adapter fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ADAPTERS = Path(__file__).resolve().parents[1] / "adapters"
# What an adapter may use of headwater: the toolkit, the public API and its vocabulary.
ALLOWED_HEADWATER = {
    "headwater.observe",
    "headwater.api",
    "headwater.models",
    "headwater.refs",
    "headwater.errors",
    "headwater.config",  # the settings registry: names and defaults, read in one place
}
# Plumbing the toolkit does for every adapter.
FORBIDDEN = {"sqlalchemy", "sqlite3", "psycopg", "psycopg2", "httpx", "requests", "urllib", "http", "socket"}
FORBIDDEN |= {"hashlib", "blake3", "fsspec", "shutil", "alembic"}
# The orchestrator's own objects, read where it hands them over: not headwater's plumbing.
EXCEPTIONS = {("airflow/listener.py", "sqlalchemy.orm")}  # the scheduler's session, for its task instances


def _modules() -> list[Path]:
    return sorted(path for path in ADAPTERS.rglob("*.py") if path.name != "__init__.py" or path.stat().st_size)


def _imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [
                f"{node.module}.{alias.name}" if node.module == "headwater" else node.module for alias in node.names
            ]
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ADAPTERS)))
def test_an_adapter_module_uses_only_the_toolkit(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for name in _imports(tree):
        if (str(path.relative_to(ADAPTERS)), name) in EXCEPTIONS:
            continue
        top = name.split(".")[0]
        assert top not in FORBIDDEN, f"{path.name} imports {name}: that is the toolkit's work"
        if top == "headwater" and not name.startswith("headwater.adapters"):
            assert any(name == ok or name.startswith(ok + ".") for ok in ALLOWED_HEADWATER), (
                f"{path.name} imports {name}: adapters use headwater.observe and the public API"
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
            assert node.attr not in ("environ", "getenv", "putenv"), f"{path.name} reads the environment itself"


def test_the_check_sees_every_adapter() -> None:
    names = {path.parent.name for path in _modules()}
    assert {"airflow", "dagster", "prefect"} <= names
