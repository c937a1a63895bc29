"""Digests, manifests, the stat cache and references, on real files and a real HTTP server."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import blake3
import fsspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater import digest as dg
from headwater.digest import (
    StatCache,
    build_manifest,
    hash_bytes,
    hash_file,
    is_content_digest,
    local_files,
    manifest_digest,
    reference_manifest,
    validate_entry_path,
)
from headwater.digest import paths as dg_paths
from headwater.digest import references as dg_references
from headwater.digest import stat_cache as dg_stat_cache
from headwater.errors import InvalidInput, Unavailable
from headwater.models import ManifestEntry


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def write(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def age(root: Path, seconds: float = 60) -> None:
    """Backdate every file so the racy-mtime rule lets the stat cache keep its digest."""
    old = time.time() - seconds
    for p in [root] if root.is_file() else root.rglob("*"):
        if p.is_file():
            os.utime(p, (old, old))


# --- bytes and files -----------------------------------------------------------------------------


def test_hash_bytes_is_prefixed_blake3() -> None:
    assert hash_bytes(b"hello") == b3(b"hello")
    assert is_content_digest(hash_bytes(b""))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b3(b"x"), True),
        ("blake3:" + "0" * 63, False),
        ("blake3:" + "G" * 64, False),
        ('etag:"abc"', False),
        ("s3v:3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", False),
        ("mtime:10:2024-01-01T00:00:00+00:00", False),
        ("ol:1234", False),
        ("unverified:0b6e1a4e", False),
    ],
)
def test_is_content_digest(value: str, expected: bool) -> None:
    assert is_content_digest(value) is expected


def test_single_file_is_one_entry_named_by_basename(tmp_path: Path) -> None:
    f = write(tmp_path / "deep" / "dir", {"model.pt": b"weights"}) / "model.pt"
    (entry,) = build_manifest(f)
    assert entry == ManifestEntry(path="model.pt", digest=b3(b"weights"), size=7)
    assert hash_file(f) == (b3(b"weights"), 7)


def test_large_file_digest_matches_blake3_of_its_bytes(tmp_path: Path) -> None:
    data = os.urandom(dg.CHUNK + dg.LARGE_FILE + 123)  # several chunks, a short last one
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    assert hash_file(f, stat_cache=False) == (b3(data), len(data))
    (entry,) = build_manifest(tmp_path, stat_cache=False, threads=2)
    assert entry.digest == b3(data)


def test_directory_manifest_is_sorted_nfc_posix(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "café.txt")
    assert decomposed != "café.txt"
    root = write(
        tmp_path / "data",
        {
            "b.txt": b"b",
            "a/z.txt": b"z",
            "B.txt": b"B",
            decomposed: b"cafe",
            "a b/ñ/x": b"x",
            "a.txt": b"a.txt",
        },
    )
    entries = build_manifest(root)
    paths = [e.path for e in entries]
    assert paths == sorted(paths)  # Python sorts str by code point
    assert paths == ["B.txt", "a b/ñ/x", "a.txt", "a/z.txt", "b.txt", "café.txt"]
    assert all(unicodedata.is_normalized("NFC", p) for p in paths)
    by_path = {e.path: e for e in entries}
    assert by_path["café.txt"].digest == b3(b"cafe")
    # The on-disk (decomposed) name is where the bytes are read from.
    assert local_files(root)["café.txt"] == root / decomposed


def test_names_equal_after_nfc_are_rejected(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"é": b"1", unicodedata.normalize("NFD", "é"): b"2"})
    with pytest.raises(InvalidInput, match="NFC"):
        build_manifest(root)


def test_empty_directory_has_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert build_manifest(tmp_path / "empty") == []
    assert manifest_digest([]) == hash_bytes(b"")


def test_missing_path_is_one_line_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file or directory") as err:
        build_manifest(tmp_path / "nope")
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInput, match="no such file or directory"):
        hash_file(tmp_path / "nope")


def test_file_name_with_newline_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "d", {"bad\nname": b"x"})
    with pytest.raises(InvalidInput, match="newline") as err:
        build_manifest(tmp_path / "d")
    assert "\n" not in str(err.value)


def test_file_name_not_utf8_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    try:
        (root / os.fsdecode(b"\xff.bin")).write_bytes(b"x")
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take non-UTF-8 names")
    with pytest.raises(InvalidInput, match="UTF-8"):
        build_manifest(root)


def test_symlinks(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"blob": b"shared"})
    root = write(tmp_path / "root", {"real.txt": b"real"})
    (root / "link.txt").symlink_to(outside / "blob")  # followed, even out of the root
    (root / "linkdir").symlink_to(outside, target_is_directory=True)  # not descended
    (root / "dangling").symlink_to(tmp_path / "missing")  # skipped
    os.mkfifo(root / "fifo")  # never opened: reading it would block
    entries = build_manifest(root)
    assert [(e.path, e.digest) for e in entries] == [
        ("link.txt", b3(b"shared")),
        ("real.txt", b3(b"real")),
    ]


def test_ref_prefix(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {"x/a": b"a", "b": b"b"})
    entries = build_manifest(root, ref_prefix="s3://bucket/d")
    assert [e.ref for e in entries] == ["s3://bucket/d/b", "s3://bucket/d/x/a"]
    (single,) = build_manifest(root / "b", ref_prefix="s3://bucket/b")
    assert single.ref == "s3://bucket/b"


# --- manifest digests ----------------------------------------------------------------------------


def test_manifest_digest_is_the_canonical_form() -> None:
    entries = [
        ManifestEntry(path="b", digest=b3(b"b"), size=1),
        ManifestEntry(path="a", digest=b3(b"a"), size=1),
    ]
    canonical = f"a\0{b3(b'a')}\x001\nb\0{b3(b'b')}\x001".encode()
    assert manifest_digest(entries) == hash_bytes(canonical)


def test_manifest_digest_ignores_order_and_ref() -> None:
    a = ManifestEntry(path="a.csv", digest=b3(b"1"), size=1)
    b = ManifestEntry(path="Z/b.csv", digest=b3(b"2"), size=1)
    with_refs = [
        ManifestEntry(path="a.csv", digest=b3(b"1"), size=1, ref="s3://x/a.csv"),
        ManifestEntry(path="Z/b.csv", digest=b3(b"2"), size=1, ref="file:///y/Z/b.csv"),
    ]
    assert manifest_digest([a, b]) == manifest_digest([b, a]) == manifest_digest(with_refs)
    assert manifest_digest([a]) != manifest_digest([a, b])
    assert manifest_digest([a]) != manifest_digest([ManifestEntry(path="a.csv", digest=b3(b"1"), size=2)])


def test_manifest_digest_rejects_duplicate_paths() -> None:
    e = ManifestEntry(path="a", digest=b3(b"1"), size=1)
    with pytest.raises(InvalidInput, match="twice"):
        manifest_digest([e, e])


def test_same_content_in_different_folders_has_one_digest(tmp_path: Path) -> None:
    content = {"train/0.png": b"\x89PNG0", "train/1.png": b"\x89PNG1", "labels.csv": b"0,1\n"}
    one = build_manifest(write(tmp_path / "one", content))
    two = build_manifest(write(tmp_path / "elsewhere" / "two", content), stat_cache=False)
    assert manifest_digest(one) == manifest_digest(two)
    changed = build_manifest(write(tmp_path / "three", {**content, "labels.csv": b"1,0\n"}))
    assert manifest_digest(changed) != manifest_digest(one)


@pytest.mark.parametrize(
    "bad",
    ["../x", "/abs", "a/../../b", "a\nb", "a\0b", "", "a//b", "a/", ".", "a/.."],
)
def test_validate_entry_path_rejects(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_entry_path(bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("a/b.txt", "a/b.txt"),
        ("./a/./b", "a/b"),
        ("a/../b", "b"),
        (unicodedata.normalize("NFD", "é/ü"), "é/ü"),
        ("with space/x", "with space/x"),
    ],
)
def test_validate_entry_path_normalises(given: str, canonical: str) -> None:
    assert validate_entry_path(given) == canonical


# --- the stat cache ------------------------------------------------------------------------------


def test_stat_cache_skips_rehashing_unchanged_files(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {f"f{i}.bin": os.urandom(100) for i in range(20)})
    age(root)
    cache = StatCache(tmp_path / "stat.db")
    before = dg.files_hashed()
    first = build_manifest(root, stat_cache=cache)
    assert dg.files_hashed() - before == 20
    second = build_manifest(root, stat_cache=cache)
    assert dg.files_hashed() - before == 20  # every digest came from the cache
    assert second == first
    # A fresh instance (another process, say) reads the same file.
    assert build_manifest(root, stat_cache=StatCache(tmp_path / "stat.db")) == first
    assert dg.files_hashed() - before == 20


def test_stat_cache_notices_same_size_same_mtime_rewrite(tmp_path: Path) -> None:
    f = write(tmp_path, {"a.bin": b"AAAA"}) / "a.bin"
    age(f)
    cache = StatCache(tmp_path / "stat.db")
    assert hash_file(f, stat_cache=cache)[0] == b3(b"AAAA")
    st = f.stat()
    f.write_bytes(b"BBBB")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only ctime moves
    assert f.stat().st_mtime_ns == st.st_mtime_ns
    assert hash_file(f, stat_cache=cache)[0] == b3(b"BBBB")


def test_racy_file_is_not_cached(tmp_path: Path) -> None:
    f = write(tmp_path, {"fresh.bin": b"new"}) / "fresh.bin"  # mtime: now
    cache = StatCache(tmp_path / "stat.db")
    before = dg.files_hashed()
    hash_file(f, stat_cache=cache)
    hash_file(f, stat_cache=cache)
    assert dg.files_hashed() - before == 2  # modified < 2 s before hashing: never cached
    age(f)
    hash_file(f, stat_cache=cache)
    hash_file(f, stat_cache=cache)
    assert dg.files_hashed() - before == 3


def test_default_stat_cache_lives_in_headwater_home(tmp_path: Path, headwater_home: Path) -> None:
    root = write(tmp_path / "d", {"x": b"x"})
    age(root)
    build_manifest(root)
    assert (headwater_home / "statcache.db").is_file()
    before = dg.files_hashed()
    build_manifest(root)
    assert dg.files_hashed() == before
    build_manifest(root, stat_cache=False)
    assert dg.files_hashed() == before + 1


def test_broken_stat_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").mkdir()
    cache = StatCache(tmp_path / "not-a-db")  # a directory: sqlite cannot open it
    f = write(tmp_path, {"a": b"a"}) / "a"
    age(f)
    assert hash_file(f, stat_cache=cache)[0] == b3(b"a")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    assert hash_file(f, stat_cache=StatCache(garbage))[0] == b3(b"a")


def test_stat_cache_lookup_handles_many_files(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {f"{i:04}": b"%d" % i for i in range(dg_stat_cache._SQL_CHUNK + 100)})
    age(root)
    cache = StatCache(tmp_path / "stat.db")
    first = build_manifest(root, stat_cache=cache)
    before = dg.files_hashed()
    assert build_manifest(root, stat_cache=cache) == first
    assert dg.files_hashed() == before


def _build_with_cache(root: str, cache_path: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(manifest_digest(build_manifest(root, stat_cache=StatCache(cache_path))))


@pytest.mark.timeout(120)
def test_stat_cache_shared_by_concurrent_processes(tmp_path: Path) -> None:
    root = write(tmp_path / "d", {f"f{i}": b"%d" % i for i in range(200)})
    age(root)
    cache_path = tmp_path / "shared.db"
    expected = manifest_digest(build_manifest(root, stat_cache=False))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_build_with_cache, args=(str(root), str(cache_path), queue)) for _ in range(4)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(30)
        assert child.exitcode == 0
    assert results == [expected] * 4
    before = dg.files_hashed()
    assert manifest_digest(build_manifest(root, stat_cache=StatCache(cache_path))) == expected
    assert dg.files_hashed() == before


def test_progress_bar_can_be_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write(tmp_path / "d", {"a": b"a" * 1000, "b": b"b"})
    assert len(build_manifest(root, progress=True, stat_cache=False)) == 2
    build_manifest(root, stat_cache=False)  # not a terminal, small: no bar
    assert capsys.readouterr().out == ""


# --- fork safety ---------------------------------------------------------------------------------


def _hash_in_child(root: str, expected: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    entries = build_manifest(root, stat_cache=False, threads=2)
    queue.put(manifest_digest(entries) == expected)


@pytest.mark.timeout(120)
def test_forked_child_hashes_after_parent_did(tmp_path: Path) -> None:
    # Airflow forks task processes: the parent's hash threads do not exist in the child.
    root = write(
        tmp_path / "d",
        {"big": os.urandom(dg.LARGE_FILE * 2), **{f"s{i}": b"%d" % i for i in range(50)}},
    )
    expected = manifest_digest(build_manifest(root, stat_cache=False, threads=2))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_hash_in_child, args=(str(root), expected, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("hashing in a forked child hung")
    assert child.exitcode == 0
    assert queue.get(timeout=5) is True


# --- references ----------------------------------------------------------------------------------


def test_file_reference_hashes_and_points_at_each_file(tmp_path: Path) -> None:
    from headwater.refs import path_to_file_uri

    root = write(tmp_path / "data set", {"a.csv": b"1", "sub/b.csv": b"2"})
    entries = reference_manifest(path_to_file_uri(root))
    assert [(e.path, e.digest, e.ref) for e in entries] == [
        ("a.csv", b3(b"1"), path_to_file_uri(root / "a.csv")),
        ("sub/b.csv", b3(b"2"), path_to_file_uri(root / "sub" / "b.csv")),
    ]
    (single,) = reference_manifest(path_to_file_uri(root / "a.csv"))
    assert (single.path, single.ref) == ("a.csv", path_to_file_uri(root / "a.csv"))
    with pytest.raises(InvalidInput, match="no such file"):
        reference_manifest(path_to_file_uri(tmp_path / "missing"))


def test_unsupported_scheme_is_one_line_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unsupported URI scheme") as err:
        reference_manifest("ftpx://host/file")
    message = str(err.value)
    assert "\n" not in message and "s3://" in message and "headwater[s3]" in message


def test_fsspec_reference_uses_storage_checksums() -> None:
    fs = fsspec.filesystem("memory")
    base = f"/ref-{uuid.uuid4().hex}"
    fs.pipe_file(f"{base}/x/a.csv", b"12345")
    fs.pipe_file(f"{base}/b.csv", b"1")
    entries = reference_manifest(f"memory://{base}/")
    assert [(e.path, e.size, e.ref) for e in entries] == [
        ("b.csv", 1, f"memory://{base}/b.csv"),
        ("x/a.csv", 5, f"memory://{base}/x/a.csv"),
    ]
    assert all(e.digest.startswith("mtime:") and not is_content_digest(e.digest) for e in entries)
    (single,) = reference_manifest(f"memory://{base}/x/a.csv")
    assert (single.path, single.size, single.ref) == ("a.csv", 5, f"memory://{base}/x/a.csv")
    assert single.digest.startswith("mtime:5:")
    with pytest.raises(InvalidInput, match="no such object"):
        reference_manifest(f"memory://{base}/missing")


def test_pointer_checksum_prefixes() -> None:
    assert dg_references._pointer_checksum({"ETag": '"abc"', "VersionId": "v1"}, 3) == "s3v:v1"
    assert dg_references._pointer_checksum({"ETag": '"abc"', "VersionId": "null"}, 3) == "etag:abc"
    assert dg_references._pointer_checksum({"etag": 'W/"abc"'}, 3) == "etag:W/abc"
    assert dg_references._pointer_checksum({"mtime": 0}, 3) == "mtime:3:1970-01-01T00:00:00+00:00"
    assert dg_references._pointer_checksum({}, 3) == "mtime:3:unknown"


class _Handler(BaseHTTPRequestHandler):
    body = b"0123456789"
    methods: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _headers(self) -> None:
        path = self.path
        if path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/etag/file.bin")
            self.end_headers()
            return
        if path.startswith("/missing"):
            self.send_response(404)
            self.end_headers()
            return
        if path.startswith("/nohead") and self.command == "HEAD":
            self.send_response(405)
            self.end_headers()
            return
        if path.startswith("/nohead"):
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-0/{len(self.body)}")
            self.send_header("Content-Length", "1")
            self.send_header("ETag", '"ranged"')
            self.end_headers()
            self.wfile.write(self.body[:1])
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        if path.startswith("/etag") or path == "/":
            self.send_header("ETag", '"v1-abc"')
        else:
            self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(self.body)

    def do_HEAD(self) -> None:
        self.methods.append("HEAD")
        self._headers()

    def do_GET(self) -> None:
        self.methods.append("GET")
        self._headers()


@pytest.fixture
def http_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    _Handler.methods = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_reference_with_etag(http_base: str) -> None:
    (entry,) = reference_manifest(f"{http_base}/etag/file.bin")
    assert entry == ManifestEntry(path="file.bin", digest="etag:v1-abc", size=10, ref=f"{http_base}/etag/file.bin")
    assert _Handler.methods == ["HEAD"]  # the body is never downloaded


def test_http_reference_with_last_modified_and_root_path(http_base: str) -> None:
    (entry,) = reference_manifest(f"{http_base}/plain/data.csv")
    assert entry.digest == "mtime:10:2015-10-21T07:28:00+00:00"
    assert entry.size == 10
    (root,) = reference_manifest(f"{http_base}/")
    assert root.path == "index"


def test_http_reference_redirect_stays_head(http_base: str) -> None:
    (entry,) = reference_manifest(f"{http_base}/redirect/x")
    assert entry.digest == "etag:v1-abc"
    assert "GET" not in _Handler.methods


def test_http_reference_falls_back_to_ranged_get(http_base: str) -> None:
    (entry,) = reference_manifest(f"{http_base}/nohead/f.txt")
    assert (entry.digest, entry.size) == ("etag:ranged", 10)


def test_http_reference_errors(http_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="404"):
        reference_manifest(f"{http_base}/missing/x")
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "2")
    closed = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens on this port any more
    with pytest.raises(Unavailable, match="cannot reach") as err:
        reference_manifest(f"http://127.0.0.1:{port}/x")
    assert "\n" not in str(err.value)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab./ \t\\~-_é\u0301")), max_size=12))
def test_the_canonical_ascii_shortcut_agrees_with_the_full_validation(path: str) -> None:
    """validate_entry_path returns an already-canonical ASCII path as is, without the full walk:
    whatever the shortcut accepts, the full validation must return unchanged."""
    if path.isascii() and dg_paths._CANONICAL_ASCII.fullmatch(path):
        dg_paths._CANONICAL_ASCII = _NEVER  # the full walk alone
        try:
            assert validate_entry_path(path) == path
        finally:
            dg_paths._CANONICAL_ASCII = _SHORTCUT


_SHORTCUT = dg_paths._CANONICAL_ASCII
_NEVER = re.compile(r"(?!)")  # matches nothing


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_files_hashed_alone_or_in_parallel_match_raw_blake3(tmp_path: Path, threads: int) -> None:
    # Two large files (hashed side by side, one thread each), one larger than a thread's share
    # (hashed alone on every thread), small files in batches, an empty one.
    contents = {
        "huge": os.urandom(dg.CHUNK * 2 + 5),
        "large-1": os.urandom(dg.LARGE_FILE + 1),
        "large-2": os.urandom(dg.LARGE_FILE + 2),
        "empty": b"",
        **{f"small/{i:03}": os.urandom(i * 1000) for i in range(70)},
    }
    root = write(tmp_path / "d", contents)
    entries = build_manifest(root, stat_cache=False, threads=threads)
    assert [(e.path, e.digest, e.size) for e in entries] == [
        (path, b3(data), len(data)) for path, data in sorted(contents.items())
    ]


@pytest.mark.parametrize(
    "name", ["plain.csv", "with space", "per%cent", "hash#q?", "café", "tab\there", "a=b,c@d~e+f", "..x", "-"]
)
def test_file_uris_of_a_folder_are_path_to_file_uri(tmp_path: Path, name: str) -> None:
    from headwater.refs import path_to_file_uri

    paths = [f"{tmp_path}/sub dir/{name}", f"{tmp_path}/{name}", f"/{name}"]
    assert dg_references._file_uris(paths) == {p: path_to_file_uri(p) for p in paths}
