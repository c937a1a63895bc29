"""The story of examples/cross_orchestrator/, run as `make demo` runs it, on SQLite, on
PostgreSQL and through a tracking server.

Airflow, Dagster and Prefect each run in their own environment (the ones their test sessions
build under .nox/), the manual step in this one; all record into one store. The joined graph is
asserted exactly: every run with its orchestrator, status, parent, inputs and outputs; every
version; and the answers to the three questions the demo ends with.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import headwater as hw
from tests.browser import CHROMIUM, UIProcess, graph_nodes, shot, texts, wait_graph
from tests.conftest import ServerProcess, _truncate

ROOT = Path(__file__).resolve().parents[2]
STORY = ROOT / "examples" / "cross_orchestrator" / "story.py"

# 400 customers per region, 16 of each with a gap that cleaning drops; the takedown deletes 3.
ROWS, DROPPED, TAKEN_DOWN = 2 * (400 - 16), 2 * 16, 3


TOKEN = "e2e-read-write-token"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "server"])
def story_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the story records: SQLite, PostgreSQL, or a tracking server (over SQLite, a token
    required) that the three orchestrators' environments and the manual step all write to."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lineage.db'}"
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_database")
        _truncate(url)
        yield url
    else:
        server = ServerProcess(tmp_path / "server", workers=2, env={"HEADWATER_TOKEN": TOKEN}).start()
        yield server.url
        server.stop()


@pytest.fixture
def story(story_uri: str, tmp_path: Path) -> Iterator[tuple[hw.Client, Path, str]]:
    """The whole story, once: (the store it recorded into, its data folder, what it printed)."""
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    if story_uri.startswith("http"):
        env["HEADWATER_TOKEN"] = TOKEN
    done = subprocess.run(
        [sys.executable, str(STORY), "--work", str(work), "--uri", story_uri],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    client = hw.Client(uri=story_uri, home=work / "headwater", token=TOKEN if story_uri.startswith("http") else None)
    yield client, work / "data", done.stdout
    client.close()


def test_the_story_joins_four_kinds_of_runs_into_one_exact_graph(
    story: tuple[hw.Client, Path, str], story_uri: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    client, data, printed = story

    def uri(*parts):
        return data.joinpath(*parts).as_uri()

    raw_eu, raw_us, clean = uri("raw", "customers_eu.csv"), uri("raw", "customers_us.csv"), uri("clean", "customers")
    recent, partner = uri("holdout", "recent_signups.csv"), uri("holdout", "partner_accounts.csv")
    scores_recent = uri("reports", "scores_recent_signups.json")
    scores_partner = uri("reports", "scores_partner_accounts.json")

    jobs = {r.id: r.job for r in client.runs()}
    assert Counter(
        (
            r.job,
            r.orchestrator,
            r.kind,
            r.status,
            jobs.get(r.parent_id),
            tuple(sorted(r.inputs)),
            tuple(sorted(r.outputs)),
        )
        for r in client.runs()
    ) == Counter(
        {
            # 1. and 5.: Airflow, twice; the second run read the export after the takedown
            ("ingest_customers", "airflow", "container", "succeeded", None, (), ()): 2,
            (
                "ingest_customers.clean",
                "airflow",
                "task",
                "succeeded",
                "ingest_customers",
                (f"{raw_eu}:v0", f"{raw_us}:v0"),
                (f"{clean}:v0",),
            ): 1,
            (
                "ingest_customers.clean",
                "airflow",
                "task",
                "succeeded",
                "ingest_customers",
                (f"{raw_eu}:v1", f"{raw_us}:v0"),
                (f"{clean}:v1",),
            ): 1,
            # 2. Dagster
            ("train_churn_model", "dagster", "container", "succeeded", None, (), ()): 1,
            (
                "train_churn_model.churn_model",
                "dagster",
                "task",
                "succeeded",
                "train_churn_model",
                (f"{clean}:v0",),
                ("churn_model:v0",),
            ): 1,
            # 3. Prefect
            ("evaluate-churn-model", "prefect", "container", "succeeded", None, (), ()): 1,
            (
                "evaluate-churn-model.score",
                "prefect",
                "task",
                "succeeded",
                "evaluate-churn-model",
                ("churn_model:v0", f"{recent}:v0"),
                (f"{scores_recent}:v0",),
            ): 1,
            (
                "evaluate-churn-model.score",
                "prefect",
                "task",
                "succeeded",
                "evaluate-churn-model",
                ("churn_model:v0", f"{partner}:v0"),
                (f"{scores_partner}:v0",),
            ): 1,
            (
                "evaluate-churn-model.write_report",
                "prefect",
                "task",
                "succeeded",
                "evaluate-churn-model",
                (f"{scores_partner}:v0", f"{scores_recent}:v0"),
                ("churn_report:v0",),
            ): 1,
            # 4. by hand
            (
                "quantize-int8",
                "manual",
                "manual",
                "succeeded",
                None,
                ("churn_model:v0", "churn_report:v0"),
                ("churn_model_int8:v0",),
            ): 1,
        }
    )
    assert {a.name: (a.type, a.latest, a.versions) for a in client.artifacts()} == {
        raw_eu: (None, "v1", 2),
        raw_us: (None, "v0", 1),
        clean: (None, "v1", 2),
        recent: (None, "v0", 1),
        partner: (None, "v0", 1),
        scores_recent: (None, "v0", 1),
        scores_partner: (None, "v0", 1),
        "churn_model": ("model", "v0", 1),
        "churn_report": ("report", "v0", 1),
        "churn_model_int8": ("model", "v0", 1),
    }
    assert client.outbox.pending() == [] and client.outbox.dead() == []

    # The dataset Dagster read is the version Airflow wrote: one version, both edges on it.
    dataset = client.get(f"{clean}:v0")
    [airflow_task] = [r for r in client.runs(job="ingest_customers.clean") if f"{clean}:v0" in r.outputs]
    [dagster_step] = client.runs(job="train_churn_model.churn_model")
    assert dataset.producers == [airflow_task.id] and dagster_step.inputs == [dataset.ref]
    assert dataset.metadata == {"rows": ROWS, "dropped_incomplete": DROPPED}  # Airflow's outlet extra
    assert [e.path for e in dataset.entries] == ["customers_eu.csv", "customers_us.csv"]
    model = client.get("churn_model:v0")
    assert model.entries[0].ref == (data / "dagster-storage" / "churn_model").as_uri()

    # production is the quantized model, and its upstream reaches both raw files through runs of
    # all three orchestrators and the manual step, every edge exact.
    production = client.get("churn_model_int8:production")
    assert (production.ref, production.aliases) == ("churn_model_int8:v0", ["latest", "production"])
    upstream = client.upstream("churn_model_int8:production")
    assert {r.orchestrator for r in upstream.runs} == {"airflow", "dagster", "prefect", "manual"}
    assert sorted(v.ref for v in upstream.versions) == sorted(
        [
            "churn_model_int8:v0",
            "churn_model:v0",
            "churn_report:v0",
            f"{clean}:v0",
            f"{raw_eu}:v0",
            f"{raw_us}:v0",
            f"{recent}:v0",
            f"{partner}:v0",
            f"{scores_recent}:v0",
            f"{scores_partner}:v0",
        ]
    )
    assert all(e.exact for e in upstream.edges)
    assert (upstream.depth[f"{raw_eu}:v0"], upstream.depth[f"{raw_us}:v0"]) == (3, 3)

    # What the takedown changed: the EU file of the dataset, three rows fewer.
    diff = client.diff(f"{clean}:v0", f"{clean}:v1")
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == ([], [], ["customers_eu.csv"], 1)
    assert diff.metadata == {"rows": [ROWS, ROWS - TAKEN_DOWN]}
    before, after = diff.sizes["customers_eu.csv"]
    assert before > after

    # What was built on the export as it was: everything but the rerun's dataset.
    impact = client.impact(ref=f"{raw_eu}:v0")
    assert [v.ref for v in impact.holding] == [f"{raw_eu}:v0"]
    assert sorted(v.ref for v in impact.downstream.versions) == sorted(
        [
            f"{raw_eu}:v0",
            f"{clean}:v0",
            "churn_model:v0",
            f"{scores_recent}:v0",
            f"{scores_partner}:v0",
            "churn_report:v0",
            "churn_model_int8:v0",
        ]
    )

    # The takedown carried out: the old export is a reference (the file holds the new export by
    # now), so the purge reports it as changed, removes nothing of the user's, and is recorded.
    [record] = client.audit()
    assert (record.action, record.target, record.reason) == ("purge", f"{raw_eu}:v0", "erasure requests of 3 customers")
    assert (record.details["references"], record.details["files"]) == ([raw_eu], 0)
    assert f"    {raw_eu}  (changed)\n" in printed
    assert client.get(f"{raw_eu}:v1").purged == [] and client.get(f"{raw_eu}:v0").purged == []

    # What the demo prints: the tree of production, the diff, the impact list.
    assert "churn_model_int8:v0 (model) [latest, production]\n└── quantize-int8 (manual, succeeded) run " in printed
    assert f"    │       └── {clean}:v0\n" in printed
    assert f"~ customers_eu.csv  {before:,} -> {after:,} bytes\n" in printed
    assert f"metadata rows: {ROWS} -> {ROWS - TAKEN_DOWN}\n" in printed
    models = printed.split("models to retrain (2)\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split()[0] for line in models.splitlines()[1:]] == ["churn_model:v0", "churn_model_int8:v0"]
    assert f"HEADWATER_URI={story_uri} " in printed and printed.rstrip().endswith(" ui")

    # The same graph in the web UI, as `headwater ui` shows it for this store (the last command
    # the demo prints), in a real browser.
    if CHROMIUM is None and not os.environ.get("CI"):
        return  # tests/browser.py says why once; the story itself is asserted above
    page = request.getfixturevalue("page")
    env = {"HEADWATER_URI": story_uri, "HEADWATER_HOME": str(tmp_path / "ui-home")}
    if story_uri.startswith("http"):
        env["HEADWATER_TOKEN"] = TOKEN
    ui = UIProcess(env, tmp_path / "ui.log")
    try:
        page.goto(f"{ui.url}/ui/lineage?ref=churn_model_int8:production&direction=upstream&depth=all")
        wait_graph(page)
        assert graph_nodes(page) == ({v.ref for v in upstream.versions}, {r.id for r in upstream.runs})
        assert page.locator("#graph path.edge.inexact").count() == 0
        orchestrators = {
            page.get_attribute(f'#graph [data-run="{r.id}"]', "class").split("orch-")[1].split()[0]
            for r in upstream.runs
        }
        assert orchestrators == {"airflow", "dagster", "prefect", "manual"}
        page.set_viewport_size({"width": 1800, "height": 820})
        page.click("#fit")
        shot(page, f"demo-lineage-{request.node.callspec.id}")  # docs/images/demo-lineage.png
        page.goto(f"{ui.url}/ui/impact?ref={raw_eu}:v0")
        assert texts(page, "#models [data-ref]", "data-ref") == {"churn_model:v0", "churn_model_int8:v0"}
        page.click('#models a:text-is("churn_model_int8:v0")')
        assert "production" in page.inner_text(".meta")
        # every other page, on the story's store
        page.goto(f"{ui.url}/?sort=name")
        assert texts(page, "#artifacts tr[data-artifact]", "data-artifact") == {a.name for a in client.artifacts()}
        [manual] = client.runs(job="quantize-int8")
        page.goto(f"{ui.url}/ui/run?id={manual.id}")
        assert texts(page, "#inputs [data-ref]", "data-ref") == {"churn_model:v0", "churn_report:v0"}
        assert page.inner_text("#params").split() == ["bits", "8"]
        page.goto(f"{ui.url}/ui/diff?left={clean}:v0&right={clean}:v1")
        assert page.inner_text("table.diff tr.changed td:nth-child(2)") == "customers_eu.csv"
        page.goto(f"{ui.url}/ui/artifact?name=churn_model_int8")
        assert "churn_model_int8:v0" in page.inner_text('section.alias[data-alias="production"]')
        page.goto(f"{ui.url}/ui/runs?orchestrator=prefect")
        assert len(texts(page, "#runs [data-run]", "data-run")) == 4
    finally:
        ui.stop()
