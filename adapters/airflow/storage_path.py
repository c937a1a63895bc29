"""`ObjectStoragePath.read_text/read_bytes/write_text/write_bytes` reported to hook lineage.

Airflow's `ObjectStoragePath` reports what a task reads and writes to the hook lineage collector
only through `open()` (its file wrapper reports each `read` and `write` call) and `copy()` /
`move()`. The four shortcuts users call most are inherited from universal_pathlib's `ProxyUPath`
and go straight to the wrapped UPath: Airflow records nothing for them (verified with the Task
SDK 1.3.2 of Airflow 3.3.2 and universal_pathlib 0.3.10).

So, in a task process, at the first task start with the `hooks` lineage source on, and only for
the Task SDK versions in SUPPORTED, headwater sets exactly these four methods on
`airflow.sdk.io.path.ObjectStoragePath` itself (ProxyUPath and its other subclasses keep theirs):

- `read_text(self, encoding, errors, newline)` and `read_bytes(self)`: once the inherited method
  returned, `get_hook_lineage_collector().add_input_asset(context=path, uri=str(path))`;
- `write_text(self, data, encoding, errors, newline)` and `write_bytes(self, data)`: likewise
  with `add_output_asset`.

These are the calls `open()`'s wrapper makes for a read and a write, so the collector (and every
reader of it: headwater, the OpenLineage provider) sees the same asset either way. The inherited
method always runs with the caller's arguments and its result or exception is the caller's; a
report that fails logs one warning line and is dropped. A call that raised reports nothing, as
`open()` of a missing file reports nothing.

Nothing is wrapped (one warning line) on other Task SDK versions, when a signature differs from
the above, or when ObjectStoragePath defines any of the four itself: that is how Airflow will
report them on its own, and then this module should be deleted.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from headwater.observe import guard, one_line, version_tuple, wrap_methods

log = logging.getLogger("headwater")

SUPPORTED = ((1, 3), (1, 4))  # Task SDK versions [from, to); 1.3 ships with Airflow 3.3
READS = {"read_text": ["self", "encoding", "errors", "newline"], "read_bytes": ["self"]}
WRITES = {"write_text": ["self", "data", "encoding", "errors", "newline"], "write_bytes": ["self", "data"]}

_lock = threading.Lock()
_installed: bool | None = None  # None: not tried in this process yet


def install() -> bool:
    """Wrap the four methods (once per process); False, with one warning line, where unverified."""
    global _installed
    with _lock:
        if _installed is None:
            _installed = False
            try:
                _wrap()
                _installed = True
            except Exception as err:  # noqa: BLE001 - never stop a task over its lineage
                log.warning(
                    "headwater: ObjectStoragePath.read_text/write_text/read_bytes/write_bytes are not "
                    "recorded (%s); open(), copy() and move() still are",
                    one_line(err),
                )
        return _installed


def _wrap() -> None:
    import airflow.sdk
    from airflow.sdk.io.path import ObjectStoragePath

    version = version_tuple(airflow.sdk.__version__)
    if not SUPPORTED[0] <= version < SUPPORTED[1]:
        raise RuntimeError(f"Task SDK {airflow.sdk.__version__} is not in the verified range 1.3")
    own = sorted(set(vars(ObjectStoragePath)) & {*READS, *WRITES})
    if own:
        raise RuntimeError(f"ObjectStoragePath defines {', '.join(own)} itself")
    wrap_methods(
        [(ObjectStoragePath, name, False, _reporting(name, "input")) for name in READS]
        + [(ObjectStoragePath, name, False, _reporting(name, "output")) for name in WRITES],
        {**READS, **WRITES},
    )


def _reporting(name: str, side: str) -> Any:
    def wrap(original: Any) -> Any:
        @functools.wraps(original)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            guard(f"airflow ObjectStoragePath.{name}", _report, self, side)
            return result

        return method

    return wrap


def _report(path: Any, side: str) -> None:
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    add = collector.add_input_asset if side == "input" else collector.add_output_asset
    add(context=path, uri=str(path))
