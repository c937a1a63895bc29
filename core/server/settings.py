"""Server settings, read from the environment so every uvicorn worker builds the same app.

`headwater server` turns its options into these variables before it starts the workers:

- HEADWATER_SERVER_STORE: the SQL store (default HEADWATER_URI, else the SQLite default)
- HEADWATER_SERVER_BLOBS: where uploaded blobs live (default HEADWATER_BLOB_URI, else
  $HEADWATER_HOME/blobs)
- HEADWATER_TOKEN (read-write), HEADWATER_READ_TOKEN (read-only), HEADWATER_TOKEN_FILE (one token
  a line: `TOKEN`, `read-write TOKEN` or `read-only TOKEN`; `#` starts a comment). With none of
  them set, the API is open (fine on one machine behind loopback, not for a team).
- HEADWATER_SERVER_MAX_BODY_MB (default 64): the largest JSON request; blobs stream and are
  bounded by HEADWATER_SERVER_MAX_BLOB_GB (default 1024).
- HEADWATER_OPENLINEAGE_URL: emit every run received as OpenLineage (see headwater.openlineage).
- HEADWATER_SERVER_BIND: host:port this server listens on (for the OpenLineage loop guard).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from headwater import config
from headwater.errors import InvalidInput

Scope = Literal["read", "write"]


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    # Unlike a client's settings, a server refuses a malformed limit at start: it is configured once.
    raw = config.raw(name, env) or ""
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be more than 0")
    return value


def _check_token(token: str, where: str) -> str:
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise InvalidInput(f"a token in {where} is empty or holds spaces or control characters")
    return token


def read_token_file(path: str | os.PathLike[str]) -> dict[str, Scope]:
    """Tokens of a token file: `TOKEN` or `read-write TOKEN` (read-write), `read-only TOKEN`."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise InvalidInput(f"cannot read the token file {os.fspath(path)!r}: {err.strerror or err}") from None
    tokens: dict[str, Scope] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{os.fspath(path)} line {number}"
        if len(words) == 1:
            tokens[_check_token(words[0], where)] = "write"
        elif len(words) == 2 and words[0] in ("read-write", "read-only"):
            tokens[_check_token(words[1], where)] = "write" if words[0] == "read-write" else "read"
        else:
            # Never echo the line: it holds a secret.
            raise InvalidInput(f"{where}: expected `TOKEN`, `read-write TOKEN` or `read-only TOKEN`")
    return tokens


@dataclass(frozen=True)
class Settings:
    store_uri: str
    blob_uri: str
    tokens: dict[str, Scope] = field(default_factory=dict, repr=False)  # never printed
    max_body: int = 64 << 20
    max_blob: int = 1024 << 30
    openlineage_url: str | None = None
    bind: str | None = None
    gc_grace: float = 86400.0  # seconds: a younger blob is not deleted
    presign: bool = True  # an s3:// blob store hands out presigned URLs (headwater.server.direct)
    presign_expiry: float = 900.0  # seconds a presigned URL works

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        store = config.get("HEADWATER_SERVER_STORE", env)
        if store.split(":", 1)[0].lower() in ("http", "https"):
            raise InvalidInput(
                f"the server needs a database, not another server ({store}): "
                "give --store sqlite:///PATH or postgresql://..."
            )
        tokens: dict[str, Scope] = {}
        token_file = config.get("HEADWATER_TOKEN_FILE", env)
        if token_file:
            tokens.update(read_token_file(token_file))
        pairs: tuple[tuple[str, Scope], ...] = (("HEADWATER_READ_TOKEN", "read"), ("HEADWATER_TOKEN", "write"))
        for name, scope in pairs:
            value = config.get(name, env)
            if value:
                tokens[_check_token(value, name)] = scope
        return cls(
            store_uri=store,
            blob_uri=config.get("HEADWATER_SERVER_BLOBS", env),
            tokens=tokens,
            max_body=int(_number(env, "HEADWATER_SERVER_MAX_BODY_MB", 64) * (1 << 20)),
            max_blob=int(_number(env, "HEADWATER_SERVER_MAX_BLOB_GB", 1024) * (1 << 30)),
            openlineage_url=config.get("HEADWATER_OPENLINEAGE_URL", env) or None,
            bind=config.get("HEADWATER_SERVER_BIND", env) or None,
            gc_grace=config.get("HEADWATER_GC_GRACE", env),
            presign=config.get("HEADWATER_BLOB_PRESIGN", env),
            presign_expiry=config.get("HEADWATER_BLOB_PRESIGN_EXPIRY", env),
        )
