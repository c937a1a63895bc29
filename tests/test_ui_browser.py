"""The web UI in a real browser: Playwright driving the system's Chromium against a real
`headwater server` (and `headwater ui`) over a store the ui_story fixture builds.

Every page is checked for console errors, failed requests and requests to another host;
screenshots go to test-artifacts/ui/ (HEADWATER_TEST_ARTIFACTS to change it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

import headwater as hw
from headwater.api import merge_graphs
from tests import ui_story
from tests.browser import UIProcess, graph_nodes, shot, texts, wait_graph
from tests.conftest import ServerProcess

RO, RW = "ro-" + "r" * 28, "rw-" + "w" * 28


def both(client: hw.Client, ref: str, depth: int | None) -> hw.LineageGraph:
    return merge_graphs([client.upstream(ref, depth), client.downstream(ref, depth)])


# -- pages -------------------------------------------------------------------------------------------


def test_artifacts_page_searches_filters_sorts_and_pages(page, ui_server, ui_reader) -> None:
    page.goto(ui_server.url + "/")
    names = {a.name for a in ui_reader.artifacts()}
    assert texts(page, "#artifacts tr[data-artifact]", "data-artifact") == names
    shot(page, "artifacts")
    # newest update first by default: the hostile name was logged last
    assert page.get_attribute("#artifacts tbody tr:first-child", "data-artifact") == ui_story.XSS
    page.fill("form.filters input[name=type]", "model")
    page.click("form.filters button[type=submit]")
    assert texts(page, "#artifacts tr[data-artifact]", "data-artifact") == {"churn-model", "churn-model-int8"}
    page.goto(ui_server.url + "/?tag=validated")
    assert texts(page, "#artifacts tr[data-artifact]", "data-artifact") == {"churn-model-int8"}
    page.fill("header .search input", "churn-model-")
    page.press("header .search input", "Enter")
    assert texts(page, "#artifacts tr[data-artifact]", "data-artifact") == {"churn-model-int8"}
    page.goto(ui_server.url + "/?q=zzz-nothing")
    assert "No artifact matches" in page.inner_text("main")


def test_navigate_artifact_version_lineage_run_and_back(page, ui_server, ui_reader, ui_story_home) -> None:
    _, story = ui_story_home
    page.goto(ui_server.url + "/")
    page.click('#artifacts a.ref:text-is("churn-model")')
    page.wait_for_url(re.compile(r"/ui/artifact\?name=churn-model$"))
    assert texts(page, "#versions tr[data-ref]", "data-ref") == {"churn-model:v0", "churn-model:v1"}
    assert page.inner_text('#versions tr[data-ref="churn-model:v0"] td:nth-child(4)') == "1"  # files
    history = page.inner_text('section.alias[data-alias="production"]')
    assert "churn-model:v1" in history and "churn-model:v0" in history and "2026-03-01T00:00:00Z" in history
    shot(page, "artifact")

    page.click('#versions a.ref:text-is("v0")')
    page.wait_for_url(re.compile(r"/ui/version\?ref=churn-model:v0$"))
    assert page.inner_text("h1") == "churn-model:v0"
    assert page.inner_text("dl.facts").count("churn_model") == 1  # produced by Dagster's step
    assert "quantize" in page.inner_text("dl.facts") and "evaluate" in page.inner_text("dl.facts")
    shot(page, "version")

    page.click('nav.actions a:text-is("Lineage graph")')
    page.wait_for_url(re.compile(r"/ui/lineage\?ref=churn-model:v0&direction=both$"))
    wait_graph(page)
    expected = both(ui_reader, "churn-model:v0", 3)
    refs, runs = graph_nodes(page)
    assert refs == {v.ref for v in expected.versions}
    assert runs == {r.id for r in expected.runs}
    assert page.get_attribute(f'#graph [data-run="{story.evaluate}"]', "class").count("orch-prefect") == 1
    assert page.locator("#graph path.edge.inexact").count() == 1  # evaluate used `latest`, not a digest
    shot(page, "lineage")

    page.click(f'#graph [data-run="{story.train[0]}"]')
    assert "dagster" in page.inner_text("#details")
    page.click('#details a:text-is("Open run")')
    page.wait_for_url(re.compile(r"/ui/run\?id="))
    assert texts(page, "#inputs [data-ref]", "data-ref") == {"features:v0"}
    assert texts(page, "#outputs [data-ref]", "data-ref") == {"churn-model:v0"}
    assert page.inner_text("#params").split() == ["C", "1.0"]
    shot(page, "run")
    page.go_back()
    wait_graph(page)
    assert graph_nodes(page)[1] == {r.id for r in expected.runs}


def test_run_page_shows_parent_children_error_and_inexact_inputs(page, ui_server, ui_reader, ui_story_home) -> None:
    _, story = ui_story_home
    page.goto(f"{ui_server.url}/ui/run?id={story.evaluate}")
    assert "held-out set is empty" in page.inner_text("pre.error")
    assert page.inner_text('#inputs [data-ref="churn-model:v0"] .inexact') == "inexact"
    assert "failed" in page.inner_text("h1")
    page.goto(f"{ui_server.url}/ui/run?id={story.ingest}")
    assert texts(page, "#children [data-run]", "data-run") == set(story.clean)
    page.click(f'#children [data-run="{story.clean[0]}"] a.run')
    assert "PythonOperator" in page.inner_text("#code") and "0123abcd" in page.inner_text("#code")
    assert "ingest_customers" in page.inner_text("dl.facts")  # the parent


def test_graph_expands_a_node_and_collapses_by_artifact(page, ui_server, ui_reader) -> None:
    page.goto(ui_server.url + "/ui/lineage?ref=features:v0&direction=downstream&depth=1")
    wait_graph(page)
    down = ui_reader.downstream("features:v0", 1)
    assert graph_nodes(page)[0] == {v.ref for v in down.versions}
    page.click('#graph [data-ref="churn-model:v0"]')
    page.click('#details button:text-is("Expand neighbours")')
    page.locator("#graph [data-ref]").nth(len(down.versions)).wait_for()  # (CSP: no string eval)
    expanded = merge_graphs([down, both(ui_reader, "churn-model:v0", 1)])
    assert graph_nodes(page) == ({v.ref for v in expanded.versions}, {r.id for r in expanded.runs})
    assert page.is_visible("#graph .node.selected[data-ref='churn-model:v0']")  # still selected after the redraw
    page.check("#collapse")
    assert page.is_hidden("#details")  # its node was collapsed into its artifact
    assert texts(page, "#graph [data-artifact]", "data-artifact") == {v.name for v in expanded.versions}
    assert page.locator("#graph [data-ref]").count() == 0
    shot(page, "lineage-collapsed")
    page.uncheck("#collapse")
    assert graph_nodes(page)[0] == {v.ref for v in expanded.versions}


def test_time_travel_answers_what_an_alias_pointed_at(page, ui_server) -> None:
    base = ui_server.url + "/ui/artifact?name=churn-model&alias=production"
    page.goto(base + "&at=2026-04-01T00:00")
    assert "churn-model:v0" in page.inner_text("#travel-answer")
    page.fill('input[name="at"]', "2026-07-01T12:00:00")
    page.click('#time-travel + form button[type="submit"]')
    page.wait_for_url(re.compile(r"at=2026-07-01"))
    assert "churn-model:v1" in page.inner_text("#travel-answer")
    page.goto(base + "&at=2026-01-01T00:00")
    assert "no alias 'production'" in page.inner_text("#travel-answer")


def test_diff_and_impact_pages(page, ui_server, ui_reader, ui_story_home) -> None:
    _, story = ui_story_home
    page.goto(ui_server.url + "/ui/diff")
    page.fill('input[name="left"]', "features:v0")
    page.fill('input[name="right"]', "features:v1")
    page.click('form.filters button[type="submit"]')
    body = page.inner_text("main")
    assert "1 added, 0 removed, 1 changed, 1 unchanged" in body
    assert "part-1.csv" in page.inner_text("table.diff tr.added") and "part-0.csv" in page.inner_text(
        "table.diff tr.changed"
    )
    assert "rows" in body  # metadata 3 -> 2
    shot(page, "diff")

    ref = f"{story.users}:v0"
    page.goto(ui_server.url + "/ui/impact?ref=" + quote(ref, safe="/:"))
    expected = ui_reader.impact(ref=ref)
    holding = {v.ref for v in expected.holding}
    assert texts(page, "#holding [data-ref]", "data-ref") == holding
    models = {v.ref for v in expected.downstream.versions if v.type == "model" and v.ref not in holding}
    assert texts(page, "#models [data-ref]", "data-ref") == models == {"churn-model:v0", "churn-model-int8:v0"}
    used = {e.run_id for e in expected.downstream.edges if e.direction == "used"}
    assert texts(page, "#rerun [data-run]", "data-run") == used
    assert page.inner_text("#cli-command") == f"headwater impact {ref}"
    shot(page, "impact")
    page.click('#models a:text-is("churn-model-int8:v0")')
    page.wait_for_url(re.compile(r"/ui/version\?ref=churn-model-int8:v0"))


def test_a_hostile_name_is_shown_as_text(page, ui_server) -> None:
    page.goto(ui_server.url + "/ui/artifact?name=" + quote(ui_story.XSS, safe=""))
    assert page.inner_text("h1") == ui_story.XSS
    page.click("#versions a.ref")
    assert page.inner_text("h1") == ui_story.XSS + ":v0"
    assert ui_story.XSS in page.inner_text("#metadata")
    page.click('nav.actions a:text-is("Lineage graph")')
    wait_graph(page)
    assert graph_nodes(page)[0] == {ui_story.XSS + ":v0"}
    assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
    page.goto(ui_server.url + "/")
    assert ui_story.XSS in page.inner_text("#artifacts")


@pytest.mark.parametrize("page", [(404, 400)], indirect=True)
def test_errors_are_pages_with_one_line(page, ui_server) -> None:
    answer = page.goto(ui_server.url + "/ui/artifact?name=no-such-thing")
    assert answer.status == 404 and "no artifact named 'no-such-thing'" in page.inner_text("p.error")
    answer = page.goto(ui_server.url + "/ui/lineage?ref=churn-model:v0&depth=-3")
    assert answer.status == 400 and "depth" in page.inner_text("p.error")


def test_api_docs_load_from_the_package(page, ui_server) -> None:
    page.goto(ui_server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "headwater" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")
    shot(page, "docs")
    # ReDoc's sidebar shows Redocly's logo from their CDN, hard-coded: the CSP blocks it (so it
    # is never requested) and ReDoc hides the broken image.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    page.watch.must_block.add(logo)
    page.goto(ui_server.url + "/redoc")
    page.wait_for_selector("h1")
    assert "headwater" in page.inner_text("h1")
    page.wait_for_selector("text=/events")
    shot(page, "redoc")
    assert page.watch.blocked <= {logo}


# -- tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [(401,)], indirect=True)
def test_a_server_with_tokens_asks_for_one(page, ui_story_home, tmp_path) -> None:
    home, _ = ui_story_home
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{RW}\nread-only {RO}\n")
    secured = ServerProcess(
        tmp_path / "secured", f"sqlite:///{home / 'headwater.db'}", args=["--token-file", str(tokens)]
    )
    secured.start()
    try:
        page.goto(secured.url + "/ui/lineage?ref=churn-model:v0")
        assert urlsplit(page.url).path == "/ui/login"
        assert "needs a token" in page.inner_text("main")
        shot(page, "login")
        page.fill("#token", "wrong-token")
        page.click('section.login button[type="submit"]')
        assert "not accepted" in page.inner_text("p.error")
        page.fill("#token", RO)
        page.click('section.login button[type="submit"]')
        page.wait_for_url(re.compile(r"/ui/lineage\?ref=churn-model:v0$"))
        wait_graph(page)
        assert "churn-model:v0" in graph_nodes(page)[0]
        page.goto(secured.url + "/")
        assert page.locator("#artifacts tr[data-artifact]").count() > 0
        page.click("form.logout button")
        page.goto(secured.url + "/")
        assert urlsplit(page.url).path == "/ui/login"
    finally:
        secured.stop()
    log = secured.log.read_text()
    assert RO not in log and "wrong-token" not in log
    assert "ui/login" in log  # the access log was on: the token never went into a URL


# -- `headwater ui` ---------------------------------------------------------------------------------


def test_headwater_ui_serves_the_configured_store(page, ui_story_home, tmp_path) -> None:
    home, _ = ui_story_home
    ui = UIProcess({"HEADWATER_HOME": str(home)}, tmp_path / "ui.log")
    try:
        assert f"{ui.url}/" in ui.log.read_text()
        page.goto(f"{ui.url}/ui/lineage?ref=features:v1&direction=upstream&depth=all")
        wait_graph(page)
        ui_reader = hw.Client(home=home)
        expected = ui_reader.upstream("features:v1")
        ui_reader.close()
        assert graph_nodes(page) == ({v.ref for v in expected.versions}, {r.id for r in expected.runs})
    finally:
        ui.stop()


# -- bench/ui_bench.py -------------------------------------------------------------------------------


def test_ui_bench_prints_every_row(browser) -> None:
    """The benchmark at its smallest size, end to end (its timings are never asserted)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "ui_bench.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout.splitlines()
    assert table[0].split()[:3] == ["what", "first", "render"]
    assert [line.split(",")[0] for line in table[1:]] == [
        "lineage",
        "artifacts list",
        "artifacts list",
        "artifacts list",
    ]
    assert table[1].split()[-3] == "101"  # nodes drawn: 2 days of 50, and the raw dataset


