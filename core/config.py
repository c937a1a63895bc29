"""The one registry of headwater's settings: every `HEADWATER_*` variable, its type, default and
meaning. Code reads settings through `get()` (or the helpers below), never `os.environ`, so
`headwater config` and docs/configuration.md list exactly what is read.

A setting that is malformed falls back to its default rather than raising: a typo in an
environment variable must not break the pipeline that set it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["path", "uri", "float", "int", "bool", "duration", "text", "secret"]
Scope = Literal["every process", "tracking server", "OpenLineage"]
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Setting:
    """One `HEADWATER_*` variable."""

    name: str
    kind: Kind
    default: str  # as documented; computed defaults are described, e.g. "min(4, CPUs)"
    doc: str
    scope: Scope = "every process"
    airflow: str | None = None  # the key of airflow.cfg's [headwater] section that overrides it
    prefect: str | None = None  # the field of the Prefect HeadwaterTracker block that overrides it

    @property
    def secret(self) -> bool:
        return self.kind == "secret"


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "HEADWATER_HOME",
        "path",
        "~/.headwater",
        "The local folder: the SQLite store, the outbox, stored blobs, the stat and download caches.",
        airflow="home",
    ),
    Setting(
        "HEADWATER_URI",
        "uri",
        "sqlite:///$HEADWATER_HOME/headwater.db",
        "The tracking backend: sqlite:///PATH, postgresql://USER@HOST:PORT/DB, or a tracking server "
        "http(s)://HOST:PORT.",
        airflow="uri",
        prefect="uri",
    ),
    Setting(
        "HEADWATER_BLOB_URI",
        "uri",
        "$HEADWATER_HOME/blobs",
        "Where stored bytes go: a folder or any fsspec URL (s3://bucket/prefix). With a shared "
        "PostgreSQL, make it shared too.",
    ),
    Setting(
        "HEADWATER_TIMEOUT_S",
        "float",
        "10",
        "The time budget of one write in seconds: hashing in adapters, delivery to the backend.",
        airflow="timeout",
    ),
    Setting(
        "HEADWATER_DELIVERY",
        "text",
        "inline",
        "How an orchestrator adapter delivers a task's events: `inline` (within the task, inside the time "
        "budget) or `background` (the task only makes them durable in the outbox; a detached deliverer "
        "process per outbox delivers them, and reads in a process with this setting deliver first). "
        "POSIX only: on Windows, `background` is `inline`.",
    ),
    Setting("HEADWATER_HASH_THREADS", "int", "min(4, CPUs)", "Threads that hash files."),
    Setting(
        "HEADWATER_GC_GRACE",
        "duration",
        "24h",
        "`headwater gc` keeps a blob stored or re-stored this recently (and removes blobs/tmp files "
        "older than it): 90s, 30m, 24h, 7d or seconds. The tracking server refuses to delete a "
        "younger blob.",
    ),
    Setting(
        "HEADWATER_FOLLOW_LINKS",
        "bool",
        "false",
        "1, true, yes or on: store what a symbolic link inside a logged folder points to even "
        "outside that folder (refused otherwise).",
    ),
    Setting(
        "HEADWATER_DISABLED",
        "bool",
        "false",
        "1, true, yes or on: every orchestrator adapter records nothing.",
        airflow="disabled",
    ),
    Setting(
        "HEADWATER_TOKEN",
        "secret",
        "",
        "A client's bearer token for an http(s):// tracking server; on the server, a read-write token.",
        prefect="token",
    ),
    Setting(
        "HEADWATER_TOKEN_FILE",
        "path",
        "",
        "A file holding the token (a client: its first line; the server: one token a line, "
        "`read-write TOKEN` or `read-only TOKEN`).",
    ),
    Setting(
        "HEADWATER_READ_TOKEN", "secret", "", "A read-only token the tracking server accepts.", scope="tracking server"
    ),
    Setting(
        "HEADWATER_SERVER_STORE",
        "uri",
        "$HEADWATER_URI",
        "The tracking server's database (`headwater server --store`).",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_SERVER_BLOBS",
        "uri",
        "$HEADWATER_BLOB_URI",
        "Where the tracking server keeps uploaded blobs (`headwater server --blobs`).",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_SERVER_MAX_BODY_MB",
        "float",
        "64",
        "The largest JSON request the server accepts.",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_SERVER_MAX_BLOB_GB",
        "float",
        "1024",
        "The largest blob upload the server accepts.",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_BLOB_PRESIGN",
        "bool",
        "true",
        "On an s3:// blob store, hand clients presigned URLs so blob bytes go straight to and from the "
        "bucket, not through the server (the server still hashes each upload before publishing it); "
        "false: every byte passes through the server. Other blob stores always pass through it.",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_BLOB_PRESIGN_EXPIRY",
        "duration",
        "15m",
        "How long a presigned blob URL works once handed out (a transfer started within it may finish "
        "after): 90s, 15m, 1h or seconds.",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_UI_MAX_NODES",
        "int",
        "5000",
        "The most versions and runs the web UI's lineage graph draws; a larger graph shows the hops "
        "nearest its version that fit, and says so.",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_SERVER_BIND",
        "text",
        "",
        "HOST:PORT the server listens on, set by `headwater server` for its workers (the OpenLineage "
        "loop guard reads it).",
        scope="tracking server",
    ),
    Setting(
        "HEADWATER_OPENLINEAGE_URL",
        "uri",
        "",
        "Also emit every run as OpenLineage RunEvents to this backend (Marquez, another collector).",
        scope="OpenLineage",
    ),
    Setting(
        "HEADWATER_OPENLINEAGE_API_KEY",
        "secret",
        "",
        "The API key sent with those OpenLineage events.",
        scope="OpenLineage",
    ),
    Setting(
        "HEADWATER_OL_NAMESPACE",
        "text",
        "headwater",
        "The OpenLineage namespace of datasets whose names are not URIs.",
        scope="OpenLineage",
    ),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def raw(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable as set (stripped), or None when unset or empty."""
    if name not in BY_NAME:
        raise KeyError(f"{name} is not a headwater setting (add it to headwater.config.SETTINGS)")
    value = (os.environ if env is None else env).get(name)
    value = value.strip() if value is not None else None
    return value or None


