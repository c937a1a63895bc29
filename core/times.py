"""Times a user gives (`--at`, a page's form, an API query): ISO 8601, a naive time is UTC, and
only years both databases store and order correctly."""

from __future__ import annotations

from datetime import datetime, timezone

from headwater.errors import InvalidInput

FIRST_YEAR, LAST_YEAR = 1000, 9998


def check(value: datetime | None, what: str) -> None:
    """Refuse a time outside years 1000 to 9998 (in UTC) with one line naming `what`."""
    if value is None:
        return
    try:
        year = (value if value.tzinfo is None else value.astimezone(timezone.utc)).year
    except OverflowError:
        year = 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidInput(f"{what} {value.isoformat()} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")


def utc(value: datetime, what: str = "the time") -> datetime:
    """`value` in UTC (naive means UTC), checked to be in range."""
    check(value, what)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse(text: str, what: str = "the time") -> datetime:
    """`2024-03-01`, `2024-03-01T12:00`, `...:00+02:00` or `...Z` (naive means UTC), in UTC."""
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{text[:40]!r} is not an ISO 8601 time: use e.g. 2024-03-01, 2024-03-01T12:00:00 "
            "(UTC) or 2024-03-01T12:00:00+02:00"
        ) from None
    return utc(parsed, what)
