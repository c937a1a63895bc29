"""A full disk and a read-only home: the call fails, nothing half-written is left visible, nothing
is recorded, and once space (or write access) returns everything works.

HEADWATER_HOME (blobs, outbox, caches) is a 2 MiB tmpfs where one can be mounted (root); elsewhere
a folder without write permission stands for both faults. The store itself lives elsewhere.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import headwater as hw
from headwater.digest import hash_file
from headwater.events import RunRecorded

pytestmark = pytest.mark.slow

SIZE = 2 << 20


class Home:
    """HEADWATER_HOME on a small filesystem the test can fill, free, and make read-only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.layers = 0
        folder.mkdir(parents=True)
        self.mounted = (
            os.geteuid() == 0
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(folder)], capture_output=True
            ).returncode
            == 0
        )
        if not self.mounted and os.geteuid() == 0:
            pytest.skip("cannot mount a tmpfs here, and root writes through any permission")

    def fill(self) -> None:
        """No space left (a filesystem without write permission where none can be mounted)."""
        if not self.mounted:
            self.read_only()
            return
        with open(self.folder / "filler", "wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError as err:
                assert err.errno == errno.ENOSPC
        # tmpfs may still have room for a partial page; take it too.
        try:
            with open(self.folder / "filler2", "wb") as out:
                while True:
                    out.write(b"\0")
                    out.flush()
        except OSError:
            pass

    def free(self) -> None:
        if not self.mounted:
            self.writable()
            return
        for name in ("filler", "filler2"):
            (self.folder / name).unlink(missing_ok=True)

    def read_only(self) -> None:
        if self.mounted:
            # A read-only bind over the folder: files held open (the stat cache) keep the mount
            # below busy, so it cannot be remounted read-only itself.
            subprocess.run(["mount", "--bind", str(self.folder), str(self.folder)], check=True)
            subprocess.run(["mount", "-o", "remount,ro,bind", str(self.folder)], check=True)
            self.layers += 1
        else:
            for root, dirs, _ in os.walk(self.folder):
                for d in [root, *(os.path.join(root, d) for d in dirs)]:
                    os.chmod(d, 0o555)

    def writable(self) -> None:
        if self.mounted:
            while self.layers:
                subprocess.run(["umount", "-l", str(self.folder)], check=True)
                self.layers -= 1
        else:
            for root, dirs, _ in os.walk(self.folder):
                for d in [root, *(os.path.join(root, d) for d in dirs)]:
                    os.chmod(d, 0o755)

    def unmount(self) -> None:
        self.writable()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=True)
            self.mounted = False

    def leftovers(self) -> list[str]:
        """Files that are neither a whole blob, a whole batch, a lock nor a cache."""
        found = []
        for root, _, names in os.walk(self.folder):
            for name in names:
                rel = os.path.relpath(os.path.join(root, name), self.folder)
                if name.startswith(".tmp-") or "headwater-tmp" in name or rel.startswith("blobs/tmp/"):
                    found.append(rel)
        return sorted(found)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Home]:
    small = Home(tmp_path / "small-home")
    monkeypatch.setenv("HEADWATER_HOME", str(small.folder))
    yield small
    small.unmount()


@pytest.fixture
def client(home: Home, tmp_path: Path) -> Iterator[hw.Client]:
    c = hw.Client(uri=f"sqlite:///{tmp_path / 'store.db'}", home=home.folder)
    yield c
    c.close()


def _blob_files(home: Home) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), home.folder / "blobs" / "blake3")
        for root, _, names in os.walk(home.folder / "blobs" / "blake3")
        for name in names
    )


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(SIZE + (1 << 20)))  # more than the whole home holds
    return path


def test_a_blob_larger_than_the_free_space(client: hw.Client, home: Home, big: Path) -> None:
    client.log_artifact("small", _small(big.parent))
    before = _blob_files(home)
    if not home.mounted:
        home.fill()  # no size limit without a mount: writes fail instead
    with pytest.raises((OSError, hw.HeadwaterError)):
        client.log_artifact("model", big)
    assert home.leftovers() == [] and _blob_files(home) == before  # no partial blob
    assert client.outbox.pending() == [] and [a.name for a in client.artifacts()] == ["small"]
    home.unmount()  # space returns: the same folder, on the disk below
    assert client.log_artifact("model", big).label == "v0"
    assert client.get("model").download().read_bytes() == big.read_bytes()


