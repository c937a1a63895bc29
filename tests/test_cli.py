"""The `headwater` command: lineage through `log`, JSON output, trees, graphs and bad input.

Every test runs against its own HEADWATER_HOME (the autouse fixture in conftest.py), so the
default SQLite store and blob folder are fresh each time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from headwater.cli import cli
from headwater.render import short_id

FORMS = "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST"


def hw(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def hw_json(*args: str, code: int = 0) -> Any:
    return json.loads(hw(*args, "--json", code=code).stdout)


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def one_error_line(result: Result) -> str:
    err = result.stderr.splitlines()
    assert len(err) == 1, result.stderr
    assert err[0].startswith("headwater: error: "), err[0]
    return err[0]


def state() -> tuple[Any, Any]:
    """Everything a failed command must leave alone: the artifacts and the runs."""
    return hw_json("ls"), hw_json("runs")


@pytest.fixture
def pipeline(tmp_path: Path) -> dict[str, Any]:
    """ingest -> raw:v0 -> train -> model:v0, logged by hand through the CLI."""
    data = tmp_path / "raw.csv"
    data.write_text("id,label\n1,cat\n2,dog\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00\x01\x02")
    (model / "config.json").write_text('{"layers": 2}')
    ingest = hw_json("log", "--job", "ingest", "--output", f"raw={data}")
    train = hw_json(
        "log",
        "--job",
        "train",
        "--input",
        "raw",
        "--output",
        f"model={model}",
        "--type",
        "model=model",
        "--param",
        "lr=0.01",
        "--param",
        "optimizer=adam",
    )
    return {"data": data, "model": model, "ingest": ingest, "train": train}


# -- the manual three-step lineage ------------------------------------------------------------------


def test_log_prints_the_run_and_what_it_used_and_produced(tmp_path: Path) -> None:
    data = tmp_path / "raw.csv"
    data.write_text("a\n")
    first = hw("log", "--job", "ingest", "--output", f"raw={data}")
    assert lines(first)[0].startswith("run ") and lines(first)[0].endswith(" (ingest, succeeded)")
    assert lines(first)[1:] == ["used      -", "produced  raw:v0"]
    second = hw("log", "--job", "train", "--input", "raw", "--output", f"copy={data}", "--status", "failed")
    assert lines(second)[0].endswith(" (train, failed)")
    assert lines(second)[1:] == ["used      raw:v0", "produced  copy:v0"]


def test_three_step_lineage_through_log(pipeline: dict[str, Any]) -> None:
    ingest, train = pipeline["ingest"], pipeline["train"]
    assert (ingest["job"], ingest["orchestrator"], ingest["status"]) == (
        "ingest",
        "manual",
        "succeeded",
    )
    assert ingest["inputs"] == [] and ingest["outputs"] == ["raw:v0"]
    assert train["inputs"] == ["raw:v0"] and train["outputs"] == ["model:v0"]
    assert train["params"] == {"lr": 0.01, "optimizer": "adam"}
    assert lines(hw("upstream", "model")) == [
        "model:v0 (model) [latest]",
        f"└── train (manual, succeeded) run {short_id(train['id'])}",
        "    └── raw:v0 [latest]",
        f"        └── ingest (manual, succeeded) run {short_id(ingest['id'])}",
    ]
    assert lines(hw("downstream", "raw:v0")) == [
        "raw:v0 [latest]",
        f"└── train (manual, succeeded) run {short_id(train['id'])}",
        "    └── model:v0 (model) [latest]",
    ]
    # --depth counts runs: one run up from the model, its inputs, no further.
    assert lines(hw("upstream", "model", "--depth", "1")) == lines(hw("upstream", "model"))[:3]
    assert lines(hw("graph", "model")) == lines(hw("upstream", "model"))


def test_log_from_says_which_inputs_made_each_output_and_run_adds_to_a_run(tmp_path: Path) -> None:
    for name in "abcdx":
        (tmp_path / name).write_text(name)
    hw("log", "--job", "ingest", "--output", f"a={tmp_path / 'a'}", "--output", f"b={tmp_path / 'b'}")
    split = hw_json(
        "log", "--job", "split", "--input", "a", "--output", f"c={tmp_path / 'c'}",
        "--output", f"d={tmp_path / 'd'}", "--from", "c=a", "--from", "d=b:v0",
    )  # fmt: skip
    assert (split["inputs"], split["outputs"]) == (["a:v0", "b:v0"], ["c:v0", "d:v0"])
    assert lines(hw("upstream", "c", "--depth", "1")) == [
        "c:v0 [latest]",
        f"└── split (manual, succeeded) run {short_id(split['id'])}",
        "    └── a:v0 [latest]",
    ]
    assert [v["ref"] for v in hw_json("downstream", "b")["versions"]] == ["b:v0", "d:v0"]
    added = hw_json("log", "--run", split["id"], "--output", f"x={tmp_path / 'x'}", "--from", "x=c")
    assert (added["id"], added["job"], added["inputs"], added["outputs"]) == (
        split["id"],
        "split",
        ["a:v0", "b:v0", "c:v0"],
        ["c:v0", "d:v0", "x:v0"],
    )
    assert [v["ref"] for v in hw_json("upstream", "x")["versions"]] == ["x:v0", "c:v0", "a:v0"]
    for args, error in (
        (["--job", "j", "--from", "y=a", "--output", f"x={tmp_path / 'x'}"], "no --output or --reference named 'y'"),
        (["--run", split["id"], "--param", "k=1", "--input", "a"], "--run adds inputs and outputs"),
        (["--input", "a"], "give --job for a new run, or --run RUN_ID"),
        (["--job", "j", "--run", split["id"], "--input", "a"], "give --job for a new run, or --run RUN_ID"),
    ):
        before = state()
        result = hw("log", *args, code=2)
        assert error in result.stderr
        assert state() == before
    assert "no run with id 'nope'" in hw("log", "--run", "nope", "--input", "a", code=3).stderr


def test_refs_prints_one_ref_a_line_nearest_first(tmp_path: Path) -> None:
    for name in "abcde":
        (tmp_path / name).write_text(name)
    ingest = hw_json("log", "--job", "ingest", "--output", f"a={tmp_path / 'a'}", "--output", f"b={tmp_path / 'b'}")
    split = hw_json(
        "log", "--job", "split", "--input", "a", "--input", "b", "--output", f"d={tmp_path / 'd'}",
        "--output", f"c={tmp_path / 'c'}", "--from", "c=a", "--from", "d=b",
    )  # fmt: skip
    last = hw_json("log", "--job", "last", "--input", "c", "--output", f"e={tmp_path / 'e'}")
    assert hw("downstream", "a", "--refs").stdout == "a:v0\nc:v0\ne:v0\n"  # d was made from b alone
    assert hw("downstream", "a:v0", "--refs", "--depth", "1").stdout == "a:v0\nc:v0\n"
    assert lines(hw("upstream", "e", "--refs")) == ["e:v0", "c:v0", "a:v0"]
    assert lines(hw("downstream", "e", "--refs")) == ["e:v0"]
    assert hw_json("downstream", "b", "--refs") == {
        "root": "b:v0",
        "direction": "downstream",
        "versions": {"b:v0": 0, "d:v0": 1},
        "runs": {split["id"]: 1},
    }
    assert hw_json("upstream", "e", "--refs")["runs"] == {last["id"]: 1, split["id"]: 2, ingest["id"]: 3}
    assert "--check reads each version's files" in hw("upstream", "e", "--refs", "--check", code=2).stderr
    assert "no artifact named 'nope'" in hw("downstream", "nope", "--refs", code=3).stderr


def test_upstream_json(pipeline: dict[str, Any]) -> None:
    graph = hw_json("upstream", "model:v0")
    assert graph["root"] == "model:v0" and graph["direction"] == "upstream"
    assert sorted(v["ref"] for v in graph["versions"]) == ["model:v0", "raw:v0"]
    assert graph["depth"] == {"model:v0": 0, "raw:v0": 1}
    assert sorted(r["job"] for r in graph["runs"]) == ["ingest", "train"]
    jobs = {r["id"]: r["job"] for r in graph["runs"]}
    edges = sorted((jobs[e["run_id"]], e["direction"], e["version"]) for e in graph["edges"])
    assert edges == [
        ("ingest", "produced", "raw:v0"),
        ("train", "produced", "model:v0"),
        ("train", "used", "raw:v0"),
    ]
    assert hw_json("graph", "model", "--format", "json") == graph


def test_a_node_seen_before_is_not_repeated(tmp_path: Path) -> None:
    data = tmp_path / "raw.csv"
    data.write_text("same bytes\n")
    ingest = hw_json("log", "--job", "ingest", "--output", f"raw={data}")
    # A step that rewrites identical bytes uses and produces one version: a cycle.
    rewrite = hw_json("log", "--job", "rewrite", "--input", "raw", "--output", f"raw={data}")
    assert rewrite["inputs"] == rewrite["outputs"] == ["raw:v0"]
    assert lines(hw("upstream", "raw")) == [
        "raw:v0 [latest]",
        f"├── ingest (manual, succeeded) run {short_id(ingest['id'])}",
        f"└── rewrite (manual, succeeded) run {short_id(rewrite['id'])}",
        "    └── raw:v0 [latest] (see above)",
    ]


# -- listing and showing ------------------------------------------------------------------------------


def test_ls_versions_show_runs_and_run(pipeline: dict[str, Any]) -> None:
    listed = hw_json("ls")
    assert [(a["name"], a["type"], a["latest"], a["versions"]) for a in listed] == [
        ("model", "model", "v0", 1),
        ("raw", None, "v0", 1),
    ]
    assert [a["name"] for a in hw_json("ls", "--type", "model")] == ["model"]
    assert len(hw_json("ls", "--limit", "1")) == 1
    table = lines(hw("ls"))
    assert table[0].split() == ["NAME", "TYPE", "LATEST", "VERSIONS"]
    assert table[1].split() == ["model", "model", "v0", "1"]
    assert table[2].split() == ["raw", "-", "v0", "1"]

    shown = hw_json("show", "model")
    assert (shown["ref"], shown["name"], shown["label"], shown["type"]) == (
        "model:v0",
        "model",
        "v0",
        "model",
    )
    assert shown["aliases"] == ["latest"]
    assert shown["produced_by"] == pipeline["train"]["id"]
    assert shown["producers"] == [pipeline["train"]["id"]]
    assert [(e["path"], e["size"], e["ref"]) for e in shown["entries"]] == [
        ("config.json", 13, None),
        ("weights.bin", 3, None),
    ]
    human = hw("show", "model").stdout
    assert "model:v0" in human and "config.json" in human and "weights.bin" in human
    assert f"train (manual, succeeded) run {short_id(pipeline['train']['id'])}" in human

    assert [v["ref"] for v in hw_json("versions", "model")] == ["model:v0"]
    runs = hw_json("runs")
    assert [r["job"] for r in runs] == ["train", "ingest"]  # newest first
    assert [r["job"] for r in hw_json("runs", "--job", "ingest")] == ["ingest"]
    assert hw_json("runs", "--status", "failed") == []
    one = hw_json("run", pipeline["train"]["id"])
    assert one["outputs"] == ["model:v0"]
    by_short = hw("run", short_id(pipeline["train"]["id"])).stdout
    assert pipeline["train"]["id"] in by_short and "lr = 0.01" in by_short


def test_show_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "users.csv"
    data.write_text("1\n")
    hw("log", "--job", "ingest", "--output", f"users={data}")
    data.write_text("1\n2\n")
    hw("log", "--job", "ingest", "--output", f"users={data}")
    v0, v1 = hw_json("versions", "users")
    assert hw_json("show", "users")["label"] == "v1"
    # A time without an offset is UTC.
    naive_v0 = v0["created_at"].replace("Z", "").replace("+00:00", "")
    assert hw_json("show", "users", "--at", naive_v0)["label"] == "v0"
    assert hw_json("show", "users:latest", "--at", v1["created_at"])["label"] == "v1"
    assert "resolved at" in hw("show", "users", "--at", naive_v0).stdout
    before = one_error_line(hw("show", "users", "--at", "2000-01-01", code=3))
    assert "no alias 'latest'" in before
    bad = hw("show", "users", "--at", "yesterday-ish", code=2)
    assert "ISO 8601" in bad.stderr


def test_alias_tag_delete_gc(pipeline: dict[str, Any], tmp_path: Path) -> None:
    assert hw("alias", "model:v0", "production").stdout.strip() == "production -> model:v0"
    assert hw_json("show", "model:production")["ref"] == "model:v0"
    hw("alias", "--remove", "model", "production")
    one_error_line(hw("show", "model:production", code=3))
    assert hw_json("tag", "model", "pii", "validated")["tags"] == ["pii", "validated"]
    assert [v["ref"] for v in hw_json("versions", "model", "--tag", "pii")] == ["model:v0"]
    assert hw_json("tag", "model", "pii", "--remove")["tags"] == ["validated"]
    alias_error = one_error_line(hw("alias", "model", "latest", code=2))
    assert "reserved" in alias_error

    pipeline["data"].write_text("id,label\n1,cat\n")
    hw("log", "--job", "ingest", "--output", f"raw={pipeline['data']}")
    deleted = hw_json("delete", "raw:v0")
    assert deleted["deleted"] is True
    assert [v["ref"] for v in hw_json("versions", "raw")] == ["raw:v1"]
    # The deleted version stays in the lineage as a tombstone.
    assert "raw:v0 deleted" in hw("upstream", "model").stdout
    assert hw_json("gc", "--dry-run")["count"] == 0  # stored just now: within the grace period
    dry = hw_json("gc", "--dry-run", "--grace", "0s")
    assert dry["count"] == 1
    assert hw_json("gc", "--grace", "0")["blobs"] == dry["blobs"]
    assert hw_json("gc", "--grace", "0")["count"] == 0
    assert "'soon' is not a duration" in hw("gc", "--grace", "soon", code=2).stderr


# -- diff, impact, verify, graph ------------------------------------------------------------------------


def test_diff(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for name, text in {"a.csv": "a", "b.csv": "b", "c.csv": "c"}.items():
        (root / name).write_text(text)
    hw("log", "--job", "ingest", "--output", f"data={root}")
    (root / "b.csv").write_text("b2")
    (root / "c.csv").unlink()
    (root / "d.csv").write_text("d")
    hw("log", "--job", "ingest", "--output", f"data={root}")
    assert lines(hw("diff", "data:v0", "data:v1")) == [
        "data:v0 -> data:v1",
        "~ b.csv  1 -> 2 bytes",  # in path order
        "- c.csv  1 byte",
        "+ d.csv  1 byte",
        "1 added, 1 removed, 1 changed, 1 unchanged",
    ]
    result = hw_json("diff", "data:v0", "data")
    assert (result["added"], result["removed"], result["changed"], result["unchanged"]) == (
        ["d.csv"],
        ["c.csv"],
        ["b.csv"],
        1,
    )


def test_impact_by_path(tmp_path: Path) -> None:
    root = tmp_path / "users"
    root.mkdir()
    (root / "part-0.csv").write_text("alice\n")
    (root / "part-1.csv").write_text("bob\n")
    other = tmp_path / "other.csv"
    other.write_text("unrelated\n")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w")
    features = tmp_path / "features.parquet"
    features.write_bytes(b"f")
    hw("log", "--job", "ingest", "--output", f"users={root}", "--type", "users=dataset")
    hw("log", "--job", "ingest-other", "--output", f"other={other}")
    featurize = hw_json("log", "--job", "featurize", "--input", "users", "--output", f"features={features}")
    train = hw_json(
        "log",
        "--job",
        "train",
        "--input",
        "features",
        "--input",
        "other",
        "--output",
        f"clf={weights}",
        "--type",
        "clf=model",
    )
    result = hw_json("impact", "--path", str(root / "part-1.csv"))
    assert [v["ref"] for v in result["holding"]] == ["users:v0"]
    assert sorted(v["ref"] for v in result["downstream"]["versions"]) == [
        "clf:v0",
        "features:v0",
        "users:v0",
    ]
    assert sorted(r["id"] for r in result["downstream"]["runs"]) == sorted([featurize["id"], train["id"]])
    human = lines(hw("impact", "--path", str(root / "part-1.csv")))
    assert human[0] == f"holding path {str(root / 'part-1.csv')!r} (1)"
    assert human[1] == "  users:v0 (dataset) [latest]"
    text = "\n".join(human)
    models = text.split("models to retrain (1)")[1].split("other versions to rebuild")[0]
    assert "clf:v0" in models and "features:v0" not in models
    rebuild = text.split("other versions to rebuild (1)")[1].split("runs to re-run")[0]
    assert "features:v0" in rebuild
    reruns = text.split("runs to re-run (2)")[1]
    assert short_id(featurize["id"]) in reruns and short_id(train["id"]) in reruns
    assert "other:v0" not in models + rebuild  # only an input of train, not affected by it
    assert hw("impact", "--path", str(tmp_path / "nothing.csv")).stdout.startswith("no version holds")
    by_version = hw_json("impact", "users:v0", "--path", "part-1.csv")
    assert by_version["holding"] == result["holding"] and by_version["downstream"] == result["downstream"]
    assert "'part-1.csv' as it was in users:v0 (1)" in hw("impact", "users:v0", "--path", "part-1.csv").stdout
    usage = hw("impact", code=2)
    assert "exactly one of a REF, a path or a digest" in usage.stderr


def test_verify_after_a_referenced_file_changes(tmp_path: Path) -> None:
    data = tmp_path / "scores.csv"
    data.write_text("0.9\n")
    hw("log", "--job", "score", "--reference", f"scores={data.as_uri()}")
    shown = hw_json("show", "scores")
    assert [e["ref"] for e in shown["entries"]] == [data.as_uri()]
    assert hw("verify", "scores").stdout.strip() == "scores:v0: ok (1 entry checked)"
    data.write_text("0.1\n")
    failed = hw("verify", "scores", code=1)
    assert lines(failed) == ["scores:v0: FAILED (1 of 1 entries)", "~ scores.csv  changed"]
    report = json.loads(hw("verify", "scores", "--json", code=1).stdout)
    assert (report["ok"], report["changed"], report["missing"]) == (False, ["scores.csv"], [])
    data.unlink()
    assert json.loads(hw("verify", "scores", "--json", code=1).stdout)["missing"] == ["scores.csv"]


def test_stored_version_verifies(pipeline: dict[str, Any]) -> None:
    pipeline["data"].write_text("changed after logging\n")  # stored bytes do not depend on it
    assert hw_json("verify", "raw")["ok"] is True


def test_graph_mermaid_and_dot(pipeline: dict[str, Any]) -> None:
    ingest, train = pipeline["ingest"]["id"], pipeline["train"]["id"]
    out = hw("graph", "model", "--format", "mermaid").stdout
    assert out.splitlines()[0] == "flowchart LR"
    ids = {}  # node id -> its declaration line
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(("v", "r")) and ("[" in line or "{{" in line):
            ident = line.split("[", 1)[0].split("{", 1)[0]
            ids[ident] = line
    model = next(i for i, text in ids.items() if '"model:v0"' in text)
    raw = next(i for i, text in ids.items() if '"raw:v0"' in text)
    run_train = next(i for i, text in ids.items() if "train (manual, succeeded)" in text)
    run_ingest = next(i for i, text in ids.items() if "ingest (manual, succeeded)" in text)
    edges = {line.strip() for line in out.splitlines() if "-->" in line}
    assert edges == {
        f"{run_ingest} --> {raw}",
        f"{raw} --> {run_train}",
        f"{run_train} --> {model}",
    }

    dot = hw("graph", "model", "--format", "dot").stdout
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert '"model:v0" [label="model:v0", shape=box, penwidth=2];' in dot
    assert '"raw:v0" [label="raw:v0", shape=box];' in dot
    assert f'"run:{ingest}" -> "raw:v0";' in dot
    assert f'"raw:v0" -> "run:{train}";' in dot
    assert f'"run:{train}" -> "model:v0";' in dot
    down = hw("graph", "raw", "--direction", "downstream", "--format", "dot").stdout
    assert f'"raw:v0" -> "run:{train}";' in down and f'"run:{ingest}"' not in down


def test_inputs_by_path_and_uri(tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("x\n")
    out = tmp_path / "out.csv"
    out.write_text("y\n")
    run = hw_json("log", "--job", "j", "--input", str(data), "--output", f"result={out}")
    assert run["inputs"] == [f"{data.as_uri()}:v0"]
    # A location artifact's version given by label is that version, not a location to hash.
    again = hw_json("log", "--job", "k", "--input", f"{data.as_uri()}:v0", "--input", "result:v0")
    assert again["inputs"] == [f"{data.as_uri()}:v0", "result:v0"]
    shown = hw_json("show", data.as_uri())
    assert shown["entries"][0]["ref"] == data.as_uri()  # an input is referenced, not stored


def test_input_both_a_path_and_an_artifact_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "raw").write_text("a local file named like the artifact\n")
    data = tmp_path / "raw.csv"
    data.write_text("1\n")
    hw("log", "--job", "ingest", "--output", f"raw={data}")
    monkeypatch.chdir(tmp_path)
    before = state()
    err = one_error_line(hw("log", "--job", "train", "--input", "raw", code=2))
    assert "./raw" in err and "raw:latest" in err
    assert state() == before
    assert hw_json("log", "--job", "train", "--input", "raw:latest")["inputs"] == ["raw:v0"]


# -- operations -------------------------------------------------------------------------------------


def test_sync_db_upgrade_server_version(pipeline: dict[str, Any]) -> None:
    assert hw_json("sync") == {
        "delivered": 0,
        "pending": 0,
        "dead": 0,
        "refused": {},
        "error": None,
    }
    assert hw("sync").stdout.strip() == "delivered 0, pending 0, dead 0"
    from headwater.store.migrate import head_revision

    upgraded = hw_json("db", "upgrade")
    assert upgraded["revision"] == head_revision()
    assert hw("db", "upgrade").stdout.strip().endswith(f"schema at revision {head_revision()}")
    server = hw("server", "--store", "http://127.0.0.1:1", code=2)  # a server stores into a database
    assert "server" in one_error_line(server) and "needs a database" in server.stderr
    assert hw("--version").stdout.strip() == "headwater 0.1.0.dev0"


# -- bad input changes nothing ------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["raw@", ":v1", "raw@zz", "raw\tx"])
def test_malformed_ref(pipeline: dict[str, Any], ref: str) -> None:
    before = state()
    for command in (["show", ref], ["upstream", ref], ["alias", ref, "prod"]):
        result = hw(*command, code=2)
        line = one_error_line(result)
        assert "invalid reference" in line and FORMS in line
        assert result.stdout == ""
    assert state() == before


def test_unknown_artifact(pipeline: dict[str, Any]) -> None:
    before = state()
    for command in (
        ["show", "nope"],
        ["upstream", "nope:v1"],
        ["versions", "nope"],
        ["show", "raw:v9"],
    ):
        line = one_error_line(hw(*command, code=3))
        assert "nope" in line or "v9" in line
    # An input that does not exist: nothing is recorded, not even the run.
    one_error_line(hw("log", "--job", "train", "--input", "nope", "--output", f"m={pipeline['data']}", code=3))
    one_error_line(hw("run", "00000000-0000-0000-0000-000000000000", code=3))
    assert state() == before


def test_missing_output_path(pipeline: dict[str, Any], tmp_path: Path) -> None:
    before = state()
    line = one_error_line(
        hw(
            "log",
            "--job",
            "train",
            "--input",
            "raw",
            "--output",
            f"m={tmp_path / 'missing.pt'}",
            code=2,
        )
    )
    assert "missing.pt" in line
    assert state() == before


@pytest.mark.parametrize(
    "args",
    [
        ["--output", "model"],
        ["--output", "=x"],
        ["--reference", "r"],
        ["--param", "lr"],
        ["--output", "m=x", "--type", "other=model"],
        ["--status", "maybe"],
    ],
)
def test_malformed_options_are_usage_errors(pipeline: dict[str, Any], args: list[str]) -> None:
    before = state()
    result = hw("log", "--job", "x", *args, code=2)
    assert "Usage:" in result.stderr and result.stdout == ""
    assert state() == before


def test_unsupported_reference_scheme(pipeline: dict[str, Any]) -> None:
    before = state()
    line = one_error_line(hw("log", "--job", "x", "--reference", "r=nosuchscheme://bucket/key", code=2))
    assert "nosuchscheme://" in line and "s3://" in line
    assert state() == before


def test_bad_backend_uri_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_URI", "mysql://nowhere/db")
    line = one_error_line(hw("ls", code=2))
    assert "HEADWATER_URI" in line


# -- the installed script -----------------------------------------------------------------------------


def test_installed_script_smoke(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "headwater"
    if not script.exists():
        pytest.skip(f"no headwater script beside {sys.executable}")
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "home")}
    data = tmp_path / "d.csv"
    data.write_text("1\n")
    done = subprocess.run(
        [str(script), "log", "--job", "ingest", "--output", f"d={data}", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == ["d:v0"]
    listed = subprocess.run([str(script), "ls"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert listed.stdout.splitlines()[1].split() == ["d", "-", "v0", "1"]
    assert "\x1b[" not in listed.stdout  # no colour codes when stdout is not a terminal
    failed = subprocess.run(
        [str(script), "show", "d@"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.splitlines() == [
        f"headwater: error: invalid reference 'd@': {FORMS} (8+ hex chars); nothing after '@'"
    ]
    as_json = subprocess.run(
        [str(script), "show", "d@", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert as_json.returncode == 2 and as_json.stdout == ""
    assert json.loads(as_json.stderr) == {
        "error": "InvalidRef",
        "message": f"invalid reference 'd@': {FORMS} (8+ hex chars); nothing after '@'",
        "exit_code": 2,
    }


def test_refused_write_is_one_error_line(pipeline: dict[str, Any]) -> None:
    before = state()
    result = hw(
        "log",
        "--job",
        "x",
        "--output",
        f"model={pipeline['data']}",
        "--type",
        "model=dataset",
        code=4,
    )
    assert "has type 'model', not 'dataset'" in one_error_line(result)
    assert state() == before


def test_undelivered_log_waits_in_the_outbox_and_sync_delivers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("HEADWATER_URI", f"sqlite:///{blocker / 'headwater.db'}")
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "1")
    data = tmp_path / "d.csv"
    data.write_text("1\n")
    logged = hw("log", "--job", "ingest", "--output", f"d={data}")
    warning = logged.stderr.splitlines()
    assert len(warning) == 1 and "wait in the outbox" in warning[0] and "headwater sync" in warning[0]
    waiting = hw("sync", code=5)
    assert "1 batch(es) still wait in the outbox" in one_error_line(waiting)
    assert waiting.stdout.strip() == "delivered 0, pending 1, dead 0"
    blocker.unlink()  # the backend is back
    assert hw_json("sync")["delivered"] == 1
    assert [(a["name"], a["latest"]) for a in hw_json("ls")] == [("d", "v0")]
    assert [r["job"] for r in hw_json("runs")] == ["ingest"]


# -- download -----------------------------------------------------------------------------------------


def test_download_a_stored_file_a_folder_and_one_entry(
    pipeline: dict[str, Any], tmp_path: Path, headwater_home: Path
) -> None:
    pipeline["data"].write_text("changed after logging\n")  # the stored bytes come back
    dest = tmp_path / "restored"
    assert lines(hw("download", "raw", str(dest))) == [str(dest / "raw.csv")]
    assert (dest / "raw.csv").read_text() == "id,label\n1,cat\n2,dog\n"

    folder = tmp_path / "model-copy"
    assert hw_json("download", "model:v0", str(folder)) == {"ref": "model:v0", "path": str(folder)}
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.bin"]
    assert (folder / "weights.bin").read_bytes() == b"\x00\x01\x02"

    one = tmp_path / "one"
    assert lines(hw("download", "model", str(one), "--entry", "config.json")) == [str(one / "config.json")]
    assert [p.name for p in one.iterdir()] == ["config.json"]
    assert (one / "config.json").read_text() == '{"layers": 2}'

    # No DEST: the cache under HEADWATER_HOME, named by the version's digest.
    digest = hw_json("show", "raw")["digest"].replace(":", "-")
    cached = headwater_home / "cache" / digest / "raw.csv"
    assert hw_json("download", "raw") == {"ref": "raw:v0", "path": str(cached)}
    assert cached.read_text() == "id,label\n1,cat\n2,dog\n"


def test_download_what_is_not_there(pipeline: dict[str, Any], tmp_path: Path) -> None:
    missing = hw("download", "nope", str(tmp_path / "x"), code=3)
    assert one_error_line(missing) == "headwater: error: no artifact named 'nope'"
    assert missing.stdout == "" and not (tmp_path / "x").exists()
    entry = hw("download", "model", str(tmp_path / "y"), "--entry", "nope.bin", code=3)
    assert one_error_line(entry) == "headwater: error: model:v0 has no entry 'nope.bin'"
    pipeline["data"].write_text("v1\n")
    hw("log", "--job", "ingest", "--output", f"raw={pipeline['data']}")
    hw("delete", "raw:v0")
    gone = hw("download", "raw:v0", str(tmp_path / "z"), code=3)
    assert one_error_line(gone) == "headwater: error: raw:v0 was deleted; its content is gone"


# -- log: metadata, description and tags of the outputs ------------------------------------------


def test_log_metadata_description_and_tags_apply_to_every_output(tmp_path: Path) -> None:
    data = tmp_path / "scores.csv"
    data.write_text("0.9\n")
    run = hw_json(
        "log",
        "--job",
        "score",
        "--output",
        f"scores={data}",
        "--reference",
        f"pointer={data.as_uri()}",
        "--metadata",
        "rows=3",
        "--metadata",
        "ok=true",
        "--metadata",
        'quoted="3"',
        "--metadata",
        "cols=[1]",
        "--metadata",
        "note=plain text",
        "--metadata",
        "ratio=NaN",  # not JSON: kept as text
        "--description",
        "nightly scores",
        "--tag",
        "pii",
        "--tag",
        "validated",
    )
    assert run["outputs"] == ["pointer:v0", "scores:v0"]
    for ref in run["outputs"]:
        shown = hw_json("show", ref)
        assert shown["metadata"] == {
            "rows": 3,
            "ok": True,
            "quoted": "3",
            "cols": [1],
            "note": "plain text",
            "ratio": "NaN",
        }
        assert shown["description"] == "nightly scores"
        assert shown["tags"] == ["pii", "validated"]
    help_text = " ".join(hw("log", "--help").stdout.split())
    assert (
        "--metadata, --description and --tag apply to every output (--output and --reference) of the call" in help_text
    )


NO_OUTPUTS = "applies to outputs: give --output or --reference"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--metadata", "rows=3"], f"Invalid value for --metadata: {NO_OUTPUTS}"),
        (["--description", "d"], f"Invalid value for --description: {NO_OUTPUTS}"),
        (["--tag", "pii"], f"Invalid value for --tag: {NO_OUTPUTS}"),
        (
            ["--metadata", "rows", "--output", "m=x"],
            "Invalid value for '--metadata': 'rows' is not KEY=VALUE (both sides of '=' are needed)",
        ),
    ],
)
def test_log_malformed_output_options_are_usage_errors(pipeline: dict[str, Any], args: list[str], error: str) -> None:
    before = state()
    result = hw("log", "--job", "x", "--input", "raw", *args, code=2)
    assert result.stdout == "" and result.stderr.startswith("Usage: ")
    assert result.stderr.splitlines()[-1] == f"Error: {error}"
    assert state() == before


def test_log_invalid_tag_records_nothing(pipeline: dict[str, Any]) -> None:
    before = state()
    result = hw("log", "--job", "x", "--output", f"m={pipeline['data']}", "--tag", "a b", code=2)
    assert one_error_line(result) == ("headwater: error: invalid tag 'a b': use printable text without spaces")
    assert state() == before


# -- ls and versions: filters -----------------------------------------------------------------------


@pytest.fixture
def catalog(tmp_path: Path) -> None:
    """UserEvents (v0 stage=raw rows=3, v1 stage=clean rows=5; v1 tagged pii), then
    clicks (stage=raw, rows=3), then audit (no metadata): logged in that order."""
    for name, text, extra in (
        ("UserEvents", "a\n", ["--metadata", "stage=raw", "--metadata", "rows=3"]),
        ("UserEvents", "a\nb\n", ["--metadata", "stage=clean", "--metadata", "rows=5"]),
        ("clicks", "c\n", ["--metadata", "stage=raw", "--metadata", "rows=3"]),
        ("audit", "d\n", []),
    ):
        path = tmp_path / f"{name}.csv"
        path.write_text(text)
        hw("log", "--job", "ingest", "--output", f"{name}={path}", *extra)
    hw("tag", "UserEvents:v1", "pii")


def names(*args: str) -> list[str]:
    return [a["name"] for a in hw_json("ls", *args)]


def test_ls_by_name_tag_metadata_and_update(catalog: None) -> None:
    assert names() == ["UserEvents", "audit", "clicks"]
    assert names("--name", "userev") == names("--name", "EVENTS") == ["UserEvents"]
    assert names("--name", "i") == ["audit", "clicks"]
    assert names("--tag", "pii") == ["UserEvents"]
    assert names("--tag", "nope") == []
    assert names("--sort", "updated") == ["audit", "clicks", "UserEvents"]
    assert names("--sort", "updated", "--limit", "2") == ["audit", "clicks"]
    # --metadata: a version whose metadata equals all of them (JSON values: 3 is a number).
    assert names("--metadata", "stage=raw") == ["UserEvents", "clicks"]
    assert names("--metadata", "stage=raw", "--metadata", "rows=3") == ["UserEvents", "clicks"]
    assert names("--metadata", "stage=clean", "--metadata", "rows=5") == ["UserEvents"]
    assert names("--metadata", "stage=raw", "--metadata", "rows=5") == []  # not on one version
    assert names("--metadata", "stage=raw", "--limit", "1") == ["UserEvents"]
    assert names("--metadata", "stage=raw", "--sort", "updated", "--limit", "1") == ["clicks"]
    assert names("--metadata", "stage=raw", "--name", "CLI") == ["clicks"]
    table = lines(hw("ls", "--metadata", "stage=raw", "--tag", "pii"))
    assert [row.split() for row in table] == [
        ["NAME", "TYPE", "LATEST", "VERSIONS"],
        ["UserEvents", "-", "v1", "2"],
    ]
    nothing = hw("ls", "--metadata", "stage=gold")
    assert nothing.stdout == "" and nothing.stderr == "headwater: no artifacts\n"
    assert "Invalid value for '--sort'" in hw("ls", "--sort", "size", code=2).stderr


def test_versions_by_metadata(catalog: None) -> None:
    def refs(*args: str) -> list[str]:
        return [v["ref"] for v in hw_json("versions", "UserEvents", *args)]

    assert refs() == ["UserEvents:v0", "UserEvents:v1"]
    assert refs("--metadata", "stage=raw") == ["UserEvents:v0"]
    assert refs("--metadata", "rows=5", "--metadata", "stage=clean") == ["UserEvents:v1"]
    assert refs("--metadata", "rows=5", "--metadata", "stage=raw") == []
    assert refs("--metadata", "rows=5", "--tag", "pii") == ["UserEvents:v1"]
    none = hw("versions", "UserEvents", "--metadata", "rows=4")
    assert none.stdout == "" and none.stderr == "headwater: 'UserEvents' has no versions matching\n"
    assert "'--metadata'" in hw("versions", "UserEvents", "--metadata", "rows", code=2).stderr


# -- aliases ----------------------------------------------------------------------------------------


def test_aliases_now_and_their_history(pipeline: dict[str, Any]) -> None:
    pipeline["data"].write_text("id\n")
    hw("log", "--job", "ingest", "--output", f"raw={pipeline['data']}")  # latest -> raw:v1
    hw("alias", "raw:v0", "production")
    hw("alias", "raw:v1", "candidate")
    hw("alias", "raw:v1", "production")
    hw("alias", "--remove", "raw", "candidate")
    moves = hw_json("aliases", "raw", "--history")
    assert [(m["name"], m["alias"], m["version"]) for m in moves] == [
        ("raw", "latest", "raw:v0"),
        ("raw", "latest", "raw:v1"),
        ("raw", "production", "raw:v0"),
        ("raw", "candidate", "raw:v1"),
        ("raw", "production", "raw:v1"),
        ("raw", "candidate", None),
    ]

    def when(move: dict[str, Any]) -> str:  # as tables print a time: to the second, in UTC
        return move["at"][:19] + "Z"

    assert lines(hw("aliases", "raw", "--history")) == [
        "TIME                  ALIAS       VERSION",
        f"{when(moves[0])}  latest      raw:v0",
        f"{when(moves[1])}  latest      raw:v1",
        f"{when(moves[2])}  production  raw:v0",
        f"{when(moves[3])}  candidate   raw:v1",
        f"{when(moves[4])}  production  raw:v1",
        f"{when(moves[5])}  candidate   removed",
    ]
    # Now: the last move of each alias, by alias; candidate's last move removed it.
    assert hw_json("aliases", "raw") == [moves[1], moves[4]]
    assert lines(hw("aliases", "raw")) == [
        "ALIAS       VERSION  SINCE",
        f"latest      raw:v1   {when(moves[1])}",
        f"production  raw:v1   {when(moves[4])}",
    ]
    # Deleting a version moves its aliases: latest back to v0, production removed.
    hw("delete", "raw:v1")
    assert [(m["alias"], m["version"]) for m in hw_json("aliases", "raw")] == [("latest", "raw:v0")]


def test_aliases_of_nothing(pipeline: dict[str, Any]) -> None:
    missing = hw("aliases", "nope", code=3)
    assert one_error_line(missing) == "headwater: error: no artifact named 'nope'"
    hw("delete", "raw")  # its only version: no alias is left
    empty = hw("aliases", "raw")
    assert empty.stdout == "" and empty.stderr == "headwater: 'raw' has no aliases\n"
    assert hw_json("aliases", "raw") == []
    assert [m["version"] for m in hw_json("aliases", "raw", "--history")] == ["raw:v0", None]


# -- the global --uri and --home --------------------------------------------------------------------


def test_uri_and_home_options_beat_the_environment(
    tmp_path: Path, headwater_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("1\n")
    other = tmp_path / "other-home"
    hw("--home", str(other), "log", "--job", "ingest", "--output", f"d={data}")
    assert (other / "headwater.db").is_file() and not headwater_home.exists()
    assert names() == []  # HEADWATER_HOME's store
    assert [a["name"] for a in hw_json("--home", str(other), "ls")] == ["d"]
    digest = hw_json("--home", str(other), "show", "d")["digest"].replace(":", "-")
    assert lines(hw("--home", str(other), "download", "d")) == [str(other / "cache" / digest / "d.csv")]

    monkeypatch.setenv("HEADWATER_URI", "mysql://nowhere/db")
    assert "mysql://nowhere/db" in one_error_line(hw("ls", code=2))
    uri = f"sqlite:///{tmp_path / 'chosen.db'}"
    hw("--uri", uri, "log", "--job", "ingest", "--output", f"e={data}")
    assert [a["name"] for a in hw_json("--uri", uri, "ls")] == ["e"]
    assert hw_json("--uri", uri, "db", "upgrade")["uri"] == uri
    # With --home and HEADWATER_URI set, the backend is still HEADWATER_URI's (as in the API).
    assert "mysql://nowhere/db" in one_error_line(hw("--home", str(other), "ls", code=2))
    assert [a["name"] for a in hw_json("--uri", uri, "--home", str(other), "ls")] == ["e"]


def test_server_and_ui_use_uri_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uvicorn = pytest.importorskip("uvicorn")  # the "server" extra
    import headwater.server.run

    def never(*args: Any, **kwargs: Any) -> None:
        pytest.fail("started serving: the options were not used")

    monkeypatch.setattr(headwater.server.run, "serve", never)
    monkeypatch.setattr(uvicorn.Server, "run", never)
    env_before = dict(os.environ)
    server = hw("--uri", "http://127.0.0.1:1", "server", code=2)
    assert "needs a database, not another server (http://127.0.0.1:1)" in one_error_line(server)
    # A home whose database cannot be opened: each fails on the path --home gives.
    home = tmp_path / "home"
    (home / "headwater.db").mkdir(parents=True)
    unreachable = f"cannot reach sqlite:///{home / 'headwater.db'}"
    assert unreachable in one_error_line(hw("--home", str(home), "server", "--port", "0", code=5))
    assert dict(os.environ) == env_before  # the server's environment was set only while it ran
    ui = hw("--uri", "mysql://nowhere/db", "ui", "--no-browser", "--port", "0", code=2)
    assert "'mysql://nowhere/db'" in one_error_line(ui)
    ui_home = hw("--home", str(home), "ui", "--no-browser", "--port", "0", code=5)
    assert unreachable in one_error_line(ui_home)


# -- exit codes and errors as JSON --------------------------------------------------------------------


def test_the_exit_code_table_is_documented_and_matches_the_errors() -> None:
    from headwater import errors

    text = hw("--help").stdout
    table = text.split("Exit codes:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert table == [
        "    0  success",
        "    1  any other error (HeadwaterError); `verify`, `status`: bytes missing, changed or drifted",
        "    2  a usage error; an invalid REF (InvalidRef) or input (InvalidInput)",
        "    3  not found (NotFound)",
        "    4  contradicts what is recorded (Conflict)",
        "    5  backend unavailable, or its schema is newer (Unavailable); local disk full or read-only (Unwritable)",
        "    6  the backend refused the token (Unauthorized); the batch waits in the outbox",
        "    7  the content was purged (Purged): `download`/`verify` of a version with purged files",
    ]
    documented = {}
    for row in table:
        code = int(row.split()[0])
        for word in row.replace("(", " ").replace(")", " ").split():
            if isinstance(getattr(errors, word, None), type):
                documented[word] = code
    classes = {
        name: cls.exit_code
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.HeadwaterError)
    }
    # Every error class is in the table, or inherits its code from one that is.
    assert documented == {n: c for n, c in classes.items() if n in documented}
    assert set(classes) - set(documented) == {"SchemaTooNew"}
    assert errors.SchemaTooNew.exit_code == documented["Unavailable"]


@pytest.fixture
def unavailable_home(tmp_path: Path) -> Path:
    home = tmp_path / "blocked-home"
    (home / "headwater.db").mkdir(parents=True)  # SQLite cannot open a folder
    return home


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["ls", "--limit", "0"], 2, "BadParameter"),
        (["ls", "--no-such-option"], 2, "NoSuchOption"),
        (["show", "raw@"], 2, "InvalidRef"),
        (["log", "--job", "x", "--output", "m=/no/such/file.pt"], 2, "InvalidInput"),
        (["show", "nope"], 3, "NotFound"),
        (
            ["log", "--job", "x", "--output", "model={data}", "--type", "model=dataset"],
            4,
            "Conflict",
        ),
        (["--home", "{blocked}", "ls"], 5, "Unavailable"),
    ],
)
def test_exit_code_of_each_error(
    pipeline: dict[str, Any],
    unavailable_home: Path,
    args: list[str],
    code: int,
    error: str,
) -> None:
    args = [a.format(data=pipeline["data"], blocked=unavailable_home) for a in args]
    before = state()
    plain = hw(*args, code=code)
    assert plain.stdout == ""
    if error in ("BadParameter", "NoSuchOption"):
        assert "Usage:" in plain.stderr  # click's own message without --json
    else:
        one_error_line(plain)
    failed = hw(*args, "--json", code=code)
    assert failed.stdout == ""
    assert len(failed.stderr.splitlines()) == 1
    report = json.loads(failed.stderr)
    assert list(report) == ["error", "message", "exit_code"]
    assert (report["error"], report["exit_code"]) == (error, code)
    assert state() == before


def test_exit_code_of_any_other_error_and_of_verify(pipeline: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.api import Client
    from headwater.errors import HeadwaterError, SchemaTooNew

    pipeline["data"].write_text("x\n")
    hw("log", "--job", "score", "--reference", f"ref={pipeline['data'].as_uri()}")
    pipeline["data"].write_text("changed\n")
    assert hw_json("verify", "ref", code=1)["changed"] == ["raw.csv"]

    def refuse(error: HeadwaterError) -> None:
        def artifacts(self: Client, *args: Any, **kwargs: Any) -> Any:
            raise error

        monkeypatch.setattr(Client, "artifacts", artifacts)

    refuse(HeadwaterError("something   else\nwent wrong"))
    assert one_error_line(hw("ls", code=1)) == "headwater: error: something else went wrong"
    assert json.loads(hw("ls", "--json", code=1).stderr) == {
        "error": "HeadwaterError",
        "message": "something else went wrong",
        "exit_code": 1,
    }
    refuse(SchemaTooNew("the database is at a newer schema"))
    assert json.loads(hw("ls", "--json", code=5).stderr)["error"] == "SchemaTooNew"


def test_errors_as_json(pipeline: dict[str, Any]) -> None:
    missing = hw("show", "nope", "--json", code=3)
    assert missing.stdout == ""
    assert missing.stderr == ('{"error": "NotFound", "message": "no artifact named \'nope\'", "exit_code": 3}\n')
    bad = hw("upstream", "raw@", "--depth", "1", "--json", code=2)
    assert bad.stdout == ""
    assert json.loads(bad.stderr) == {
        "error": "InvalidRef",
        "message": f"invalid reference 'raw@': {FORMS} (8+ hex chars); nothing after '@'",
        "exit_code": 2,
    }
    # --json is found wherever it is, even when parsing fails before reaching it.
    usage = hw("versions", "raw", "--limit", "0", "--json", code=2)
    assert usage.stdout == ""
    assert json.loads(usage.stderr) == {
        "error": "BadParameter",
        "message": "Invalid value for '--limit': 0 is not in the range x>=1.",
        "exit_code": 2,
    }
    nested = hw("db", "upgrade", "--json", "--nope", code=2)
    assert json.loads(nested.stderr)["error"] == "NoSuchOption"
    # After `--`, "--json" is an argument (here a REF), not the option.
    plain = hw("show", "--", "--json", code=3)
    assert one_error_line(plain) == "headwater: error: no artifact named '--json'"


def test_status_and_check_mark_references_that_changed_since_they_were_logged(tmp_path: Path) -> None:
    data, gone, model = tmp_path / "users.csv", tmp_path / "old.csv", tmp_path / "model.pt"
    data.write_text("id\n1\n")
    gone.write_text("x\n")
    model.write_text("M")
    hw("log", "--job", "ingest", "--reference", f"users={data}", "--reference", f"old={gone}")
    train = hw_json("log", "--job", "train", "--input", "users", "--output", f"model={model}")
    assert lines(hw("status")) == ["nothing drifted (3 versions checked)"]
    data.write_text("id\n1\n2\n")  # changed since it was logged
    gone.unlink()
    hw("alias", "model:v0", "production")
    expected = [
        {"version": "old:v0", "path": "old.csv", "ref": gone.as_uri(), "status": "missing"},
        {"version": "users:v0", "path": "users.csv", "ref": data.as_uri(), "status": "changed"},
    ]
    found = hw_json("status", code=1)
    assert [{k: d[k] for k in ("version", "path", "ref", "status")} for d in found] == expected
    assert lines(hw("status", code=1))[0] == "drifted references (2, 3 versions checked)"
    assert hw_json("status", "model:production") == []  # stored bytes: nothing to drift

    ingest = hw_json("runs", "--job", "ingest")[0]["id"]
    assert lines(hw("upstream", "model", "--check")) == [
        "model:v0 [latest, production]",
        f"└── train (manual, succeeded) run {short_id(train['id'])}",
        "    └── users:v0 [latest] DRIFTED",
        f"        └── ingest (manual, succeeded) run {short_id(ingest)}",
        "",
        "drifted references (1, 2 versions checked)",
        "VERSION   PATH       STATUS   REF",
        f"users:v0  users.csv  changed  {data.as_uri()}",
    ]
    graph = hw_json("upstream", "model", "--check")
    assert [(d["version"], d["status"]) for d in graph["drift"]] == [("users:v0", "changed")]
    assert "drift" not in hw_json("upstream", "model")
    shown = lines(hw("show", "users", "--check"))
    assert shown[-2].split()[-1] == "STATUS" and shown[-1].split()[0] == "users.csv" and shown[-1].endswith("changed")
    assert [d["status"] for d in hw_json("show", "users", "--check")["drift"]] == ["changed"]
    impact = lines(hw("impact", "users", "--check"))
    assert impact[1] == "  users:v0 [latest] DRIFTED"
    assert [(d["version"], d["path"]) for d in hw_json("impact", "users", "--check")["drift"]] == [
        ("users:v0", "users.csv")
    ]
