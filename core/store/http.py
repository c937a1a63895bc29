"""The client of the tracking server (`HEADWATER_URI=http(s)://host:port`), with the `http` extra.

Writes arrive here from the durable outbox (headwater.outbox): `apply` is one POST of the batch,
and a server that cannot be reached raises Unavailable so the batch waits on disk. Reads are one
GET each. The server answers errors as `{"error": <class>, "message": <one line>}`, raised here as
the same headwater exception. The token comes from HEADWATER_TOKEN or HEADWATER_TOKEN_FILE and is
only ever sent in the Authorization header.

Blobs go to the server too (HTTPBlobStore): uploaded in streamed chunks, the server hashing every
byte. A server whose blobs are in S3 hands out presigned URLs instead: the bytes go straight to
the bucket and back, and the server hashes each upload there before it publishes it
(headwater.server.direct); on any failure of that path the bytes go through the server. While the
server is away a blob is kept in the outbox's blob folder, and the batch that records its version
uploads it before the batch itself is delivered.

A batch too large for one request (a version of a million files: 125 MB of entries) sends the
entries of its large versions apart first, each as one gzip-compressed staged manifest
(`PUT /api/v1/manifests/{digest}`), and the events name them. The server's limits are asked once,
and only for a large batch; `check_sendable` asks them before any blob of a version is uploaded.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard, cast

from pydantic import TypeAdapter

from headwater import config
from headwater.errors import WIRE, Conflict, HeadwaterError, InvalidInput, NotFound, Unauthorized, Unavailable
from headwater.events import EVENTS, ContentPurged, Event, VersionRecorded
from headwater.models import (
    AliasMove,
    Artifact,
    AuditRecord,
    LineageGraph,
    ManifestEntry,
    Reachable,
    RetentionPolicy,
    Run,
    Version,
)
from headwater.refs import Ref
from headwater.store import backoff
from headwater.store.base import ArtifactOrder, LineageDirection, Store

log = logging.getLogger("headwater.http")

API = "/api/v1"
_CHUNK = 1 << 20
# The slowest the server is expected to read and hash a blob from its object store (bytes/s):
# the time a client waits for the verdict on a presigned upload grows with the blob at this rate.
_VERIFY_RATE = 20 << 20

_VERSIONS = TypeAdapter(list[Version])
_RUNS = TypeAdapter(list[Run])
_ARTIFACTS = TypeAdapter(list[Artifact])
_MOVES = TypeAdapter(list[AliasMove])
_STRINGS = TypeAdapter(list[str])
_DOWNSTREAM_OF_MAX = 1_000  # REFs the server walks from in one request (routes_reads.DOWNSTREAM_OF_MAX)
_AUDIT = TypeAdapter(list[AuditRecord])
_POLICIES = TypeAdapter(list[RetentionPolicy])
_ENTRIES = TypeAdapter(list[ManifestEntry])

# A request body up to this size is sent as it is, without asking the server's limits (unless
# known already): the common case costs no extra request.
SEND_WHOLE = 256 << 10
# Past it, versions with at least this many entries send them as a staged manifest.
STAGE_ENTRIES = 100


def client_token() -> str | None:
    """HEADWATER_TOKEN, else the token in HEADWATER_TOKEN_FILE (its first `[scope] TOKEN` line)."""
    token: str | None = config.get("HEADWATER_TOKEN")
    if token:
        return token
    path = config.get("HEADWATER_TOKEN_FILE")
    if not path:
        return None
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise InvalidInput(f"cannot read HEADWATER_TOKEN_FILE {path!r}: {err.strerror or err}") from None
    for line in lines:
        words = line.split("#", 1)[0].split()
        if words:
            return words[-1]
    raise InvalidInput(f"HEADWATER_TOKEN_FILE {path!r} holds no token")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class _Connection:
    """One httpx client for a server: the token, the time budget, errors as headwater errors."""

    def __init__(self, uri: str, token: str | None = None, timeout: float | None = None) -> None:
        try:
            import httpx
        except ImportError:
            raise InvalidInput(f'HEADWATER_URI={uri} needs the "http" extra: pip install "headwater[http]"') from None
        self._httpx = httpx
        self.uri = uri
        self.base = uri.rstrip("/")
        self.shown = config.mask_uri(self.base)  # what messages and logs name: no password
        self.timeout = timeout if timeout is not None else config.timeout_s()
        self._headers = {"User-Agent": "headwater"}
        token = token if token is not None else client_token()
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._http: Any = None
        self._pid = 0

    @property
    def http(self) -> Any:
        # Sockets do not survive fork (Airflow forks task processes): one client per pid.
        if self._http is None or self._pid != os.getpid():
            self._http = self._httpx.Client(
                base_url=self.base,
                headers=self._headers,
                timeout=self._httpx.Timeout(self.timeout),
                follow_redirects=False,
            )
            self._pid = os.getpid()
        return self._http

    def close(self) -> None:
        if self._http is not None and self._pid == os.getpid():
            self._http.close()
        self._http = None

    def send(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response, whatever its status; Unavailable when the server cannot be reached."""
        httpx = self._httpx
        # A server that just let a request time out: a log_artifact waits one budget, not one
        # per request it makes.
        backoff.check(self.base)
        try:
            return self.http.request(method, API + path, **kwargs)
        except httpx.TimeoutException:
            raise self.silent() from None
        except httpx.TransportError as err:
            raise Unavailable(f"cannot reach {self.shown}: {_one_line(err) or type(err).__name__}") from None

    def silent(self) -> Unavailable:
        """The server let a request time out: it is skipped for a back-off (headwater.store.backoff)."""
        reason = f"{self.shown} did not answer within {self.timeout:g}s"
        backoff.mark_down(self.base, reason, self.timeout)
        return Unavailable(reason)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response of a request that succeeded; its error as a headwater error otherwise."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise self.error(response, f"{method} {path}")
        return response

    def error(self, response: Any, what: str) -> HeadwaterError:
        status = response.status_code
        try:
            body = json.loads(response.read()) if response.request.method != "HEAD" else {}
        except ValueError:
            body = {}
        name = body.get("error") if isinstance(body, dict) else None
        message = _one_line(body.get("message", "")) if isinstance(body, dict) else ""
        if status in (401, 403):
            # A HEAD answer (a blob check) has no body to give the server's reason.
            message = message or ("no token, or one it does not know" if status == 401 else "the token may not do this")
            return Unauthorized(f"{self.shown} refused the request ({status}): {message}")
        message = message or f"{self.shown} answered {status} to {what}"
        if name in WIRE and name != "HeadwaterError":
            return WIRE[name](message)
        if status == 404:
            # A 404 that is not a headwater NotFound: wrong URL, or not a headwater server.
            return Unavailable(f"{self.shown} is not a headwater server (404 on {what})")
        if status == 413:
            return InvalidInput(message)
        if status >= 500 or status == 429:
            return Unavailable(f"{self.shown} failed ({status}): {message}")
        if status == 409:
            return Conflict(message)
        return InvalidInput(message)


