"""What each page shows, read through a Client: plain data for the templates, no HTML here."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlencode

from headwater import config, times
from headwater.api import Client, merge_graphs
from headwater.errors import HeadwaterError, InvalidInput, NotFound
from headwater.models import AliasMove, LineageGraph, ManifestEntry, Version
from headwater.refs import LATEST, Ref, normalize_name
from headwater.server.ui.graph import graph_payload, run_node, version_node

PAGE_SIZE = 50
MAX_ENTRIES_SHOWN = 2000
MAX_CHILDREN_SHOWN = 500
MAX_VERSIONS_SHOWN = 200
DEFAULT_DEPTH = 3
MAX_DEPTH = 1000


def _need(value: str | None, what: str) -> str:
    if not value:
        raise InvalidInput(f"this page needs {what}")
    return value


def _int(value: str | None, what: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{what} must be a whole number, not {value[:40]!r}") from None
    if not low <= number <= high:
        raise InvalidInput(f"{what} must be between {low} and {high}")
    return number


def _at(value: str | None) -> datetime | None:
    """A time from the page's form (`2026-03-01T12:00`, with or without seconds or zone): UTC if naive."""
    return None if value is None else times.parse(value)


# -- artifacts -----------------------------------------------------------------------------------


def artifacts_view(
    client: Client, q: str | None, type: str | None, tag: str | None, sort: str | None, page: str | None
) -> dict[str, Any]:
    order: Literal["name", "updated"] = "name" if sort == "name" else "updated"
    number = _int(page, "page", 1, 10_000_000, 1)
    found = client.artifacts(
        type=type, name_like=q, tag=tag, order=order, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE
    )
    return {
        "nav": "artifacts",
        "artifacts": found[:PAGE_SIZE],
        "more": len(found) > PAGE_SIZE,
        "page": number,
        "first": (number - 1) * PAGE_SIZE + 1,
        "filters": {"q": q or "", "type": type or "", "tag": tag or "", "sort": order},
    }


@dataclass
class AliasRow:
    alias: str
    current: str | None
    moves: list[AliasMove] = field(default_factory=list)


def artifact_view(client: Client, name: str | None, alias: str | None, at: str | None) -> dict[str, Any]:
    name = normalize_name(_need(name, "an artifact name (?name=)"))
    artifact = client.store.get_artifact(name)
    versions = client.versions(name, include_deleted=True)
    older = max(0, len(versions) - MAX_VERSIONS_SHOWN)
    versions = versions[older:][::-1]  # newest first, as people read a history
    history = client.alias_history(name)
    rows: dict[str, AliasRow] = {}
    for move in history:
        row = rows.setdefault(move.alias, AliasRow(move.alias, None))
        row.moves.append(move)
        row.current = move.version
    for row in rows.values():
        row.moves.reverse()
    aliases = sorted(rows.values(), key=lambda r: (r.alias == LATEST, r.alias))
    travel: dict[str, Any] | None = None
    if at is not None:
        moment = _at(at)
        alias = alias or LATEST
        try:
            found = client.store.get_version(Ref(name, alias=alias), at=moment)
            travel = {"alias": alias, "at": moment, "version": found, "error": None}
        except NotFound as err:
            travel = {"alias": alias, "at": moment, "version": None, "error": str(err)}
    producers = {v.produced_by for v in versions if v.produced_by}
    return {
        "nav": "artifacts",
        "artifact": artifact,
        "versions": versions,
        "aliases": aliases,
        "producers": client.runs_by_id(sorted(producers)),
        "older": older,
        "travel": travel,
        "travel_alias": alias or ("production" if "production" in rows else LATEST),
        "travel_at": at or "",
    }


# -- one version ---------------------------------------------------------------------------------


@dataclass
class Folder:
    name: str
    path: str
    folders: dict[str, Folder] = field(default_factory=dict)
    files: list[ManifestEntry] = field(default_factory=list)
    size: int = 0
    count: int = 0


def file_tree(entries: list[ManifestEntry]) -> Folder:
    """The manifest as folders of files, each folder with its total size and file count."""
    root = Folder("", "")
    for entry in entries:
        parts = entry.path.split("/")
        node = root
        node.size += entry.size
        node.count += 1
        for index, part in enumerate(parts[:-1]):
            node = node.folders.setdefault(part, Folder(part, "/".join(parts[: index + 1])))
            node.size += entry.size
            node.count += 1
        node.files.append(entry)
    return root


