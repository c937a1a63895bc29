"""The adapter toolkit: what every orchestrator adapter records through.

An adapter only translates its orchestrator's events; the plumbing is here, once:
- `observer_for` / `client_for`: one Observer and Client per (uri, home, token, pid);
- `Observer.batch()`: one hook's events, hashed and delivered within the time budget
  (HEADWATER_TIMEOUT_S), the rest kept in the durable outbox, never raising;
- `guard` / `guarding`: headwater's own work that must never raise into the pipeline (one
  warning line per failure, once per process);
- `locate` / `find`: what a task value, path, URI, fsspec file, UPath or ObjectStoragePath names;
- `summarize_params`: parameters as a small JSON-safe summary;
- `code_identity` / `function_code`: the file, its digest and the git commit a run ran;
- `utc`: an orchestrator's times in UTC.

Nothing here may break or stall a pipeline. Outputs are recorded as references to where the
orchestrator wrote them (nothing is copied), inputs as the exact version read, by digest. Content
that cannot be read in time is recorded honestly as `unverified:<run id>`, never invented.
"""

from headwater.observe.batch import Batch, Observer
from headwater.observe.clients import client_for, forget_clients, observer_for
from headwater.observe.code import code_identity, function_code
from headwater.observe.safety import guard, guarding, one_line, short, warn_once
from headwater.observe.locations import Location, VersionRef, exists, find, locate, location_name, readable_uri
from headwater.observe.params import summarize, summarize_params
from headwater.observe.when import utc

__all__ = [
    "Batch", "Location", "Observer", "VersionRef", "client_for", "code_identity", "exists", "find", "forget_clients",
    "function_code", "guard", "guarding", "locate", "location_name", "observer_for", "one_line",
    "readable_uri", "short", "summarize", "summarize_params", "utc", "warn_once",
]
