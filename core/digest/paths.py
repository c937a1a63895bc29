"""Manifest entry paths: their canonical form, and what a whole manifest's paths must obey."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from headwater.errors import InvalidInput

# Printable-ASCII segments joined by '/', none empty, '.' or '..': canonical as they are.
# Printable ASCII but `/` and `\`, no `.`/`..` segment, no drive (`C:/`): canonical already.
_CANONICAL_ASCII = re.compile(r"(?![A-Za-z]:(?:/|$))(?!\.\.?(?:/|$))[ -.0-\[\]-~]+(?:/(?!\.\.?(?:/|$))[ -.0-\[\]-~]+)*")
# Windows forms, refused everywhere: a path written on Windows must not escape on restore there.
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:(?:[/\\]|$)")


def validate_entry_path(p: str) -> str:
    """The canonical form of a manifest path: relative POSIX, NFC, '.'/'..' resolved.

    Raises InvalidInput for an empty or absolute path, a newline or NUL, an empty segment, a path
    that is not valid UTF-8, or one that escapes its root.
    """
    if isinstance(p, str) and p.isascii() and _CANONICAL_ASCII.fullmatch(p):
        return p  # the common case, already canonical: every manifest digest checks every path
    if not isinstance(p, str) or not p:
        raise InvalidInput(f"invalid entry path {p!r}: empty")
    if "\n" in p or "\0" in p:
        raise InvalidInput(f"invalid entry path {p!r}: holds a newline or NUL character")
    try:
        p.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"invalid entry path {p!r}: not valid UTF-8") from None
    if p.startswith("/"):
        raise InvalidInput(f"invalid entry path {p!r}: absolute; manifest paths are relative")
    if "\\" in p or _WINDOWS_DRIVE.match(p):
        raise InvalidInput(f"invalid entry path {p!r}: a Windows form (drive or backslash); manifest paths are POSIX")
    normal = unicodedata.normalize("NFC", p)
    parts: list[str] = []
    for segment in normal.split("/"):
        if segment == "":
            raise InvalidInput(f"invalid entry path {p!r}: empty segment")
        if segment == ".":
            continue
        if segment == "..":
            if not parts:
                raise InvalidInput(f"invalid entry path {p!r}: escapes its root")
            parts.pop()
            continue
        parts.append(segment)
    if not parts:
        raise InvalidInput(f"invalid entry path {p!r}: names the root itself")
    return "/".join(parts)


def check_entry_paths(paths: Iterable[str]) -> None:
    """Refuse a manifest listing a path twice, or holding both a file `a` and a file under `a/`:
    no folder can restore it."""
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise InvalidInput(f"manifest lists {path!r} twice")
        seen.add(path)
    for path in seen:
        cut = path.rfind("/")
        while cut > 0:
            if path[:cut] in seen:
                raise InvalidInput(f"manifest holds both {path[:cut]!r} and {path!r}: a file cannot also be a folder")
            cut = path.rfind("/", 0, cut)
