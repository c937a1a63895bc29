"""A task's parameters as a small JSON-safe summary: what they were, never the data itself."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from headwater.api import Output
from headwater.models import Version
from headwater.observe.locations import MAX_DEPTH, locate
from headwater.refs import Ref


def summarize(value: Any, depth: int = 0) -> Any:
    """A small JSON-safe picture of a value: strings cut at 500 characters, 50 keys, 20 items,
    3 levels; objects by their type, never their repr (size, secrets)."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= 500 else value[:497] + "..."
    if isinstance(value, Enum):
        return summarize(value.value, depth)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value)
    if isinstance(value, Version):
        return value.ref
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Output):
        return {"name": value.name, "path": str(value.path)}
    if isinstance(value, (bytes, bytearray)):
        return f"<{type(value).__name__}: {len(value)} bytes>"
    if not isinstance(value, (dict, list, tuple, set, frozenset)) and locate(value) is not None:
        return str(value)
    if depth >= MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:200]: summarize(v, depth + 1) for k, v in items[:50]}
        if len(items) > 50:
            out["..."] = f"{len(items) - 50} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        listed = list(value) if not isinstance(value, (set, frozenset)) else sorted(value, key=repr)
        out_list = [summarize(v, depth + 1) for v in listed[:20]]
        if len(listed) > 20:
            out_list.append(f"... {len(listed) - 20} more")
        return out_list
    dump = getattr(value, "model_dump", None)  # pydantic models (secrets stay masked in JSON mode)
    if callable(dump) and not isinstance(value, type):
        try:
            return summarize(dump(mode="json"), depth + 1)
        except Exception:  # noqa: BLE001 - the type below says enough
            pass
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def summarize_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Each parameter summarized, by name."""
    return {str(k): summarize(v) for k, v in (params or {}).items()}
