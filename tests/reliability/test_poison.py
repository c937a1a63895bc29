"""One bad event never blocks the rest (#12, item 1 and its "Low" list).

Bad input is refused at the call with one InvalidInput line and changes nothing; a batch that
reaches the outbox anyway (written before events were checked, or made with model_construct)
and that the store refuses goes to `dead/` with its reason while later batches are delivered;
the tracking server answers 4xx for bad content and a one-line JSON 500 for its own bugs.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

import headwater as hw
from headwater.digest import manifest_digest
from headwater.events import AliasMoved, RunRecorded, VersionRecorded, new_id, utcnow
from headwater.models import ManifestEntry
from headwater.store import open_store
from tests.conftest import _truncate

NUL = "holds a NUL character, which the databases cannot store"


def unchecked_version(**fields: Any) -> VersionRecorded:
    """A version event as an old outbox or a careless adapter holds it: never validated."""
    values: dict[str, Any] = {
        "id": new_id(),
        "time": utcnow(),
        "kind": "version",
        "name": "poison",
        "digest": "ol:poison",
        "entries": [],
        "type": None,
        "metadata": {},
        "description": None,
        "tags": [],
        "aliases": [],
        "run_id": None,
        "direction": None,
        "exact": True,
        "edge_metadata": {},
    }
    return VersionRecorded.model_construct(**{**values, **fields})


def unchecked_run(**fields: Any) -> RunRecorded:
    values: dict[str, Any] = {
        "id": new_id(),
        "time": utcnow(),
        "kind": "run",
        "run_id": "r",
        "job": None,
        "job_namespace": None,
        "orchestrator": None,
        "run_kind": None,
        "status": None,
        "started_at": None,
        "ended_at": None,
        "params": None,
        "parent_id": None,
        "error": None,
        "code": None,
        "links": None,
    }
    return RunRecorded.model_construct(**{**values, **fields})


def nothing_recorded(client: hw.Client) -> bool:
    return (
        client.artifacts() == []
        and client.runs() == []
        and client.outbox.pending() == []
        and client.outbox.dead() == []
    )


def reason(client: hw.Client, batch: str) -> dict[str, str]:
    return json.loads((client.outbox.dead_folder / f"{batch}.reason").read_text())  # type: ignore[no-any-return]


# -- refused at the call, on every backend -------------------------------------------------------

CUT = "...'"  # a long value is quoted cut to 57 characters
REFUSED_AT_THE_CALL = [
    pytest.param({"type": "t" * 129}, f"type: '{'t' * 57}{CUT} is longer than 128 characters", id="long-type"),
    pytest.param(
        {"aliases": ["a" * 257]}, f"aliases.0: '{'a' * 57}{CUT} is longer than 256 characters", id="long-alias"
    ),
    pytest.param({"metadata": {"note": "a\0b"}}, f"metadata.note: 'a\\x00b' {NUL}", id="nul-in-metadata-value"),
    pytest.param({"metadata": {"k\0": 1}}, f"metadata: the key 'k\\x00' {NUL}", id="nul-in-metadata-key"),
    pytest.param({"metadata": {"deep": [{"x\0y": 1}]}}, f"metadata.deep[0]: the key 'x\\x00y' {NUL}", id="nul-nested"),
    pytest.param({"description": "a\0b"}, f"description: 'a\\x00b' {NUL}", id="nul-in-description"),
    pytest.param(
        {"metadata": {"loss": float("nan")}},
        "metadata.loss is nan: NaN and Infinity are not JSON (use null or a string)",
        id="nan",
    ),
    pytest.param(
        {"metadata": {"loss": float("-inf")}},
        "metadata.loss is -inf: NaN and Infinity are not JSON (use null or a string)",
        id="infinity",
    ),
    pytest.param(
        {"metadata": {"where": Path("/x")}},
        "metadata.where is of type PosixPath, which is not JSON: use text, numbers, true/false, null, lists, "
        "objects or dates",
        id="not-json",
    ),
    pytest.param(
        {"tags": ["t" * 257]}, f"invalid tag '{'t' * 57}{CUT[:-1]}': longer than 256 characters", id="long-tag"
    ),
]


@pytest.mark.parametrize(("bad", "message"), REFUSED_AT_THE_CALL)
def test_bad_content_is_refused_at_the_call_and_changes_nothing(
    client: hw.Client, files, bad: dict[str, Any], message: str
) -> None:
    root = files({"a.csv": "x\n"})
    with pytest.raises(hw.InvalidInput) as refused:
        client.log_artifact("poison", root / "a.csv", **bad)
    expected = message if message.startswith("invalid tag") else f"invalid VersionRecorded event: {message}"
    assert str(refused.value) == expected
    assert nothing_recorded(client)
    assert list(client.blobs.iter_digests()) == []  # checked before any blob was stored


def test_a_naive_time_is_utc_for_a_new_run_and_for_one_that_exists(client: hw.Client) -> None:
    rid = hw.run_id("naive")
    client.emit([RunRecorded(run_id=rid, job="j", started_at=datetime(2024, 1, 1, 12, tzinfo=timezone.utc))])
    client.emit([RunRecorded(run_id=rid, started_at=datetime(2024, 1, 1, 11), ended_at=datetime(2024, 1, 1, 13))])
    run = client.get_run(rid)
    assert (run.started_at, run.ended_at) == (
        datetime(2024, 1, 1, 11, tzinfo=timezone.utc),
        datetime(2024, 1, 1, 13, tzinfo=timezone.utc),
    )
    assert client.outbox.pending() == [] and client.outbox.dead() == []


def test_a_time_out_of_range_is_refused_at_the_call() -> None:
    with pytest.raises(hw.InvalidInput) as refused:
        RunRecorded(run_id="r", started_at=datetime(1, 1, 1))
    assert str(refused.value) == "started_at 0001-01-01T00:00:00 is out of range (years 1000 to 9998)"


def test_dates_and_times_in_metadata_become_iso_text_and_filter_alike(client: hw.Client, files) -> None:
    root = files({"a.csv": "x\n"})
    logged = client.log_artifact(
        "dated",
        root / "a.csv",
        metadata={"day": date(2024, 3, 1), "at": datetime(2024, 3, 1, 12), "n": 3, "f": 0.5, "ok": True},
    )
    want = {"day": "2024-03-01", "at": "2024-03-01T12:00:00+00:00", "n": 3, "f": 0.5, "ok": True}
    assert client.get("dated:v0").metadata == want == logged.metadata
    assert [v.ref for v in client.versions("dated", metadata={"day": "2024-03-01", "f": 0.5})] == ["dated:v0"]


# -- a batch the store refuses goes to dead/, the rest flows --------------------------------------


def test_poison_batches_in_the_outbox_go_to_dead_and_the_rest_is_delivered(client: hw.Client) -> None:
    rid = hw.run_id("exists")
    client.emit([RunRecorded(run_id=rid, job="j", started_at=datetime(2024, 1, 1, 12, tzinfo=timezone.utc))])
    long_type = client.outbox.write([unchecked_version(type="t" * 200)])
    nul = client.outbox.write([unchecked_version(description="a\0b")])
    client.outbox.write([unchecked_version(metadata={"loss": float("nan")})])
    both = client.outbox.write(
        [
            unchecked_version(
                entries=[
                    ManifestEntry(path="a", digest="x", size=1),
                    ManifestEntry(path="a/b", digest="y", size=1),
                ]
            )
        ]
    )
    client.outbox.write([unchecked_run(run_id=rid, started_at=datetime(2024, 1, 1, 10))])
    client.outbox.write([RunRecorded(run_id=hw.run_id("after"), job="after")])

    result = client.sync()

    # naive: read back as UTC; NaN: pydantic wrote it to the batch as null, so it is delivered
    assert (result.delivered, result.pending, result.error) == (3, 0, None)
    assert sorted(result.dead) == sorted([long_type, nul, both])
    assert sorted(p.name for p in client.outbox.dead()) == sorted([long_type, nul, both])
    prefix = "invalid VersionRecorded event: "
    assert reason(client, long_type) == {
        "error": "InvalidInput",
        "message": prefix + f"type: '{'t' * 57}...' is longer than 128 characters",
    }
    assert reason(client, nul) == {"error": "InvalidInput", "message": prefix + f"description: 'a\\x00b' {NUL}"}
    assert reason(client, both) == {
        "error": "InvalidInput",
        "message": "manifest holds both 'a' and 'a/b': a file cannot also be a folder",
    }
    assert client.get("poison").metadata == {"loss": None}
    assert client.get_run(rid).started_at == datetime(2024, 1, 1, 10, tzinfo=timezone.utc)
    assert sorted(r.job for r in client.runs()) == ["after", "j"]
    assert client.outbox.pending() == []


def test_an_unchecked_event_emitted_is_refused_set_aside_and_the_next_is_delivered(client: hw.Client) -> None:
    both = [  # referenced entries: no blob to upload first
        ManifestEntry(path="a", digest="x", size=1, ref="s3://b/a"),
        ManifestEntry(path="a/b", digest="y", size=1, ref="s3://b/a/b"),
    ]
    with pytest.raises(hw.InvalidInput) as refused:
        client.emit([unchecked_version(entries=both)])
    message = "manifest holds both 'a' and 'a/b': a file cannot also be a folder"
    if client.uri.startswith("http"):  # the server checks the batch as it reads it
        message = f"invalid request: 0.version: {message}"
    assert str(refused.value) == message
    assert len(client.outbox.dead()) == 1 and client.outbox.pending() == []
    assert client.emit([RunRecorded(run_id=hw.run_id("next"), job="next")]) is True
    assert [r.job for r in client.runs()] == ["next"] and client.artifacts() == []


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_sql_store_refuses_content_as_invalid_input_never_a_raw_error(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 's.db'}"
    else:
        uri = request.getfixturevalue("postgres_database")
        _truncate(uri)
    store = open_store(uri)
    try:
        store.apply([RunRecorded(run_id="r", job="j", started_at=datetime(2024, 1, 1, tzinfo=timezone.utc))])
        refusals = {
            "naive": (
                [unchecked_run(started_at=datetime(2023, 1, 1))],
                "the store cannot apply this batch: TypeError: can't compare offset-naive and offset-aware datetimes",
            ),
            "tree": (
                [
                    unchecked_version(
                        entries=[
                            ManifestEntry(path="a", digest="x", size=1),
                            ManifestEntry(path="a/b", digest="y", size=1),
                        ]
                    )
                ],
                "manifest holds both 'a' and 'a/b': a file cannot also be a folder",
            ),
        }
        if backend == "postgres":  # SQLite stores these as given; PostgreSQL refuses them
            refusals["long type"] = (
                [unchecked_version(type="t" * 200)],
                "the database refused a value: value too long for type character varying(128)",
            )
            refusals["nul"] = (
                [unchecked_version(description="a\0b")],
                "the database refused a value: PostgreSQL text fields cannot contain NUL (0x00) bytes",
            )
            refusals["nul json"] = (
                [unchecked_version(metadata={"k": "a\0b"})],
                "the database refused a value: unsupported Unicode escape sequence",
            )
            refusals["datetime"] = (
                [unchecked_version(metadata={"at": datetime(2024, 1, 1)})],
                "the store cannot apply this batch: TypeError: Object of type datetime is not JSON serializable",
            )
        for what, (events, message) in refusals.items():
            with pytest.raises(hw.InvalidInput) as refused:
                store.apply(events)
            assert (what, str(refused.value)) == (what, message)
        assert store.list_artifacts() == []
        assert store.get_run("r").started_at == datetime(2024, 1, 1, tzinfo=timezone.utc)
    finally:
        store.close()


def test_sync_prints_one_line_per_dead_batch_and_no_traceback(headwater_home: Path) -> None:
    from click.testing import CliRunner

    from headwater.cli import cli

    client = hw.Client()
    dead = client.outbox.write([unchecked_version(description="a\0b")])
    client.outbox.write([RunRecorded(run_id=hw.run_id("ok"), job="ok")])
    client.close()
    result = CliRunner().invoke(cli, ["sync"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["delivered 1, pending 0, dead 1"]
    assert result.stderr.splitlines() == [
        f"headwater: outbox batch {dead} refused by sqlite:///{headwater_home / 'headwater.db'}: "
        f"invalid VersionRecorded event: description: 'a\\x00b' {NUL}"
    ]


# -- the tracking server answers 4xx for bad content, a one-line 500 for its own bugs -------------


def post_events(server: Any, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/events", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )


def version_json(**fields: Any) -> dict[str, Any]:
    return {"kind": "version", "name": "poison", "digest": "ol:poison", "entries": [], **fields}


VERSION = "0.version: invalid VersionRecorded event: "
SERVER_REFUSALS = [
    pytest.param(
        version_json(type="t" * 200), f"{VERSION}type: '{'t' * 57}...' is longer than 128 characters", id="long-type"
    ),
    pytest.param(
        version_json(aliases=["a" * 300]),
        f"{VERSION}aliases.0: '{'a' * 57}...' is longer than 256 characters",
        id="long-alias",
    ),
    pytest.param(version_json(metadata={"k": "a\0b"}), f"{VERSION}metadata.k: 'a\\x00b' {NUL}", id="nul-metadata"),
    pytest.param(version_json(metadata={"k\0": 1}), f"{VERSION}metadata: the key 'k\\x00' {NUL}", id="nul-key"),
    pytest.param(version_json(description="a\0b"), f"{VERSION}description: 'a\\x00b' {NUL}", id="nul-description"),
    pytest.param(
        {"kind": "run", "run_id": "r", "started_at": "0001-01-01T00:00:00"},
        "0.run: started_at 0001-01-01T00:00:00 is out of range (years 1000 to 9998)",
        id="time-range",
    ),
]


@pytest.mark.parametrize(("event", "message"), SERVER_REFUSALS)
def test_the_server_answers_4xx_json_for_bad_content(
    headwater_server: Any, event: dict[str, Any], message: str
) -> None:
    headwater_server.reset()
    answer = post_events(headwater_server, json.dumps([event]).encode())
    assert answer.status_code == 422
    assert answer.json() == {"error": "InvalidInput", "message": f"invalid request: {message}"}
    assert open_store(headwater_server.store).list_artifacts() == []


def test_the_server_refuses_nan_in_json(headwater_server: Any) -> None:
    headwater_server.reset()
    answer = post_events(
        headwater_server, b'[{"kind": "version", "name": "p", "digest": "ol:p", "entries": [], "metadata": {"x": NaN}}]'
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "InvalidInput",
        "message": f"invalid request: {VERSION}metadata.x is nan: NaN and Infinity are not JSON (use null or a string)",
    }


def test_openlineage_nested_5000_deep_is_a_400(headwater_server: Any) -> None:
    deep = "[" * 5000 + "]" * 5000
    body = (
        '{"eventType": "COMPLETE", "eventTime": "2024-01-01T00:00:00Z", "producer": "x", "schemaURL": "x", '
        '"run": {"runId": "01a24817-e1b7-75d1-abd0-893130fbd770", "facets": {"deep": ' + deep + "}}, "
        '"job": {"namespace": "n", "name": "j"}}'
    )
    answer = httpx.post(
        f"{headwater_server.url}/api/v1/lineage", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "InvalidInput", "message": "the body is nested too deeply to read"}


def test_a_server_bug_is_a_one_line_json_500_and_the_client_waits(headwater_server: Any, headwater_home: Path) -> None:
    headwater_server.reset()
    db = headwater_server.store.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:  # a row this headwater cannot read: a bug, not the request
        conn.execute(
            "INSERT INTO runs (id, job, job_namespace, orchestrator, kind, status, status_at, params, code, "
            "links, created_at)"
            " VALUES ('r', 'j', 'n', 'manual', 'manual', 'exploded', '2024-01-01 00:00:00.000000', '{}', "
            "'{}', '{}', '2024-01-01 00:00:00.000000')"
        )
    tracebacks = headwater_server.log.read_text().count("Traceback")
    try:
        answer = httpx.get(f"{headwater_server.url}/api/v1/runs", timeout=30)
        assert answer.status_code == 500
        assert answer.json() == {
            "error": "Internal",
            "message": "the server failed on GET /api/v1/runs: ValidationError",
        }
        assert "Traceback" not in answer.text
        # In the server's log, once: uvicorn writes it just after the answer has gone.
        deadline = time.monotonic() + 30
        while headwater_server.log.read_text().count("Traceback") == tracebacks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert headwater_server.log.read_text().count("Traceback") == tracebacks + 1
        with pytest.raises(hw.Unavailable) as waiting:
            hw.Client(uri=headwater_server.url, home=headwater_home).runs()
        assert str(waiting.value) == (
            f"{headwater_server.url} failed (500): the server failed on GET /api/v1/runs: ValidationError"
        )
    finally:
        headwater_server.reset()


# -- the "Low" list ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ['a"b', "a\\b", "a\0b", "a\nb"])
def test_a_metadata_filter_key_with_quotes_or_controls_is_refused(client: hw.Client, files, key: str) -> None:
    client.log_artifact("m", files({"a.csv": "x\n"}) / "a.csv", metadata={"a b": 1})
    with pytest.raises(hw.InvalidInput) as refused:
        client.versions("m", metadata={key: 1})
    assert str(refused.value) == (
        f"cannot filter on the metadata key {key!r}: use printable text without quotes or backslashes"
    )
    assert [v.ref for v in client.versions("m", metadata={"a b": 1})] == ["m:v0"]  # a space is fine


def test_a_label_past_any_integer_is_not_found(client: hw.Client, files) -> None:
    client.log_artifact("x", files({"a.csv": "x\n"}) / "a.csv")
    with pytest.raises(hw.NotFound) as missing:
        client.get("x:v99999999999999999999")
    assert str(missing.value) == "artifact 'x' has no version v99999999999999999999"
    if not client.uri.startswith("http"):  # the server's label parameter holds at most 32 characters
        with pytest.raises(hw.NotFound) as missing:
            client.get("x:v" + "9" * 5000)  # past Python's 4,300-digit int() limit
        assert str(missing.value).startswith("artifact 'x' has no version v999")
    assert client.get("x:v000").ref == "x:v0"


def test_credentials_in_an_http_uri_are_masked_in_warnings(headwater_home: Path, files, caplog) -> None:
    from tests.conftest import free_port

    client = hw.Client(uri=f"http://alice:s3cret@127.0.0.1:{free_port()}", home=headwater_home)
    with caplog.at_level(logging.WARNING, logger="headwater"):
        client.emit([RunRecorded(run_id=hw.run_id("masked"), job="j")], timeout=2)
        with pytest.raises(hw.Unavailable) as away:
            client.runs()
    assert "s3cret" not in caplog.text and "s3cret" not in str(away.value)
    assert str(away.value).startswith(f"cannot reach {client.uri.replace('s3cret', '****')}: ")
    assert "not delivered (cannot reach http://alice:****@127.0.0.1:" in caplog.text


def test_a_failed_event_after_succeeded_keeps_the_run_s_own_error(client: hw.Client) -> None:
    done, failed, bare = hw.run_id("done"), hw.run_id("failed"), hw.run_id("bare")
    client.emit([RunRecorded(run_id=done, job="j", status="succeeded")])
    client.emit([RunRecorded(run_id=done, status="failed", error="late failure")])
    client.emit([RunRecorded(run_id=failed, job="j", status="failed", error="first")])
    client.emit([RunRecorded(run_id=failed, status="failed", error="second")])
    client.emit([RunRecorded(run_id=bare, job="j", status="failed")])
    client.emit([RunRecorded(run_id=bare, status="failed", error="why, told late")])
    assert [(client.get_run(r).status, client.get_run(r).error) for r in (done, failed, bare)] == [
        ("succeeded", None),
        ("failed", "first"),
        ("failed", "why, told late"),
    ]


def test_an_alias_cannot_be_moved_onto_a_deleted_version(client: hw.Client, files) -> None:
    root = files({"a.csv": "1\n", "b.csv": "2\n"})
    gone = client.log_artifact("d", root / "a.csv")
    client.log_artifact("d", root / "b.csv")
    client.delete("d:v0")
    with pytest.raises(hw.Conflict) as refused:
        client.alias("d:v0", "best")
    assert str(refused.value) == "d:v0 is deleted: an alias cannot point to it"
    assert client.outbox.dead() == []  # refused at the call, before any batch
    with pytest.raises(hw.Conflict) as refused:  # an adapter's event, straight to the store
        client.emit([AliasMoved(name="d", alias="best", digest=gone.digest)])
    assert str(refused.value) == f"d@{gone.digest} is deleted: an alias cannot point to it"
    assert [m.alias for m in client.alias_history("d", "best")] == []
    assert client.get("d:v1").aliases == ["latest"]


def test_a_manifest_holding_a_file_and_a_folder_of_the_same_name_is_refused() -> None:
    both = [
        ManifestEntry(path="a", digest="blake3:" + "0" * 64, size=1),
        ManifestEntry(path="a/b/c", digest="blake3:" + "1" * 64, size=1),
    ]
    message = "manifest holds both 'a' and 'a/b/c': a file cannot also be a folder"
    with pytest.raises(hw.InvalidInput) as refused:
        manifest_digest(both)
    assert str(refused.value) == message
    with pytest.raises(hw.InvalidInput) as refused:
        VersionRecorded(name="x", digest="ol:x", entries=both)
    assert str(refused.value) == message
    fine = [
        ManifestEntry(path="a-b", digest="blake3:" + "0" * 64, size=1),
        ManifestEntry(path="a/b", digest="blake3:" + "1" * 64, size=1),
    ]
    assert manifest_digest(fine).startswith("blake3:")
    # the store's own check, for a batch that was never validated: test_the_sql_store_refuses_...


def test_an_outbox_entry_that_is_a_folder_is_skipped_with_a_warning(client: hw.Client, caplog) -> None:
    folder = client.outbox.folder / "00000000-0000-0000-0000-000000000000.json"
    folder.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="headwater"):
        assert client.emit([RunRecorded(run_id=hw.run_id("after"), job="after")]) is True
        result = client.sync()
    assert (result.delivered, result.pending, result.dead, result.error) == (0, 0, {}, None)
    assert [r.job for r in client.runs()] == ["after"]
    assert f"headwater: outbox entry {folder} is a folder, not a batch: skipped" in caplog.messages
    assert folder.is_dir()  # not ours to remove


def test_log_artifact_after_a_poison_batch_is_delivered_and_the_poison_set_aside(client: hw.Client, files) -> None:
    poison = client.outbox.write([unchecked_version(type="t" * 200)])
    version = client.log_artifact("clean", files({"a.csv": "x\n"}) / "a.csv")
    assert version.ref == "clean:v0"  # a label: delivered, not left waiting behind the poison
    assert [p.name for p in client.outbox.dead()] == [poison] and client.outbox.pending() == []
    assert [a.name for a in client.artifacts()] == ["clean"]
