"""The adapter toolkit: what every orchestrator adapter records through.

An adapter only translates its orchestrator's events; the plumbing is here, once:
- `observer_for` / `client_for`: one Observer and Client per (uri, home, token, pid);
- `Observer.batch()`: one hook's events, hashed and delivered within the time budget
  (HEADWATER_TIMEOUT_S), the rest kept in the durable outbox, never raising;
- `guard` / `guarding`: headwater's own work that must never raise into the pipeline (one
  warning line per failure, once per process);
- `locate` / `find`: what a task value, path, URI, fsspec file, UPath or ObjectStoragePath names;
- `used_location` / `produced_locations`: what a task value names, recorded as inputs/outputs;
- `wrap_methods` / `version_tuple`: an orchestrator's methods wrapped where it has no hook;
- `summarize_params`: parameters as a small JSON-safe summary;
- `code_identity` / `function_code`: the file, its digest and the git commit a run ran;
- `Bounded` / `BoundedLists` / `Seen`: what an adapter remembers between hooks, bounded;
- `PerProcess` / `EnvKeyed`: a settings object loaded once per process, or again when the
  environment variables it comes from change;
- `Background` / `in_event_loop`: work kept off a scheduler's loop or an async engine's loop;
- `utc` / `now`: an orchestrator's times in UTC.

Nothing here may break or stall a pipeline. Outputs are recorded as references to where the
orchestrator wrote them (nothing is copied), inputs as the exact version read, by digest. Content
that cannot be read in time is recorded honestly as `unverified:<run id>`, never invented.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from headwater.observe.batch import Batch, Observer
    from headwater.observe.clients import client_for, forget_clients, observer_for
    from headwater.observe.code import code_identity, function_code
    from headwater.observe.locations import Location, VersionRef, exists, find, locate, location_name, readable_uri
    from headwater.observe.memory import Bounded, BoundedLists, EnvKeyed, PerProcess, Seen
    from headwater.observe.params import summarize, summarize_params
    from headwater.observe.patch import version_tuple, wrap_methods
    from headwater.observe.record import linkable, outputs_in, produced_locations, used_location
    from headwater.observe.safety import error_text, guard, guarding, one_line, short, warn_once
    from headwater.observe.threads import Background, in_event_loop
    from headwater.observe.when import now, utc

# Each name loads its module on first use (PEP 562): an orchestrator imports the adapter in every
# process (its scheduler, its parser), and a process that records nothing should pay for nothing.
_LAZY = {
    "Background": "threads",
    "Batch": "batch",
    "Bounded": "memory",
    "BoundedLists": "memory",
    "EnvKeyed": "memory",
    "Location": "locations",
    "Observer": "batch",
    "PerProcess": "memory",
    "Seen": "memory",
    "VersionRef": "locations",
    "client_for": "clients",
    "code_identity": "code",
    "error_text": "safety",
    "exists": "locations",
    "find": "locations",
    "forget_clients": "clients",
    "function_code": "code",
    "guard": "safety",
    "guarding": "safety",
    "in_event_loop": "threads",
    "linkable": "record",
    "locate": "locations",
    "location_name": "locations",
    "now": "when",
    "observer_for": "clients",
    "one_line": "safety",
    "outputs_in": "record",
    "produced_locations": "record",
    "readable_uri": "locations",
    "short": "safety",
    "summarize": "params",
    "summarize_params": "params",
    "used_location": "record",
    "utc": "when",
    "version_tuple": "patch",
    "warn_once": "safety",
    "wrap_methods": "patch",
}


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = [
    "Background",
    "Batch",
    "Bounded",
    "BoundedLists",
    "EnvKeyed",
    "Location",
    "Observer",
    "PerProcess",
    "Seen",
    "VersionRef",
    "client_for",
    "code_identity",
    "error_text",
    "exists",
    "find",
    "forget_clients",
    "function_code",
    "guard",
    "guarding",
    "in_event_loop",
    "linkable",
    "locate",
    "location_name",
    "now",
    "observer_for",
    "one_line",
    "outputs_in",
    "produced_locations",
    "readable_uri",
    "short",
    "summarize",
    "summarize_params",
    "used_location",
    "utc",
    "version_tuple",
    "warn_once",
    "wrap_methods",
]
