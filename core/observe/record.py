"""Recording what a task value names: the locations found in its inputs and its outputs.

Any adapter that walks task values (`find`) records what it found the same way: a location
headwater can read is hashed, a table or a service it cannot read is named honestly (an inexact
input, an unverified output), and an input path that does not exist is no input at all.
"""

from __future__ import annotations

from typing import Any

from headwater.observe.batch import Batch
from headwater.observe.locations import Location, exists, find, readable_uri
from headwater.refs import is_uri


def used_location(b: Batch, rid: str, item: Location) -> None:
    """The run read `item`: its exact version when it can be read, else the latest, inexact."""
    if is_uri(str(item.target)) and not readable_uri(str(item.target)):
        # A table or a service headwater cannot read: its latest version, said to be inexact.
        b.used_ref(rid, item.name or item.key, exact=False)
        return
    if not exists(item):
        return  # not there when the task started: not something it read (an output path, say)
    b.used(rid, item.target, name=item.name)


def produced_locations(b: Batch, rid: str, outputs: list[Location]) -> list[tuple[str, str]]:
    """The run wrote `outputs` (each name once): [(location key, "name@digest")] of those a later
    event can link to."""
    recorded: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in outputs:
        name = item.name or item.key
        if name in seen:
            continue
        seen.add(name)
        if is_uri(str(item.target)) and not readable_uri(str(item.target)):
            # A table or a service headwater cannot read: an unverified version, said to be so.
            b.produced(rid, None, name=name, type=item.type, metadata=item.metadata)
            continue
        ref = b.produced(
            rid,
            item.target,
            name=item.name,
            type=item.type,
            metadata=item.metadata,
            aliases=item.aliases,
            tags=item.tags,
            description=item.description,
        )
        if ref is not None and linkable(ref):
            recorded.append((item.key, ref))
    return recorded


def outputs_in(value: Any) -> list[Location]:
    """Return values that are paths, URIs or headwater outputs (local paths only if they exist)."""
    return [item for item in find(value) if isinstance(item, Location) and (item.explicit or exists(item))]


def linkable(ref: str) -> bool:
    """A `name@digest` a later event can resolve (unverified digests are not REFs)."""
    return "@blake3:" in ref
