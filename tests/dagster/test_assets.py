"""HeadwaterIOManager around real Dagster asset runs: the recorded graph, exactly."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.

from pathlib import Path

import dagster as dg
import pytest

import headwater as hw
from headwater.adapters.dagster import HeadwaterIOManager, record_run
from headwater.observe import code_identity
from tests.graphs import by_id

from . import assets
from .assets import greetings, users
from .conftest import container, step

JOB = "__ephemeral_asset_job__"


def io(storage: Path) -> HeadwaterIOManager:
    return HeadwaterIOManager(inner=dg.FilesystemIOManager(base_dir=str(storage)))


def test_two_assets_then_the_downstream_alone_links_the_earlier_version(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    client = store
    first = dg.materialize([users, greetings], resources={"io_manager": io(storage)}, instance=instance)
    second = dg.materialize(
        [users, greetings], selection=[greetings], resources={"io_manager": io(storage)}, instance=instance
    )
    users_uri, greetings_uri = (storage / "users").as_uri(), (storage / "greetings").as_uri()
    r1, r2 = first.run_id, second.run_id
    assert by_id(client) == {
        "runs": {
            container(r1): (JOB, "container", "succeeded", None, [], []),
            step(r1, "users"): (f"{JOB}.users", "task", "succeeded", container(r1), [], ["users:v0"]),
            step(r1, "greetings"): (
                f"{JOB}.greetings",
                "task",
                "succeeded",
                container(r1),
                ["users:v0"],
                ["greetings:v0"],
            ),
            container(r2): (JOB, "container", "succeeded", None, [], []),
            # loaded from the first run's storage: the edge goes to that exact version
            step(r2, "greetings"): (
                f"{JOB}.greetings",
                "task",
                "succeeded",
                container(r2),
                ["users:v0"],
                ["greetings:v0"],
            ),
        },
        "versions": {
            "users:v0": [("users", users_uri)],
            "greetings:v0": [("greetings", greetings_uri)],
        },
    }
    # The code a step ran is recorded as Airflow and Prefect record theirs: function, file, digest, commit.
    assert client.get_run(step(r1, "users")).code == {
        "function": f"{users.op.compute_fn.decorated_fn.__module__}.users",
        **code_identity(assets.__file__),
    }
    assert client.get_run(container(r1)).code == {}
    # The materialization carries the version, so the Dagster UI shows it.
    event = instance.get_latest_materialization_event(dg.AssetKey("greetings"))
    metadata = event.asset_materialization.metadata
    assert metadata["headwater/version"].value == "greetings:v0"
    assert metadata["headwater/digest"].value == client.get("greetings:v0").digest
    assert metadata["path"].value == str(storage / "greetings")


@dg.asset
def broken(users: list[str]) -> list[str]:
    raise ValueError(f"no greeting for {users[0]}")


def test_a_failing_step_is_failed_with_its_error_and_fails_the_run(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    result = dg.materialize(
        [users, broken], resources={"io_manager": io(storage)}, instance=instance, raise_on_error=False
    )
    assert not result.success
    r = result.run_id
    assert by_id(store)["runs"] == {
        container(r): (JOB, "container", "failed", None, [], []),
        step(r, "users"): (f"{JOB}.users", "task", "succeeded", container(r), [], ["users:v0"]),
        step(r, "broken"): (f"{JOB}.broken", "task", "failed", container(r), ["users:v0"], []),
    }
    assert store.get_run(step(r, "broken")).error == "ValueError: no greeting for ada"
    assert store.get_run(container(r)).error == "steps failed: broken"


DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")


@dg.asset(partitions_def=DAYS)
def events(context: dg.AssetExecutionContext) -> list[str]:
    return [f"event of {context.partition_key}"]


@dg.asset
def summary(events: dict[str, list[str]]) -> int:
    return sum(len(v) for v in events.values())


def test_each_partition_is_an_artifact_and_a_reader_of_all_links_every_version(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    days = DAYS.get_partition_keys()
    assert days == ["2024-01-01", "2024-01-02", "2024-01-03"]
    daily = [
        dg.materialize([events], partition_key=day, resources={"io_manager": io(storage)}, instance=instance).run_id
        for day in days
    ]
    # 2024-01-02 again, same content: the same version (v0), one more producer
    again = dg.materialize(
        [events], partition_key=days[1], resources={"io_manager": io(storage)}, instance=instance
    ).run_id
    reader = dg.materialize(
        [events, summary], selection=[summary], resources={"io_manager": io(storage)}, instance=instance
    ).run_id
    expected_runs = {}
    for run, day in [*zip(daily, days, strict=True), (again, days[1])]:
        expected_runs[container(run)] = (JOB, "container", "succeeded", None, [], [])
        expected_runs[step(run, "events")] = (
            f"{JOB}.events",
            "task",
            "succeeded",
            container(run),
            [],
            [f"events/{day}:v0"],
        )
    expected_runs[container(reader)] = (JOB, "container", "succeeded", None, [], [])
    expected_runs[step(reader, "summary")] = (
        f"{JOB}.summary",
        "task",
        "succeeded",
        container(reader),
        [f"events/{d}:v0" for d in days],
        ["summary:v0"],
    )
    assert by_id(store) == {
        "runs": expected_runs,
        "versions": {
            **{f"events/{d}:v0": [(d, (storage / "events" / d).as_uri())] for d in days},
            "summary:v0": [("summary", (storage / "summary").as_uri())],
        },
    }
    assert store.get_run(container(daily[0])).params == {"dagster_run_id": daily[0], "partition": days[0]}
    assert store.get("events/2024-01-02:v0").metadata == {"dagster/asset_key": "events", "dagster/partition": days[1]}
    assert store.get("events/2024-01-02:v0").producers == [step(daily[1], "events"), step(again, "events")]


@dg.asset(metadata={"headwater/uri": "file:///shared/exports/users"})
def exported_users() -> list[str]:
    return ["ada"]


def test_headwater_uri_names_the_artifact_and_the_bytes_stay_where_the_manager_put_them(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    dg.materialize([exported_users], resources={"io_manager": io(storage)}, instance=instance)
    version = store.get("file:///shared/exports/users")
    assert version.ref == "file:///shared/exports/users:v0"
    assert [(e.path, e.ref) for e in version.entries] == [("exported_users", (storage / "exported_users").as_uri())]


def test_recording_never_breaks_the_pipeline_and_disabled_records_nothing(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setenv("HEADWATER_DISABLED", "1")
    assert dg.materialize([users, greetings], resources={"io_manager": io(storage)}, instance=instance).success
    assert store.runs() == [] and store.outbox.pending() == []
    monkeypatch.delenv("HEADWATER_DISABLED")
    monkeypatch.setenv("HEADWATER_URI", "nope://nowhere")  # no such backend: every hook fails
    with caplog.at_level("WARNING", logger="headwater"):
        result = dg.materialize([users, greetings], resources={"io_manager": io(storage)}, instance=instance)
    assert result.success and result.output_for_node("greetings") == ["hello ada", "hello grace"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "headwater"]
    assert warnings and all(w.startswith("headwater: ") and "\n" not in w for w in warnings)
    assert store.runs() == []


def test_deps_are_hashed_when_the_step_runs_and_headwater_type_types_the_artifact(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, tmp_path: Path
) -> None:
    """An asset that reads an external file itself (`deps=`, no IO manager in between) links the
    exact version it read, even when the file changes before the run is recorded from the log."""
    export = tmp_path / "export.csv"
    export.write_text("id\n1\n2\n")
    as_read = store.content(export, store=False).digest
    spec = dg.AssetSpec("export", metadata={"headwater/uri": export.as_uri()})

    @dg.asset(deps=[spec], metadata={"headwater/type": "model"})
    def model() -> int:
        return len(export.read_text().splitlines())

    defs = dg.Definitions(assets=[spec, model], resources={"io_manager": io(storage)})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    export.write_text("id\n1\n")  # a takedown, after the step read the file
    record_run(instance, result.run_id, asset_graph=defs.resolve_asset_graph())
    job, r = "__ASSET_JOB", result.run_id
    assert by_id(store) == {
        "runs": {
            container(r): (job, "container", "succeeded", None, [], []),
            step(r, "model"): (
                f"{job}.model",
                "task",
                "succeeded",
                container(r),
                [f"{export.as_uri()}:v0"],
                ["model:v0"],
            ),
        },
        "versions": {
            f"{export.as_uri()}:v0": [("export.csv", export.as_uri())],
            "model:v0": [("model", (storage / "model").as_uri())],
        },
    }
    assert store.get(f"{export.as_uri()}:v0").digest == as_read  # not the file as it is now
    assert store.get("model").type == "model"
    assert [e.exact for e in store.upstream("model:v0").edges if e.direction == "used"] == [True]


@dg.asset(io_manager_key="plain")
def upstream_plain() -> list[str]:
    return ["ada"]


@dg.asset
def uses_plain(upstream_plain: list[str]) -> int:
    return len(upstream_plain)


def test_an_input_read_by_another_io_manager_links_the_version_it_stored(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path
) -> None:
    plain = dg.FilesystemIOManager(base_dir=str(storage / "plain"))
    result = dg.materialize(
        [upstream_plain, uses_plain], resources={"io_manager": io(storage), "plain": plain}, instance=instance
    )
    r = result.run_id
    assert by_id(store) == {
        "runs": {
            container(r): (JOB, "container", "succeeded", None, [], []),
            # upstream_plain's step never touched HeadwaterIOManager: no run until the sensor
            step(r, "uses_plain"): (
                f"{JOB}.uses_plain",
                "task",
                "succeeded",
                container(r),
                ["upstream_plain:v0"],
                ["uses_plain:v0"],
            ),
        },
        "versions": {
            "upstream_plain:v0": [("upstream_plain", (storage / "plain" / "upstream_plain").as_uri())],
            "uses_plain:v0": [("uses_plain", (storage / "uses_plain").as_uri())],
        },
    }


def test_a_failure_recording_deps_keeps_the_output_version(
    store: hw.Client,
    instance: dg.DagsterInstance,
    storage: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("the event log is unreadable")

    monkeypatch.setattr("headwater.adapters.dagster.deps.step_inputs", broken)
    result = dg.materialize([users, greetings], resources={"io_manager": io(storage)}, instance=instance)
    assert result.success
    assert [v.ref for v in store.versions("greetings")] == ["greetings:v0"]
    assert store.get_run(step(result.run_id, "greetings")).inputs == ["users:v0"]  # load_input's edge
    metadata = instance.get_latest_materialization_event(dg.AssetKey("greetings")).asset_materialization.metadata
    assert metadata["headwater/digest"].value == store.get("greetings:v0").digest
    assert "dagster deps of greetings not recorded: RuntimeError: the event log is unreadable" in caplog.text


def test_a_graph_backed_assets_deps_link_from_the_inner_op_that_takes_them(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, tmp_path: Path
) -> None:
    """The dep feeds an inner op (count_rows): that step read it, so the edge goes from there, not
    from the step that writes the asset (double)."""
    export = tmp_path / "export.csv"
    export.write_text("id\n1\n2\n")
    spec = dg.AssetSpec("export", metadata={"headwater/uri": export.as_uri()})

    @dg.op(ins={"start": dg.In(dg.Nothing)})
    def count_rows() -> int:
        return len(export.read_text().splitlines())

    @dg.op
    def double(n: int) -> int:
        return n * 2

    @dg.graph_asset(ins={"export": dg.AssetIn("export", dagster_type=dg.Nothing)})
    def counted(export):
        return double(count_rows(start=export))

    result = dg.materialize(
        [spec, counted], selection=[counted], resources={"io_manager": io(storage)}, instance=instance
    )
    r, inner = result.run_id, f"{JOB}/counted.count_rows/result:v0"
    assert by_id(store)["runs"] == {
        container(r): (JOB, "container", "succeeded", None, [], []),
        step(r, "counted.count_rows"): (
            f"{JOB}.counted.count_rows",
            "task",
            "succeeded",
            container(r),
            [f"{export.as_uri()}:v0"],
            [inner],
        ),
        step(r, "counted.double"): (
            f"{JOB}.counted.double",
            "task",
            "succeeded",
            container(r),
            [inner],
            ["counted:v0"],
        ),
    }
    # the chain is whole: the asset's upstream reaches the dep through the inner op's output
    assert f"{export.as_uri()}:v0" in store.upstream("counted:v0")
