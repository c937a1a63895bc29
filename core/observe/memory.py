"""What an adapter remembers between an orchestrator's hooks, in one process.

Every structure here is lock-guarded (orchestrators call hooks from several threads) and the maps
are bounded: a run that never reports its end is forgotten, oldest first, instead of growing the
memory of a long-lived scheduler or daemon. Values read from outside (a saved settings block, the
environment) are cached here too, per process.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """A thread-safe map that forgets its oldest entries past `size` (runs that never ended)."""

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def _trim(self) -> None:
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            self._trim()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._data.get(key)

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._data.pop(key, None)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def items(self) -> list[tuple[K, V]]:
        with self._lock:
            return list(self._data.items())


class BoundedLists(Bounded[K, list[V]]):
    """A Bounded map of lists that grow one item at a time."""

    def append(self, key: K, item: V) -> None:
        with self._lock:
            self._data.setdefault(key, []).append(item)
            self._data.move_to_end(key)
            self._trim()


class Seen(Generic[K]):
    """What this process already did (a run it announced), so that it is done once."""

    def __init__(self) -> None:
        self._items: set[K] = set()
        self._lock = threading.Lock()

    def missing(self, keys: Iterable[K]) -> list[K]:
        """The keys not seen yet, in order (they are not marked: `add` them once done)."""
        with self._lock:
            return [key for key in keys if key not in self._items]

    def add(self, keys: Iterable[K]) -> None:
        with self._lock:
            self._items.update(keys)

    def discard(self, keys: Iterable[K]) -> None:
        with self._lock:
            self._items.difference_update(keys)


class PerProcess(Generic[V]):
    """A value loaded on first use in each process (never at import, never inherited through a
    fork); a failed load is raised again, without trying, for `retry_after` seconds."""

    def __init__(self, load: Callable[[], V], retry_after: float) -> None:
        self._load = load
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._value: tuple[int, V] | None = None  # (pid, value)
        self._error: BaseException | None = None
        self._failed_at = 0.0

    def get(self) -> V:
        loaded = self._value
        if loaded is not None and loaded[0] == os.getpid():
            return loaded[1]
        with self._lock:
            if self._value is not None and self._value[0] == os.getpid():
                return self._value[1]
            if self._error is not None and time.monotonic() - self._failed_at < self._retry_after:
                raise self._error
            try:
                value = self._load()
            except Exception as err:
                self._error, self._failed_at = err, time.monotonic()
                raise
            self._value, self._error = (os.getpid(), value), None
            return value


class EnvKeyed(Generic[V]):
    """A value read again only when one of the named environment variables changes. Looked up
    by name: scanning the whole environment on every hook costs more than most readings."""

    def __init__(self, names: Iterable[str], read: Callable[[], V]) -> None:
        self._names = tuple(names)
        self._read = read
        self._cache: tuple[tuple[str | None, ...], V] | None = None

    def get(self) -> V:
        key = tuple(map(os.environ.get, self._names))
        cached = self._cache
        if cached is None or cached[0] != key:
            cached = self._cache = (key, self._read())
        return cached[1]
