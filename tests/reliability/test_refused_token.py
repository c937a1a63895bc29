"""#12: a server that refuses the token is not an outage: the call fails, the batch waits for a token."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import headwater as hw
from headwater.cli import cli
from headwater.observe import Observer

RW = "rw-" + "c3" * 16
RO = "ro-" + "d4" * 16


@pytest.fixture
def secured(server_factory: Any, tmp_path: Path) -> Any:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{RW}\nread-only {RO}\n")
    return server_factory("secured", args=["--token-file", str(tokens)])


def headwater(*args: str, code: int) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (
            None,
            401,
            "this server needs a token: send `Authorization: Bearer TOKEN` (set HEADWATER_TOKEN or "
            "HEADWATER_TOKEN_FILE on the client)",
        ),
        ("not-a-token", 401, "the token was not accepted by this server"),
        (RO, 403, "this token is read-only: recording needs a read-write token"),
    ],
)
def test_cli_log_refused_exits_6_keeps_the_batch_and_sync_delivers_with_the_right_token(
    secured: Any,
    headwater_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    token: str | None,
    status: int,
    reason: str,
) -> None:
    monkeypatch.setenv("HEADWATER_URI", secured.url)
    if token is None:
        monkeypatch.delenv("HEADWATER_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HEADWATER_TOKEN", token)
    client = hw.Client(uri=secured.url, home=headwater_home)
    refused = f"{secured.url} refused the request ({status}): {reason}"

    logged = headwater("log", "--job", "label", "--param", "batch=7", code=6)
    assert logged.stdout == ""
    assert logged.stderr.splitlines() == [
        f"headwater: error: {refused}; the batch waits in the outbox until the token is fixed"
    ]
    assert len(client.outbox.pending()) == 1 and client.outbox.dead() == []

    synced = headwater("sync", code=6)
    assert synced.stdout == "delivered 0, pending 1, dead 0\n"
    assert synced.stderr.splitlines() == [f"headwater: error: 1 batch(es) still wait in the outbox: {refused}"]
    assert len(client.outbox.pending()) == 1

    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    assert headwater("sync", code=0).stdout == "delivered 1, pending 0, dead 0\n"
    writer = hw.Client(uri=secured.url, home=headwater_home)
    [run] = writer.runs(job="label")
    assert (run.status, run.params, run.inputs, run.outputs) == ("succeeded", {"batch": 7}, [], [])
    assert writer.outbox.pending() == []


def test_an_adapter_refused_logs_one_line_and_its_batch_waits(
    secured: Any, headwater_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HEADWATER_TOKEN", RO)
    client = hw.Client(uri=secured.url, home=headwater_home)
    observer = Observer("airflow", lambda: client)
    rid = hw.run_id("dag", "task", "try-1")
    with caplog.at_level(logging.WARNING, logger="headwater"), observer.batch("task end") as batch:  # never raises
        batch.run(rid, job="dag.task", status="succeeded")
    assert batch.delivered is None
    assert [r.getMessage() for r in caplog.records] == [
        f"headwater: airflow task end waits in the outbox: Unauthorized: {secured.url} refused the request "
        "(403): this token is read-only: recording needs a read-write token; the batch waits in the outbox "
        "until the token is fixed"
    ]
    assert len(client.outbox.pending()) == 1
    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    writer = hw.Client(uri=secured.url, home=headwater_home)
    assert writer.sync().delivered == 1
    assert writer.get_run(rid).job == "dag.task"
