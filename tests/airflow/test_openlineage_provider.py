"""An Airflow DAG run with the official OpenLineage provider alone lands in headwater's graph.

apache-airflow-providers-openlineage (pinned in constraints/airflow.txt) sends its events over
its HTTP transport to a real `headwater server`; the headwater plugin is off (HEADWATER_DISABLED=1).
The provider decides at import time whether it is enabled (its plugin's listeners are fixed when
Airflow loads plugins, once per process), so the DAG runs with dag.test() in a child process of
its own, configured from the start, and the rest of this session keeps the provider disabled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import headwater as hw
from tests.airflow.conftest import DAGS, TEST_DATA
from tests.conftest import ServerProcess

DAG_ID = "hw_ol_provider"
DAG_SOURCE = textwrap.dedent(
    '''
    """Two tasks chained through file:// Assets: raw.csv -> extract -> clean.csv -> report -> report.csv."""

    from __future__ import annotations

    import os
    from pathlib import Path

    from airflow.sdk import DAG, Asset, task

    DATA = Path(os.environ["HEADWATER_AIRFLOW_TEST_DATA"])
    RAW, CLEAN, REPORT = (Asset(name=n, uri=(DATA / n).as_uri()) for n in ("raw.csv", "clean.csv", "report.csv"))

    with DAG("hw_ol_provider", schedule=None, catchup=False) as dag:

        @task(inlets=[RAW], outlets=[CLEAN])
        def extract():
            rows = (DATA / "raw.csv").read_text().splitlines()
            (DATA / "clean.csv").write_text("\\n".join(r.strip() for r in rows) + "\\n")

        @task(inlets=[CLEAN], outlets=[REPORT])
        def report():
            rows = (DATA / "clean.csv").read_text().splitlines()
            (DATA / "report.csv").write_text(f"rows\\n{len(rows) - 1}\\n")

        extract() >> report()
    '''
)
RUN_DAG = textwrap.dedent(
    f"""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("{DAG_ID}", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print("STATE", module.dag.test().state, flush=True)
    """
)


def uri(name: str) -> str:
    """The name headwater's own plugin gives the file (Asset URI file:///...): the same artifact."""
    return (TEST_DATA / name).as_uri()


def run_dag_with_provider(server: ServerProcess, dag_file: Path) -> str:
    """dag.test() in a child process with the provider's HTTP transport on and headwater off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_URI", "OPENLINEAGE"))}
    env.update(
        {
            "HEADWATER_DISABLED": "1",
            "AIRFLOW__OPENLINEAGE__DISABLED": "False",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-test",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "http", "url": server.url, "endpoint": "api/v1/lineage"}
            ),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", RUN_DAG, str(dag_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and "STATE success" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_openlineage_provider_over_http_lands_in_the_graph(tmp_path: Path, headwater_home: Path) -> None:
    dag_file = DAGS / f"{DAG_ID}.py"
    dag_file.write_text(DAG_SOURCE)
    (TEST_DATA / "raw.csv").write_text("id,amount\n1, 10\n2, 20\n")
    server = ServerProcess(tmp_path / "server").start()
    try:
        output = run_dag_with_provider(server, dag_file)
        client = hw.Client(uri=server.url, home=tmp_path / "client")
        try:
            runs = {run.id: run for run in client.runs()}
            job = {run_id: run.job for run_id, run in runs.items()}
            by_job = {run.job: run for run in runs.values()}
            versions, edges = {}, set()
            for artifact in client.artifacts():
                for version in client.versions(artifact.name):
                    digest = version.digest.removeprefix("unverified:")
                    versions[version.ref] = (
                        f"unverified:{job[digest]}" if digest in job else version.digest,
                        job.get(version.produced_by or ""),
                    )
                    for edge in client.upstream(version.ref, depth=1).edges:
                        edges.add((job[edge.run_id], edge.direction, edge.version, edge.exact))
            upstream = client.upstream(f"{uri('report.csv')}:v0")
        finally:
            client.close()
    finally:
        server.stop()

    raw, clean, report = uri("raw.csv"), uri("clean.csv"), uri("report.csv")
    extract_job, report_job = f"{DAG_ID}.extract", f"{DAG_ID}.report"
    # the provider's runs: a START and a COMPLETE per task, the DAG run's COMPLETE (dag.test() fires
    # no on_dag_run_running), each task's parent facet naming the DAG run
    assert output.count("Successfully emitted OpenLineage") == 5, output[-3000:]
    assert {
        run.job: (run.job_namespace, run.orchestrator, run.kind, run.status, job.get(run.parent_id or ""))
        for run in runs.values()
    } == {
        DAG_ID: ("airflow-test", "openlineage", "openlineage", "succeeded", None),
        extract_job: ("airflow-test", "openlineage", "openlineage", "succeeded", DAG_ID),
        report_job: ("airflow-test", "openlineage", "openlineage", "succeeded", DAG_ID),
    }
    assert len(runs) == 3
    assert by_job[extract_job].inputs == [f"{raw}:v0"] and by_job[extract_job].outputs == [f"{clean}:v0"]
    assert by_job[report_job].inputs == [f"{clean}:v0"] and by_job[report_job].outputs == [f"{report}:v0"]
    assert by_job[extract_job].code == {
        "producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
        "integration": "AIRFLOW",
    }
    # no version facet from the provider: outputs are `unverified:<run id>` (the COMPLETE decides);
    # an input is linked to `latest` inexactly, and raw.csv, never seen before, gets a placeholder
    # version named after the run that first used it, with no producer
    assert versions == {
        f"{raw}:v0": (f"unverified:{extract_job}", None),
        f"{clean}:v0": (f"unverified:{extract_job}", extract_job),
        f"{report}:v0": (f"unverified:{report_job}", report_job),
    }
    assert edges == {
        (extract_job, "used", f"{raw}:v0", False),
        (extract_job, "produced", f"{clean}:v0", True),
        (report_job, "used", f"{clean}:v0", False),
        (report_job, "produced", f"{report}:v0", True),
    }
    # report.csv's upstream reaches raw.csv, the first task's input, through both runs
    assert {v.ref for v in upstream.versions} == {f"{report}:v0", f"{clean}:v0", f"{raw}:v0"}
    assert {job[r.id] for r in upstream.runs} == {report_job, extract_job}
    assert upstream.depth == {f"{report}:v0": 0, f"{clean}:v0": 1, f"{raw}:v0": 2}
    # the headwater plugin recorded nothing (HEADWATER_DISABLED=1): no local store was even made
    assert not headwater_home.exists()
