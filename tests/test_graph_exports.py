"""LineageGraph's exports: str() is the CLI's tree, to_mermaid()/to_dot() the CLI's
`graph --format` texts, plus to_dict(), to_networkx(), Jupyter's mimebundle and a short repr."""

from __future__ import annotations

import html
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import headwater as hw
from headwater.cli import cli
from headwater.render import short_id

MODEL = "<b>x</b>"  # a name that is also HTML: the notebook view must escape it


@dataclass
class Lineage:
    home: Path
    client: hw.Client
    dataset: hw.Version
    model: hw.Version
    run_id: str
    graph: hw.LineageGraph


@pytest.fixture
def lineage(tmp_path: Path) -> Iterator[Lineage]:
    """users:v0 (dataset) -> train (manual) -> <b>x</b>:v0 (model), in a home of its own."""
    home = tmp_path / "home"
    client = hw.Client(home=home)
    data = tmp_path / "users.csv"
    data.write_text("id,name\n1,ada\n")
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"\x00\x01\x02")
    dataset = client.log_artifact("users", data, type="dataset")
    with client.run("train", params={"lr": 0.1}) as active:
        active.use("users:v0")
        model = active.log_artifact(MODEL, weights, type="model", aliases=["prod"])
    yield Lineage(home, client, dataset, model, active.id, client.upstream(model.ref))
    client.close()


def headwater(home: Path, *args: str) -> str:
    """What `headwater ARGS` prints to a pipe, against the store under `home`."""
    env = {"HEADWATER_HOME": str(home)}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def test_str_is_the_tree_the_cli_prints(lineage: Lineage) -> None:
    tree = str(lineage.graph)
    assert tree.splitlines() == [
        f"{MODEL}:v0 (model) [latest, prod]",
        f"└── train (manual, succeeded) run {short_id(lineage.run_id)}",
        "    └── users:v0 (dataset) [latest]",
    ]
    # click.echo ends the command's output with a newline; str() has none.
    assert headwater(lineage.home, "upstream", lineage.model.ref) == tree + "\n"
    assert headwater(lineage.home, "graph", lineage.model.ref) == tree + "\n"
    down = lineage.client.downstream("users:v0")
    assert headwater(lineage.home, "downstream", "users:v0") == str(down) + "\n"
    assert str(down).splitlines()[0] == "users:v0 (dataset) [latest]"


def test_mermaid_and_dot_are_what_headwater_graph_prints(lineage: Lineage) -> None:
    ref = lineage.model.ref
    for fmt, text in (("mermaid", lineage.graph.to_mermaid()), ("dot", lineage.graph.to_dot())):
        assert text == headwater(lineage.home, "graph", ref, "--format", fmt), fmt
    assert lineage.graph.to_mermaid().startswith("flowchart LR\n")
    assert lineage.graph.to_dot().startswith("digraph lineage {\n")


def test_to_dict_round_trips(lineage: Lineage) -> None:
    import json

    data = lineage.graph.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-ready as it is
    assert data["root"] == f"{MODEL}:v0" and data["direction"] == "upstream"
    assert hw.LineageGraph.model_validate(data) == lineage.graph
    assert hw.LineageGraph.model_validate_json(json.dumps(data)) == lineage.graph


def test_to_networkx_has_one_node_per_version_and_run(lineage: Lineage) -> None:
    digraph = lineage.graph.to_networkx()
    run_id = lineage.run_id
    assert dict(digraph.nodes(data=True)) == {
        "users:v0": {
            "kind": "version",
            "name": "users",
            "label": "v0",
            "type": "dataset",
            "digest": lineage.dataset.digest,
        },
        f"{MODEL}:v0": {
            "kind": "version",
            "name": MODEL,
            "label": "v0",
            "type": "model",
            "digest": lineage.model.digest,
        },
        run_id: {"kind": "run", "job": "train", "orchestrator": "manual", "status": "succeeded"},
    }
    assert {(a, b): attrs for a, b, attrs in digraph.edges(data=True)} == {
        ("users:v0", run_id): {"exact": True},  # used
        (run_id, f"{MODEL}:v0"): {"exact": True},  # produced
    }
    assert digraph.graph == {"root": f"{MODEL}:v0", "direction": "upstream"}


