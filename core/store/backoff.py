"""Backends found down in this process, and until when they are not asked again.

A write against a server that lets its time budget run out would otherwise spend that budget
again at every call: a pipeline logging ten outputs would wait ten budgets. The HTTP store and
PostgreSQL mark a backend here when it does not answer, and skip it for a short back-off; the
batch waits in the outbox meanwhile, and the first call after the back-off tries again.
"""

from __future__ import annotations

import threading
import time

from headwater.errors import Unavailable

# The shortest back-off: a budget of a fraction of a second must still cover the next write.
MIN_BACKOFF_S = 1.0

_until: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def check(key: str) -> None:
    """Raise Unavailable, saying why, while `key` is in its back-off."""
    with _lock:
        until, reason = _until.get(key, (0.0, ""))
    if time.monotonic() < until:
        raise Unavailable(f"{reason} (moments ago; not asked again for {until - time.monotonic():.1f}s)")


def mark_down(key: str, reason: str, budget: float) -> None:
    """`key` just failed to answer within `budget`: skip it for max(budget, MIN_BACKOFF_S)."""
    with _lock:
        _until[key] = (time.monotonic() + max(budget, MIN_BACKOFF_S), reason)


def clear(key: str | None = None) -> None:
    """Forget the back-off of `key` (all keys when None): it answered, or a test starts afresh."""
    with _lock:
        if key is None:
            _until.clear()
        else:
            _until.pop(key, None)
