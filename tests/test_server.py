"""The tracking server as a team meets it: tokens, limits, malformed input, blobs, health.

Every test talks to a real `headwater server` process on 127.0.0.1 (tests/conftest.py).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from click.testing import CliRunner

import headwater as hw
from headwater.cli import cli
from headwater.digest import manifest_digest
from headwater.errors import Unauthorized
from headwater.models import ManifestEntry

RW = "rw-" + "a1" * 16
RO = "ro-" + "b2" * 16


def call(server: Any, method: str, path: str, token: str | None = RW, **kwargs: Any) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, server.url + path, headers=headers, timeout=30, **kwargs)


def state(server: Any) -> tuple[Any, ...]:
    """Everything a refused request must leave alone."""
    return tuple(call(server, "GET", f"/api/v1/{what}").json() for what in ("artifacts", "runs", "blobs"))


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# the team's tokens\n{RW}\nread-only {RO}  # dashboards\n")
    return path


@pytest.fixture
def secured(server_factory, token_file: Path):
    return server_factory("secured", args=["--token-file", str(token_file), "--max-body-mb", "0.05"])


def test_no_token_or_a_read_only_token_cannot_write(
    secured, token_file: Path, files, tmp_path: Path, monkeypatch, caplog
) -> None:
    root = files({"m.bin": "weights"})
    caplog.set_level(logging.DEBUG)
    anonymous = hw.Client(uri=secured.url, home=tmp_path / "anonymous")
    with pytest.raises(Unauthorized, match="401.*needs a token"):
        anonymous.artifacts()
    # Refused, not an outage: the call says so, and the batch waits in the outbox for a token.
    with pytest.raises(
        Unauthorized,
        match=r"\(401\): this server needs a token: send `Authorization: Bearer TOKEN` .*; the batch waits in the "
        r"outbox until the token is fixed$",
    ):
        anonymous.log_artifact("model", root / "m.bin")
    assert len(anonymous.outbox.pending()) == 1

    monkeypatch.setenv("HEADWATER_TOKEN", RO)
    reader = hw.Client(uri=secured.url, home=tmp_path / "reader")
    assert reader.artifacts() == [] and reader.runs() == []
    with pytest.raises(
        Unauthorized, match=r"\(403\): this token is read-only: recording needs a read-write token; the batch waits"
    ):
        reader.log_artifact("model", root / "m.bin")
    assert len(reader.outbox.pending()) == 1
    event = [{"kind": "run", "run_id": str(uuid.uuid4()), "job": "sneaky"}]
    digest = "blake3:" + "0" * 64
    for method, path, kwargs in (
        ("POST", "/api/v1/events", {"json": event}),
        ("PUT", f"/api/v1/blobs/{digest}", {"content": b"x"}),
        ("DELETE", f"/api/v1/blobs/{digest}", {}),
        ("POST", "/api/v1/lineage", {"json": {}}),
    ):
        for token, status in ((None, 401), ("not-a-token", 401), (RO, 403)):
            answer = call(secured, method, path, token, **kwargs)
            assert answer.status_code == status, (method, path, token, answer.text)
            assert answer.json()["error"] in ("Unauthorized", "Forbidden")
    assert call(secured, "GET", "/api/v1/artifacts", None).status_code == 401
    assert call(secured, "GET", "/healthz", None).status_code == 200  # probes need no token

    monkeypatch.delenv("HEADWATER_TOKEN")
    monkeypatch.setenv("HEADWATER_TOKEN_FILE", str(token_file))  # its first token: read-write
    writer = hw.Client(uri=secured.url, home=tmp_path / "reader")
    assert writer.artifacts() == [] and writer.runs() == []  # nothing was written so far
    assert writer.sync().delivered == 1  # the batch the read-only token could not deliver
    assert writer.get("model").label == "v0" and writer.get("model").download().read_text() == "weights"

    server_log = secured.log.read_text()
    assert "401" in server_log and "403" in server_log  # requests are logged ...
    for token in (RW, RO, "not-a-token"):
        assert token not in server_log and token not in caplog.text  # ... tokens never
    for folder in (tmp_path / "anonymous", tmp_path / "reader"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert RW.encode() not in path.read_bytes() and RO.encode() not in path.read_bytes()


def _version_event(name: str, entries: list[ManifestEntry], digest: str | None = None) -> list[dict[str, Any]]:
    return [
        {
            "kind": "version",
            "name": name,
            "digest": digest or manifest_digest(entries),
            "entries": [e.model_dump() for e in entries],
        }
    ]


def _ol_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": "START",
        "eventTime": "2026-01-01T00:00:00Z",
        "producer": "https://example.com/producer",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "ns", "name": "job"},
        "inputs": [],
        "outputs": [],
    }
    event.update(changes)
    return event


JSON = {"Content-Type": "application/json"}


def test_malformed_input_gets_a_clear_4xx_and_changes_nothing(secured, files, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    client = hw.Client(uri=secured.url)
    client.log_artifact("ds", files({"a.csv": "1"}) / "a.csv")
    before = state(secured)
    escaping = [ManifestEntry(path="../../etc/passwd", digest="blake3:" + "1" * 64, size=1)]
    honest = [ManifestEntry(path="a", digest="blake3:" + "1" * 64, size=1)]
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        (
            "POST",
            "/api/v1/events",
            {"content": b"[{not json", "headers": {"Content-Type": "application/json"}},
            422,
            "not valid JSON",
        ),
        ("POST", "/api/v1/events", {"json": [{"kind": "nope"}]}, 422, "does not match any of the expected tags"),
        ("POST", "/api/v1/events", {"json": [{"kind": "run"}]}, 422, "run_id: Field required"),
        ("POST", "/api/v1/events", {"json": {"kind": "run", "run_id": "r"}}, 422, "list"),
        (
            "POST",
            "/api/v1/events",
            {"json": _version_event("evil", escaping, "blake3:" + "3" * 64)},
            400,
            "escapes its root",
        ),
        (
            "POST",
            "/api/v1/events",
            {"json": _version_event("x", honest, "blake3:" + "2" * 64)},
            400,
            "does not match its manifest",
        ),
        (
            "POST",
            "/api/v1/events",
            {"json": [{"kind": "run", "run_id": "r", "job": "x" * 100_000}]},
            413,
            "limit of 52428 bytes",
        ),
        ("POST", "/api/v1/events", {"content": iter([b"[", b" " * 60_000, b"]"])}, 413, "limit"),  # chunked
        (
            "POST",
            "/api/v1/events",
            {"json": [{"kind": "alias", "name": "ds", "alias": "latest", "digest": None}]},
            400,
            "reserved",
        ),
        ("PUT", "/api/v1/blobs/blake3:" + "0" * 64, {"content": b"not these bytes"}, 409, "hash to blake3:"),
        ("PUT", "/api/v1/blobs/" + quote("../../etc/passwd", safe=""), {"content": b"x"}, 404, "no such endpoint"),
        ("GET", "/api/v1/blobs/blake3:..", {}, 400, "not a blob digest"),
        ("GET", "/api/v1/blobs/blake3:" + "0" * 64, {}, 404, "not stored"),
        ("GET", "/api/v1/version", {"params": {"name": "ds", "label": "x1"}}, 400, "invalid label"),
        ("GET", "/api/v1/version", {"params": {"name": "ds", "label": "v0", "alias": "prod"}}, 400, "give one of"),
        ("GET", "/api/v1/version", {"params": {"name": "nope"}}, 404, "no artifact named 'nope'"),
        ("GET", "/api/v1/lineage", {"params": {"name": "ds", "direction": "sideways"}}, 422, "direction"),
        ("GET", "/api/v1/runs", {"params": {"limit": -1}}, 422, "limit"),
        ("GET", "/api/v1/versions", {"params": {"name": "ds", "metadata": "[1]"}}, 400, "JSON object"),
        ("GET", "/api/v1/holding", {}, 400, "exactly one of digest or path"),
        ("POST", "/api/v1/lineage", {"content": b"{", "headers": JSON}, 400, "not JSON"),
        # a web page may post text/plain or a form cross-site without asking: never a write
        (
            "POST",
            "/api/v1/lineage",
            {"content": json.dumps(_ol_event()), "headers": {"Content-Type": "text/plain"}},
            415,
            "must be JSON",
        ),
        ("POST", "/api/v1/lineage", {"content": json.dumps(_ol_event())}, 415, "not none"),
        (
            "POST",
            "/api/v1/events",
            {"content": b"kind=run", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "must be JSON",
        ),
        (
            "POST",
            "/api/v1/events",
            {"content": b'[{"kind": "run", "run_id": "r"}]', "headers": {"Content-Type": "text/plain"}},
            415,
            "text/plain",
        ),
        ("POST", "/api/v1/lineage", {"json": _ol_event(eventType="FINISH")}, 400, "eventType 'FINISH' is not one of"),
        (
            "POST",
            "/api/v1/lineage",
            {"json": {k: v for k, v in _ol_event().items() if k != "run"}},
            400,
            "missing field run",
        ),
        ("POST", "/api/v1/lineage", {"json": _ol_event(run={"runId": "42"})}, 400, "run.runId '42' is not a UUID"),
        ("POST", "/api/v1/lineage", {"json": _ol_event(eventTime="yesterday")}, 400, "eventTime"),
        (
            "POST",
            "/api/v1/lineage",
            {"json": _ol_event(inputs=[{"namespace": "file"}])},
            400,
            "missing field inputs[0].name",
        ),
        (
            "POST",
            "/api/v1/lineage",
            {"json": [_ol_event(), _ol_event(inputs=[{"namespace": "file", "name": "../../etc/passwd"}])]},
            400,
            "event 1: invalid OpenLineage file dataset '../../etc/passwd': the path must be absolute",
        ),
        ("POST", "/api/v1/lineage", {"json": []}, 400, "empty"),
        (
            "POST",
            "/api/v1/lineage",
            {"content": bomb, "headers": {**JSON, "Content-Encoding": "gzip"}},
            413,
            "decompressed",
        ),
    ]
    for method, path, kwargs, status, fragment in cases:
        answer = call(secured, method, path, **kwargs)
        assert answer.status_code == status, (method, path, answer.status_code, answer.text)
        body = answer.json()
        assert set(body) == {"error", "message"}, body
        assert fragment in body["message"] and "\n" not in body["message"], (path, body)
    assert state(secured) == before
    assert [v.label for v in client.versions("ds")] == ["v0"]
    # no CORS: a browser on another origin may not read an answer either
    answer = call(secured, "GET", "/api/v1/artifacts", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers
    preflight = call(
        secured,
        "OPTIONS",
        "/api/v1/events",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_large_blobs_stream_up_and_down_verified(server_factory, tmp_path: Path) -> None:
    server = server_factory()
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(3 << 20) * 2 + b"tail")  # several 1 MiB chunks
    client = hw.Client(uri=server.url)
    version = client.log_artifact("model", big, type="model")
    stored = list((server.blobs / "blake3").rglob("*"))
    assert [p.stat().st_size for p in stored if p.is_file()] == [big.stat().st_size]
    assert client.blobs.has(version.entries[0].digest)
    restored = version.download(tmp_path / "out")
    assert restored.read_bytes() == big.read_bytes()
    assert list((server.blobs / "tmp").iterdir()) == []  # no upload left half-written
    assert call(server, "HEAD", f"/api/v1/blobs/{version.entries[0].digest}").status_code == 200


def test_health_readiness_and_a_database_the_server_cannot_use(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from headwater.server.app import create_app
    from headwater.server.settings import Settings

    down = Settings(store_uri="postgresql://postgres@127.0.0.1:1/none", blob_uri=str(tmp_path / "blobs"))
    with TestClient(create_app(down)) as app:
        assert app.get("/healthz").json()["status"] == "ok"
        ready = app.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "Unavailable"
        assert "cannot reach" in ready.json()["message"]
        assert app.get("/api/v1/artifacts").status_code == 503

    db = tmp_path / "future.db"
    hw.Client(uri=f"sqlite:///{db}", home=tmp_path / "h").artifacts()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    refused = CliRunner().invoke(cli, ["server", "--store", f"sqlite:///{db}", "--port", "1"])
    assert refused.exit_code == 5, refused.output
    assert refused.stderr.startswith("headwater: error: ") and "newer than this headwater knows" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1


def test_openlineage_output_pointing_at_this_server_is_refused(tmp_path: Path) -> None:
    refused = CliRunner().invoke(
        cli,
        ["server", "--port", "18123", "--store", f"sqlite:///{tmp_path / 'x.db'}"],
        env={"HEADWATER_OPENLINEAGE_URL": "http://localhost:18123"},
    )
    assert refused.exit_code == 2 and "points at this headwater server" in refused.stderr


def test_openapi_schema_describes_every_store_read(server_factory) -> None:
    server = server_factory()
    schema = call(server, "GET", "/openapi.json").json()
    paths = set(schema["paths"])
    for path in (
        "artifacts",
        "artifact",
        "version",
        "versions",
        "runs",
        "run",
        "lineage",
        "lineage/reachable",
        "path",
        "runs-using",
        "holding",
        "alias-history",
        "blobs/referenced",
        "blobs/{digest}",
        "events",
    ):
        assert f"/api/v1/{path}" in paths, path
    assert set(schema["paths"]["/api/v1/lineage"]) == {"get", "post"}  # the graph, and OpenLineage in
    assert "Error" in schema["components"]["schemas"]
    assert json.dumps(schema).count("HTTPBearer") >= 1


def test_http_bench_smoke() -> None:
    bench = Path(__file__).resolve().parent.parent / "bench" / "http_bench.py"
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_TEST_POSTGRES_URL"}
    done = subprocess.run(
        [sys.executable, str(bench), "--events", "20", "--batch", "10", "--workers", "1", "--postgres", "", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    rows = json.loads(done.stdout)
    assert [r["database"] for r in rows] == ["SQLite"]
    assert all(
        rows[0][k] > 0 for k in ("headwater single", "headwater batch", "openlineage single", "openlineage batch")
    )


def test_a_token_given_to_the_client_is_used_for_reads_writes_and_blobs(
    secured, files, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("HEADWATER_TOKEN", raising=False)
    monkeypatch.delenv("HEADWATER_TOKEN_FILE", raising=False)
    client = hw.Client(uri=secured.url, home=tmp_path / "block", token=RW)  # as the Prefect block does
    version = client.log_artifact("model", files({"m.bin": "weights"}) / "m.bin")
    assert version.label == "v0" and client.get("model:v0").download().read_text() == "weights"


def test_downstream_of_is_one_read_with_a_read_token(secured, files, tmp_path: Path, monkeypatch) -> None:
    root = files({"a": "a", "b": "b", "c": "c"})
    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    writer = hw.Client(uri=secured.url, home=tmp_path / "writer")
    writer.log_artifact("a", root / "a")
    writer.log_artifact("b", root / "b")
    with writer.run("join") as run:
        run.use("a")
        run.use("b")
        run.log_artifact("c", root / "c")
    path = "/api/v1/lineage/downstream-of"
    answer = call(secured, "POST", path, RO, json=[{"name": "a", "label": "v0"}, {"name": "b"}])
    assert answer.status_code == 200, answer.text
    graph = hw.LineageGraph.model_validate(answer.json())
    assert ([v.ref for v in graph.versions], [r.job for r in graph.runs]) == (["a:v0", "b:v0", "c:v0"], ["join"])
    assert call(secured, "POST", path, None, json=[{"name": "a"}]).status_code == 401
    assert call(secured, "POST", path, RO, json=[{"name": "nope"}]).status_code == 404
    too_many = [{"name": "a", "label": "v0"}] * 1_001
    assert call(secured, "POST", path, RO, json=too_many).status_code in (413, 422)
    assert call(secured, "POST", path, RO, json=[{"name": "a", "tag": "x"}]).status_code == 422
    form = call(secured, "POST", path, RO, content=b'[{"name": "a"}]', headers={"Content-Type": "text/plain"})
    assert form.status_code == 415
    # Client.impact over HTTP: one request for every version holding the file, not one each.
    before = secured.log.read_text().count("downstream-of")
    monkeypatch.setenv("HEADWATER_TOKEN", RO)
    reader = hw.Client(uri=secured.url, home=tmp_path / "reader")
    impact = reader.impact(ref="c:v0")
    assert [v.ref for v in impact.downstream.versions] == ["c:v0"]
    impact = reader.impact(ref="a:v0")
    assert [v.ref for v in impact.downstream.versions] == ["a:v0", "c:v0"]
    log = secured.log.read_text()
    assert log.count("downstream-of") == before + 2 and "GET /api/v1/lineage?" not in log


def test_reachable_is_one_small_read_with_a_read_token(secured, files, tmp_path: Path, monkeypatch) -> None:
    root = files({"a": "a", "b": "b", "c": "c"})
    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    writer = hw.Client(uri=secured.url, home=tmp_path / "writer")
    writer.log_artifact("a", root / "a")
    with writer.run("make-b") as make_b:
        make_b.use("a")
        make_b.log_artifact("b", root / "b")
    with writer.run("make-c") as make_c:
        make_c.use("b")
        make_c.log_artifact("c", root / "c")
    path = "/api/v1/lineage/reachable"
    answer = call(secured, "GET", path, RO, params={"name": "a", "label": "v0", "direction": "downstream"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "root": "a:v0",
        "direction": "downstream",
        "versions": {"a:v0": 0, "b:v0": 1, "c:v0": 2},
        "runs": {make_b.id: 1, make_c.id: 2},
    }
    up = call(secured, "GET", path, RO, params={"name": "c", "direction": "upstream", "depth": 1}).json()
    assert (up["versions"], up["runs"]) == ({"c:v0": 0, "b:v0": 1}, {make_c.id: 1})
    refused = [
        (None, {"name": "a", "direction": "downstream"}, 401, "token"),
        (RO, {"name": "nope", "direction": "downstream"}, 404, "no artifact named 'nope'"),
        (RO, {"name": "a", "label": "v7", "direction": "downstream"}, 404, "has no version v7"),
        (RO, {"name": "a", "direction": "sideways"}, 422, "direction"),
        (RO, {"name": "a"}, 422, "direction"),
        (RO, {"name": "a", "direction": "upstream", "depth": -1}, 422, "depth"),
        (RO, {"name": "a", "direction": "upstream", "depth": "all"}, 422, "depth"),
        (RO, {"name": "a", "label": "x1", "direction": "upstream"}, 400, "invalid label"),
    ]
    for token, params, status, fragment in refused:
        answer = call(secured, "GET", path, token, params=params)
        assert (answer.status_code, fragment in answer.json()["message"]) == (status, True), (params, answer.text)
    # HTTPStore asks this route: one request, never the graph's
    before = secured.log.read_text().count(path)
    monkeypatch.setenv("HEADWATER_TOKEN", RO)
    reader = hw.Client(uri=secured.url, home=tmp_path / "reader")
    assert list(reader.reachable("a:v0").versions) == ["a:v0", "b:v0", "c:v0"]
    log = secured.log.read_text()
    assert log.count(path) == before + 1 and "GET /api/v1/lineage?" not in log
