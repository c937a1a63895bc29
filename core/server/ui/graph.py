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
    """Every version and run of the graph, and one edge per recorded edge (deduplicated)."""
    nodes = [version_node(v, graph.depth.get(v.ref)) for v in graph.versions]
    nodes += [run_node(r) for r in graph.runs]
    known = {n["id"] for n in nodes}
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for edge in graph.edges:
        version, run = f"v:{edge.version}", f"r:{edge.run_id}"
        if version not in known or run not in known:
            continue  # an edge to a node the walk stopped before
        source, target = (version, run) if edge.direction == "used" else (run, version)
        found = edges.setdefault((source, target), {"source": source, "target": target, "exact": True})
        found["exact"] = found["exact"] and edge.exact
    return {"root": root, "direction": direction, "nodes": nodes, "edges": list(edges.values())}
