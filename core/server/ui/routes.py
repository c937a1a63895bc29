"""The UI's routes: pages at `/` and `/ui/...`, the graph's JSON, the login page, the API docs.

Deep links are query parameters (artifact names are URIs): `/ui/artifact?name=`,
`/ui/version?ref=`, `/ui/run?id=`, `/ui/lineage?ref=&direction=&depth=`, `/ui/diff?left=&right=`,
`/ui/impact?ref=|path=|digest=`. With tokens configured, a page needs a read-only token or better,
given once on the login page and kept in an HttpOnly cookie: never in a URL or a log.
"""

from __future__ import annotations

import logging
import shlex
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope  # the server settings have a Scope too

from headwater import __version__, render
from headwater.api import Client
from headwater.errors import HeadwaterError, status_of
from headwater.server.auth import granted_scope
from headwater.server.settings import Scope
from headwater.server.ui import views

log = logging.getLogger("headwater.server")

STATIC = Path(__file__).resolve().parent.parent / "static"
TEMPLATES = Path(__file__).resolve().parent / "templates"
COOKIE = "headwater_token"

# Nothing from another host, no inline script: user-supplied strings can never run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI and ReDoc set styles inline and ReDoc starts a worker from a blob: still same-host only.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)


def _query(value: object) -> str:
    """A value for a query parameter: `/`, `:` and `@` stay readable, `&`, `#`, `+` are encoded."""
    return urllib.parse.quote(str(value), safe="/:@")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = _query
    # the CLI's own formats, so a page and `headwater show` print a time, size or digest alike
    env.filters["size"] = render.fmt_size
    env.filters["when"] = render.fmt_time
    env.filters["short"] = render.short_digest
    env.filters["json"] = render.to_json
    env.filters["shell"] = shlex.join  # commands shown for copying: a name is never shell syntax
    env.filters["py"] = repr
    env.globals["version"] = __version__
    return env


