"""How the server answers errors: every 4xx/5xx is `{"error": <class>, "message": <one line>}`,
declared as the Error schema in the OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from headwater.errors import HeadwaterError, status_of
from headwater.server.auth import AuthError
from headwater.server.common import UnsupportedMediaType
from headwater.server.limits import BodyTooLarge

log = logging.getLogger("headwater.server")


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _error(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": _one_line(message)}, status_code=status, headers=headers)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for item in err.errors():
        if item.get("type") == "json_invalid":
            reason = (item.get("ctx") or {}).get("error", "")
            return f"the body is not valid JSON: {reason}".rstrip(": ")
    for item in err.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        reason = (item.get("ctx") or {}).get("error")  # a headwater check's own sentence
        parts.append(f"{where}: {reason if reason is not None else item.get('msg', 'invalid')}")
    more = len(err.errors()) - 3
    return "invalid request: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HeadwaterError)
    async def headwater_error(request: Request, err: HeadwaterError) -> JSONResponse:
        status, error = (413, "InvalidInput") if isinstance(err, BodyTooLarge) else status_of(err)
        if status >= 500:
            log.warning("headwater: %s %s: %s", request.method, request.url.path, _one_line(err))
        return _error(status, error, str(err))

    @app.exception_handler(UnsupportedMediaType)
    async def unsupported_media_type(request: Request, err: UnsupportedMediaType) -> JSONResponse:
        return _error(415, "InvalidInput", f"the body must be JSON (Content-Type: application/json), not {err}")

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, err: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return _error(err.status, err.error, err.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, "InvalidInput", _validation_message(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else "HTTP error"
        if err.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        error = "InvalidInput" if err.status_code in (400, 413) else "HTTPError"
        return _error(err.status_code, error, message, getattr(err, "headers", None))

    @app.exception_handler(OverflowError)
    async def overflow_error(request: Request, err: OverflowError) -> JSONResponse:
        return _error(400, "InvalidInput", f"a value is out of range: {_first_line(err)}")

    @app.exception_handler(UnicodeError)
    async def unicode_error(request: Request, err: UnicodeError) -> JSONResponse:
        return _error(400, "InvalidInput", "text must be valid Unicode (no lone surrogates)")

    @app.exception_handler(RecursionError)
    async def recursion_error(request: Request, err: RecursionError) -> JSONResponse:
        return _error(400, "InvalidInput", "the request is nested too deeply")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        # A bug, not the request's fault: one line for the client (which retries it as
        # Unavailable); the traceback goes to the server's log once, where uvicorn writes it.
        return _error(
            500, "Internal", f"the server failed on {request.method} {request.url.path}: {type(err).__name__}"
        )


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def add_error_schema(app: FastAPI) -> None:
    """Declare the Error body every 4xx/5xx answer carries, in the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {
                    "type": "string",
                    "description": "NotFound, InvalidRef, InvalidInput, Conflict, Unavailable, ...",
                },
                "message": {"type": "string", "description": "one line a user can act on"},
            },
        }
        schema["components"].setdefault("securitySchemes", {})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
