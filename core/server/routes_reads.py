"""Reads: every read method of headwater.store.base.Store as a GET with the same parameters."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from headwater import times
from headwater.errors import InvalidInput
from headwater.models import AliasMove, Artifact, LineageGraph, Reachable, Run, Version
from headwater.refs import Ref
from headwater.server.backend import Backend
from headwater.server.common import (
    API,
    ERRORS,
    READ,
    Alias,
    DigestPrefix,
    Label,
    Limit,
    Name,
    Text,
    json_answer,
    json_body,
    ref,
)
from headwater.store.base import LineageDirection

ARTIFACT: TypeAdapter[Artifact] = TypeAdapter(Artifact)
ARTIFACTS: TypeAdapter[list[Artifact]] = TypeAdapter(list[Artifact])
VERSION: TypeAdapter[Version] = TypeAdapter(Version)
VERSIONS: TypeAdapter[list[Version]] = TypeAdapter(list[Version])
RUN: TypeAdapter[Run] = TypeAdapter(Run)
RUNS: TypeAdapter[list[Run]] = TypeAdapter(list[Run])
GRAPH: TypeAdapter[LineageGraph] = TypeAdapter(LineageGraph)
REACHABLE: TypeAdapter[Reachable] = TypeAdapter(Reachable)
MOVES: TypeAdapter[list[AliasMove]] = TypeAdapter(list[AliasMove])
STRINGS: TypeAdapter[list[str]] = TypeAdapter(list[str])
DOWNSTREAM_OF_MAX = 1_000  # REFs in one downstream-of request (HTTPStore sends more in turns)


class RefBody(BaseModel):
    """A version as a REF's parts: the name and at most one of label, alias or digest (none: the
    latest)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=4096)
    label: str | None = Field(default=None, max_length=32, description="v<N>")
    alias: str | None = Field(default=None, max_length=256)
    digest: str | None = Field(default=None, max_length=200, description="digest or hex prefix")


Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="how many to skip (a page's start)")]


