"""Lineage no DAG declares: ObjectStoragePath reads and writes, a retried task, a mapped task
naming its outputs through an AssetAlias, a skipped task, an asset without a location, and headwater objects
as inlet and outlet."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetAlias, ObjectStoragePath, task
from airflow.sdk.exceptions import AirflowSkipException

import headwater as hw

DATA = Path(os.environ["HEADWATER_AIRFLOW_TEST_DATA"])
FLAKY = Asset((DATA / "flaky.txt").as_uri())
NEVER = Asset((DATA / "never.txt").as_uri())
SQUARES = AssetAlias("squares")
SUMMARY = Asset("daily-summary")  # an asset with a name and no location

with DAG("hw_features", schedule=None, catchup=False, default_args={"retry_delay": timedelta(0)}) as dag:

    @task
    def write_notes():
        with ObjectStoragePath((DATA / "notes.txt").as_uri()).open("w") as out:
            out.write("alpha beta gamma\n")

    @task
    def count_words():
        with ObjectStoragePath((DATA / "notes.txt").as_uri()).open() as src:
            words = len(src.read().split())
        with ObjectStoragePath((DATA / "count.txt").as_uri()).open("w") as out:
            out.write(f"{words}\n")

    @task(outlets=[FLAKY], retries=1)
    def flaky(ti=None):
        (DATA / "flaky.txt").write_text(f"try {ti.try_number}\n")
        if ti.try_number == 1:
            raise ValueError("first try fails")

    @task(outlets=[SQUARES])
    def square(n: int, *, outlet_events):
        target = DATA / f"square-{n}.txt"
        target.write_text(f"{n * n}\n")
        outlet_events[SQUARES].add(Asset(target.as_uri()), extra={"n": n})

    @task(outlets=[NEVER])
    def maybe():
        raise AirflowSkipException("nothing new today")

    @task(outlets=[SUMMARY])
    def summarize():
        return None

    @task(
        inlets=["reference-data:v0", SUMMARY],
        outlets=[hw.Output("weekly-report", DATA / "report.txt", type="report", aliases=["candidate"])],
    )
    def report():
        (DATA / "report.txt").write_text("all good\n")

    write_notes() >> count_words()
    flaky()
    square.expand(n=[1, 2, 3])
    maybe()
    summarize() >> report()
