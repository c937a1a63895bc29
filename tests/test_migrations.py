"""The schema check on opening a store: Alembic only when there is something to upgrade."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import headwater as hw
from headwater.store import migrate

OPEN_AND_LOG = """
import sys, headwater as hw
client = hw.Client(uri=sys.argv[1], home=sys.argv[2])
client.log_artifact("ds", sys.argv[3])
client.close()
print(sorted(m for m in sys.modules if m == "alembic" or m.startswith("alembic.")))
"""


def test_head_is_the_migration_scripts_head() -> None:
    assert migrate.head_revision() == migrate.HEAD


def test_a_store_at_head_opens_without_alembic(store_uri: str, headwater_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_text("alembic stays out of the task process")

    def open_and_log() -> str:
        done = subprocess.run(
            [sys.executable, "-c", OPEN_AND_LOG, store_uri, str(headwater_home), str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = open_and_log()  # creates the schema when the database is new
    if store_uri.startswith("sqlite"):
        assert first != "[]"  # a new file: Alembic created its schema
    assert open_and_log() == "[]"
    assert [v.ref for v in hw.Client(uri=store_uri, home=headwater_home).versions("ds")] == ["ds:v0"]
