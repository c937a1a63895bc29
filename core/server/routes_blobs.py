"""Blobs: content-addressed bytes, listed, streamed, uploaded (hashed on the way in) and collected."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from headwater.errors import Conflict, NotFound
from headwater.server.backend import Backend, receive
from headwater.server.common import API, ERRORS, READ, WRITE, binary_body, check_digest


def blob_routes(backend: Backend) -> APIRouter:
    """`/api/v1/blobs` and `/api/v1/blobs/{digest}`."""
    router = APIRouter()

    @router.get(f"{API}/blobs", tags=["blobs"], dependencies=READ, responses=ERRORS, response_model=list[str])
    def list_blobs() -> Response:
        """Every stored blob digest (a JSON array, streamed)."""

        def items() -> Iterator[bytes]:
            yield b"["
            for i, digest in enumerate(backend.blobs.iter_digests()):
                yield (b"," if i else b"") + json.dumps(digest).encode()
            yield b"]"

        return StreamingResponse(items(), media_type="application/json")

    @router.api_route(
        f"{API}/blobs/{{digest}}",
        methods=["GET", "HEAD"],
        tags=["blobs"],
        dependencies=READ,
        responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the bytes"}},
        response_class=Response,
    )
    def get_blob(digest: str) -> Response:
        """The stored bytes (HEAD: whether the blob is stored)."""
        check_digest(digest)
        local = backend.blobs.local_path(digest)
        if local is not None:
            if not os.path.isfile(local):
                raise NotFound(f"blob {digest} is not stored on this server")
            return FileResponse(local, media_type="application/octet-stream")
        if not backend.blobs.has(digest):
            raise NotFound(f"blob {digest} is not stored on this server")
        source = backend.blobs.open(digest)

        def chunks() -> Iterator[bytes]:
            with source:
                while block := source.read(1 << 20):
                    yield block

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @router.put(
        f"{API}/blobs/{{digest}}",
        tags=["blobs"],
        dependencies=WRITE,
        responses=ERRORS,
        openapi_extra=binary_body(),
    )
    async def put_blob(digest: str, request: Request) -> dict[str, Any]:
        """Store the request body under `digest`; the server hashes every byte and refuses a mismatch."""
        check_digest(digest)
        return await receive(backend, backend.blobs, digest, request)

    @router.delete(f"{API}/blobs/{{digest}}", tags=["blobs"], dependencies=WRITE, responses=ERRORS, status_code=204)
    def delete_blob(digest: str) -> Response:
        """Remove a stored blob (garbage collection); removing one that is not there is fine.

        The server cannot see its clients' outboxes: a blob uploaded for a version still on its
        way may be unreferenced yet. So a blob a live version stores, or one stored within the
        grace period (HEADWATER_GC_GRACE, by the blob's time), is kept: 409 Conflict."""
        check_digest(digest)
        if backend.store.stores_blob(digest):
            raise Conflict(f"blob {digest} is stored by a live version: not removed")
        grace = backend.settings.gc_grace
        if not backend.blobs.prune(digest, grace) and backend.blobs.has(digest):
            raise Conflict(
                f"blob {digest} was stored less than {grace:g} s ago (HEADWATER_GC_GRACE): "
                "its version may still be on its way, not removed"
            )
        return Response(status_code=204)

    return router
