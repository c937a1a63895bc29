"""The block: registered with `prefect block register -m`, saved, and loaded by slug in a fresh
process that never imported headwater (the prefect.collections entry point), then used lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prefect.settings import get_current_settings

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker
from tests.graphs import rows

FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from prefect.blocks.core import Block

    block = Block.load("headwater-tracker/lineage-test")  # headwater never imported by this script
    print(type(block).__module__, type(block).__name__, block.uri == sys.argv[1],
          block.token.get_secret_value() == "s3cret", "s3cret" not in repr(block))

    from prefect import flow, task
    from prefect.settings import temporary_settings
    from headwater.adapters.prefect import HeadwaterTracker

    tracker = HeadwaterTracker.lazy("lineage-test")  # loaded in the first hook

    @task
    def copy(src: Path) -> Path:
        out = src.with_name("copy.csv")
        out.write_bytes(src.read_bytes())
        return out

    @tracker.flow
    @flow
    def elsewhere(src: Path) -> Path:
        return copy(src)

    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        elsewhere(Path(sys.argv[2]))
    """
)


def test_register_save_and_load_by_slug_in_a_fresh_process(tmp_path: Path, headwater_home: Path) -> None:
    store_uri = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    register = subprocess.run(
        [str(Path(sys.executable).with_name("prefect")), "block", "register", "-m", "headwater.adapters.prefect"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert register.returncode == 0, register.stdout + register.stderr
    assert "Successfully registered 1 block" in register.stdout

    HeadwaterTracker(uri=store_uri, token="s3cret").save("lineage-test", overwrite=True)
    (tmp_path / "raw.csv").write_text("a,b\n")
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, store_uri, str(tmp_path / "raw.csv")],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert fresh.stdout.splitlines()[0] == "headwater.adapters.prefect.block HeadwaterTracker True True True"
    assert "s3cret" not in fresh.stdout + fresh.stderr
    client = hw.Client(uri=store_uri, home=headwater_home)
    try:
        assert rows(client, tmp_path) == [
            ("elsewhere", "container", "succeeded", None, ("raw.csv:v0",), ("copy.csv:v0",)),
            ("elsewhere.copy", "task", "succeeded", "elsewhere", ("raw.csv:v0",), ("copy.csv:v0",)),
        ]
    finally:
        client.close()


def test_the_block_checks_its_uri_and_keeps_the_token_secret() -> None:
    block = HeadwaterTracker(uri="postgresql://hw@db/lineage", token="s3cret")
    assert "s3cret" not in repr(block) and "s3cret" not in str(block.model_dump())
    assert HeadwaterTracker(uri="").uri is None  # empty: HEADWATER_URI
    with pytest.raises(ValueError, match="uri must start with"):
        HeadwaterTracker(uri="mysql://db/lineage")
    assert HeadwaterTracker.get_block_type_slug() == "headwater-tracker"
    assert repr(HeadwaterTracker.lazy("headwater-tracker/prod")) == "HeadwaterTracker.lazy('prod')"
