"""The write side of headwater: every change to the store is one of these events.

Events are what the outbox persists and what every Store applies, so the same JSON travels to
SQLite, PostgreSQL and the tracking server. Each carries an id (replays are ignored) and the time
it happened (alias moves and run states are ordered by it, not by arrival).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from uuid6 import uuid7

from headwater.models import Direction, ManifestEntry, RunKind, RunStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    # uuid7 sorts by creation time, which keeps outbox files and manual run ids in order.
    return str(uuid7())


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    time: datetime = Field(default_factory=utcnow)


class RunRecorded(_Event):
    """Create or update a run. Fields left None keep what the store has; terminal states stick."""

    kind: Literal["run"] = "run"
    run_id: str
    job: str | None = None
    job_namespace: str | None = None
    orchestrator: str | None = None
    run_kind: RunKind | None = None
    status: RunStatus | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    params: dict[str, Any] | None = None
    parent_id: str | None = None
    error: str | None = None
    code: dict[str, Any] | None = None
    links: dict[str, str] | None = None


class VersionRecorded(_Event):
    """A version seen with this content; optionally the edge of the run that used or produced it.

    The version is created when its digest is new for the artifact. `latest` moves to it when it
    was produced or logged (direction None or "produced"), or when a use saw it for the first time.
    Content that was deleted is refused (Conflict) when logged bare; a run's edge to it is kept on
    the tombstone, and the version stays deleted.
    """

    kind: Literal["version"] = "version"
    name: str
    digest: str
    entries: list[ManifestEntry]
    type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    run_id: str | None = None
    direction: Direction | None = None
    exact: bool = True
    edge_metadata: dict[str, Any] = Field(default_factory=dict)
    manifest: str | None = Field(
        default=None,
        description="on the way to a tracking server only: the digest of the staged manifest "
        "(`PUT /api/v1/manifests/{digest}`) that holds the entries, sent apart when they are many",
    )


class EdgeRecorded(_Event):
    """A run used (or produced) an existing version named by a REF, resolved at the event's time.

    Used for inputs whose content cannot be read: `exact` is False when the REF was not a digest.
    """

    kind: Literal["edge"] = "edge"
    run_id: str
    ref: str
    direction: Direction = "used"
    exact: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)


class AliasMoved(_Event):
    """Point `alias` of artifact `name` at the version with `digest`, or remove it when None."""

    kind: Literal["alias"] = "alias"
    name: str
    alias: str
    digest: str | None


class TagsChanged(_Event):
    kind: Literal["tags"] = "tags"
    name: str
    digest: str
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class VersionDeleted(_Event):
    """Tombstone a version: its lineage stays, its aliases go, its blobs become collectable."""

    kind: Literal["delete"] = "delete"
    name: str
    digest: str


Event = Annotated[
    Union[RunRecorded, VersionRecorded, EdgeRecorded, AliasMoved, TagsChanged, VersionDeleted],
    Field(discriminator="kind"),
]
EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event])
