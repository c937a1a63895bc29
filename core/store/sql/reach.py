"""The SQL store's reachable refs: what a lineage walk reaches, as refs with their hops and run
ids, without the graph's models (a closure of a hundred thousand versions answers in about a
second where its graph takes tens)."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from headwater.errors import InvalidInput
from headwater.models import Reachable
from headwater.refs import Ref
from headwater.store.base import LineageDirection
from headwater.store.schema import artifacts, edges, output_inputs, versions
from headwater.store.sql.lineage import SQLLineage, _Walk
from headwater.store.sql.purge import label_of


class SQLReach(SQLLineage):
    """Store.reachable: the closure walked in SQL (SQLLineage.closure), hops counted over the
    edges it steps through, and the versions' refs read in one statement."""

    def reachable(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> Reachable:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        with self._read() as conn:
            root = self._resolve(conn, ref)
            ids = self.closure(conn, root, direction, depth)
            hops, runs_walked = self._hops(conn, root, ids, direction, depth)
            ordered = self._refs(conn, hops)
        return Reachable(
            root=ordered[0][0],
            direction=direction,
            versions={ref_: hops[vid] for ref_, vid in ordered},
            runs=sorted(runs_walked),
        )

    def _hops(
        self, conn: sa.Connection, root: int, ids: set[int], direction: LineageDirection, depth: int | None
    ) -> tuple[dict[int, int], set[str]]:
        """Hops of each version of the closure `ids` and the runs walked through, by the very
        walk SQLLineage._graph takes (_Walk), over the edges of the runs that step on from `ids`:
        their ids, versions and directions only, not the rest of each edge."""
        step_in = "produced" if direction == "upstream" else "used"
        members = self._members(sorted(ids), sa.Integer())
        stepping = sa.select(edges.c.run_id).where(edges.c.direction == step_in, edges.c.version_id.in_(members))
        made_from: dict[tuple[str, int], set[int]] = defaultdict(set)
        for run_id, output_id, input_id in conn.execute(
            sa.select(output_inputs.c.run_id, output_inputs.c.output_id, output_inputs.c.input_id).where(
                output_inputs.c.run_id.in_(stepping)
            )
        ):
            made_from[(run_id, output_id)].add(input_id)
        runs_of: dict[int, list[str]] = defaultdict(list)  # version -> runs one step on
        reaches: dict[str, list[int]] = defaultdict(list)  # run -> versions one step on
        for run_id, version_id, edge_direction in conn.execute(
            sa.select(edges.c.run_id, edges.c.version_id, edges.c.direction).where(
                edges.c.run_id.in_(stepping), edges.c.version_id.in_(members)
            )
        ):
            if edge_direction == step_in:
                runs_of[version_id].append(run_id)
            else:
                reaches[run_id].append(version_id)
        return _Walk(direction, runs_of, reaches, made_from).depths([root], depth)

    def _refs(self, conn: sa.Connection, hops: dict[int, int]) -> list[tuple[str, int]]:
        """(ref, id) of each version, by hops, then artifact name, then label."""
        rows = conn.execute(
            sa.select(versions.c.id, artifacts.c.name, versions.c.label)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id.in_(self._members(sorted(hops), sa.Integer())))
        )
        ordered = sorted(rows, key=lambda row: (hops[row[0]], row[1], row[2]))
        return [(f"{name}:{label_of(label)}", vid) for vid, name, label in ordered]
