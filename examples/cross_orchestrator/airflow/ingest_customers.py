"""Airflow: ingest the raw regional exports into one cleaned dataset (a folder, a file:// Asset).

Nothing here mentions headwater: with headwater[airflow] installed, the plugin records the task
try, the exact versions of both raw files it read (plain-URI inlets) and the version of the
cleaned folder it wrote (its outlet), with the row counts of the outlet event as its metadata.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from airflow.sdk import DAG, Asset, task

DATA = Path(os.environ["HEADWATER_DEMO_DATA"]).absolute()
RAW = [(DATA / "raw" / f"customers_{region}.csv").as_uri() for region in ("eu", "us")]
CLEAN = Asset((DATA / "clean" / "customers").as_uri())
NUMERIC = ("age", "tenure_months", "monthly_spend", "support_calls", "churned")

with DAG("ingest_customers", schedule=None, catchup=False, tags=["headwater-demo"]) as dag:

    @task(inlets=RAW, outlets=[CLEAN])
    def clean(*, outlet_events):
        """Drop incomplete rows and duplicates; one cleaned file per region."""
        folder = Path(CLEAN.uri.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)
        kept = dropped = 0
        for raw in RAW:
            with open(raw.removeprefix("file://"), newline="") as src:
                rows = list(csv.DictReader(src))
            seen, good = set(), []
            for row in rows:
                if all(row[c].strip() for c in NUMERIC) and row["customer_id"] not in seen:
                    seen.add(row["customer_id"])
                    good.append(row)
            with open(folder / Path(raw).name, "w", newline="") as dst:
                writer = csv.DictWriter(dst, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(good)
            kept, dropped = kept + len(good), dropped + len(rows) - len(good)
        outlet_events[CLEAN].extra = {"rows": kept, "dropped_incomplete": dropped}

    clean()
