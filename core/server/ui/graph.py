"""A LineageGraph as the nodes and edges the graph page draws (left to right: used, then produced)."""

from __future__ import annotations

from typing import Any

from headwater.models import LineageGraph, Run, Version


def version_node(version: Version, depth: int | None = None) -> dict[str, Any]:
    return {
        "id": f"v:{version.ref}",
        "kind": "version",
        "ref": version.ref,
        "name": version.name,
        "label": version.label,
        "type": version.type,
        "aliases": [a for a in version.aliases],
        "tags": list(version.tags),
        "digest": version.digest,
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "deleted": version.deleted,
        "depth": depth,
    }


def run_node(run: Run) -> dict[str, Any]:
    return {
        "id": f"r:{run.id}",
        "kind": "run",
        "run": run.id,
        "job": run.job,
        "namespace": run.job_namespace,
        "orchestrator": run.orchestrator,
        "status": run.status,
        "run_kind": run.kind,
        "started_at": run.started_at.isoformat() if run.started_at else None,
    }


def graph_payload(graph: LineageGraph, root: str | None = None, direction: str | None = None) -> dict[str, Any]:
    """Every version and run of the graph, and each edge once (LineageGraph.flow_edges)."""
    nodes = [version_node(v, graph.depth.get(v.ref)) for v in graph.versions]
    nodes += [run_node(r) for r in graph.runs]
    made_from = graph.made_from()
    edges = []
    for ref, run_id, direction_, exact in graph.flow_edges():
        version, run = f"v:{ref}", f"r:{run_id}"
        source, target = (version, run) if direction_ == "used" else (run, version)
        edge: dict[str, Any] = {"source": source, "target": target, "exact": exact}
        if direction_ == "produced" and (run_id, ref) in made_from:
            edge["made_from"] = made_from[(run_id, ref)]  # the run's other inputs did not make it
        edges.append(edge)
    return {"root": root, "direction": direction, "nodes": nodes, "edges": edges}
