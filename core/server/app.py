"""The FastAPI application: the Store protocol over HTTP, blobs, and OpenLineage in.

Every read method of headwater.store.base.Store has a GET endpoint with the same parameters;
writes are headwater events (`POST /api/v1/events`, the JSON the outbox stores), applied by the
SQL store idempotently by event id. Errors are JSON `{"error": <class>, "message": <one line>}`
with the status headwater.store.http maps back to the same exception.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from headwater import __version__, config, times
from headwater.api import Client
from headwater.blobs import BlobStore
from headwater.digest import is_content_digest, new_hasher
from headwater.errors import Conflict, HeadwaterError, InvalidInput, NotFound, Unavailable, status_of
from headwater.events import Event, VersionRecorded
from headwater.models import AliasMove, Artifact, LineageGraph, ManifestEntry, Run, Version
from headwater.refs import Ref
from headwater.server.auth import AuthError, require
from headwater.server.limits import MANIFEST_FACTOR, BodyLimit, BodyTooLarge, read_body
from headwater.server.settings import Settings
from headwater.store.sql import SQLStore
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("headwater.server")

API = "/api/v1"
READ = [Depends(require("read"))]
WRITE = [Depends(require("write"))]
_ENTRIES = TypeAdapter(list[ManifestEntry])
# A staged manifest is read by the event that names it, sent right after it: one left behind (its
# client gave up) is removed after this long. Kept until then, a replay of the event finds it.
STAGED_TTL_S = 24 * 3600


class UnsupportedMediaType(Exception):
    """A write whose body is not declared JSON: a web page's form or `text/plain` request
    (which a browser sends cross-site without asking) must never write lineage."""


def json_body(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise UnsupportedMediaType(kind or "none")


WRITE_JSON = [*WRITE, Depends(json_body)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for status, text in (
        (400, "Bad input: an invalid reference, name, digest or event"),
        (401, "A token is needed, or the one sent was not accepted"),
        (403, "The token is read-only"),
        (404, "No such artifact, version, alias, run or blob"),
        (409, "Contradicts what is recorded"),
        (413, "The request body is too large"),
        (415, "The body of a write is not declared JSON (Content-Type: application/json)"),
        (422, "The request does not match the schema"),
        (503, "The database cannot be reached, or its schema is newer than this server"),
    )
}


class Backend:
    """What one worker process holds: the store (opened on first use), blobs, the emitter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.blobs = BlobStore(settings.blob_uri, fsync=True)
        # Staged manifests: beside the blobs (shared by every worker), never listed among them.
        staged = settings.blob_uri
        staged = f"{staged.rstrip('/')}/staged" if "://" in staged else os.path.join(staged, "staged")
        self.staged = BlobStore(staged, fsync=True)
        self.max_manifest = settings.max_body * MANIFEST_FACTOR
        self._store: SQLStore | None = None
        self._client: Client | None = None
        self._lock = threading.Lock()
        self.emitter: Any = None
        self.sweep_tmp()
        if settings.openlineage_url:
            from headwater.openlineage import Emitter, refuse_loop

            refuse_loop(settings.openlineage_url, settings.bind)
            self.emitter = Emitter.from_url(settings.openlineage_url, background=True)
        try:
            self._open()
        except Unavailable as err:
            # The database may come up after the server: /readyz says so until it does.
            log.warning("headwater: the store is not reachable yet: %s", err)

    def _open(self) -> SQLStore:
        with self._lock:
            if self._store is None:
                self._store = SQLStore(self.settings.store_uri)
            return self._store

    @property
    def store(self) -> SQLStore:
        return self._store if self._store is not None else self._open()

    @property
    def client(self) -> Client:
        """The web UI reads through the same Client calls as the API's users, over this store."""
        if self._client is None:
            self._client = Client(home=config.headwater_home(), store=self.store)
        return self._client

    def close(self) -> None:
        if self.emitter is not None:
            self.emitter.close(timeout=5)
        if self._store is not None:
            self._store.close()

    def apply(self, events: list[Any], *, emit: bool) -> list[str]:
        # Their times are checked when they are made (headwater.events).
        events = [self._unstage(event) if isinstance(event, VersionRecorded) else event for event in events]
        notices = self.store.apply(events)
        if emit and self.emitter is not None:
            self.emitter.submit(self.store, events)
        return notices

    def _unstage(self, event: VersionRecorded) -> VersionRecorded:
        """The event with the entries of the manifest it names, staged before it was sent.

        A manifest no longer here is left named: the store skips the event if it was applied
        before (a replay) and refuses it otherwise."""
        if event.manifest is None:
            return event
        if event.entries:
            raise InvalidInput(f"version {event.name}@{event.digest} has entries and a staged manifest: give one")
        try:
            with self.staged.open(event.manifest) as source:
                packed = source.read()
        except NotFound:
            return event
        try:
            entries = _ENTRIES.validate_json(_gunzip(packed, self.max_manifest))
        except ValidationError as err:
            raise InvalidInput(f"staged manifest {event.manifest} is not a list of entries: {err.errors()[0]['msg']}") from None
        return event.model_copy(update={"entries": entries, "manifest": None})

    def prune_staged(self) -> None:
        """Remove staged manifests older than STAGED_TTL_S (a local blob folder only)."""
        if self.staged.local_root is None:
            return
        import time

        cutoff = time.time() - STAGED_TTL_S
        for digest in list(self.staged.iter_digests()):
            path = self.staged.local_path(digest)
            try:
                if path is not None and os.stat(path).st_mtime < cutoff:
                    self.staged.delete(digest)
            except FileNotFoundError:
                pass

    # -- blobs -------------------------------------------------------------------------------

    def tmp_folder(self) -> str:
        # Beside the blobs, so a verified upload is published by a rename.
        root = self.blobs.local_root
        if root is not None:
            folder = os.path.join(root, "tmp")
        else:
            import tempfile

            folder = os.path.join(tempfile.gettempdir(), "headwater-uploads")
        os.makedirs(folder, exist_ok=True)
        return folder

    def tmp_file(self) -> str:
        return os.path.join(self.tmp_folder(), uuid.uuid4().hex)

    def sweep_tmp(self) -> None:
        """Remove uploads a killed server left behind, older than the grace period (a younger
        one may be another worker's upload under way)."""
        from headwater.blobs import sweep_folder

        folder = self.tmp_folder()
        swept = sweep_folder(folder, self.settings.gc_grace)
        if swept:
            log.info("headwater: removed %d upload(s) left in %s", len(swept), folder)

    def commit_blob(self, tmp: str, digest: str, store: BlobStore | None = None) -> None:
        """Publish a verified upload under its digest."""
        store = store or self.blobs
        final = store.local_path(digest)
        if final is None:
            try:
                store.put_file(tmp, digest)
            finally:
                os.unlink(tmp)
            return
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp, final)


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": _one_line(message)}, status_code=status, headers=headers)


