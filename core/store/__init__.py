"""Tracking backends, chosen by URI (HEADWATER_URI)."""

from __future__ import annotations

from pathlib import Path

from headwater.errors import InvalidInput
from headwater.store.base import Store


def open_store(uri: str, *, token: str | None = None, home: Path | None = None) -> Store:
    """`sqlite:///path` (default), `postgresql://...`, or `http(s)://host:port` (tracking server,
    with a bearer `token`, else HEADWATER_TOKEN / HEADWATER_TOKEN_FILE)."""
    scheme = uri.split(":", 1)[0].lower()
    if scheme.startswith("sqlite") or scheme.startswith("postgres"):
        from headwater.store.sql import SQLStore

        return SQLStore(uri)
    if scheme in ("http", "https"):
        from headwater.store.http import HTTPStore

        return HTTPStore(uri, token=token, home=home)
    raise InvalidInput(
        f"unsupported HEADWATER_URI {uri!r}: use sqlite:///PATH, postgresql://... or http(s)://HOST:PORT"
    )


__all__ = ["Store", "open_store"]
