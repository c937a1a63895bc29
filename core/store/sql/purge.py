"""The SQL store's purges and its append-only audit log.

A purge marks every stored entry of the purged file digests with the audit row that records it
(`entries.purge_id`): the entry keeps its digest and size, and with `redact` its path becomes
`purged-<audit id>-<n>`. Versions, runs and edges stay. Content that arrives after a purge (a
batch from another machine's outbox, a pipeline writing the same bytes again) is recorded and
marked at once, never refused, unless the event says `allow_purged`. The bytes themselves are
removed by whoever holds them (headwater.purge, the tracking server) once this is committed.

The audit log is only ever inserted into: purges, deletes and (later) retention removals.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from headwater.errors import Conflict
from headwater.events import ContentPurged, VersionDeleted, VersionRecorded
from headwater.models import AuditAction, AuditRecord
from headwater.store.schema import artifacts, audit_log, entries, versions
from headwater.store.sql.engine import SQLEngine, _chunks, none_purged

UNKNOWN_WHO = "unknown"


def label_of(number: int) -> str:
    return f"v{number}"


def redacted_path(audit_id: int, n: int) -> str:
    """What a purged entry's path becomes with `redact`: nothing of the original name remains."""
    return f"purged-{audit_id}-{n}"


def add_audit(
    conn: sa.Connection,
    *,
    event_id: str,
    at: datetime,
    who: str,
    action: AuditAction,
    target: str,
    reason: str | None,
    details: dict[str, Any],
) -> int:
    return int(
        conn.execute(
            sa.insert(audit_log)
            .values(
                event_id=event_id,
                at=at,
                who=who,
                action=action,
                target=target,
                reason=reason,
                details=details,
            )
            .returning(audit_log.c.id)
        ).scalar_one()
    )


def _refs(conn: sa.Connection, version_ids: Collection[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(sorted(version_ids)):
        for row in conn.execute(
            sa.select(versions.c.id, versions.c.label, artifacts.c.name)
            .join(artifacts, artifacts.c.id == versions.c.artifact_id)
            .where(versions.c.id.in_(chunk))
        ):
            found[row.id] = f"{row.name}:{label_of(row.label)}"
    return found


def apply_purge(conn: sa.Connection, ev: ContentPurged, notices: list[str]) -> int:
    """Mark the entries holding `ev.digests`, and record the purge; returns its audit id."""
    hits: list[Any] = []
    for chunk in _chunks(sorted(set(ev.digests))):
        hits.extend(
            conn.execute(
                sa.select(entries.c.version_id, entries.c.path)
                .where(entries.c.digest.in_(chunk), entries.c.ref.is_(None), entries.c.purge_id.is_(None))
                .order_by(entries.c.version_id, entries.c.path)
            )
        )
    refs = _refs(conn, {row.version_id for row in hits})
    details = {
        "digests": sorted(set(ev.digests)),
        "versions": sorted(refs.values()),
        "files": len(hits),
        "references": sorted(set(ev.references)),
        "redacted": ev.redact,
    }
    audit_id = add_audit(
        conn,
        event_id=ev.id,
        at=ev.time,
        who=ev.who,
        action="purge",
        target=ev.selection or ", ".join(sorted(set(ev.digests))),
        reason=ev.reason,
        details=details,
    )
    _mark(conn, audit_id, [(row.version_id, row.path) for row in hits], ev.redact)
    if ev.redact and conn.dialect.name == "sqlite":
        # Freed pages are zeroed from now on this connection, so the old names do not linger.
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    return audit_id


def _mark(conn: sa.Connection, audit_id: int, hits: Sequence[tuple[int, str]], redact: bool) -> None:
    if not hits:
        return
    where = sa.and_(entries.c.version_id == sa.bindparam("vid"), entries.c.path == sa.bindparam("old"))
    if not redact:
        conn.execute(
            sa.update(entries).where(where).values(purge_id=audit_id),
            [{"vid": vid, "old": path} for vid, path in hits],
        )
        return
    counters: dict[int, int] = defaultdict(int)
    rows = []
    for vid, path in hits:
        rows.append({"vid": vid, "old": path, "new": redacted_path(audit_id, counters[vid])})
        counters[vid] += 1
    conn.execute(
        sa.update(entries).where(where).values(purge_id=audit_id, path=sa.bindparam("new")),
        rows,
    )


def _last_purges(conn: sa.Connection, digests: Collection[str]) -> dict[str, int]:
    """The newest purge of each of `digests` that was purged (digest -> audit id)."""
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(digests)):
        for row in conn.execute(
            sa.select(entries.c.digest, sa.func.max(entries.c.purge_id).label("purge_id"))
            .where(entries.c.digest.in_(chunk), entries.c.purge_id.is_not(None))
            .group_by(entries.c.digest)
        ):
            found[row.digest] = row.purge_id
    return found


def purged_among(conn: sa.Connection, digests: Collection[str]) -> set[str]:
    if not digests or none_purged(conn):
        return set()
    return set(_last_purges(conn, digests))


def on_arrival(conn: sa.Connection, ev: VersionRecorded, version_id: int, created: bool, notices: list[str]) -> None:
    """A version recorded after a purge of some of its files: new entries of purged content are
    marked at once (its bytes are not kept); with `allow_purged`, an existing version's purged
    entries are restored as the event states them (the same version digest: the same paths)."""
    stored = {e.digest for e in ev.entries if e.ref is None}
    if not stored:
        return
    if ev.allow_purged:
        if not created:
            purged = conn.execute(
                sa.select(entries.c.path).where(entries.c.version_id == version_id, entries.c.purge_id.is_not(None))
            ).first()
            if purged is not None:
                conn.execute(sa.delete(entries).where(entries.c.version_id == version_id))
                conn.execute(
                    sa.insert(entries),
                    [
                        {"version_id": version_id, "path": e.path, "digest": e.digest, "size": e.size, "ref": e.ref}
                        for e in ev.entries
                    ],
                )
        return
    if not created:
        return
    last = _last_purges(conn, stored)
    if not last:
        return
    redacting = {
        row.id
        for row in conn.execute(
            sa.select(audit_log.c.id, audit_log.c.details).where(audit_log.c.id.in_(set(last.values())))
        )
        if (row.details or {}).get("redacted")
    }
    by_purge: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for entry in ev.entries:
        if entry.ref is None and entry.digest in last:
            by_purge[last[entry.digest]].append((version_id, entry.path))
    for audit_id, hits in by_purge.items():
        _mark(conn, audit_id, hits, audit_id in redacting)
    count = sum(len(h) for h in by_purge.values())
    notices.append(
        f"{ev.name}@{ev.digest}: {count} file(s) hold purged content; recorded as purged, their bytes are "
        "not kept (allow_purged stores them again)"
    )


def audit_delete(conn: sa.Connection, ev: VersionDeleted, version_id: int) -> None:
    ref = _refs(conn, [version_id])[version_id]
    add_audit(
        conn,
        event_id=ev.id,
        at=ev.time,
        who=ev.who or UNKNOWN_WHO,
        action="retention" if ev.retention else "delete",
        target=ref,
        reason=ev.reason,
        details={"digest": ev.digest},
    )


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=row.at,
        who=row.who,
        action=row.action,
        target=row.target,
        reason=row.reason,
        details=row.details or {},
    )


