"""The content-addressed blob store, on a local folder and on fsspec's memory:// file system."""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path

import blake3
import fsspec
import pytest

from headwater.blobs import Blobs, BlobStore, default_blob_url
from headwater.digest import CHUNK
from headwater.errors import Conflict, InvalidInput, NotFound


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@pytest.fixture(params=["local", "file-url", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return BlobStore(str(tmp_path / "blobs"))
    if request.param == "file-url":
        return BlobStore((tmp_path / "blobs").as_uri())
    return BlobStore(f"memory://hw-blobs-{uuid.uuid4().hex}")


def _corrupt(store: BlobStore, digest: str) -> None:
    """Flip the stored bytes behind the store's back, the way a bad disk would."""
    hexd = digest.split(":", 1)[1]
    path = f"{store._root}/blake3/{hexd[:2]}/{hexd[2:]}"
    with store._fs.open(path, "rb") as f:
        data = bytearray(f.read())
    data[0] ^= 0xFF
    with store._fs.open(path, "wb") as f:
        f.write(bytes(data))


def test_put_get_roundtrip(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"weights")
    digest = store.put_file(src)
    assert digest == b3(b"weights")
    assert store.has(digest)
    assert store.put_file(src, digest) == digest  # dedup
    with store.open(digest) as f:
        assert f.read() == b"weights"
    out = store.get_file(digest, tmp_path / "restored" / "model.pt")
    assert out == tmp_path / "restored" / "model.pt"
    assert out.read_bytes() == b"weights"
    assert list(store.iter_digests()) == [digest]


def test_local_path_only_for_a_local_folder(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"weights")
    digest = store.put_file(src)
    assert isinstance(store, Blobs)
    local = store.local_path(digest)
    if store.url.startswith("memory://"):
        assert local is None and store.local_root is None
    else:
        assert local is not None and Path(local).read_bytes() == b"weights"
        assert store.local_root is not None and local.startswith(store.local_root)


def test_large_blob_roundtrip(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(CHUNK * 2 + 17)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    digest = store.put_file(src, b3(data))
    assert store.get_file(digest, tmp_path / "out.bin").read_bytes() == data


def test_empty_file(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "empty"
    src.write_bytes(b"")
    digest = store.put_file(src)
    assert digest == b3(b"")
    assert store.get_file(digest, tmp_path / "e2").read_bytes() == b""


def test_put_with_wrong_digest_keeps_nothing(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"actual")
    claimed = b3(b"something else")
    with pytest.raises(Conflict, match="changed while being stored"):
        store.put_file(src, claimed)
    assert not store.has(claimed)
    assert list(store.iter_digests()) == []


def test_corrupt_blob_is_detected_on_restore(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    src.write_bytes(b"a,b\n1,2\n")
    digest = store.put_file(src)
    _corrupt(store, digest)
    dest = tmp_path / "restore" / "data.csv"
    with pytest.raises(Conflict, match=f"blob {digest} .*is corrupt: expected {digest} got blake3:") as err:
        store.get_file(digest, dest)
    assert "\n" not in str(err.value)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary file left behind either


def test_missing_blob(store: BlobStore, tmp_path: Path) -> None:
    digest = b3(b"never stored")
    assert not store.has(digest)
    with pytest.raises(NotFound):
        store.open(digest)
    with pytest.raises(NotFound):
        store.get_file(digest, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_delete_is_idempotent(store: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "a"
    src.write_bytes(b"a")
    digest = store.put_file(src)
    store.delete(digest)
    assert not store.has(digest)
    store.delete(digest)
    assert list(store.iter_digests()) == []


def test_iter_digests_lists_every_blob(store: BlobStore, tmp_path: Path) -> None:
    digests = set()
    for i in range(5):
        src = tmp_path / f"f{i}"
        src.write_bytes(b"%d" % i)
        digests.add(store.put_file(src))
    assert set(store.iter_digests()) == digests


@pytest.mark.parametrize("bad", ["blake3:../../etc/passwd", "etag:abc", "blake3:" + "A" * 64, "deadbeef"])
def test_only_content_digests_name_blobs(bad: str, tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    with pytest.raises(InvalidInput):
        store.has(bad)


def test_local_layout_and_no_leftover_temporaries(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    src = tmp_path / "a"
    src.write_bytes(b"layout")
    hexd = store.put_file(src).split(":", 1)[1]
    assert (tmp_path / "blobs" / "blake3" / hexd[:2] / hexd[2:]).read_bytes() == b"layout"
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_blob_cut_short_by_a_crash_is_stored_again(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    src = tmp_path / "a"
    src.write_bytes(b"complete content")
    digest = store.put_file(src)
    hexd = digest.split(":", 1)[1]
    blob = tmp_path / "blobs" / "blake3" / hexd[:2] / hexd[2:]
    blob.write_bytes(b"")  # what a power cut can leave behind an unsynced rename
    store.put_file(src, digest)
    assert blob.read_bytes() == b"complete content"


def test_put_file_needs_a_readable_file(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    with pytest.raises(InvalidInput, match="no such file"):
        store.put_file(tmp_path / "missing", "blake3:" + "0" * 64)
    with pytest.raises(InvalidInput):
        store.put_file(tmp_path, "blake3:" + "0" * 64)


def test_memory_store_is_shared_through_fsspec(tmp_path: Path) -> None:
    url = f"memory://hw-shared-{uuid.uuid4().hex}"
    src = tmp_path / "a"
    src.write_bytes(b"shared")
    digest = BlobStore(url).put_file(src)
    other = BlobStore(url)
    assert other.has(digest)
    assert fsspec.filesystem("memory").exists(f"{other._root}/blake3/{digest[7:9]}/{digest[9:]}")


def test_unsupported_store_url() -> None:
    with pytest.raises(InvalidInput, match="unsupported"):
        BlobStore("ftpx://host/blobs")
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(InvalidInput, match=r'pip install "headwater\[s3\]"'):
            BlobStore("s3://bucket/blobs")


def test_default_blob_url(monkeypatch: pytest.MonkeyPatch, headwater_home: Path) -> None:
    assert default_blob_url() == str(headwater_home / "blobs")
    monkeypatch.setenv("HEADWATER_BLOB_URI", "s3://bucket/blobs")
    assert default_blob_url() == "s3://bucket/blobs"


# --- a folder staged while it is hashed (build_manifest's stage_into) ---------------------------


def _folder(root: Path, contents: dict[str, bytes]) -> Path:
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _tmp_files(store: BlobStore) -> list[str]:
    folder = Path(store._root) / "tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_staged_bytes_are_stored_without_reading_the_file_again(tmp_path: Path) -> None:
    from headwater.digest import build_manifest

    big = os.urandom(CHUNK + 12345)  # read in several pieces
    root = _folder(tmp_path / "d", {"a": b"alpha", "sub/big": big, "dup": b"alpha", "empty": b""})
    store = BlobStore(str(tmp_path / "blobs"))
    entries = build_manifest(root, stat_cache=False, stage_into=store, threads=2)
    by_path = {e.path: e for e in entries}
    assert by_path["sub/big"].digest == b3(big) and by_path["a"].digest == b3(b"alpha")
    assert len(_tmp_files(store)) == 3  # a duplicate is staged once
    assert list(store.iter_digests()) == []  # staged is not stored: put_file decides
    # Changed after hashing: what is stored is what was hashed, never the new bytes.
    (root / "sub" / "big").write_bytes(b"changed")
    (root / "a").unlink()
    for e in entries:
        assert store.put_file(root / e.path, e.digest) == e.digest
    assert sorted(store.iter_digests()) == sorted({b3(big), b3(b"alpha"), b3(b"")})
    assert store.get_file(b3(big), tmp_path / "out").read_bytes() == big
    assert _tmp_files(store) == []
    del entries


def test_staged_files_not_stored_are_removed_with_the_manifest(tmp_path: Path) -> None:
    from headwater.digest import build_manifest

    root = _folder(tmp_path / "d", {"keep": b"kept", "skip": b"skipped", "old": b"stored before"})
    store = BlobStore(str(tmp_path / "blobs"))
    store.put_file(root / "old")
    entries = build_manifest(root, stat_cache=False, stage_into=store)
    assert len(_tmp_files(store)) == 2  # what the store has already is not staged
    store.put_file(root / "keep", b3(b"kept"))
    assert len(_tmp_files(store)) == 1
    del entries  # the caller is done: "skip" was not stored (refused, or purged content)
    assert _tmp_files(store) == []
    assert sorted(store.iter_digests()) == sorted([b3(b"kept"), b3(b"stored before")])


def test_a_failed_scan_leaves_nothing_staged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.digest import build_manifest
    from headwater.digest import scan as dg_scan

    root = _folder(tmp_path / "d", {f"f{i}": b"%d" % i for i in range(40)})
    store = BlobStore(str(tmp_path / "blobs"))
    real = dg_scan._hash_batch
    calls = []

    def failing(files, staging=None):  # type: ignore[no-untyped-def]  # a test double
        calls.append(files)
        if len(calls) == 2:
            raise FileNotFoundError(2, "gone", files[0][0])
        return real(files, staging)

    monkeypatch.setattr(dg_scan, "_hash_batch", failing)
    with pytest.raises(InvalidInput, match="disappeared while being hashed"):
        build_manifest(root, stat_cache=False, stage_into=store, threads=1)
    assert _tmp_files(store) == [] and list(store.iter_digests()) == []


def test_stores_that_fsync_or_are_not_local_do_not_stage(tmp_path: Path) -> None:
    assert BlobStore(str(tmp_path / "a"), fsync=True).staging() is None
    assert BlobStore(f"memory://hw-blobs-{uuid.uuid4().hex}").staging() is None
    assert BlobStore(str(tmp_path / "b")).staging() is not None


def test_a_store_that_cannot_stage_still_stores(tmp_path: Path) -> None:
    from headwater.digest import build_manifest

    root = _folder(tmp_path / "d", {"a": b"alpha"})
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "tmp").write_bytes(b"not a folder")  # tmp/ cannot be made: staging fails quietly
    store = BlobStore(str(blobs))
    (entry,) = build_manifest(root, stat_cache=False, stage_into=store)
    assert entry.digest == b3(b"alpha")
    (blobs / "tmp").unlink()
    store.put_file(root / "a", entry.digest)
    assert store.get_file(entry.digest, tmp_path / "out").read_bytes() == b"alpha"


def test_logging_a_folder_leaves_no_temporary_files(tmp_path: Path) -> None:
    import headwater as hw

    root = _folder(tmp_path / "d", {f"part-{i}": os.urandom(1000 + i) for i in range(30)})
    client = hw.Client(home=tmp_path / "home")
    try:
        version = client.log_artifact("ds", root)
        store = client.blobs
        assert isinstance(store, BlobStore)
        assert _tmp_files(store) == []
        assert sorted(store.iter_digests()) == sorted(e.digest for e in version.entries)
        for e in version.entries:
            assert store.get_file(e.digest, tmp_path / "out" / e.path).read_bytes() == (root / e.path).read_bytes()
    finally:
        client.close()


def test_a_staged_file_swept_meanwhile_is_stored_from_the_file(tmp_path: Path) -> None:
    from headwater.digest import build_manifest

    root = _folder(tmp_path / "d", {"a": b"alpha"})
    store = BlobStore(str(tmp_path / "blobs"))
    entries = build_manifest(root, stat_cache=False, stage_into=store)
    for name in _tmp_files(store):  # what gc's sweep of tmp/ does to an old one
        (Path(store._root) / "tmp" / name).unlink()
    assert store.put_file(root / "a", entries[0].digest) == b3(b"alpha")
    assert store.get_file(b3(b"alpha"), tmp_path / "out").read_bytes() == b"alpha"
