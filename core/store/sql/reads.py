"""The SQL store's reads: resolving a ref to a version, and artifacts, versions, runs,
aliases and the blobs versions hold."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter

from headwater.errors import InvalidInput, InvalidRef, NotFound
from headwater.models import AliasMove, Artifact, ManifestEntry, Run, Version
from headwater.refs import LATEST, Ref
from headwater.store.base import ArtifactOrder
from headwater.store.schema import (
    JSON,
    RunId,
    UTCDateTime,
    alias_moves,
    aliases,
    artifacts,
    edges,
    entries,
    runs,
    tags,
    versions,
)
from headwater.store.sql.engine import SQLEngine, _chunks
from headwater.store.sql.purge import label_of as _label
from headwater.store.sql.purge import purge_info

tags_t = tags  # list_versions has a parameter named `tags`

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LABEL_MAX = 2**31 - 1  # versions.label is a 32-bit integer on PostgreSQL
_PINNED_MAX = 10_000  # version ids of labels and digests remembered per store


def _whole_digest(digest: str | None) -> bool:
    """A digest given whole (not a prefix): `blake3:` and its 64 hex digits."""
    return digest is not None and digest.startswith("blake3:") and len(digest) == 71


def _labels_query(single: bool) -> sa.CompoundSelect[Any]:
    """(version_id, kind, value) rows: aliases ("a") by name, tags ("t") by name, producers
    ("p") by when their edge was recorded; of `:vid` (single) or `:ids`."""
    null_time = sa.null().cast(edges.c.created_at.type)
    return sa.union_all(
        sa.select(
            aliases.c.version_id,
            sa.literal_column("'a'").label("kind"),
            aliases.c.alias.label("value"),
            null_time.label("at"),
        ).where(_by_ids(aliases.c.version_id, single)),
        sa.select(tags.c.version_id, sa.literal_column("'t'"), tags.c.tag, null_time).where(
            _by_ids(tags.c.version_id, single)
        ),
        sa.select(edges.c.version_id, sa.literal_column("'p'"), edges.c.run_id, edges.c.created_at).where(
            _by_ids(edges.c.version_id, single), edges.c.direction == "produced"
        ),
    ).order_by(sa.literal_column("kind"), sa.literal_column("at"), sa.literal_column("value"))


def _by_ids(column: sa.ColumnElement[Any], single: bool) -> sa.ColumnElement[bool]:
    """`column = :vid` for one id (no IN list to expand each time), else `column IN :ids`."""
    return column == sa.bindparam("vid") if single else column.in_(sa.bindparam("ids", expanding=True))


# The statements of _versions and _entries, built once (building one costs more than running
# it), for one version (get_version) and for many.
_Q_VERSION_ROWS = {
    single: sa.select(versions, artifacts.c.name, artifacts.c.type)
    .join(artifacts, artifacts.c.id == versions.c.artifact_id)
    .where(_by_ids(versions.c.id, single))
    for single in (True, False)
}
_Q_ENTRIES = {single: sa.select(entries).where(_by_ids(entries.c.version_id, single)) for single in (True, False)}
_Q_LABELS = {single: _labels_query(single) for single in (True, False)}
_Q_BY_LABEL = (
    sa.select(versions.c.id)
    .join(artifacts, artifacts.c.id == versions.c.artifact_id)
    .where(artifacts.c.name == sa.bindparam("name"), versions.c.label == sa.bindparam("label"))
)
_Q_BY_ALIAS = (
    sa.select(aliases.c.version_id)
    .join(artifacts, artifacts.c.id == aliases.c.artifact_id)
    .where(artifacts.c.name == sa.bindparam("name"), aliases.c.alias == sa.bindparam("alias"))
)


def _ids_params(chunk: Sequence[int]) -> dict[str, Any]:
    return {"vid": chunk[0]} if len(chunk) == 1 else {"ids": list(chunk)}


_gc_lock = threading.Lock()
_gc_holders = 0  # builds under way with the collector paused, in every thread
_gc_resume = False  # whether the collector ran before the first of them paused it
_gc_paused_at = 0.0  # when the collector last ran, or was paused (time.monotonic)
_GC_PAUSE_MAX_S = 1.0  # longest the collector stays off while builds in several threads overlap


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic collector off while many models are built (a lineage graph, a long list of
    runs): they are hundreds of thousands of new containers, and the full collections they
    trigger scan the whole heap again and again (half the time of a 20,000-version graph).
    Nothing built here is garbage; the collector resumes (if it ran before) once the last such
    build in any thread is done. A server whose reads overlap without end would never get
    there: a build ending more than a second after the collector last ran runs it then."""
    global _gc_holders, _gc_resume, _gc_paused_at
    with _gc_lock:
        if _gc_holders == 0:
            _gc_resume = gc.isenabled()
            _gc_paused_at = time.monotonic()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        collect = False
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_resume:
                gc.enable()
            elif _gc_resume and time.monotonic() - _gc_paused_at > _GC_PAUSE_MAX_S:
                _gc_paused_at = time.monotonic()
                collect = True
        if collect:
            gc.collect()