def test_to_networkx_keeps_inexact_edges_and_drops_dangling_ones(lineage: Lineage) -> None:
    graph = lineage.graph
    used = next(e for e in graph.edges if e.direction == "used")
    edges = [
        *(e for e in graph.edges if e is not used),
        used.model_copy(update={"exact": False}),
        used.model_copy(update={"run_id": "not-in-the-graph"}),
    ]
    digraph = graph.model_copy(update={"edges": edges}).to_networkx()
    assert digraph.edges["users:v0", lineage.run_id] == {"exact": False}
    assert "not-in-the-graph" not in digraph
    assert digraph.number_of_nodes() == 3 and digraph.number_of_edges() == 2


def test_to_networkx_without_networkx_says_how_to_install_it(lineage: Lineage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "networkx", None)  # `import networkx` raises ImportError
    with pytest.raises(hw.InvalidInput, match="pip install networkx"):
        lineage.graph.to_networkx()


def test_the_jupyter_mimebundle(lineage: Lineage) -> None:
    graph = lineage.graph
    bundle = graph._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/markdown", "text/html"}
    assert bundle["text/plain"] == str(graph)
    assert bundle["text/markdown"] == f"```mermaid\n{graph.to_mermaid()}```\n"
    assert bundle["text/html"] == f"<pre>{html.escape(str(graph))}</pre>"
    assert MODEL not in bundle["text/html"]
    assert "&lt;b&gt;x&lt;/b&gt;:v0 (model)" in bundle["text/html"]
    assert set(graph._repr_mimebundle_(include={"text/markdown"})) == {"text/markdown"}
    assert set(graph._repr_mimebundle_(exclude={"text/html"})) == {"text/plain", "text/markdown"}


def test_repr_is_one_short_line(lineage: Lineage) -> None:
    assert repr(lineage.graph) == (f"LineageGraph(root='{MODEL}:v0', direction='upstream', 2 versions, 1 run, 2 edges)")
    empty = "LineageGraph(root=None, direction=None, 0 versions, 0 runs, 0 edges)"
    assert repr(hw.LineageGraph()) == empty
    assert str(hw.LineageGraph()) == "(empty lineage)"


def test_an_output_made_from_some_inputs_says_so_in_every_export(tmp_path: Path) -> None:
    """A run that read a dataset and a config and said the report came from the dataset only: the
    exports label that output edge "from <dataset>", and leave the run's other output unlabelled."""
    client = hw.Client(home=tmp_path / "home")
    files = {}
    for name in ("data.csv", "config.yaml", "report.txt", "model.bin"):
        files[name] = tmp_path / name
        files[name].write_text(name)
    client.log_artifact("data", files["data.csv"])
    client.log_artifact("config", files["config.yaml"])
    run = client.link(
        "train",
        inputs=["data:v0", "config:v0"],
        outputs=[hw.Output("report", files["report.txt"], inputs=["data:v0"]), hw.Output("model", files["model.bin"])],
    )
    graph = merge_graphs_of(client, "data:v0")
    client.close()
    assert graph.made_from() == {(run.id, "report:v0"): ["data:v0"]}

    mermaid = graph.to_mermaid()
    labelled = [line.strip() for line in mermaid.splitlines() if "|" in line]
    assert len(labelled) == 1 and labelled[0].endswith('-->|"from data:v0"| ' + labelled[0].split()[-1])
    ids = {line.split("[")[0].strip(): line for line in mermaid.splitlines() if '["' in line}
    assert "report:v0" in ids[labelled[0].split()[-1]]

    dot = graph.to_dot()
    assert f'"run:{run.id}" -> "report:v0" [label="from data:v0", fontsize=8];' in dot
    assert f'"run:{run.id}" -> "model:v0";' in dot


def merge_graphs_of(client: hw.Client, ref: str) -> hw.LineageGraph:
    from headwater.api import merge_graphs

    return merge_graphs([client.downstream(ref), client.upstream(ref)])