def get(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The setting's effective, typed value (its default when unset or malformed)."""
    return _READERS[name](env)


def effective(env: Mapping[str, str] | None = None) -> list[tuple[Setting, str, str]]:
    """(setting, value as shown, where it came from) for every setting; secrets are masked."""
    rows = []
    for setting in SETTINGS:
        given = raw(setting.name, env)
        value = get(setting.name, env)
        shown = "" if value in (None, "") else str(value).lower() if isinstance(value, bool) else str(value)
        if setting.secret and shown:
            shown = "****"
        elif setting.kind == "uri":
            shown = mask_uri(shown)
        rows.append((setting, shown, "environment" if given is not None else "default"))
    return rows


def mask_uri(uri: str) -> str:
    """`uri` fit to print or log: a password in it (`scheme://user:PASSWORD@host`) as ****."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:****@", uri)


# -- typed readers, one per setting ---------------------------------------------------------------


def headwater_home(env: Mapping[str, str] | None = None) -> Path:
    """`$HEADWATER_HOME`, default `~/.headwater`; absolute so a later chdir cannot move it."""
    return Path(raw("HEADWATER_HOME", env) or "~/.headwater").expanduser().absolute()


def store_uri(env: Mapping[str, str] | None = None) -> str:
    """`$HEADWATER_URI`, default `sqlite:///$HEADWATER_HOME/headwater.db`."""
    return raw("HEADWATER_URI", env) or f"sqlite:///{headwater_home(env) / 'headwater.db'}"


def blob_uri(env: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """`$HEADWATER_BLOB_URI`, default the `blobs` folder of `home` (else of HEADWATER_HOME)."""
    return raw("HEADWATER_BLOB_URI", env) or str((home or headwater_home(env)) / "blobs")


_DEFAULT_TIMEOUT_S = 10.0


def timeout_s(env: Mapping[str, str] | None = None) -> float:
    """The time budget for slow work (`HEADWATER_TIMEOUT_S`, default 10 s)."""
    return _positive(raw("HEADWATER_TIMEOUT_S", env), _DEFAULT_TIMEOUT_S)


def background_delivery(env: Mapping[str, str] | None = None) -> bool:
    """`HEADWATER_DELIVERY=background` (anything else, or Windows: inline)."""
    return (raw("HEADWATER_DELIVERY", env) or "").lower() == "background" and sys.platform != "win32"


def delivery(env: Mapping[str, str] | None = None) -> str:
    return "background" if background_delivery(env) else "inline"


def hash_threads(env: Mapping[str, str] | None = None) -> int:
    """Threads used for hashing: `HEADWATER_HASH_THREADS`, default min(4, usable CPUs).

    Always an explicit number: blake3's `AUTO` hangs in a child forked after hashing (docs/architecture.md).
    """
    given = raw("HEADWATER_HASH_THREADS", env) or ""
    if given.isdigit() and int(given) > 0:
        return int(given)
    try:
        # The affinity mask, not cpu_count(): a container limited to 2 CPUs reports the host's.
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def disabled(env: Mapping[str, str] | None = None) -> bool:
    """`HEADWATER_DISABLED=1` turns every adapter into a no-op."""
    return (raw("HEADWATER_DISABLED", env) or "").lower() in _TRUE


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DEFAULT_GC_GRACE_S = 86400.0


def duration_s(text: str) -> float:
    """Seconds in `text`: `90`, `90s`, `30m`, `24h`, `7d` (0 is allowed). Raises ValueError."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90s, 30m, 24h, 7d or a number of seconds")
    return float(match[1]) * _UNIT_S[match[2] or "s"]


