"""The recorded graph as plain data, for the orchestrator suites' exact assertions.

One reading of the store (`read`), and the view each suite asserts in: `by_id` (Dagster: runs by
id), `tries` (Airflow: runs named `dag.task#try`), `rows` (Prefect: one sorted row per run).
Importable from every orchestrator's environment: it needs only headwater.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import headwater as hw


@dataclass
class Recorded:
    runs: dict[str, hw.Run]  # by run id
    versions: dict[str, hw.Version]  # by ref, with their entries
    edges: set[tuple[str, str, str, bool]]  # (run id, direction, version ref, exact); with edges=True


def read(client: hw.Client, *, edges: bool = False) -> Recorded:
    """Every run, every version of every artifact and, with `edges`, every edge."""
    runs = {run.id: run for run in client.runs()}
    versions: dict[str, hw.Version] = {}
    found: set[tuple[str, str, str, bool]] = set()
    for artifact in client.artifacts():
        for version in client.versions(artifact.name):
            versions[version.ref] = client.get(version.ref)
            if edges:
                for graph in (client.upstream(version.ref, depth=1), client.downstream(version.ref, depth=1)):
                    found.update((e.run_id, e.direction, e.version, e.exact) for e in graph.edges)
    return Recorded(runs, versions, found)


def by_id(client: hw.Client) -> dict[str, Any]:
    """Runs by id -> (job, kind, status, parent id, inputs, outputs); versions by ref ->
    [(entry path, entry ref)]."""
    graph = read(client)
    return {
        "runs": {
            r.id: (r.job, r.kind, r.status, r.parent_id, sorted(r.inputs), sorted(r.outputs))
            for r in graph.runs.values()
        },
        "versions": {ref: [(e.path, e.ref) for e in v.entries] for ref, v in graph.versions.items()},
    }


def who(run: hw.Run) -> str:
    """`dag` for a DAG run; `dag.task#try` or `dag.task[map_index]#try` for a task try."""
    if run.kind == "container":
        return run.job
    map_index = run.params.get("map_index", -1)
    return f"{run.job}{f'[{map_index}]' if map_index != -1 else ''}#{run.params.get('try_number')}"


def tries(client: hw.Client) -> dict[str, Any]:
    """Runs by `who` -> (kind, status, parent); versions by ref -> (metadata, producer); edges as
    (who, direction, version ref, exact)."""
    graph = read(client, edges=True)
    runs = graph.runs
    return {
        "runs": {
            who(run): (run.kind, run.status, who(runs[run.parent_id]) if run.parent_id else None)
            for run in runs.values()
        },
        "versions": {
            ref: (v.metadata, who(runs[v.produced_by]) if v.produced_by in runs else None)
            for ref, v in graph.versions.items()
        },
        "edges": {(who(runs[run_id]), direction, ref, exact) for run_id, direction, ref, exact in graph.edges},
    }


def rows(client: hw.Client, root: Path) -> list[tuple[Any, ...]]:
    """One row per run, sorted: (job, kind, status, parent job, inputs, outputs), with versions
    under `root` as `path-under-root:vN`."""
    runs = read(client).runs
    prefix = root.as_uri() + "/"

    def short(ref: str) -> str:
        return ref[len(prefix) :] if ref.startswith(prefix) else ref

    return sorted(
        (
            r.job,
            r.kind,
            r.status,
            runs[r.parent_id].job if r.parent_id in runs else r.parent_id,
            tuple(sorted(short(i) for i in r.inputs)),
            tuple(sorted(short(o) for o in r.outputs)),
        )
        for r in runs.values()
    )
