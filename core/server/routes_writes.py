"""Writes: batches of headwater events (the JSON the outbox stores) and the manifests staged for them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool

from headwater.events import Event
from headwater.server.backend import Backend, receive
from headwater.server.common import API, ERRORS, READ, WRITE, WRITE_JSON, binary_body, check_digest


def write_routes(backend: Backend) -> APIRouter:
    """`POST /api/v1/events`, the server's limits, and `PUT /api/v1/manifests/{digest}`."""
    router = APIRouter()

    @router.post(f"{API}/events", tags=["write"], dependencies=WRITE_JSON, responses=ERRORS)
    def post_events(
        events: Annotated[list[Event], Body(description="headwater events, applied in order in one transaction")],
    ) -> dict[str, Any]:
        """Apply a batch of headwater events; an event id seen before is skipped.

        A version with many entries may name a manifest staged just before
        (`PUT /api/v1/manifests/{digest}`) instead of carrying them. `notices`: what was recorded
        otherwise than asked (an edge kept on a deleted version)."""
        notices = backend.apply(events, emit=True)
        return {"received": len(events), "notices": notices}

    @router.get(f"{API}/limits", tags=["write"], dependencies=READ, responses=ERRORS)
    def limits() -> dict[str, int]:
        """The largest JSON request (`max_body`) and staged manifest, decompressed (`max_manifest`),
        in bytes: a client checks a version fits before it uploads any of its blobs."""
        return {"max_body": backend.settings.max_body, "max_manifest": backend.max_manifest}

    @router.put(
        f"{API}/manifests/{{digest}}",
        tags=["write"],
        dependencies=WRITE,
        responses=ERRORS,
        openapi_extra=binary_body(),
    )
    async def put_manifest(digest: str, request: Request) -> dict[str, Any]:
        """Stage a version's entries (a gzip-compressed JSON array) under the digest of the bytes
        sent, for the event that names it. Hashed and published whole, as a blob: a manifest cut
        short is never seen."""
        check_digest(digest)
        await run_in_threadpool(backend.prune_staged)
        return await receive(backend, backend.staged, digest, request)

    return router
