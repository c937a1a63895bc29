"""Digests of files, directories and references; canonical manifests; the stat cache.

A content digest is ``blake3:<hex>`` of a file's bytes. A version digest is the blake3 of the
canonical manifest: entries sorted by path in code-point order, ``\\n``-joined
``path\\0digest\\0size`` (``ref`` is not part of it). A reference that cannot be read cheaply
carries the checksum its storage reports instead (``etag:``, ``s3v:``, ``gsgen:``, ``mtime:``),
with a prefix that can never be mistaken for content.

One module per concern: `hashing` (digests of bytes and files, the digest forms, the manifest
digest), `paths` (entry paths), `stat_cache` (the stat cache and its ``restored:`` records),
`scan` (folder scans and local manifests) and `references` (checksums of pointers and their
drift). Import from ``headwater.digest``: every public name is here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from headwater.digest.hashing import (
        ALGO,
        CHUNK,
        LARGE_FILE,
        check_version_digest,
        files_hashed,
        hash_bytes,
        hash_stream,
        is_content_digest,
        manifest_digest,
        new_hasher,
    )
    from headwater.digest.paths import check_entry_paths, validate_entry_path
    from headwater.digest.references import ReferenceStatus, open_pinned, reference_manifest, reference_status
    from headwater.digest.scan import LinksOut, build_manifest, hash_file, local_files
    from headwater.digest.stat_cache import (
        RACY_NS,
        StatCache,
        StatCacheArg,
        StatKey,
        remember_restored,
        restored_unchanged,
    )

# Each name loads its module on first use (PEP 562): checking a digest's form (every event does)
# needs none of the reference readers (http.client, urllib) or the stat cache (sqlite3).
_LAZY = {
    "ALGO": "hashing",
    "CHUNK": "hashing",
    "LARGE_FILE": "hashing",
    "LinksOut": "scan",
    "RACY_NS": "stat_cache",
    "ReferenceStatus": "references",
    "StatCache": "stat_cache",
    "StatCacheArg": "stat_cache",
    "StatKey": "stat_cache",
    "build_manifest": "scan",
    "check_entry_paths": "paths",
    "check_version_digest": "hashing",
    "files_hashed": "hashing",
    "hash_bytes": "hashing",
    "hash_file": "scan",
    "hash_stream": "hashing",
    "is_content_digest": "hashing",
    "local_files": "scan",
    "manifest_digest": "hashing",
    "new_hasher": "hashing",
    "open_pinned": "references",
    "reference_manifest": "references",
    "reference_status": "references",
    "remember_restored": "stat_cache",
    "restored_unchanged": "stat_cache",
    "validate_entry_path": "paths",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "ALGO",
    "CHUNK",
    "LARGE_FILE",
    "RACY_NS",
    "LinksOut",
    "ReferenceStatus",
    "StatCache",
    "StatCacheArg",
    "StatKey",
    "build_manifest",
    "check_entry_paths",
    "check_version_digest",
    "files_hashed",
    "hash_bytes",
    "hash_file",
    "hash_stream",
    "is_content_digest",
    "local_files",
    "manifest_digest",
    "open_pinned",
    "new_hasher",
    "reference_manifest",
    "reference_status",
    "remember_restored",
    "restored_unchanged",
    "validate_entry_path",
]