def test_an_output_made_from_some_inputs_says_which(page, tmp_path) -> None:
    """A run read a dataset and a config and said the report came from the dataset only."""
    home = tmp_path / "home"
    client = hw.Client(home=home)
    for name in ("data", "config", "report", "model"):
        (tmp_path / name).write_text(name)
    client.log_artifact("data", tmp_path / "data")
    client.log_artifact("config", tmp_path / "config")
    client.link(
        "train",
        inputs=["data:v0", "config:v0"],
        outputs=[hw.Output("report", tmp_path / "report", inputs=["data:v0"]), hw.Output("model", tmp_path / "model")],
    )
    client.close()
    ui = UIProcess({"HEADWATER_HOME": str(home)}, tmp_path / "ui.log")
    try:
        page.goto(f"{ui.url}/ui/lineage?ref=data:v0&direction=downstream&depth=all")
        wait_graph(page)
        assert graph_nodes(page)[0] == {"data:v0", "report:v0", "model:v0"}
        partial = page.locator("#graph path.edge.partial")
        assert partial.count() == 1
        assert partial.get_attribute("data-target") == "v:report:v0"
        assert partial.locator("title").text_content() == "made from data:v0"
        page.click('#graph [data-ref="report:v0"]')
        assert "made from\ndata:v0" in page.inner_text("#details")
        page.click('#graph [data-ref="model:v0"]')
        assert "made from" not in page.inner_text("#details")  # made from every input of its run
        page.click('#graph [data-ref="report:v0"]')
        shot(page, "made-from")
    finally:
        ui.stop()