class SecurityHeaders:
    """CSP and friends on every answer (the API's too: a JSON body must never be run as a page).

    Plain ASGI, not BaseHTTPMiddleware: blob uploads and downloads stream through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = (DOCS_CSP if scope.get("path") in ("/docs", "/redoc") else CSP).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy.decode())
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _https(request: Request) -> bool:
    """Served over HTTPS, here or at the TLS proxy in front (then the cookie is Secure)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never `//host` or `scheme:` (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def add_ui(
    app: FastAPI,
    client: Callable[[], Client],
    tokens: Callable[[], dict[str, Scope]] = dict,
    *,
    api_docs: bool = True,
) -> None:
    """Serve the UI on `app`, reading through `client()`; `tokens()`: the server's tokens;
    `api_docs`: also the API's Swagger UI and ReDoc pages, from the package's own assets."""
    env = _environment()
    app.add_middleware(SecurityHeaders)
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("nav", "")
        context["auth"] = bool(tokens())
        html = env.get_template(template).render(request_path=request.url.path, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def allowed(request: Request) -> bool:
        configured = tokens()
        if not configured:
            return True
        presented = request.cookies.get(COOKIE, "")
        header = request.headers.get("authorization", "")
        if not presented and header.lower().startswith("bearer "):
            presented = header[7:].strip()
        return bool(presented) and granted_scope(configured, presented) is not None

    def login_redirect(request: Request) -> RedirectResponse:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/login?next={_query(here)}", status_code=303)

    async def page(request: Request, template: str, build: Callable[..., dict[str, Any]], *args: Any) -> Response:
        if not allowed(request):
            return login_redirect(request)
        try:
            context = await run_in_threadpool(build, client(), *args)
        except HeadwaterError as err:
            status, error = status_of(err)
            return render(request, "error.html", status, error=error, message=str(err))
        return render(request, template, **context)

    def arg(request: Request, name: str, default: str | None = None) -> str | None:
        value = request.query_params.get(name, default)
        return value.strip() if isinstance(value, str) and value.strip() else default

    @app.get("/", include_in_schema=False)
    async def artifacts_page(request: Request) -> Response:
        return await page(
            request,
            "artifacts.html",
            views.artifacts_view,
            arg(request, "q"),
            arg(request, "type"),
            arg(request, "tag"),
            arg(request, "sort", "updated"),
            arg(request, "page", "1"),
        )

    @app.get("/ui/artifact", include_in_schema=False)
    async def artifact_page(request: Request) -> Response:
        return await page(
            request,
            "artifact.html",
            views.artifact_view,
            arg(request, "name"),
            arg(request, "alias"),
            arg(request, "at"),
        )

    @app.get("/ui/version", include_in_schema=False)
    async def version_page(request: Request) -> Response:
        return await page(request, "version.html", views.version_view, arg(request, "ref"))

    @app.get("/ui/run", include_in_schema=False)
    async def run_page(request: Request) -> Response:
        return await page(request, "run.html", views.run_view, arg(request, "id"))

    @app.get("/ui/runs", include_in_schema=False)
    async def runs_page(request: Request) -> Response:
        return await page(
            request,
            "runs.html",
            views.runs_view,
            arg(request, "job"),
            arg(request, "orchestrator"),
            arg(request, "status"),
        )

    @app.get("/ui/lineage", include_in_schema=False)
    async def lineage_page(request: Request) -> Response:
        return await page(
            request,
            "lineage.html",
            views.lineage_view,
            arg(request, "ref"),
            arg(request, "direction", "both"),
            arg(request, "depth"),
        )

    @app.get("/ui/diff", include_in_schema=False)
    async def diff_page(request: Request) -> Response:
        return await page(request, "diff.html", views.diff_view, arg(request, "left"), arg(request, "right"))

    @app.get("/ui/impact", include_in_schema=False)
    async def impact_page(request: Request) -> Response:
        return await page(
            request,
            "impact.html",
            views.impact_view,
            arg(request, "ref"),
            arg(request, "path"),
            arg(request, "digest"),
        )

    @app.get("/ui/graph.json", include_in_schema=False)
    async def graph_json(request: Request) -> Response:
        """The graph the lineage page draws (`ref`, `direction`, `depth`; or a run's neighbours: `run`)."""
        if not allowed(request):
            return JSONResponse({"error": "Unauthorized", "message": "sign in with a token first"}, status_code=401)
        try:
            payload = await run_in_threadpool(
                views.graph_json,
                client(),
                arg(request, "ref"),
                arg(request, "run"),
                arg(request, "direction", "both"),
                arg(request, "depth"),
            )
        except HeadwaterError as err:
            status, error = status_of(err)
            return JSONResponse({"error": error, "message": " ".join(str(err).split())}, status_code=status)
        return JSONResponse(payload, headers={"Cache-Control": "no-store"})

    @app.get("/ui/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        if not tokens():
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        return render(request, "login.html", 401, next=_safe_next(request.query_params.get("next")), failed=False)

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        try:
            form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:
            return render(request, "login.html", 400, next="/", failed=True)
        token = (form.get("token") or [""])[0].strip()
        target = _safe_next((form.get("next") or ["/"])[0])
        configured = tokens()
        if configured and (not token or granted_scope(configured, token) is None):
            log.info("headwater: a UI sign-in was refused")  # the token itself is never logged
            return render(request, "login.html", 401, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        if configured:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=_https(request), path="/")
        return response

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        response = RedirectResponse("/ui/login" if tokens() else "/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    if not api_docs:
        return

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(env.get_template("swagger.html").render())

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(env.get_template("redoc.html").render())


def create_ui_app(client: Client) -> FastAPI:
    """The UI alone, for one client's store (`headwater ui`): open, on loopback."""
    app = FastAPI(title="headwater UI", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    add_ui(app, lambda: client, api_docs=False)
    # Open on loopback: only a browser that asked for this machine by name gets an answer, so
    # a web page that rebinds its own host name to 127.0.0.1 cannot read the store through it.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    return app
