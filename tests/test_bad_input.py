"""Bad input gets one clear error and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

import headwater as hw
from headwater.events import VersionRecorded
from headwater.models import ManifestEntry
from headwater.store.migrate import head_revision


def snapshot(client: hw.Client) -> tuple[object, ...]:
    return (
        [(a.name, a.latest, a.versions) for a in client.artifacts()],
        [(r.id, r.status) for r in client.runs()],
        sorted(client.blobs.iter_digests()),
    )


@pytest.fixture
def seeded(client: hw.Client, files) -> hw.Client:
    client.log_artifact("ds", files({"a.csv": "1"}) / "a.csv", type="dataset")
    return client


@pytest.mark.parametrize(
    "ref, message",
    [
        ("ds@zz", "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST"),
        ("", "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST"),
        ("ds:", "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST"),
        (":v1", "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST"),
        ("ds\nx", "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST"),
    ],
)
def test_malformed_refs(seeded: hw.Client, ref: str, message: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(hw.InvalidRef) as caught:
        seeded.get(ref)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(hw.InvalidRef):
        seeded.link("job", inputs=[ref])
    assert snapshot(seeded) == before


def test_unknown_artifact_or_version_in_a_run_changes_nothing(seeded: hw.Client) -> None:
    before = snapshot(seeded)
    with pytest.raises(hw.NotFound, match="no artifact named 'missing'"):
        seeded.link("job", inputs=["missing:v0"])
    with pytest.raises(hw.NotFound, match="has no version v5"):
        seeded.link("job", inputs=["ds:v5"])
    assert snapshot(seeded) == before


def test_missing_path(seeded: hw.Client, tmp_path: Path) -> None:
    before = snapshot(seeded)
    with pytest.raises(hw.InvalidInput, match="no such file or directory"):
        seeded.log_artifact("ds", tmp_path / "nope.csv")
    with pytest.raises(hw.InvalidInput, match="no such file or directory"):
        seeded.link("job", outputs=[hw.Output("x", tmp_path / "nope")])
    assert snapshot(seeded) == before


def test_unsupported_reference_scheme(seeded: hw.Client) -> None:
    before = snapshot(seeded)
    with pytest.raises(hw.InvalidInput) as caught:
        seeded.log_reference("r", "ftpx://host/file")
    assert "\n" not in str(caught.value)
    assert snapshot(seeded) == before


def test_manifest_path_escaping_its_root_is_refused_by_the_store(seeded: hw.Client) -> None:
    before = snapshot(seeded)
    bad = [ManifestEntry(path="../etc/passwd", digest="blake3:" + "0" * 64, size=1)]
    from headwater.digest import manifest_digest

    with pytest.raises(hw.InvalidInput, match=r"\.\."):
        seeded.store.apply([VersionRecorded(name="evil", digest=manifest_digest(bad), entries=bad)])
    assert snapshot(seeded) == before


def test_a_digest_that_does_not_match_its_manifest_is_refused(seeded: hw.Client) -> None:
    before = snapshot(seeded)
    entries = [ManifestEntry(path="a", digest="blake3:" + "1" * 64, size=1)]
    with pytest.raises(hw.InvalidInput, match="does not match its manifest"):
        seeded.store.apply([VersionRecorded(name="x", digest="blake3:" + "2" * 64, entries=entries)])
    assert snapshot(seeded) == before


def test_committed_versions_cannot_be_mutated(seeded: hw.Client, files) -> None:
    version = seeded.get("ds:v0")
    with pytest.raises(hw.Conflict, match="immutable"):
        version.metadata = {"rows": 5}
    with pytest.raises(hw.Conflict, match="immutable"):
        version.entries = []
    assert seeded.get("ds:v0").metadata == {}


def test_latest_is_reserved_and_labels_are_not_aliases(seeded: hw.Client) -> None:
    before = snapshot(seeded)
    for alias in ("latest", "v3", "1abc", "has space"):
        with pytest.raises(hw.InvalidRef):
            seeded.alias("ds:v0", alias)
    assert snapshot(seeded) == before


def test_invalid_tags(seeded: hw.Client) -> None:
    before = snapshot(seeded)
    with pytest.raises(hw.InvalidInput, match="invalid tag"):
        seeded.tag("ds:v0", "two words")
    assert snapshot(seeded) == before


def test_a_database_from_a_newer_schema_is_refused(store_uri: str, headwater_home: Path, files) -> None:
    if store_uri.startswith("http"):
        pytest.skip("the server checks its database when it starts: tests/test_server.py")
    client = hw.Client(uri=store_uri, home=headwater_home)
    client.log_artifact("ds", files({"a": "1"}) / "a")
    engine = client.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    client.close()
    with pytest.raises(hw.SchemaTooNew, match="newer than this headwater knows") as caught:
        hw.Client(uri=store_uri, home=headwater_home).get("ds")
    assert "\n" not in str(caught.value)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999_future"
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})
