"""OpenLineage in: RunEvents at Marquez's path, recorded as runs, versions and edges."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from headwater.errors import InvalidInput, Unavailable
from headwater.server.backend import Backend, gunzip
from headwater.server.common import API, ERRORS, WRITE_JSON
from headwater.server.limits import read_body
from headwater.server.openlineage_schema import REQUEST_BODY as _OL_BODY


def openlineage_routes(backend: Backend) -> APIRouter:
    """`POST /api/v1/lineage`."""
    router = APIRouter()

    @router.post(
        f"{API}/lineage",
        tags=["openlineage"],
        dependencies=WRITE_JSON,
        responses=ERRORS,
        status_code=201,
        openapi_extra={"requestBody": _OL_BODY},
    )
    async def post_lineage(request: Request) -> dict[str, int]:
        """OpenLineage RunEvents (one object, or a JSON array of them): runs, datasets, edges.

        The path Marquez serves, so any OpenLineage producer's HTTP transport can point here.
        Events received here are never emitted as OpenLineage again (loop guard)."""
        body = await read_body(request, backend.settings.max_body)
        if request.headers.get("content-encoding", "").lower() in ("gzip", "x-gzip"):
            body = gunzip(body, backend.settings.max_body)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidInput(f"the body is not JSON: {err}") from None
        except RecursionError:
            raise InvalidInput("the body is nested too deeply to read") from None
        try:
            from headwater.openlineage import events_from_openlineage
        except ImportError as err:  # pragma: no cover - the server extra brings it
            raise Unavailable(f'OpenLineage needs the "openlineage" extra: {err}') from None
        converted = events_from_openlineage(payload)
        await run_in_threadpool(backend.apply, converted.events, emit=False)
        return {"received": converted.received, "ignored": converted.ignored, "recorded": len(converted.events)}

    return router
