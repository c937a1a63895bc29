"""Wrapping an orchestrator's own methods, where it offers no hook: verified first, all or none."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def version_tuple(text: str) -> tuple[int, int]:
    """(major, minor) of a version string: "3.9.1" -> (3, 9), "3.10.0rc1" -> (3, 10), "4.0a2" -> (4, 0)."""
    parts = text.split(".")
    # The minor's leading digits only: "0a2" is 0 (pre-release 2), not 2.
    return int(parts[0]), int("".join(itertools.takewhile(str.isdigit, parts[1])) or 0)


def wrap_methods(
    targets: Sequence[tuple[type, str, bool, Callable[[Any], Any]]],
    params: Sequence[str] | Mapping[str, Sequence[str]],
) -> None:
    """Replace each `cls.name` (a coroutine function when `is_async`) by `wrap(original)`.

    `params` are the parameters every method has, or each method's by name. A method `cls`
    inherits is wrapped on `cls` itself, so its base class and the base's other subclasses keep
    the original. Every method is checked before any is replaced: one whose parameters are not
    the expected ones, or that changed between sync and async, raises RuntimeError and nothing is
    wrapped (an orchestrator release that changed it was never verified). The original stays
    reachable as the wrapper's `__headwater_original__`."""
    for cls, name, is_async, _ in targets:
        method = inspect.getattr_static(cls, name, None)
        expected = params[name] if isinstance(params, Mapping) else params
        found = list(inspect.signature(method).parameters) if callable(method) else []
        if found != list(expected) or inspect.iscoroutinefunction(method) != is_async:
            raise RuntimeError(f"{cls.__module__}.{cls.__name__}.{name} has changed")
    for cls, name, _, wrap in targets:
        original = inspect.getattr_static(cls, name)
        wrapper = wrap(original)
        wrapper.__headwater_original__ = original
        setattr(cls, name, wrapper)
