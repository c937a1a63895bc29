"""The SQL store's lineage: the versions reachable from one (or several), walked in SQL (a
recursive CTE), the graph of versions and runs joining them, the path between two, and the runs
using an artifact."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter

from headwater.errors import InvalidInput, NotFound
from headwater.models import Edge, LineageGraph, Run, Version
from headwater.refs import LATEST, Ref
from headwater.store.base import LineageDirection
from headwater.store.schema import RunId, aliases, artifacts, edges, entries, output_inputs, runs, tags, versions
from headwater.store.sql.purge import label_of, purge_info
from headwater.store.sql.reads import (
    _EPOCH,
    _RUN_COLUMNS,
    SQLReads,
    _gc_paused,
    _run_io,
    _run_models,
    loads_json,
    wire_columns,
)

_VERSION_COLUMNS = (
    versions.c.id,
    versions.c.label,
    versions.c.digest,
    versions.c.metadata,
    versions.c.description,
    versions.c.size,
    versions.c.n_entries,
    versions.c.created_at,
    versions.c.produced_by,
    versions.c.deleted_at,
)
_VERSION_LIST = TypeAdapter(list[Version])
_EDGE_LIST = TypeAdapter(list[Edge])

_SORTED_AT_MOST = 5_000  # uses of an artifact a page of runs_using reads whole and sorts
_EDGE_COLUMNS = (
    edges.c.run_id,
    edges.c.version_id,
    edges.c.direction,
    edges.c.exact,
    edges.c.created_at,
    edges.c.metadata,
)


class SQLLineage(SQLReads):
    """Lineage queries, on top of the reads they assemble their graphs from."""

    def lineage(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> LineageGraph:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        with self._read() as conn:
            root = self._resolve(conn, ref)
            graph = self._graph(conn, [root], self.closure(conn, root, direction, depth), direction, depth)
        graph.direction = direction
        return graph

    def downstream_of(self, refs: Sequence[Ref]) -> LineageGraph:
        """Everything downstream of any of `refs` (impact's question of every version holding a
        file): the downstream graphs of each merged, found in one walk seeded with all of them."""
        with self._read() as conn:
            roots = list(dict.fromkeys(self._resolve(conn, ref) for ref in refs))
            if not roots:
                return LineageGraph()
            graph = self._graph(conn, roots, self.closure(conn, roots, "downstream", None), "downstream", None)
        graph.root = None  # a merge of several graphs has no root nor direction
        return graph

    def closure(
        self, conn: sa.Connection, root: int | Sequence[int], direction: LineageDirection, depth: int | None
    ) -> set[int]:
        """Ids of the versions reachable from `root` (one version id, or several) within `depth`
        runs, walked in SQL.

        Unbounded walks recurse on the version id alone so UNION stops at cycles; bounded ones
        carry a depth (which defeats UNION's dedup) and stop at `depth`. A step from an input to an
        output of a run (or back) is taken only when the run says that input made that output, or
        says nothing of which inputs made it (output_inputs).
        """
        roots = [root] if isinstance(root, int) else list(root)
        step_in, step_out = ("used", "produced") if direction == "downstream" else ("produced", "used")
        made, source = ("nxt", "cur") if direction == "downstream" else ("cur", "nxt")
        declared = f"""
            (NOT EXISTS (SELECT 1 FROM output_inputs f
                         WHERE f.run_id = cur.run_id AND f.output_id = {made}.version_id)
             OR EXISTS (SELECT 1 FROM output_inputs f
                        WHERE f.run_id = cur.run_id AND f.output_id = {made}.version_id
                          AND f.input_id = {source}.version_id))
        """
        bound: object
        if self.dialect == "postgresql":
            seeds, bound = "SELECT unnest(CAST(:roots AS INTEGER[]))", roots
        else:
            seeds, bound = "SELECT CAST(value AS INTEGER) FROM json_each(:roots)", json.dumps(roots)
        if depth is None:
            sql = sa.text(
                f"""
                WITH RECURSIVE walk(vid) AS (
                    {seeds}
                    UNION
                    SELECT nxt.version_id FROM walk
                    JOIN edges cur ON cur.version_id = walk.vid AND cur.direction = '{step_in}'
                    JOIN edges nxt ON nxt.run_id = cur.run_id AND nxt.direction = '{step_out}'
                    WHERE {declared}
                )
                SELECT vid FROM walk
                """
            )
            return {row[0] for row in conn.execute(sql, {"roots": bound})}
        sql = sa.text(
            f"""
            WITH RECURSIVE seeds(vid) AS ({seeds}),
            walk(vid, depth) AS (
                SELECT vid, CAST(0 AS INTEGER) FROM seeds
                UNION
                SELECT nxt.version_id, walk.depth + 1 FROM walk
                JOIN edges cur ON cur.version_id = walk.vid AND cur.direction = '{step_in}'
                JOIN edges nxt ON nxt.run_id = cur.run_id AND nxt.direction = '{step_out}'
                WHERE walk.depth < :depth AND {declared}
            )
            SELECT DISTINCT vid FROM walk
            """
        )
        return {row[0] for row in conn.execute(sql, {"roots": bound, "depth": depth})}

    @_gc_paused()
    def _graph(
        self,
        conn: sa.Connection,
        roots: Sequence[int],
        ids: set[int],
        direction: LineageDirection | str,
        depth: int | None,
    ) -> LineageGraph:
        """The versions `ids` (reachable from `roots`), the runs joining them, and hop counts
        (from the nearest root).

        Depths come from a walk over the edges loaded here anyway, so the closure query does not
        have to carry them; those edges (every edge of every run stepping on from `ids`) also
        give the runs' inputs and outputs. A path graph keeps only runs that both use and produce
        in `ids`. Every query binds the ids as one list (SQLReads._members): a handful of
        statements for any size of graph, and the models are validated as whole lists, with the
        collector paused (_gc_paused).
        """
        step_in = "produced" if direction == "upstream" else "used"
        stepping = sa.select(edges.c.run_id).where(
            edges.c.direction == step_in, edges.c.version_id.in_(self._members(sorted(ids), sa.Integer()))
        )
        made_from: dict[tuple[str, int], set[int]] = defaultdict(set)  # (run, output) -> its declared inputs
        for run_id, output_id, input_id in conn.execute(
            sa.select(output_inputs.c.run_id, output_inputs.c.output_id, output_inputs.c.input_id).where(
                output_inputs.c.run_id.in_(stepping)
            )
        ).all():
            made_from[(run_id, output_id)].add(input_id)
        run_edges = conn.execute(
            sa.select(*wire_columns(self.dialect, _EDGE_COLUMNS)).where(edges.c.run_id.in_(stepping))
        ).all()
        edge_rows: list[Any] = []  # (run_id, version_id, direction, exact, created_at, metadata)
        runs_of: dict[int, list[str]] = defaultdict(list)  # version -> runs one step on
        reaches: dict[str, list[int]] = defaultdict(list)  # run -> versions one step on
        for row in run_edges:
            if row[1] in ids:
                edge_rows.append(row)
                if row[2] == step_in:
                    runs_of[row[1]].append(row[0])
                else:
                    reaches[row[0]].append(row[1])
        walk = _Walk(direction, runs_of, reaches, made_from)
        depths, kept_runs = walk.depths(roots, depth)
        ordered = sorted(depths, key=lambda v: (depths[v], v))
        version_models, named = self._graph_versions(conn, ordered)
        kept_edges = [r for r in run_edges if r[0] in kept_runs]
        named.update(
            self._names(
                conn,
                (
                    {r[1] for r in kept_edges}
                    | {i for (run_id, _), found in made_from.items() if run_id in kept_runs for i in found}
                )
                - set(named),
            )
        )
        ref_of = {vid: f"{name}:{label_of(label)}" for vid, (name, label) in named.items()}
        graph_edges = sorted(
            (r for r in edge_rows if r[0] in kept_runs and r[1] in depths and walk.merged_has(roots, depths, r)),
            key=lambda r: (r[0], r[2], r[1]),
        )
        return LineageGraph(
            root=ref_of[roots[0]],
            versions=version_models,
            runs=self._kept_runs(conn, kept_runs, kept_edges, named, ref_of),
            edges=_EDGE_LIST.validate_python(
                [
                    {
                        "run_id": run_id,
                        "version": ref_of[version_id],
                        "direction": edge_direction,
                        "exact": exact,
                        "created_at": created_at,
                        "metadata": loads_json(metadata),
                        "inputs": sorted(ref_of[i] for i in made_from[(run_id, version_id)])
                        if edge_direction == "produced" and (run_id, version_id) in made_from
                        else [],
                    }
                    for run_id, version_id, edge_direction, exact, created_at, metadata in graph_edges
                ]
            ),
            depth={ref_of[vid]: depths[vid] for vid in ordered},
        )

    def _kept_runs(
        self,
        conn: sa.Connection,
        kept_runs: set[str],
        kept_edges: Sequence[Any],
        named: dict[int, tuple[str, int]],
        ref_of: dict[int, str],
    ) -> list[Run]:
        """The graph's runs, by start time then id, with their inputs and outputs from their
        edges already loaded (every edge of each, inside the graph or not), not read again."""
        if not kept_runs:
            return []
        io = _run_io(kept_runs)
        for run_id, version_id, edge_direction, exact, _, _ in sorted(kept_edges, key=lambda r: named[r[1]]):
            refs = io[run_id]
            refs[edge_direction].append(ref_of[version_id])
            if not exact:
                refs["inexact"].append(ref_of[version_id])
        rows = conn.execute(
            sa.select(*wire_columns(self.dialect, _RUN_COLUMNS)).where(
                runs.c.id.in_(self._members(sorted(kept_runs), RunId))
            )
        ).all()
        return sorted(_run_models(rows, io), key=lambda run: (run.started_at or _EPOCH, run.id))

    def _graph_versions(
        self, conn: sa.Connection, ordered: list[int]
    ) -> tuple[list[Version], dict[int, tuple[str, int]]]:
        """The versions of a graph, in the order of `ordered`: what SQLReads._versions gives
        without entries, read in five statements whatever their number and validated as one list
        (a graph holds tens of thousands; _versions reads a few hundred at a time); and the
        (artifact name, label) of each, by id."""
        if not ordered:
            return [], {}
        rows: dict[int, Any] = {}
        alias_map: dict[int, list[str]] = defaultdict(list)
        tag_map: dict[int, list[str]] = defaultdict(list)
        producer_map: dict[int, list[str]] = defaultdict(list)
        for row in conn.execute(
            sa.select(*wire_columns(self.dialect, _VERSION_COLUMNS), artifacts.c.name, artifacts.c.type)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id.in_(self._members(ordered, sa.Integer())))
        ).all():
            rows[row[0]] = row
        for vid, alias in conn.execute(
            sa.select(aliases.c.version_id, aliases.c.alias)
            .where(aliases.c.version_id.in_(self._members(ordered, sa.Integer())))
            .order_by(aliases.c.alias)
        ).all():
            alias_map[vid].append(alias)
        for vid, tag in conn.execute(
            sa.select(tags.c.version_id, tags.c.tag)
            .where(tags.c.version_id.in_(self._members(ordered, sa.Integer())))
            .order_by(tags.c.tag)
        ).all():
            tag_map[vid].append(tag)
        for vid, run_id in conn.execute(
            sa.select(edges.c.version_id, edges.c.run_id)
            .where(edges.c.version_id.in_(self._members(ordered, sa.Integer())), edges.c.direction == "produced")
            .order_by(edges.c.created_at, edges.c.run_id)
        ).all():
            producer_map[vid].append(run_id)
        any_purged = conn.execute(
            sa.select(entries.c.version_id)
            .where(entries.c.purge_id.is_not(None), entries.c.version_id.in_(self._members(ordered, sa.Integer())))
            .limit(1)
        ).first()
        purge_map = purge_info(conn, ordered) if any_purged is not None else {}
        found = []
        for vid in ordered:
            (
                _,
                label,
                digest,
                metadata,
                description,
                size,
                n_entries,
                created_at,
                produced_by,
                deleted_at,
                name,
                kind,
            ) = rows[vid]
            aliases_here = alias_map[vid]
            if LATEST in aliases_here:  # latest first, the rest alphabetical
                aliases_here = [LATEST] + [a for a in aliases_here if a != LATEST]
            found.append(
                {
                    "name": name,
                    "type": kind,
                    "label": label_of(label),
                    "digest": digest,
                    "aliases": aliases_here,
                    "tags": tag_map[vid],
                    "entries": [],
                    "metadata": loads_json(metadata),
                    "description": description,
                    "size": size,
                    "files": n_entries,
                    "created_at": created_at,
                    "produced_by": produced_by,
                    "producers": producer_map[vid],
                    "deleted": deleted_at is not None,
                    "purged": purge_map[vid][0] if vid in purge_map else [],
                    "purges": purge_map[vid][1] if vid in purge_map else [],
                }
            )
        return _VERSION_LIST.validate_python(found), {vid: (rows[vid][10], rows[vid][1]) for vid in ordered}

    def _names(self, conn: sa.Connection, ids: set[int]) -> dict[int, tuple[str, int]]:
        """(artifact name, label) of versions outside the graph, by id: what its runs used or
        produced besides, and an output's declared inputs."""
        if not ids:
            return {}
        return {
            vid: (name, label)
            for vid, name, label in conn.execute(
                sa.select(versions.c.id, artifacts.c.name, versions.c.label)
                .join(artifacts, artifacts.c.id == versions.c.artifact_id)
                .where(versions.c.id.in_(self._members(sorted(ids), sa.Integer())))
            ).all()
        }

    def lineage_path(self, source: Ref, target: Ref) -> LineageGraph:
        with self._read() as conn:
            src = self._resolve(conn, source)
            dst = self._resolve(conn, target)
            on_path = self.closure(conn, src, "downstream", None) & self.closure(conn, dst, "upstream", None)
            if not on_path:
                return LineageGraph(direction="path")
            graph = self._graph(conn, [src], on_path, "path", None)
        graph.direction = "path"
        return graph

    def runs_using(self, name: str, limit: int | None = None, offset: int = 0) -> list[Run]:
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput("limit and offset must be 0 or more")
        with self._read() as conn:
            artifact_id = self._artifact_id(conn, name)
            if artifact_id is None:
                raise NotFound(f"no artifact named {name!r}")
            used_by = (
                sa.select(edges.c.run_id)
                .join(versions, versions.c.id == edges.c.version_id)
                .where(versions.c.artifact_id == artifact_id, edges.c.direction == "used")
            )
            chosen: sa.ColumnElement[bool] = runs.c.id.in_(used_by)
            if limit is not None and self._many_users(conn, used_by):
                # A page of a widely used artifact: newest runs first along ix_runs_created, each
                # asked whether it used the artifact (its edges' primary key), until the page is
                # full; not every user read and sorted (SQLite would, whatever the numbers).
                chosen = sa.exists(used_by.where(edges.c.run_id == runs.c.id))
            query = sa.select(runs).where(chosen).order_by(runs.c.created_at.desc(), runs.c.id.desc())
            if limit is not None:
                query = query.limit(limit)
            if offset:
                query = query.offset(offset)
            return self._runs(conn, query)

    def _many_users(self, conn: sa.Connection, used_by: sa.Select[Any]) -> bool:
        """Whether an artifact has more uses than a page is worth sorting (counted up to that
        many only): fewer are all read and sorted, more are walked newest first."""
        counted = sa.select(sa.func.count()).select_from(used_by.limit(_SORTED_AT_MOST).subquery())
        return (conn.execute(counted).scalar() or 0) >= _SORTED_AT_MOST


class _Walk:
    """The walk over a graph's loaded edges: hop counts, the runs it passes, and which edges the
    graphs of single roots would hold where several roots are walked at once."""

    def __init__(
        self,
        direction: LineageDirection | str,
        runs_of: dict[int, list[str]],
        reaches: dict[str, list[int]],
        made_from: dict[tuple[str, int], set[int]],
    ) -> None:
        self.direction = direction
        self.runs_of = runs_of
        self.reaches = reaches
        self.made_from = made_from
        self._reached: dict[int, set[int]] = {}
        self._inputs_of: dict[str, list[int]] | None = None

    def _steps(self, vid: int) -> list[tuple[str, int | None]]:
        """(run, version one step on) from `vid`; (run, None) for a run that reaches nothing."""
        found: list[tuple[str, int | None]] = []
        for run_id in self.runs_of.get(vid, ()):
            onward = self.reaches.get(run_id, ())
            if not onward:
                if self.direction != "path":
                    found.append((run_id, None))
                continue
            found.append((run_id, None))
            for nxt in onward:
                output, source = (vid, nxt) if self.direction == "upstream" else (nxt, vid)
                declared = self.made_from.get((run_id, output))
                if declared is not None and source not in declared:
                    continue  # the run says this output was made from other inputs
                found.append((run_id, nxt))
        return found

    def depths(self, roots: Sequence[int], depth: int | None) -> tuple[dict[int, int], set[str]]:
        depths = dict.fromkeys(roots, 0)
        kept_runs: set[str] = set()
        frontier = list(roots)
        while frontier:
            following = []
            for vid in frontier:
                if depth is not None and depths[vid] >= depth:
                    continue
                for run_id, nxt in self._steps(vid):
                    kept_runs.add(run_id)
                    if nxt is not None and nxt not in depths:
                        depths[nxt] = depths[vid] + 1
                        following.append(nxt)
            frontier = following
        return depths, kept_runs

    def merged_has(self, roots: Sequence[int], walked: dict[int, int], row: Any) -> bool:
        """Whether the graphs of each root alone, merged, hold this edge of a kept run to a
        version in the walk. Only an output whose run declared its inputs, none of them used from
        within the walk, can differ: it was reached some other way, and its run through another
        input. Such an edge is in the merge only if one root reaches both it and an input of
        that run."""
        run_id, version_id, edge_direction = row[0], row[1], row[2]
        if len(roots) == 1 or self.direction != "downstream" or edge_direction != "produced":
            return True
        declared = self.made_from.get((run_id, version_id))
        if declared is None or any(i in walked and run_id in self.runs_of.get(i, ()) for i in declared):
            return True
        if self._inputs_of is None:  # run -> the versions it steps on from, built once
            self._inputs_of = defaultdict(list)
            for vid, stepped in self.runs_of.items():
                for stepping_run in stepped:
                    self._inputs_of[stepping_run].append(vid)
        inputs = self._inputs_of.get(run_id, ())
        for root in roots:
            reached = self._reach(root)
            if version_id in reached and any(i in reached for i in inputs):
                return True
        return False

    def _reach(self, root: int) -> set[int]:
        if root not in self._reached:
            self._reached[root] = set(self.depths([root], None)[0])
        return self._reached[root]
