"""What a batch of events read once and has yet to write: the SQL store's write path in few round trips.

A batch of 100 events applied one statement at a time is ~500 round trips. Instead, before the
first event (SQLWrites._apply_once):

- what needs no lock is done first (`read_ahead`), since every artifact lock is held until the
  commit and concurrent batches naming the same artifacts wait for it in turn: the artifacts its
  edges only read, ids for its new versions, which of its stored file digests were purged; then
  its event ids are claimed and the runs it records inserted, in one multi-row statement each;
- then the artifacts it writes are locked in name order (the lock order every writer uses, so two
  batches never deadlock on them; on PostgreSQL their names first, so that one not created yet
  is locked too) and read, with the versions its events name by label or digest and the aliases
  of the artifacts it writes (`prefetch`). On SQLite, whose BEGIN IMMEDIATE already holds the
  only lock there is, the artifacts its edges only read are read there too: one statement for
  every artifact the batch names, one for their versions.

The runs a batch's first events record are inserted as one row each, holding every one of those
events of the run (SQLWrites._insert_runs): a run's start and end delivered together are one row.

While the events are applied in order, reads are answered from what was read (a miss goes to the
database), and pure writes (entries, edges, producers, alias moves, tags, label counters) wait in
buffers written in a few multi-row statements. Anything that reads the database directly first
writes the buffers (`flush`), so it sees every earlier event of the batch. Version rows are
inserted at once: their ids are needed by what follows.

A cached row stays true for the whole transaction: the artifacts written are locked, versions are
only inserted by this path (a delete, a purge or an alias command first flushes and `forget`s
everything), and artifact ids never change.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from headwater.errors import HeadwaterError
from headwater.events import AliasMoved, EdgeRecorded, Event, RunRecorded, VersionDeleted, VersionRecorded
from headwater.refs import parse_ref, validate_name
from headwater.store.schema import alias_moves, aliases, artifacts, entries, versions
from headwater.store.sql.engine import _chunks
from headwater.store.sql.purge import purged_among

_LABEL_MAX = 2**31 - 1  # versions.label is a 32-bit integer on PostgreSQL
# Events the batch applies from what it read; any other kind flushes and forgets first.
SIMPLE = (RunRecorded, VersionRecorded, EdgeRecorded)


class Statements(NamedTuple):
    """The multi-row writes of a flush, built once as the store opens (SQLWrites._prepare)."""

    counters: Any  # an artifact's next label, its count of live versions and last update
    edge_insert: Any
    produced_by: Any
    alias_set: Any
    tag_insert: Any
    # The reads of read_ahead and prefetch, each name, key or id list an expanding parameter.
    artifacts: Any
    artifacts_locked: Any  # FOR UPDATE on PostgreSQL
    versions: dict[tuple[bool, bool], Any]  # by (any digest keys, any label keys)
    aliases: Any


def read_statements(lock: Any) -> dict[str, Any]:
    """Statements' fields of the batch's reads, built once (SQLWrites._prepare)."""
    names: Any = sa.bindparam("names", expanding=True)
    query = sa.select(artifacts).where(artifacts.c.name.in_(names)).order_by(artifacts.c.name)
    columns = (
        versions.c.id,
        versions.c.artifact_id,
        versions.c.label,
        versions.c.digest,
        versions.c.produced_by,
        versions.c.deleted_at,
    )
    by_digest = sa.tuple_(versions.c.artifact_id, versions.c.digest).in_(sa.bindparam("digests", expanding=True))
    by_label = sa.tuple_(versions.c.artifact_id, versions.c.label).in_(sa.bindparam("labels", expanding=True))
    return {
        "artifacts": query,
        "artifacts_locked": lock(query),
        "versions": {
            (True, False): sa.select(*columns).where(by_digest),
            (False, True): sa.select(*columns).where(by_label),
            (True, True): sa.select(*columns).where(sa.or_(by_digest, by_label)),
        },
        "aliases": sa.select(aliases.c.artifact_id, aliases.c.alias, aliases.c.version_id, aliases.c.moved_at).where(
            aliases.c.artifact_id.in_(sa.bindparam("ids", expanding=True))
        ),
    }


@dataclass
class KnownArtifact:
    id: int
    name: str
    type: str | None
    description: str | None
    next_label: int
    locked: bool  # read FOR UPDATE (or created) by this transaction: its counter is ours to bump


@dataclass
class KnownVersion:
    id: int
    label: int
    digest: str
    produced_by: str | None
    deleted_at: datetime | None
    ref: str  # name@digest, as a tombstone notice says it


# Advisory locks on the artifact names a batch writes (PostgreSQL): the two-key form, in a space of
# their own ("HWar"), keyed by a 32-bit hash of the name (a collision only serialises two names).
_NAME_LOCKS = 0x4857_6172
_LOCK_NAMES = sa.text(
    # unnest scans the sorted array in its order
    "SELECT count(pg_advisory_xact_lock(:space, k)) FROM unnest(CAST(:keys AS integer[])) AS u(k)"
)


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode()) - 2**31


def label_number(label: str) -> int | None:
    digits = label[1:]
    number = int(digits) if len(digits) <= len(str(_LABEL_MAX)) else _LABEL_MAX + 1
    return None if number > _LABEL_MAX else number


def _valid_name(text: str) -> str | None:
    try:
        return validate_name(text)
    except HeadwaterError:
        return None


class WriteBatch:
    def __init__(self, conn: sa.Connection, statements: Statements, *, sequences: bool) -> None:
        self.conn = conn
        self._sequences = sequences  # PostgreSQL: version ids are taken ahead, so versions wait too
        self.statements = statements
        self.active = True
        self.artifacts: dict[str, KnownArtifact] = {}
        self.names_read: set[str] = set()  # looked up: a name here but not in `artifacts` has none
        self.by_digest: dict[tuple[int, str], KnownVersion] = {}
        self.by_label: dict[tuple[int, int], KnownVersion] = {}
        self.digests_read: set[tuple[int, str]] = set()
        self.keys_read: set[tuple[int, Any]] = set()  # (artifact id, digest or label) read already
        self.aliases: dict[tuple[int, str], tuple[int | None, datetime]] = {}
        self.aliases_read: set[int] = set()  # artifact ids whose every alias is in `aliases`
        self.created_ids: set[int] = set()  # artifacts created here: every version of theirs is known
        self.purged: set[str] = set()
        self.purges_read: set[str] = set()
        # Buffers, written by flush() in this order (entries, edges and aliases name versions).
        # artifact id -> its next label, versions added, and the newest created_at among them
        self._counters: dict[int, tuple[int, int, datetime]] = {}
        self._version_ids: list[int] = []  # taken from the sequence for the versions of the batch
        self._versions: list[dict[str, Any]] = []
        self._entries: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] = []
        self._producers: list[dict[str, Any]] = []
        self._moves: list[dict[str, Any]] = []
        self._alias_sets: dict[tuple[int, str], dict[str, Any]] = {}
        self._tags: list[dict[str, Any]] = []

    # -- reading what the batch names, once ----------------------------------------------------

    def read_ahead(self, events: Sequence[Event]) -> None:
        """What needs no lock, read before any is taken (every lock is held until the commit):
        the artifacts the batch's edges only read, ids for its new versions, and which of its
        stored file digests were purged. On SQLite, BEGIN IMMEDIATE has already taken the only
        lock there is: what the batch names is all read at once, by prefetch."""
        simple = self._simple(events)
        if self._sequences:
            self._read_artifacts(sorted(self._read_only(simple) - self._written(events)), locked=set())
            # the versions its edges name in those (a name it also writes is not read yet: later)
            self._read_versions(*self._version_keys(simple))
        recorded = sum(isinstance(e, VersionRecorded) for e in simple)
        if self._sequences and recorded > 1:
            self._version_ids = list(
                self.conn.execute(
                    sa.select(sa.func.nextval(sa.func.pg_get_serial_sequence("versions", "id"))).select_from(
                        sa.func.generate_series(1, recorded)
                    )
                ).scalars()
            )
        stored = {
            entry.digest for e in simple if isinstance(e, VersionRecorded) for entry in e.entries if entry.ref is None
        }
        if stored:
            self.purged = purged_among(self.conn, stored)
            self.purges_read = stored

    def prefetch(self, events: Sequence[Event]) -> None:
        """Lock the batch's existing artifacts in name order, before any write (two servers applying
        batches naming the same artifacts in another order would otherwise each hold one lock and
        wait for the other's), and read what its simple events will look up."""
        simple = self._simple(events)
        written = self._written(events)
        if self._sequences and written:
            # A name not there yet has no row to lock: two batches creating the same artifacts in
            # other orders would each insert one and wait on the other's, and a batch that finds
            # one created meanwhile would lock its row out of order. So every name written is
            # locked first, in one order (held until the commit, like a row lock), then its row.
            self.conn.execute(_LOCK_NAMES, {"space": _NAME_LOCKS, "keys": sorted({_name_key(n) for n in written})})
        names = written if self._sequences else written | self._read_only(simple)
        self._read_artifacts(sorted(names - self.names_read), locked=written)
        self._read_versions(*self._version_keys(simple))
        self._read_aliases([a.id for a in self.artifacts.values() if a.locked and a.id not in self.aliases_read])

    def _read_only(self, simple: list[Event]) -> set[str]:
        """The artifact names the batch's edges may read."""
        names: set[str] = set()
        for e in simple:
            if isinstance(e, EdgeRecorded):
                names.update(self._edge_names(e.ref))
        return names

    def _version_keys(self, simple: list[Event]) -> tuple[set[tuple[int, str]], set[tuple[int, int]]]:
        """(artifact id, digest) and (artifact id, label) of the versions the events name, among
        the artifacts read and not read yet."""
        digest_keys: set[tuple[int, str]] = set()
        label_keys: set[tuple[int, int]] = set()
        for e in simple:
            if isinstance(e, VersionRecorded):
                art = self.artifacts.get(e.name)
                if art is not None:
                    digest_keys.add((art.id, e.digest))
            elif isinstance(e, EdgeRecorded):
                key = self._edge_key(e.ref)
                if isinstance(key, tuple) and isinstance(key[1], str):
                    digest_keys.add(key)
                elif key is not None:
                    label_keys.add(key)
        return digest_keys - self.keys_read, label_keys - self.keys_read

    @staticmethod
    def _simple(events: Sequence[Event]) -> list[Event]:
        """The batch's first events, up to one of another kind."""
        simple: list[Event] = []
        for event in events:
            if not isinstance(event, SIMPLE):
                break
            simple.append(event)
        return simple

    @staticmethod
    def _written(events: Sequence[Event]) -> set[str]:
        """The artifacts the batch writes: those its first events log versions of, and those its
        later events write (a version, an alias, a delete) are locked up front too, in one order."""
        return {
            name
            for e in events
            if isinstance(e, (VersionRecorded, AliasMoved, VersionDeleted))
            and (name := _valid_name(e.name)) is not None
        }

    def _edge_names(self, text: str) -> set[str]:
        """The artifact names an edge's REF may mean: the whole text, and the name before a suffix."""
        names = set()
        whole = _valid_name(text)
        if whole is not None:
            names.add(whole)
        name, at, _ = text.rpartition("@")
        if at and (valid := _valid_name(name)) is not None:
            names.add(valid)
        try:
            names.add(parse_ref(text).name)
        except HeadwaterError:
            pass
        return names

    def _edge_key(self, text: str) -> tuple[int, str] | tuple[int, int] | None:
        """(artifact id, full digest) or (artifact id, label number) of an edge's REF, if read."""
        name, at, digest = text.rpartition("@")
        art = self.artifacts.get(name) if at else None
        if art is not None:
            return (art.id, digest)
        try:
            ref = parse_ref(text, is_artifact=lambda n: self.artifact_known(n) is True)
        except HeadwaterError:
            return None
        art = self.artifacts.get(ref.name)
        if art is None or ref.label is None:
            return None
        number = label_number(ref.label)
        return None if number is None else (art.id, number)

    def _read_artifacts(self, names: list[str], *, locked: set[str]) -> None:
        """The artifacts named, those in `locked` read FOR UPDATE (on PostgreSQL)."""
        query = self.statements.artifacts_locked if locked else self.statements.artifacts
        for chunk in _chunks(names):
            for row in self.conn.execute(query, {"names": list(chunk)}):
                self.artifacts[row.name] = KnownArtifact(
                    row.id, row.name, row.type, row.description, row.next_label, row.name in locked
                )
        self.names_read.update(names)

    def _read_versions(self, digest_keys: set[tuple[int, str]], label_keys: set[tuple[int, int]]) -> None:
        """The versions named by (artifact id, digest) or (artifact id, label), in one statement
        (a chunk of each at a time); a digest not found is known not to exist."""
        name_of = {a.id: a.name for a in self.artifacts.values()}
        by_digest, by_label = list(_chunks(sorted(digest_keys))), list(_chunks(sorted(label_keys)))
        for n in range(max(len(by_digest), len(by_label))):
            digests = list(by_digest[n]) if n < len(by_digest) else []
            labels = list(by_label[n]) if n < len(by_label) else []
            query = self.statements.versions[bool(digests), bool(labels)]
            for row in self.conn.execute(query, {"digests": digests, "labels": labels}):
                self._know(row.artifact_id, name_of[row.artifact_id], row)
        self.digests_read.update(digest_keys)
        self.keys_read.update(digest_keys, label_keys)

    def _know(self, artifact_id: int, name: str, row: Any) -> KnownVersion:
        known = KnownVersion(row.id, row.label, row.digest, row.produced_by, row.deleted_at, f"{name}@{row.digest}")
        self.by_digest[(artifact_id, row.digest)] = known
        self.by_label[(artifact_id, row.label)] = known
        return known

    def _read_aliases(self, artifact_ids: list[int]) -> None:
        for chunk in _chunks(sorted(artifact_ids)):
            for row in self.conn.execute(self.statements.aliases, {"ids": list(chunk)}):
                self.aliases[(row.artifact_id, row.alias)] = (row.version_id, row.moved_at)
        self.aliases_read.update(artifact_ids)

    # -- answers from what was read (None: not known here, ask the database) ------------------

    def artifact_known(self, name: str) -> bool | None:
        if not self.active or name not in self.names_read:
            return None
        return name in self.artifacts

    def artifact(self, name: str) -> KnownArtifact | None:
        return self.artifacts.get(name) if self.active else None

    def locked(self, name: str) -> KnownArtifact | None:
        """The artifact if this transaction holds its lock (a version of it may be counted)."""
        art = self.artifact(name)
        return art if art is not None and art.locked else None

    def version_by_digest(self, artifact_id: int, digest: str) -> KnownVersion | None | bool:
        """The version; False when it is known not to exist; None when not known here."""
        if not self.active:
            return None
        found = self.by_digest.get((artifact_id, digest))
        if found is not None:
            return found
        known = (artifact_id, digest) in self.digests_read or artifact_id in self.created_ids
        return False if known else None

    def version_by_label(self, artifact_id: int, number: int) -> KnownVersion | None:
        return self.by_label.get((artifact_id, number)) if self.active else None

    def alias(self, artifact_id: int, alias: str) -> tuple[int | None, datetime] | None | bool:
        """(version id, moved at); False when it is known not to be set; None when not known here."""
        if not self.active or artifact_id not in self.aliases_read:
            return None
        return self.aliases.get((artifact_id, alias), False)

    def purged_known(self, digests: set[str]) -> set[str] | None:
        if not self.active or not digests <= self.purges_read:
            return None
        return digests & self.purged

    # -- what this transaction adds --------------------------------------------------------------

    def created_artifact(self, row: Any) -> KnownArtifact:
        """An artifact this transaction created: it has no versions and no aliases yet."""
        art = self.locked_artifact(row)
        if self.active:
            self.aliases_read.add(art.id)
            self.created_ids.add(art.id)
        return art

    def locked_artifact(self, row: Any) -> KnownArtifact:
        """An artifact read FOR UPDATE by the per-event path (after a flush): known from now on."""
        art = KnownArtifact(row.id, row.name, row.type, row.description, row.next_label, True)
        if self.active:
            self.artifacts[art.name] = art
            self.names_read.add(art.name)
        return art

    def count_version(self, art: KnownArtifact, created_at: datetime) -> int:
        """A new version's label, counted now with the artifact's count of versions and last update
        (artifacts.n_versions, updated_at), all written at the flush."""
        label = art.next_label
        art.next_label = label + 1
        _, added, newest = self._counters.get(art.id, (0, 0, created_at))
        self._counters[art.id] = (art.next_label, added + 1, max(newest, created_at))
        return label

    def created_version(self, artifact_id: int, name: str, row: dict[str, Any], version_id: int) -> None:
        if self.active:
            self._know(artifact_id, name, _Row(id=version_id, **row))
            self.digests_read.add((artifact_id, row["digest"]))

    def add_version(self, row: dict[str, Any]) -> int | None:
        """A new version's id, its row written at the flush; None: insert it now (no id taken)."""
        if not self._version_ids:
            return None
        version_id = self._version_ids.pop(0)  # in event order, as inserted one by one
        self._versions.append({"id": version_id, **row})
        return version_id

    def add_entries(self, rows: list[dict[str, Any]]) -> None:
        self._entries.extend(rows)

    def add_edge(self, row: dict[str, Any]) -> None:
        self._edges.append(row)

    def set_producer(self, version: KnownVersion | None, version_id: int, run_id: str | None) -> None:
        if version is not None and version.produced_by is None:
            version.produced_by = run_id
        self._producers.append({"vid": version_id, "run": run_id})

    def move_alias(self, artifact_id: int, alias: str, version_id: int | None, at: datetime) -> None:
        """An alias move in event time: recorded in the history, and set unless a later move is."""
        self._moves.append({"artifact_id": artifact_id, "alias": alias, "version_id": version_id, "at": at})
        row = {"artifact_id": artifact_id, "alias": alias, "version_id": version_id, "moved_at": at}
        # Applied in order with `WHERE moved_at <= new`, a run of moves ends at the last of the
        # latest ones: that one alone, written once, ends the same (one row per key per statement).
        key = (artifact_id, alias)
        pending = self._alias_sets.get(key)
        if pending is None or pending["moved_at"] <= at:
            self._alias_sets[key] = row
        current = self.aliases.get(key)
        if artifact_id in self.aliases_read and (current is None or current[1] <= at):
            self.aliases[key] = (version_id, at)

    def add_tags(self, rows: list[dict[str, Any]]) -> None:
        self._tags.extend(rows)

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffer, in the order the events made them (multi-row statements)."""
        conn, statements = self.conn, self.statements
        if self._counters:
            conn.execute(
                statements.counters,
                [
                    {"aid": aid, "next": label, "added": added, "updated": newest}
                    for aid, (label, added, newest) in sorted(self._counters.items())
                ],
            )
            self._counters = {}
        if self._versions:
            conn.execute(sa.insert(versions), self._versions)
            self._versions = []
        if self._entries:
            for part in _chunks(self._entries, 10_000):
                conn.execute(sa.insert(entries), list(part))
            self._entries = []
        if self._edges:
            conn.execute(statements.edge_insert, self._edges)
            self._edges = []
        if self._producers:
            conn.execute(statements.produced_by, self._producers)
            self._producers = []
        if self._moves:
            conn.execute(sa.insert(alias_moves), self._moves)
            self._moves = []
        if self._alias_sets:
            conn.execute(statements.alias_set, list(self._alias_sets.values()))
            self._alias_sets = {}
        if self._tags:
            conn.execute(statements.tag_insert, self._tags)
            self._tags = []

    def forget(self) -> None:
        """From here on every read goes to the database (an event of another kind may change what
        was read: a delete, a purge, an alias command)."""
        self.active = False
        self.artifacts.clear()
        self.by_digest.clear()
        self.by_label.clear()
        self.aliases.clear()


class _Row:
    def __init__(self, **columns: Any) -> None:
        self.__dict__.update(columns)