def _previous(client: Client, version: Version) -> Version | None:
    if version.label is None:
        return None
    number = int(version.label[1:])
    for older in range(number - 1, max(-1, number - 50), -1):  # deleted ones are skipped
        try:
            found = client.store.get_version(Ref(version.name, label=f"v{older}"))
        except NotFound:
            continue
        if not found.deleted:
            return found
    return None


def version_view(client: Client, ref: str | None) -> dict[str, Any]:
    version = client.get(_need(ref, "a version (?ref=NAME:vN)"))
    nearby = client.downstream(version.ref, depth=1)
    consumers = sorted({e.run_id for e in nearby.edges if e.direction == "used" and e.version == version.ref})
    by_id = {r.id: r for r in nearby.runs}
    previous = _previous(client, version)
    diff = client.diff(previous.ref, version.ref) if previous is not None else None
    shown = version.entries[:MAX_ENTRIES_SHOWN]
    return {
        "nav": "artifacts",
        "v": version,
        "tree": file_tree(shown),
        "purged": set(version.purged),
        "hidden_entries": len(version.entries) - len(shown),
        "references": any(e.ref for e in version.entries),
        "producers": client.runs_by_id(version.producers or ([version.produced_by] if version.produced_by else [])),
        "consumers": {i: by_id.get(i) for i in consumers},
        "previous": previous,
        "diff": diff,
    }


# -- runs ----------------------------------------------------------------------------------------


def run_view(client: Client, run_id: str | None) -> dict[str, Any]:
    run = client.get_run(_need(run_id, "a run id (?id=)"))
    parent = client.runs_by_id([run.parent_id])[run.parent_id] if run.parent_id else None
    children = client.runs(parent_id=run.id, limit=MAX_CHILDREN_SHOWN + 1)
    return {
        "nav": "runs",
        "run": run,
        "parent": parent,
        "children": children[:MAX_CHILDREN_SHOWN],
        "more_children": len(children) > MAX_CHILDREN_SHOWN,
        "inexact": set(run.inexact),
        "duration": (run.ended_at - run.started_at).total_seconds() if run.started_at and run.ended_at else None,
    }


def runs_view(client: Client, job: str | None, orchestrator: str | None, status: str | None) -> dict[str, Any]:
    return {
        "nav": "runs",
        "runs": client.runs(job=job, orchestrator=orchestrator, status=status, limit=200),
        "filters": {"job": job or "", "orchestrator": orchestrator or "", "status": status or ""},
        "limit": 200,
    }


# -- lineage -------------------------------------------------------------------------------------


def _direction(value: str | None) -> str:
    direction = value or "both"
    if direction not in ("upstream", "downstream", "both"):
        raise InvalidInput("direction must be upstream, downstream or both")
    return direction


def _depth(value: str | None) -> int | None:
    if value in (None, "", "all"):
        return None
    return _int(value, "depth", 0, MAX_DEPTH, DEFAULT_DEPTH)


_SIDES: dict[str, tuple[Literal["upstream", "downstream"], ...]] = {
    "both": ("upstream", "downstream"),
    "upstream": ("upstream",),
    "downstream": ("downstream",),
}


