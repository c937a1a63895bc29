"""The Store contract every backend implements (SQLite, PostgreSQL, the HTTP tracking server).

Writes are events (headwater.events) applied idempotently; reads are the queries below. Every
backend runs the same contract tests (tests/test_store_contract.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Literal

from headwater.errors import (  # re-exported: the shared errors of every store
    Conflict,
    HeadwaterError,
    InvalidInput,
    InvalidRef,
    NotFound,
    SchemaTooNew,
    Unavailable,
)
from headwater.events import ContentPurged, Event
from headwater.models import (
    AliasMove,
    Artifact,
    AuditRecord,
    LineageGraph,
    Reachable,
    RetentionPolicy,
    Run,
    Version,
)
from headwater.refs import Ref

__all__ = [
    "Store",
    "Conflict",
    "HeadwaterError",
    "InvalidInput",
    "InvalidRef",
    "NotFound",
    "SchemaTooNew",
    "Unavailable",
]

LineageDirection = Literal["upstream", "downstream"]
ArtifactOrder = Literal["name", "updated"]


class Store(ABC):
    """One tracking backend. Chosen by URI in headwater.store.open_store()."""

    uri: str

    @abstractmethod
    def apply(self, events: Sequence[Event], *, before_commit: Callable[[], None] | None = None) -> list[str]:
        """Apply events in order, in one transaction; an event id seen before is skipped.

        Raises Conflict (nothing applied) when an event contradicts the record, Unavailable when
        the backend cannot be reached. `before_commit` runs last, before the commit (or before
        the request that commits): if it raises, nothing is applied and its error propagates.
        Returns notices, one line each, of what was recorded otherwise than asked (an edge kept
        on a deleted version).
        """

    def check_sendable(self, events: Sequence[Event]) -> None:  # noqa: B027 (optional: most backends take any size)
        """Raise InvalidInput when this backend could never accept these events (too large for
        any request): called before their blobs are stored, so a refusal never follows an upload."""

    @abstractmethod
    def artifact_exists(self, name: str) -> bool: ...

    @abstractmethod
    def get_artifact(self, name: str) -> Artifact: ...

    @abstractmethod
    def get_version(self, ref: Ref, at: datetime | None = None) -> Version:
        """The version a parsed REF names; with `at`, what an alias pointed to at that time."""

    @abstractmethod
    def list_artifacts(
        self,
        type: str | None = None,
        limit: int | None = None,
        name_like: str | None = None,
        *,
        tag: str | None = None,
        order: ArtifactOrder = "name",
        offset: int = 0,
    ) -> list[Artifact]:
        """Artifacts by name (or newest update first), a page of `limit` from `offset`;
        `name_like`: names holding that text, in any case; `tag`: those with a version carrying
        that tag."""

    @abstractmethod
    def list_versions(
        self,
        name: str,
        limit: int | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> list[Version]:
        """Versions of one artifact, oldest first."""

    @abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    @abstractmethod
    def list_runs(
        self,
        job: str | None = None,
        orchestrator: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first."""

    @abstractmethod
    def lineage(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> LineageGraph:
        """Versions and runs reachable from a version through edges, at most `depth` runs away."""

    @abstractmethod
    def reachable(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> Reachable:
        """The refs `lineage(ref, direction, depth)` would hold: each version's ref with its hops
        from `ref`, and the ids of the runs walked through; no other field of either."""

    def downstream_of(self, refs: Sequence[Ref]) -> LineageGraph:
        """Everything downstream of any of `refs`: their downstream graphs merged, without a
        root or direction (what `Client.impact` shows). The SQL store walks from all of them at
        once; this default walks from each in turn."""
        from headwater.api import merge_graphs

        return merge_graphs([self.lineage(ref, "downstream") for ref in refs])

    @abstractmethod
    def lineage_path(self, source: Ref, target: Ref) -> LineageGraph:
        """The versions and runs on every path from `source` down to `target` (empty if none)."""

    @abstractmethod
    def runs_using(self, name: str, limit: int | None = None, offset: int = 0) -> list[Run]:
        """Every run that used any version of an artifact, newest first (ties: the greater id
        first); `limit` runs from the `offset`-th of them when given."""

    @abstractmethod
    def versions_holding(self, digest: str | None = None, path: str | None = None) -> list[Version]:
        """Versions with an entry of that file digest, or whose entry path or ref matches `path`."""

    @abstractmethod
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]: ...

    @abstractmethod
    def referenced_blob_digests(self) -> set[str]:
        """File digests that versions not deleted still store (the blobs garbage collection keeps)."""

    # -- purges and the audit log (headwater.purge); not abstract: a wrapper forwards them ------

    def purge(self, event: ContentPurged) -> tuple[AuditRecord, list[str]]:
        """Record a purge (marks the entries holding its digests, appends to the audit log) and
        remove the bytes this backend keeps itself (the tracking server's blobs). Returns the
        audit record and the blobs removed here. Idempotent by event id."""
        raise InvalidInput(f"{type(self).__name__} cannot record purges")

    def purged_digests(self, digests: Collection[str]) -> set[str]:
        """Those of `digests` (file digests) that a purge removed."""
        raise InvalidInput(f"{type(self).__name__} cannot record purges")

    def audit(self, limit: int | None = None, action: str | None = None) -> list[AuditRecord]:
        """The audit log, newest first: purges, deletes and retention removals."""
        raise InvalidInput(f"{type(self).__name__} keeps no audit log")

    def retention_policies(self) -> list[RetentionPolicy]:
        """The retention policies set (RetentionSet events), by selector and value."""
        raise InvalidInput(f"{type(self).__name__} keeps no retention policies")

    def close(self) -> None:  # noqa: B027 (optional: a backend without connections has nothing to release)
        """Release connections."""
