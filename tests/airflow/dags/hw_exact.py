"""Lineage nobody declares, edge for edge: ObjectStoragePath's read_text/write_text/read_bytes/
write_bytes, an AssetAlias inlet, and tasks a branch skips."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetAlias, ObjectStoragePath, task

DATA = Path(os.environ["HEADWATER_AIRFLOW_TEST_DATA"])
PUBLISHED = AssetAlias("hw-exact-published")


def at(name: str) -> ObjectStoragePath:
    return ObjectStoragePath((DATA / name).as_uri())


with DAG("hw_exact", schedule=None, catchup=False, default_args={"retry_delay": timedelta(0)}) as dag:

    @task
    def extract():
        at("raw.txt").write_text("gamma alpha beta\n")
        at("raw.bin").write_bytes(b"\x00\x01\x02")

    @task
    def transform():
        words = sorted(at("raw.txt").read_text().split())
        size = len(at("raw.bin").read_bytes())
        at("clean.txt").write_text(f"{' '.join(words)} {size}\n")

    @task(outlets=[PUBLISHED])
    def publish(*, outlet_events):
        target = DATA / "published.txt"
        target.write_text(at("clean.txt").read_text().upper())  # a plain write: only the alias names it
        outlet_events[PUBLISHED].add(Asset(target.as_uri()))

    @task(inlets=[PUBLISHED])
    def consume():
        # Read without ObjectStoragePath: the alias inlet is the only way to know what this read.
        at("consumed.txt").write_bytes((DATA / "published.txt").read_bytes()[::-1])

    @task.branch
    def choose():
        return "kept"

    @task
    def kept():
        at("kept.txt").write_text("kept\n")

    @task
    def dropped():
        at("dropped.txt").write_text("never\n")

    @task
    def after_dropped():
        at("after.txt").write_text("never\n")

    extract() >> transform() >> publish() >> consume()
    dropped_task = dropped()
    choose() >> [kept(), dropped_task]
    dropped_task >> after_dropped()
