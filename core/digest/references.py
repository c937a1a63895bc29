"""References: the checksums storages report for objects kept as pointers, and re-checking them.

A reference that cannot be read cheaply carries the checksum its storage reports instead of a
content digest, with a prefix that can never be mistaken for content. The first the storage
reports wins, in this order:

- ``s3v:<version id>``: an S3 object's version id (a versioned bucket; S3's ``null`` is none);
- ``gsgen:<generation>``: a Google Cloud Storage object's generation, new at every write;
- ``etag:<etag>``: an HTTP or S3 ETag, quotes stripped (``W/`` kept for weak ones);
- ``mtime:<size>:<ISO time>``: size and modification time in UTC (``unknown`` when not told).

An object store's listing may report less than a lookup of one object: an S3 listing carries no
version id, so an object of a versioned bucket logged as part of a prefix gets ``etag:``, and
alone ``s3v:``. `reference_status` therefore compares a recorded checksum only with the
storage's current checksum *of the same kind*, never with whatever a new lookup would record.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import os
import posixpath
import re
import stat as stat_mod
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from headwater.config import hash_threads, timeout_s
from headwater.digest.hashing import hash_stream, is_content_digest
from headwater.digest.paths import validate_entry_path
from headwater.digest.scan import _digest_files, _manifest, _scan, hash_file
from headwater.digest.stat_cache import StatCacheArg, _resolve_cache
from headwater.errors import HeadwaterError, InvalidInput, Unavailable
from headwater.models import ManifestEntry

log = logging.getLogger(__name__)

_REFERENCE_SCHEMES = 'file://, http(s)://, s3:// (pip install "headwater[s3]"), gs:// (pip install "headwater[gcs]")'
_EXTRAS = {"s3": "s3", "gs": "gcs"}


def reference_manifest(uri: str, *, stat_cache: StatCacheArg = None) -> list[ManifestEntry]:
    """The manifest of a location, kept as pointers: each entry's ref is the URI of one object.

    ``file://`` content is hashed (bytes are readable); ``http(s)://`` and fsspec locations
    (s3, gs, memory, ...) carry the checksum their storage reports.
    """
    from headwater.refs import file_uri_to_path, is_uri, normalize_uri

    if not isinstance(uri, str) or not is_uri(uri):
        raise InvalidInput(f"not a URI: {uri!r}; references need SCHEME://..., e.g. {_REFERENCE_SCHEMES}")
    canonical = normalize_uri(uri)
    scheme = canonical.partition("://")[0]
    if scheme == "file":
        path = file_uri_to_path(canonical)
        files, _ = _scan(path)
        hashed = _digest_files(files, _resolve_cache(stat_cache), hash_threads(), None)
        uris = _file_uris([f.abspath for f in files])
        return _manifest(files, hashed, lambda f: uris[f.abspath])
    if scheme in ("http", "https"):
        return [_http_entry(canonical)]
    return _fsspec_manifest(canonical, scheme)


# A file name that path_to_file_uri leaves as it is (no escapes, nothing to normalise).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._+=,@~-]+")


def _file_uris(paths: Iterable[str]) -> dict[str, str]:
    """path_to_file_uri of each absolute path; its folder's URI is worked out once, so a folder
    of thousands of plainly named files costs one normalisation, not thousands."""
    from headwater.refs import path_to_file_uri

    folders: dict[str, str] = {}
    uris: dict[str, str] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        if os.name == "nt" or not folder or name in (".", "..") or not _PLAIN_NAME.fullmatch(name):
            uris[path] = path_to_file_uri(path)
            continue
        base = folders.get(folder)
        if base is None:
            base = folders[folder] = path_to_file_uri(folder)
            if not base.endswith("/"):
                base = folders[folder] = base + "/"
        uris[path] = base + name
    return uris


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _iso(value: object) -> str | None:
    """A timestamp reported by some storage as an ISO-8601 UTC string."""
    when: datetime | None = None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = datetime.fromtimestamp(value, tz=timezone.utc)
    elif isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return value
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _etag(value: str) -> str:
    value = value.strip()
    weak = value.startswith("W/")
    value = value[2:] if weak else value
    return ("W/" if weak else "") + value.strip('"')


_MTIME_KEYS = (
    "mtime",
    "lastmodified",
    "last_modified",
    "updated",
    "modified",
    "created",
    "timecreated",
)


def _lower(info: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in info.items()}


def _version_checksum(low: Mapping[str, Any]) -> str | None:
    version = low.get("versionid") or low.get("version_id")
    if version and version != "null":  # S3 reports "null" for objects from before versioning
        return f"s3v:{version}"
    return None


def _generation_checksum(low: Mapping[str, Any]) -> str | None:
    generation = low.get("generation")  # Google Cloud Storage, as gcsfs reports it
    if generation not in (None, ""):
        return f"gsgen:{generation}"
    return None


def _etag_checksum(low: Mapping[str, Any]) -> str | None:
    etag = low.get("etag")
    if isinstance(etag, str) and etag.strip('" '):
        return f"etag:{_etag(etag)}"
    return None


def _mtime_checksum(low: Mapping[str, Any], size: int) -> str:
    for key in _MTIME_KEYS:
        stamp = _iso(low.get(key))
        if stamp:
            return f"mtime:{size}:{stamp}"
    return f"mtime:{size}:unknown"


# Pointer checksum kinds, in the order of preference of _pointer_checksum.
_CHECKSUM_OF_KIND: dict[str, Callable[[Mapping[str, Any], int], str | None]] = {
    "s3v": lambda low, size: _version_checksum(low),
    "gsgen": lambda low, size: _generation_checksum(low),
    "etag": lambda low, size: _etag_checksum(low),
    "mtime": _mtime_checksum,
}


def _pointer_checksum(info: Mapping[str, Any], size: int) -> str:
    """The storage's own checksum of an object, prefixed so it never looks like content."""
    low = _lower(info)
    for of_kind in _CHECKSUM_OF_KIND.values():
        checksum = of_kind(low, size)
        if checksum:
            return checksum
    raise AssertionError("unreachable: an mtime checksum is always made")


