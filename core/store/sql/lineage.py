"""The SQL store's lineage: the versions reachable from one, walked in SQL (a recursive CTE),
the graph of versions and runs joining them, the path between two, and the runs using an artifact."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from headwater.errors import InvalidInput, NotFound
from headwater.models import Edge, LineageGraph, Run
from headwater.refs import Ref
from headwater.store.base import LineageDirection
from headwater.store.schema import edges, output_inputs, runs, versions
from headwater.store.sql.engine import _chunks
from headwater.store.sql.reads import SQLReads


class SQLLineage(SQLReads):
    """Lineage queries, on top of the reads they assemble their graphs from."""

    def lineage(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> LineageGraph:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        with self._read() as conn:
            root = self._resolve(conn, ref)
            graph = self._graph(conn, root, self.closure(conn, root, direction, depth), direction, depth)
        graph.direction = direction
        return graph

    def closure(self, conn: sa.Connection, root: int, direction: LineageDirection, depth: int | None) -> set[int]:
        """Ids of the versions reachable from `root` within `depth` runs, walked in SQL.

        Unbounded walks recurse on the version id alone so UNION stops at cycles; bounded ones
        carry a depth (which defeats UNION's dedup) and stop at `depth`. A step from an input to an
        output of a run (or back) is taken only when the run says that input made that output, or
        says nothing of which inputs made it (output_inputs).
        """
        step_in, step_out = ("used", "produced") if direction == "downstream" else ("produced", "used")
        made, source = ("nxt", "cur") if direction == "downstream" else ("cur", "nxt")
        declared = f"""
            (NOT EXISTS (SELECT 1 FROM output_inputs f
                         WHERE f.run_id = cur.run_id AND f.output_id = {made}.version_id)
             OR EXISTS (SELECT 1 FROM output_inputs f
                        WHERE f.run_id = cur.run_id AND f.output_id = {made}.version_id
                          AND f.input_id = {source}.version_id))
        """
        if depth is None:
            sql = sa.text(
                f"""
                WITH RECURSIVE walk(vid) AS (
                    SELECT CAST(:root AS INTEGER)
                    UNION
                    SELECT nxt.version_id FROM walk
                    JOIN edges cur ON cur.version_id = walk.vid AND cur.direction = '{step_in}'
                    JOIN edges nxt ON nxt.run_id = cur.run_id AND nxt.direction = '{step_out}'
                    WHERE {declared}
                )
                SELECT vid FROM walk
                """
            )
            return {row[0] for row in conn.execute(sql, {"root": root})}
        sql = sa.text(
            f"""
            WITH RECURSIVE walk(vid, depth) AS (
                SELECT CAST(:root AS INTEGER), CAST(0 AS INTEGER)
                UNION
                SELECT nxt.version_id, walk.depth + 1 FROM walk
                JOIN edges cur ON cur.version_id = walk.vid AND cur.direction = '{step_in}'
                JOIN edges nxt ON nxt.run_id = cur.run_id AND nxt.direction = '{step_out}'
                WHERE walk.depth < :depth AND {declared}
            )
            SELECT DISTINCT vid FROM walk
            """
        )
        return {row[0] for row in conn.execute(sql, {"root": root, "depth": depth})}

    def _graph(
        self,
        conn: sa.Connection,
        root: int,
        ids: set[int],
        direction: LineageDirection | str,
        depth: int | None,
    ) -> LineageGraph:
        """The versions `ids` (reachable from `root`), the runs joining them, and hop counts.

        Depths come from a walk over the edges loaded here anyway, so the closure query does not
        have to carry them. A path graph keeps only runs that both use and produce in `ids`.
        """
        step_in = "produced" if direction == "upstream" else "used"
        run_ids: set[str] = set()
        for chunk in _chunks(sorted(ids)):
            run_ids.update(
                conn.execute(
                    sa.select(edges.c.run_id).where(edges.c.version_id.in_(chunk), edges.c.direction == step_in)
                ).scalars()
            )
        edge_rows = []
        runs_of: dict[int, list[str]] = defaultdict(list)  # version -> runs one step on
        reaches: dict[str, list[int]] = defaultdict(list)  # run -> versions one step on
        made_from: dict[tuple[str, int], set[int]] = defaultdict(set)  # (run, output) -> its declared inputs
        for chunk in _chunks(sorted(run_ids)):
            for row in conn.execute(sa.select(output_inputs).where(output_inputs.c.run_id.in_(chunk))):
                made_from[(row.run_id, row.output_id)].add(row.input_id)
            for row in conn.execute(sa.select(edges).where(edges.c.run_id.in_(chunk))):
                if row.version_id in ids:
                    edge_rows.append(row)
                    if row.direction == step_in:
                        runs_of[row.version_id].append(row.run_id)
                    else:
                        reaches[row.run_id].append(row.version_id)
        depths, kept_runs = {root: 0}, set()
        frontier = [root]
        while frontier:
            following = []
            for vid in frontier:
                if depth is not None and depths[vid] >= depth:
                    continue
                for run_id in runs_of.get(vid, ()):
                    if direction == "path" and not reaches.get(run_id):
                        continue
                    kept_runs.add(run_id)
                    for nxt in reaches.get(run_id, ()):
                        output, source = (vid, nxt) if direction == "upstream" else (nxt, vid)
                        if (run_id, output) in made_from and source not in made_from[(run_id, output)]:
                            continue  # the run says this output was made from other inputs
                        if nxt not in depths:
                            depths[nxt] = depths[vid] + 1
                            following.append(nxt)
            frontier = following
        ordered = sorted(depths, key=lambda v: (depths[v], v))
        version_models = self._versions(conn, ordered, with_entries=False)
        ref_of = {vid: v.ref for vid, v in zip(ordered, version_models, strict=True)}
        outside = sorted(
            {i for (run_id, _), found in made_from.items() if run_id in kept_runs for i in found} - set(ref_of)
        )
        ref_of.update(
            {vid: v.ref for vid, v in zip(outside, self._versions(conn, outside, with_entries=False), strict=True)}
        )
        kept_edges = sorted(
            (r for r in edge_rows if r.run_id in kept_runs and r.version_id in depths),
            key=lambda r: (r.run_id, r.direction, r.version_id),
        )
        return LineageGraph(
            root=ref_of[root],
            versions=version_models,
            runs=self._runs_by_id(conn, sorted(kept_runs)),
            edges=[
                Edge(
                    run_id=row.run_id,
                    version=ref_of[row.version_id],
                    direction=row.direction,
                    exact=row.exact,
                    created_at=row.created_at,
                    metadata=row.metadata or {},
                    inputs=sorted(ref_of[i] for i in made_from.get((row.run_id, row.version_id), ()))
                    if row.direction == "produced"
                    else [],
                )
                for row in kept_edges
            ],
            depth={ref_of[vid]: depths[vid] for vid in ordered},
        )

    def lineage_path(self, source: Ref, target: Ref) -> LineageGraph:
        with self._read() as conn:
            src = self._resolve(conn, source)
            dst = self._resolve(conn, target)
            on_path = self.closure(conn, src, "downstream", None) & self.closure(conn, dst, "upstream", None)
            if not on_path:
                return LineageGraph(direction="path")
            graph = self._graph(conn, src, on_path, "path", None)
        graph.direction = "path"
        return graph

    def runs_using(self, name: str) -> list[Run]:
        with self._read() as conn:
            artifact_id = self._artifact_id(conn, name)
            if artifact_id is None:
                raise NotFound(f"no artifact named {name!r}")
            used_by = (
                sa.select(edges.c.run_id)
                .join(versions, versions.c.id == edges.c.version_id)
                .where(versions.c.artifact_id == artifact_id, edges.c.direction == "used")
            )
            return self._runs(
                conn,
                sa.select(runs).where(runs.c.id.in_(used_by)).order_by(runs.c.created_at.desc(), runs.c.id.desc()),
            )
