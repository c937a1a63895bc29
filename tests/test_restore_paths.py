"""Entry paths are checked again on every restore: a manifest written by a compromised server or
straight into a shared database never writes outside its destination (nor the download cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import headwater as hw
from headwater.digest import validate_entry_path
from headwater.errors import InvalidInput

REFUSED = ["../../x", "a/../../x", "/etc/x", "C:\\x", "\\x", "a\\..\\..\\x", "\\\\server\\share\\x", "C:/x", "a//b"]
# and on restore also what is not canonical (the store refuses to record it: a forged manifest)
HOSTILE = [*REFUSED, "./x", "b/../x"]


@pytest.mark.parametrize("path", REFUSED)
def test_hostile_and_windows_forms_are_refused_at_write_time(path: str) -> None:
    with pytest.raises(InvalidInput, match="invalid entry path"):
        validate_entry_path(path)


@pytest.mark.parametrize("path", ["a:b.csv", "x y/z.txt", "dir/.hidden", "ünïcode/ß.csv"])
def test_odd_but_posix_names_are_kept(path: str) -> None:
    assert validate_entry_path(path) == path


@pytest.mark.parametrize("path", HOSTILE)
def test_a_hostile_manifest_restores_nothing_anywhere(path: str, tmp_path: Path, files) -> None:
    client = hw.Client(home=tmp_path / "home")
    good = client.log_artifact("data", files({"x": "payload"}) / "x")
    entry = good.entries[0].model_copy(update={"path": path})  # as a hostile store would serve it
    forged = good.model_copy(update={"entries": [entry]})
    dest = tmp_path / "deep" / "er" / "dest"
    before = {p for p in tmp_path.rglob("*")}
    for target in (dest, None):  # a destination, and the download cache
        with pytest.raises(InvalidInput, match="refusing to restore data:v0"):
            client.download(forged, dest=target)
    created = {p for p in tmp_path.rglob("*")} - before
    assert not [p for p in created if p.is_file()], created
    client.close()


def test_a_symbolic_link_inside_the_destination_is_not_followed_out(tmp_path: Path, files) -> None:
    client = hw.Client(home=tmp_path / "home")
    version = client.log_artifact("data", files({"sub/x": "payload", "y": "other"}))
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, dest / "sub")
    with pytest.raises(InvalidInput, match="leads outside"):
        client.download(version, dest=dest)
    assert list(outside.iterdir()) == []
    client.close()


def test_an_honest_version_still_restores(tmp_path: Path, files) -> None:
    client = hw.Client(home=tmp_path / "home")
    version = client.log_artifact("data", files({"sub/x": "payload", "y": "other"}))
    restored = client.download(version, dest=tmp_path / "dest")
    assert (restored / "sub" / "x").read_text() == "payload" and (restored / "y").read_text() == "other"
    client.close()
