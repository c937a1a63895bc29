"""The web UI over HTTP, without a browser: headers, escaping, the graph JSON against the API,
deep links, sign-in rules, and that every asset is in the package and pinned."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

import headwater as hw
from headwater.api import merge_graphs
from headwater.server.ui.graph import graph_payload
from tests import ui_story

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "core" / "server" / "static"
TEMPLATES = ROOT / "core" / "server" / "ui" / "templates"


@pytest.fixture(scope="module")
def http(ui_server) -> httpx.Client:
    with httpx.Client(base_url=ui_server.url, timeout=30) as session:
        yield session


def test_every_page_answers_html_with_a_strict_policy(http, ui_story_home, ui_reader) -> None:
    _, story = ui_story_home
    file_digest = ui_reader.get("features:v0").entries[0].digest
    for path in (
        f"/ui/impact?digest={file_digest}",
        "/ui/impact?ref=features:v1&path=part-1.csv",
        "/",
        "/?sort=name&page=1",
        "/ui/artifact?name=churn-model",
        "/ui/version?ref=features:v1",
        f"/ui/run?id={story.evaluate}",
        "/ui/runs?orchestrator=airflow",
        "/ui/lineage?ref=features:v0",
        "/ui/diff?left=features:v0&right=features:v1",
        f"/ui/impact?ref={quote(story.users)}:v0",
        "/ui/impact?path=part-0.csv",
        "/ui/diff",
        "/ui/impact",
    ):
        answer = http.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe" not in policy
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"
        assert "<script>" not in answer.text  # no inline script anywhere (the policy would refuse it)
    assert "content-security-policy" in http.get("/api/v1/artifacts").headers


def test_user_strings_are_escaped(http) -> None:
    page = http.get("/ui/artifact", params={"name": ui_story.XSS}).text
    assert ui_story.XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    version = http.get("/ui/version", params={"ref": ui_story.XSS + ":v0"}).text
    assert ui_story.XSS not in version and version.count("&lt;script&gt;") >= 3  # name, type, metadata


def test_graph_json_is_the_apis_lineage(http, ui_reader) -> None:
    for ref, direction, depth in (
        ("churn-model:v0", "both", 3),
        ("features:v1", "upstream", None),
        ("features:v0", "downstream", 1),
    ):
        got = http.get(
            "/ui/graph.json", params={"ref": ref, "direction": direction, "depth": "all" if depth is None else depth}
        ).json()
        up, down = ui_reader.upstream(ref, depth), ui_reader.downstream(ref, depth)
        expected = {"both": merge_graphs([up, down]), "upstream": up, "downstream": down}[direction]
        assert {n["ref"] for n in got["nodes"] if n["kind"] == "version"} == {v.ref for v in expected.versions}
        assert {n["run"] for n in got["nodes"] if n["kind"] == "run"} == {r.id for r in expected.runs}
        edges = {(e["source"], e["target"], e["exact"]) for e in got["edges"]}
        assert edges == {
            (f"v:{e.version}", f"r:{e.run_id}", e.exact)
            if e.direction == "used"
            else (f"r:{e.run_id}", f"v:{e.version}", e.exact)
            for e in expected.edges
        }
        assert got["root"] == ref and got["direction"] == direction


def test_a_runs_neighbours_for_expanding_a_node(http, ui_reader, ui_story_home) -> None:
    _, story = ui_story_home
    got = http.get("/ui/graph.json", params={"run": story.evaluate}).json()
    run = ui_reader.get_run(story.evaluate)
    assert {n["id"] for n in got["nodes"]} == {f"r:{run.id}", "v:churn-model:v0", "v:eval-report:v0"}
    assert {(e["source"], e["target"], e["exact"]) for e in got["edges"]} == {
        ("v:churn-model:v0", f"r:{run.id}", False),
        (f"r:{run.id}", "v:eval-report:v0", True),
    }


def test_bad_links_get_one_clear_line(http) -> None:
    for path, status, words in (
        ("/ui/artifact?name=missing", 404, "no artifact named 'missing'"),
        ("/ui/version?ref=features:v9", 404, "v9"),
        ("/ui/version", 400, "needs a version"),
        ("/ui/run?id=nope", 404, "no run with id 'nope'"),
        ("/ui/lineage?ref=features:v0&direction=sideways", 400, "direction must be"),
        ("/ui/lineage?ref=features:v0&depth=x", 400, "depth must be a whole number"),
        ("/?page=0", 400, "page must be between"),
        ("/ui/artifact?name=churn-model&at=yesterday", 400, "not an ISO 8601 time"),
        ("/ui/impact?ref=features:v0&digest=abc", 400, "exactly one of"),
    ):
        answer = http.get(path)
        assert answer.status_code == status, (path, answer.status_code)
        message = re.search(r'<p class="error" role="alert">(.*?)</p>', answer.text, re.S)
        text = html.unescape(message.group(1)).strip() if message else ""
        assert words in text and "\n" not in text, (path, answer.text[-800:])
    answer = http.get("/ui/graph.json", params={"ref": "nope:v0"})
    assert answer.status_code == 404 and answer.json()["error"] == "NotFound"


def test_artifacts_are_paged(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from headwater.server.ui import create_ui_app

    client = hw.Client(home=tmp_path / "home")
    some = tmp_path / "x"
    for i in range(120):
        some.write_text(str(i))
        client.log_artifact(f"art-{i:03d}", some)
    with TestClient(create_ui_app(client), base_url="http://127.0.0.1") as browser:
        first = browser.get("/?sort=name").text
        rows = re.findall(r'data-artifact="(art-\d+)"', first)
        assert rows == [f"art-{i:03d}" for i in range(50)] and 'rel="next"' in first and 'rel="prev"' not in first
        last = browser.get("/?sort=name&page=3").text
        assert re.findall(r'data-artifact="(art-\d+)"', last) == [f"art-{i:03d}" for i in range(100, 120)]
        assert 'rel="next"' not in last and "101–120" in last
        newest = browser.get("/").text  # by last update: the last one logged first
        assert re.findall(r'data-artifact="(art-\d+)"', newest)[0] == "art-119"
    client.close()


def test_sign_in_keeps_the_token_out_of_urls(server_factory, ui_story_home, tmp_path) -> None:
    home, _ = ui_story_home
    tokens = tmp_path / "tokens"
    tokens.write_text("read-only ui_reader-token-123456\n")
    secured = server_factory("secured", f"sqlite:///{home / 'headwater.db'}", args=["--token-file", str(tokens)])
    with httpx.Client(base_url=secured.url, timeout=30) as http:
        answer = http.get("/ui/version?ref=features:v0")
        assert (
            answer.status_code == 303 and answer.headers["location"] == "/ui/login?next=/ui/version%3Fref%3Dfeatures:v0"
        )
        assert http.get("/ui/graph.json?ref=features:v0").status_code == 401
        assert http.get("/ui/static/ui.css").status_code == 200  # assets hold no data
        refused = http.post("/ui/login", data={"token": "guess", "next": "/"})
        assert refused.status_code == 401 and "not accepted" in refused.text and "set-cookie" not in refused.headers
        # only a path of this site is a place to go back to: never another host
        for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            answer = http.post("/ui/login", data={"token": "ui_reader-token-123456", "next": target})
            assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert http.get("/ui/version?ref=features:v0").status_code == 200  # the cookie is sent
        assert http.get("/ui/graph.json?ref=features:v0").status_code == 200
        assert http.post("/ui/logout").status_code == 303
        assert http.get("/ui/version?ref=features:v0").status_code == 303
        with httpx.Client(base_url=secured.url, headers={"Authorization": "Bearer ui_reader-token-123456"}) as api_user:
            assert api_user.get("/ui/version?ref=features:v0").status_code == 200
    assert "ui_reader-token-123456" not in secured.log.read_text()


def test_no_asset_comes_from_another_host() -> None:
    for path in [*TEMPLATES.glob("*.html"), *STATIC.glob("*.*")]:
        text = path.read_text()
        found = re.findall(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", text)
        assert not found, f"{path.name} loads something from another host"


def test_vendored_files_match_their_pinned_hashes() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor_ui.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout
    manifest = json.loads((STATIC / "vendor" / "vendor.json").read_text())
    for item in manifest["packages"]:
        folder = STATIC / "vendor" / item["package"].lstrip("@").replace("/", "-")
        assert (folder / "LICENSE").is_file() and item["version"].count(".") == 2


def test_graph_payload_joins_duplicate_edges_and_keeps_inexact() -> None:
    version = hw.Version(name="d", label="v0", digest="blake3:" + "0" * 64)
    run = hw.Run(id="r1", job="j")
    graph = hw.LineageGraph(
        versions=[version],
        runs=[run],
        edges=[
            hw.Edge(run_id="r1", version="d:v0", direction="used", exact=True),
            hw.Edge(run_id="r1", version="d:v0", direction="used", exact=False),
            hw.Edge(run_id="r-gone", version="d:v0", direction="produced"),
        ],
    )
    payload = graph_payload(graph, "d:v0", "both")
    assert payload["edges"] == [{"source": "v:d:v0", "target": "r:r1", "exact": False}]


def test_the_impact_page_never_reads_the_servers_files(http, ui_story_home, tmp_path) -> None:
    _, story = ui_story_home
    data = Path(story.users[len("file://") :]).parent
    copy = tmp_path / "copy-of-report.json"
    copy.write_bytes((data / "report.json").read_bytes())  # the content of eval-report:v0
    page = http.get("/ui/impact", params={"path": str(copy)}).text
    assert "No version holds" in page and "eval-report:v0" not in page
    by_manifest_path = http.get("/ui/impact", params={"path": "report.json"}).text
    assert 'data-ref="eval-report:v0"' in by_manifest_path  # as recorded: still found


def test_odd_input_gets_a_clear_answer_not_a_500(http) -> None:
    for at in ("0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "10000-01-01"):
        answer = http.get("/ui/artifact", params={"name": "churn-model", "alias": "production", "at": at})
        assert answer.status_code == 400, at
    fields = "&".join(f"f{i}=x" for i in range(8))
    answer = http.post("/ui/login", content=fields, headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code in (303, 400)  # open server: sign-in is not needed, nothing breaks


def test_deleted_versions_are_marked_and_skipped_by_the_diff(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from headwater.server.ui import create_ui_app

    client = hw.Client(home=tmp_path / "home")
    some = tmp_path / "x"
    for text in ("a", "b", "c"):
        some.write_text(text)
        client.log_artifact("odd;name", some)
    client.delete("odd;name:v1")
    with TestClient(create_ui_app(client), base_url="http://127.0.0.1") as browser:
        v2 = browser.get("/ui/version", params={"ref": "odd;name:v2"}).text
        assert "Diff with v0" in v2 and 'id="deleted"' not in v2
        v1 = browser.get(
            "/ui/version", params={"ref": "odd;name@" + client.versions("odd;name", include_deleted=True)[1].digest}
        ).text
        assert 'id="deleted"' in v1
        diff = browser.get("/ui/diff", params={"left": "odd;name:v0", "right": "odd;name:v2"}).text
        assert "headwater diff &#39;odd;name:v0&#39; &#39;odd;name:v2&#39;" in diff  # shell-quoted for copying
    client.close()


def test_purged_files_are_marked_with_who_when_and_why(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from headwater.server.ui import create_ui_app

    client = hw.Client(home=tmp_path / "home")
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "user_1234.csv").write_text("user_1234,someone@example.org")
    (folder / "kept.csv").write_text("nothing personal")
    client.log_artifact("users", folder)
    client.purge(path="user_1234.csv", reason="erasure request <42>")
    with TestClient(create_ui_app(client), base_url="http://127.0.0.1") as browser:
        page = browser.get("/ui/version", params={"ref": "users:v0"}).text
    notice = page[page.index('id="purged"') :]
    assert "Purged: 1 file." in notice and "erasure request &lt;42&gt;" in notice
    files = re.findall(r'<li class="file" data-path="([^"]+)">(.*?)</li>', page, re.S)
    assert [(path, "purged" in body) for path, body in files] == [("kept.csv", False), ("user_1234.csv", True)]
    client.close()


def test_headwater_ui_answers_only_to_loopback_names(tmp_path) -> None:
    """No DNS rebinding: a page whose host name now resolves to 127.0.0.1 gets nothing."""
    from fastapi.testclient import TestClient

    from headwater.server.ui import create_ui_app

    client = hw.Client(home=tmp_path / "home")
    with TestClient(create_ui_app(client), base_url="http://127.0.0.1") as browser:
        assert browser.get("/", headers={"host": "evil.example"}).status_code == 400
        assert browser.get("/ui/graph.json?ref=x", headers={"host": "evil.example:8766"}).status_code == 400
        assert browser.get("/", headers={"host": "localhost:8766"}).status_code == 200
        assert browser.get("/").status_code == 200
    client.close()


def test_a_graph_too_large_to_draw_shows_the_nearest_hops_that_fit(tmp_path, headwater_home) -> None:
    """src:v0 feeds one run making a and a2 (hop 1: three nodes), each feeding a run (hop 2:
    four), b feeding one more (hop 3: two): ten nodes downstream, depth by depth 1, 4, 8, 10."""
    from headwater.server.ui.views import drawable

    client = hw.Client(uri=f"sqlite:///{tmp_path / 'ui.db'}", home=headwater_home)
    made = {}
    for name in ("src", "a", "a2", "b", "b2", "c"):
        made[name] = tmp_path / f"{name}.txt"
        made[name].write_text(name)
    client.link(job="src", outputs=[hw.Output("src", made["src"])])
    client.link(job="split", inputs=["src:v0"], outputs=[hw.Output("a", made["a"]), hw.Output("a2", made["a2"])])
    client.link(job="b", inputs=["a:v0"], outputs=[hw.Output("b", made["b"])])
    client.link(job="b2", inputs=["a2:v0"], outputs=[hw.Output("b2", made["b2"])])
    client.link(job="c", inputs=["b:v0"], outputs=[hw.Output("c", made["c"])])

    def nodes(graph) -> set[str]:
        return {v.ref for v in graph.versions} | {r.job for r in graph.runs}

    graph, cut = drawable(client, "src:v0", "downstream", None, 10)
    assert cut is None and nodes(graph) == {"src:v0", "a:v0", "a2:v0", "b:v0", "b2:v0", "c:v0", "split", "b", "b2", "c"}
    for max_nodes, depth in ((9, 2), (7, 1), (4, 1), (3, 0), (1, 0)):
        graph, cut = drawable(client, "src:v0", "downstream", None, max_nodes)
        assert nodes(graph) == nodes(client.downstream("src:v0", depth)), max_nodes
        assert cut == {
            "max_nodes": max_nodes,
            "shown": {2: 8, 1: 4, 0: 1}[depth],
            "sides": [{"direction": "downstream", "depth": depth, "total": 10, "hops": 3}],
        }
    # an asked depth that fits is kept; one that does not is cut the same way
    assert drawable(client, "src:v0", "downstream", 2, 8)[1] is None
    assert drawable(client, "src:v0", "downstream", 2, 7)[1]["sides"][0] == {
        "direction": "downstream",
        "depth": 1,
        "total": 8,
        "hops": 2,
    }
    # both directions share the room, 4 nodes each: upstream of b:v0 holds six (b:v0; its run b
    # and a:v0; split and src:v0; the run that made src:v0), downstream three (b:v0, c, c:v0)
    graph, cut = drawable(client, "b:v0", "both", None, 8)
    assert nodes(graph) == {"b:v0", "b", "a:v0", "c", "c:v0"}
    assert cut == {
        "max_nodes": 8,
        "shown": 5,
        "sides": [{"direction": "upstream", "depth": 1, "total": 6, "hops": 3}],
    }
    client.close()