class SQLReads(SQLEngine):
    """Resolving refs, and every read but lineage (SQLLineage)."""

    _q_artifact_id: sa.Select[Any]  # prebuilt with the write path's statements (SQLWrites._prepare)

    # -- resolving ---------------------------------------------------------------------------

    def _artifact_id(self, conn: sa.Connection, name: str) -> int | None:
        return conn.execute(self._q_artifact_id, {"name": name}).scalar()

    def _resolve(self, conn: sa.Connection, ref: Ref, at: datetime | None = None) -> int:
        # One query joined through the artifact's name; which part is missing is asked only
        # when nothing is found, for the error's message.
        if ref.label is not None:
            digits = ref.label[1:]
            number = int(digits) if len(digits) <= len(str(_LABEL_MAX)) else _LABEL_MAX + 1
            labelled: int | None = (
                None if number > _LABEL_MAX else conn.execute(_Q_BY_LABEL, {"name": ref.name, "label": number}).scalar()
            )
            if labelled is None:
                self._must_exist(conn, ref.name)
                raise NotFound(f"artifact {ref.name!r} has no version {ref.label}")
            return labelled
        if ref.digest is not None:
            prefix = ref.digest if ":" in ref.digest else f"blake3:{ref.digest}"
            found_ids: list[int] = list(
                conn.execute(
                    sa.select(versions.c.id)
                    .join(artifacts, artifacts.c.id == versions.c.artifact_id)
                    .where(artifacts.c.name == ref.name, versions.c.digest.startswith(prefix, autoescape=True))
                    .limit(2)
                )
                .scalars()
                .all()
            )
            if not found_ids:
                self._must_exist(conn, ref.name)
                raise NotFound(f"artifact {ref.name!r} has no version with digest {ref.digest}")
            if len(found_ids) > 1:
                raise InvalidRef(f"digest prefix {ref.digest} of {ref.name!r} is ambiguous: give more characters")
            return found_ids[0]
        alias = ref.alias or LATEST
        if at is None:
            found = conn.execute(_Q_BY_ALIAS, {"name": ref.name, "alias": alias}).first()
        else:
            found = conn.execute(
                sa.select(alias_moves.c.version_id)
                .join(artifacts, artifacts.c.id == alias_moves.c.artifact_id)
                .where(artifacts.c.name == ref.name, alias_moves.c.alias == alias, alias_moves.c.at <= at)
                .order_by(alias_moves.c.at.desc(), alias_moves.c.id.desc())
                .limit(1)
            ).first()
        if found is None or found.version_id is None:
            self._must_exist(conn, ref.name)
            when = f" at {at.isoformat()}" if at is not None else ""
            raise NotFound(f"artifact {ref.name!r} has no alias {alias!r}{when}")
        aliased: int = found.version_id
        return aliased

    def _must_exist(self, conn: sa.Connection, name: str) -> None:
        if self._artifact_id(conn, name) is None:
            raise NotFound(f"no artifact named {name!r}")

    # -- reads -------------------------------------------------------------------------------

    def artifact_exists(self, name: str) -> bool:
        with self._read() as conn:
            return self._artifact_id(conn, name) is not None

    def get_artifact(self, name: str) -> Artifact:
        found = self.list_artifacts(exact_name=name)
        if not found:
            raise NotFound(f"no artifact named {name!r}")
        return found[0]

    def list_artifacts(
        self,
        type: str | None = None,
        limit: int | None = None,
        name_like: str | None = None,
        *,
        tag: str | None = None,
        order: ArtifactOrder = "name",
        offset: int = 0,
        exact_name: str | None = None,
    ) -> list[Artifact]:
        if order not in ("name", "updated"):
            raise InvalidInput(f"order must be 'name' or 'updated', not {order!r}")
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput("limit and offset must be 0 or more")
        # The label `latest` points to, looked up for the rows returned only (not joined over
        # every artifact's aliases): two index probes each.
        latest_label = (
            sa.select(versions.c.label)
            .join(aliases, aliases.c.version_id == versions.c.id)
            .where(aliases.c.artifact_id == artifacts.c.id, aliases.c.alias == LATEST)
            .scalar_subquery()
            .label("latest_label")
        )
        query = sa.select(artifacts, latest_label)
        if order == "updated":
            # An artifact without a live version counts as updated when it was created; the name
            # breaks ties, so pages never overlap.
            updated = sa.func.coalesce(artifacts.c.updated_at, artifacts.c.created_at)
            query = query.order_by(updated.desc(), artifacts.c.name)
        else:
            query = query.order_by(artifacts.c.name)
        if type is not None:
            query = query.where(artifacts.c.type == type)
        if name_like is not None:
            # Case-insensitive on both databases: ILIKE on PostgreSQL, which its trigram index
            # serves (migration 0005); lower() LIKE lower() on SQLite.
            pattern = "%" + name_like.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
            query = query.where(artifacts.c.name.ilike(pattern, escape="/"))
        if tag is not None:
            tagged = (
                sa.select(versions.c.artifact_id)
                .join(tags_t, tags_t.c.version_id == versions.c.id)
                .where(tags_t.c.tag == tag, versions.c.deleted_at.is_(None))
            )
            query = query.where(artifacts.c.id.in_(tagged))
        if exact_name is not None:
            query = query.where(artifacts.c.name == exact_name)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self._read() as conn:
            return [
                Artifact(
                    name=row.name,
                    type=row.type,
                    description=row.description,
                    created_at=row.created_at,
                    latest=None if row.latest_label is None else _label(row.latest_label),
                    versions=row.n_versions,
                    updated_at=row.updated_at if row.updated_at is not None else row.created_at,
                )
                for row in conn.execute(query)
            ]

    def get_version(self, ref: Ref, at: datetime | None = None) -> Version:
        # A label or a whole digest names one version row for good (rows are never removed nor
        # relabelled), so its id is looked up once per store; what the row holds (aliases,
        # tags, deletion, purges) is read every time. The row read is checked against the REF,
        # so a database emptied or restored underneath is never answered from a stale id.
        pinned = (ref.name, ref.label, ref.digest) if ref.label is not None or _whole_digest(ref.digest) else None
        with self._read() as conn:
            if pinned is not None and (remembered := self._pinned_ids.get(pinned)) is not None:
                found = self._versions(conn, [remembered], with_entries=True)
                same = found and found[0].name == ref.name
                if same and (found[0].label == ref.label if ref.label else found[0].digest == ref.digest):
                    return found[0]
                self._pinned_ids.pop(pinned, None)
            version_id = self._resolve(conn, ref, at=at)
            if pinned is not None:  # read committed, outside any write
                if len(self._pinned_ids) >= _PINNED_MAX:
                    self._pinned_ids.clear()
                self._pinned_ids[pinned] = version_id
            return self._versions(conn, [version_id], with_entries=True)[0]

    def list_versions(
        self,
        name: str,
        limit: int | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> list[Version]:
        with self._read() as conn:
            artifact_id = self._artifact_id(conn, name)
            if artifact_id is None:
                raise NotFound(f"no artifact named {name!r}")
            query = sa.select(versions.c.id).where(versions.c.artifact_id == artifact_id)
            if not include_deleted:
                query = query.where(versions.c.deleted_at.is_(None))
            for tag in tags:
                query = query.where(sa.exists().where(tags_t.c.version_id == versions.c.id, tags_t.c.tag == tag))
            for key, value in (metadata or {}).items():
                query = query.where(_json_equals(versions.c.metadata, _filter_key(key), value))
            query = query.order_by(versions.c.label)
            if limit is not None:
                query = query.limit(limit)
            ids = list(conn.execute(query).scalars())
            return self._versions(conn, ids, with_entries=False)

    def _entries(self, conn: sa.Connection, version_ids: Sequence[int]) -> dict[int, list[ManifestEntry]]:
        return self._entries_purged(conn, version_ids)[0]

    def _entries_purged(
        self, conn: sa.Connection, version_ids: Sequence[int]
    ) -> tuple[dict[int, list[ManifestEntry]], bool]:
        """The versions' entries, and whether any of them is purged."""
        found: dict[int, list[ManifestEntry]] = {vid: [] for vid in version_ids}
        purged = False
        for chunk in _chunks(version_ids):
            for row in conn.execute(_Q_ENTRIES[len(chunk) == 1], _ids_params(chunk)):
                found[row.version_id].append(
                    ManifestEntry(path=row.path, digest=row.digest, size=row.size, ref=row.ref)
                )
                purged = purged or row.purge_id is not None
        for listed in found.values():
            listed.sort(key=lambda e: e.path)  # code-point order, whatever the collation
        return found, purged

    def _versions(self, conn: sa.Connection, version_ids: Sequence[int], *, with_entries: bool) -> list[Version]:
        """Versions in the order of `version_ids`, with aliases, tags and producers."""
        rows: dict[int, Any] = {}
        alias_map: dict[int, list[str]] = defaultdict(list)
        tag_map: dict[int, list[str]] = defaultdict(list)
        producer_map: dict[int, list[str]] = defaultdict(list)
        by_kind = {"a": alias_map, "t": tag_map, "p": producer_map}
        for chunk in _chunks(list(version_ids)):
            params = _ids_params(chunk)
            for row in conn.execute(_Q_VERSION_ROWS[len(chunk) == 1], params):
                rows[row.id] = row
            # Aliases, tags and producers in one round trip, each in its own order.
            for row in conn.execute(_Q_LABELS[len(chunk) == 1], params):
                by_kind[row.kind][row.version_id].append(row.value)
        entry_map, purged = self._entries_purged(conn, list(version_ids)) if with_entries else ({}, True)
        # Entries read: a version none of whose entries is purged has no purges to look up.
        purge_map = purge_info(conn, list(version_ids)) if purged else {}
        result = []
        for vid in version_ids:
            if vid not in rows:
                continue  # gone since its id was read (get_version's remembered ids)
            row = rows[vid]
            aliases_here = alias_map[vid]
            if LATEST in aliases_here:  # latest first, the rest alphabetical
                aliases_here = [LATEST] + [a for a in aliases_here if a != LATEST]
            result.append(
                Version(
                    name=row.name,
                    type=row.type,
                    label=_label(row.label),
                    digest=row.digest,
                    aliases=aliases_here,
                    tags=tag_map[vid],
                    entries=entry_map.get(vid, []),
                    metadata=row.metadata or {},
                    description=row.description,
                    size=row.size,
                    files=row.n_entries,
                    created_at=row.created_at,
                    produced_by=row.produced_by,
                    producers=producer_map[vid],
                    deleted=row.deleted_at is not None,
                    purged=purge_map[vid][0] if vid in purge_map else [],
                    purges=purge_map[vid][1] if vid in purge_map else [],
                )
            )
        return result

    def get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            found = self._runs(conn, sa.select(runs).where(runs.c.id == run_id))
        if not found:
            raise NotFound(f"no run with id {run_id!r}")
        return found[0]

    def list_runs(
        self,
        job: str | None = None,
        orchestrator: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.id.desc())
        for column, value in (
            (runs.c.job, job),
            (runs.c.orchestrator, orchestrator),
            (runs.c.status, status),
            (runs.c.parent_id, parent_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return self._runs(conn, query)

    @_gc_paused()
    def _runs(self, conn: sa.Connection, query: sa.Select[Any]) -> list[Run]:
        """The runs `query` selects, in its order, with their inputs and outputs.

        Two statements whatever the number of runs: the rows, then every edge of those runs (the
        ids bound as one list, not IN lists of a few hundred, whose compiling cost more than the
        database's work). The models are validated as one list (a per-model call costs twice)."""
        rows = conn.execute(query.with_only_columns(*wire_columns(self.dialect, _RUN_COLUMNS))).all()
        if not rows:
            return []
        io = _run_io([row[0] for row in rows])
        # Sorted here, not by the database: names in code-point order whatever the collation,
        # as SQLLineage's graphs list them.
        for edge in sorted(
            conn.execute(
                sa.select(edges.c.run_id, edges.c.direction, edges.c.exact, artifacts.c.name, versions.c.label)
                .join(versions, versions.c.id == edges.c.version_id)
                .join(artifacts, artifacts.c.id == versions.c.artifact_id)
                .where(edges.c.run_id.in_(self._members(list(io), RunId)))
            ).all(),
            key=lambda edge: (edge[3], edge[4]),
        ):
            ref = f"{edge[3]}:{_label(edge[4])}"
            found = io[edge[0]]
            found[edge[1]].append(ref)
            if not edge[2]:
                found["inexact"].append(ref)
        return _run_models(rows, io)

    def _members(self, values: list[Any], of: sa.types.TypeEngine[Any]) -> sa.Select[Any]:
        """`SELECT` of `values` bound as one parameter, for `column IN (...)` of any length: a
        JSON array read by json_each on SQLite, an array unnested on PostgreSQL. One statement
        shape for every length, so SQLAlchemy compiles it once."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            return sa.select(
                sa.func.unnest(sa.cast(sa.bindparam("members", values, type_=ARRAY(of), unique=True), ARRAY(of)))
            )
        each = sa.func.json_each(
            sa.bindparam("members", json.dumps(values), type_=sa.String, unique=True)
        ).table_valued("value")
        return sa.select(each.c.value)

    def versions_holding(self, digest: str | None = None, path: str | None = None) -> list[Version]:
        if (digest is None) == (path is None):
            raise InvalidInput("give exactly one of digest or path")
        if digest is not None:
            condition = entries.c.digest == digest
        else:
            assert path is not None
            condition = sa.or_(
                entries.c.ref == path,
                entries.c.path == path.strip("/"),
                entries.c.path.endswith("/" + path.strip("/"), autoescape=True),
                entries.c.ref.endswith("/" + path.strip("/"), autoescape=True),
            )
        with self._read() as conn:
            ids = list(
                conn.execute(
                    sa.select(entries.c.version_id).where(condition).distinct().order_by(entries.c.version_id)
                ).scalars()
            )
            return self._versions(conn, ids, with_entries=False)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        with self._read() as conn:
            artifact_id = self._artifact_id(conn, name)
            if artifact_id is None:
                raise NotFound(f"no artifact named {name!r}")
            query = (
                sa.select(alias_moves.c.alias, alias_moves.c.at, versions.c.label)
                .outerjoin(versions, versions.c.id == alias_moves.c.version_id)
                .where(alias_moves.c.artifact_id == artifact_id)
                .order_by(alias_moves.c.at, alias_moves.c.id)
            )
            if alias is not None:
                query = query.where(alias_moves.c.alias == alias)
            return [
                AliasMove(
                    name=name,
                    alias=row.alias,
                    version=None if row.label is None else f"{name}:{_label(row.label)}",
                    at=row.at,
                )
                for row in conn.execute(query)
            ]

    def referenced_blob_digests(self) -> set[str]:
        with self._read() as conn:
            return set(
                conn.execute(
                    sa.select(entries.c.digest)
                    .join(versions, versions.c.id == entries.c.version_id)
                    .where(versions.c.deleted_at.is_(None), entries.c.ref.is_(None), entries.c.purge_id.is_(None))
                    .distinct()
                ).scalars()
            )

    def stores_blob(self, digest: str) -> bool:
        """Whether a version not deleted stores a file with this digest (the server's blob
        deletion asks this of one blob, where referenced_blob_digests lists them all)."""
        with self._read() as conn:
            return (
                conn.execute(
                    sa.select(entries.c.version_id)
                    .join(versions, versions.c.id == entries.c.version_id)
                    .where(
                        entries.c.digest == digest,
                        versions.c.deleted_at.is_(None),
                        entries.c.ref.is_(None),
                        entries.c.purge_id.is_(None),
                    )
                    .limit(1)
                ).first()
                is not None
            )


def _json_equals(column: sa.ColumnElement[Any], key: str, value: Any) -> sa.ColumnElement[bool]:
    element = column[key]
    compared: sa.ColumnElement[bool]
    if isinstance(value, bool):
        compared = element.as_boolean() == value
    elif isinstance(value, int):
        compared = element.as_integer() == value
    elif isinstance(value, float):
        compared = element.as_float() == value
    else:
        compared = element.as_string() == str(value)
    return compared


def _filter_key(key: object) -> str:
    # SQLite addresses the key inside a JSON path ('$."key"'), which has no escape for a quote.
    if not isinstance(key, str) or not key or len(key) > 1024 or any(ch in '"\\' or not ch.isprintable() for ch in key):
        raise InvalidInput(
            f"cannot filter on the metadata key {key!r}: use printable text without quotes or backslashes"
        )
    return key


# The columns a Run is made of (not status_at, created_at: the queries order by them, the model
# does not hold them), named as its fields.
_RUN_COLUMNS = [
    runs.c[name]
    for name in (
        "id",
        "job",
        "job_namespace",
        "orchestrator",
        "kind",
        "status",
        "started_at",
        "ended_at",
        "params",
        "parent_id",
        "error",
        "code",
        "links",
    )
]
_RUN_KEYS = [column.name for column in _RUN_COLUMNS]
_RUN_LIST = TypeAdapter(list[Run])


def _run_io(run_ids: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """Empty inputs ("used"), outputs ("produced") and inexact refs of each run, to be filled in
    the order Run lists them (artifact name, then label)."""
    return {run_id: {"used": [], "produced": [], "inexact": []} for run_id in run_ids}


def _run_models(rows: Sequence[Any], io: dict[str, dict[str, list[str]]]) -> list[Run]:
    """Runs from rows of _RUN_COLUMNS (as wire_columns selects them), in their order, and their
    refs (_run_io, filled): one validation of the whole list."""
    found = []
    for row in rows:
        fields = dict(zip(_RUN_KEYS, row, strict=True))
        refs = io[fields["id"]]
        fields.update(inputs=refs["used"], outputs=refs["produced"], inexact=refs["inexact"])
        for column in ("params", "code", "links"):
            fields[column] = loads_json(fields[column])
        found.append(fields)
    return _RUN_LIST.validate_python(found)


def wire_columns(dialect: str, columns: Sequence[sa.Column[Any]]) -> list[sa.ColumnElement[Any]]:
    """`columns` as bulk reads select them for pydantic to parse (validate_python of whole lists):
    on SQLite, a datetime's stored text with its UTC offset (pydantic reads it in Rust, several
    times faster than UTCDateTime's per-value Python) and JSON as stored text (loads_json);
    PostgreSQL's driver already hands back datetimes and parsed JSON."""
    if dialect != "sqlite":
        return list(columns)
    found: list[sa.ColumnElement[Any]] = []
    for column in columns:
        if isinstance(column.type, UTCDateTime):
            found.append((sa.type_coerce(column, sa.String) + "+00:00").label(column.name))
        elif isinstance(column.type, type(JSON)):
            found.append(sa.type_coerce(column, sa.String).label(column.name))
        else:
            found.append(column)
    return found


def loads_json(value: Any) -> Any:
    """A JSON cell of a wire_columns row: text on SQLite (most are an empty object), parsed on
    PostgreSQL."""
    if isinstance(value, str):
        return {} if value == "{}" else json.loads(value)
    return {} if value is None else value
