"""The SQL store's reachable refs: what a lineage walk reaches, as refs with their hops and the
ids of the runs it passes, without the graph's models (a closure of a hundred thousand versions
answers in about the time of its walk, where its graph takes tens of seconds)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from headwater.errors import InvalidInput
from headwater.models import Reachable
from headwater.refs import Ref
from headwater.store.base import LineageDirection
from headwater.store.sql.lineage import SQLLineage
from headwater.store.sql.purge import label_of

# A wide frontier is walked one level a statement (each version once: the walk's whole cost is
# its index lookups). A narrow one, in an unbounded walk, is first walked to its end in one
# statement, given up past _AT_ONCE_ROWS rows: a long chain of versions is then one statement,
# not one per version, and a narrow start that widens costs one such attempt.
_NARROW = 64
_AT_ONCE_ROWS = 10_000

Steps = dict[int, list[tuple[str, int | None]]]  # version -> (run, version one step on or None)


class SQLReach(SQLLineage):
    """Store.reachable: the walk breadth first, in rounds of one statement each, counting hops
    as it goes; then the reached versions' refs in one statement."""

    def reachable(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> Reachable:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        with self._read() as conn:
            root = self._resolve(conn, ref)
            hops, runs = self._walk_hops(conn, root, direction, depth)
            named = conn.execute(_names_statement(self.dialect), {"seeds": self._ids(hops)}).all()
        # by hops, then name, then label: tuples sorted as they are, no key function; built
        # without validation (every field is made here, of the types it declares)
        ordered = sorted((hops[vid], name, label) for vid, name, label in named)
        return Reachable.model_construct(
            root=_ref(*ordered[0][1:]),  # the only version 0 hops away
            direction=direction,
            versions={_ref(name, label): hop for hop, name, label in ordered},
            runs=dict(sorted(runs.items(), key=lambda item: (item[1], item[0]))),
        )

    def _ids(self, ids: Iterable[int]) -> str:
        """Version ids bound as one parameter: a PostgreSQL array literal, a JSON array for
        SQLite (both formatted in C; a list bound as an array is formatted in Python)."""
        text = ",".join(map(str, sorted(ids)))
        return f"{{{text}}}" if self.dialect == "postgresql" else f"[{text}]"

    def _walk_hops(
        self, conn: sa.Connection, root: int, direction: LineageDirection, depth: int | None
    ) -> tuple[dict[int, int], dict[str, int]]:
        """Hops from `root` (the fewest runs away) and the runs passed with theirs, as
        SQLLineage's _Walk counts them: every run stepping on from a version fewer than `depth`
        hops away, whether it reaches a version or not. Breadth first, a level at a time; the steps of a level's
        versions are read when it is reached, unless a walk to the end read them already."""
        hops = {root: 0}
        runs: dict[str, int] = {}  # run -> the hop it makes: one more than the version it steps from
        steps: Steps = {}  # read ahead by a walk to the end, kept until walked from
        at_once = depth is None
        frontier = [root]
        while frontier and (depth is None or hops[frontier[0]] < depth):
            level = hops[frontier[0]]
            if at_once and len(frontier) <= _NARROW and any(vid not in steps for vid in frontier):
                ahead = self._to_the_end(conn, [vid for vid in frontier if vid not in steps], direction)
                at_once = ahead is not None
                for vid, found in (ahead or {}).items():
                    if hops.get(vid, level) >= level:  # not walked from yet (the walk may come back)
                        steps.setdefault(vid, found)
            pairs: list[tuple[str, int | None]] = []  # (run, version one step on or None)
            unread = []
            for vid in frontier:
                if vid in steps:
                    pairs += steps.pop(vid)
                else:
                    unread.append(vid)
            if unread:
                pairs += conn.execute(_level_statement(self.dialect, direction), {"seeds": self._ids(unread)}).all()
            following = []
            for run_id, nxt in pairs:  # from versions all `level` hops away
                runs.setdefault(run_id, level + 1)
                if nxt is not None and nxt not in hops:
                    hops[nxt] = level + 1
                    following.append(nxt)
            frontier = following
        return hops, runs

    def _to_the_end(self, conn: sa.Connection, seeds: list[int], direction: LineageDirection) -> Steps | None:
        """The steps from `seeds` and every version they reach (an empty list for one with
        none), or None past _AT_ONCE_ROWS rows."""
        rows = conn.execute(
            _to_the_end_statement(self.dialect, direction), {"seeds": self._ids(seeds), "rows": _AT_ONCE_ROWS}
        ).all()
        if len(rows) >= _AT_ONCE_ROWS:
            return None
        found: Steps = {vid: [] for vid in seeds}
        for src, run_id, vid in rows:
            if run_id is None:
                found.setdefault(vid, [])
            else:
                found.setdefault(src, []).append((run_id, vid))
        return found


def _ref(name: str, label: int) -> str:
    return f"{name}:{label_of(label)}"


def _seeds(dialect: str) -> str:
    if dialect == "postgresql":
        return "SELECT unnest(CAST(:seeds AS INTEGER[]))"
    return "SELECT CAST(value AS INTEGER) FROM json_each(:seeds)"


def _step(direction: LineageDirection, source: str) -> str:
    """The joins of one step from the versions `source`.vid, as SQLLineage.closure takes them
    (the same declared-inputs rule): `cur` the edge to a run, `nxt` its edge on, NULL when the
    run reaches nothing from there (it wrote nothing, or nothing from that input)."""
    step_in, step_out = ("used", "produced") if direction == "downstream" else ("produced", "used")
    made, input_ = ("nxt", "cur") if direction == "downstream" else ("cur", "nxt")
    return f"""
        JOIN edges cur ON cur.version_id = {source}.vid AND cur.direction = '{step_in}'
        LEFT JOIN edges nxt ON nxt.run_id = cur.run_id AND nxt.direction = '{step_out}'
            AND (NOT EXISTS (SELECT 1 FROM output_inputs f
                             WHERE f.run_id = cur.run_id AND f.output_id = {made}.version_id)
                 OR EXISTS (SELECT 1 FROM output_inputs f
                            WHERE f.run_id = cur.run_id AND f.output_id = {made}.version_id
                              AND f.input_id = {input_}.version_id))
    """


def _names_statement(dialect: str) -> sa.TextClause:
    """(id, artifact name, label) of the versions :seeds. On PostgreSQL `= ANY` of the array:
    a hashed filter over a scan of the table for a large closure (a quarter faster at 100,000
    of 1,000,000 than a join with the unnested array), the primary key for a few."""
    where = (
        "versions.id = ANY(CAST(:seeds AS INTEGER[]))"
        if dialect == "postgresql"
        else "versions.id IN (SELECT CAST(value AS INTEGER) FROM json_each(:seeds))"
    )
    return sa.text(
        f"""
        SELECT versions.id, artifacts.name, versions.label
        FROM versions JOIN artifacts ON artifacts.id = versions.artifact_id
        WHERE {where}
        """
    )


def _level_statement(dialect: str, direction: LineageDirection) -> sa.TextClause:
    """Every step from the versions :seeds: (run, version one step on or NULL)."""
    return sa.text(
        f"""
        WITH seeds(vid) AS ({_seeds(dialect)})
        SELECT cur.run_id, nxt.version_id FROM seeds {_step(direction, "seeds")}
        """
    )


def _to_the_end_statement(dialect: str, direction: LineageDirection) -> sa.TextClause:
    """Every step from the versions :seeds and all they reach, at most :rows rows: the walk of
    SQLLineage.closure (UNION keeps each version once), each join row coming out twice, as a
    version reached (run NULL: walked on) and as a step (from, run, to; not walked on)."""
    return sa.text(
        f"""
        WITH RECURSIVE seeds(vid) AS ({_seeds(dialect)}),
        walk(src, run_id, vid) AS (
            SELECT CAST(NULL AS INTEGER), CAST(NULL AS VARCHAR), vid FROM seeds
            UNION
            SELECT CASE WHEN k.step = 1 THEN walk.vid END, CASE WHEN k.step = 1 THEN cur.run_id END, nxt.version_id
            FROM walk {_step(direction, "walk")}
            CROSS JOIN (SELECT 1 AS step UNION ALL SELECT 0) k
            WHERE walk.run_id IS NULL
        )
        SELECT src, run_id, vid FROM walk WHERE run_id IS NOT NULL OR vid IS NOT NULL
        LIMIT :rows
        """
    )
