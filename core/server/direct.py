"""Blob bytes straight between clients and an S3 blob store, by presigned URLs (HEADWATER_BLOB_PRESIGN).

Uploads: a client asks for a URL for each blob the store lacks and PUTs the bytes to a staging
object of its own (`<root>/uploads/<hex>/<nonce>`), never through the server. Then it says so,
and the server reads that object from the bucket, hashes every byte (blake3) and publishes it
under its digest by a copy inside the bucket, bound to the bytes it hashed (the object's ETag);
or it deletes the object and answers 409. Until then an upload is no blob: nothing lists, serves
or counts it. What reaches the server is that one read of the object from the bucket.

Downloads: a presigned GET of the published blob; the client verifies every byte, as it does
through the server.

Only s3:// signs here (SigV4). Any other store, presigning turned off, or a store that cannot
sign leaves the through-the-server routes, which always work.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from typing import Any

from headwater.blobs import BlobStore
from headwater.digest import new_hasher
from headwater.errors import Conflict, InvalidInput, NotFound, Unavailable

log = logging.getLogger("headwater.server")

# S3 takes one PUT of up to 5 GiB; a larger blob goes through the server, which uploads in parts.
MAX_SINGLE_PUT = 5 << 30
UPLOADS = "uploads"
_READ = 8 << 20
_NONCE = re.compile(r"[0-9a-f]{32}")
_S3 = frozenset({"s3", "s3a"})


class DirectTransfers:
    """Presigned URLs for one S3 blob store, and the verification of what clients upload by them."""

    def __init__(self, store: BlobStore, fs: Any, root: str, expiry: float) -> None:
        self.store = store
        self.expiry = max(1, int(expiry))
        self._fs = fs
        self._root = root
        self._signer = _sigv4(fs)

    @classmethod
    def of(cls, store: BlobStore, *, enabled: bool, expiry: float) -> DirectTransfers | None:
        """Direct transfers for `store`, or None when its bytes must pass through the server."""
        located = store.object_store
        if not enabled or located is None:
            return None
        fs, root = located
        protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
        if not _S3.intersection(protocols):
            return None  # gs:// signs only with a service account's key: through the server
        try:
            return cls(store, fs, root, expiry)
        except Exception as err:  # noqa: BLE001 - a store that cannot sign still serves through the server
            log.warning("headwater: blob URLs cannot be presigned (%s): blobs pass through the server", err)
            return None

    def _staged(self, digest: str, upload: str) -> str:
        if not _NONCE.fullmatch(upload):
            raise InvalidInput(f"not an upload id: {upload[:80]!r}")
        return f"{self._root}/{UPLOADS}/{digest.partition(':')[2]}/{upload}"

    def upload_url(self, digest: str, size: int) -> dict[str, Any] | None:
        """A presigned PUT of a new staging object for `digest`, its length signed; None when the
        blob must go through the server (larger than one PUT takes, or the store would not sign)."""
        if size > MAX_SINGLE_PUT:
            return None
        upload = uuid.uuid4().hex
        try:
            url = self._signer.url(
                self._staged(digest, upload), expires=self.expiry, client_method="put_object", ContentLength=size
            )
        except Exception as err:  # noqa: BLE001 - the client uploads through the server instead
            log.warning("headwater: no presigned upload URL for %s: %s", digest, err)
            return None
        return {"digest": digest, "url": str(url), "upload": upload, "expires_in": self.expiry}

    def download_url(self, digest: str) -> str | None:
        """A presigned GET of a stored blob; None when the store would not sign one."""
        try:
            return str(self._signer.url(self.store.object_path(digest), expires=self.expiry))
        except Exception as err:  # noqa: BLE001 - the bytes are served through the server instead
            log.warning("headwater: no presigned download URL for %s: %s", digest, err)
            return None

    def publish(self, digest: str, upload: str) -> int:
        """Hash the staging object of `upload` and publish it under `digest`; its size.

        Conflict (nothing stored) when its bytes are not `digest`'s; NotFound when there is no
        such upload (never made, or published or removed already); Unavailable when the store fails.
        The staging object is removed in every case."""
        staged = self._staged(digest, upload)
        try:
            try:
                source = self._fs.open(staged, "rb", block_size=_READ)
            except FileNotFoundError:
                raise NotFound(f"no upload {upload} of blob {digest} in the blob store: upload it again") from None
            with source:
                # s3fs reads every range of this object `IfMatch` its ETag, and the copy below is
                # made on the same condition: what is published is exactly what was hashed.
                etag = source.details.get("ETag")
                hasher = new_hasher(source.size or 0)
                size = 0
                while block := source.read(_READ):
                    hasher.update(block)
                    size += len(block)
            got = "blake3:" + hasher.hexdigest()
            if got != digest:
                raise Conflict(f"the {size} bytes uploaded hash to {got}, not {digest}: nothing was stored")
            if not self.store.has(digest):
                condition = {"CopySourceIfMatch": etag} if etag else {}
                self._fs.copy(staged, self.store.object_path(digest), **condition)
        except OSError as err:
            if isinstance(err, FileNotFoundError):
                raise NotFound(
                    f"upload {upload} of blob {digest} vanished while it was verified: upload it again"
                ) from None
            raise Unavailable(f"the blob store failed while upload {upload} was verified: {err}") from None
        finally:
            with contextlib.suppress(OSError):
                self._fs.rm_file(staged)
        return size

    def sweep(self, grace: float) -> int:
        """Remove staging objects older than `grace` seconds (a client that never said it had
        uploaded); how many."""
        try:
            found = self._fs.find(f"{self._root}/{UPLOADS}", detail=True)
        except FileNotFoundError:
            return 0
        now = time.time()
        removed = 0
        for path, info in found.items():
            written = info.get("LastModified")
            if written is None or now - written.timestamp() < grace:
                continue
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(path)
                removed += 1
        return removed


def _sigv4(fs: Any) -> Any:
    """A file system like `fs` whose presigned URLs are SigV4: botocore presigns S3 with the
    deprecated SigV2 unless told otherwise."""
    options = dict(fs.storage_options)
    options["config_kwargs"] = {**(options.get("config_kwargs") or {}), "signature_version": "s3v4"}
    return type(fs)(**options)
