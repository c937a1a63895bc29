"""Times as orchestrators report them, in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from headwater import times
from headwater.errors import InvalidInput


def now() -> datetime:
    """The current time in UTC, for events an orchestrator does not time itself."""
    return datetime.now(timezone.utc)


def utc(value: Any) -> datetime | None:
    """An orchestrator's time in UTC: a datetime (naive means UTC; an aware one is converted) or
    a POSIX timestamp; None for anything else or a time out of range (never invented)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    if not isinstance(value, datetime):
        return None
    try:
        return times.utc(value)
    except InvalidInput:
        return None