def gc_grace_s(env: Mapping[str, str] | None = None) -> float:
    """`HEADWATER_GC_GRACE` in seconds, default 24 hours."""
    try:
        return duration_s(raw("HEADWATER_GC_GRACE", env) or "24h")
    except ValueError:
        return _DEFAULT_GC_GRACE_S


def follow_links(env: Mapping[str, str] | None = None) -> bool:
    """`HEADWATER_FOLLOW_LINKS=1` stores what links out of a logged folder point to."""
    return (raw("HEADWATER_FOLLOW_LINKS", env) or "").lower() in _TRUE


_FALSE = {"0", "false", "no", "off"}
_DEFAULT_PRESIGN_EXPIRY_S = 900.0


def blob_presign(env: Mapping[str, str] | None = None) -> bool:
    """`HEADWATER_BLOB_PRESIGN`, default on (a value neither true nor false keeps it on)."""
    return (raw("HEADWATER_BLOB_PRESIGN", env) or "").lower() not in _FALSE


def blob_presign_expiry_s(env: Mapping[str, str] | None = None) -> float:
    """`HEADWATER_BLOB_PRESIGN_EXPIRY` in seconds, default 15 minutes (0 or malformed: the default)."""
    try:
        return duration_s(raw("HEADWATER_BLOB_PRESIGN_EXPIRY", env) or "15m") or _DEFAULT_PRESIGN_EXPIRY_S
    except ValueError:
        return _DEFAULT_PRESIGN_EXPIRY_S


def _positive(given: str | None, default: float) -> float:
    try:
        value = float(given) if given else default
    except ValueError:
        return default
    return value if value > 0 else default


def ui_max_nodes(env: Mapping[str, str] | None = None) -> int:
    """`HEADWATER_UI_MAX_NODES`: a whole number of nodes, at least 1 (default 5,000)."""
    given = raw("HEADWATER_UI_MAX_NODES", env) or ""
    return int(given) if given.isdigit() and 0 < int(given) < 10**9 else 5000


def _text(name: str, default: str = "") -> Callable[[Mapping[str, str] | None], str]:
    return lambda env: raw(name, env) or default


def _number(name: str, default: float) -> Callable[[Mapping[str, str] | None], float]:
    return lambda env: _positive(raw(name, env), default)


_READERS: dict[str, Callable[[Mapping[str, str] | None], Any]] = {
    "HEADWATER_HOME": headwater_home,
    "HEADWATER_URI": store_uri,
    "HEADWATER_BLOB_URI": blob_uri,
    "HEADWATER_TIMEOUT_S": timeout_s,
    "HEADWATER_DELIVERY": delivery,
    "HEADWATER_HASH_THREADS": hash_threads,
    "HEADWATER_GC_GRACE": gc_grace_s,
    "HEADWATER_FOLLOW_LINKS": follow_links,
    "HEADWATER_DISABLED": disabled,
    "HEADWATER_TOKEN": _text("HEADWATER_TOKEN"),
    "HEADWATER_TOKEN_FILE": _text("HEADWATER_TOKEN_FILE"),
    "HEADWATER_READ_TOKEN": _text("HEADWATER_READ_TOKEN"),
    "HEADWATER_SERVER_STORE": lambda env: raw("HEADWATER_SERVER_STORE", env) or store_uri(env),
    "HEADWATER_SERVER_BLOBS": lambda env: raw("HEADWATER_SERVER_BLOBS", env) or blob_uri(env),
    "HEADWATER_SERVER_MAX_BODY_MB": _number("HEADWATER_SERVER_MAX_BODY_MB", 64),
    "HEADWATER_SERVER_MAX_BLOB_GB": _number("HEADWATER_SERVER_MAX_BLOB_GB", 1024),
    "HEADWATER_BLOB_PRESIGN": blob_presign,
    "HEADWATER_BLOB_PRESIGN_EXPIRY": blob_presign_expiry_s,
    "HEADWATER_UI_MAX_NODES": ui_max_nodes,
    "HEADWATER_SERVER_BIND": _text("HEADWATER_SERVER_BIND"),
    "HEADWATER_OPENLINEAGE_URL": _text("HEADWATER_OPENLINEAGE_URL"),
    "HEADWATER_OPENLINEAGE_API_KEY": _text("HEADWATER_OPENLINEAGE_API_KEY"),
    "HEADWATER_OL_NAMESPACE": _text("HEADWATER_OL_NAMESPACE", "headwater"),
}


def markdown_table() -> str:
    """The settings as docs/configuration.md shows them (a test keeps the two equal)."""
    lines = [
        "| variable | type | default | airflow.cfg `[headwater]` | Prefect block | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        cells = [
            f"`{s.name}`",
            s.kind,
            f"`{s.default}`" if s.default else "unset",
            f"`{s.airflow}`" if s.airflow else "",
            f"`{s.prefect}`" if s.prefect else "",
            (f"({s.scope}) " if s.scope != "every process" else "") + s.doc.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
