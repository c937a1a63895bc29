"""A plain Airflow 3 DAG: three tasks over file:// Assets. Nothing in it mentions headwater.

With headwater[airflow] installed, every run of it is recorded: each task try, the exact version
of each file it read and wrote, and the row count each task reported as its outlet's `extra`.

    HEADWATER_EXAMPLE_DATA=/tmp/churn airflow dags test churn
    headwater upstream file:///tmp/churn/model.json
"""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, task

# The raw export is a file that Airflow does not manage: a plain URI as the inlet is enough.
RAW = (Path(__file__).resolve().parent / "data" / "customers.csv").as_uri()
OUT = Path(os.environ.get("HEADWATER_EXAMPLE_DATA", "/tmp/headwater-example")).absolute()
CUSTOMERS = Asset((OUT / "customers.csv").as_uri())
FEATURES = Asset((OUT / "features.csv").as_uri())
MODEL = Asset((OUT / "model.json").as_uri())


def _path(asset: Asset) -> Path:
    return Path(asset.uri.removeprefix("file://"))


with DAG(
    "churn",
    schedule=None,
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(0)},
    tags=["example", "headwater"],
) as dag:

    @task(inlets=[RAW], outlets=[CUSTOMERS])
    def extract(*, outlet_events):
        """Keep the complete rows of the raw export."""
        with open(RAW.removeprefix("file://"), newline="") as src:
            rows = [r for r in csv.DictReader(src) if all(r.values())]
        OUT.mkdir(parents=True, exist_ok=True)
        with open(_path(CUSTOMERS), "w", newline="") as dst:
            writer = csv.DictWriter(dst, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        outlet_events[CUSTOMERS].extra = {"rows": len(rows)}

    @task(inlets=[CUSTOMERS], outlets=[FEATURES])
    def features():
        """Spend per month of tenure, and whether the plan is premium."""
        with open(_path(CUSTOMERS), newline="") as src:
            rows = list(csv.DictReader(src))
        with open(_path(FEATURES), "w", newline="") as dst:
            writer = csv.writer(dst)
            writer.writerow(["customer_id", "spend_per_month", "premium", "churned"])
            for r in rows:
                spend = float(r["monthly_spend"]) / max(1, int(r["tenure_months"]))
                writer.writerow([r["customer_id"], f"{spend:.3f}", int(r["plan"] == "premium"), r["churned"]])

    @task(inlets=[FEATURES], outlets=[MODEL])
    def train():
        """A one-feature threshold model: churn when spend per month of tenure is high."""
        with open(_path(FEATURES), newline="") as src:
            rows = [(float(r["spend_per_month"]), int(r["churned"])) for r in csv.DictReader(src)]
        best = max((sum((x >= t) == bool(y) for x, y in rows) / len(rows), t) for t, _ in rows)
        _path(MODEL).write_text(json.dumps({"threshold": best[1], "train_accuracy": round(best[0], 3)}) + "\n")

    extract() >> features() >> train()


if __name__ == "__main__":
    dag.test()
