"""Purges beyond the shared contract: the CLI (confirmation, exit codes), an S3 blob store on
moto, a tracking server with tokens (who is recorded), a purge racing a log of the same content,
batches waiting in outboxes, and a database made before purges existed (migration 0002)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

import headwater as hw
from headwater.cli import cli
from headwater.events import RunRecorded
from tests.test_references_cloud import s3_endpoint  # noqa: F401 - the moto server fixture
from tests.test_server import RW, call
from tests.test_store_contract import MARKER, files_holding


def run_cli(*args: str, code: int = 0, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def test_cli_purge_asks_shows_and_fails_downloads_with_exit_code_7(files, headwater_home: Path, tmp_path: Path) -> None:
    root = files({"users_eu.csv": MARKER, "users_us.csv": "bob"})
    run_cli("log", "--job", "export", "--output", f"users={root}")
    run_cli("log", "--job", "train", "--input", "users:v0", "--output", f"model={files({'m': 'w'}, 'm') / 'm'}")

    dry = json.loads(run_cli("purge", "--path", "users_eu.csv", "--reason", "GDPR #12", "--dry-run", "--json").stdout)
    assert (dry["holding"], dry["files"]) == (["users:v0"], 1)
    assert {v["ref"] for v in dry["impact"]["downstream"]["versions"]} == {"users:v0", "model:v0"}
    text = run_cli("purge", "--path", "users_eu.csv", "--reason", "GDPR #12", "--dry-run").stdout
    assert "would purge: --path users_eu.csv" in text and "model:v0" in text

    # --reason is required; not on a terminal, --yes is (CliRunner's stdin is no terminal).
    assert "--reason" in run_cli("purge", "--path", "users_eu.csv", code=2).stderr
    refused = run_cli("purge", "--path", "users_eu.csv", "--reason", "GDPR #12", code=2)
    assert refused.stderr.strip() == (
        "headwater: error: purge removes bytes for good: pass --yes to confirm when not on a terminal"
    )
    assert hw.Client().get("users:v0").purged == []

    done = json.loads(run_cli("purge", "--path", "users_eu.csv", "--reason", "GDPR #12", "--yes", "--json").stdout)
    assert done["record"]["reason"] == "GDPR #12" and done["record"]["details"]["files"] == 1
    assert files_holding(MARKER, headwater_home) == []
    shown = run_cli("show", "users:v0").stdout
    assert "purged" in shown and "1 file (" in shown and "GDPR #12" in shown
    failed = run_cli("download", "users:v0", str(tmp_path / "out"), code=7)
    assert "users:v0: 1 file(s) purged" in failed.stderr and "users_eu.csv" in failed.stderr
    assert json.loads(run_cli("verify", "users:v0", "--json", code=7).stderr)["error"] == "Purged"
    for still_works in (("upstream", "model:v0"), ("downstream", "users:v0"), ("impact", "users:v0")):
        assert "users:v0" in run_cli(*still_works).stdout
    run_cli("delete", "model:v0", "--reason", "retrain without alice")
    audit = json.loads(run_cli("audit", "--json").stdout)
    assert [(r["action"], r["target"], r["reason"]) for r in audit] == [
        ("delete", "model:v0", "retrain without alice"),
        ("purge", "--path users_eu.csv", "GDPR #12"),
    ]
    assert "retrain without alice" in run_cli("audit").stdout


def test_purge_on_an_s3_blob_store(
    s3_endpoint: str,  # noqa: F811 - the fixture imported above
    files,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    prefix = f"purge-{tmp_path.name}"
    monkeypatch.setenv("HEADWATER_BLOB_URI", f"s3://blobs/{prefix}")
    client = hw.Client(uri=f"sqlite:///{tmp_path / 'db'}", home=tmp_path / "home")
    root = files({"secret.csv": MARKER, "fine.csv": "fine"})
    client.log_artifact("users", root)
    s3 = boto3.client("s3")

    def objects() -> dict[str, bytes]:
        listed = s3.list_objects_v2(Bucket="blobs", Prefix=prefix).get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket="blobs", Key=o["Key"])["Body"].read() for o in listed}

    assert sum(MARKER in body for body in objects().values()) == 1
    report = client.purge(reason="takedown", path="secret.csv")
    assert isinstance(report, hw.PurgeReport) and len(report.removed_blobs) == 1
    left = objects()
    assert len(left) == 1 and not any(MARKER in body for body in left.values())
    assert files_holding(MARKER, tmp_path / "home") == []
    assert client.get("users:v0").download(entry="fine.csv").read_text() == "fine"
    client.close()


def test_a_server_records_the_token_and_refuses_a_read_only_one(
    server_factory, token_file: Path, files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory("secured", args=["--token-file", str(token_file)])
    monkeypatch.setenv("HEADWATER_TOKEN", RW)
    writer = hw.Client(uri=server.url, home=tmp_path / "writer")
    writer.log_artifact("users", files({"u.csv": MARKER}) / "u.csv")
    assert files_holding(MARKER, Path(server.blobs))
    monkeypatch.setenv("HEADWATER_TOKEN", "ro-" + "b2" * 16)
    reader = hw.Client(uri=server.url, home=tmp_path / "reader")
    with pytest.raises(hw.Unauthorized, match="read-only"):
        reader.purge(reason="no", path="u.csv")
    assert files_holding(MARKER, Path(server.blobs))
    report = writer.purge(reason="yes", path="u.csv")
    assert isinstance(report, hw.PurgeReport) and report.removed_server_blobs == report.digests
    assert files_holding(MARKER, Path(server.blobs), tmp_path / "writer") == []
    [record] = reader.audit()  # a read-only token reads the audit log
    assert record.who.endswith(")") and "(token sha256:" in record.who and RW not in record.who
    assert call(server, "GET", "/api/v1/audit").json()[0]["reason"] == "yes"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"{RW}\nread-only {'ro-' + 'b2' * 16}\n")
    return path


def test_a_purge_racing_a_log_of_the_same_content_loses_nothing_else(client: hw.Client, files, tmp_path: Path) -> None:
    secret = files({"s.csv": MARKER})
    client.log_artifact("users", secret / "s.csv")
    errors: list[BaseException] = []
    logged: list[hw.Version] = []

    def log_again(n: int) -> None:
        other = hw.Client(uri=client.uri, home=client.home)
        try:
            for i in range(n):
                folder = files({"s.csv": MARKER, "keep.csv": f"keep {i}"}, f"race{i}")
                logged.append(other.log_artifact(f"racer{i}", folder))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            other.close()

    racer = threading.Thread(target=log_again, args=(6,))
    racer.start()
    client.purge(reason="race", path="s.csv")
    racer.join()
    assert errors == []
    client.purge(reason="race, again: what arrived meanwhile", path="s.csv")
    client.gc()  # purged content needs no grace period
    for version in logged:
        current = client.get(version.ref)
        assert current.purged == ["s.csv"], current.ref  # marked, whenever it arrived
        assert current.download(entry="keep.csv").read_text().startswith("keep ")  # the rest is there
    assert files_holding(MARKER, client.home) == []


def test_batches_waiting_in_outboxes_are_delivered_and_marked(client: hw.Client, files, tmp_path: Path) -> None:
    from headwater.events import VersionRecorded

    secret = files({"s.csv": MARKER})
    client.log_artifact("users", secret / "s.csv")
    content = client.content(secret / "s.csv")
    # A batch of this home, waiting: delivered before the purge, so its version is marked too.
    client._store_blobs(content)
    client.queue(
        [
            RunRecorded(run_id="waiting-run", job="late", job_namespace="manual", orchestrator="manual"),
            VersionRecorded(name="late-copy", digest=content.digest, entries=content.entries),
        ]
    )
    # Another machine's outbox (another home), delivered only after the purge.
    other = hw.Client(uri=client.uri, home=tmp_path / "other-machine")
    other.queue(
        [
            RunRecorded(run_id="other-run", job="elsewhere", job_namespace="manual", orchestrator="manual"),
            VersionRecorded(
                name="other-copy",
                digest=content.digest,
                entries=content.entries,
                run_id="other-run",
                direction="produced",
            ),
        ]
    )
    report = client.purge(reason="takedown", path="s.csv")
    assert isinstance(report, hw.PurgeReport)
    assert sorted(report.holding) == ["late-copy:v0", "users:v0"]
    assert client.outbox.pending() == []
    assert client.get_run("waiting-run").job == "late"
    delivered = other.sync()
    assert other.outbox.pending() == [] and not delivered.dead  # not refused: recorded as purged
    assert client.get_run("other-run").outputs == ["other-copy:v0"]
    assert client.get("other-copy:v0").purged == ["s.csv"]
    assert files_holding(MARKER, client.home, tmp_path / "other-machine") == []
    other.close()


def test_a_database_made_before_purges_is_upgraded(tmp_path: Path, files) -> None:
    from alembic import command

    from headwater.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
        assert "audit_log" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    client = hw.Client(uri=url, home=tmp_path / "home")
    client.log_artifact("d", files({"a": MARKER}) / "a")
    client.purge(reason="upgraded", path="a")
    assert client.get("d:v0").purged == ["a"] and client.audit()[0].reason == "upgraded"
    client.close()
