"""Blobs: content-addressed bytes, listed, streamed, uploaded (hashed on the way in) and collected;
on an S3 blob store, moved by presigned URLs straight between clients and the bucket
(headwater.server.direct)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, Field

from headwater.errors import Conflict, NotFound
from headwater.server.backend import Backend, receive
from headwater.server.common import API, ERRORS, READ, WRITE, WRITE_JSON, binary_body, check_digest
from headwater.server.direct import DirectTransfers
from headwater.server.limits import BodyTooLarge

log = logging.getLogger("headwater.server")


class BlobToUpload(BaseModel):
    digest: str = Field(max_length=80, description="blake3:<64 hex>")
    size: int = Field(ge=0, description="bytes: the presigned URL signs this length")


class UploadRequest(BaseModel):
    blobs: list[BlobToUpload] = Field(max_length=1000)


class Uploaded(BaseModel):
    upload: str = Field(max_length=64, description="the upload id the URL was handed out with")


def blob_routes(backend: Backend) -> APIRouter:
    """`/api/v1/blobs` and `/api/v1/blobs/{digest}`."""
    router = APIRouter()
    settings = backend.settings
    direct = DirectTransfers.of(backend.blobs, enabled=settings.presign, expiry=settings.presign_expiry)
    if direct is not None:
        try:
            swept = direct.sweep(settings.gc_grace)
        except Exception as err:  # noqa: BLE001 - leftovers wait for the next start
            log.warning("headwater: uploads left in the blob store not swept: %s", err)
        else:
            if swept:
                log.info("headwater: removed %d upload(s) never published from the blob store", swept)

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
        responses={
            **ERRORS,
            200: {"content": {"application/octet-stream": {}}, "description": "the bytes"},
            307: {"description": "`redirect=true` on an S3 blob store: a presigned URL of the bytes (Location)"},
        },
        response_class=Response,
    )
    def get_blob(
        digest: str,
        request: Request,
        redirect: Annotated[
            bool, Query(description="307 to a presigned URL of the object store, if it has one")
        ] = False,
    ) -> Response:
        """The stored bytes (HEAD: whether the blob is stored). With `redirect=true` on an S3 blob
        store, a 307 to a presigned GET of the bytes instead (HEADWATER_BLOB_PRESIGN_EXPIRY)."""
        check_digest(digest)
        if redirect and direct is not None and request.method == "GET":
            if not backend.blobs.has(digest):
                raise NotFound(f"blob {digest} is not stored on this server")
            url = direct.download_url(digest)
            if url is not None:
                return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
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

    @router.post(f"{API}/blobs/uploads", tags=["blobs"], dependencies=WRITE_JSON, responses=ERRORS)
    def upload_urls(wanted: Annotated[UploadRequest, Body()]) -> dict[str, Any]:
        """Which of these blobs are stored, and a presigned PUT URL (its length signed, good for
        HEADWATER_BLOB_PRESIGN_EXPIRY) for each of the others: the bytes go straight to the object
        store, then `POST /api/v1/blobs/{digest}/uploaded` has the server verify and publish them.
        `direct` is false when this server takes uploads only through `PUT /api/v1/blobs/{digest}`;
        a blob left out of `uploads` goes that way too."""
        for blob in wanted.blobs:
            check_digest(blob.digest)
            if blob.size > settings.max_blob:
                raise BodyTooLarge(
                    f"blob {blob.digest} is larger than this server's limit of {settings.max_blob} bytes"
                )
        stored, uploads = [], []
        for blob in wanted.blobs:
            if backend.blobs.has(blob.digest):
                backend.blobs.touch(blob.digest)  # young again for the grace period, as an upload would
                stored.append(blob.digest)
            elif direct is not None:
                offer = direct.upload_url(blob.digest, blob.size)
                if offer is not None:
                    uploads.append(offer)
        return {"direct": direct is not None, "stored": stored, "uploads": uploads}

    @router.post(f"{API}/blobs/{{digest}}/uploaded", tags=["blobs"], dependencies=WRITE_JSON, responses=ERRORS)
    def publish_upload(digest: str, done: Annotated[Uploaded, Body()]) -> dict[str, Any]:
        """Verify the bytes uploaded by a presigned URL (the server reads and hashes them from the
        object store) and publish them under `digest`: 409 and nothing stored when they hash to
        another digest, 404 when there is no such upload (upload through the server instead)."""
        check_digest(digest)
        if direct is None:
            raise NotFound("this server takes blobs only through PUT /api/v1/blobs/{digest}")
        size = direct.publish(digest, done.upload)
        return {"digest": digest, "stored": True, "size": size}

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
