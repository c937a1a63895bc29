"""Settings read from the environment, each with the default docs/architecture.md gives."""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT_TIMEOUT_S = 10.0


def headwater_home() -> Path:
    """`$HEADWATER_HOME`, default `~/.headwater`; absolute so a later chdir cannot move it."""
    raw = os.environ.get("HEADWATER_HOME") or "~/.headwater"
    return Path(raw).expanduser().absolute()


def timeout_s() -> float:
    """The time budget for slow work (`HEADWATER_TIMEOUT_S`, default 10 s)."""
    raw = os.environ.get("HEADWATER_TIMEOUT_S", "")
    try:
        value = float(raw)
    except ValueError:
        # A typo in an environment variable must not break the pipeline that set it.
        return _DEFAULT_TIMEOUT_S
    return value if value > 0 else _DEFAULT_TIMEOUT_S


def hash_threads() -> int:
    """Threads used for hashing: `HEADWATER_HASH_THREADS`, default min(4, usable CPUs).

    Always an explicit number: blake3's `AUTO` hangs in a child forked after hashing (docs/architecture.md).
    """
    raw = os.environ.get("HEADWATER_HASH_THREADS", "")
    if raw.strip().isdigit() and int(raw) > 0:
        return int(raw)
    try:
        # The affinity mask, not cpu_count(): a container limited to 2 CPUs reports the host's.
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def store_uri() -> str:
    """`$HEADWATER_URI`, default `sqlite:///$HEADWATER_HOME/headwater.db`."""
    return os.environ.get("HEADWATER_URI") or f"sqlite:///{headwater_home() / 'headwater.db'}"


def disabled() -> bool:
    """`HEADWATER_DISABLED=1` turns every adapter into a no-op."""
    return os.environ.get("HEADWATER_DISABLED", "").strip().lower() in {"1", "true", "yes", "on"}