def _check_digest(digest: str) -> str:
    if not is_content_digest(digest):
        raise InvalidInput(f"not a blob digest: {digest[:80]!r}; expected blake3:<64 hex>")
    return digest


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors():
        if item.get("type") == "json_invalid":
            reason = (item.get("ctx") or {}).get("error", "")
            return f"the body is not valid JSON: {reason}".rstrip(": ")
    for item in err.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        reason = (item.get("ctx") or {}).get("error")  # a headwater check's own sentence
        parts.append(f"{where}: {reason if reason is not None else item.get('msg', 'invalid')}")
    more = len(err.errors()) - 3
    return "invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _ref(name: str, label: str | None, alias: str | None, digest: str | None) -> Ref:
    return Ref(name, label=label, alias=alias, digest=digest)


Name = Annotated[str, Query(min_length=1, max_length=4096, description="artifact name")]
Label = Annotated[str | None, Query(max_length=32, description="v<N>")]
Alias = Annotated[str | None, Query(max_length=256, description="alias (default latest)")]
DigestPrefix = Annotated[str | None, Query(max_length=200, description="digest or hex prefix")]
Limit = Annotated[int | None, Query(ge=0, le=1_000_000)]
Text = Annotated[str | None, Query(max_length=4096)]


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
    _install_error_handlers(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up (no database check; see /readyz)."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"], responses={503: _ERRORS[503]})
    def readyz() -> dict[str, str]:
        """The database answers and its schema is one this server knows."""
        backend.store.artifact_exists("")
        return {"status": "ready"}

    # -- writes ------------------------------------------------------------------------------

    @app.post(f"{API}/events", tags=["write"], dependencies=WRITE_JSON, responses=_ERRORS)
    def post_events(events: Annotated[list[Event], Body(description="headwater events, applied in order in one transaction")]) -> dict[str, Any]:
        """Apply a batch of headwater events; an event id seen before is skipped.

        A version with many entries may name a manifest staged just before
        (`PUT /api/v1/manifests/{digest}`) instead of carrying them. `notices`: what was recorded
        otherwise than asked (an edge kept on a deleted version)."""
        notices = backend.apply(events, emit=True)
        return {"received": len(events), "notices": notices}

    @app.get(f"{API}/limits", tags=["write"], dependencies=READ, responses=_ERRORS)
    def limits() -> dict[str, int]:
        """The largest JSON request (`max_body`) and staged manifest, decompressed (`max_manifest`),
        in bytes: a client checks a version fits before it uploads any of its blobs."""
        return {"max_body": settings.max_body, "max_manifest": backend.max_manifest}

    @app.put(
        f"{API}/manifests/{{digest}}",
        tags=["write"],
        dependencies=WRITE,
        responses=_ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def put_manifest(digest: str, request: Request) -> dict[str, Any]:
        """Stage a version's entries (a gzip-compressed JSON array) under the digest of the bytes
        sent, for the event that names it. Hashed and published whole, as a blob: a manifest cut
        short is never seen."""
        _check_digest(digest)
        await run_in_threadpool(backend.prune_staged)
        return await _receive(backend, backend.staged, digest, request)

    # -- reads -------------------------------------------------------------------------------

    @app.get(f"{API}/artifacts", tags=["read"], dependencies=READ, responses=_ERRORS)
    def list_artifacts(
        type: Text = None,
        limit: Limit = None,
        name_like: Text = None,
        tag: Annotated[str | None, Query(max_length=256, description="with a version carrying this tag")] = None,
        order: Literal["name", "updated"] = "name",
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> list[Artifact]:
        """Artifacts by name, or newest update first (`order=updated`), a page from `offset`."""
        return backend.store.list_artifacts(
            type=type, limit=limit, name_like=name_like, tag=tag, order=order, offset=offset
        )

    @app.get(f"{API}/artifact", tags=["read"], dependencies=READ, responses=_ERRORS)
    def get_artifact(name: Name) -> Artifact:
        return backend.store.get_artifact(name)

    @app.get(f"{API}/version", tags=["read"], dependencies=READ, responses=_ERRORS)
    def get_version(
        name: Name, label: Label = None, alias: Alias = None, digest: DigestPrefix = None, at: datetime | None = None
    ) -> Version:
        """One version by label, alias (default latest) or digest prefix; `at`: alias at that time."""
        return backend.store.get_version(_ref(name, label, alias, digest), at=None if at is None else times.utc(at, "at"))

    @app.get(f"{API}/versions", tags=["read"], dependencies=READ, responses=_ERRORS)
    def list_versions(
        name: Name,
        limit: Limit = None,
        tag: Annotated[list[str], Query(max_length=100)] = [],  # noqa: B006 - FastAPI copies it
        metadata: Annotated[str | None, Query(max_length=16384, description="JSON object of metadata equal to")] = None,
        include_deleted: bool = False,
    ) -> list[Version]:
        """Versions of an artifact, oldest first."""
        wanted: dict[str, Any] | None = None
        if metadata is not None:
            try:
                wanted = json.loads(metadata)
            except ValueError:
                raise InvalidInput("metadata must be a JSON object") from None
            if not isinstance(wanted, dict):
                raise InvalidInput("metadata must be a JSON object")
        return backend.store.list_versions(name, limit=limit, tags=tag, metadata=wanted, include_deleted=include_deleted)

    @app.get(f"{API}/runs", tags=["read"], dependencies=READ, responses=_ERRORS)
    def list_runs(
        job: Text = None, orchestrator: Text = None, status: Text = None, parent_id: Text = None, limit: Limit = None
    ) -> list[Run]:
        """Runs, newest first."""
        return backend.store.list_runs(job=job, orchestrator=orchestrator, status=status, parent_id=parent_id, limit=limit)

    @app.get(f"{API}/run", tags=["read"], dependencies=READ, responses=_ERRORS)
    def get_run(id: Annotated[str, Query(min_length=1, max_length=4096)]) -> Run:
        return backend.store.get_run(id)

    @app.get(f"{API}/lineage", tags=["read"], dependencies=READ, responses=_ERRORS)
    def lineage(
        name: Name,
        direction: Literal["upstream", "downstream"],
        label: Label = None,
        alias: Alias = None,
        digest: DigestPrefix = None,
        depth: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    ) -> LineageGraph:
        """Versions and runs reachable from a version, at most `depth` runs away."""
        return backend.store.lineage(_ref(name, label, alias, digest), direction, depth)

    @app.get(f"{API}/path", tags=["read"], dependencies=READ, responses=_ERRORS)
    def lineage_path(
        source_name: Name,
        target_name: Name,
        source_label: Label = None,
        source_alias: Alias = None,
        source_digest: DigestPrefix = None,
        target_label: Label = None,
        target_alias: Alias = None,
        target_digest: DigestPrefix = None,
    ) -> LineageGraph:
        """Every path from the source version down to the target version."""
        return backend.store.lineage_path(
            _ref(source_name, source_label, source_alias, source_digest),
            _ref(target_name, target_label, target_alias, target_digest),
        )

    @app.get(f"{API}/runs-using", tags=["read"], dependencies=READ, responses=_ERRORS)
    def runs_using(name: Name) -> list[Run]:
        """Every run that used any version of an artifact, newest first."""
        return backend.store.runs_using(name)

    @app.get(f"{API}/holding", tags=["read"], dependencies=READ, responses=_ERRORS)
    def versions_holding(digest: Text = None, path: Text = None) -> list[Version]:
        """Versions with an entry of that file digest, or whose entry path or ref matches `path`."""
        return backend.store.versions_holding(digest=digest, path=path)

    @app.get(f"{API}/alias-history", tags=["read"], dependencies=READ, responses=_ERRORS)
    def alias_history(name: Name, alias: Alias = None) -> list[AliasMove]:
        return backend.store.alias_history(name, alias)

    @app.get(f"{API}/blobs/referenced", tags=["blobs"], dependencies=READ, responses=_ERRORS)
    def referenced_blob_digests() -> list[str]:
        """File digests that versions not deleted still store."""
        return sorted(backend.store.referenced_blob_digests())

    # -- blobs -------------------------------------------------------------------------------

    @app.get(f"{API}/blobs", tags=["blobs"], dependencies=READ, responses=_ERRORS, response_model=list[str])
    def list_blobs() -> Response:
        """Every stored blob digest (a JSON array, streamed)."""

        def items() -> Iterator[bytes]:
            yield b"["
            for i, digest in enumerate(backend.blobs.iter_digests()):
                yield (b"," if i else b"") + json.dumps(digest).encode()
            yield b"]"

        return StreamingResponse(items(), media_type="application/json")

    @app.api_route(
        f"{API}/blobs/{{digest}}",
        methods=["GET", "HEAD"],
        tags=["blobs"],
        dependencies=READ,
        responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the bytes"}},
        response_class=Response,
    )
    def get_blob(digest: str) -> Response:
        """The stored bytes (HEAD: whether the blob is stored)."""
        _check_digest(digest)
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

    @app.put(
        f"{API}/blobs/{{digest}}",
        tags=["blobs"],
        dependencies=WRITE,
        responses=_ERRORS,
        openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def put_blob(digest: str, request: Request) -> dict[str, Any]:
        """Store the request body under `digest`; the server hashes every byte and refuses a mismatch."""
        _check_digest(digest)
        return await _receive(backend, backend.blobs, digest, request)

    @app.delete(f"{API}/blobs/{{digest}}", tags=["blobs"], dependencies=WRITE, responses=_ERRORS, status_code=204)
    def delete_blob(digest: str) -> Response:
        """Remove a stored blob (garbage collection); removing one that is not there is fine.

        The server cannot see its clients' outboxes: a blob uploaded for a version still on its
        way may be unreferenced yet. So a blob a live version stores, or one stored within the
        grace period (HEADWATER_GC_GRACE, by the blob's time), is kept: 409 Conflict."""
        _check_digest(digest)
        if backend.store.stores_blob(digest):
            raise Conflict(f"blob {digest} is stored by a live version: not removed")
        grace = backend.settings.gc_grace
        if not backend.blobs.prune(digest, grace) and backend.blobs.has(digest):
            raise Conflict(
                f"blob {digest} was stored less than {grace:g} s ago (HEADWATER_GC_GRACE): "
                "its version may still be on its way, not removed"
            )
        return Response(status_code=204)

    # -- OpenLineage -------------------------------------------------------------------------

    from headwater.server.openlineage_schema import REQUEST_BODY as _OL_BODY

    @app.post(
        f"{API}/lineage",
        tags=["openlineage"],
        dependencies=WRITE_JSON,
        responses=_ERRORS,
        status_code=201,
        openapi_extra={"requestBody": _OL_BODY},
    )
    async def post_lineage(request: Request) -> dict[str, int]:
        """OpenLineage RunEvents (one object, or a JSON array of them): runs, datasets, edges.

        The path Marquez serves, so any OpenLineage producer's HTTP transport can point here.
        Events received here are never emitted as OpenLineage again (loop guard)."""
        body = await read_body(request, settings.max_body)
        if request.headers.get("content-encoding", "").lower() in ("gzip", "x-gzip"):
            body = _gunzip(body, settings.max_body)
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

    from headwater.server.ui import add_ui

    add_ui(app, lambda: backend.client, lambda: settings.tokens)
    _add_error_schema(app)
    return app


async def _receive(backend: Backend, store: BlobStore, digest: str, request: Request) -> dict[str, Any]:
    """Store a request body under `digest`, hashing every byte; a mismatch stores nothing."""
    if await run_in_threadpool(store.has, digest):
        async for _ in request.stream():  # already stored: read and drop the body
            pass
        await run_in_threadpool(store.touch, digest)  # young again for the grace period
        return {"digest": digest, "stored": False}
    declared = request.headers.get("content-length", "")
    hasher = new_hasher(int(declared) if declared.isdigit() else 0)
    tmp = backend.tmp_file()
    size = 0
    try:
        # Local writes of the chunks uvicorn hands over (64 KiB) do not hold the loop long.
        with open(tmp, "xb") as out:  # noqa: ASYNC230
            async for chunk in request.stream():
                if chunk:
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            out.flush()
            await run_in_threadpool(os.fsync, out.fileno())
        got = "blake3:" + hasher.hexdigest()
        if got != digest:
            raise Conflict(f"the {size} bytes sent hash to {got}, not {digest}: nothing was stored")
        await run_in_threadpool(backend.commit_blob, tmp, digest, store)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"digest": digest, "stored": True, "size": size}


def _gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as err:
        raise InvalidInput(f"the body is not valid gzip: {err}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise BodyTooLarge(f"the body is larger than {limit} bytes once decompressed")
    return out


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeadwaterError)
    async def headwater_error(request: Request, err: HeadwaterError) -> JSONResponse:
        status, error = (413, "InvalidInput") if isinstance(err, BodyTooLarge) else status_of(err)
        if status >= 500:
            log.warning("headwater: %s %s: %s", request.method, request.url.path, _one_line(err))
        return _error(status, error, str(err))

    @app.exception_handler(UnsupportedMediaType)
    async def unsupported_media_type(request: Request, err: UnsupportedMediaType) -> JSONResponse:
        return _error(415, "InvalidInput", f"the body must be JSON (Content-Type: application/json), not {err}")

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, err: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return _error(err.status, err.error, err.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "InvalidInput", _validation_message(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else "HTTP error"
        if err.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        error = "InvalidInput" if err.status_code in (400, 413) else "HTTPError"
        return _error(err.status_code, error, message, getattr(err, "headers", None))

    @app.exception_handler(sa_exc.DataError)
    async def data_error(request: Request, err: sa_exc.DataError) -> JSONResponse:
        return _error(400, "InvalidInput", f"the database refused a value: {_first_line(err.orig or err)}")

    @app.exception_handler(sa_exc.IntegrityError)
    async def integrity_error(request: Request, err: sa_exc.IntegrityError) -> JSONResponse:
        return _error(409, "Conflict", f"the database refused the change: {_first_line(err.orig or err)}")

    @app.exception_handler(OverflowError)
    async def overflow_error(request: Request, err: OverflowError) -> JSONResponse:
        return _error(400, "InvalidInput", f"a value is out of range: {_first_line(err)}")

    @app.exception_handler(UnicodeError)
    async def unicode_error(request: Request, err: UnicodeError) -> JSONResponse:
        return _error(400, "InvalidInput", "text must be valid Unicode (no lone surrogates)")

    @app.exception_handler(RecursionError)
    async def recursion_error(request: Request, err: RecursionError) -> JSONResponse:
        return _error(400, "InvalidInput", "the request is nested too deeply")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        # A bug, not the request's fault: one line for the client (which retries it as
        # Unavailable); the traceback goes to the server's log once, where uvicorn writes it.
        return _error(500, "Internal", f"the server failed on {request.method} {request.url.path}: {type(err).__name__}")


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _add_error_schema(app: FastAPI) -> None:
    """Declare the Error body every 4xx/5xx answer carries, in the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "NotFound, InvalidRef, InvalidInput, Conflict, Unavailable, ..."},
                "message": {"type": "string", "description": "one line a user can act on"},
            },
        }
        schema["components"].setdefault("securitySchemes", {})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
