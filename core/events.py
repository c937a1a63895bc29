"""The write side of headwater: every change to the store is one of these events.

Events are what the outbox persists and what every Store applies, so the same JSON travels to
SQLite, PostgreSQL and the tracking server. Each carries an id (replays are ignored) and the time
it happened (alias moves and run states are ordered by it, not by arrival).

An event is checked when it is made, against what both databases store (the limits below are the
column sizes of headwater.store.schema): no NUL or lone surrogate in any text, names and labels
within their columns, times timezone-aware (a naive time is UTC, as everywhere in headwater) and
in range, metadata plain JSON. A bad one is refused at the call with one InvalidInput line, so it
never reaches the outbox, where it would be refused by the store only later.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
import time as _time
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from headwater import times
from headwater.errors import HeadwaterError, InvalidInput
from headwater.models import Direction, ManifestEntry, RunKind, RunStatus

# Column sizes (headwater.store.schema uses these): a longer value is refused when the event is made.
ID_MAX = 64  # event ids and run ids
NAME_MAX = 1024  # artifact names, jobs, job namespaces
TYPE_MAX = 128
ORCHESTRATOR_MAX = 64
DIGEST_MAX = 200
PATH_MAX = 4096  # entry paths and entry refs
ALIAS_MAX = 256  # aliases and tags
REF_MAX = NAME_MAX + 1 + DIGEST_MAX  # an edge's REF: name@digest, name:vN or name:alias
METADATA_DEPTH = 64  # nesting of metadata, params and code


def check_text(value: str, limit: int | None = None) -> str:
    """`value` if both databases store it as it is: no NUL (PostgreSQL refuses it in text and
    JSON), no lone surrogate (not UTF-8), at most `limit` characters."""
    if "\0" in value:
        raise ValueError(f"{_show(value)} holds a NUL character, which the databases cannot store")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{_show(value)} is not valid Unicode (a lone surrogate)") from None
    if limit is not None and len(value) > limit:
        raise ValueError(f"{_show(value)} is longer than {limit} characters")
    return value


def check_tag(tag: str) -> str:
    """A tag: printable text without spaces, at most ALIAS_MAX characters."""
    if len(tag) > ALIAS_MAX:
        raise InvalidInput(f"invalid tag {_show(tag)}: longer than {ALIAS_MAX} characters")
    if not tag or any(c.isspace() or not c.isprintable() for c in tag):
        raise InvalidInput(f"invalid tag {tag!r}: use printable text without spaces")
    return tag


def json_value(value: Any, where: str = "metadata", depth: int = 0) -> Any:
    """`value` as plain JSON both databases store and filter alike: dates and times become ISO
    8601 text (a naive time is UTC), numbers of other kinds (numpy's) plain ones. NaN and
    Infinity are refused (they are not JSON: SQLite would store text no filter reads, PostgreSQL
    refuses them), as are keys that are not text and values of any other type."""
    if value is None or type(value) in (bool, int):
        return value
    if isinstance(value, str):
        return _json_text(value, where)
    if isinstance(value, float) or (isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{where} is {number}: NaN and Infinity are not JSON (use null or a string)")
        return number
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, datetime):
        return times.utc(value, where).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if depth >= METADATA_DEPTH:
        raise ValueError(f"{where} is nested deeper than {METADATA_DEPTH} levels")
    if isinstance(value, dict):
        normal = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r}: keys must be text")
            inner = f"{where}.{key}" if len(where) < 200 else where
            normal[_json_text(key, where, "the key ")] = json_value(item, inner, depth + 1)
        return normal
    if isinstance(value, (list, tuple)):
        return [json_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise ValueError(
        f"{where} is of type {type(value).__name__}, which is not JSON: use text, numbers, true/false, "
        "null, lists, objects or dates"
    )


def _json_text(value: str, where: str, what: str = "") -> str:
    try:
        return check_text(value)
    except ValueError as err:
        raise ValueError(f"{where}: {what}{err}") from None


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _text(limit: int | None) -> AfterValidator:
    return AfterValidator(lambda value: check_text(value, limit))


def _aware(value: datetime, info: ValidationInfo) -> datetime:
    return times.utc(value, info.field_name or "the time")


def _json_object(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    checked: dict[str, Any] = json_value(value, info.field_name or "the object")
    return checked


def check_version_digest(digest: str) -> str:
    # Imported when an event is made: the digest package (blake3, the stat cache, the reference
    # readers) costs a task's start-up, and `import headwater.events` should not.
    from headwater.digest import check_version_digest as check

    return check(digest)


def check_entry_paths(paths: Iterable[str]) -> None:
    from headwater.digest import check_entry_paths as check

    check(paths)


def describe_error(err: ValidationError, what: str) -> str:
    """One line for the first problem pydantic found, naming the field."""
    first = err.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    reason = first.get("ctx", {}).get("error")
    if isinstance(reason, HeadwaterError):
        return str(reason)  # already a whole sentence (a tag, a time, a manifest)
    message = str(reason) if reason is not None else first["msg"]
    more = err.error_count() - 1
    prefix = "" if not where or message.startswith(where) else f"{where}: "
    return f"invalid {what}: {prefix}{message}" + (f" (and {more} more)" if more else "")


Id = Annotated[str, _text(ID_MAX)]
Name = Annotated[str, _text(NAME_MAX)]
Digest = Annotated[str, _text(DIGEST_MAX), AfterValidator(check_version_digest)]
Alias = Annotated[str, _text(ALIAS_MAX)]
Tag = Annotated[str, AfterValidator(check_tag)]
Text = Annotated[str, _text(None)]
Time = Annotated[datetime, AfterValidator(_aware)]
JSONObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


_last_id_ms = 0
_id_lock = threading.Lock()


def new_id() -> str:
    """A uuid7 (RFC 9562): it sorts by creation time, which keeps outbox files and manual run ids
    in order. Within a process each id's millisecond is later than the previous one's (as the
    uuid6 package does), so two ids made in the same millisecond still sort in the order made."""
    global _last_id_ms
    with _id_lock:
        ms = max(_time.time_ns() // 1_000_000, _last_id_ms + 1)
        _last_id_ms = ms
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10), "big") >> 4
    value = value & ~(0xF000 << 64) | 7 << 76  # the version
    value = value & ~(0xC000 << 48) | 0x8000 << 48  # the RFC 4122 variant
    return str(uuid.UUID(int=value))


class _Event(BaseModel):
    # Each event's validator is built when first used: a task process makes two or three kinds,
    # and building all of them would cost its start-up more than recording does.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: Id = Field(default_factory=new_id)
    time: Time = Field(default_factory=utcnow)

    def __init__(self, **data: Any) -> None:
        # Made by a caller (not read back from JSON): its mistake is one InvalidInput line.
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise InvalidInput(describe_error(err, f"{self.__class__.__name__} event")) from None


class RunRecorded(_Event):
    """Create or update a run. Fields left None keep what the store has; terminal states stick."""

    kind: Literal["run"] = "run"
    run_id: Id
    job: Name | None = None
    job_namespace: Name | None = None
    orchestrator: Annotated[str, _text(ORCHESTRATOR_MAX)] | None = None
    run_kind: RunKind | None = None
    status: RunStatus | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    params: JSONObject | None = None
    parent_id: Id | None = None
    error: Text | None = None
    code: JSONObject | None = None
    links: dict[Text, Text] | None = None


class VersionRecorded(_Event):
    """A version seen with this content; optionally the edge of the run that used or produced it.

    The version is created when its digest is new for the artifact. `latest` moves to it when it
    was produced or logged (direction None or "produced"), or when a use saw it for the first time.
    Content that was deleted is refused (Conflict) when logged bare; a run's edge to it is kept on
    the tombstone, and the version stays deleted.
    """

    kind: Literal["version"] = "version"
    name: Name
    digest: Digest
    entries: list[ManifestEntry]
    type: Annotated[str, _text(TYPE_MAX)] | None = None
    metadata: JSONObject = Field(default_factory=dict)
    description: Text | None = None
    tags: list[Tag] = Field(default_factory=list)
    aliases: list[Alias] = Field(default_factory=list)
    run_id: Id | None = None
    direction: Direction | None = None
    exact: bool = True
    edge_metadata: JSONObject = Field(default_factory=dict)
    inputs: list[Annotated[str, _text(REF_MAX)]] = Field(
        default_factory=list,
        description="with direction `produced`: the REFs of the run's inputs that made this output (each "
        "also recorded as the run's input); empty: every input of the run made it",
    )
    allow_purged: bool = Field(
        default=False,
        description="store files whose content was purged again (`--allow-purged`); without it such "
        "files are recorded as purged and their bytes are not kept",
    )
    manifest: Digest | None = Field(
        default=None,
        description="on the way to a tracking server only: the digest of the staged manifest "
        "(`PUT /api/v1/manifests/{digest}`) that holds the entries, sent apart when they are many",
    )

    @model_validator(mode="after")
    def _check_entries(self) -> VersionRecorded:
        for entry in self.entries:
            try:
                check_text(entry.path, PATH_MAX)
                check_text(entry.digest, DIGEST_MAX)
                if entry.ref is not None:
                    check_text(entry.ref, PATH_MAX)
            except ValueError as err:
                raise ValueError(f"entry {_show(entry.path)}: {err}") from None
        check_entry_paths(entry.path for entry in self.entries)
        if self.inputs and self.direction != "produced":
            raise ValueError("inputs: only an output (direction `produced`) says which inputs made it")
        return self


class EdgeRecorded(_Event):
    """A run used (or produced) an existing version named by a REF, resolved at the event's time.

    Used for inputs whose content cannot be read: `exact` is False when the REF was not a digest.
    """

    kind: Literal["edge"] = "edge"
    run_id: Id
    ref: Annotated[str, _text(REF_MAX)]
    direction: Direction = "used"
    exact: bool = True
    metadata: JSONObject = Field(default_factory=dict)


class AliasMoved(_Event):
    """Point `alias` of artifact `name` at the version with `digest`, or remove it when None."""

    kind: Literal["alias"] = "alias"
    name: Name
    alias: Alias
    digest: Digest | None


class TagsChanged(_Event):
    kind: Literal["tags"] = "tags"
    name: Name
    digest: Digest
    add: list[Tag] = Field(default_factory=list)
    remove: list[Tag] = Field(default_factory=list)


class VersionDeleted(_Event):
    """Tombstone a version: its lineage stays, its aliases go, its blobs become collectable."""

    kind: Literal["delete"] = "delete"
    name: Name
    digest: Digest
    who: Text | None = Field(default=None, description="for the audit log: the OS user who asked")
    reason: Text | None = None
    retention: bool = Field(default=False, description="removed by a retention policy (the audit log's action)")


class RetentionSet(_Event):
    """Set (or with `remove`, drop) the retention policy of an artifact name or of a type."""

    kind: Literal["retention"] = "retention"
    selector: Literal["name", "type"]
    value: Annotated[str, _text(NAME_MAX)]
    keep_last: int | None = Field(default=None, ge=0)
    older_than_s: float | None = Field(default=None, ge=0)
    protect_lineage: bool = True
    who: Annotated[str, _text(NAME_MAX)] = ""
    remove: bool = False


class ContentPurged(_Event):
    """Purge files by content digest in every version that holds them (a privacy takedown).

    The store marks those entries purged (digest and size kept; the path replaced by a redacted
    form when `redact`), keeps every version, run and edge, and appends one row to the audit log.
    The bytes are removed by whoever holds them (the client, the tracking server) once this is
    recorded. `references`: entries that point elsewhere (s3://, https://), reported to the user,
    not deleted. `selection`: what was asked for, as the audit log shows it.
    """

    kind: Literal["purge"] = "purge"
    digests: list[Digest] = Field(default_factory=list)
    references: list[Annotated[str, _text(PATH_MAX)]] = Field(default_factory=list)
    reason: Annotated[str, _text(4096), AfterValidator(lambda v: _nonblank(v, "a purge needs a reason"))]
    who: Annotated[str, _text(NAME_MAX)]
    selection: Annotated[str, _text(PATH_MAX)] = ""
    redact: bool = False


def _nonblank(value: str, message: str) -> str:
    if not value.strip():
        raise ValueError(message)
    return value


Event = Annotated[
    RunRecorded
    | VersionRecorded
    | EdgeRecorded
    | AliasMoved
    | TagsChanged
    | VersionDeleted
    | ContentPurged
    | RetentionSet,
    Field(discriminator="kind"),
]
EVENTS: TypeAdapter[list[Event]] = TypeAdapter(list[Event], config=ConfigDict(defer_build=True))


def dump_events(events: Sequence[_Event]) -> bytes:
    """`EVENTS.dump_json(events)`, byte for byte, through each event's own serializer: building
    the union's (every kind of event) would cost a task process more than writing its batch."""
    return b"[" + b",".join(event.__pydantic_serializer__.to_json(event) for event in events) + b"]"
