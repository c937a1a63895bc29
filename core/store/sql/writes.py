"""The SQL store's write path: a batch of events applied in one transaction, each event once.

Labels stay gapless under concurrency because every write transaction holds a lock before it
reads the label counter (SQLEngine._write, SQLEngine._lock). The statements are built once, when
the store opens (_prepare): building a statement costs more than running it. A batch reads what
it names once and writes in multi-row statements (headwater.store.sql.write_batch): every event
is still applied in order, as if alone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from headwater.errors import Conflict, HeadwaterError, InvalidInput, NotFound, Unavailable
from headwater.events import (
    AliasMoved,
    ContentPurged,
    EdgeRecorded,
    Event,
    RetentionSet,
    RunRecorded,
    TagsChanged,
    VersionDeleted,
    VersionRecorded,
    check_tag,
    utcnow,
)
from headwater.models import TERMINAL_STATUSES, ManifestEntry
from headwater.refs import LATEST, Ref, parse_ref, validate_alias, validate_name
from headwater.store.schema import (
    UTCDateTime,
    alias_moves,
    aliases,
    applied_events,
    artifacts,
    edges,
    entries,
    output_inputs,
    runs,
    tags,
    versions,
)
from headwater.store.sql.engine import _chunks, forget_none_purged
from headwater.store.sql.purge import apply_purge, audit_delete, on_arrival
from headwater.store.sql.reads import SQLReads
from headwater.store.sql.retention import apply_retention
from headwater.store.sql.write_batch import (
    SIMPLE,
    KnownArtifact,
    KnownVersion,
    Statements,
    WriteBatch,
    label_number,
    read_statements,
)

# A batch PostgreSQL failed to break a deadlock (or a serialization conflict) is applied again.
_DEADLOCK_ATTEMPTS = 4
_RETRYABLE_SQLSTATES = {"40P01", "40001"}


def _deadlocked(err: Unavailable) -> bool:
    orig = getattr(err.__cause__, "orig", None)
    return getattr(orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _tombstone_notice(ref: str, run_id: str | None, direction: str | None) -> str:
    return f"{ref} was deleted: run {run_id}'s {direction} edge is kept on its tombstone, its content is gone"


class SQLWrites(SQLReads):
    """Store.apply: each event kind applied by its _apply_* method, with the statements of
    _prepare."""

    def _prepare(self) -> None:
        """Build the write path's statements once: building a statement costs more than
        running it (SQLAlchemy memoises a prebuilt statement's cache key)."""
        b, ins = sa.bindparam, self._insert
        # Every event of a group claimed in one statement (many rows, RETURNING the new ones).
        self._q_claim = ins(applied_events).on_conflict_do_nothing(index_elements=["id"]).returning(applied_events.c.id)
        self._q_run_insert = ins(runs).on_conflict_do_nothing(index_elements=["id"]).returning(runs.c.id)
        self._q_run_get = self._lock(sa.select(runs).where(runs.c.id == b("rid")))
        self._q_run_update = sa.update(runs).where(runs.c.id == b("rid"))
        self._q_artifact_get = self._lock(sa.select(artifacts).where(artifacts.c.name == b("name")))
        self._q_artifact_insert = ins(artifacts).on_conflict_do_nothing(index_elements=["name"]).returning(*artifacts.c)
        self._q_artifact_update = sa.update(artifacts).where(artifacts.c.id == b("aid"))
        self._q_artifact_id = sa.select(artifacts.c.id).where(artifacts.c.name == b("name"))
        self._q_version_by_digest = sa.select(versions.c.id, versions.c.produced_by, versions.c.deleted_at).where(
            versions.c.artifact_id == b("aid"), versions.c.digest == b("digest")
        )
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
            sa.update(versions).where(versions.c.id == b("vid")).values(size=b("size"), n_entries=b("n_entries"))
        )
        self._q_produced_by = (
            sa.update(versions)
            .where(versions.c.id == b("vid"), versions.c.produced_by.is_(None))
            .values(produced_by=b("run"))
        )
        self._q_edge_insert = ins(edges).on_conflict_do_nothing(index_elements=["run_id", "version_id", "direction"])
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
        self._q_tag_insert = ins(tags).on_conflict_do_nothing(index_elements=["version_id", "tag"])
        newest = b("updated", type_=UTCDateTime)
        self._statements = Statements(
            # A version's created_at is its event's time: a late event may be older than the last.
            counters=sa.update(artifacts)
            .where(artifacts.c.id == b("aid"))
            .values(
                next_label=b("next"),
                n_versions=artifacts.c.n_versions + b("added"),
                updated_at=sa.case(
                    (sa.or_(artifacts.c.updated_at.is_(None), artifacts.c.updated_at < newest), newest),
                    else_=artifacts.c.updated_at,
                ),
            ),
            edge_insert=self._q_edge_insert,
            produced_by=self._q_produced_by,
            alias_set=self._q_alias_set,
            tag_insert=self._q_tag_insert,
            **read_statements(self._lock),
        )

    def apply(self, events: Sequence[Event], *, before_commit: Callable[[], None] | None = None) -> list[str]:
        if not events:
            if before_commit is not None:
                before_commit()
            return []
        for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
            try:
                return self._apply_once(events, before_commit)
            except Unavailable as err:
                # Rolled back whole by PostgreSQL: applying again is safe (nothing was claimed).
                if attempt == _DEADLOCK_ATTEMPTS or not _deadlocked(err):
                    raise
                time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _apply_once(self, events: Sequence[Event], before_commit: Callable[[], None] | None) -> list[str]:
        notices: list[str] = []
        with self._write() as conn:
            batch = WriteBatch(conn, self._statements, sequences=self.dialect == "postgresql")
            # What takes no artifact lock comes first: every lock is held until the commit, and
            # concurrent batches naming the same artifacts wait for it in turn.
            batch.read_ahead(events)
            claimed = self._claim(conn, [event.id for event in events])
            todo = []
            for event in events:
                if event.id in claimed:
                    claimed.discard(event.id)  # the same event twice in a group: applied once
                    todo.append(event)
            held = self._insert_runs(conn, todo)  # the ids of the run events already applied
            batch.prefetch(events)  # locks the artifacts it writes, in name order, before any write
            for event in todo:
                if not isinstance(event, SIMPLE) and batch.active:
                    batch.flush()
                    batch.forget()
                if isinstance(event, RunRecorded):
                    if event.id not in held:
                        self._apply_run(conn, event)
                elif isinstance(event, VersionRecorded):
                    self._apply_version(conn, batch, event, notices)
                elif isinstance(event, EdgeRecorded):
                    self._apply_edge(conn, batch, event, notices)
                elif isinstance(event, AliasMoved):
                    self._apply_alias(conn, batch, event)
                elif isinstance(event, TagsChanged):
                    self._apply_tags(conn, batch, event)
                elif isinstance(event, VersionDeleted):
                    self._apply_delete(conn, batch, event)
                elif isinstance(event, ContentPurged):
                    forget_none_purged(conn)
                    apply_purge(conn, event, notices)
                elif isinstance(event, RetentionSet):
                    apply_retention(conn, event)
                else:  # pragma: no cover - the Event union is closed
                    raise InvalidInput(f"unknown event kind {event.kind!r}")
                if not batch.active:
                    batch.flush()  # an event of another kind is written before the next one reads
            batch.flush()
            if before_commit is not None:
                before_commit()  # raising here rolls the transaction back
        return notices

    def _claim(self, conn: sa.Connection, event_ids: list[str]) -> set[str]:
        """The ids among these that no earlier transaction applied, now claimed by this one."""
        at = utcnow()
        rows = [{"id": event_id, "applied_at": at} for event_id in dict.fromkeys(event_ids)]
        return set(conn.execute(self._q_claim, rows).scalars())

    def _insert_runs(self, conn: sa.Connection, todo: Sequence[Event]) -> set[str]:
        """Insert the runs the batch's first events record, in one statement, each row holding
        every one of those events of its run, applied in order (_run_changes, as _apply_run would
        one by one): a manual run's start and end are one row written once. Returns the ids of
        the events a new row holds; a run that existed goes through _apply_run, event by event."""
        folded: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for event in todo:
            if not isinstance(event, SIMPLE):
                break  # what follows an event of another kind is applied after it
            if isinstance(event, RunRecorded):
                held = folded.get(event.run_id)
                if held is None:
                    folded[event.run_id] = (_run_row(event), [event.id])
                else:
                    held[0].update(_run_changes(held[0], event))
                    held[1].append(event.id)
        if not folded:
            return set()
        created = conn.execute(self._q_run_insert, [row for row, _ in folded.values()]).scalars()
        return {event_id for run_id in created for event_id in folded[run_id][1]}

    def _apply_run(self, conn: sa.Connection, ev: RunRecorded) -> None:
        created = conn.execute(self._q_run_insert, _run_row(ev)).first()
        if created is not None:
            return  # a new run holds exactly what the event says
        row = conn.execute(self._q_run_get, {"rid": ev.run_id}).one()
        changes = _run_changes(row._mapping, ev)
        if changes:
            conn.execute(self._q_run_update, {"rid": ev.run_id, **changes})

    def _artifact_for_write(
        self, conn: sa.Connection, batch: WriteBatch, name: str, type_: str | None, at: datetime
    ) -> tuple[KnownArtifact, bool]:
        """The artifact, locked, and whether this transaction created it. A new artifact is
        created with label v0 already counted: the caller's version is its first."""
        name = validate_name(name)
        art = batch.locked(name)
        if art is None and batch.artifact_known(name) is not False:
            batch.flush()
            row = conn.execute(self._q_artifact_get, {"name": name}).first()
            art = None if row is None else batch.locked_artifact(row)
        if art is None:
            created = conn.execute(
                self._q_artifact_insert,
                {
                    "name": name,
                    "type": type_,
                    "description": None,
                    "created_at": at,
                    "next_label": 1,
                    "n_versions": 1,
                    "updated_at": at,
                },
            ).first()
            if created is not None:
                return batch.created_artifact(created), True
            batch.flush()
            art = batch.locked_artifact(conn.execute(self._q_artifact_get, {"name": name}).one())  # another's
        if type_ and art.type and type_ != art.type:
            raise Conflict(f"artifact {name!r} has type {art.type!r}, not {type_!r}")
        if type_ and not art.type:
            art.type = type_
            conn.execute(self._q_artifact_update, {"aid": art.id, "type": type_})
        return art, False

    def _apply_version(self, conn: sa.Connection, batch: WriteBatch, ev: VersionRecorded, notices: list[str]) -> None:
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
        art, new_artifact = self._artifact_for_write(conn, batch, ev.name, ev.type, ev.time)
        # An artifact created just now has no versions: this one is its v0, counted at its insert.
        existing: Any = None
        if not new_artifact:
            existing = batch.version_by_digest(art.id, ev.digest)
            if existing is None:  # not read by the batch: the database's answer
                batch.flush()
                existing = conn.execute(self._q_version_by_digest, {"aid": art.id, "digest": ev.digest}).first()
            existing = existing or None
        created = existing is None
        if existing is None:
            label = 0 if new_artifact else batch.count_version(art, ev.time)
            row = {
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
            }
            version_id = batch.add_version(row)
            if version_id is None:
                version_id = conn.execute(self._q_version_insert, row).scalar_one()
            batch.created_version(art.id, art.name, row, version_id)
            if ev.entries:  # size and n_entries are already theirs
                batch.add_entries([_entry_row(version_id, e) for e in ev.entries])
        else:
            version_id = existing.id
            if existing.deleted_at is not None and not (ev.run_id and ev.direction):
                raise Conflict(f"{ev.name}@{ev.digest} was deleted; its content cannot be logged again")
            if existing.deleted_at is None and not is_content_digest(ev.digest):
                # Pointer digests (ol:, unverified:) do not pin the entries: they must agree, but a
                # placeholder (an input seen before anything was known of it) may learn its location.
                batch.flush()
                known = self._entries(conn, [version_id])[version_id]
                if not known and ev.entries:
                    self._insert_entries(conn, version_id, ev.entries)
                elif {(e.path, e.digest, e.size) for e in known} != {(e.path, e.digest, e.size) for e in ev.entries}:
                    raise Conflict(f"version {ev.name}@{ev.digest} is committed with other entries")
            if ev.direction == "produced" and existing.produced_by is None:
                batch.set_producer(existing if isinstance(existing, KnownVersion) else None, version_id, ev.run_id)
        if ev.run_id and ev.direction:
            # A version's metadata is frozen at its first commit; later producers keep theirs here.
            edge_meta = ev.edge_metadata if created else {**ev.metadata, **ev.edge_metadata}
            self._add_edge(batch, ev.run_id, version_id, ev.direction, ev.exact, edge_meta, ev.time)
            if ev.inputs:
                batch.flush()
                self._add_output_inputs(conn, ev.run_id, version_id, ev.inputs, ev.time)
        if existing is not None and existing.deleted_at is not None:
            # A run read or wrote bytes that were deleted: its edge is lineage, kept on the
            # tombstone (docs/architecture.md); nothing is made alive again (no alias, no tag).
            notices.append(_tombstone_notice(f"{ev.name}@{ev.digest}", ev.run_id, ev.direction))
            return
        stored = {e.digest for e in ev.entries if e.ref is None}
        if stored and (ev.allow_purged or batch.purged_known(stored) != set()):
            # Purged content among its files (or not known here): marked as it arrives.
            batch.flush()
            on_arrival(conn, ev, version_id, created, notices)
        if created or ev.direction != "used":
            self._move_alias(conn, batch, art.id, LATEST, version_id, ev.time, unset=new_artifact)
        for alias in ev.aliases:
            self._move_alias(conn, batch, art.id, validate_alias(alias), version_id, ev.time)
        self._add_tags(batch, version_id, ev.tags)

    def _insert_entries(
        self, conn: sa.Connection, version_id: int, new: Sequence[ManifestEntry], *, count: bool = True
    ) -> None:
        for part in _chunks(new, 10_000):  # a million entries: parameter rows built a part at a time
            conn.execute(self._q_entries_insert, [_entry_row(version_id, e) for e in part])
        if count:
            conn.execute(
                self._q_version_size,
                {"vid": version_id, "size": sum(e.size for e in new), "n_entries": len(new)},
            )

    def _add_edge(
        self,
        batch: WriteBatch,
        run_id: str,
        version_id: int,
        direction: str,
        exact: bool,
        metadata: dict[str, Any],
        at: datetime,
    ) -> None:
        batch.add_edge(
            {
                "run_id": run_id,
                "version_id": version_id,
                "direction": direction,
                "exact": exact,
                "metadata": metadata,
                "created_at": at,
            }
        )

    def _add_output_inputs(
        self, conn: sa.Connection, run_id: str, output_id: int, refs: Sequence[str], at: datetime
    ) -> None:
        """Record which inputs made this output. Each REF is resolved as the run's input edge to
        it was (by digest, else as of `at`, else the artifact's latest or placeholder); the client
        sends those edges first, in the same batch."""
        rows = []
        for text in dict.fromkeys(refs):
            input_id = self._input_of(conn, run_id, text, at)
            if input_id is not None:
                rows.append({"run_id": run_id, "output_id": output_id, "input_id": input_id, "created_at": at})
        if rows:
            conn.execute(
                self._insert(output_inputs).on_conflict_do_nothing(index_elements=["run_id", "output_id", "input_id"]),
                rows,
            )

    def _input_of(self, conn: sa.Connection, run_id: str, text: str, at: datetime) -> int | None:
        name, _, digest = text.rpartition("@")
        found = conn.execute(self._q_version_by_name_digest, {"name": name, "digest": digest}).first() if name else None
        if found is not None:
            return int(found.id)
        ref = parse_ref(text, is_artifact=lambda n: self._artifact_id(conn, n) is not None)
        for candidate, when in ((ref, at), (Ref(ref.name), at)):
            try:
                return self._resolve(conn, candidate, at=when)
            except NotFound:
                continue
        placeholder = conn.execute(
            self._q_version_by_name_digest, {"name": ref.name, "digest": f"unverified:{run_id}"}
        ).first()
        return None if placeholder is None else int(placeholder.id)

    def _edge_target(self, batch: WriteBatch, text: str) -> KnownVersion | None:
        """The version an edge's REF names, from what the batch read: by full digest or by label
        (an alias depends on the event's time, a digest prefix on other versions: the database's)."""
        name, at, digest = text.rpartition("@")
        art = batch.artifact(name) if at else None
        if art is not None:
            found = batch.version_by_digest(art.id, digest)
            if isinstance(found, KnownVersion):
                return found
        is_artifact = batch.artifact_known(validate_name(text)) if _is_name(text) else False
        if is_artifact is None:
            return None
        ref = parse_ref(text, is_artifact=lambda _: bool(is_artifact))
        art = batch.artifact(ref.name)
        number = None if art is None or ref.label is None else label_number(ref.label)
        return None if art is None or number is None else batch.version_by_label(art.id, number)

    def _apply_edge(self, conn: sa.Connection, batch: WriteBatch, ev: EdgeRecorded, notices: list[str]) -> None:
        exact, metadata = ev.exact, ev.metadata
        found: Any = self._edge_target(batch, ev.ref)
        if found is None:
            batch.flush()  # what follows reads the database
            found = self._edge_target_in_database(conn, batch, ev, notices)
            if found is None:
                return  # recorded on a placeholder
            found, exact, metadata = found
        version_id = found.id
        if found.deleted_at is not None:
            # A REF to a deleted version (a label, a digest, an alias as it was): the edge is kept.
            notices.append(_tombstone_notice(found.ref, ev.run_id, ev.direction))
        self._add_edge(batch, ev.run_id, version_id, ev.direction, exact, metadata, ev.time)
        if ev.direction == "produced":
            batch.set_producer(found if isinstance(found, KnownVersion) else None, version_id, ev.run_id)

    def _edge_target_in_database(
        self, conn: sa.Connection, batch: WriteBatch, ev: EdgeRecorded, notices: list[str]
    ) -> tuple[Any, bool, dict[str, Any]] | None:
        """The edge's version (id, deleted_at, ref), exact and metadata, resolved by the database;
        None when the edge went to a placeholder version (applied here)."""
        exact, metadata = ev.exact, ev.metadata
        name, _, digest = ev.ref.rpartition("@")
        # An input resolved by the client to its full digest: one query.
        found = conn.execute(self._q_version_by_name_digest, {"name": name, "digest": digest}).first() if name else None
        if found is not None:
            return found, exact, metadata
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
                    batch,
                    VersionRecorded(
                        id=ev.id,
                        time=ev.time,
                        name=ref.name,
                        digest=f"unverified:{ev.run_id}",
                        entries=[],
                        run_id=ev.run_id,
                        direction=ev.direction,
                        exact=False,
                        edge_metadata=metadata,
                    ),
                    notices,
                )
                return None
        return conn.execute(self._q_version_by_id, {"vid": version_id}).one(), exact, metadata

    def _apply_alias(self, conn: sa.Connection, batch: WriteBatch, ev: AliasMoved) -> None:
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
        self._move_alias(conn, batch, artifact_id, alias, version_id, ev.time)

    def _move_alias(
        self,
        conn: sa.Connection,
        batch: WriteBatch,
        artifact_id: int,
        alias: str,
        version_id: int | None,
        at: datetime,
        *,
        unset: bool = False,  # known to point nowhere yet (an artifact created by this transaction)
    ) -> None:
        current = None if unset else batch.alias(artifact_id, alias)
        if current is None and not unset:  # not read by the batch: the database's answer
            batch.flush()
            row = conn.execute(self._q_alias_get, {"aid": artifact_id, "alias": alias}).first()
            current = None if row is None else (row.version_id, row.moved_at)
        if isinstance(current, tuple) and current[0] == version_id and current[1] <= at:
            return  # re-pointing at the same version is not a move
        batch.move_alias(artifact_id, alias, version_id, at)

    def _add_tags(self, batch: WriteBatch, version_id: int, new_tags: Iterable[str]) -> None:
        batch.add_tags([{"version_id": version_id, "tag": check_tag(t)} for t in dict.fromkeys(new_tags)])

    def _apply_tags(self, conn: sa.Connection, batch: WriteBatch, ev: TagsChanged) -> None:
        version_id = self._resolve(conn, Ref(ev.name, digest=ev.digest))
        self._add_tags(batch, version_id, ev.add)
        if ev.remove:
            batch.flush()  # added, then removed: in the event's order
            conn.execute(sa.delete(tags).where(tags.c.version_id == version_id, tags.c.tag.in_(ev.remove)))

    def _apply_delete(self, conn: sa.Connection, batch: WriteBatch, ev: VersionDeleted) -> None:
        version_id = self._resolve(conn, Ref(ev.name, digest=ev.digest))
        artifact_id = self._artifact_id(conn, ev.name)
        assert artifact_id is not None
        deleted = conn.execute(
            sa.update(versions)
            .where(versions.c.id == version_id, versions.c.deleted_at.is_(None))
            .values(deleted_at=ev.time)
        ).rowcount
        if deleted:
            # Under the artifact's lock (taken by prefetch): its count and last update, as listed.
            conn.execute(
                sa.update(artifacts)
                .where(artifacts.c.id == artifact_id)
                .values(
                    n_versions=artifacts.c.n_versions - 1,
                    updated_at=sa.select(sa.func.max(versions.c.created_at))
                    .where(versions.c.artifact_id == artifact_id, versions.c.deleted_at.is_(None))
                    .scalar_subquery(),
                )
            )
        audit_delete(conn, ev, version_id)
        pointing = conn.execute(
            sa.select(aliases.c.alias).where(aliases.c.artifact_id == artifact_id, aliases.c.version_id == version_id)
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
            self._move_alias(conn, batch, artifact_id, alias, replacement, ev.time)


def _run_row(ev: RunRecorded) -> dict[str, Any]:
    """A new run holds exactly what its first event says."""
    return {
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
    }


def _run_changes(row: Mapping[Any, Any], ev: RunRecorded) -> dict[str, Any]:
    """The columns `ev` changes in a run's row (SQL column names), by the rules events merge by."""
    changes: dict[str, Any] = {}
    for field, column in (
        ("job", "job"),
        ("job_namespace", "job_namespace"),
        ("orchestrator", "orchestrator"),
        ("run_kind", "kind"),
        ("parent_id", "parent_id"),
    ):
        value = getattr(ev, field)
        if value is not None and value != row[column]:
            changes[column] = value
    # A finished run keeps the error of how it finished: a late `failed` after `succeeded`
    # (or a second failure) does not rewrite it; the same outcome may still fill it in.
    if (
        ev.error is not None
        and ev.error != row["error"]
        and (row["status"] not in TERMINAL_STATUSES or (row["error"] is None and ev.status in (None, row["status"])))
    ):
        changes["error"] = ev.error
    if ev.started_at is not None and (row["started_at"] is None or ev.started_at < row["started_at"]):
        changes["started_at"] = ev.started_at
    if ev.ended_at is not None and row["ended_at"] is None:
        changes["ended_at"] = ev.ended_at
    for column, value in (("params", ev.params), ("code", ev.code), ("links", ev.links)):
        if value:
            merged = {**(row[column] or {}), **value}
            if merged != row[column]:
                changes[column] = merged
    if ev.status is not None and ev.status != row["status"]:
        # Terminal states never revert; otherwise the later event wins (events may arrive late).
        if row["status"] not in TERMINAL_STATUSES and (ev.status in TERMINAL_STATUSES or ev.time >= row["status_at"]):
            changes["status"] = ev.status
            changes["status_at"] = ev.time
    return changes


def _entry_row(version_id: int, e: ManifestEntry) -> dict[str, Any]:
    return {"version_id": version_id, "path": e.path, "digest": e.digest, "size": e.size, "ref": e.ref}


def _is_name(text: str) -> bool:
    try:
        validate_name(text)
    except HeadwaterError:
        return False
    return True
