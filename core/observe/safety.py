"""Never raise into a pipeline: an error in headwater's own work is one warning line, once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

log = logging.getLogger("headwater")
T = TypeVar("T")

# Lines already logged by this process: a failure that repeats on every task (a broken setting,
# a backend down) would otherwise fill the orchestrator's logs with one line per task.
_warned: set[str] = set()
_lock = threading.Lock()


def one_line(err: BaseException) -> str:
    """`Type: first line of the message`: an exception fit for one log line."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def error_text(error: Any, limit: int = 4000) -> str | None:
    """A run's error as recorded: `Type: message` for an exception, else its text, cut at `limit`."""
    if error is None:
        return None
    text = f"{type(error).__name__}: {error}".rstrip(": ") if isinstance(error, BaseException) else str(error)
    return text[:limit]


def short(value: Any, limit: int = 120) -> str:
    """`str(value)` cut to fit a log line."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def warn_once(line: str) -> None:
    """Log `line` as a warning unless this process already did."""
    with _lock:
        if line in _warned:
            return
        _warned.add(line)
    log.warning(line)


def guard(
    what: str,
    func: Callable[..., T],
    *args: Any,
    default: T | None = None,
    outcome: str = "not recorded",
    **kwargs: Any,
) -> T | None:
    """`func(*args, **kwargs)`, or `default` when it raises: one warning line `headwater: <what>
    <outcome>: <error>` per process. `what` names the orchestrator and the event."""
    try:
        return func(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the whole point: never break the pipeline
        warn_once(f"headwater: {what} {outcome}: {one_line(err)}")
        return default


@contextmanager
def guarding(what: str, outcome: str = "not recorded") -> Iterator[None]:
    """`guard` for a block of statements."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - never break the pipeline
        warn_once(f"headwater: {what} {outcome}: {one_line(err)}")