def test_a_graph_too_large_to_draw_says_what_it_left_out(page, tmp_path) -> None:
    """A chain src -> a -> b -> c with HEADWATER_UI_MAX_NODES=5: the page draws the two hops
    nearest src (src:v0, a:v0, b:v0 and the runs making a and b) and says the rest is left out."""
    home = tmp_path / "home"
    client = hw.Client(home=home)
    for name in ("src", "a", "b", "c"):
        (tmp_path / name).write_text(name)
    client.log_artifact("src", tmp_path / "src")
    for before, after in (("src", "a"), ("a", "b"), ("b", "c")):
        client.link(f"make-{after}", inputs=[f"{before}:v0"], outputs=[hw.Output(after, tmp_path / after)])
    expected = client.downstream("src:v0", 2)
    client.close()
    ui = UIProcess({"HEADWATER_HOME": str(home), "HEADWATER_UI_MAX_NODES": "5"}, tmp_path / "ui.log")
    try:
        page.goto(f"{ui.url}/ui/lineage?ref=src:v0&direction=downstream&depth=all")
        wait_graph(page)
        assert graph_nodes(page) == ({"src:v0", "a:v0", "b:v0"}, {r.id for r in expected.runs})
        assert len(expected.runs) == 2
        notice = page.locator("#graph-notice")
        assert notice.is_visible()
        assert notice.text_content() == (
            "Too large to draw whole (over 5 nodes): downstream, 7 versions and runs over 3 hops: "
            "the nearest 2 hops drawn (5 nodes). Pick a smaller depth, or list every ref with: "
            "headwater downstream src:v0 --refs"
        )
        shot(page, "lineage-cut")
    finally:
        ui.stop()
