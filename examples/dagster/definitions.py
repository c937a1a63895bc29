"""An orders pipeline whose lineage headwater records: `dagster dev -f definitions.py`.

raw_orders  the CSV another team's Airflow DAG exports (an external asset Dagster only reads)
orders      the parsed rows, stored by Dagster's IO manager
revenue     revenue per customer, stored by Dagster's IO manager
report      a text report the asset writes itself (MaterializeResult: no IO manager)

`headwater/uri` names an asset by its location, so the Airflow export and this pipeline's
reader are one artifact. Everything else is named by asset key.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import csv
import os
from pathlib import Path

import dagster as dg

from headwater.adapters.dagster import with_headwater

DATA = Path(os.environ.get("EXAMPLE_DATA", "data")).absolute()
RAW = DATA / "orders.csv"
REPORT = DATA / "report.txt"

raw_orders = dg.AssetSpec("raw_orders", metadata={"headwater/uri": RAW.as_uri()})


@dg.asset(deps=[raw_orders])
def orders() -> list[dict]:
    with open(RAW, newline="") as f:
        return [{"customer": r["customer"], "amount": float(r["amount"])} for r in csv.DictReader(f)]


@dg.asset
def revenue(orders: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for row in orders:
        totals[row["customer"]] = totals.get(row["customer"], 0.0) + row["amount"]
    return totals


@dg.asset(metadata={"headwater/uri": REPORT.as_uri()})
def report(revenue: dict[str, float]) -> dg.MaterializeResult:
    lines = [f"{customer}: {total:.2f}" for customer, total in sorted(revenue.items())]
    REPORT.write_text("\n".join(lines) + "\n")
    return dg.MaterializeResult(metadata={"customers": len(lines)})


defs = with_headwater(
    dg.Definitions(
        assets=[raw_orders, orders, revenue, report],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(DATA / "storage"))},
    )
)
