"""The FastAPI application: the Store protocol over HTTP, blobs, and OpenLineage in.

Every read method of headwater.store.base.Store has a GET endpoint with the same parameters;
writes are headwater events (`POST /api/v1/events`, the JSON the outbox stores), applied by the
SQL store idempotently by event id. Errors are JSON `{"error": <class>, "message": <one line>}`
with the status the class carries (headwater.errors), which headwater.store.http maps back to the
same exception.

This module only composes: the worker's state is headwater.server.backend, the routes are one
APIRouter per concern (routes_health, routes_writes, routes_reads, routes_blobs,
routes_purge, routes_openlineage, and the web UI), the error answers headwater.server.handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from headwater import __version__
from headwater.server.backend import Backend
from headwater.server.handlers import add_error_schema, install_error_handlers
from headwater.server.limits import BodyLimit
from headwater.server.routes_blobs import blob_routes
from headwater.server.routes_health import health_routes
from headwater.server.routes_openlineage import openlineage_routes
from headwater.server.routes_purge import purge_routes
from headwater.server.routes_reads import read_routes
from headwater.server.routes_writes import write_routes
from headwater.server.settings import Settings

__all__ = ["Backend", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for one worker (uvicorn calls this with factory=True)."""
    settings = settings or Settings.from_env()
    backend = Backend(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()

    app = FastAPI(
        title="headwater",
        version=__version__,
        description=(
            "Lineage tracking server: the headwater Store protocol over HTTP, content-addressed "
            "blobs, and OpenLineage RunEvents in (`POST /api/v1/lineage`, Marquez's path)."
        ),
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come with the UI, from the package's own assets
        redoc_url=None,
    )
    app.state.backend = backend
    app.add_middleware(BodyLimit, max_body=settings.max_body, max_blob=settings.max_blob)
    install_error_handlers(app)
    # In this order: it is the order of the paths in the OpenAPI document.
    for routes in (health_routes, write_routes, read_routes, blob_routes, purge_routes, openlineage_routes):
        app.include_router(routes(backend))

    from headwater.server.ui import add_ui

    add_ui(app, lambda: backend.client, lambda: settings.tokens)
    add_error_schema(app)
    return app
