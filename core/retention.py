"""Retention policies carried out: `headwater gc --apply-retention`.

A policy names an artifact or a type, and keeps the newest `keep_last` versions and those younger
than `older_than_s` (either alone is enough; with both, a version goes when it is beyond the
newest `keep_last` and older). A policy for a name wins over one for its type. A version that
holds an alias (`latest` included) is never removed, and, with `protect_lineage` (the default),
neither is one that a version holding an alias other than `latest` was built from (its upstream):
what is in production stays reproducible. A removal is a delete (a tombstone: lineage kept),
recorded in the audit log as a retention removal; `gc` then frees the bytes no live version holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from headwater.errors import InvalidInput
from headwater.events import RetentionSet, VersionDeleted
from headwater.models import RetentionPolicy, Version
from headwater.purge import backend_of, who
from headwater.refs import LATEST, normalize_name

if TYPE_CHECKING:
    from headwater.api import Client


class Removal(BaseModel):
    """A version a policy removes, and why."""

    ref: str
    policy: str


def describe(policy: RetentionPolicy) -> str:
    rules = []
    if policy.keep_last is not None:
        rules.append(f"keep last {policy.keep_last}")
    if policy.older_than_s is not None:
        rules.append(f"older than {_duration(policy.older_than_s)}")
    lineage = "" if policy.protect_lineage else ", lineage of aliased versions not protected"
    return f"{policy.selector} {policy.value}: {', '.join(rules)}{lineage}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def set_policy(
    client: Client,
    *,
    name: str | None = None,
    type: str | None = None,
    keep_last: int | None = None,
    older_than_s: float | None = None,
    protect_lineage: bool = True,
    remove: bool = False,
) -> None:
    if (name is None) == (type is None):
        raise InvalidInput("a retention policy is for exactly one of an artifact name or a type")
    if not remove and keep_last is None and older_than_s is None:
        raise InvalidInput("a retention policy needs --keep-last N, --older-than DURATION, or both")
    selector: Literal["name", "type"] = "name" if name is not None else "type"
    value = normalize_name(name) if name is not None else type or ""
    client.emit(
        [
            RetentionSet(
                selector=selector,
                value=value,
                keep_last=keep_last,
                older_than_s=older_than_s,
                protect_lineage=protect_lineage,
                who=who(),
                remove=remove,
            )
        ]
    )


def plan(client: Client, now: datetime | None = None) -> list[Removal]:
    """The versions the policies remove now."""
    now = now or datetime.now(timezone.utc)
    policies = backend_of(client.store).retention_policies()
    if not policies:
        return []
    chosen: dict[str, RetentionPolicy] = {}
    for policy in policies:  # by type first, then names override
        if policy.selector == "type":
            for artifact in client.artifacts(type=policy.value):
                chosen.setdefault(artifact.name, policy)
    for policy in policies:
        if policy.selector == "name" and client.store.artifact_exists(policy.value):
            chosen[policy.value] = policy
    protected = _built_into_aliases(client) if any(p.protect_lineage for p in chosen.values()) else set()
    removals = []
    for name, policy in sorted(chosen.items()):
        versions = client.versions(name)  # live ones, oldest first
        beyond = versions if policy.keep_last is None else versions[: max(0, len(versions) - policy.keep_last)]
        for version in beyond:
            if version.aliases:
                continue
            if policy.older_than_s is not None and not _older(version, now, policy.older_than_s):
                continue
            if policy.protect_lineage and version.ref in protected:
                continue
            removals.append(Removal(ref=version.ref, policy=describe(policy)))
    return removals


def _older(version: Version, now: datetime, seconds: float) -> bool:
    return version.created_at is not None and version.created_at < now - timedelta(seconds=seconds)


def _built_into_aliases(client: Client) -> set[str]:
    """Versions upstream of a version that holds an alias other than `latest`."""
    protected: set[str] = set()
    for artifact in client.artifacts():
        for version in client.versions(artifact.name):
            if any(alias != LATEST for alias in version.aliases):
                protected.update(v.ref for v in client.upstream(version.ref).versions)
    return protected


def apply(client: Client, *, dry_run: bool = False, now: datetime | None = None) -> list[Removal]:
    """Remove (delete, lineage kept) what the policies select; each removal is audited."""
    removals = plan(client, now)
    if dry_run or not removals:
        return removals
    by = who()
    events = []
    for removal in removals:
        version = client.get(removal.ref)
        events.append(
            VersionDeleted(
                name=version.name,
                digest=version.digest,
                who=by,
                reason=f"retention: {removal.policy}",
                retention=True,
            )
        )
    client.emit(events)
    return removals