def _small(folder: Path) -> Path:
    path = folder / "small.txt"
    path.write_text("small")
    return path


def test_a_batch_that_does_not_fit_records_nothing(client: hw.Client, home: Home, tmp_path: Path) -> None:
    small = _small(tmp_path)
    assert client.log_artifact("first", small).label == "v0"  # its blob is stored now
    home.fill()
    with pytest.raises((OSError, hw.HeadwaterError)):
        client.log_artifact("second", small)  # the blob is there: only the batch must be written
    assert client.outbox.pending() == [] and [a.name for a in client.artifacts()] == ["first"]
    home.free()
    assert client.log_artifact("second", small).label == "v0"
    assert [a.name for a in client.artifacts()] == ["first", "second"]


def test_a_read_only_home_records_nothing_then_works(client: hw.Client, home: Home, tmp_path: Path) -> None:
    small = _small(tmp_path)
    client.log_artifact("first", small)
    other = tmp_path / "other.txt"
    other.write_text("other")
    home.read_only()
    with pytest.raises((OSError, hw.HeadwaterError)):
        client.log_artifact("first", other)
    assert [v.label for v in client.versions("first")] == ["v0"]
    home.writable()
    assert client.log_artifact("first", other).label == "v1"
    assert home.leftovers() == []


def test_a_failed_batch_write_leaves_no_temporary_file(client: hw.Client, home: Home, tmp_path: Path) -> None:
    small = _small(tmp_path)
    client.log_artifact("first", small)
    home.fill()
    with pytest.raises((OSError, hw.HeadwaterError)):
        client.log_artifact("second", small)
    assert home.leftovers() == []


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_disk_fault_is_one_clear_error(fault: str, client: hw.Client, home: Home, big: Path, tmp_path: Path) -> None:
    small = _small(tmp_path)
    if fault == "full":
        home.fill()
    else:
        home.read_only()
    with pytest.raises(hw.HeadwaterError) as raised:
        client.log_artifact("model", small)
    assert "\n" not in str(raised.value)
    cli = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "--uri", client.uri, "log", "--job", "j", "--output", f"model={big}"],
        env={**os.environ, "HEADWATER_HOME": str(home.folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode in (2, 5) and cli.stderr.count("\n") == 1
    assert cli.stderr.startswith("headwater: error: ") and "Traceback" not in cli.stderr


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_hashing_needs_no_writable_home(fault: str, client: hw.Client, home: Home, tmp_path: Path) -> None:
    # The stat cache lives in the home: one it cannot open or save is an optimisation lost.
    small = _small(tmp_path)
    if fault == "full":
        home.fill()
    else:
        home.read_only()
    digest, size = hash_file(small, stat_cache=False)
    [entry] = client.content(small).entries
    assert (entry.path, entry.digest, entry.size) == ("small.txt", digest, size)


def test_sync_on_a_read_only_home_is_one_clear_error(client: hw.Client, home: Home) -> None:
    client.queue([RunRecorded(run_id=hw.run_id("ro"), job="j", status="succeeded")])
    [waiting] = client.outbox.pending()
    assert not (client.outbox.folder / ".lock").exists()
    home.read_only()
    cli = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "--uri", client.uri, "sync"],
        env={**os.environ, "HEADWATER_HOME": str(home.folder)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    why = "Read-only file system" if home.mounted else "Permission denied"
    lock = client.outbox.folder / ".lock"  # the drain's lock, not made yet: nothing is delivered
    assert cli.returncode == 5 and cli.stderr == f"headwater: error: cannot write the outbox lock {lock}: {why}\n"
    assert client.outbox.pending() == [waiting] and client.runs() == []
    home.writable()
    assert client.sync().pending == 0 and [r.status for r in client.runs()] == ["succeeded"]


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_download_into_a_full_or_read_only_home_is_one_clear_error(
    fault: str, client: hw.Client, home: Home, tmp_path: Path
) -> None:
    small = _small(tmp_path)
    version = client.log_artifact("model", small)
    if fault == "full":
        home.fill()
    else:
        home.read_only()
    with pytest.raises(
        hw.Unwritable,
        match=r"^cannot write '.*small\.txt': (No space left on device|Read-only file system|Permission denied)$",
    ):
        client.download(version)
    assert home.leftovers() == []
    home.free() if fault == "full" else home.writable()
    assert client.download(version).read_bytes() == small.read_bytes()
