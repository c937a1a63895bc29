"""Headwater's work kept off an orchestrator's own threads: its event loop, its scheduler loop."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any


def in_event_loop() -> bool:
    """True in a thread running an asyncio event loop (an async engine awaits what hooks return)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:  # never imported: no loop runs (and a task need not pay for importing it)
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Background:
    """One worker thread per process, for hooks that run in an orchestrator's loop (a scheduler):
    the loop never waits for headwater. Threads do not survive a fork: a child makes its own."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, func: Callable[..., None], *args: Any) -> None:
        """Run `func(*args)` in the worker; `func` must not raise (wrap it in `guard`)."""
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater")
                self._pid = os.getpid()
                self._pending.clear()
            future = self._executor.submit(func, *args)
            self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for what was submitted; True when nothing is left."""
        with self._lock:
            pending = list(self._pending)
        _, not_done = wait(pending, timeout=timeout)
        return not not_done
