"""OpenLineage in both directions, with real clients: openlineage-python's OpenLineageClient and
its HTTP transport sending to a real server, and a server emitting to another one."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

import headwater as hw
from headwater.openlineage import EmittingStore, events_from_openlineage, wrap_store

pytest.importorskip("openlineage.client")

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    parent_run,
    schema_dataset,
)
from openlineage.client.transport.http import HttpConfig, HttpTransport

TOKEN = "ol-" + "c3" * 16


def ol_client(url: str, **extra: Any) -> OpenLineageClient:
    config = {"url": url, "auth": {"type": "api_key", "apiKey": TOKEN}, **extra}
    return OpenLineageClient(transport=HttpTransport(HttpConfig.from_dict(config)))


def version_facet(v: str) -> dict[str, Any]:
    return {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=v)}


def test_openlineage_client_start_and_complete_land_in_headwater(server_factory, files, monkeypatch) -> None:
    server = server_factory(env={"HEADWATER_TOKEN": TOKEN})
    monkeypatch.setenv("HEADWATER_TOKEN", TOKEN)
    client = hw.Client(uri=server.url)
    raw = files({"users.csv": "id\n1\n"}) / "users.csv"
    logged = client.log_reference(raw.as_uri(), raw.as_uri())  # headwater already knows this file

    emitter = ol_client(server.url, compression="gzip")
    run_id, parent_id = str(uuid.uuid4()), str(uuid.uuid4())
    started = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)  # after the log
    job = Job(namespace="spark", name="etl.clean_users")
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_id), job=parent_run.Job(namespace="airflow", name="etl")
    )
    inputs = [
        InputDataset(namespace="file", name=str(raw)),  # no version: latest at event time
        InputDataset(namespace="postgres://db:5432", name="shop.public.orders", facets=version_facet("42")),
    ]
    outputs = [
        OutputDataset(
            namespace="s3://lake",
            name="clean/users",
            facets={
                **version_facet("s3v-7"),
                "schema": schema_dataset.SchemaDatasetFacet(
                    fields=[schema_dataset.SchemaDatasetFacetFields(name="id", type="int")]
                ),
            },
        ),
        OutputDataset(namespace="headwater", name="user-report"),  # no version: the run decides
    ]
    for state, when in ((RunState.START, started), (RunState.COMPLETE, started + timedelta(minutes=3))):
        emitter.emit(
            RunEvent(
                eventType=state,
                eventTime=when.isoformat(),
                run=Run(runId=run_id, facets={"parent": parent}),
                job=job,
                inputs=inputs,
                outputs=outputs,
                producer="https://example.com/spark",
            )
        )

    run = client.get_run(run_id)
    assert (run.job, run.job_namespace, run.kind, run.status, run.parent_id) == (
        "etl.clean_users",
        "spark",
        "openlineage",
        "succeeded",
        parent_id,
    )
    assert (run.started_at, run.ended_at) == (started, started + timedelta(minutes=3))
    assert run.inputs == [f"{raw.as_uri()}:v0", "postgres://db:5432/shop.public.orders:v0"]
    assert run.outputs == ["s3://lake/clean/users:v0", "user-report:v0"]
    assert client.get_run(parent_id).job == "etl"
    out = client.get("s3://lake/clean/users")
    assert (
        out.digest == "ol:s3v-7"
        and out.produced_by == run_id
        and out.metadata == {"schema": [{"name": "id", "type": "int"}]}
    )
    assert client.get("user-report").digest == f"unverified:{run_id}"
    assert client.get("postgres://db:5432/shop.public.orders").digest == "ol:42"
    up = client.upstream("s3://lake/clean/users")
    assert sorted(v.ref for v in up.versions) == [
        f"{raw.as_uri()}:v0",
        "postgres://db:5432/shop.public.orders:v0",
        "s3://lake/clean/users:v0",
    ]
    exact = {e.version: e.exact for e in up.edges if e.direction == "used"}
    assert exact == {logged.ref: False, "postgres://db:5432/shop.public.orders:v0": True}  # the file: by latest
    assert [r.id for r in client.runs_using(raw.as_uri())] == [run_id]

    before = [(m.alias, m.version) for m in client.alias_history("s3://lake/clean/users")]
    emitter.emit(  # a producer's retry of the same event changes nothing
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=(started + timedelta(minutes=3)).isoformat(),
            run=Run(runId=run_id, facets={"parent": parent}),
            job=job,
            inputs=inputs,
            outputs=outputs,
            producer="https://example.com/spark",
        )
    )
    assert [(m.alias, m.version) for m in client.alias_history("s3://lake/clean/users")] == before
    assert len(client.runs()) == 2


def test_batches_failures_and_status_rules(server_factory) -> None:
    server = server_factory()
    client = hw.Client(uri=server.url)
    run_id = str(uuid.uuid4())
    t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)

    def event(kind: str | None, minutes: int, **more: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "eventTime": (t0 + timedelta(minutes=minutes)).isoformat(),
            "producer": "https://example.com/p",
            "run": {"runId": run_id, **more.pop("run", {})},
            "job": {"namespace": "ns", "name": "flaky"},
            "inputs": [],
            "outputs": [{"namespace": "gs://b", "name": "out.parquet"}],
            **more,
        }
        if kind:
            body["eventType"] = kind
        return body

    failing = event("FAIL", 2, run={"facets": {"errorMessage": {"message": "OOM", "programmingLanguage": "python"}}})
    answer = httpx.post(f"{server.url}/api/v1/lineage", json=[event("START", 0), failing, event(None, 3)], timeout=30)
    assert answer.status_code == 201 and answer.json() == {"received": 3, "ignored": 0, "recorded": 3}
    run = client.get_run(run_id)
    assert (run.status, run.error, run.outputs) == ("failed", "OOM", [])  # outputs count on COMPLETE only
    late = httpx.post(f"{server.url}/api/v1/lineage", json=event("COMPLETE", 1), timeout=30)
    assert late.status_code == 201 and client.get_run(run_id).status == "failed"  # terminal states stick
    job_event = {
        "eventTime": t0.isoformat(),
        "producer": "https://example.com/p",
        "job": {"namespace": "n", "name": "j"},
    }
    ignored = httpx.post(f"{server.url}/api/v1/lineage", json=job_event, timeout=30)
    assert ignored.status_code == 201 and ignored.json()["ignored"] == 1


def test_a_batch_is_all_or_nothing() -> None:
    good = {
        "eventType": "START",
        "eventTime": "2026-01-01T00:00:00Z",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "n", "name": "j"},
    }
    assert len(events_from_openlineage([good, good]).events) == 2
    with pytest.raises(hw.InvalidInput, match="event 1: missing field job.name"):
        events_from_openlineage([good, {**good, "job": {"namespace": "n"}}])


def _wait_for(check, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
            if found:
                return found
        except hw.NotFound:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("not emitted in time")
        time.sleep(0.1)


def test_every_run_is_emitted_to_another_openlineage_backend(server_factory, files) -> None:
    catalogue = server_factory("catalogue")  # any OpenLineage backend; here another headwater
    origin = server_factory("origin", env={"HEADWATER_OPENLINEAGE_URL": catalogue.url})
    client = hw.Client(uri=origin.url)
    seen = hw.Client(uri=catalogue.url, home=Path(str(client.home) + "-catalogue"))
    root = files({"raw.csv": "r", "model.pt": "M"})

    # Loop guard: what comes in as OpenLineage is never emitted again.
    foreign = str(uuid.uuid4())
    httpx.post(
        f"{origin.url}/api/v1/lineage",
        json={
            "eventType": "COMPLETE",
            "eventTime": "2026-01-01T00:00:00Z",
            "run": {"runId": foreign},
            "job": {"namespace": "x", "name": "foreign"},
            "outputs": [{"namespace": "headwater", "name": "f"}],
        },
        timeout=30,
    ).raise_for_status()

    raw = client.log_artifact("raw", root / "raw.csv")
    with client.run("train", job_namespace="team-a") as train:
        train.use("raw")
        model = train.log_artifact("model", root / "model.pt")
    with pytest.raises(ZeroDivisionError), client.run("evaluate") as evaluate:
        evaluate.use("model")
        1 / 0  # noqa: B018

    emitted = _wait_for(lambda: seen.get_run(evaluate.id).status == "failed" and seen.get_run(evaluate.id))
    assert emitted.error == "ZeroDivisionError: division by zero" and emitted.inputs == ["model:v0"]
    got = seen.get_run(train.id)
    assert (got.job, got.job_namespace, got.status, got.kind) == ("train", "team-a", "succeeded", "openlineage")
    assert got.inputs == ["raw:v0"] and got.outputs == ["model:v0"]
    # The version travels as the dataset version: the same content digest on both sides.
    assert seen.get("model").digest == f"ol:{model.digest}" and seen.get("raw").digest == f"ol:{raw.digest}"
    with pytest.raises(hw.NotFound):
        seen.get_run(foreign)


def test_a_local_store_emits_inline(server_factory, tmp_path: Path, files, monkeypatch) -> None:
    catalogue = server_factory("catalogue")
    monkeypatch.setenv("HEADWATER_OPENLINEAGE_URL", catalogue.url)
    local = hw.Client(uri=f"sqlite:///{tmp_path / 'local.db'}")
    store = wrap_store(local.store)
    assert isinstance(store, EmittingStore)
    assert store is local.store  # the Client wraps its store when HEADWATER_OPENLINEAGE_URL is set
    with local.run("nightly") as run:
        run.log_artifact("out", files({"o": "o"}) / "o")
    assert store.emitter.flush(10)  # sent behind the writes, the spool emptied
    seen = hw.Client(uri=catalogue.url, home=tmp_path / "seen")
    assert seen.get_run(run.id).outputs == ["out:v0"]
    # A catalogue that is away: tests/reliability/test_backend_faults.py


def _from(name: str, field: str, kind: str, subtype: str) -> dict[str, Any]:
    transformations = [{"type": kind, "subtype": subtype}]
    return {"namespace": "s3://lake", "name": name, "field": field, "transformations": transformations}


COLUMNS = {
    "fields": {
        "id": {"inputFields": [_from("raw/users", "user_id", "DIRECT", "IDENTITY")]},
        "spend": {
            "inputFields": [
                _from("raw/orders", "amount", "DIRECT", "AGGREGATION"),
                _from("raw/users", "user_id", "INDIRECT", "GROUP_BY"),
            ]
        },
    },
    "dataset": [_from("raw/users", "active", "INDIRECT", "FILTER")],
}


def test_column_lineage_is_kept_shown_and_sent_out_again(server_factory, tmp_path: Path, files, monkeypatch) -> None:
    from headwater import render
    from headwater.openlineage import COLUMN_LINEAGE

    catalogue = server_factory("catalogue")
    seen = hw.Client(uri=catalogue.url, home=tmp_path / "seen")
    run_id = str(uuid.uuid4())
    facet = {"_producer": "https://example.com/spark", "_schemaURL": "https://openlineage.io/x.json", **COLUMNS}
    httpx.post(
        f"{catalogue.url}/api/v1/lineage",
        json={
            "eventType": "COMPLETE",
            "eventTime": "2026-01-01T00:00:00Z",
            "run": {"runId": run_id},
            "job": {"namespace": "spark", "name": "spend"},
            "inputs": [
                {"namespace": "s3://lake", "name": "raw/users"},
                {"namespace": "s3://lake", "name": "raw/orders"},
            ],
            "outputs": [{"namespace": "s3://lake", "name": "spend", "facets": {"columnLineage": facet}}],
            "producer": "https://example.com/spark",
        },
        timeout=30,
    ).raise_for_status()
    kept = seen.get("s3://lake/spend")
    assert kept.metadata == {COLUMN_LINEAGE: COLUMNS}  # without the facet's _producer and _schemaURL
    shown = render.plain_text(render.version_detail(kept)).splitlines()
    columns = [line.split(None, 1)[-1] if line.startswith("columns") else line.strip() for line in shown]
    at = next(i for i, line in enumerate(shown) if line.startswith("columns"))
    assert columns[at : at + 2] == [
        "id <- s3://lake/raw/users.user_id (DIRECT)",
        "spend <- s3://lake/raw/orders.amount (DIRECT), s3://lake/raw/users.user_id (INDIRECT)",
    ]

    # Out: an output that carries the facet (logged by hand here) sends it on with its RunEvent.
    monkeypatch.setenv("HEADWATER_OPENLINEAGE_URL", catalogue.url)
    local = hw.Client(uri=f"sqlite:///{tmp_path / 'local.db'}")
    with local.run("report") as run:
        run.log_artifact("report", files({"r": "r"}) / "r", metadata={COLUMN_LINEAGE: COLUMNS})
    assert local.store.emitter.flush(10)  # type: ignore[attr-defined]
    assert seen.get_run(run.id).outputs == ["report:v0"]
    assert seen.get("report").metadata == {COLUMN_LINEAGE: COLUMNS}