def drawable(
    client: Client, ref: str, direction: str, depth: int | None, max_nodes: int
) -> tuple[LineageGraph, dict[str, Any] | None]:
    """The graph of the lineage page (upstream, downstream, or both merged), or, when it holds
    more than `max_nodes` versions and runs, the hops nearest `ref` that fit (each side of
    "both" gets half): the graph, and what was left out (None when nothing was).

    The walk's refs (`reachable`) are counted first, so a closure of a hundred thousand nodes
    is never built whole to be cut down: a browser could not draw it, and the server would
    spend seconds and gigabytes on it."""
    sides = _SIDES[direction]
    room = max(1, max_nodes // len(sides))
    graphs, cut = [], []
    for side in sides:
        reach = client.reachable(ref, side, depth)
        within = Counter(reach.versions.values()) + Counter(reach.runs.values())  # nodes a hop adds
        total, hops, drawn = sum(within.values()), 0, within[0]
        if total > room:  # the graph at `hops` holds the versions and runs of hops 0 to `hops`
            while hops + 1 in within and drawn + within[hops + 1] <= room:
                hops += 1
                drawn += within[hops]
            cut.append({"direction": side, "depth": hops, "total": total, "hops": max(within)})
        at = depth if total <= room else hops
        graphs.append(client.upstream(ref, at) if side == "upstream" else client.downstream(ref, at))
    graph = merge_graphs(graphs) if len(graphs) > 1 else graphs[0]
    if not cut:
        return graph, None
    shown = len(graph.versions) + len(graph.runs)
    return graph, {"max_nodes": max_nodes, "shown": shown, "sides": cut}


def lineage_view(client: Client, ref: str | None, direction: str | None, depth: str | None) -> dict[str, Any]:
    version = client.get(_need(ref, "a version (?ref=NAME:vN)"))
    chosen = _direction(direction)
    limit = _depth(depth if depth is not None else str(DEFAULT_DEPTH))
    return {
        "nav": "lineage",
        "v": version,
        "direction": chosen,
        "depth": "all" if limit is None else limit,
        "graph_url": "/ui/graph.json?"
        + _encode({"ref": version.ref, "direction": chosen, "depth": limit if limit is not None else "all"}),
    }


def _encode(params: dict[str, Any]) -> str:
    return urlencode(params, safe="/:@")


def graph_json(
    client: Client, ref: str | None, run_id: str | None, direction: str | None, depth: str | None
) -> dict[str, Any]:
    if run_id:  # a run's own neighbours (the graph's "expand")
        run = client.get_run(run_id)
        nodes, edges = [run_node(run)], []
        for refs, used in ((run.inputs, True), (run.outputs, False)):
            for item in refs[:200]:
                try:
                    node = version_node(client.get(item))
                except HeadwaterError:
                    continue
                nodes.append(node)
                pair = (node["id"], f"r:{run.id}") if used else (f"r:{run.id}", node["id"])
                edges.append({"source": pair[0], "target": pair[1], "exact": item not in run.inexact})
        return {"root": None, "direction": "both", "nodes": nodes, "edges": edges}
    version = client.get(_need(ref, "a version (ref=)"))
    chosen = _direction(direction)
    graph, left_out = drawable(client, version.ref, chosen, _depth(depth), config.ui_max_nodes())
    payload = graph_payload(graph, version.ref, chosen)
    if left_out is not None:
        payload["truncated"] = left_out
    return payload


# -- diff and impact -----------------------------------------------------------------------------


def diff_view(client: Client, left: str | None, right: str | None) -> dict[str, Any]:
    if not left or not right:
        return {"nav": "diff", "left": left or "", "right": right or "", "diff": None}
    diff = client.diff(left, right)
    return {
        "nav": "diff",
        "left": left,
        "right": right,
        "diff": diff,
        "command": shlex.join(["headwater", "diff", left, right]),
    }


def impact_view(client: Client, ref: str | None, path: str | None, digest: str | None) -> dict[str, Any]:
    if not (ref or path or digest):
        return {"nav": "impact", "impact": None, "form": {"ref": "", "path": "", "digest": ""}}
    # The UI never reads the serving machine's files: a path is matched as it was recorded.
    result = client.impact(ref=ref, path=path, digest=digest, read_files=False)
    holding = {v.ref for v in result.holding}
    graph = result.downstream
    affected = [v for v in graph.versions if v.ref not in holding]
    affected.sort(key=lambda v: (graph.depth.get(v.ref, 0), v.name, v.label or ""))
    used = {e.run_id for e in graph.edges if e.direction == "used"}
    runs = sorted((r for r in graph.runs if r.id in used), key=lambda r: (r.started_at is None, r.started_at, r.id))
    command = ["headwater", "impact"]
    if ref:
        command.append(ref)
    if path:
        command += ["--path", path]
    if digest:
        command += ["--digest", digest]
    what = (
        (f"the files of {ref}" if not path else f"{path!r} as it was in {ref}")
        if ref
        else (f"path {path!r}" if path else f"digest {digest}")
    )
    return {
        "nav": "impact",
        "impact": result,
        "what": what,
        "holding": sorted(result.holding, key=lambda v: (v.name, v.label or "")),
        "models": [v for v in affected if (v.type or "").lower() == "model"],
        "others": [v for v in affected if (v.type or "").lower() != "model"],
        "runs": runs,
        "depth": graph.depth,
        "command": shlex.join(command),
        "form": {"ref": ref or "", "path": path or "", "digest": digest or ""},
    }
