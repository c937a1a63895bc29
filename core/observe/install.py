"""An orchestrator's methods wrapped where it has no hook: once per process, only on the versions
verified, with headwater's event before the original method, which always runs unchanged."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from headwater.observe.patch import version_tuple, wrap_methods
from headwater.observe.safety import one_line

log = logging.getLogger("headwater")

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]
Target = tuple[type, str, bool, Wrap]  # (class, method name, is a coroutine function, wrap)


class Patches:
    """The methods of one orchestrator that headwater wraps, installed together or not at all."""

    def __init__(
        self,
        orchestrator: str,
        what: str,
        version: Callable[[], str],
        supported: tuple[tuple[int, int], tuple[int, int]],
        targets: Callable[[], Sequence[Target]],
        params: Sequence[str] | Mapping[str, Sequence[str]],
        otherwise: str,
    ) -> None:
        """`what` names the feature, `version()` the `orchestrator`'s installed version, `supported`
        the verified range [from, to), `targets()` the methods (imported only when installing),
        `params` their parameters (or each method's, by name), `otherwise` what still works when
        they cannot be wrapped."""
        self.orchestrator = orchestrator
        self.what = what
        self.version = version
        self.supported = supported
        self.targets = targets
        self.params = params
        self.otherwise = otherwise
        self._lock = threading.Lock()
        self._installed: bool | None = None  # None: not tried yet

    @property
    def installed(self) -> bool:
        return bool(self._installed)

    def install(self) -> bool:
        """Wrap every target (once per process); False, with one warning line, when the installed
        version is outside the verified range or a method changed."""
        with self._lock:
            if self._installed is not None:
                return self._installed
            self._installed = False
            try:
                text = self.version()
                (low, high) = self.supported
                if not low <= version_tuple(text) < high:
                    last = f"{high[0]}.{high[1] - 1}" if high[1] else f"{high[0] - 1}.x"
                    first = f"{low[0]}.{low[1]}"
                    verified = first if first == last else f"{first}-{last}"
                    raise RuntimeError(f"{self.orchestrator} {text} is not in the verified range {verified}")
                wrap_methods(self.targets(), self.params)
                self._installed = True
            except Exception as err:  # noqa: BLE001 - the orchestrator runs on, unwrapped
                log.warning("headwater: %s unavailable (%s); %s", self.what, one_line(err), self.otherwise)
            return self._installed


def calling_first(event: Callable[..., None]) -> Wrap:
    """A `wrap` for a method: `event(self, *args, **kwargs)` (which must never raise), then the
    original with the same arguments."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            event(self, *args, **kwargs)
            return original(self, *args, **kwargs)

        return method

    return wrap


def calling_after(event: Callable[..., None]) -> Wrap:
    """A `wrap` for a method: the original, then `event(self, *args, **kwargs)` (which must never
    raise) once it returned; the original's result or exception is the caller's."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(self, *args, **kwargs)
            event(self, *args, **kwargs)
            return result

        return method

    return wrap


def awaiting_first(event: Callable[..., None], wanted: Callable[..., bool]) -> Wrap:
    """A `wrap` for a coroutine method: when `wanted(self, ...)` (cheap, never raising), `event`
    runs in a worker thread, off the event loop and in a copy of this context; then the original."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if wanted(self, *args, **kwargs):
                await asyncio.to_thread(event, self, *args, **kwargs)
            return await original(self, *args, **kwargs)

        return method

    return wrap
