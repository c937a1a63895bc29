"""What an adapter remembers between an orchestrator's hooks, in one process.

Every structure here is lock-guarded (orchestrators call hooks from several threads) and the maps
are bounded: a run that never reports its end is forgotten, oldest first, instead of growing the
memory of a long-lived scheduler or daemon.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
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
