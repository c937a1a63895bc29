"""A small lineage graph for the web UI's tests: runs of four orchestrators, aliases moved at
known times, a takedown, an inexact edge, a container run with children, and a hostile name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

import headwater as hw
from headwater.events import AliasMoved, EdgeRecorded, RunRecorded, VersionRecorded
from tests.conftest import ServerProcess

XSS = "<script>alert(1)</script>"
MARCH = datetime(2026, 3, 1, tzinfo=timezone.utc)
JUNE = datetime(2026, 6, 1, tzinfo=timezone.utc)


@dataclass
class Story:
    users: str  # the raw export's artifact name (a file:// URI)
    ingest: str  # the DAG run (a container)
    clean: list[str]  # its two task runs (before and after the takedown)
    train: list[str]
    evaluate: str
    quantize: str


def _version(client: hw.Client, name: str, path: Path, run_id: str, **fields) -> VersionRecorded:
    content = client.content(path, store=False)
    fields.setdefault("direction", "produced")
    return VersionRecorded(name=name, digest=content.digest, entries=content.entries, run_id=run_id, **fields)


def _run(
    run_id: str, job: str, orchestrator: str, kind: str = "task", parent: str | None = None, **fields
) -> RunRecorded:
    started = fields.pop("started_at", datetime(2026, 2, 1, tzinfo=timezone.utc))
    return RunRecorded(
        run_id=run_id,
        job=job,
        job_namespace=fields.pop("namespace", orchestrator),
        orchestrator=orchestrator,
        run_kind=kind,
        status=fields.pop("status", "succeeded"),
        started_at=started,
        ended_at=started,
        parent_id=parent,
        **fields,
    )


def build(client: hw.Client, folder: Path) -> Story:
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "users.csv"
    raw.write_text("id,name,country\n1,Ann,FR\n2,Bob,DE\n3,Eve,FR\n")
    users = hw.refs.path_to_file_uri(raw)
    features = folder / "features"
    features.mkdir()
    (features / "part-0.csv").write_text("id,f\n1,0.1\n2,0.2\n3,0.3\n")
    (features / "schema").mkdir()
    (features / "schema" / "columns.json").write_text('["id", "f"]')
    model = folder / "model.pkl"
    model.write_bytes(b"weights-0")
    report = folder / "report.json"
    report.write_text('{"auc": 0.81}')

    ingest, clean0, clean1 = (hw.api.run_id("ui-test", n) for n in ("ingest", "clean0", "clean1"))
    train0, train1, evaluate = (hw.api.run_id("ui-test", n) for n in ("train0", "train1", "evaluate"))
    events: list = [_run(ingest, "ingest_customers", "airflow", kind="container")]
    # Airflow cleans the raw export (referenced where it lies) into features v0.
    events += [
        _run(
            clean0,
            "ingest_customers.clean",
            "airflow",
            parent=ingest,
            params={"country": "all"},
            code={"operator": "PythonOperator", "git_sha": "0123abcd"},
        ),
        _version(client, users, raw, clean0, direction="used", type="dataset"),
        _version(client, "features", features, clean0, type="dataset", metadata={"rows": 3}),
    ]
    # Dagster trains churn-model v0 on it.
    events += [
        _run(train0, "churn_model", "dagster", params={"C": 1.0}),
        _version(client, "features", features, train0, direction="used"),
        _version(client, "churn-model", model, train0, type="model", description="logistic regression"),
    ]
    client.emit(events)
    client.emit(
        [AliasMoved(name="churn-model", alias="production", digest=client.get("churn-model:v0").digest, time=MARCH)]
    )

    # Prefect evaluates the model: its input edge is inexact (recorded as `latest` at the time).
    client.emit(
        [
            _run(evaluate, "evaluate", "prefect", status="failed", error="ValueError: held-out set is empty"),
            EdgeRecorded(run_id=evaluate, ref="churn-model:v0", direction="used", exact=False),
            _version(client, "eval-report", report, evaluate, type="report"),
        ]
    )

    # The takedown: Eve leaves the export; Airflow runs again, Dagster retrains.
    raw.write_text("id,name,country\n1,Ann,FR\n2,Bob,DE\n")
    (features / "part-0.csv").write_text("id,f\n1,0.1\n2,0.2\n")
    (features / "part-1.csv").write_text("id,f\n")
    model.write_bytes(b"weights-1")
    client.emit(
        [
            _run(clean1, "ingest_customers.clean", "airflow", parent=ingest, started_at=JUNE),
            _version(client, users, raw, clean1, direction="used"),
            _version(client, "features", features, clean1, metadata={"rows": 2}),
            _run(train1, "churn_model", "dagster", started_at=JUNE),
            _version(client, "features", features, train1, direction="used"),
            _version(client, "churn-model", model, train1, type="model"),
        ]
    )
    client.emit(
        [AliasMoved(name="churn-model", alias="production", digest=client.get("churn-model:v1").digest, time=JUNE)]
    )

    # Another team quantizes v0 by hand; a hostile name is logged too.
    int8 = folder / "model.int8"
    int8.write_bytes(b"int8-weights")
    quantized = client.link(
        "quantize",
        inputs=["churn-model:v0"],
        outputs=[hw.Output("churn-model-int8", int8, type="model", aliases=["candidate"], tags=["validated"])],
    )
    odd = folder / "odd.txt"
    odd.write_text("<b>not bold</b>")
    client.log_artifact(XSS, odd, type=XSS, tags=["pii"], metadata={XSS: XSS}, description=XSS)
    return Story(
        users=users,
        ingest=ingest,
        clean=[clean0, clean1],
        train=[train0, train1],
        evaluate=evaluate,
        quantize=quantized.id,
    )


# -- fixtures (imported by the UI's test modules) ------------------------------------------------------


@pytest.fixture(scope="module")
def ui_story_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Story]]:
    """HEADWATER_HOME of a SQLite store holding the story."""
    folder = tmp_path_factory.mktemp("ui-story")
    client = hw.Client(home=folder / "home")
    story = build(client, folder / "data")
    client.close()
    yield folder / "home", story


@pytest.fixture(scope="module")
def ui_reader(ui_story_home: tuple[Path, Story]) -> Iterator[hw.Client]:
    """The API's answers, which the pages must show."""
    client = hw.Client(home=ui_story_home[0])
    yield client
    client.close()


@pytest.fixture(scope="module")
def ui_server(ui_story_home: tuple[Path, Story], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`headwater server` over the story's store."""
    home, _ = ui_story_home
    process = ServerProcess(tmp_path_factory.mktemp("ui-server"), f"sqlite:///{home / 'headwater.db'}").start()
    yield process
    process.stop()
