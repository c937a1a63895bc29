"""A task that succeeds, then one that fails for good: the DAG run fails."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, task

with DAG("hw_safety", schedule=None, catchup=False, default_args={"retries": 0, "retry_delay": timedelta(0)}) as dag:

    @task
    def ok():
        return None

    @task
    def broken():
        raise RuntimeError("disk full")

    ok() >> broken()
