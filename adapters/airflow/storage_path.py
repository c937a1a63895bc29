"""`ObjectStoragePath.read_text/read_bytes/write_text/write_bytes` reported to hook lineage.

Airflow reports an `ObjectStoragePath` read or write only through `open()`, `copy()` and `move()`;
these four shortcuts come from universal_pathlib's `ProxyUPath` and report nothing (Task SDK 1.3.2,
universal_pathlib 0.3.10). Each wrapper, set on `ObjectStoragePath` itself, makes the call
`open()`'s wrapper makes, so every reader of the collector sees it (docs/airflow.md, "What
headwater changes in Airflow"). When Airflow defines them itself, nothing is wrapped.
"""

from __future__ import annotations

from typing import Any

from headwater.observe import guard
from headwater.observe.install import Patches, Target, calling_after

READS = {"read_text": ["self", "encoding", "errors", "newline"], "read_bytes": ["self"]}
WRITES = {"write_text": ["self", "data", "encoding", "errors", "newline"], "write_bytes": ["self", "data"]}


def _version() -> str:
    import airflow.sdk

    return str(airflow.sdk.__version__)


def _targets() -> list[Target]:
    from airflow.sdk.io.path import ObjectStoragePath

    own = sorted(set(vars(ObjectStoragePath)) & {*READS, *WRITES})
    if own:
        raise RuntimeError(f"ObjectStoragePath defines {', '.join(own)} itself")
    return [(ObjectStoragePath, name, False, calling_after(_reporting(name, "input"))) for name in READS] + [
        (ObjectStoragePath, name, False, calling_after(_reporting(name, "output"))) for name in WRITES
    ]


patches = Patches(
    "Task SDK",
    "ObjectStoragePath.read_text/write_text/read_bytes/write_bytes lineage",
    _version,
    ((1, 3), (1, 4)),  # 1.3 ships with Airflow 3.3
    _targets,
    {**READS, **WRITES},
    "open(), copy() and move() are still recorded",
)


def install() -> bool:
    """Wrap the four methods (once per process); False, with one warning line, where unverified."""
    return patches.install()


def _reporting(name: str, side: str) -> Any:
    def event(path: Any, *args: Any, **kwargs: Any) -> None:
        guard(f"airflow ObjectStoragePath.{name}", _report, path, side)

    return event


def _report(path: Any, side: str) -> None:
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    add = collector.add_input_asset if side == "input" else collector.add_output_asset
    add(context=path, uri=str(path))
