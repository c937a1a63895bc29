"""Blob bytes straight between clients and an S3 blob store by presigned URLs, never through the server.

Real parts: `headwater server` processes whose blobs live in a bucket of moto's S3 server, real
clients over HTTP, and what reaches each server read from its access log: a blob uploaded by URL
shows up there as two small JSON requests (the URL asked for, the upload reported) and never as a
`PUT /api/v1/blobs/...` carrying its bytes; a download as a 307 to the bucket. The bytes are then
read back from the bucket itself. moto checks neither signatures nor expiry, so what S3 enforces
(the expiry, the signed length) is asserted on the URLs the server hands out, and the server's own
checks (the content hashed before it is published, tokens, fallbacks) are exercised for real.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import headwater as hw
from headwater.digest.hashing import hash_bytes
from headwater.errors import Conflict
from tests.conftest import ServerProcess, free_port

# moto's S3 server and a boto3 client of it, shared with that module
from tests.test_references_cloud import s3, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.slow

BUCKET = "blobs"  # made by the s3_endpoint fixture
RW, RO = "rw-" + "a" * 20, "ro-" + "b" * 20
EXPIRY_S = 120
_REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


class S3Server(ServerProcess):
    """A server whose blobs live in the bucket under `prefix`, with a read-write and a read-only token."""

    def __init__(self, folder: Path, prefix: str, **env: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tokens").write_text(f"{RW}\nread-only {RO}\n")
        super().__init__(folder, env=env, args=["--token-file", str(folder / "tokens")])
        self.prefix = prefix
        self.log_seen = 0

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--blobs") + 1] = f"s3://{BUCKET}/{self.prefix}"
        return command

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of each request the server logged since the last call."""
        time.sleep(0.2)  # the access log line is written as the answer goes out
        text = self.log.read_text(errors="replace")
        new, self.log_seen = text[self.log_seen :], len(text)
        return [(m[1], m[2].replace("%3A", ":"), int(m[3])) for m in _REQUEST.finditer(new)]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
    s3_endpoint: str,  # noqa: F811  (the imported fixture, requested)
) -> Iterator[dict[str, S3Server]]:
    """`direct`: presigning on (the default for s3://); `through`: HEADWATER_BLOB_PRESIGN=false.
    The AWS_* variables pointing at moto come from s3_endpoint's environment."""
    root = tmp_path_factory.mktemp("presign")
    started = {
        "direct": S3Server(root / "direct", f"direct-{uuid.uuid4().hex[:8]}", HEADWATER_BLOB_PRESIGN_EXPIRY="2m"),
        "through": S3Server(root / "through", f"through-{uuid.uuid4().hex[:8]}", HEADWATER_BLOB_PRESIGN="false"),
    }
    try:
        for server in started.values():
            server.start()
            server.requests()  # the start-up's probes
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def direct(servers: dict[str, S3Server]) -> S3Server:
    servers["direct"].requests()
    return servers["direct"]


@pytest.fixture
def through(servers: dict[str, S3Server]) -> S3Server:
    servers["through"].requests()
    return servers["through"]


@pytest.fixture
def client_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    made: list[hw.Client] = []

    def make(server: S3Server) -> hw.Client:
        made.append(hw.Client(uri=server.url, home=tmp_path / f"home-{len(made)}"))
        return made[-1]

    yield make
    for client in made:
        client.close()


