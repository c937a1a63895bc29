"""What one server worker process holds: the SQL store, the blob and staged-manifest stores, the
OpenLineage emitter; and the upload of a request body under its digest."""

from __future__ import annotations

import logging
import os
import threading
import uuid
import zlib
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from headwater import config
from headwater.api import Client
from headwater.blobs import BlobStore
from headwater.digest import new_hasher
from headwater.errors import Conflict, InvalidInput, NotFound, Unavailable
from headwater.events import VersionRecorded
from headwater.models import ManifestEntry
from headwater.server.limits import MANIFEST_FACTOR, BodyTooLarge
from headwater.server.settings import Settings
from headwater.store.sql import SQLStore

log = logging.getLogger("headwater.server")

_ENTRIES = TypeAdapter(list[ManifestEntry])
# A staged manifest is read by the event that names it, sent right after it: one left behind (its
# client gave up) is removed after this long. Kept until then, a replay of the event finds it.
STAGED_TTL_S = 24 * 3600


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
            entries = _ENTRIES.validate_json(gunzip(packed, self.max_manifest))
        except ValidationError as err:
            raise InvalidInput(
                f"staged manifest {event.manifest} is not a list of entries: {err.errors()[0]['msg']}"
            ) from None
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


async def receive(backend: Backend, store: BlobStore, digest: str, request: Request) -> dict[str, Any]:
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


def gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as err:
        raise InvalidInput(f"the body is not valid gzip: {err}") from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise BodyTooLarge(f"the body is larger than {limit} bytes once decompressed")
    return out
