"""The whole recorded graph in readable form, for exact assertions."""

from __future__ import annotations

from typing import Any

import headwater as hw


def who(run: hw.Run) -> str:
    """`dag` for a DAG run; `dag.task#try` or `dag.task[map_index]#try` for a task try."""
    if run.kind == "container":
        return run.job
    map_index = run.params.get("map_index", -1)
    return f"{run.job}{f'[{map_index}]' if map_index != -1 else ''}#{run.params.get('try_number')}"


def recorded(client: hw.Client) -> dict[str, Any]:
    runs = {run.id: run for run in client.runs()}
    edges: set[tuple[str, str, str, bool]] = set()
    versions: dict[str, tuple[dict[str, Any], str | None]] = {}
    for artifact in client.artifacts():
        for version in client.versions(artifact.name):
            producer = runs.get(version.produced_by or "")
            versions[version.ref] = (version.metadata, who(producer) if producer else None)
            for graph in (client.upstream(version.ref, depth=1), client.downstream(version.ref, depth=1)):
                for edge in graph.edges:
                    edges.add((who(runs[edge.run_id]), edge.direction, edge.version, edge.exact))
    return {
        "runs": {
            who(run): (run.kind, run.status, who(runs[run.parent_id]) if run.parent_id else None)
            for run in runs.values()
        },
        "versions": versions,
        "edges": edges,
    }