def walk_from(
    name: Name,
    direction: Literal["upstream", "downstream"],
    label: Label = None,
    alias: Alias = None,
    digest: DigestPrefix = None,
    depth: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> tuple[Ref, LineageDirection, int | None]:
    """A walk's query parameters (lineage, reachable): the version's REF parts, the direction and
    the depth."""
    return ref(name, label, alias, digest), direction, depth


Walk = Annotated[tuple[Ref, LineageDirection, int | None], Depends(walk_from)]


def read_routes(backend: Backend) -> APIRouter:
    """The Store's reads, under /api/v1."""
    router = APIRouter()

    @router.get(f"{API}/artifacts", tags=["read"], dependencies=READ, responses=ERRORS, response_model=list[Artifact])
    def list_artifacts(
        type: Text = None,
        limit: Limit = None,
        name_like: Text = None,
        tag: Annotated[str | None, Query(max_length=256, description="with a version carrying this tag")] = None,
        order: Literal["name", "updated"] = "name",
        offset: Offset = 0,
    ) -> Response:
        """Artifacts by name, or newest update first (`order=updated`), a page from `offset`."""
        return json_answer(
            ARTIFACTS,
            backend.store.list_artifacts(
                type=type, limit=limit, name_like=name_like, tag=tag, order=order, offset=offset
            ),
        )

    @router.get(f"{API}/artifact", tags=["read"], dependencies=READ, responses=ERRORS, response_model=Artifact)
    def get_artifact(name: Name) -> Response:
        return json_answer(ARTIFACT, backend.store.get_artifact(name))

    @router.get(f"{API}/version", tags=["read"], dependencies=READ, responses=ERRORS, response_model=Version)
    def get_version(
        name: Name, label: Label = None, alias: Alias = None, digest: DigestPrefix = None, at: datetime | None = None
    ) -> Response:
        """One version by label, alias (default latest) or digest prefix; `at`: alias at that time."""
        return json_answer(
            VERSION,
            backend.store.get_version(ref(name, label, alias, digest), at=None if at is None else times.utc(at, "at")),
        )

    @router.get(f"{API}/versions", tags=["read"], dependencies=READ, responses=ERRORS, response_model=list[Version])
    def list_versions(
        name: Name,
        limit: Limit = None,
        tag: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006 - FastAPI copies it
        metadata: Annotated[str | None, Query(max_length=16384, description="JSON object of metadata equal to")] = None,
        include_deleted: bool = False,
    ) -> Response:
        """Versions of an artifact, oldest first."""
        wanted: dict[str, Any] | None = None
        if metadata is not None:
            try:
                wanted = json.loads(metadata)
            except ValueError:
                raise InvalidInput("metadata must be a JSON object") from None
            if not isinstance(wanted, dict):
                raise InvalidInput("metadata must be a JSON object")
        return json_answer(
            VERSIONS,
            backend.store.list_versions(name, limit=limit, tags=tag, metadata=wanted, include_deleted=include_deleted),
        )

    @router.get(f"{API}/runs", tags=["read"], dependencies=READ, responses=ERRORS, response_model=list[Run])
    def list_runs(
        job: Text = None, orchestrator: Text = None, status: Text = None, parent_id: Text = None, limit: Limit = None
    ) -> Response:
        """Runs, newest first."""
        return json_answer(
            RUNS,
            backend.store.list_runs(
                job=job, orchestrator=orchestrator, status=status, parent_id=parent_id, limit=limit
            ),
        )

    @router.get(f"{API}/run", tags=["read"], dependencies=READ, responses=ERRORS, response_model=Run)
    def get_run(id: Annotated[str, Query(min_length=1, max_length=4096)]) -> Response:
        return json_answer(RUN, backend.store.get_run(id))

    @router.get(f"{API}/lineage", tags=["read"], dependencies=READ, responses=ERRORS, response_model=LineageGraph)
    def lineage(walk: Walk) -> Response:
        """Versions and runs reachable from a version, at most `depth` runs away."""
        return json_answer(GRAPH, backend.store.lineage(*walk))

    @router.get(
        f"{API}/lineage/reachable", tags=["read"], dependencies=READ, responses=ERRORS, response_model=Reachable
    )
    def reachable(walk: Walk) -> Response:
        """The refs `lineage` would hold: each version's ref with its hops from the root, and
        the ids of the runs walked through (a closure of any size answers in one small body)."""
        return json_answer(REACHABLE, backend.store.reachable(*walk))

    @router.post(
        f"{API}/lineage/downstream-of",
        tags=["read"],
        dependencies=[*READ, Depends(json_body)],
        responses=ERRORS,
        response_model=LineageGraph,
    )
    def downstream_of(
        refs: Annotated[list[RefBody], Body(max_length=DOWNSTREAM_OF_MAX, description="the versions walked from")],
    ) -> Response:
        """Everything downstream of any of the versions (impact's walk), found in one walk: their
        downstream graphs merged, without a root or direction. A read (a POST for the list's
        sake): a read token is enough."""
        return json_answer(GRAPH, backend.store.downstream_of([ref(r.name, r.label, r.alias, r.digest) for r in refs]))

    @router.get(f"{API}/path", tags=["read"], dependencies=READ, responses=ERRORS, response_model=LineageGraph)
    def lineage_path(
        source_name: Name,
        target_name: Name,
        source_label: Label = None,
        source_alias: Alias = None,
        source_digest: DigestPrefix = None,
        target_label: Label = None,
        target_alias: Alias = None,
        target_digest: DigestPrefix = None,
    ) -> Response:
        """Every path from the source version down to the target version."""
        return json_answer(
            GRAPH,
            backend.store.lineage_path(
                ref(source_name, source_label, source_alias, source_digest),
                ref(target_name, target_label, target_alias, target_digest),
            ),
        )

    @router.get(f"{API}/runs-using", tags=["read"], dependencies=READ, responses=ERRORS, response_model=list[Run])
    def runs_using(name: Name, limit: Limit = None, offset: Offset = 0) -> Response:
        """Every run that used any version of an artifact, newest first (ties: the greater id
        first); `limit` runs from the `offset`-th when given."""
        return json_answer(RUNS, backend.store.runs_using(name, limit=limit, offset=offset))

    @router.get(f"{API}/holding", tags=["read"], dependencies=READ, responses=ERRORS, response_model=list[Version])
    def versions_holding(digest: Text = None, path: Text = None) -> Response:
        """Versions with an entry of that file digest, or whose entry path or ref matches `path`."""
        return json_answer(VERSIONS, backend.store.versions_holding(digest=digest, path=path))

    @router.get(
        f"{API}/alias-history", tags=["read"], dependencies=READ, responses=ERRORS, response_model=list[AliasMove]
    )
    def alias_history(name: Name, alias: Alias = None) -> Response:
        return json_answer(MOVES, backend.store.alias_history(name, alias))

    @router.get(
        f"{API}/blobs/referenced", tags=["blobs"], dependencies=READ, responses=ERRORS, response_model=list[str]
    )
    def referenced_blob_digests() -> Response:
        """File digests that versions not deleted still store."""
        return json_answer(STRINGS, sorted(backend.store.referenced_blob_digests()))

    return router
