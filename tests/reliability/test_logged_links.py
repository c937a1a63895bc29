"""Storing a folder never copies files from outside it: a symbolic link in the folder that leads
to a file outside is refused, naming it, unless HEADWATER_FOLLOW_LINKS=1 asks to follow it.
Links within the folder are followed; a referenced folder (nothing copied) follows every link."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import headwater as hw
from headwater.blobs import BlobStore
from headwater.cli import cli
from headwater.digest import hash_bytes
from headwater.refs import path_to_file_uri


@pytest.fixture
def client(tmp_path: Path, headwater_home: Path):
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'store.db'}", home=headwater_home)
    yield client
    client.close()


@pytest.fixture
def folder(tmp_path: Path, files) -> Path:
    secret = files({"id_rsa": "PRIVATE KEY"}, folder="home/.ssh") / "id_rsa"
    root = files({"data.csv": "a,b\n", "sub/more.csv": "c\n"}, folder="logged")
    (root / "same.csv").symlink_to("data.csv")  # within the folder
    (root / "sub" / "up.csv").symlink_to("../data.csv")  # within the folder, through ..
    (root / "key").symlink_to(secret)  # out of the folder
    return root


def refusal(root: Path, secret: Path) -> str:
    return (
        f"refusing to store {str(root)!r}: symbolic links in it lead outside it (key -> {secret}); "
        "store those files themselves, or set HEADWATER_FOLLOW_LINKS=1 to store what the links point to"
    )


def test_a_link_out_of_a_stored_folder_is_refused_and_nothing_is_recorded(
    client: hw.Client, folder: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    with pytest.raises(hw.InvalidInput) as refused:
        client.log_artifact("logged", folder)
    assert str(refused.value) == refusal(folder, secret)
    assert list(BlobStore(client.home / "blobs").iter_digests()) == []
    assert client.outbox.pending() == [] and client.artifacts() == []


def test_the_command_refuses_with_one_line(client: hw.Client, folder: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(
        cli, ["--home", str(client.home), "--uri", client.uri, "log", "--job", "j", "--output", f"logged={folder}"]
    )
    assert done.exit_code == 2
    assert done.output.strip().splitlines() == [
        f"headwater: error: {refusal(folder, tmp_path / 'home' / '.ssh' / 'id_rsa')}"
    ]
    assert client.runs() == [] and client.artifacts() == []


def test_links_within_the_folder_are_followed(client: hw.Client, folder: Path, tmp_path: Path) -> None:
    (folder / "key").unlink()
    version = client.log_artifact("logged", folder)
    assert [(e.path, e.digest) for e in version.entries] == [
        ("data.csv", hash_bytes(b"a,b\n")),
        ("same.csv", hash_bytes(b"a,b\n")),
        ("sub/more.csv", hash_bytes(b"c\n")),
        ("sub/up.csv", hash_bytes(b"a,b\n")),
    ]
    restored = client.download(version, tmp_path / "out")
    assert (restored / "same.csv").read_bytes() == b"a,b\n" and not (restored / "same.csv").is_symlink()


def test_following_links_out_is_a_choice(client: hw.Client, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_FOLLOW_LINKS", "1")
    version = client.log_artifact("logged", folder)
    assert [(e.path, e.digest) for e in version.entries if e.path == "key"] == [("key", hash_bytes(b"PRIVATE KEY"))]
    assert client.verify("logged:v0").ok


def test_a_referenced_folder_follows_links_and_copies_nothing(client: hw.Client, folder: Path, tmp_path: Path) -> None:
    version = client.log_artifact("logged", folder, store=False)
    key = next(e for e in version.entries if e.path == "key")
    assert (key.digest, key.ref) == (hash_bytes(b"PRIVATE KEY"), path_to_file_uri(folder / "key"))
    assert list(BlobStore(client.home / "blobs").iter_digests()) == []


def test_a_logged_folder_that_is_itself_a_link_is_stored(client: hw.Client, folder: Path, tmp_path: Path) -> None:
    (folder / "key").unlink()
    (tmp_path / "alias").symlink_to(folder, target_is_directory=True)
    version = client.log_artifact("logged", tmp_path / "alias")
    assert [e.path for e in version.entries] == ["data.csv", "same.csv", "sub/more.csv", "sub/up.csv"]


def test_many_links_out_are_counted(client: hw.Client, tmp_path: Path, files) -> None:
    outside = files({f"f{i}": str(i) for i in range(7)}, folder="outside")
    root = files({"real": "r"}, folder="many")
    for i in range(7):
        (root / f"l{i}").symlink_to(outside / f"f{i}")
    with pytest.raises(hw.InvalidInput) as refused:
        client.log_artifact("many", root)
    named = ", ".join(f"l{i} -> {outside / f'f{i}'}" for i in range(5))
    assert f"lead outside it ({named} and 2 more);" in str(refused.value)
    assert str(refused.value).count("->") == 5
