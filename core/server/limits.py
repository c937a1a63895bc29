"""Request size limits: a JSON body past the limit is refused with 413 before it is read whole.

A declared Content-Length over the limit is refused at once; a chunked body is counted while
it streams in. Blob uploads (`PUT /api/v1/blobs/...`) stream to disk and have a limit of their own;
staged manifests (`PUT /api/v1/manifests/...`) are bounded by MANIFEST_FACTOR times the body limit.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.errors import InvalidInput

BLOBS_PREFIX = "/api/v1/blobs/"
MANIFESTS_PREFIX = "/api/v1/manifests/"
# A staged manifest (a version's entries sent apart from its event) may hold this many times
# the JSON body limit once decompressed: 256 MiB by default, some two million entries (the
# server holds them in memory while it applies them: about 1.4 GiB a million).
MANIFEST_FACTOR = 4


class BodyTooLarge(InvalidInput):
    """A request body over the server's limit (answered with 413)."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body: int, max_blob: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_blob = max_blob
        self.max_manifest = max_body * MANIFEST_FACTOR

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body
        if scope["method"] == "PUT" and scope["path"].startswith(BLOBS_PREFIX):
            limit = self.max_blob
        elif scope["method"] == "PUT" and scope["path"].startswith(MANIFESTS_PREFIX):
            limit = self.max_manifest  # compressed: never more than it holds decompressed
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                declared = value
                break
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit():
                await _answer(send, 400, "InvalidInput", "the Content-Length header is not a number")
                return
            if int(text) > limit:
                await _answer(
                    send, 413, "InvalidInput", f"the request body is larger than this server's limit of {limit} bytes"
                )
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # An HTTPException, because FastAPI turns any other error met while it reads
                    # a body into a 400 that would hide the reason.
                    raise HTTPException(413, f"the request body is larger than this server's limit of {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


async def _answer(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused past `limit` bytes (the middleware counts too; this is for gzip)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is larger than this server's limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