def _ref_params(ref: Ref, prefix: str = "") -> dict[str, str]:
    params = {f"{prefix}name": ref.name}
    if ref.label is not None:
        params[f"{prefix}label"] = ref.label
    elif ref.digest is not None:
        params[f"{prefix}digest"] = ref.digest
    elif ref.alias is not None:
        params[f"{prefix}alias"] = ref.alias
    return params


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class HTTPStore(Store):
    """The Store protocol over the tracking server's REST API."""

    def __init__(self, uri: str, *, token: str | None = None, home: Path | None = None) -> None:
        self.uri = uri
        self._conn = _Connection(uri, token)
        self._home = home
        self._spool: HTTPBlobStore | None = None
        self._limits: dict[str, int] | None = None

    def close(self) -> None:
        self._conn.close()

    def _get(self, endpoint: str, **params: Any) -> bytes:
        content: bytes = self._conn.request("GET", endpoint, params=params).content
        return content

    # -- writes ------------------------------------------------------------------------------

    def apply(self, events: Sequence[Event], *, before_commit: Callable[[], None] | None = None) -> list[str]:
        if not events:
            if before_commit is not None:
                before_commit()
            return []
        try:
            body = EVENTS.dump_json(list(events))
        except ValueError as err:  # an event made without validation holding what JSON cannot
            raise InvalidInput(f"the batch cannot be sent as JSON: {_one_line(err)}") from None
        self._upload_spooled_blobs(events)
        if len(body) > (SEND_WHOLE if self._limits is None else min(SEND_WHOLE, self._limits["max_body"] // 2)):
            body = self._fit(events, body)
        if before_commit is not None:
            before_commit()
        response = self._conn.request("POST", "/events", content=body, headers={"Content-Type": "application/json"})
        try:
            notices = response.json().get("notices", [])
        except (ValueError, AttributeError):
            notices = []  # a server before notices answered {"received": n} only
        return _STRINGS.validate_python(notices)

    def limits(self) -> dict[str, int]:
        """The server's `max_body` and `max_manifest` (bytes), asked once."""
        if self._limits is None:
            self._limits = json.loads(self._get("/limits"))
        return self._limits

    def _fit(self, events: Sequence[Event], body: bytes) -> bytes:
        """The batch's body, its large manifests staged when it is over half the body limit
        (the server parses a smaller body faster, and stays well inside its limit)."""
        if len(body) <= self.limits()["max_body"] // 2:
            return body
        sent = [self._stage(ev) if _stageable(ev) else ev for ev in events]
        return EVENTS.dump_json(sent)

    def _stage(self, event: VersionRecorded) -> VersionRecorded:
        from headwater.digest import hash_bytes

        packed = gzip.compress(_ENTRIES.dump_json(event.entries), compresslevel=1, mtime=0)
        digest = hash_bytes(packed)
        # Sent again on a retry: the server keeps one copy, and an event replayed finds it.
        self._conn.request(
            "PUT", f"/manifests/{digest}", content=packed, headers={"Content-Type": "application/octet-stream"}
        )
        return event.model_copy(update={"entries": [], "manifest": digest})

    def check_sendable(self, events: Sequence[Event]) -> None:
        # Asked before blobs are uploaded (a request each): one more, once, costs nothing.
        try:
            limits = self.limits()
        except Unavailable:
            return  # the server is away: the blobs wait in the spool, the batch in the outbox
        total = 0
        for ev in events:
            size = len(EVENTS.dump_json([ev]))
            if _stageable(ev):
                assert isinstance(ev, VersionRecorded)
                entries = len(_ENTRIES.dump_json(ev.entries))
                if entries > limits["max_manifest"]:
                    raise InvalidInput(
                        f"{ev.name}@{ev.digest}: its {len(ev.entries)} entries take {entries} bytes, over "
                        f"{self.uri}'s limit of {limits['max_manifest']} for a manifest; nothing was stored"
                    )
                size -= entries
            if size > limits["max_body"]:
                raise InvalidInput(
                    f"{_what(ev)} takes {size} bytes without its entries, over {self.uri}'s limit of "
                    f"{limits['max_body']} for a request; nothing was stored"
                )
            total += size
        if total > limits["max_body"]:
            raise InvalidInput(
                f"these {len(events)} events take {total} bytes, over {self.uri}'s limit of "
                f"{limits['max_body']} for a request; nothing was stored"
            )

    def _upload_spooled_blobs(self, events: Sequence[Event]) -> None:
        """Blobs kept locally while the server was away go up before the versions that hold them."""
        digests = {e.digest for ev in events if isinstance(ev, VersionRecorded) for e in ev.entries if e.ref is None}
        if not digests:
            return
        self.blobs.upload_spooled(digests)

    @property
    def blobs(self) -> HTTPBlobStore:
        """The server's blob store, over this store's connection (and token)."""
        if self._spool is None:
            self._spool = HTTPBlobStore(self.uri, home=self._home, connection=self._conn)
        return self._spool

    # -- reads -------------------------------------------------------------------------------

    def artifact_exists(self, name: str) -> bool:
        if not name:
            return False
        try:
            self._get("/artifact", name=name)
        except NotFound:
            return False
        return True

    def get_artifact(self, name: str) -> Artifact:
        return Artifact.model_validate_json(self._get("/artifact", name=name))

    def get_version(self, ref: Ref, at: datetime | None = None) -> Version:
        params = _ref_params(ref)
        if at is not None:
            params["at"] = at.isoformat()
        return Version.model_validate_json(self._get("/version", **params))

    def list_artifacts(
        self,
        type: str | None = None,
        limit: int | None = None,
        name_like: str | None = None,
        *,
        tag: str | None = None,
        order: ArtifactOrder = "name",
        offset: int = 0,
    ) -> list[Artifact]:
        params = _params(type=type, limit=limit, name_like=name_like, tag=tag, offset=offset or None)
        if order != "name":
            params["order"] = order
        return _ARTIFACTS.validate_json(self._get("/artifacts", **params))

    def list_versions(
        self,
        name: str,
        limit: int | None = None,
        tags: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> list[Version]:
        params = _params(name=name, limit=limit, metadata=json.dumps(metadata) if metadata else None)
        if tags:
            params["tag"] = list(tags)
        if include_deleted:
            params["include_deleted"] = "true"
        return _VERSIONS.validate_json(self._get("/versions", **params))

    def get_run(self, run_id: str) -> Run:
        return Run.model_validate_json(self._get("/run", id=run_id))

    def list_runs(
        self,
        job: str | None = None,
        orchestrator: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        params = _params(job=job, orchestrator=orchestrator, status=status, parent_id=parent_id, limit=limit)
        return _RUNS.validate_json(self._get("/runs", **params))

    def lineage(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> LineageGraph:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        params = {**_ref_params(ref), **_params(direction=direction, depth=depth)}
        return LineageGraph.model_validate_json(self._get("/lineage", **params))

    def reachable(self, ref: Ref, direction: LineageDirection, depth: int | None = None) -> Reachable:
        if depth is not None and depth < 0:
            raise InvalidInput("depth must be 0 or more")
        params = {**_ref_params(ref), **_params(direction=direction, depth=depth)}
        return Reachable.model_validate_json(self._get("/lineage/reachable", **params))

    def downstream_of(self, refs: Sequence[Ref]) -> LineageGraph:
        """One request per thousand REFs (the server's limit), their graphs merged."""
        from headwater.api import merge_graphs

        bodies = list(dict.fromkeys(json.dumps(_ref_params(ref), sort_keys=True) for ref in refs))
        if not bodies:
            return LineageGraph()
        graphs = [
            LineageGraph.model_validate_json(
                self._conn.request(
                    "POST",
                    "/lineage/downstream-of",
                    content=f"[{','.join(bodies[start : start + _DOWNSTREAM_OF_MAX])}]",
                    headers={"Content-Type": "application/json"},
                ).content
            )
            for start in range(0, len(bodies), _DOWNSTREAM_OF_MAX)
        ]
        return graphs[0] if len(graphs) == 1 else merge_graphs(graphs)

    def lineage_path(self, source: Ref, target: Ref) -> LineageGraph:
        params = {**_ref_params(source, "source_"), **_ref_params(target, "target_")}
        return LineageGraph.model_validate_json(self._get("/path", **params))

    def runs_using(self, name: str, limit: int | None = None, offset: int = 0) -> list[Run]:
        if offset < 0 or (limit is not None and limit < 0):
            raise InvalidInput("limit and offset must be 0 or more")
        return _RUNS.validate_json(self._get("/runs-using", **_params(name=name, limit=limit, offset=offset or None)))

    def versions_holding(self, digest: str | None = None, path: str | None = None) -> list[Version]:
        if (digest is None) == (path is None):
            raise InvalidInput("give exactly one of digest or path")
        return _VERSIONS.validate_json(self._get("/holding", **_params(digest=digest, path=path)))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        return _MOVES.validate_json(self._get("/alias-history", **_params(name=name, alias=alias)))

    def referenced_blob_digests(self) -> set[str]:
        return set(_STRINGS.validate_json(self._get("/blobs/referenced")))

    # -- purges and the audit log (headwater.purge) --------------------------------------------

    def purge(self, event: ContentPurged) -> tuple[AuditRecord, list[str]]:
        """The server records the purge and removes its own blobs of it (a read-write token)."""
        body = EVENTS.dump_json([event])[1:-1]
        answer = self._conn.request("POST", "/purges", content=body, headers={"Content-Type": "application/json"})
        found = answer.json()
        return AuditRecord.model_validate(found["record"]), _STRINGS.validate_python(found["removed"])

    def purged_digests(self, digests: Collection[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(digests)
        for start in range(0, len(ordered), 200):  # a URL of 200 digests stays well under 16 KiB
            found.update(_STRINGS.validate_json(self._get("/purged", digest=ordered[start : start + 200])))
        return found

    def audit(self, limit: int | None = None, action: str | None = None) -> list[AuditRecord]:
        return _AUDIT.validate_json(self._get("/audit", **_params(limit=limit, action=action)))

    def retention_policies(self) -> list[RetentionPolicy]:
        return _POLICIES.validate_json(self._get("/retention"))


def _stageable(event: Event) -> TypeGuard[VersionRecorded]:
    return isinstance(event, VersionRecorded) and len(event.entries) >= STAGE_ENTRIES


def _what(event: Event) -> str:
    if isinstance(event, VersionRecorded):
        return f"version {event.name}@{event.digest}"
    return f"{event.kind} event {event.id}"


class HTTPBlobStore:
    """Blobs on the tracking server, with a local spool for the time it cannot be reached.

    A headwater.blobs.Blobs, as BlobStore is, so the Client uses either unchanged.
    """

    def __init__(self, uri: str, *, home: Path | None = None, connection: _Connection | None = None) -> None:
        from headwater.blobs import BlobStore
        from headwater.outbox import Outbox

        self.url = uri.rstrip("/") + API + "/blobs"
        self._conn = connection or _Connection(uri)
        self._own_connection = connection is None
        self._direct = True  # ask for presigned URLs until the server says it hands none out
        self._bare: Any = None
        self._bare_pid = 0
        home = Path(home) if home is not None else config.headwater_home()
        # Inside this backend's outbox folder: blobs waiting for the server, like its batches.
        self.spool = BlobStore(Outbox.folder_for(home, uri) / "blobs")

    def __repr__(self) -> str:
        return f"HTTPBlobStore({config.mask_uri(self.url)!r})"

    def close(self) -> None:
        if self._own_connection:
            self._conn.close()
        if self._bare is not None and self._bare_pid == os.getpid():
            self._bare.close()
        self._bare = None

    def _remote_has(self, digest: str) -> bool:
        response = self._conn.send("HEAD", f"/blobs/{digest}")
        if response.status_code == 404:
            return False  # a HEAD answer has no body to say more
        if response.status_code >= 400:
            raise self._conn.error(response, f"HEAD /blobs/{digest}")
        return True

    def has(self, digest: str) -> bool:
        _hex_check(digest)
        return self.spool.has(digest) or self._remote_has(digest)

    def put_file(self, path: str | os.PathLike[str], digest: str | None = None) -> str:
        """Upload a file under its digest (a no-op when the server has it); returns the digest.

        When the server cannot be reached the file is kept in the spool instead, and uploaded
        before the batch recording its version is delivered. A file that changes while it is
        stored raises Conflict, as with a local blob store.
        """
        from headwater.digest import hash_file

        if digest is None:
            digest, _ = hash_file(path)
        _hex_check(digest)
        try:
            self._send(digest, lambda: _open(path), _size_of(path))
        except Unavailable as err:
            log.debug("headwater: blob %s kept locally until %s answers: %s", digest, self._conn.shown, err)
            self.spool.put_file(path, digest)
        return digest

    def _send(self, digest: str, opener: Callable[[], BinaryIO], size: int | None) -> None:
        """Upload a blob the server may lack: straight to its object store by a presigned URL
        when it hands one out, through the server otherwise or when that fails."""
        offer = self._offer(digest, size) if size is not None else None
        if offer == "stored":
            return
        if offer is None and self._remote_has(digest):
            return  # not asked: a HEAD says whether it is stored
        with opener() as source:
            if isinstance(offer, dict) and self._put_direct(offer, source, digest):
                return
            source.seek(0)
            self._upload(source, digest)

    def _offer(self, digest: str, size: int) -> dict[str, Any] | str | None:
        """ "stored", a presigned upload for `digest` ({url, upload}), "missing" (upload it through
        the server), or None when the server was not asked (it hands out no URLs: presigning off,
        another blob store, a server from before them)."""
        if not self._direct:
            return None
        body = json.dumps({"blobs": [{"digest": digest, "size": size}]})
        response = self._conn.send("POST", "/blobs/uploads", content=body, headers={"Content-Type": "application/json"})
        if response.status_code in (404, 405):  # a server from before presigned uploads
            self._direct = False
            return None
        if response.status_code >= 400:
            raise self._conn.error(response, "POST /blobs/uploads")
        answer = response.json()
        if digest in answer.get("stored", ()):
            return "stored"
        if not answer.get("direct"):
            self._direct = False  # this server's blobs pass through it: ask no more
        for upload in answer.get("uploads", ()):
            if upload.get("digest") == digest:
                return cast(dict[str, Any], upload)
        return "missing"

    def _put_direct(self, offer: dict[str, Any], source: BinaryIO, digest: str) -> bool:
        """PUT the bytes to the presigned URL, then have the server verify and publish them;
        False when any of it failed short of a verdict (the caller uploads through the server).
        Conflict when the server found bytes other than `digest`'s (the file changed)."""
        httpx = self._conn._httpx
        size = os.fstat(source.fileno()).st_size

        def chunks() -> Iterator[bytes]:
            while block := source.read(_CHUNK):
                yield block

        try:
            # A client of its own: the server's token must never reach the object store.
            answer = self._bare_http().put(offer["url"], content=chunks(), headers={"Content-Length": str(size)})
        except httpx.HTTPError as err:
            log.info(
                "headwater: the blob store at %s cannot be reached (%s): blobs go through %s",
                httpx.URL(offer["url"]).host,
                _one_line(err) or type(err).__name__,
                self._conn.shown,
            )
            self._direct = False  # likely unreachable from here (a private endpoint): do not wait on it again
            return False
        if answer.status_code >= 300:
            log.info(
                "headwater: the blob store refused an upload (%s): it goes through %s",
                answer.status_code,
                self._conn.shown,
            )
            return False
        try:
            self._conn.request(
                "POST",
                f"/blobs/{digest}/uploaded",
                content=json.dumps({"upload": offer["upload"]}),
                headers={"Content-Type": "application/json"},
                timeout=self._verify_timeout(size),
            )
        except NotFound:
            return False  # the server lost the upload, or takes none: send the bytes through it
        return True

    def _verify_timeout(self, size: int) -> Any:
        # The server answers once it has read and hashed the whole blob from the bucket.
        httpx = self._conn._httpx
        return httpx.Timeout(self._conn.timeout, read=max(self._conn.timeout, size / _VERIFY_RATE))

    def _bare_http(self) -> Any:
        """An httpx client with no token and no headwater base URL, for presigned URLs."""
        if self._bare is None or self._bare_pid != os.getpid():
            httpx = self._conn._httpx
            self._bare = httpx.Client(timeout=httpx.Timeout(self._conn.timeout), follow_redirects=False)
            self._bare_pid = os.getpid()
        return self._bare

    def _upload(self, source: BinaryIO, digest: str) -> None:
        def chunks() -> Iterator[bytes]:
            while block := source.read(_CHUNK):
                yield block

        size = os.fstat(source.fileno()).st_size
        self._conn.request(
            "PUT",
            f"/blobs/{digest}",
            content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )

    def upload_spooled(self, digests: set[str]) -> None:
        """Upload those of `digests` that wait in the spool; raises Unavailable if the server is away."""
        for digest in sorted(digests):
            if not self.spool.has(digest):
                continue
            path = self.spool.local_path(digest)
            self._send(digest, functools.partial(self.spool.open, digest), _size_of(path) if path else None)
            self.spool.delete(digest)

    def open(self, digest: str) -> BinaryIO:
        """The stored bytes as a stream (unverified: get_file verifies)."""
        if self.spool.has(digest):
            return self.spool.open(digest)
        response = self._stream(digest)
        return cast(BinaryIO, _ResponseReader(response))  # duck-typed: what callers use of a file

    def _stream(self, digest: str) -> Any:
        """The blob's bytes as a streamed response: from the object store by a presigned URL when
        the server hands one out (a 307), through the server otherwise or when that fails."""
        _hex_check(digest)
        if self._direct:
            response = self._get(f"{API}/blobs/{digest}", params={"redirect": "true"})
            location = response.headers.get("location") if response.status_code == 307 else None
            if location is None:
                return self._checked(response, digest)
            response.close()
            direct = self._direct_get(location)
            if direct is not None:
                return direct
        return self._checked(self._get(f"{API}/blobs/{digest}"), digest)

    def _get(self, path: str, **kwargs: Any) -> Any:
        httpx = self._conn._httpx
        request = self._conn.http.build_request("GET", path, **kwargs)
        try:
            return self._conn.http.send(request, stream=True)
        except httpx.TimeoutException:
            raise self._conn.silent() from None
        except httpx.TransportError as err:
            raise Unavailable(f"cannot reach {self._conn.shown}: {_one_line(err)}") from None

    def _checked(self, response: Any, digest: str) -> Any:
        if response.status_code >= 400:
            try:
                response.read()
                raise self._conn.error(response, f"GET /blobs/{digest}")
            finally:
                response.close()
        return response

    def _direct_get(self, url: str) -> Any:
        """The streamed response of a presigned GET; None when the object store failed it."""
        httpx = self._conn._httpx
        try:
            response = self._bare_http().send(self._bare_http().build_request("GET", url), stream=True)
        except httpx.HTTPError as err:
            log.info(
                "headwater: the blob store cannot be reached (%s): blobs come through %s",
                _one_line(err),
                self._conn.shown,
            )
            self._direct = False
            return None
        if response.status_code >= 300:
            response.close()
            log.info(
                "headwater: the blob store refused a download (%s): it comes through %s",
                response.status_code,
                self._conn.shown,
            )
            return None
        return response

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Download a blob to `dest`, verifying every byte; nothing is left at `dest` on failure."""
        from headwater.blobs import restore_verified

        if self.spool.has(digest):
            return self.spool.get_file(digest, dest)
        return restore_verified(self.open(digest), digest, dest, self._conn.base)

    def delete(self, digest: str) -> None:
        _hex_check(digest)
        self.spool.delete(digest)
        self._conn.request("DELETE", f"/blobs/{digest}")

    def touch(self, digest: str) -> None:
        """The server keeps its blobs' times: an upload of a blob it has is not repeated."""

    def prune(self, digest: str, grace: float, *, dry_run: bool = False) -> bool:
        """Ask the server to remove an unreferenced blob; it refuses (Conflict) one stored within
        its own grace period or one a version references by now, and the blob is kept. A dry run
        cannot ask: it counts every candidate."""
        _hex_check(digest)
        if dry_run:
            return True
        try:
            self._conn.request("DELETE", f"/blobs/{digest}")
        except Conflict as err:
            log.info("headwater: %s keeps blob %s: %s", self._conn.base, digest, err)
            return False
        return True

    def sweep_tmp(self, grace: float, *, dry_run: bool = False) -> list[str]:
        """The spool's leftovers; the server sweeps its own when it starts."""
        return self.spool.sweep_tmp(grace, dry_run=dry_run)

    def iter_digests(self) -> Iterator[str]:
        yield from _STRINGS.validate_json(self._conn.request("GET", "/blobs").content)

    def local_path(self, digest: str) -> str | None:
        """None: the blobs are on the server (the spool only holds them while it is away)."""
        return None


class _ResponseReader:
    """A streamed httpx response as a binary file object (read, readinto, context manager)."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._chunks = response.iter_bytes(_CHUNK)
        self._buffer = b""
        size = response.headers.get("content-length", "")
        self.size = int(size) if size.isdigit() else None

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> _ResponseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size_of(path: str | os.PathLike[str]) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # _open says why, if the bytes are needed


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InvalidInput(f"no such file: {os.fspath(path)!r}") from None
    except OSError as err:
        raise InvalidInput(f"cannot read {os.fspath(path)!r}: {err.strerror}") from None


def _hex_check(digest: str) -> None:
    from headwater.digest import is_content_digest

    if not is_content_digest(digest):
        raise InvalidInput(f"not a content digest: {digest!r}; expected blake3:<64 hex>")