def keys(s3: Any, prefix: str) -> dict[str, bytes]:  # noqa: F811  (s3 is the boto3 client here)
    """Every object under `prefix` in the bucket, by key relative to it, with its bytes."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            found[obj["Key"][len(prefix) + 1 :]] = body
    return found


def blob_key(digest: str) -> str:
    hexd = digest.split(":", 1)[1]
    return f"blake3/{hexd[:2]}/{hexd[2:]}"


def call(server: S3Server, method: str, path: str, token: str | None = RW, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, server.url + "/api/v1" + path, headers=headers, timeout=30, **kwargs)


def ask_upload(server: S3Server, content: bytes, token: str | None = RW) -> httpx.Response:
    return call(
        server, "POST", "/blobs/uploads", token, json={"blobs": [{"digest": hash_bytes(content), "size": len(content)}]}
    )


def test_bytes_go_to_the_bucket_and_come_back_from_it_never_through_the_server(
    direct: S3Server,
    client_of: Any,
    tmp_path: Path,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    model, labels = tmp_path / "out" / "model.bin", tmp_path / "out" / "labels.csv"
    model.parent.mkdir()
    model.write_bytes(uuid.uuid4().bytes * (3 << 16))  # 3 MiB: several chunks
    labels.write_bytes(b"id,label\n1,cat\n")
    client = client_of(direct)
    with client.run("train") as run:
        version = run.log_artifact("model", model.parent)

    # the graph: one run, one version of the two files, produced by it
    assert (version.ref, version.produced_by) == ("model:v0", run.id)
    assert sorted((e.path, e.digest, e.size) for e in version.entries) == sorted(
        (p.name, hash_bytes(p.read_bytes()), p.stat().st_size) for p in (model, labels)
    )
    assert client.get_run(run.id).outputs == ["model:v0"] and client.get_run(run.id).status == "succeeded"

    # what reached the server: per blob, an ask and a report (JSON), never the bytes
    digests = {hash_bytes(p.read_bytes()) for p in (model, labels)}
    seen = direct.requests()
    blob_requests = [(m, p, s) for m, p, s in seen if p.startswith("/api/v1/blobs")]
    assert sorted(blob_requests) == sorted(
        [("POST", "/api/v1/blobs/uploads", 200)] * 2 + [("POST", f"/api/v1/blobs/{d}/uploaded", 200) for d in digests]
    )
    assert not [r for r in seen if r[0] == "PUT"]

    # in the bucket: each blob under its digest, its exact bytes; no upload left behind
    stored = keys(s3, direct.prefix)
    for p in (model, labels):
        assert stored[blob_key(hash_bytes(p.read_bytes()))] == p.read_bytes()
    assert not [k for k in stored if k.startswith("uploads/")]

    # downloads: a 307 to the bucket, the bytes verified by the client
    reader = client_of(direct)
    folder = reader.download(reader.get("model:v0"), tmp_path / "restored")
    assert (folder / "model.bin").read_bytes() == model.read_bytes()
    assert (folder / "labels.csv").read_bytes() == labels.read_bytes()
    downloads = [(m, p.split("?")[0], s) for m, p, s in direct.requests() if p.startswith("/api/v1/blobs/")]
    assert sorted(downloads) == sorted(("GET", f"/api/v1/blobs/{d}", 307) for d in digests)

    # logged again: the server says it is stored; nothing is uploaded
    again = client_of(direct)
    assert again.log_artifact("model", model.parent).ref == "model:v0"
    assert sorted(p for m, p, _ in direct.requests() if p.startswith("/api/v1/blobs")) == ["/api/v1/blobs/uploads"] * 2


def test_wrong_content_uploaded_by_url_is_refused_and_nothing_is_stored(
    direct: S3Server,
    client_of: Any,
    tmp_path: Path,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    right, wrong = b"the right bytes\n", b"other bytes!!!!\n"
    assert len(right) == len(wrong)
    offer = ask_upload(direct, right).json()
    assert offer["direct"] is True and offer["stored"] == []
    (upload,) = offer["uploads"]
    assert httpx.put(upload["url"], content=wrong).status_code == 200  # the bucket takes anything
    digest = hash_bytes(right)
    answer = call(direct, "POST", f"/blobs/{digest}/uploaded", json={"upload": upload["upload"]})
    assert answer.status_code == 409
    assert answer.json() == {
        "error": "Conflict",
        "message": f"the {len(wrong)} bytes uploaded hash to {hash_bytes(wrong)}, not {digest}: nothing was stored",
    }
    assert keys(s3, direct.prefix).get(blob_key(digest)) is None
    assert not [k for k in keys(s3, direct.prefix) if k.startswith("uploads/")]  # the staged object went too
    assert call(direct, "HEAD", f"/blobs/{digest}").status_code == 404
    # reported twice: the upload is gone
    again = call(direct, "POST", f"/blobs/{digest}/uploaded", json={"upload": upload["upload"]})
    assert (again.status_code, again.json()["error"]) == (404, "NotFound")
    assert call(direct, "POST", f"/blobs/{digest}/uploaded", json={"upload": "../../x"}).status_code == 400

    # a client whose file does not hash to the digest it names (changed since it was hashed):
    # Conflict, as with a local blob store, and nothing stored under that digest
    path = tmp_path / "changed.txt"
    path.write_bytes(wrong)
    client = client_of(direct)
    with pytest.raises(Conflict, match=f"hash to {hash_bytes(wrong)}, not {digest}"):
        client.store.blobs.put_file(path, digest)
    assert keys(s3, direct.prefix).get(blob_key(digest)) is None


def test_a_read_only_token_gets_no_upload_url_but_downloads_by_one(direct: S3Server) -> None:
    content = f"read only {uuid.uuid4()}\n".encode()
    digest = hash_bytes(content)
    for token, status in ((None, 401), (RO, 403)):
        assert ask_upload(direct, content, token).status_code == status
        assert call(direct, "POST", f"/blobs/{digest}/uploaded", token, json={"upload": "0" * 32}).status_code == status
    assert call(direct, "PUT", f"/blobs/{digest}", RW, content=content).status_code == 200  # through the server
    answer = call(direct, "GET", f"/blobs/{digest}", RO, params={"redirect": "true"})
    assert answer.status_code == 307 and answer.headers["cache-control"] == "no-store"
    assert "Authorization" not in answer.headers["location"] and RO not in answer.headers["location"]
    assert httpx.get(answer.headers["location"]).content == content  # no token: the URL is the key
    missing = hash_bytes(b"never stored")
    assert call(direct, "GET", f"/blobs/{missing}", RO, params={"redirect": "true"}).status_code == 404


def test_urls_are_short_lived_and_sign_the_length(direct: S3Server) -> None:
    """moto enforces neither expiry nor signatures: the URLs carry what real S3 enforces (SigV4,
    HEADWATER_BLOB_PRESIGN_EXPIRY, the declared length)."""
    content = f"expiring {uuid.uuid4()}\n".encode()
    (upload,) = ask_upload(direct, content).json()["uploads"]
    assert upload["expires_in"] == EXPIRY_S
    put = parse_qs(urlsplit(upload["url"]).query)
    assert put["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and put["X-Amz-Expires"] == [str(EXPIRY_S)]
    assert put["X-Amz-SignedHeaders"] == ["content-length;host"]
    signed_at = datetime.strptime(put["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - signed_at).total_seconds()) < 60
    assert (
        urlsplit(upload["url"]).path
        == f"/{BUCKET}/{direct.prefix}/uploads/{hash_bytes(content)[7:]}/{upload['upload']}"
    )
    assert httpx.put(upload["url"], content=content).status_code == 200
    digest = hash_bytes(content)
    assert call(direct, "POST", f"/blobs/{digest}/uploaded", json={"upload": upload["upload"]}).json() == {
        "digest": digest,
        "stored": True,
        "size": len(content),
    }
    location = call(direct, "GET", f"/blobs/{digest}", params={"redirect": "true"}).headers["location"]
    get = parse_qs(urlsplit(location).query)
    assert get["X-Amz-Expires"] == [str(EXPIRY_S)] and get["X-Amz-SignedHeaders"] == ["host"]
    # a blob larger than the server takes gets no URL: 413, as its upload would
    too_big = call(direct, "POST", "/blobs/uploads", json={"blobs": [{"digest": digest, "size": 2000 << 30}]})
    assert too_big.status_code == 413


def test_an_upload_never_reported_is_swept_when_a_server_starts(
    direct: S3Server,
    tmp_path: Path,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    content = f"abandoned {uuid.uuid4()}\n".encode()
    (upload,) = ask_upload(direct, content).json()["uploads"]
    assert httpx.put(upload["url"], content=content).status_code == 200
    staged = f"uploads/{hash_bytes(content)[7:]}/{upload['upload']}"
    assert keys(s3, direct.prefix).get(staged) == content
    # a server on the same bucket prefix, with no grace, sweeps it; the published blobs stay
    published = {k: v for k, v in keys(s3, direct.prefix).items() if k.startswith("blake3/")}
    sweeper = S3Server(tmp_path / "sweeper", direct.prefix, HEADWATER_GC_GRACE="0")
    sweeper.start()
    try:
        after = keys(s3, direct.prefix)
        assert staged not in after and not [k for k in after if k.startswith("uploads/")]
        assert {k: v for k, v in after.items() if k.startswith("blake3/")} == published
    finally:
        sweeper.stop()


def test_presigning_off_every_byte_passes_through_the_server(
    through: S3Server,
    client_of: Any,
    tmp_path: Path,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights through the server\n")
    digest = hash_bytes(path.read_bytes())
    client = client_of(through)
    version = client.log_artifact("weights", path)
    assert [(e.path, e.digest) for e in version.entries] == [("weights.bin", digest)]
    seen = [r for r in through.requests() if r[1].startswith("/api/v1/blobs")]
    # asked once, told `direct: false`, then the bytes go through as before
    assert seen == [("POST", "/api/v1/blobs/uploads", 200), ("PUT", f"/api/v1/blobs/{digest}", 200)]
    assert ask_upload(through, b"x").json() == {"direct": False, "stored": [], "uploads": []}
    assert keys(s3, through.prefix) == {blob_key(digest): path.read_bytes()}
    through.requests()
    # the next blob: not asked again
    other = tmp_path / "other.bin"
    other.write_bytes(b"another\n")
    client.log_artifact("other", other)
    other_digest = hash_bytes(b"another\n")
    assert [r[:2] for r in through.requests() if r[1].startswith("/api/v1/blobs")] == [
        ("HEAD", f"/api/v1/blobs/{other_digest}"),
        ("PUT", f"/api/v1/blobs/{other_digest}"),
    ]
    # downloads: the bytes, not a redirect
    restored = client.download(client.get("weights"), tmp_path / "restored")
    assert restored.read_bytes() == path.read_bytes()
    assert [(m, p.split("?")[0], s) for m, p, s in through.requests() if p.startswith("/api/v1/blobs/")] == [
        ("GET", f"/api/v1/blobs/{digest}", 200)
    ]


def test_a_bucket_the_client_cannot_reach_falls_back_to_the_server(
    direct: S3Server,
    client_of: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    """The bucket's endpoint is out of the client's reach (here: every request but the server's
    goes to a proxy that is not there): the bytes go through the server, both ways."""
    path = tmp_path / "far.bin"
    path.write_bytes(f"far from the bucket {uuid.uuid4()}\n".encode())
    digest = hash_bytes(path.read_bytes())
    with monkeypatch.context() as env:
        env.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        env.setenv("NO_PROXY", direct.url)
        client = client_of(direct)
        version = client.log_artifact("far", path)
        seen = [(m, p, s) for m, p, s in direct.requests() if p.startswith("/api/v1/blobs")]
        restored = client_of(direct).download(client.get("far"), tmp_path / "restored")
    assert [(e.path, e.digest) for e in version.entries] == [("far.bin", digest)]
    assert seen == [("POST", "/api/v1/blobs/uploads", 200), ("PUT", f"/api/v1/blobs/{digest}", 200)]
    assert restored.read_bytes() == path.read_bytes()
    assert [(m, p.split("?")[0], s) for m, p, s in direct.requests() if p.startswith("/api/v1/blobs/")] == [
        ("GET", f"/api/v1/blobs/{digest}", 307),
        ("GET", f"/api/v1/blobs/{digest}", 200),
    ]
    # what did reach the bucket came through the server: the blob, and no upload left behind
    stored = keys(s3, direct.prefix)
    assert stored[blob_key(digest)] == path.read_bytes()
    assert not [k for k in stored if k.startswith("uploads/")]


def test_a_purge_removes_the_bytes_from_the_bucket_and_a_url_handed_out_before_stops_working(
    direct: S3Server,
    client_of: Any,
    tmp_path: Path,
    s3: Any,  # noqa: F811  (the imported fixture, requested)
) -> None:
    folder = tmp_path / "users"
    folder.mkdir()
    secret, fine = f"alice,{uuid.uuid4()}\n".encode(), b"bob,fine\n"
    (folder / "secret.csv").write_bytes(secret)
    (folder / "fine.csv").write_bytes(fine)
    client = client_of(direct)
    version = client.log_artifact("users", folder)
    gone = hash_bytes(secret)
    url = call(direct, "GET", f"/blobs/{gone}", params={"redirect": "true"}).headers["location"]
    assert httpx.get(url).content == secret  # within its expiry

    report = client.purge(reason="takedown", path="secret.csv")
    assert isinstance(report, hw.PurgeReport) and report.removed_server_blobs == [gone]
    stored = keys(s3, direct.prefix)
    assert blob_key(gone) not in stored and stored[blob_key(hash_bytes(fine))] == fine
    assert not any(secret in body for body in stored.values())
    # the URL handed out before the purge is still within its expiry: the object is gone, 404
    assert httpx.get(url).status_code == 404
    # and no new URL is handed out for it
    assert call(direct, "GET", f"/blobs/{gone}", params={"redirect": "true"}).status_code == 404
    assert client.get(version.ref).download(entry="fine.csv").read_bytes() == fine
