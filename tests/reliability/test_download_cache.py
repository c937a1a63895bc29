"""The download cache hands back only bytes it restored: a copy whose stat (size, mtime, ctime,
inode) is no longer what was restored is re-hashed, and restored again when its bytes differ;
a copy of a reference entry, which has no content digest to re-hash against, is restored again."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

import headwater as hw
from headwater.digest import files_hashed


@pytest.fixture
def client(tmp_path: Path, headwater_home: Path):
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'store.db'}", home=headwater_home)
    yield client
    client.close()


def tamper(path: Path, data: bytes) -> None:
    """Change the bytes in place, same size, and put the modification time back."""
    before = path.stat()
    assert len(data) == before.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def test_a_cached_copy_changed_in_place_is_restored(client: hw.Client, files) -> None:
    root = files({"model.bin": b"weights-v1"})
    version = client.log_artifact("model", root / "model.bin")
    cached = client.download(version)
    assert cached.read_bytes() == b"weights-v1"
    assert cached.parent == client.home / "cache" / version.digest.replace(":", "-")
    restored_inode = cached.stat().st_ino
    hashed = files_hashed()
    assert client.download(version) == cached
    assert (cached.stat().st_ino, files_hashed()) == (restored_inode, hashed)  # unchanged: trusted, not re-read

    tamper(cached, b"weights-XX")
    assert client.download(version).read_bytes() == b"weights-v1"
    assert cached.stat().st_ino != restored_inode  # a fresh verified copy, renamed into place


def test_only_the_changed_files_of_a_folder_are_restored(client: hw.Client, files) -> None:
    root = files({"a.csv": "1,2\n", "b.csv": "3,4\n"}, folder="table")
    version = client.log_artifact("table", root)
    folder = client.download(version)
    inodes = {p.name: p.stat().st_ino for p in folder.iterdir()}
    tamper(folder / "b.csv", b"9,9\n")
    assert client.download(version) == folder
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {"a.csv": b"1,2\n", "b.csv": b"3,4\n"}
    assert (folder / "a.csv").stat().st_ino == inodes["a.csv"]
    assert (folder / "b.csv").stat().st_ino != inodes["b.csv"]


def test_a_copy_without_a_record_is_re_hashed_once(client: hw.Client, files) -> None:
    root = files({"data.txt": "kept as restored"})
    version = client.log_artifact("data", root / "data.txt")
    cached = client.download(version)
    inode = cached.stat().st_ino
    client.stat_cache.close()
    (client.home / "statcache.db").unlink()  # the record is lost, the copy is intact
    hashed = files_hashed()
    assert client.download(version).read_text() == "kept as restored"
    assert (cached.stat().st_ino, files_hashed()) == (inode, hashed + 1)  # re-hashed, kept
    assert client.download(version).read_text() == "kept as restored"
    assert files_hashed() == hashed + 1  # and recorded again


def test_a_changed_copy_of_a_reference_is_restored_again(client: hw.Client) -> None:
    with fsspec.open("memory://headwater-cache-test/labels.json", "wb") as f:
        f.write(b'{"cat": 1}')
    version = client.log_reference("labels", "memory://headwater-cache-test/labels.json")
    (entry,) = version.entries
    assert entry.digest.startswith("mtime:10:")  # a storage checksum, not content
    cached = client.download(version)
    assert cached.read_bytes() == b'{"cat": 1}'
    inode = cached.stat().st_ino
    assert client.download(version).stat().st_ino == inode  # unchanged since restored
    tamper(cached, b'{"dog": 2}')
    assert client.download(version).read_bytes() == b'{"cat": 1}'
    fsspec.filesystem("memory").rm("/headwater-cache-test", recursive=True)
