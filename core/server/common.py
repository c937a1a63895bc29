"""What every route module of the server shares: the API prefix, the scope each route needs, the
error answers it declares, and the query parameters of a REF."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from pydantic import TypeAdapter

from headwater.digest import is_content_digest
from headwater.errors import InvalidInput
from headwater.refs import Ref
from headwater.server.auth import require

API = "/api/v1"
READ = [Depends(require("read"))]
WRITE = [Depends(require("write"))]


class UnsupportedMediaType(Exception):
    """A write whose body is not declared JSON: a web page's form or `text/plain` request
    (which a browser sends cross-site without asking) must never write lineage."""


async def json_body(request: Request) -> None:  # async: no thread-pool hop for a header check
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise UnsupportedMediaType(kind or "none")


WRITE_JSON = [*WRITE, Depends(json_body)]
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for status, text in (
        (400, "Bad input: an invalid reference, name, digest or event"),
        (401, "A token is needed, or the one sent was not accepted"),
        (403, "The token is read-only"),
        (404, "No such artifact, version, alias, run or blob"),
        (409, "Contradicts what is recorded"),
        (410, "The content was purged (a privacy takedown)"),
        (413, "The request body is too large"),
        (415, "The body of a write is not declared JSON (Content-Type: application/json)"),
        (422, "The request does not match the schema"),
        (503, "The database cannot be reached, or its schema is newer than this server"),
    )
}


class JSONBody(Response):
    """An answer already serialised by pydantic (`json_answer`)."""

    media_type = "application/json"


def json_answer(adapter: TypeAdapter[Any], value: Any) -> JSONBody:
    """The value as JSON, serialised once by pydantic-core: FastAPI would validate a route's return
    value against its response model again (in the thread pool) before serialising it. The route
    declares `response_model` for the OpenAPI document."""
    return JSONBody(adapter.dump_json(value, by_alias=True))


def binary_body() -> dict[str, Any]:
    """The OpenAPI request body of an upload: raw bytes, read as a stream (not a parameter)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    }


def check_digest(digest: str) -> str:
    if not is_content_digest(digest):
        raise InvalidInput(f"not a blob digest: {digest[:80]!r}; expected blake3:<64 hex>")
    return digest


def ref(name: str, label: str | None, alias: str | None, digest: str | None) -> Ref:
    return Ref(name, label=label, alias=alias, digest=digest)


Name = Annotated[str, Query(min_length=1, max_length=4096, description="artifact name")]
Label = Annotated[str | None, Query(max_length=32, description="v<N>")]
Alias = Annotated[str | None, Query(max_length=256, description="alias (default latest)")]
DigestPrefix = Annotated[str | None, Query(max_length=200, description="digest or hex prefix")]
Limit = Annotated[int | None, Query(ge=0, le=1_000_000)]
Text = Annotated[str | None, Query(max_length=4096)]
