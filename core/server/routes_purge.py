"""Purges, the audit log and retention: `POST /api/v1/purges` records a purge and removes this
server's copies of the purged bytes; `GET /api/v1/audit`, `/purged` and `/retention` read back."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from headwater.events import ContentPurged
from headwater.models import AuditRecord, RetentionPolicy
from headwater.server.backend import Backend
from headwater.server.common import API, ERRORS, READ, WRITE_JSON, Limit


def token_name(request: Request) -> str | None:
    """Who a token is, for the audit log, without the secret: `token sha256:<12 hex>` (a token
    file's owner can tell which line that is)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return f"token sha256:{hashlib.sha256(token.strip().encode()).hexdigest()[:12]}"


def remove_purged_blobs(backend: Backend, digests: list[str]) -> list[str]:
    """This server's blobs of the purged digests, removed unless a version stores that content
    again on purpose (`allow_purged`)."""
    removed = []
    for digest in sorted(set(digests)):
        if backend.store.stores_blob(digest):
            continue
        if backend.blobs.has(digest):
            backend.blobs.delete(digest)
            removed.append(digest)
    return removed


def purge_routes(backend: Backend) -> APIRouter:
    router = APIRouter()

    @router.post(f"{API}/purges", tags=["purge"], dependencies=WRITE_JSON, responses=ERRORS)
    def post_purge(
        event: Annotated[ContentPurged, Body(description="the purge: file digests, reason, who")],
        request: Request,
    ) -> dict[str, Any]:
        """Record a purge (a read-write token) and remove this server's blobs of its digests.

        The audit log's `who` is the client's user followed by the token's fingerprint when the
        server needs tokens. Sent again (same event id), it records nothing twice and removes
        whatever is still here."""
        name = token_name(request) if backend.settings.tokens else None
        if name is not None:
            event = event.model_copy(update={"who": f"{event.who} ({name})"[:1024]})
        record, _ = backend.store.purge(event)
        removed = remove_purged_blobs(backend, event.digests)
        return {"record": record.model_dump(mode="json"), "removed": removed}

    @router.get(f"{API}/audit", tags=["purge"], dependencies=READ, responses=ERRORS)
    def audit(
        limit: Limit = None,
        action: Annotated[str | None, Query(max_length=32, description="purge, delete or retention")] = None,
    ) -> list[AuditRecord]:
        """The append-only audit log, newest first."""
        return backend.store.audit(limit=limit, action=action)

    @router.get(f"{API}/purged", tags=["purge"], dependencies=READ, responses=ERRORS)
    def purged(
        digest: Annotated[list[str], Query(max_length=10_000, description="file digests to ask about")] = [],  # noqa: B006 - FastAPI copies it
    ) -> list[str]:
        """Those of the digests asked about whose content was purged."""
        return sorted(backend.store.purged_digests(digest))

    @router.get(f"{API}/retention", tags=["purge"], dependencies=READ, responses=ERRORS)
    def retention() -> list[RetentionPolicy]:
        """The retention policies (set with `POST /api/v1/events`, a RetentionSet event)."""
        return backend.store.retention_policies()

    return router
