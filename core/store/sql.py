"""The SQL store: SQLite (the default, embedded) and PostgreSQL, through SQLAlchemy 2 Core.

Both databases run the same statements. Labels stay gapless under concurrency because every
write transaction holds a lock before it reads the label counter: `BEGIN IMMEDIATE` on SQLite
(a deferred read-then-write transaction fails at once in WAL mode), `SELECT ... FOR UPDATE` of
the artifact row on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from headwater import config
from headwater.errors import Conflict, HeadwaterError, InvalidInput, InvalidRef, NotFound, Unavailable
from headwater.events import (
    AliasMoved,
    EdgeRecorded,
    Event,
    RunRecorded,
    TagsChanged,
    VersionDeleted,
    VersionRecorded,
    check_tag,
    utcnow,
)
from headwater.models import (
    TERMINAL_STATUSES,
    AliasMove,
    Artifact,
    Edge,
    LineageGraph,
    ManifestEntry,
    Run,
    Version,
)
from headwater.refs import LATEST, Ref, parse_ref, validate_alias, validate_name
from headwater.store import backoff, migrate
from headwater.store.base import ArtifactOrder, LineageDirection, Store
from headwater.store.schema import (
    alias_moves,
    aliases,
    applied_events,
    artifacts,
    edges,
    entries,
    runs,
    tags,
    versions,
)

tags_t = tags  # list_versions has a parameter named `tags`

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit
_LABEL_MAX = 2**31 - 1  # versions.label is a 32-bit integer on PostgreSQL


def _tombstone_notice(ref: str, run_id: str | None, direction: str | None) -> str:
    return f"{ref} was deleted: run {run_id}'s {direction} edge is kept on its tombstone, its content is gone"


def _label(number: int) -> str:
    return f"v{number}"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def engine_url(uri: str) -> sa.URL:
    url = sa.make_url(uri)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


class SQLStore(Store):
    def __init__(self, uri: str, *, upgrade: bool = True) -> None:
        self.uri = uri
        url = engine_url(uri)
        self.dialect = "postgresql" if url.drivername.startswith("postgresql") else url.get_backend_name()
        timeout = config.timeout_s()
        if self.dialect == "sqlite":
            if url.database and url.database != ":memory:":
                try:
                    Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise Unavailable(f"cannot open {url.database}: {err.strerror or err}") from err
            self.engine = sa.create_engine(url, connect_args={"timeout": timeout}, json_deserializer=_json_loads)
            _configure_sqlite(self.engine, timeout)
        elif self.dialect == "postgresql":
            self.engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                connect_args={
                    # libpq counts whole seconds, at least 2: _bound_connect holds the budget itself.
                    "connect_timeout": max(2, math.ceil(timeout)),
                    # A stuck lock must not stall a pipeline past the time budget.
                    "options": f"-c lock_timeout={int(timeout * 1000)}",
                },
            )
            _bound_connect(self.engine, self._safe_url(), timeout)
        else:
            raise InvalidInput(
                f"unsupported database {url.drivername!r}: use sqlite:///PATH or postgresql://..."
            )
        self._insert = sqlite_insert if self.dialect == "sqlite" else pg_insert
        self._prepare()
        if upgrade:
            with self._translate_errors():
                migrate.upgrade(self.engine, self._safe_url())
        else:
            with self._translate_errors(), self.engine.connect() as conn:
                migrate.check_known(migrate.current_revision(conn), self._safe_url())

    def _safe_url(self) -> str:
        return config.mask_uri(self.uri)

    def close(self) -> None:
        self.engine.dispose()

    # -- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.OperationalError as err:
            raise Unavailable(f"cannot reach {self._safe_url()}: {_first_line(err.orig or err)}") from err
        except sa_exc.InterfaceError as err:
            raise Unavailable(f"cannot reach {self._safe_url()}: {_first_line(err.orig or err)}") from err
        # Content the database refuses (a value too long, a NUL, a bad bind) is that content's
        # fault, not the database's: retrying it can never succeed, so it is not Unavailable.
        except sa_exc.DataError as err:
            raise InvalidInput(f"the database refused a value: {_first_line(err.orig or err)}") from err
        except sa_exc.IntegrityError as err:
            raise Conflict(f"the database refused the change: {_first_line(err.orig or err)}") from err
        except sa_exc.DBAPIError as err:
            # Any other refusal is the database's state, not the content's (a file that is not a
            # database, a schema it cannot use): the batch waits until it is mended.
            raise Unavailable(f"cannot use {self._safe_url()}: {_first_line(err.orig or err)}") from err
        except sa_exc.StatementError as err:
            raise InvalidInput(f"the database cannot take a value: {_first_line(err.orig or err)}") from err

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._translate_errors(), _refuse_content():
            conn = self.engine.connect()
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_write=True)
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._translate_errors(), self.engine.connect() as conn:
            yield conn

    def _lock(self, query: sa.Select[Any]) -> sa.Select[Any]:
        # SQLite's BEGIN IMMEDIATE already serialises writers; FOR UPDATE is PostgreSQL's way.
        return query.with_for_update() if self.dialect == "postgresql" else query

    # -- writes ------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Build the write path's statements once: building a statement costs more than
        running it (SQLAlchemy memoises a prebuilt statement's cache key)."""
        b, ins = sa.bindparam, self._insert
        # Every event of a group claimed in one statement (many rows, RETURNING the new ones).
        self._q_claim = (
            ins(applied_events).on_conflict_do_nothing(index_elements=["id"]).returning(applied_events.c.id)
        )
        self._q_run_insert = ins(runs).on_conflict_do_nothing(index_elements=["id"]).returning(runs.c.id)
        self._q_run_get = self._lock(sa.select(runs).where(runs.c.id == b("rid")))
        self._q_run_update = sa.update(runs).where(runs.c.id == b("rid"))
        self._q_artifact_get = self._lock(sa.select(artifacts).where(artifacts.c.name == b("name")))
        self._q_artifact_insert = (
            ins(artifacts).on_conflict_do_nothing(index_elements=["name"]).returning(*artifacts.c)
        )
        self._q_artifact_update = sa.update(artifacts).where(artifacts.c.id == b("aid"))
        self._q_artifact_id = sa.select(artifacts.c.id).where(artifacts.c.name == b("name"))
        self._q_version_by_digest = sa.select(
            versions.c.id, versions.c.produced_by, versions.c.deleted_at
        ).where(versions.c.artifact_id == b("aid"), versions.c.digest == b("digest"))
        tombstone = (
            versions.c.id,
            versions.c.deleted_at,
            (artifacts.c.name + sa.literal("@") + versions.c.digest).label("ref"),
        )
        self._q_version_by_name_digest = (
            sa.select(*tombstone)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(artifacts.c.name == b("name"), versions.c.digest == b("digest"))
        )
        self._q_version_by_id = (
            sa.select(*tombstone)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id == b("vid"))
        )
        self._q_version_insert = sa.insert(versions).returning(versions.c.id)
        self._q_entries_insert = sa.insert(entries)
        self._q_version_size = (
            sa.update(versions)
            .where(versions.c.id == b("vid"))
            .values(size=b("size"), n_entries=b("n_entries"))
        )
        self._q_produced_by = (
            sa.update(versions)
            .where(versions.c.id == b("vid"), versions.c.produced_by.is_(None))
            .values(produced_by=b("run"))
        )
        self._q_edge_insert = ins(edges).on_conflict_do_nothing(
            index_elements=["run_id", "version_id", "direction"]
        )
        self._q_alias_get = sa.select(aliases.c.version_id, aliases.c.moved_at).where(
            aliases.c.artifact_id == b("aid"), aliases.c.alias == b("alias")
        )
        self._q_alias_move = sa.insert(alias_moves)
        upsert = ins(aliases)
        # By event time: a late replay never overwrites a newer move.
        self._q_alias_set = upsert.on_conflict_do_update(
            index_elements=["artifact_id", "alias"],
            set_={"version_id": upsert.excluded.version_id, "moved_at": upsert.excluded.moved_at},
            where=aliases.c.moved_at <= upsert.excluded.moved_at,
        )

    def apply(self, events: Sequence[Event], *, before_commit: Callable[[], None] | None = None) -> list[str]:
        if not events:
            if before_commit is not None:
                before_commit()
            return []
        notices: list[str] = []
        with self._write() as conn:
            claimed = self._claim(conn, [event.id for event in events])
            for event in events:
                if event.id not in claimed:
                    continue
                claimed.discard(event.id)  # the same event twice in a group: applied once
                if isinstance(event, RunRecorded):
                    self._apply_run(conn, event)
                elif isinstance(event, VersionRecorded):
                    self._apply_version(conn, event, notices)
                elif isinstance(event, EdgeRecorded):
                    self._apply_edge(conn, event, notices)
                elif isinstance(event, AliasMoved):
                    self._apply_alias(conn, event)
                elif isinstance(event, TagsChanged):
                    self._apply_tags(conn, event)
                elif isinstance(event, VersionDeleted):
                    self._apply_delete(conn, event)
                else:  # pragma: no cover - the Event union is closed
                    raise InvalidInput(f"unknown event kind {event.kind!r}")
            if before_commit is not None:
                before_commit()  # raising here rolls the transaction back
        return notices

    def _claim(self, conn: sa.Connection, event_ids: list[str]) -> set[str]:
        """The ids among these that no earlier transaction applied, now claimed by this one."""
        at = utcnow()
        rows = [{"id": event_id, "applied_at": at} for event_id in dict.fromkeys(event_ids)]
        return set(conn.execute(self._q_claim, rows).scalars())

    def _apply_run(self, conn: sa.Connection, ev: RunRecorded) -> None:
        created = conn.execute(
            self._q_run_insert,
            {
                "id": ev.run_id,
                "job": ev.job or "unknown",
                "job_namespace": ev.job_namespace or "default",
                "orchestrator": ev.orchestrator or "manual",
                "kind": ev.run_kind or "manual",
                "status": ev.status or "running",
                "status_at": ev.time,
                "started_at": ev.started_at,
                "ended_at": ev.ended_at,
                "params": ev.params or {},
                "parent_id": ev.parent_id,
                "error": ev.error,
                "code": ev.code or {},
                "links": ev.links or {},
                "created_at": ev.time,
            },
        ).first()
        if created is not None:
            return  # a new run holds exactly what the event says
        row = conn.execute(self._q_run_get, {"rid": ev.run_id}).one()
        changes: dict[str, Any] = {}
        for field, column in (
            ("job", "job"),
            ("job_namespace", "job_namespace"),
            ("orchestrator", "orchestrator"),
            ("run_kind", "kind"),
            ("parent_id", "parent_id"),
        ):
            value = getattr(ev, field)
            if value is not None and value != row._mapping[column]:
                changes[column] = value
        # A finished run keeps the error of how it finished: a late `failed` after `succeeded`
        # (or a second failure) does not rewrite it; the same outcome may still fill it in.
        if ev.error is not None and ev.error != row.error and (
            row.status not in TERMINAL_STATUSES or (row.error is None and ev.status in (None, row.status))
        ):
            changes["error"] = ev.error
        if ev.started_at is not None and (row.started_at is None or ev.started_at < row.started_at):
            changes["started_at"] = ev.started_at
        if ev.ended_at is not None and row.ended_at is None:
            changes["ended_at"] = ev.ended_at
        for column, value in (("params", ev.params), ("code", ev.code), ("links", ev.links)):
            if value:
                merged = {**(row._mapping[column] or {}), **value}
                if merged != row._mapping[column]:
                    changes[column] = merged
        if ev.status is not None and ev.status != row.status:
            # Terminal states never revert; otherwise the later event wins (events may arrive late).
            if row.status not in TERMINAL_STATUSES and (
                ev.status in TERMINAL_STATUSES or ev.time >= row.status_at
            ):
                changes["status"] = ev.status
                changes["status_at"] = ev.time
        if changes:
            conn.execute(self._q_run_update, {"rid": ev.run_id, **changes})

    def _artifact_for_write(
        self, conn: sa.Connection, name: str, type_: str | None, description: str | None, at: datetime
    ) -> tuple[sa.Row[Any], bool]:
        """The artifact's row, locked, and whether this transaction created it. A new artifact is
        created with label v0 already counted: the caller's version is its first."""
        name = validate_name(name)
        row = conn.execute(self._q_artifact_get, {"name": name}).first()
        if row is None:
            row = conn.execute(
                self._q_artifact_insert,
                {"name": name, "type": type_, "description": description, "created_at": at, "next_label": 1},
            ).first()
            if row is not None:
                return row, True
            row = conn.execute(self._q_artifact_get, {"name": name}).one()  # another writer's, just now
        if type_ and row.type and type_ != row.type:
            raise Conflict(f"artifact {name!r} has type {row.type!r}, not {type_!r}")
        fill = {}
        if type_ and not row.type:
            fill["type"] = type_
        if description and not row.description:
            fill["description"] = description
        if fill:
            conn.execute(self._q_artifact_update, {"aid": row.id, **fill})
        return row, False

    def _apply_version(self, conn: sa.Connection, ev: VersionRecorded, notices: list[str]) -> None:
        from headwater.digest import (
            check_entry_paths,
            check_version_digest,
            is_content_digest,
            manifest_digest,
            validate_entry_path,
        )

        if ev.manifest is not None:
            raise InvalidInput(
                f"version {ev.name}@{ev.digest} names a staged manifest ({ev.manifest}) that is not here: "
                "its entries must be sent again"
            )

        check_version_digest(ev.digest)  # checked when made; an event read back unchecked, again
        for entry in ev.entries:
            if validate_entry_path(entry.path) != entry.path:
                raise InvalidInput(f"entry path {entry.path!r} of {ev.name!r} is not in canonical form")
        if not is_content_digest(ev.digest):  # manifest_digest below checks a content digest's
            check_entry_paths(entry.path for entry in ev.entries)
        if is_content_digest(ev.digest) and manifest_digest(ev.entries) != ev.digest:
            raise InvalidInput(f"version digest {ev.digest} of {ev.name!r} does not match its manifest")
        art, new_artifact = self._artifact_for_write(conn, ev.name, ev.type, None, ev.time)
        # An artifact created just now has no versions: this one is its v0, counted at its insert.
        existing = None if new_artifact else conn.execute(
            self._q_version_by_digest, {"aid": art.id, "digest": ev.digest}
        ).first()
        created = existing is None
        if existing is None:
            label = 0 if new_artifact else art.next_label
            if not new_artifact:
                conn.execute(self._q_artifact_update, {"aid": art.id, "next_label": label + 1})
            version_id = conn.execute(
                self._q_version_insert,
                {
                    "artifact_id": art.id,
                    "label": label,
                    "digest": ev.digest,
                    "size": sum(e.size for e in ev.entries),
                    "n_entries": len(ev.entries),
                    "metadata": ev.metadata,
                    "description": ev.description,
                    "created_at": ev.time,
                    "produced_by": ev.run_id if ev.direction == "produced" else None,
                    "deleted_at": None,
                },
            ).scalar_one()
            if ev.entries:  # size and n_entries are already theirs
                self._insert_entries(conn, version_id, ev.entries, count=False)
        else:
            version_id = existing.id
            if existing.deleted_at is not None and not (ev.run_id and ev.direction):
                raise Conflict(f"{ev.name}@{ev.digest} was deleted; its content cannot be logged again")
            if existing.deleted_at is None and not is_content_digest(ev.digest):
                # Pointer digests (ol:, unverified:) do not pin the entries: they must agree, but a
                # placeholder (an input seen before anything was known of it) may learn its location.
                known = self._entries(conn, [version_id])[version_id]
                if not known and ev.entries:
                    self._insert_entries(conn, version_id, ev.entries)
                elif {(e.path, e.digest, e.size) for e in known} != {
                    (e.path, e.digest, e.size) for e in ev.entries
                }:
                    raise Conflict(f"version {ev.name}@{ev.digest} is committed with other entries")
            if ev.direction == "produced" and existing.produced_by is None:
                conn.execute(self._q_produced_by, {"vid": version_id, "run": ev.run_id})
        if ev.run_id and ev.direction:
            # A version's metadata is frozen at its first commit; later producers keep theirs here.
            edge_meta = ev.edge_metadata if created else {**ev.metadata, **ev.edge_metadata}
            self._add_edge(conn, ev.run_id, version_id, ev.direction, ev.exact, edge_meta, ev.time)
        if existing is not None and existing.deleted_at is not None:
            # A run read or wrote bytes that were deleted: its edge is lineage, kept on the
            # tombstone (docs/architecture.md); nothing is made alive again (no alias, no tag).
            notices.append(_tombstone_notice(f"{ev.name}@{ev.digest}", ev.run_id, ev.direction))
            return
        if created or ev.direction != "used":
            self._move_alias(conn, art.id, LATEST, version_id, ev.time, unset=new_artifact)
        for alias in ev.aliases:
            self._move_alias(conn, art.id, validate_alias(alias), version_id, ev.time)
        self._add_tags(conn, version_id, ev.tags)

    def _insert_entries(
        self, conn: sa.Connection, version_id: int, new: Sequence[ManifestEntry], *, count: bool = True
    ) -> None:
        for part in _chunks(new, 10_000):  # a million entries: parameter rows built a part at a time
            conn.execute(
                self._q_entries_insert,
                [{"version_id": version_id, "path": e.path, "digest": e.digest, "size": e.size, "ref": e.ref} for e in part],
            )
        if count:
            conn.execute(
                self._q_version_size,
                {"vid": version_id, "size": sum(e.size for e in new), "n_entries": len(new)},
            )

    def _add_edge(
        self,
        conn: sa.Connection,
        run_id: str,
        version_id: int,
        direction: str,
        exact: bool,
        metadata: dict[str, Any],
        at: datetime,
    ) -> None:
        conn.execute(
            self._q_edge_insert,
            {
                "run_id": run_id,
                "version_id": version_id,
                "direction": direction,
                "exact": exact,
                "metadata": metadata,
                "created_at": at,
            },
        )

    def _apply_edge(self, conn: sa.Connection, ev: EdgeRecorded, notices: list[str]) -> None:
        exact, metadata = ev.exact, ev.metadata
        name, _, digest = ev.ref.rpartition("@")
        # The common case, an input resolved by the client to its full digest: one query.
        found = conn.execute(self._q_version_by_name_digest, {"name": name, "digest": digest}).first() if name else None
        version_id = found.id if found is not None else None
        if version_id is None:
            ref = parse_ref(ev.ref, is_artifact=lambda n: self._artifact_id(conn, n) is not None)
            try:
                version_id = self._resolve(conn, ref, at=ev.time)
            except NotFound:
                # An input pinned to a version this store has not seen (yet): keep the edge,
                # honestly marked, rather than refuse the whole batch.
                exact = False
                if ref.label or ref.digest or ref.alias != LATEST:
                    metadata = {**ev.metadata, "requested": ev.ref}
                try:
                    version_id = self._resolve(conn, Ref(ref.name), at=ev.time)
                except NotFound:
                    # Nothing recorded for that artifact at all: say so, invent nothing.
                    self._apply_version(
                        conn,
                        VersionRecorded(
                            id=ev.id, time=ev.time, name=ref.name, digest=f"unverified:{ev.run_id}",
                            entries=[], run_id=ev.run_id, direction=ev.direction, exact=False,
                            edge_metadata=metadata,
                        ),
                        notices,
                    )
                    return
            found = conn.execute(self._q_version_by_id, {"vid": version_id}).first()
        if found is not None and found.deleted_at is not None:
            # A REF to a deleted version (a label, a digest, an alias as it was): the edge is kept.
            notices.append(_tombstone_notice(found.ref, ev.run_id, ev.direction))
        self._add_edge(conn, ev.run_id, version_id, ev.direction, exact, metadata, ev.time)
        if ev.direction == "produced":
            conn.execute(self._q_produced_by, {"vid": version_id, "run": ev.run_id})

    def _apply_alias(self, conn: sa.Connection, ev: AliasMoved) -> None:
        alias = validate_alias(ev.alias)
        artifact_id = self._artifact_id(conn, ev.name)
        if artifact_id is None:
            raise NotFound(f"no artifact named {ev.name!r}")
        version_id = None
        if ev.digest is not None:
            version_id = self._resolve(conn, Ref(ev.name, digest=ev.digest))
            deleted = conn.execute(sa.select(versions.c.deleted_at).where(versions.c.id == version_id)).scalar()
            if deleted is not None:
                raise Conflict(f"{ev.name}@{ev.digest} is deleted: an alias cannot point to it")
        elif not conn.execute(
            sa.select(aliases.c.version_id).where(
                aliases.c.artifact_id == artifact_id,
                aliases.c.alias == alias,
                aliases.c.version_id.is_not(None),
            )
        ).first():
            raise NotFound(f"artifact {ev.name!r} has no alias {alias!r}")
        self._move_alias(conn, artifact_id, alias, version_id, ev.time)

    def _move_alias(
        self,
        conn: sa.Connection,
        artifact_id: int,
        alias: str,
        version_id: int | None,
        at: datetime,
        *,
        unset: bool = False,  # known to point nowhere yet (an artifact created by this transaction)
    ) -> None:
        current = None if unset else conn.execute(self._q_alias_get, {"aid": artifact_id, "alias": alias}).first()
        if current is not None and current.version_id == version_id and current.moved_at <= at:
            return  # re-pointing at the same version is not a move
        conn.execute(
            self._q_alias_move, {"artifact_id": artifact_id, "alias": alias, "version_id": version_id, "at": at}
        )
        conn.execute(
            self._q_alias_set, {"artifact_id": artifact_id, "alias": alias, "version_id": version_id, "moved_at": at}
        )

    def _add_tags(self, conn: sa.Connection, version_id: int, new_tags: Iterable[str]) -> None:
        rows = [{"version_id": version_id, "tag": check_tag(t)} for t in dict.fromkeys(new_tags)]
        if rows:
            conn.execute(
                self._insert(tags).on_conflict_do_nothing(index_elements=["version_id", "tag"]), rows
            )

    def _apply_tags(self, conn: sa.Connection, ev: TagsChanged) -> None:
        version_id = self._resolve(conn, Ref(ev.name, digest=ev.digest))
        self._add_tags(conn, version_id, ev.add)
        if ev.remove:
            conn.execute(
                sa.delete(tags).where(tags.c.version_id == version_id, tags.c.tag.in_(ev.remove))
            )

    def _apply_delete(self, conn: sa.Connection, ev: VersionDeleted) -> None:
        version_id = self._resolve(conn, Ref(ev.name, digest=ev.digest))
        artifact_id = self._artifact_id(conn, ev.name)
        assert artifact_id is not None
        conn.execute(
            sa.update(versions)
            .where(versions.c.id == version_id, versions.c.deleted_at.is_(None))
            .values(deleted_at=ev.time)
        )
        pointing = conn.execute(
            sa.select(aliases.c.alias).where(
                aliases.c.artifact_id == artifact_id, aliases.c.version_id == version_id
            )
        ).scalars()
        for alias in list(pointing):
            replacement = None
            if alias == LATEST:
                replacement = conn.execute(
                    sa.select(versions.c.id)
                    .where(versions.c.artifact_id == artifact_id, versions.c.deleted_at.is_(None))
                    .order_by(versions.c.label.desc())
                    .limit(1)
                ).scalar()
            self._move_alias(conn, artifact_id, alias, replacement, ev.time)

    # -- resolving ---------------------------------------------------------------------------

    def _artifact_id(self, conn: sa.Connection, name: str) -> int | None:
        return conn.execute(self._q_artifact_id, {"name": name}).scalar()

    def _resolve(self, conn: sa.Connection, ref: Ref, at: datetime | None = None) -> int:
        artifact_id = self._artifact_id(conn, ref.name)
        if artifact_id is None:
            raise NotFound(f"no artifact named {ref.name!r}")
        if ref.label is not None:
            digits = ref.label[1:]
            number = int(digits) if len(digits) <= len(str(_LABEL_MAX)) else _LABEL_MAX + 1
            found = None if number > _LABEL_MAX else conn.execute(
                sa.select(versions.c.id).where(versions.c.artifact_id == artifact_id, versions.c.label == number)
            ).scalar()
            if found is None:
                raise NotFound(f"artifact {ref.name!r} has no version {ref.label}")
            return found
        if ref.digest is not None:
            prefix = ref.digest if ":" in ref.digest else f"blake3:{ref.digest}"
            found_ids = conn.execute(
                sa.select(versions.c.id)
                .where(versions.c.artifact_id == artifact_id, versions.c.digest.startswith(prefix, autoescape=True))
                .limit(2)
            ).scalars().all()
            if not found_ids:
                raise NotFound(f"artifact {ref.name!r} has no version with digest {ref.digest}")
            if len(found_ids) > 1:
                raise InvalidRef(f"digest prefix {ref.digest} of {ref.name!r} is ambiguous: give more characters")
            return found_ids[0]
        alias = ref.alias or LATEST
        if at is None:
            found = conn.execute(
                sa.select(aliases.c.version_id).where(
                    aliases.c.artifact_id == artifact_id, aliases.c.alias == alias
                )
            ).first()
        else:
            found = conn.execute(
                sa.select(alias_moves.c.version_id)
                .where(
                    alias_moves.c.artifact_id == artifact_id,
                    alias_moves.c.alias == alias,
                    alias_moves.c.at <= at,
                )
                .order_by(alias_moves.c.at.desc(), alias_moves.c.id.desc())
                .limit(1)
            ).first()
        if found is None or found.version_id is None:
            when = f" at {at.isoformat()}" if at is not None else ""
            raise NotFound(f"artifact {ref.name!r} has no alias {alias!r}{when}")
        return found.version_id

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
        latest = (
            sa.select(aliases.c.artifact_id, versions.c.label)
            .join(versions, versions.c.id == aliases.c.version_id)
            .where(aliases.c.alias == LATEST)
            .subquery()
        )
        counts = (
            sa.select(
                versions.c.artifact_id,
                sa.func.count().label("n"),
                sa.func.max(versions.c.created_at).label("updated_at"),
            )
            .where(versions.c.deleted_at.is_(None))
            .group_by(versions.c.artifact_id)
            .subquery()
        )
        query = (
            sa.select(artifacts, latest.c.label.label("latest_label"), counts.c.n, counts.c.updated_at)
            .outerjoin(latest, latest.c.artifact_id == artifacts.c.id)
            .outerjoin(counts, counts.c.artifact_id == artifacts.c.id)
        )
        if order == "updated":
            # An artifact without a live version counts as updated when it was created; the name
            # breaks ties, so pages never overlap.
            updated = sa.func.coalesce(counts.c.updated_at, artifacts.c.created_at)
            query = query.order_by(updated.desc(), artifacts.c.name)
        else:
            query = query.order_by(artifacts.c.name)
        if type is not None:
            query = query.where(artifacts.c.type == type)
        if name_like is not None:
            # Case-insensitive on both databases (SQLite's LIKE folds ASCII case, PostgreSQL's none).
            query = query.where(artifacts.c.name.icontains(name_like, autoescape=True))
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
                    versions=row.n or 0,
                    updated_at=row.updated_at if row.updated_at is not None else row.created_at,
                )
                for row in conn.execute(query)
            ]

    def get_version(self, ref: Ref, at: datetime | None = None) -> Version:
        with self._read() as conn:
            version_id = self._resolve(conn, ref, at=at)
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
                query = query.where(
                    sa.exists().where(tags_t.c.version_id == versions.c.id, tags_t.c.tag == tag)
                )
            for key, value in (metadata or {}).items():
                query = query.where(_json_equals(versions.c.metadata, _filter_key(key), value))
            query = query.order_by(versions.c.label)
            if limit is not None:
                query = query.limit(limit)
            ids = list(conn.execute(query).scalars())
            return self._versions(conn, ids, with_entries=False)

    def _entries(self, conn: sa.Connection, version_ids: Sequence[int]) -> dict[int, list[ManifestEntry]]:
        found: dict[int, list[ManifestEntry]] = {vid: [] for vid in version_ids}
        for chunk in _chunks(version_ids):
            for row in conn.execute(
                sa.select(entries).where(entries.c.version_id.in_(chunk))
            ):
                found[row.version_id].append(
                    ManifestEntry(path=row.path, digest=row.digest, size=row.size, ref=row.ref)
                )
        for listed in found.values():
            listed.sort(key=lambda e: e.path)  # code-point order, whatever the collation
        return found

    def _versions(
        self, conn: sa.Connection, version_ids: Sequence[int], *, with_entries: bool
    ) -> list[Version]:
        """Versions in the order of `version_ids`, with aliases, tags and producers."""
        rows: dict[int, Any] = {}
        alias_map: dict[int, list[str]] = defaultdict(list)
        tag_map: dict[int, list[str]] = defaultdict(list)
        producer_map: dict[int, list[str]] = defaultdict(list)
        for chunk in _chunks(list(version_ids)):
            for row in conn.execute(
                sa.select(versions, artifacts.c.name, artifacts.c.type)
                .join(artifacts, artifacts.c.id == versions.c.artifact_id)
                .where(versions.c.id.in_(chunk))
            ):
                rows[row.id] = row
            for row in conn.execute(
                sa.select(aliases.c.version_id, aliases.c.alias)
                .where(aliases.c.version_id.in_(chunk))
                .order_by(aliases.c.alias)
            ):
                alias_map[row.version_id].append(row.alias)
            for row in conn.execute(
                sa.select(tags.c.version_id, tags.c.tag).where(tags.c.version_id.in_(chunk)).order_by(tags.c.tag)
            ):
                tag_map[row.version_id].append(row.tag)
            for row in conn.execute(
                sa.select(edges.c.version_id, edges.c.run_id)
                .where(edges.c.version_id.in_(chunk), edges.c.direction == "produced")
                .order_by(edges.c.created_at, edges.c.run_id)
            ):
                producer_map[row.version_id].append(row.run_id)
        entry_map = self._entries(conn, list(version_ids)) if with_entries else {}
        result = []
        for vid in version_ids:
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

    def _runs(self, conn: sa.Connection, query: sa.Select[Any]) -> list[Run]:
        rows = list(conn.execute(query))
        io: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"used": [], "produced": [], "inexact": []})
        for chunk in _chunks([r.id for r in rows]):
            for row in conn.execute(
                sa.select(edges.c.run_id, edges.c.direction, edges.c.exact, artifacts.c.name, versions.c.label)
                .join(versions, versions.c.id == edges.c.version_id)
                .join(artifacts, artifacts.c.id == versions.c.artifact_id)
                .where(edges.c.run_id.in_(chunk))
                .order_by(artifacts.c.name, versions.c.label)
            ):
                ref = f"{row.name}:{_label(row.label)}"
                io[row.run_id][row.direction].append(ref)
                if not row.exact:
                    io[row.run_id]["inexact"].append(ref)
        return [
            _run_model(row, io[row.id]["used"], io[row.id]["produced"], io[row.id]["inexact"]) for row in rows
        ]

    def _runs_by_id(self, conn: sa.Connection, run_ids: Sequence[str]) -> list[Run]:
        found: list[Run] = []
        for chunk in _chunks(list(run_ids)):
            found.extend(self._runs(conn, sa.select(runs).where(runs.c.id.in_(chunk))))
        return sorted(found, key=lambda r: (r.started_at or _EPOCH, r.id))

    # -- lineage -----------------------------------------------------------------------------

    def lineage(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> LineageGraph:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        with self._read() as conn:
            root = self._resolve(conn, ref)
            graph = self._graph(conn, root, self.closure(conn, root, direction, depth), direction, depth)
        graph.direction = direction
        return graph

    def closure(
        self, conn: sa.Connection, root: int, direction: LineageDirection, depth: int | None
    ) -> set[int]:
        """Ids of the versions reachable from `root` within `depth` runs, walked in SQL.

        Unbounded walks recurse on the version id alone so UNION stops at cycles; bounded ones
        carry a depth (which defeats UNION's dedup) and stop at `depth`.
        """
        step_in, step_out = ("used", "produced") if direction == "downstream" else ("produced", "used")
        if depth is None:
            sql = sa.text(
                f"""
                WITH RECURSIVE walk(vid) AS (
                    SELECT CAST(:root AS INTEGER)
                    UNION
                    SELECT nxt.version_id FROM walk
                    JOIN edges cur ON cur.version_id = walk.vid AND cur.direction = '{step_in}'
                    JOIN edges nxt ON nxt.run_id = cur.run_id AND nxt.direction = '{step_out}'
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
                WHERE walk.depth < :depth
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
        for chunk in _chunks(sorted(run_ids)):
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
                        if nxt not in depths:
                            depths[nxt] = depths[vid] + 1
                            following.append(nxt)
            frontier = following
        ordered = sorted(depths, key=lambda v: (depths[v], v))
        version_models = self._versions(conn, ordered, with_entries=False)
        ref_of = {vid: v.ref for vid, v in zip(ordered, version_models)}
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
                    .where(versions.c.deleted_at.is_(None), entries.c.ref.is_(None))
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
                    .where(entries.c.digest == digest, versions.c.deleted_at.is_(None), entries.c.ref.is_(None))
                    .limit(1)
                ).first()
                is not None
            )


def _json_equals(column: sa.ColumnElement[Any], key: str, value: Any) -> sa.ColumnElement[bool]:
    element = column[key]
    if isinstance(value, bool):
        return element.as_boolean() == value
    if isinstance(value, int):
        return element.as_integer() == value
    if isinstance(value, float):
        return element.as_float() == value
    return element.as_string() == str(value)


def _filter_key(key: object) -> str:
    # SQLite addresses the key inside a JSON path ('$."key"'), which has no escape for a quote.
    if not isinstance(key, str) or not key or len(key) > 1024 or any(
        ch in '"\\' or not ch.isprintable() for ch in key
    ):
        raise InvalidInput(
            f"cannot filter on the metadata key {key!r}: use printable text without quotes or backslashes"
        )
    return key


def _run_model(row: Any, inputs: list[str], outputs: list[str], inexact: list[str] | None = None) -> Run:
    return Run(
        id=row.id,
        job=row.job,
        job_namespace=row.job_namespace,
        orchestrator=row.orchestrator,
        kind=row.kind,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        params=row.params or {},
        parent_id=row.parent_id,
        inputs=inputs,
        outputs=outputs,
        inexact=inexact or [],
        error=row.error,
        code=row.code or {},
        links=row.links or {},
    )


def _json_loads(text: str) -> Any:
    # Most metadata and params cells are empty: a graph of 20,000 nodes holds ~70,000 of them.
    return {} if text == "{}" else json.loads(text)


@contextlib.contextmanager
def _refuse_content() -> Iterator[None]:
    """A write whose events were made without validation (an old outbox batch, an adapter's
    model_construct) fails in Python on its content: refused as InvalidInput, so the outbox sets
    that batch aside instead of failing on it forever."""
    try:
        yield
    except HeadwaterError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as err:
        raise InvalidInput(f"the store cannot apply this batch: {type(err).__name__}: {_first_line(err)}") from err


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _NoAnswer(Exception):
    pass


def _bound_connect(engine: sa.Engine, key: str, budget: float) -> None:
    """Every new PostgreSQL connection opens within `budget` seconds, or fails; a server that
    let the budget pass without answering is not asked again for a back-off
    (headwater.store.backoff). One that refuses at once costs nothing and is asked every time, so
    a server back up is used at once."""

    @sa.event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        failure = dialect.loaded_dbapi.OperationalError  # wrapped, then translated, by SQLAlchemy
        try:
            backoff.check(key)
        except Unavailable as err:
            raise failure(str(err)) from None
        try:
            return _within(budget, lambda: dialect.connect(*cargs, **cparams))
        except _NoAnswer as err:
            backoff.mark_down(key, str(err), budget)
            raise failure(str(err)) from None


def _within(budget: float, connect: Callable[[], Any]) -> Any:
    """connect() on a thread of its own, waited for at most `budget` seconds; a connection
    that arrives after that is closed (libpq's own timeout ends the attempt soon after)."""
    future: Future[Any] = Future()

    def attempt() -> None:
        try:
            conn = connect()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            with contextlib.suppress(InvalidStateError):
                future.set_exception(err)
            return
        try:
            future.set_result(conn)
        except InvalidStateError:  # abandoned: the caller has moved on
            conn.close()

    threading.Thread(target=attempt, name="headwater-connect", daemon=True).start()
    try:
        return future.result(timeout=budget)
    except FutureTimeout:
        if future.cancel():
            raise _NoAnswer(f"no answer within {budget:g}s") from None
        return future.result()  # it came in just now


def _configure_sqlite(engine: sa.Engine, timeout: float) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit's WAL frames are fsynced. With NORMAL a commit can vanish at a power
        # loss, after the outbox has already removed the batch it came from (~0.25 ms a commit).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Writers take the lock up front: a deferred read-then-write transaction would fail
        # with "database is locked" instead of waiting for the busy timeout.
        immediate = conn.get_execution_options().get("sqlite_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
