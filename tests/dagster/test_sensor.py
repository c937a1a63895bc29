"""with_headwater(defs) and the headwater sensor: assets that bypass IO managers
(MaterializeResult, deps=[...]) and an external asset that another orchestrator writes."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
from pathlib import Path

import dagster as dg

import headwater as hw
from headwater.adapters.dagster import HeadwaterIOManager, with_headwater
from tests.graphs import by_id

from .conftest import container, step


def build(orders: Path, report: Path, storage: Path) -> dg.Definitions:
    # Written by Airflow (say) at a path both orchestrators name: one artifact, its file:// URI.
    raw_orders = dg.AssetSpec("raw_orders", metadata={"headwater/uri": orders.as_uri()})

    @dg.asset(deps=[raw_orders])
    def order_ids() -> list[str]:  # through the IO manager, with a dep it reads itself
        return orders.read_text().split()

    @dg.asset(deps=[raw_orders], metadata={"headwater/uri": report.as_uri()})
    def order_report() -> dg.MaterializeResult:  # bypasses IO managers
        report.write_text(f"{len(orders.read_text().split())} orders\n")
        return dg.MaterializeResult(metadata={"rows": 1})

    return dg.Definitions(
        assets=[raw_orders, order_ids, order_report],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(storage))},
    )


def test_the_sensor_records_what_bypasses_io_managers_and_the_final_statuses(
    store: hw.Client, instance: dg.DagsterInstance, storage: Path, tmp_path: Path
) -> None:
    client = store
    orders, report = tmp_path / "orders.txt", tmp_path / "report.txt"
    orders.write_text("o1 o2 o3\n")
    client.log_reference(orders.as_uri(), orders.as_uri())  # what the Airflow adapter records
    defs = with_headwater(build(orders, report, storage))
    assert isinstance(defs.resources["io_manager"], HeadwaterIOManager)
    sensor = defs.resolve_sensor_def("headwater")
    repository = defs.get_repository_def()

    def tick(cursor: str | None) -> str | None:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repository)
        sensor(context)
        return context.cursor

    cursor = tick(None)  # the first tick starts from now
    r = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).run_id
    cursor = tick(cursor)
    assert tick(cursor) == cursor  # nothing new: nothing recorded twice
    job = "__ASSET_JOB"
    orders_v0, report_v0 = f"{orders.as_uri()}:v0", f"{report.as_uri()}:v0"
    assert by_id(client) == {
        "runs": {
            container(r): (job, "container", "succeeded", None, [], []),
            step(r, "order_ids"): (
                f"{job}.order_ids",
                "task",
                "succeeded",
                container(r),
                [orders_v0],
                ["order_ids:v0"],
            ),
            step(r, "order_report"): (
                f"{job}.order_report",
                "task",
                "succeeded",
                container(r),
                [orders_v0],
                [report_v0],
            ),
        },
        "versions": {
            orders_v0: [("orders.txt", orders.as_uri())],
            report_v0: [("report.txt", report.as_uri())],
            "order_ids:v0": [("order_ids", (storage / "order_ids").as_uri())],
        },
    }