def purge_info(conn: sa.Connection, version_ids: Sequence[int]) -> dict[int, tuple[list[str], list[AuditRecord]]]:
    """For versions with purged entries: their paths (sorted) and the purges that marked them."""
    paths: dict[int, list[str]] = defaultdict(list)
    purge_ids: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(list(version_ids)):
        for row in conn.execute(
            sa.select(entries.c.version_id, entries.c.path, entries.c.purge_id).where(
                entries.c.purge_id.is_not(None), entries.c.version_id.in_(chunk)
            )
        ):
            paths[row.version_id].append(row.path)
            purge_ids[row.version_id].add(row.purge_id)
    if not paths:
        return {}
    records = {
        row.id: _record(row)
        for row in conn.execute(sa.select(audit_log).where(audit_log.c.id.in_(set().union(*purge_ids.values()))))
    }
    return {
        vid: (sorted(found), [records[i] for i in sorted(purge_ids[vid]) if i in records])
        for vid, found in paths.items()
    }


class SQLPurge(SQLEngine):
    """The Store calls of purges and the audit log (the purge itself is an event: Store.apply)."""

    def purged_digests(self, digests: Collection[str]) -> set[str]:
        with self._read() as conn:
            return purged_among(conn, digests)

    def audit(self, limit: int | None = None, action: str | None = None) -> list[AuditRecord]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc())
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def purge(self, event: ContentPurged) -> tuple[AuditRecord, list[str]]:
        self.apply([event])
        with self._read() as conn:
            row = conn.execute(sa.select(audit_log).where(audit_log.c.event_id == event.id)).first()
        if row is None:  # the id was applied before, as an event of another kind: nothing purged
            raise Conflict(f"event id {event.id} was already used by another event: a purge needs an id of its own")
        return _record(row), []
