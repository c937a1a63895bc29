"""Liveness and readiness, for a load balancer or an orchestrator's probes."""

from __future__ import annotations

from fastapi import APIRouter

from headwater import __version__
from headwater.server.backend import Backend
from headwater.server.common import ERRORS


def health_routes(backend: Backend) -> APIRouter:
    """`/healthz` and `/readyz`."""
    router = APIRouter()

    @router.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up (no database check; see /readyz)."""
        return {"status": "ok", "version": __version__}

    @router.get("/readyz", tags=["health"], responses={503: ERRORS[503]})
    def readyz() -> dict[str, str]:
        """The database answers and its schema is one this server knows."""
        backend.store.artifact_exists("")
        return {"status": "ready"}

    return router
