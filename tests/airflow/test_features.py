"""What no DAG declares is recorded too, and every kind of task try is a run of its own."""

from __future__ import annotations

import headwater as hw
from tests.airflow.conftest import TEST_DATA
from tests.graphs import tries


def uri(name: str) -> str:
    return (TEST_DATA / name).as_uri()


def test_hook_lineage_retries_mapping_aliases_skips_and_headwater_objects(store: hw.Client, run_dag, tmp_path) -> None:
    (tmp_path / "reference.csv").write_text("id\n1\n")
    reference = store.log_artifact("reference-data", tmp_path / "reference.csv", type="dataset")

    dag_run = run_dag("hw_features")
    assert dag_run.state == "success"
    notes, count, flaky = uri("notes.txt"), uri("count.txt"), uri("flaky.txt")
    squares = [uri(f"square-{n}.txt") for n in (1, 2, 3)]
    assert tries(store) == {
        "runs": {
            "hw_features": ("container", "succeeded", None),
            "hw_features.write_notes#1": ("task", "succeeded", "hw_features"),
            "hw_features.count_words#1": ("task", "succeeded", "hw_features"),
            "hw_features.flaky#1": ("task", "failed", "hw_features"),
            "hw_features.flaky#2": ("task", "succeeded", "hw_features"),
            "hw_features.square[0]#1": ("task", "succeeded", "hw_features"),
            "hw_features.square[1]#1": ("task", "succeeded", "hw_features"),
            "hw_features.square[2]#1": ("task", "succeeded", "hw_features"),
            "hw_features.maybe#1": ("task", "skipped", "hw_features"),
            "hw_features.summarize#1": ("task", "succeeded", "hw_features"),
            "hw_features.report#1": ("task", "succeeded", "hw_features"),
        },
        "versions": {
            # ObjectStoragePath, no inlets or outlets declared
            f"{notes}:v0": ({}, "hw_features.write_notes#1"),
            f"{count}:v0": ({}, "hw_features.count_words#1"),
            # only the try that succeeded produced it
            f"{flaky}:v0": ({}, "hw_features.flaky#2"),
            # each mapped try, through the alias, with its event's extra
            **{
                f"{sq}:v0": ({"n": n}, f"hw_features.square[{n - 1}]#1")
                for n, sq in zip((1, 2, 3), squares, strict=True)
            },
            "reference-data:v0": ({}, None),  # logged by hand before the DAG ran
            "weekly-report:v0": ({}, "hw_features.report#1"),
            "daily-summary:v0": ({}, "hw_features.summarize#1"),  # no location: unverified
        },
        "edges": {
            ("hw_features.write_notes#1", "produced", f"{notes}:v0", True),
            ("hw_features.count_words#1", "used", f"{notes}:v0", True),
            ("hw_features.count_words#1", "produced", f"{count}:v0", True),
            ("hw_features.flaky#2", "produced", f"{flaky}:v0", True),
            *{
                (f"hw_features.square[{n - 1}]#1", "produced", f"{sq}:v0", True)
                for n, sq in zip((1, 2, 3), squares, strict=True)
            },
            ("hw_features.report#1", "used", "reference-data:v0", True),
            ("hw_features.report#1", "produced", "weekly-report:v0", True),
            ("hw_features.summarize#1", "produced", "daily-summary:v0", True),
            ("hw_features.report#1", "used", "daily-summary:v0", False),  # by name: not a digest
        },
    }
    first_try = store.get_run(hw.run_id("airflow", "hw_features", "flaky", dag_run.run_id, 1, -1))
    assert first_try.error == "ValueError: first try fails" and first_try.ended_at is not None
    assert store.get(flaky).entries[0].size == len("try 2\n")
    mapped = store.get_run(hw.run_id("airflow", "hw_features", "square", dag_run.run_id, 1, 2))
    assert mapped.params["map_index"] == 2 and mapped.outputs == [f"{squares[2]}:v0"]
    report = store.get("weekly-report:candidate")
    assert (report.label, report.type, report.entries[0].ref) == ("v0", "report", uri("report.txt"))
    assert store.get("reference-data:v0").digest == reference.digest
    assert not (TEST_DATA / "never.txt").exists()
    summarize = hw.run_id("airflow", "hw_features", "summarize", dag_run.run_id, 1, -1)
    summary = store.get("daily-summary:v0")
    assert (summary.digest, summary.entries) == (f"unverified:{summarize}", [])
