"""Shared fixtures: an isolated HEADWATER_HOME per test, and every store backend to run against.

PostgreSQL comes from HEADWATER_TEST_POSTGRES_URL (the Makefile points it at 127.0.0.1:5432/test).
Each test session creates its own database and drops it at the end. Under CI a PostgreSQL that
cannot be reached fails the run; elsewhere its tests are skipped with one line saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.store import schema

POSTGRES_URL = os.environ.get("HEADWATER_TEST_POSTGRES_URL", "")


@pytest.fixture(autouse=True)
def headwater_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hwhome"
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    monkeypatch.delenv("HEADWATER_URI", raising=False)
    monkeypatch.delenv("HEADWATER_BLOB_URI", raising=False)
    monkeypatch.delenv("HEADWATER_DISABLED", raising=False)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "10")
    return home


def _admin_url() -> sa.URL:
    return sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own, as a postgresql:// URL."""
    if not POSTGRES_URL:
        message = "HEADWATER_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"headwater_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as err:
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({str(err.orig).strip().splitlines()[0]})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    yield url.replace("postgresql+psycopg://", "postgresql://")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        names = ", ".join(t.name for t in schema.metadata.sorted_tables)
        if conn.execute(sa.text("SELECT to_regclass('artifacts')")).scalar():
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every SQL backend; the contract tests run once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("postgres_database")
    _truncate(url)
    return url


@pytest.fixture
def client(store_uri: str, headwater_home: Path) -> Iterator[hw.Client]:
    c = hw.Client(uri=store_uri, home=headwater_home)
    yield c
    c.close()


@pytest.fixture
def files(tmp_path: Path):
    """Write small files: files({"a.csv": "x,y\\n"}) -> the folder holding them."""

    def make(contents: dict[str, str | bytes], folder: str = "data") -> Path:
        root = tmp_path / folder
        for rel, data in contents.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                data = data.encode()
            target.write_bytes(data)
        return root

    return make
