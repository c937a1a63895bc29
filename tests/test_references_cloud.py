"""S3 and GCS references and blob stores, for real, against servers on 127.0.0.1.

S3 is moto's server (``moto.server.ThreadedMotoServer``): boto3, s3fs and aiobotocore reach it
through ``AWS_ENDPOINT_URL``, which botocore reads when a client is made. GCS is
gcp-storage-emulator: gcsfs reaches it through ``STORAGE_EMULATOR_HOST``, with ``token="anon"``
from fsspec's configuration (so no credential lookup ever leaves the machine) and gcsfs's
experimental bucket-type probe turned off (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``: that
probe speaks gRPC over TLS to the emulator's plain HTTP port and waits a minute per call).
One server of each per module; every test writes under a prefix of its own.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import fsspec.config
import pytest

import headwater as hw
from headwater.api import Client
from headwater.digest import reference_manifest, reference_status
from headwater.models import ManifestEntry

pytest.importorskip("moto", reason="the dev extra installs moto[server,s3]")

# fsspec's protocol -> class cache (`fsspec.registry` is a read-only view of it).
_FSSPEC_CLASSES: dict[str, Any] = sys.modules["fsspec.registry"]._registry  # type: ignore[attr-defined]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- S3 on moto --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.delenv("AWS_SESSION_TOKEN", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        import boto3
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()  # none made before the endpoint was set
        client = boto3.client("s3")
        for bucket in ("plain", "versioned", "blobs", "blobs-versioned"):
            client.create_bucket(Bucket=bucket)
            if bucket.endswith("versioned"):
                client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        try:
            yield endpoint
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client("s3")


@pytest.fixture(params=["plain", "versioned"])
def bucket(request: pytest.FixtureRequest, s3_endpoint: str) -> str:
    return str(request.param)


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    c = hw.Client(uri=f"sqlite:///{tmp_path}/db", home=tmp_path)
    yield c
    c.close()


def _put(s3: Any, bucket: str, key: str, data: bytes) -> str | None:
    """Write an object; its version id in a versioned bucket, else None."""
    out = s3.put_object(Bucket=bucket, Key=key, Body=data)
    return out.get("VersionId")


FILES = {"a.txt": b"alpha\n", "sub/b.csv": b"x,y\n1,2\n", "sub/deeper/c.bin": bytes(range(256))}


def _put_tree(s3: Any, bucket: str, prefix: str) -> None:
    for rel, data in FILES.items():
        _put(s3, bucket, f"{prefix}/{rel}", data)


def test_prefix_reference_records_every_object_with_its_etag(client: Client, s3: Any, bucket: str, prefix: str) -> None:
    _put_tree(s3, bucket, prefix)
    version = client.log_reference("raw", f"s3://{bucket}/{prefix}/")
    assert version.label == "v0"
    assert [e.path for e in version.entries] == sorted(FILES)
    for entry in version.entries:
        data = FILES[entry.path]
        assert entry.ref == f"s3://{bucket}/{prefix}/{entry.path}"
        assert entry.size == len(data)
        # A listing carries no version id, versioned bucket or not: the ETag (MD5 here).
        assert entry.digest == f"etag:{_md5(data)}"
        assert reference_status(entry) == "ok"
    again = client.log_reference("raw", f"s3://{bucket}/{prefix}")
    assert (again.label, again.digest) == ("v0", version.digest)


def test_single_object_reference_records_its_version_id_or_etag(
    client: Client, s3: Any, bucket: str, prefix: str
) -> None:
    version_id = _put(s3, bucket, f"{prefix}/model.pt", b"weights")
    version = client.log_reference("model", f"s3://{bucket}/{prefix}/model.pt")
    (entry,) = version.entries
    assert (entry.path, entry.size, entry.ref) == (
        "model.pt",
        7,
        f"s3://{bucket}/{prefix}/model.pt",
    )
    if bucket == "versioned":
        assert version_id and entry.digest == f"s3v:{version_id}"
    else:
        assert version_id is None and entry.digest == f"etag:{_md5(b'weights')}"
    assert reference_status(entry) == "ok"
    assert client.verify(version.ref).ok
    assert Path(client.download(version, client.home / "out")).read_bytes() == b"weights"
    same = client.log_reference("model", f"s3://{bucket}/{prefix}/model.pt")
    assert (same.label, same.digest) == ("v0", version.digest)


def test_versioned_prefix_entry_compares_etag_with_etag(client: Client, s3: Any, prefix: str) -> None:
    """The bug this fixes: a listing gives etag:, a lookup of the same object s3v:."""
    _put(s3, "versioned", f"{prefix}/a.txt", b"alpha\n")
    (listed,) = client.log_reference("raw", f"s3://versioned/{prefix}").entries
    (looked_up,) = reference_manifest(listed.ref or "")
    assert listed.digest.startswith("etag:") and looked_up.digest.startswith("s3v:")
    assert reference_status(listed) == "ok"
    assert reference_status(looked_up) == "ok"
    _put(s3, "versioned", f"{prefix}/a.txt", b"alpha\n")  # same bytes, a new version
    assert reference_status(listed) == "ok"  # the ETag is the same: the same bytes
    assert reference_status(looked_up) == "drifted"  # another version id


def test_versioned_prefix_through_the_api(client: Client, s3: Any, prefix: str) -> None:
    _put_tree(s3, "versioned", prefix)
    version = client.log_reference("raw", f"s3://versioned/{prefix}/")
    report = client.verify(version.ref)
    assert report.ok, report
    folder = client.download(version, client.home / "out")
    assert {rel: (folder / rel).read_bytes() for rel in FILES} == FILES
    _put(s3, "versioned", f"{prefix}/a.txt", b"alpha, edited\n")
    s3.delete_object(Bucket="versioned", Key=f"{prefix}/sub/b.csv")
    report = client.verify(version.ref)
    assert (report.drifted, report.missing, report.changed) == (["a.txt"], ["sub/b.csv"], [])
    assert Path(client.download(version, client.home / "c", entry="sub/deeper/c.bin")).read_bytes()


@pytest.mark.parametrize("bucket", ["plain", "versioned"])
def test_unchanged_reference_downloads(client: Client, s3: Any, bucket: str, prefix: str) -> None:
    _put_tree(s3, bucket, prefix)
    version = client.log_reference("raw", f"s3://{bucket}/{prefix}/")
    assert client.verify(version.ref).ok
    folder = client.download(version)  # into the cache
    assert {rel: (folder / rel).read_bytes() for rel in FILES} == FILES
    one = client.download(version, client.home / "one", entry="sub/b.csv")
    assert one.read_bytes() == FILES["sub/b.csv"]


def test_overwrite_makes_a_new_version_and_the_old_one_drifts(
    client: Client, s3: Any, bucket: str, prefix: str
) -> None:
    _put_tree(s3, bucket, prefix)
    uri = f"s3://{bucket}/{prefix}"
    old = client.log_reference("raw", uri)
    _put(s3, bucket, f"{prefix}/a.txt", b"alpha, edited\n")
    new = client.log_reference("raw", uri)  # same process: no stale listing may answer
    assert (old.label, new.label) == ("v0", "v1")
    assert new.digest != old.digest
    assert client.diff(old.ref, new.ref).changed == ["a.txt"]

    old_entries = {e.path: e for e in old.entries}
    assert reference_status(old_entries["a.txt"]) == "drifted"
    assert reference_status(old_entries["sub/b.csv"]) == "ok"
    report = client.verify(old.ref)
    assert not report.ok and "a.txt" in report.drifted  # exactly: test_versioned_prefix_through...
    if bucket == "plain":
        assert (report.drifted, report.missing, report.changed) == (["a.txt"], [], [])
    with pytest.raises(hw.Conflict):
        client.download(old, client.home / "old")
    single = client.log_reference("a", f"{uri}/a.txt")
    assert Path(client.download(single, client.home / "a")).read_bytes() == b"alpha, edited\n"


def test_a_pinned_version_id_downloads_that_version_after_the_object_changed(
    client: Client, s3: Any, prefix: str
) -> None:
    key = f"{prefix}/model.pt"
    first = _put(s3, "versioned", key, b"weights v1")
    pinned = client.log_reference("model", f"s3://versioned/{key}")
    assert [e.digest for e in pinned.entries] == [f"s3v:{first}"]
    second = _put(s3, "versioned", key, b"weights, retrained")
    assert client.status() == [
        hw.Drift(
            version="model:v0", path="model.pt", ref=f"s3://versioned/{key}", digest=f"s3v:{first}", status="drifted"
        )
    ]
    assert Path(client.download(pinned, client.home / "old")).read_bytes() == b"weights v1"
    newer = client.log_reference("model", f"s3://versioned/{key}")
    assert (newer.label, newer.entries[0].digest) == ("v1", f"s3v:{second}")
    assert client.status() == []  # v0 is no longer latest nor aliased: not in use
    assert [d.status for d in client.status(["model:v0"])] == ["drifted"]
    s3.delete_object(Bucket="versioned", Key=key)  # a delete marker: the versions stay
    assert [d.status for d in client.check("model:v1")] == ["missing"]
    assert Path(client.download(newer, client.home / "new")).read_bytes() == b"weights, retrained"
    s3.delete_object(Bucket="versioned", Key=key, VersionId=first)  # that version itself is gone
    with pytest.raises(hw.NotFound, match="no longer keeps the version recorded"):
        client.download(pinned, client.home / "gone")


def test_deleted_object_is_missing(client: Client, s3: Any, bucket: str, prefix: str) -> None:
    _put_tree(s3, bucket, prefix)
    version = client.log_reference("raw", f"s3://{bucket}/{prefix}")
    single = client.log_reference("one", f"s3://{bucket}/{prefix}/a.txt")
    s3.delete_object(Bucket=bucket, Key=f"{prefix}/a.txt")  # a delete marker when versioned
    entries = {e.path: e for e in version.entries}
    assert reference_status(entries["a.txt"]) == "missing"
    assert reference_status(single.entries[0]) == "missing"
    assert reference_status(entries["sub/b.csv"]) == "ok"
    report = client.verify(version.ref)
    assert report.missing == ["a.txt"] and not report.ok
    assert client.verify(single.ref).missing == ["a.txt"]


def test_a_prefix_where_an_object_was_is_missing(s3: Any, bucket: str, prefix: str) -> None:
    _put(s3, bucket, f"{prefix}/x/inner.txt", b"inner")
    entry = ManifestEntry(path="x", digest="etag:0123", size=1, ref=f"s3://{bucket}/{prefix}/x")
    assert reference_status(entry) == "missing"


# --- the blob store on S3 ----------------------------------------------------------------------


@pytest.mark.parametrize("blob_bucket", ["blobs", "blobs-versioned"])
def test_blob_store_on_s3(
    client: Client,
    s3: Any,
    blob_bucket: str,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEADWATER_BLOB_URI", f"s3://{blob_bucket}/{prefix}")
    src = tmp_path / "model"
    (src / "shards").mkdir(parents=True)
    (src / "config.json").write_bytes(b'{"layers": 2}')
    (src / "shards" / "0.bin").write_bytes(os.urandom(3000))
    (src / "shards" / "1.bin").write_bytes(b'{"layers": 2}')  # the same bytes: one blob
    version = client.log_artifact("model", src)
    assert all(e.ref is None for e in version.entries)
    listed = s3.list_objects_v2(Bucket=blob_bucket, Prefix=f"{prefix}/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    expected = sorted({f"{prefix}/blake3/{e.digest[7:9]}/{e.digest[9:]}" for e in version.entries})
    assert keys == expected and len(keys) == 2

    out = client.download(version, tmp_path / "restored")
    for rel in ("config.json", "shards/0.bin", "shards/1.bin"):
        assert (out / rel).read_bytes() == (src / rel).read_bytes()
    assert client.verify(version.ref).ok

    # Same content again: nothing new is uploaded, the same version comes back.
    again = client.log_artifact("model", src)
    assert (again.label, again.digest) == ("v0", version.digest)

    # A blob damaged in the bucket is never handed back.
    config = next(e for e in version.entries if e.path == "config.json")
    s3.put_object(
        Bucket=blob_bucket,
        Key=f"{prefix}/blake3/{config.digest[7:9]}/{config.digest[9:]}",
        Body=b"{}",
    )
    with pytest.raises(hw.Conflict):
        client.download(version, tmp_path / "bad", entry="config.json")
    assert not (tmp_path / "bad" / "config.json").exists()
    assert client.verify(version.ref).changed == ["config.json", "shards/1.bin"]


# --- GCS on gcp-storage-emulator ---------------------------------------------------------------

GCS_BUCKET = "hw-gcs"


@pytest.fixture(scope="module")
def gcs() -> Iterator[Any]:
    """A gcsfs file system on a gcp-storage-emulator at 127.0.0.1, with one bucket."""
    pytest.importorskip("gcp_storage_emulator", reason="the dev extra installs it")
    from gcp_storage_emulator.server import create_server

    server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=GCS_BUCKET)
    server.start()
    httpd = server._api._httpd
    port = httpd.server_address[1]
    report_error = httpd.handle_error

    def quiet_handle_error(request: Any, client_address: Any) -> None:
        # gcsfs may close a connection before the emulator has written its whole reply.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            report_error(request, client_address)

    httpd.handle_error = quiet_handle_error
    saved_conf = {k: dict(v) for k, v in fsspec.config.conf.items() if k in ("gs", "gcs")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
        mp.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # read when gcsfs is imported
        mp.setenv("NO_GCE_CHECK", "true")
        import gcsfs.core

        fs_class = fsspec.get_filesystem_class("gs")
        if fs_class is not gcsfs.core.GCSFileSystem:  # gcsfs was imported before the env var
            mp.setitem(_FSSPEC_CLASSES, "gs", gcsfs.core.GCSFileSystem)
            mp.setitem(_FSSPEC_CLASSES, "gcs", gcsfs.core.GCSFileSystem)
        fsspec.config.conf.setdefault("gs", {})["token"] = "anon"
        gcsfs.core.GCSFileSystem.clear_instance_cache()
        try:
            yield fsspec.filesystem("gs")
        finally:
            gcsfs.core.GCSFileSystem.clear_instance_cache()
            for key in ("gs", "gcs"):
                fsspec.config.conf.pop(key, None)
            fsspec.config.conf.update(saved_conf)
            server.stop()


def _gput(fs: Any, path: str, data: bytes) -> str:
    """Write an object; its generation."""
    with fs.open(f"{GCS_BUCKET}/{path}", "wb") as f:
        f.write(data)
    fs.invalidate_cache()
    return str(fs.info(f"{GCS_BUCKET}/{path}")["generation"])


def test_gcs_prefix_and_single_object_record_the_generation(client: Client, gcs: Any, prefix: str) -> None:
    generations = {rel: _gput(gcs, f"{prefix}/{rel}", data) for rel, data in FILES.items()}
    version = client.log_reference("raw", f"gs://{GCS_BUCKET}/{prefix}/")
    assert [e.path for e in version.entries] == sorted(FILES)
    for entry in version.entries:
        assert entry.ref == f"gs://{GCS_BUCKET}/{prefix}/{entry.path}"
        assert entry.size == len(FILES[entry.path])
        assert entry.digest == f"gsgen:{generations[entry.path]}"
        assert reference_status(entry) == "ok"
    # gcs:// folds to gs://, and a lookup of one object agrees with the listing.
    (single,) = client.log_reference("one", f"gcs://{GCS_BUCKET}/{prefix}/a.txt").entries
    assert single.digest == f"gsgen:{generations['a.txt']}"
    assert client.verify(version.ref).ok
    folder = client.download(version, client.home / "out")
    assert {rel: (folder / rel).read_bytes() for rel in FILES} == FILES
    again = client.log_reference("raw", f"gs://{GCS_BUCKET}/{prefix}")
    assert (again.label, again.digest) == ("v0", version.digest)


def test_gcs_overwrite_drifts_and_delete_is_missing(client: Client, gcs: Any, prefix: str) -> None:
    for rel, data in FILES.items():
        _gput(gcs, f"{prefix}/{rel}", data)
    uri = f"gs://{GCS_BUCKET}/{prefix}"
    old = client.log_reference("raw", uri)
    _gput(gcs, f"{prefix}/a.txt", b"alpha, edited\n")
    new = client.log_reference("raw", uri)
    assert (old.label, new.label) == ("v0", "v1")
    report = client.verify(old.ref)
    assert report.drifted == ["a.txt"] and not report.ok
    with pytest.raises(hw.Conflict):
        client.download(old, client.home / "old")
    restored = client.download(new, client.home / "new")
    assert (restored / "a.txt").read_bytes() == b"alpha, edited\n"
    gcs.rm(f"{GCS_BUCKET}/{prefix}/sub/b.csv")
    entries = {e.path: e for e in new.entries}
    assert reference_status(entries["sub/b.csv"]) == "missing"
    assert client.verify(new.ref).missing == ["sub/b.csv"]


def test_gcs_a_pinned_generation_downloads_that_generation(client: Client, gcs: Any, prefix: str) -> None:
    first = _gput(gcs, f"{prefix}/m.bin", b"first")
    pinned = client.log_reference("m", f"gs://{GCS_BUCKET}/{prefix}/m.bin")
    assert [e.digest for e in pinned.entries] == [f"gsgen:{first}"]
    _gput(gcs, f"{prefix}/m.bin", b"second, longer")
    assert [(d.version, d.status) for d in client.status()] == [("m:v0", "drifted")]
    # Google Cloud Storage serves the generation asked for (`?generation=`, which gcsfs sends);
    # the emulator keeps only the newest and serves that, which the download refuses to pass off.
    with pytest.raises(hw.Conflict, match=f"not the version recorded \\(gsgen:{first}\\)"):
        client.download(pinned, client.home / "old")
    assert not (client.home / "old" / "m.bin").exists()


def test_blob_store_on_gcs(
    client: Client, gcs: Any, prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_BLOB_URI", f"gs://{GCS_BUCKET}/{prefix}")
    src = tmp_path / "data"
    src.mkdir()
    (src / "x.bin").write_bytes(os.urandom(2048))
    (src / "y.txt").write_bytes(b"y")
    version = client.log_artifact("data", src)
    stored = sorted(gcs.find(f"{GCS_BUCKET}/{prefix}/blake3"))
    assert stored == sorted(f"{GCS_BUCKET}/{prefix}/blake3/{e.digest[7:9]}/{e.digest[9:]}" for e in version.entries)
    out = client.download(version, tmp_path / "restored")
    assert (out / "x.bin").read_bytes() == (src / "x.bin").read_bytes()
    assert (out / "y.txt").read_bytes() == b"y"
    assert client.verify(version.ref).ok


# --- no cloud at all ---------------------------------------------------------------------------


def test_file_reference_status_rehashes(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "u.csv").write_bytes(b"id\n1\n")
    (entry,) = reference_manifest(data.as_uri())
    assert entry.digest.startswith("blake3:")
    assert reference_status(entry, stat_cache=False) == "ok"
    (data / "u.csv").write_bytes(b"id\n2\n")  # same size, new bytes
    assert reference_status(entry, stat_cache=False) == "drifted"
    (data / "u.csv").unlink()
    assert reference_status(entry, stat_cache=False) == "missing"


def test_unverifiable_and_stored_entries_are_refused() -> None:
    with pytest.raises(hw.InvalidInput):
        reference_status(ManifestEntry(path="a", digest="ol:3", size=0, ref="s3://b/a"))
    with pytest.raises(hw.InvalidInput):
        reference_status(ManifestEntry(path="a", digest="blake3:" + "0" * 64, size=0))


def test_unreachable_storage_is_unavailable_not_missing() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    entry = ManifestEntry(path="a", digest="etag:0", size=0, ref=f"http://127.0.0.1:{port}/a")
    with pytest.raises(hw.Unavailable):
        reference_status(entry)


@pytest.mark.parametrize(("scheme", "package", "extra"), [("s3", "s3fs", "s3"), ("gs", "gcsfs", "gcs")])
def test_missing_fsspec_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, scheme: str, package: str, extra: str
) -> None:
    """The dev extra installs s3fs and gcsfs: hide them to see what a user without them sees."""
    from headwater.blobs import BlobStore

    monkeypatch.setitem(sys.modules, package, None)  # `import s3fs` now raises ImportError
    for protocol in (scheme, {"s3": "s3a", "gs": "gcs"}[scheme]):
        monkeypatch.delitem(_FSSPEC_CLASSES, protocol, raising=False)
    with pytest.raises(hw.InvalidInput, match=rf'pip install "headwater\[{extra}\]"'):
        reference_manifest(f"{scheme}://bucket/key")
    with pytest.raises(hw.InvalidInput, match=rf'pip install "headwater\[{extra}\]"'):
        BlobStore(f"{scheme}://bucket/blobs")
