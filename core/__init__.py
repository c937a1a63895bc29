"""headwater: lineage for ML and data pipelines.

import headwater as hw
with hw.run("train") as run:
    data = run.use("mnist-train:latest")
    run.log_artifact("mnist-cnn", "model.pt", type="model")
hw.upstream("mnist-cnn:latest")
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from headwater.errors import (
    Conflict,
    HeadwaterError,
    InvalidInput,
    InvalidRef,
    NotFound,
    Purged,
    SchemaTooNew,
    Unauthorized,
    Unavailable,
    Unwritable,
)
from headwater.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    import os
    from collections.abc import Iterable, Sequence

    from headwater.api import ActiveRun, Client, InputLike, Output
    from headwater.models import (
        AliasMove,
        Artifact,
        AuditRecord,
        Diff,
        Drift,
        Impact,
        LineageGraph,
        Reachable,
        Run,
        RunStatus,
        VerifyReport,
        Version,
    )
    from headwater.outbox import Delivery
    from headwater.purge import PurgePlan, PurgeReport
    from headwater.store.base import ArtifactOrder

# `import headwater` stays cheap (an Airflow worker imports the plugin in every process): the API
# and the models load on first use (PEP 562).
_LAZY = {
    "ActiveRun": "headwater.api",
    "Client": "headwater.api",
    "Output": "headwater.api",
    "run_id": "headwater.api",
    "AliasMove": "headwater.models",
    "Artifact": "headwater.models",
    "AuditRecord": "headwater.models",
    "PurgePlan": "headwater.purge",
    "PurgeReport": "headwater.purge",
    "Diff": "headwater.models",
    "Drift": "headwater.models",
    "Edge": "headwater.models",
    "Impact": "headwater.models",
    "LineageGraph": "headwater.models",
    "ManifestEntry": "headwater.models",
    "Reachable": "headwater.models",
    "Run": "headwater.models",
    "Version": "headwater.models",
    "VerifyReport": "headwater.models",
}


__getattr__ = lazy_names(__name__, _LAZY)


def default_client() -> Client:
    """The client the module functions use (HEADWATER_URI / HEADWATER_HOME), rebuilt when
    those change."""
    from headwater.api import default_client as get

    return get()


__version__ = "0.1.0.dev0"


# Module-level functions act on the default client (HEADWATER_URI / HEADWATER_HOME). Each takes
# exactly the parameters of the Client method it forwards to (tests/test_module_api.py checks).
def run(
    job: str,
    *,
    job_namespace: str = "manual",
    params: dict[str, Any] | None = None,
    parent_id: str | None = None,
    links: dict[str, str] | None = None,
    code: dict[str, Any] | None = None,
) -> ActiveRun:
    """Start a manual run of `job`: `with hw.run("train") as run: ...` (failed if the block raises).

    Args:
        job: the job's name.
        job_namespace: groups jobs (default "manual").
        params: the run's parameters (learning rate, ...).
        parent_id: the id of the run this one is part of.
        links: named URLs (a log, a dashboard).
        code: where the code came from (git commit, ...).
    """
    return default_client().run(
        job, job_namespace=job_namespace, params=params, parent_id=parent_id, links=links, code=code
    )


def link(
    job: str | None = None,
    inputs: Iterable[InputLike] = (),
    outputs: Iterable[Output | tuple[str, str | os.PathLike[str]]] = (),
    *,
    run_id: str | None = None,
    job_namespace: str = "manual",
    params: dict[str, Any] | None = None,
    status: RunStatus = "succeeded",
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    error: str | None = None,
    links: dict[str, str] | None = None,
) -> Run:
    """Attach a step done elsewhere (by hand, by another team) to the graph in one call.

    Args:
        inputs: REF strings, Versions, paths or URIs the step used.
        outputs: `hw.Output`s or (name, path) pairs it produced; `hw.Output(..., inputs=[...])`
            says which inputs made that output (the others did not).
        run_id: add these inputs and outputs to this existing run, of any orchestrator, instead
            of recording a new one (then give no job or other run field).
        status: how the step ended (`succeeded` by default).
        started_at: when it started (a naive datetime is UTC; default now).
        ended_at: when it ended (likewise).
        error: what went wrong, for a failed step.
    """
    return default_client().link(
        job,
        inputs,
        outputs,
        run_id=run_id,
        job_namespace=job_namespace,
        params=params,
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        error=error,
        links=links,
    )


def log_artifact(
    name: str,
    path: str | os.PathLike[str],
    *,
    type: str | None = None,
    aliases: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    store: bool | None = None,
    run: str | None = None,
    allow_purged: bool = False,
) -> Version:
    """Record the content at `path` as a version of `name` (the same content: the same version).

    Args:
        path: a local file or folder (stored by default) or a URI (referenced by default).
        store: True to copy the bytes into the blob store, False to only reference them.
        run: the id of the run that produced it.
        allow_purged: store files whose content was purged again (else recorded as purged).
    """
    return default_client().log_artifact(
        name,
        path,
        type=type,
        aliases=aliases,
        metadata=metadata,
        description=description,
        tags=tags,
        store=store,
        run=run,
        allow_purged=allow_purged,
    )


def log_reference(
    name: str,
    uri: str,
    *,
    type: str | None = None,
    aliases: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    description: str | None = None,
    tags: Sequence[str] = (),
    run: str | None = None,
    allow_purged: bool = False,
) -> Version:
    """Record a pointer to `uri` with the checksum its storage reports; nothing is uploaded.

    Takes the parameters of `hw.log_artifact` except `store` (always False here).
    """
    return default_client().log_reference(
        name,
        uri,
        type=type,
        aliases=aliases,
        metadata=metadata,
        description=description,
        tags=tags,
        run=run,
        allow_purged=allow_purged,
    )


def get(ref: str, at: datetime | None = None) -> Version:
    """The version `ref` names (`name`, `name:vN`, `name:ALIAS`, `name@DIGEST`).

    Args:
        at: resolve aliases as they were at this time (naive datetimes are UTC).
    """
    return default_client().get(ref, at=at)


def alias(ref: str, alias: str) -> Version:
    """Point `alias` of the artifact at version `ref` (moving it from where it was)."""
    return default_client().alias(ref, alias)


def unalias(name: str, alias: str) -> None:
    """Remove `alias` from artifact `name`."""
    default_client().unalias(name, alias)


def tag(ref: str, *tags: str) -> Version:
    """Add `tags` to version `ref`."""
    return default_client().tag(ref, *tags)


def untag(ref: str, *tags: str) -> Version:
    """Remove `tags` from version `ref`."""
    return default_client().untag(ref, *tags)


def delete(ref: str, reason: str | None = None) -> Version:
    """Tombstone a version: lineage stays, aliases go, its blobs become collectable by gc().
    The audit log records who (the OS user) and `reason`."""
    return default_client().delete(ref, reason=reason)


def upstream(ref: str, depth: int | None = None) -> LineageGraph:
    """What version `ref` was made from: version -> run that produced it -> versions it used ...

    Args:
        depth: at most this many runs away (default: all).
    """
    return default_client().upstream(ref, depth=depth)


def downstream(ref: str, depth: int | None = None) -> LineageGraph:
    """What was made from version `ref`: version -> runs that used it -> versions they produced ...

    Args:
        depth: at most this many runs away (default: all).
    """
    return default_client().downstream(ref, depth=depth)


def reachable(
    ref: str, direction: Literal["upstream", "downstream"] = "downstream", depth: int | None = None
) -> Reachable:
    """The refs `upstream`/`downstream` of version `ref` would hold, without the rest of each
    node: each version's ref with its hops from `ref`, and the ids of the runs walked through.
    What to ask of a closure of tens of thousands of versions ("what depends on this data?").

    Args:
        direction: "downstream" (the default) or "upstream".
        depth: at most this many runs away (default: all).
    """
    return default_client().reachable(ref, direction, depth=depth)


def path(source: str, target: str) -> LineageGraph:
    """The versions and runs on the way from version `source` down to version `target`."""
    return default_client().path(source, target)


def diff(left: str, right: str) -> Diff:
    """Compare the entries and metadata of two versions."""
    return default_client().diff(left, right)


def impact(
    digest: str | None = None,
    path: str | os.PathLike[str] | None = None,
    ref: str | None = None,
    *,
    read_files: bool = True,
) -> Impact:
    """Versions that hold a file (by digest or path), or the files of version `ref`, and
    everything downstream of them.

    Args:
        digest: a file's digest (`blake3:` assumed when no algorithm is given).
        path: a file's path or URI; with `ref`, only that version's files at that path.
        ref: a version, looked up by the digests of its files (copies are found too).
        read_files: False to match a path only as recorded, never hashing a local file.
    """
    return default_client().impact(digest=digest, path=path, ref=ref, read_files=read_files)


def status(refs: Sequence[str] = ()) -> list[Drift]:
    """What changed under the versions in use (`headwater status`): for each REF given, else every
    artifact's `latest` and every aliased version, the referenced entries whose location no longer
    holds what was logged: local files changed, storage checksums moved, objects gone.

    Args:
        refs: the versions to check (default: every `latest` and every aliased version).
    """
    return default_client().status(refs)


def check(version: Version | str) -> list[Drift]:
    """The referenced entries of one version (a REF or a Version) whose location no longer holds
    what was logged; empty when nothing drifted."""
    return default_client().check(version)


def purge(
    *,
    reason: str,
    path: str | os.PathLike[str] | None = None,
    digest: str | None = None,
    ref: str | None = None,
    redact_path: bool = False,
    dry_run: bool = False,
) -> PurgePlan | PurgeReport:
    """Purge content everywhere headwater keeps it (blob store, the server's blobs, caches),
    keeping the lineage, with an audit record of who, when and why (docs/purge.md).

    Args:
        reason: why (required): the audit log keeps it.
        path: a file, in every version holding it; with `ref`, that version's file at that path.
        digest: a file digest.
        ref: a version whose files (or its file at `path`) are purged wherever they are.
        redact_path: replace the purged entries' paths by a redacted form.
        dry_run: return what would go, change nothing.
    """
    return default_client().purge(
        reason=reason, path=path, digest=digest, ref=ref, redact_path=redact_path, dry_run=dry_run
    )


def audit(limit: int | None = None, action: str | None = None) -> list[AuditRecord]:
    """The append-only audit log of purges, deletes and retention removals, newest first."""
    return default_client().audit(limit=limit, action=action)


def verify(ref: str) -> VerifyReport:
    """Re-hash every entry of a version: missing files, changed bytes, drifted references."""
    return default_client().verify(ref)


def artifacts(
    type: str | None = None,
    limit: int | None = None,
    name_like: str | None = None,
    *,
    tag: str | None = None,
    order: ArtifactOrder = "name",
    offset: int = 0,
) -> list[Artifact]:
    """Artifacts by name (`order="updated"`: newest update first), `limit` of them from `offset`.

    Args:
        type: only artifacts of this type.
        name_like: only names containing this text (any case).
        tag: only artifacts with a version carrying this tag.
    """
    return default_client().artifacts(type=type, limit=limit, name_like=name_like, tag=tag, order=order, offset=offset)


def versions(
    name: str,
    limit: int | None = None,
    tags: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    include_deleted: bool = False,
) -> list[Version]:
    """The versions of artifact `name`, oldest first.

    Args:
        tags: only versions carrying all these tags.
        metadata: only versions whose metadata has these keys and values.
        include_deleted: list tombstoned versions too.
    """
    return default_client().versions(name, limit=limit, tags=tags, metadata=metadata, include_deleted=include_deleted)


def runs(
    job: str | None = None,
    orchestrator: str | None = None,
    status: str | None = None,
    parent_id: str | None = None,
    limit: int | None = None,
) -> list[Run]:
    """Recorded runs, newest first, filtered by job, orchestrator, status or parent run."""
    return default_client().runs(job=job, orchestrator=orchestrator, status=status, parent_id=parent_id, limit=limit)


def runs_using(name: str, limit: int | None = None, offset: int = 0) -> list[Run]:
    """The runs that used any version of artifact `name`, newest first (ties: the greater id
    first); a page of `limit` from the `offset`-th when given."""
    return default_client().runs_using(name, limit=limit, offset=offset)


def alias_history(name: str, alias: str | None = None) -> list[AliasMove]:
    """Where the aliases of artifact `name` (or only `alias`) pointed, move by move."""
    return default_client().alias_history(name, alias)


def sync(timeout: float | None = None) -> Delivery:
    """Deliver everything waiting in the outbox (to the backend, within `timeout` seconds)."""
    return default_client().sync(timeout=timeout)


__all__ = [
    "ActiveRun",
    "AliasMove",
    "Artifact",
    "AuditRecord",
    "Client",
    "Conflict",
    "Diff",
    "Drift",
    "Edge",
    "HeadwaterError",
    "Impact",
    "InvalidInput",
    "InvalidRef",
    "LineageGraph",
    "ManifestEntry",
    "NotFound",
    "Output",
    "PurgePlan",
    "PurgeReport",
    "Purged",
    "Reachable",
    "Run",
    "SchemaTooNew",
    "Unauthorized",
    "Unavailable",
    "Unwritable",
    "VerifyReport",
    "Version",
    "alias",
    "alias_history",
    "artifacts",
    "audit",
    "check",
    "default_client",
    "delete",
    "diff",
    "downstream",
    "get",
    "impact",
    "link",
    "log_artifact",
    "log_reference",
    "path",
    "purge",
    "reachable",
    "run",
    "run_id",
    "runs",
    "runs_using",
    "status",
    "sync",
    "tag",
    "unalias",
    "untag",
    "upstream",
    "verify",
    "versions",
]
