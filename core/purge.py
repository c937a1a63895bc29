"""Purges: a privacy takedown carried out (`headwater purge`, `hw.purge`).

A purge selects files by content (a path in every version holding it, a digest, or the files of
one version), records in the store that those files were purged (the entries keep their digest
and size; lineage stays; one audit row says who, when, why), then removes the bytes from
everywhere this home keeps them: the blob store (a folder or any fsspec location), the tracking
server's blobs (through its API), the download cache and the stat cache's rows. Referenced
objects (s3://, https://) are not headwater's: they are listed and recorded as reported.

The store is asked first (after delivering what waits in the outbox, so those versions are
marked too), the bytes removed after: a purge that cannot reach the backend removes nothing.
Content that arrives later (another machine's outbox, a pipeline writing the same bytes) is
recorded as purged and its bytes are not kept, unless logged with `allow_purged=True`.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from headwater.errors import InvalidInput, Purged, Unavailable
from headwater.events import ContentPurged
from headwater.models import AuditRecord, Impact, ManifestEntry, Version
from headwater.refs import Ref
from headwater.store import Store

if TYPE_CHECKING:
    from headwater.api import Client

log = logging.getLogger("headwater")


class PurgePlan(BaseModel):
    """What a purge removes (what `--dry-run` prints)."""

    selection: str = Field(description="what was asked for, as the audit log records it")
    digests: list[str] = Field(description="the file digests whose bytes go")
    references: list[str] = Field(default_factory=list, description="pointers reported, not deleted")
    reference_status: dict[str, str] = Field(
        default_factory=dict,
        description="per reference: `holds it` (the object still holds that content: delete it there), "
        "`changed` (it holds other content now), `gone`, or `unknown` (cannot be checked)",
    )
    holding: list[str] = Field(default_factory=list, description="versions holding the content")
    files: int = Field(default=0, description="entries that will be marked purged")
    blobs: list[str] = Field(default_factory=list, description="digests stored in the blob store")
    cached: list[str] = Field(default_factory=list, description="copies in the download cache")
    sizes: dict[str, int] = Field(
        default_factory=dict, description="digest -> size of the content whose cached copies go (referenced too)"
    )
    impact: Impact = Field(default_factory=Impact, description="the holding versions and everything downstream")


class PurgeReport(PurgePlan):
    """What a purge did."""

    record: AuditRecord
    removed_blobs: list[str] = Field(default_factory=list)
    removed_server_blobs: list[str] = Field(default_factory=list)
    removed_cached: list[str] = Field(default_factory=list)
    stat_cache_rows: int = 0


def who() -> str:
    """The OS user, for the audit log (a server adds its token's fingerprint)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name known to the system (a bare container uid)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def backend_of(store: Store) -> Store:
    """The store that records, under a wrapper that only adds emission (OpenLineage)."""
    inner = getattr(store, "inner", None)
    return inner if isinstance(inner, Store) else store


def plan(
    client: Client,
    *,
    path: str | os.PathLike[str] | None = None,
    digest: str | None = None,
    ref: str | None = None,
) -> PurgePlan:
    """Resolve what a purge by path, digest or version REF (narrowed by path) removes."""
    from headwater.api import _entry_at, _places, merge_graphs
    from headwater.digest import is_content_digest

    first = client.impact(digest=digest, path=path, ref=ref)  # checks the combination
    matched: list[ManifestEntry] = []
    if ref is not None:
        version, matched = client._files_of(ref, path)
        selection = f"{version.ref}" + ("" if path is None else f" --path {os.fspath(path)}")
    elif digest is not None:
        digest = digest if ":" in digest else f"blake3:{digest}"
        matched = [e for v in _full(client, first.holding) for e in v.entries if e.digest == digest]
        matched = matched or [ManifestEntry(path="", digest=digest, size=0)]
        selection = f"--digest {digest}"
    else:
        text = os.fspath(path) if path is not None else ""  # impact() refused a call with none
        places = _places(text)
        local = _local_digest(text)
        matched = [
            e
            for v in _full(client, first.holding)
            for e in v.entries
            if _entry_at(e, places) or (local is not None and e.digest == local)
        ]
        selection = f"--path {text}"
    digests = sorted({e.digest for e in matched if e.ref is None and is_content_digest(e.digest)})
    references = sorted({e.ref for e in matched if e.ref is not None})
    statuses = {e.ref: _status(client, e) for e in matched if e.ref is not None}
    if not digests and not references:
        raise InvalidInput(f"{selection} selects no file: nothing to purge")
    # Copies of referenced content in the download cache are ours to remove, the objects are not.
    sizes = {e.digest: e.size for e in matched if is_content_digest(e.digest)}
    impacts = [first, *(client.impact(digest=d) for d in digests)]
    holding: dict[str, Version] = {}
    for found in impacts:
        for version in found.holding:
            holding.setdefault(version.ref, version)
    impact = Impact(holding=list(holding.values()), downstream=merge_graphs([i.downstream for i in impacts]))
    wanted = set(digests)
    files = sum(1 for v in _full(client, impact.holding) for e in v.entries if e.ref is None and e.digest in wanted)
    return PurgePlan(
        selection=selection,
        digests=digests,
        references=references,
        reference_status=statuses,
        holding=sorted(holding),
        files=files,
        blobs=[d for d in digests if _has_blob(client, d)],
        cached=[str(p) for p in cached_copies(client.home, sizes)],
        sizes=sizes,
        impact=impact,
    )


def purge(
    client: Client,
    *,
    reason: str,
    path: str | os.PathLike[str] | None = None,
    digest: str | None = None,
    ref: str | None = None,
    redact_path: bool = False,
    dry_run: bool = False,
) -> PurgePlan | PurgeReport:
    """Purge the selected content everywhere this home keeps it; see the module docstring."""
    if not reason or not reason.strip():
        raise InvalidInput("a purge needs a reason (--reason TEXT): the audit log keeps it")
    if not dry_run:
        # Versions still on their way are recorded first, so the purge marks them too.
        client.sync()
    chosen = plan(client, path=path, digest=digest, ref=ref)
    if dry_run:
        return chosen
    event = ContentPurged(
        digests=chosen.digests,
        references=chosen.references,
        reason=reason,
        who=who(),
        selection="(redacted)" if redact_path and (path is not None) else chosen.selection,
        redact=redact_path,
    )
    record, server_removed = backend_of(client.store).purge(event)
    removed_blobs = remove_blobs(client, chosen.digests)
    removed_cached = [str(p) for p in remove_cached(client.home, chosen.sizes)]
    rows = client.stat_cache.forget(chosen.sizes)
    log.info(
        "headwater: purged %d file(s) of %d version(s): %s", record.details.get("files", 0), len(chosen.holding), reason
    )
    return PurgeReport(
        **chosen.model_dump(exclude={"impact"}),
        impact=chosen.impact,
        record=record,
        removed_blobs=removed_blobs,
        removed_server_blobs=server_removed,
        removed_cached=removed_cached,
        stat_cache_rows=rows,
    )


def _full(client: Client, versions: Iterable[Version]) -> list[Version]:
    """The versions with their entries (versions_holding lists them without)."""
    return [client.store.get_version(Ref(v.name, label=v.label)) for v in versions if v.label is not None]


def _status(client: Client, entry: ManifestEntry) -> str:
    """Whether a referenced object still holds the purged content (what the user must delete)."""
    from headwater.digest import reference_status

    try:
        found = reference_status(entry, stat_cache=client.stat_cache)
    except Exception:  # noqa: BLE001 - unreachable storage, no credentials, a checksum of no kind we read
        return "unknown"
    return {"ok": "holds it", "drifted": "changed", "missing": "gone"}[found]


def _local_digest(text: str) -> str | None:
    from headwater.digest import hash_file
    from headwater.refs import is_uri

    local = Path(text)
    if is_uri(text) or not local.is_file():
        return None
    return hash_file(local.absolute())[0]


def _has_blob(client: Client, digest: str) -> bool:
    try:
        return client.blobs.has(digest)
    except Unavailable:
        return False


def remove_blobs(client: Client, digests: Iterable[str]) -> list[str]:
    """This home's copies of the blobs: the blob store's (a folder or fsspec location), or the
    spool of blobs waiting for a tracking server (whose own blobs the server removed)."""
    from headwater.store.http import HTTPBlobStore

    blobs = client.blobs
    store = blobs.spool if isinstance(blobs, HTTPBlobStore) else blobs
    removed = []
    for digest in digests:
        if store.has(digest):
            store.delete(digest)
            removed.append(digest)
    return removed


def cached_copies(home: Path, sizes: dict[str, int]) -> list[Path]:
    """Files under the download cache holding one of the digests (`sizes`: digest -> size; only
    files of one of those sizes are hashed)."""
    from headwater.digest import hash_file

    root = home / "cache"
    if not sizes or not root.is_dir():
        return []
    by_size: dict[int, set[str]] = {}
    for digest, size in sizes.items():
        by_size.setdefault(size, set()).add(digest)
    found = []
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                size = path.lstat().st_size
                if path.is_symlink() or size not in by_size:
                    continue
                if hash_file(path, stat_cache=False)[0] in by_size[size]:
                    found.append(path)
            except (OSError, InvalidInput):
                continue  # removed meanwhile, or unreadable: not a copy we can vouch for
    return sorted(found)


def remove_cached(home: Path, sizes: dict[str, int]) -> list[Path]:
    removed = cached_copies(home, sizes)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def purged_error(version: Version, paths: Iterable[str]) -> Purged:
    """The one-line error of a download or verify that meets purged files."""
    shown = sorted(paths)
    names = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
    last = version.purges[-1] if version.purges else None
    why = f" on {last.at:%Y-%m-%d %H:%M} UTC by {last.who} ({last.reason})" if last is not None else ""
    return Purged(f"{version.ref}: {len(shown)} file(s) purged{why}: {names}; the lineage is kept, the bytes are gone")
