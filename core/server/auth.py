"""Bearer tokens: read-only tokens read, read-write tokens also write. No token set: open API.

Tokens are compared in constant time against every configured token, and never logged,
echoed in an error, or put in a URL.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from headwater.server.settings import Scope

bearer = HTTPBearer(
    auto_error=False,
    description="A read-only or read-write token (HEADWATER_TOKEN on the client).",
)


class AuthError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def granted_scope(tokens: dict[str, Scope], presented: str) -> Scope | None:
    found: Scope | None = None
    given = presented.encode()
    for token, scope in tokens.items():
        # Every token is compared, so the time taken says nothing about which one nearly matched.
        if hmac.compare_digest(token.encode(), given) and found != "write":
            found = scope
    return found


def require(scope: Scope) -> Callable[..., Awaitable[None]]:
    # Async: FastAPI runs a plain function dependency in its thread pool, a hop per request for a
    # few comparisons.
    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        tokens: dict[str, Scope] = request.app.state.backend.settings.tokens
        if not tokens:
            return
        if credentials is None or not credentials.credentials:
            raise AuthError(
                401,
                "Unauthorized",
                "this server needs a token: send `Authorization: Bearer TOKEN` "
                "(set HEADWATER_TOKEN or HEADWATER_TOKEN_FILE on the client)",
            )
        granted = granted_scope(tokens, credentials.credentials)
        if granted is None:
            raise AuthError(401, "Unauthorized", "the token was not accepted by this server")
        if scope == "write" and granted != "write":
            raise AuthError(403, "Forbidden", "this token is read-only: recording needs a read-write token")

    return check