def _open_fs(uri: str, scheme: str) -> tuple[Any, str]:
    import fsspec.core

    try:
        fs, root = fsspec.core.url_to_fs(uri)
        return fs, str(root)
    except ImportError as exc:
        extra = _EXTRAS.get(scheme)
        if extra:
            raise InvalidInput(f'{scheme}:// references need an extra: pip install "headwater[{extra}]"') from None
        raise InvalidInput(f"{scheme}:// is not available here: {_one_line(exc)}") from None
    except ValueError as exc:
        if "protocol" in str(exc).lower():
            raise InvalidInput(
                f"unsupported URI scheme {scheme + '://'!r} in {uri!r}; supported: {_REFERENCE_SCHEMES}"
                " and other installed fsspec protocols"
            ) from None
        raise InvalidInput(f"cannot open {uri!r}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - a third-party constructor can fail in any way
        raise InvalidInput(f"cannot open {uri!r}: {_one_line(exc)}") from None


def _forget_listings(fs: Any, path: str) -> None:
    """Drop what `fs` remembers of `path`, its parents and below it: fsspec keeps one file system
    instance per set of options, and its listings cache would answer for the storage."""
    try:
        fs.invalidate_cache(path)
        cache = getattr(fs, "dircache", None)
        if cache:
            below = path.rstrip("/") + "/"
            for key in [k for k in list(cache) if isinstance(k, str) and k.startswith(below)]:
                cache.pop(key, None)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation; never fail on it
        log.debug("listings cache of %s not cleared: %s", path, exc)


def _fsspec_manifest(uri: str, scheme: str) -> list[ManifestEntry]:
    fs, root = _open_fs(uri, scheme)
    root = root.rstrip("/")
    try:
        _forget_listings(fs, root)
        info = fs.info(root)
        if info.get("type") != "directory":
            size = int(info.get("size") or 0)
            name = validate_entry_path(posixpath.basename(root))
            return [ManifestEntry(path=name, digest=_pointer_checksum(info, size), size=size, ref=uri)]
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        raise InvalidInput(f"no such object or prefix: {uri!r}") from None
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {uri!r}: {_one_line(exc)}") from None
    except HeadwaterError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot list {uri!r}: {_one_line(exc)}") from None
    prefix = root + "/"
    entries = []
    for name, item in found.items():
        if item.get("type") == "directory" or not name.startswith(prefix):
            continue
        rel = name[len(prefix) :]
        size = int(item.get("size") or 0)
        entries.append(
            ManifestEntry(
                path=validate_entry_path(rel),
                digest=_pointer_checksum(item, size),
                size=size,
                ref=f"{uri}/{rel}",
            )
        )
    entries.sort(key=lambda e: e.path)
    return entries


class _Gone(InvalidInput):
    """HTTP 404 or 410: the object is not there (any more)."""


class _KeepHeadOnRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected HEAD into a GET, which would download the whole body."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and req.get_method() == "HEAD":
            new.method = "HEAD"
        return new


@contextlib.contextmanager
def _http_errors(url: str, verb: str, timeout: float) -> Iterator[None]:
    """urllib's errors as headwater's: gone (404/410), refused (other 4xx), unreachable."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise _Gone(f"cannot {verb} {url!r}: HTTP {exc.code} {exc.reason}") from None
        if 400 <= exc.code < 500:
            raise InvalidInput(f"cannot {verb} {url!r}: HTTP {exc.code} {exc.reason}") from None
        raise Unavailable(f"cannot {verb} {url!r}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, BaseException) else Exception(str(exc.reason))
        raise Unavailable(f"cannot reach {url!r}: {_one_line(reason)}") from None
    except (TimeoutError, OSError) as exc:
        raise Unavailable(f"cannot {verb} {url!r} within {timeout:g} s: {_one_line(exc)}") from None


def _http_headers(url: str) -> Mapping[str, str]:
    opener = urllib.request.build_opener(_KeepHeadOnRedirect())
    base = {"User-Agent": "headwater"}
    timeout = timeout_s()
    with _http_errors(url, "reference", timeout):
        try:
            head = urllib.request.Request(url, method="HEAD", headers=base)
            with opener.open(head, timeout=timeout) as resp:
                found: Mapping[str, str] = resp.headers
                return found
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 501):
                raise
        # Some servers refuse HEAD; one byte of a ranged GET reports the same headers.
        ranged = urllib.request.Request(url, headers={**base, "Range": "bytes=0-0"})
        with opener.open(ranged, timeout=timeout) as resp:
            ranged_found: Mapping[str, str] = resp.headers
            return ranged_found


def _http_info(url: str) -> tuple[dict[str, Any], int]:
    """(checksum-bearing headers, size) of a URL, from a HEAD request."""
    headers = _http_headers(url)
    size = 0
    content_range = headers.get("Content-Range", "")
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        size = int(total)
    elif (headers.get("Content-Length") or "").isdigit():
        size = int(headers["Content-Length"])
    return {"etag": headers.get("ETag"), "lastmodified": headers.get("Last-Modified")}, size


def _http_entry(url: str) -> ManifestEntry:
    info, size = _http_info(url)
    name = urllib.parse.unquote(posixpath.basename(urllib.parse.urlsplit(url).path)) or "index"
    return ManifestEntry(path=validate_entry_path(name), digest=_pointer_checksum(info, size), size=size, ref=url)


# --- re-checking a recorded reference ----------------------------------------------------------

ReferenceStatus = Literal["ok", "missing", "drifted"]


def reference_status(entry: ManifestEntry, *, stat_cache: StatCacheArg = None) -> ReferenceStatus:
    """Whether the object an entry points to still holds what was recorded.

    ``"ok"``: the storage reports the recorded checksum; ``"missing"``: no object at the ref
    (deleted, an S3 delete marker, HTTP 404/410, or only a prefix/directory there now);
    ``"drifted"``: the object is there with another checksum, or no longer reports a checksum
    of the recorded kind.

    Like is compared with like: a ``blake3:`` entry is re-hashed (a ``file://`` file through the
    stat cache, other schemes streamed); ``s3v:``/``gsgen:``/``etag:``/``mtime:`` entries are
    compared with the current checksum of that same kind (an ``etag:`` recorded from a prefix
    listing of a versioned bucket is compared with the object's ETag, not its version id).
    Listings cached by fsspec are dropped first, so the answer is the storage's, not a cache's.

    Raises InvalidInput for an entry without a ref, a checksum that was never read from the
    storage (``ol:``, ``unverified:``) or access denied; Unavailable when the storage cannot be
    reached. Neither means missing.
    """
    ref, digest = entry.ref, entry.digest
    if not ref:
        raise InvalidInput(f"entry {entry.path!r} is stored, not a reference: nothing to re-check")
    scheme, sep, _ = ref.partition("://")
    if not sep or not scheme:
        raise InvalidInput(f"entry {entry.path!r} has a ref that is not a URI: {ref!r}")
    scheme = scheme.lower()
    kind = digest.partition(":")[0]
    try:
        if is_content_digest(digest):
            return _content_status(ref, scheme, digest, stat_cache)
        if kind in _CHECKSUM_OF_KIND:
            return _pointer_status(ref, scheme, kind, digest)
    except _Gone:
        return "missing"
    raise InvalidInput(f"{ref!r} was recorded as {digest!r}, which no storage checksum can be compared with")


def _verdict(current: str | None, recorded: str) -> ReferenceStatus:
    return "ok" if current == recorded else "drifted"


def _local_status(path: Path, kind: str, recorded: str, stat_cache: StatCacheArg) -> ReferenceStatus:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as exc:
        raise InvalidInput(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
    if not stat_mod.S_ISREG(st.st_mode):
        return "missing"
    if kind == "blake3":
        try:
            return _verdict(hash_file(path, stat_cache=stat_cache)[0], recorded)
        except InvalidInput:
            if not path.is_file():
                return "missing"  # removed while being hashed
            raise
    return _verdict(_CHECKSUM_OF_KIND[kind]({"mtime": st.st_mtime}, st.st_size), recorded)


def _content_status(ref: str, scheme: str, recorded: str, stat_cache: StatCacheArg) -> ReferenceStatus:
    if scheme == "file":
        from headwater.refs import file_uri_to_path

        return _local_status(file_uri_to_path(ref), "blake3", recorded, stat_cache)
    if scheme in ("http", "https"):
        return _verdict(_http_content_digest(ref), recorded)
    fs, path = _open_fs(ref, scheme)
    try:
        _forget_listings(fs, path)
        with fs.open(path, "rb") as stream:
            current = hash_stream(stream, int(getattr(stream, "size", 0) or 0))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "missing"
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {ref!r}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot read {ref!r}: {_one_line(exc)}") from None
    return _verdict(current, recorded)


def _http_content_digest(url: str) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": "headwater"})
    timeout = timeout_s()
    with _http_errors(url, "read", timeout), urllib.request.urlopen(request, timeout=timeout) as resp:
        return hash_stream(resp, int(resp.headers.get("Content-Length") or 0))


def _pointer_status(ref: str, scheme: str, kind: str, recorded: str) -> ReferenceStatus:
    of_kind = _CHECKSUM_OF_KIND[kind]
    if scheme == "file":
        from headwater.refs import file_uri_to_path

        return _local_status(file_uri_to_path(ref), kind, recorded, False)
    if scheme in ("http", "https"):
        info, size = _http_info(ref)
        return _verdict(of_kind(_lower(info), size), recorded)
    fs, path = _open_fs(ref, scheme)
    try:
        _forget_listings(fs, path)
        info = fs.info(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {ref!r}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot look up {ref!r}: {_one_line(exc)}") from None
    if info.get("type") == "directory":
        return "missing"
    return _verdict(of_kind(_lower(info), int(info.get("size") or 0)), recorded)


def open_pinned(entry: ManifestEntry) -> IO[bytes] | None:
    """The object version an ``s3v:`` or ``gsgen:`` entry recorded, open for reading, whatever
    the object holds now; None for any other checksum (it names no version to ask for).

    Raises NotFound when the storage no longer keeps that version, InvalidInput when access is
    denied, Unavailable when it cannot be reached.
    """
    from headwater.errors import Conflict, NotFound

    kind, _, value = entry.digest.partition(":")
    ref = entry.ref or ""
    scheme = ref.partition("://")[0].lower()
    if kind not in ("s3v", "gsgen") or scheme not in ("s3", "gs"):
        return None
    try:
        if kind == "s3v":
            import fsspec.core

            # Only a version-aware file system takes a version id (s3fs refuses it otherwise).
            fs, path = fsspec.core.url_to_fs(ref, version_aware=True)
            stream = fs.open(path, "rb", version_id=value)
            served = getattr(stream, "version_id", None)
        else:
            fs, path = _open_fs(ref, scheme)
            stream = fs.open(path, "rb", generation=value)
            served = (getattr(stream, "details", None) or {}).get("generation")
        if served not in (None, "") and str(served) != value:
            # A storage (or an emulator) that ignores the version asked for: its bytes are not those.
            stream.close()
            raise Conflict(f"{ref} served {kind}:{served}, not the version recorded ({entry.digest})")
        return stream  # type: ignore[no-any-return]  # fsspec is untyped: its open gives a binary file
    except HeadwaterError:
        raise
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"{ref} no longer keeps the version recorded ({entry.digest})") from None
    except PermissionError as exc:
        raise InvalidInput(f"access denied to {ref!r}: {_one_line(exc)}") from None
    except ImportError as exc:
        raise InvalidInput(f"{scheme}:// is not available here: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - network and credential errors come in many types
        raise Unavailable(f"cannot read {ref!r} at {entry.digest}: {_one_line(exc)}") from None
