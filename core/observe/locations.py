"""What a task's value names: a location (path, URI, fsspec file, UPath or Airflow's
ObjectStoragePath), a recorded version (`Version`, `Ref`), or nothing headwater records."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.api import Output
from headwater.errors import HeadwaterError
from headwater.models import Version
from headwater.observe.safety import one_line, short
from headwater.refs import Ref, file_uri_to_path, is_uri, normalize_name, path_to_file_uri

log = logging.getLogger("headwater")

# Strings with these schemes name a place the task talks to, not data it reads.
_NOT_DATA_SCHEMES = frozenset({"http", "https", "ws", "wss", "mailto", "data"})
MAX_ITEMS = 1000  # values walked per parameter or result
MAX_DEPTH = 3


def location_name(target: str | os.PathLike[str]) -> str:
    """The artifact name of a location: its canonical URI (local paths become file:// URIs)."""
    if isinstance(target, str) and is_uri(target):
        return normalize_name(target)
    return path_to_file_uri(Path(target).absolute())


@dataclass(frozen=True)
class Location:
    """A path or URI seen in a task's value, or given on purpose (hw.Output, log_output)."""

    target: str | os.PathLike[str]  # what observe hashes
    key: str  # its canonical location URI
    name: str | None = None  # artifact name when it is not the location (hw.Output, assets)
    type: str | None = None
    metadata: dict[str, Any] | None = None
    explicit: bool = False  # given on purpose: recorded even when it does not exist
    aliases: tuple[str, ...] = ()  # an hw.Output's labels, applied to the version it becomes
    tags: tuple[str, ...] = ()
    description: str | None = None
    store: bool | None = None  # an hw.Output's `store`: True keeps a copy of the bytes (observe.stored)


@dataclass(frozen=True)
class VersionRef:
    """A recorded version a value names; `exact` unless it moves (a bare name, an alias)."""

    ref: str
    exact: bool


def _fsspec_schemes() -> frozenset[str]:
    try:
        from fsspec.registry import known_implementations, registry

        return frozenset(known_implementations) | frozenset(registry) | {"file", "s3a", "s3n"}
    except Exception:  # noqa: BLE001 - fsspec is a core dependency; be safe anyway
        return frozenset({"file", "s3", "s3a", "s3n", "gs", "gcs", "az", "abfs", "abfss", "hdfs", "memory"})


_schemes: frozenset[str] | None = None


def readable_uri(uri: str) -> bool:
    """True when headwater can hash what the URI names (fsspec knows the scheme, and it is data)."""
    global _schemes
    if _schemes is None:
        _schemes = _fsspec_schemes()
    scheme = uri.split(":", 1)[0].lower()
    return scheme in _schemes and scheme not in _NOT_DATA_SCHEMES


def locate(value: Any) -> Location | None:
    """The location a single value names; None for anything else, an invalid one included."""
    try:
        return _locate(value)
    except (HeadwaterError, ValueError, OSError):  # not a valid location ('s3://' alone, say)
        return None


def _locate(value: Any) -> Location | None:
    if isinstance(value, str):
        if len(value) > 4096 or "\n" in value:
            return None
        if is_uri(value):
            return Location(value, normalize_name(value)) if readable_uri(value) else None
        # A plain string counts as a path only when it looks like one and exists.
        if ("/" in value or os.sep in value or "." in value) and os.path.exists(value):
            return Location(value, location_name(value))
        return None
    protocol = getattr(value, "protocol", None)
    if protocol is not None and hasattr(value, "storage_options") and hasattr(value, "path"):
        # UPath and Airflow's ObjectStoragePath: str() is its URI (or a plain path for local ones).
        text = str(value)
        if is_uri(text):
            return locate(text)
        if isinstance(value, os.PathLike):
            return Location(os.fspath(value), location_name(os.fspath(value)))
        return None
    if hasattr(value, "fs") and hasattr(value, "path") and hasattr(value.fs, "unstrip_protocol"):
        uri = value.fs.unstrip_protocol(value.path)  # fsspec OpenFile
        return locate(uri) if isinstance(uri, str) else None
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return Location(path, location_name(path))
    return None


def find(value: Any, *, depth: int = 0, count: list[int] | None = None) -> Iterator[Location | VersionRef]:
    """Locations and recorded versions inside a value (a parameter, a return value), walking
    dicts and sequences a few levels deep and at most MAX_ITEMS values."""
    count = count if count is not None else [0]
    count[0] += 1
    if count[0] > MAX_ITEMS:
        return
    if isinstance(value, Output):
        try:
            yield Location(
                value.path,
                location_name(value.path),
                name=normalize_name(value.name),
                type=value.type,
                metadata=value.metadata,
                explicit=True,
                aliases=tuple(value.aliases),
                tags=tuple(value.tags),
                description=value.description,
                store=value.store,
            )
        except (HeadwaterError, ValueError, OSError) as err:
            log.warning("headwater: %s ignored: %s", short(value), one_line(err))
        return
    if isinstance(value, Version):
        if value.digest.startswith("blake3:"):
            yield VersionRef(f"{value.name}@{value.digest}", exact=True)
        elif value.label:
            yield VersionRef(f"{value.name}:{value.label}", exact=True)
        return
    if isinstance(value, Ref):
        yield VersionRef(str(value), exact=value.alias is None)
        return
    if isinstance(value, (bool, int, float, complex, bytes, bytearray)) or value is None:
        return
    location = locate(value)
    if location is not None:
        yield location
        return
    if depth >= MAX_DEPTH:
        return
    if isinstance(value, dict):
        for item in list(value.values())[:MAX_ITEMS]:
            yield from find(item, depth=depth + 1, count=count)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in list(value)[:MAX_ITEMS]:
            yield from find(item, depth=depth + 1, count=count)


def exists(location: Location) -> bool:
    """Local paths must exist to count as data read or written; remote ones are checked by hashing."""
    if isinstance(location.target, str) and is_uri(location.target):
        if location.key.startswith("file://"):
            return file_uri_to_path(location.key).exists()
        return True
    return os.path.exists(location.target)
