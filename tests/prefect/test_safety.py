"""Never fail, stall or slow the flow: backend away (outbox, then `headwater sync`), the disabled
switch, headwater's own errors, the time budget, a block that cannot be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker, translate
from tests.graphs import rows
from tests.prefect import flows
from tests.tcp_proxy import TCPProxy

RAW = "id,amount\n1,10\n2,\n3,32\n"
PIPELINE = [
    ("pipeline", "container", "succeeded", None, ("raw.csv:v0",), ("model.json:v0",)),
    ("pipeline.extract", "task", "succeeded", "pipeline", ("raw.csv:v0",), ("clean.csv:v0",)),
    ("pipeline.train", "task", "succeeded", "pipeline", ("features.json:v0",), ("model.json:v0",)),
    ("pipeline.transform", "task", "succeeded", "pipeline", ("clean.csv:v0",), ("features.json:v0",)),
]


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    (tmp_path / "raw.csv").write_text(RAW)
    return tmp_path / "raw.csv"


@pytest.fixture
def switchable_store(store_uri: str, tmp_path: Path) -> Iterator[tuple[str, object, object]]:
    """(uri, down, up): this test's store behind a switch. SQLite: its folder blocked by a file;
    a server (PostgreSQL, the HTTP store): a TCP proxy, refusing connections as a stopped server."""
    if store_uri.startswith("sqlite"):
        blocker = tmp_path / "blocker"
        yield f"sqlite:///{blocker}/store.db", lambda: blocker.write_text("not a folder"), blocker.unlink
        return
    url = urlsplit(store_uri)
    proxy = TCPProxy(url.hostname or "127.0.0.1", url.port or 5432)
    yield urlunsplit(url._replace(netloc=url.netloc.replace(f":{url.port}", f":{proxy.port}"))), proxy.stop, proxy.start
    proxy.stop()


def test_backend_down_during_the_flow_then_headwater_sync(
    switchable_store, headwater_home: Path, raw: Path, headwater_log: list, monkeypatch
) -> None:
    uri, down, up = switchable_store
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    down()
    model = HeadwaterTracker(uri=uri).flow(flows.pipeline)(raw)
    assert model == raw.with_name("model.json")  # the flow did its work
    messages = [r.getMessage() for r in headwater_log]
    assert len(messages) == 5 and all("\n" not in m and "wait in the outbox" in m for m in messages)
    up()
    sync = subprocess.run(
        [str(Path(sys.executable).with_name("headwater")), "sync", "--json"],
        env={**os.environ, "HEADWATER_URI": uri, "HEADWATER_HOME": str(headwater_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sync.returncode == 0, sync.stderr
    assert '"delivered": 5' in sync.stdout and '"pending": 0' in sync.stdout and '"dead": 0' in sync.stdout
    client = hw.Client(uri=uri, home=headwater_home)
    try:
        assert rows(client, raw.parent) == PIPELINE
    finally:
        client.close()


def test_disabled_records_nothing(tracker: HeadwaterTracker, store: hw.Client, raw: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_DISABLED", "1")
    assert tracker.flow(flows.pipeline)(raw) == raw.with_name("model.json")
    assert store.runs() == [] and store.outbox.pending() == []


def test_headwater_errors_are_one_warning_line_per_hook(
    tracker: HeadwaterTracker, store: hw.Client, raw: Path, headwater_log: list, monkeypatch
) -> None:
    def broken(*args, **kwargs):
        raise KeyError("task_inputs")

    monkeypatch.setattr(translate, "record_inputs", broken)  # every Running hook fails
    assert tracker.flow(flows.pipeline)(raw) == raw.with_name("model.json")
    messages = [r.getMessage() for r in headwater_log]
    assert len(messages) == 4 and all(
        m.startswith("headwater: prefect ") and m.endswith(" start not recorded: KeyError: 'task_inputs'")
        for m in messages
    )
    # The end events carry the whole run, so each run is still complete, only without inputs.
    assert rows(store, raw.parent) == [
        (job, kind, status, parent, (), outputs) for job, kind, status, parent, _, outputs in PIPELINE
    ]


def test_hashing_past_the_budget_records_unverified_and_the_flow_goes_on(
    tracker: HeadwaterTracker, store: hw.Client, tmp_path: Path, monkeypatch
) -> None:
    big = tmp_path / "huge.bin"
    with open(big, "wb") as out:  # sparse: 2 GiB to hash, nothing on disk
        out.truncate(2 << 30)
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "0.3")

    @flows.task
    def produce() -> Path:
        # Returns a path it is not given: a task given and returning one path that cannot be
        # hashed in time records `unverified:<run id>` twice with other entries (a core issue).
        return big

    @tracker.flow
    @flows.flow
    def big_output() -> int:
        return flows.size_of(produce())

    assert big_output() == 2 << 30
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "10")
    store.sync()
    producer = next(r for r in store.runs() if r.job == "big-output.produce")
    assert store.get(big.as_uri()).digest == f"unverified:{producer.id}"
    assert rows(store, tmp_path) == [
        ("big-output", "container", "succeeded", None, (), ()),
        ("big-output.produce", "task", "succeeded", "big-output", (), ("huge.bin:v0",)),
        ("big-output.size_of", "task", "succeeded", "big-output", ("huge.bin:v0",), ()),
    ]
    edges = {(e.run_id, e.exact) for e in store.downstream(f"{big.as_uri()}:v0").edges if e.direction == "used"}
    size_of = next(r for r in store.runs() if r.job == "big-output.size_of")
    assert edges == {(size_of.id, False)}  # not read in time: the latest version, said to be inexact


def test_a_block_that_cannot_be_loaded_records_nothing_and_says_so(
    store: hw.Client, raw: Path, headwater_log: list
) -> None:
    assert HeadwaterTracker.lazy("no-such-block").flow(flows.pipeline)(raw) == raw.with_name("model.json")
    messages = {r.getMessage() for r in headwater_log}
    assert len(messages) == 1
    assert messages.pop().startswith(
        "headwater: prefect block 'headwater-tracker/no-such-block' not loaded, nothing recorded: "
    )
    assert store.runs() == []
