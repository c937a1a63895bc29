"""A task that fails, the task that needed it (upstream_failed), and one beside them that succeeds."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, ObjectStoragePath, task

DATA = Path(os.environ["HEADWATER_AIRFLOW_TEST_DATA"])

with DAG("hw_upstream_failed", schedule=None, catchup=False, default_args={"retry_delay": timedelta(0)}) as dag:

    @task
    def breaks():
        ObjectStoragePath((DATA / "input.txt").as_uri()).read_text()  # missing: FileNotFoundError

    @task
    def needs_it():
        ObjectStoragePath((DATA / "output.txt").as_uri()).write_text("never\n")

    @task
    def beside():
        ObjectStoragePath((DATA / "beside.txt").as_uri()).write_text("fine\n")

    breaks() >> needs_it()
    beside()
