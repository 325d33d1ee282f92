"""The console's composition root: the services' client, the issuer, the sessions, the pages,
and the same HTTP edge as every service (allowed hosts, body limit, security headers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console.auth import SESSION_COOKIE, Issuer, Sessions, SignInError
from services.console.client import ServiceError, Services, SignedOutError
from services.console.i18n import N_
from services.console.pages import router
from services.console.settings import ConsoleSettings
from services.console.web import (
    PAGE_CSP,
    BadFormError,
    NotSignedInError,
    Page,
    Renderer,
    language_of,
    session_of,
    sign_in_redirect,
)
from shared.assets import missing, vendored
from shared.edge import Edge
from shared.http import install_request_context
from shared.logging import get_logger
from shared.tokens import TokenValidator

log = get_logger(__name__)

STATIC = Path(__file__).parent / "static"
#: What the pages load from the vendored assets (``make install``).
NEEDS = ("htmx.min.js",)
OWN_STATIC = {"console.css": "text/css"}
#: What each status is called on the error page.
PROBLEMS = {
    400: N_("This request is not understood."),
    403: N_("You may not see or do this."),
    419: N_("This form is not valid any more: reload the page and try again."),
    404: N_("This is not known (yet)."),
    409: N_("This cannot be done now."),
    410: N_("This case was erased."),
    422: N_("Something in this request is not right."),
    503: N_("A service does not answer now; try again shortly."),
}


def build(settings: ConsoleSettings) -> FastAPI:
    absent = missing(NEEDS, settings.assets_dir)
    if absent:
        raise SystemExit(
            f"cannot start: the console's scripts are not installed ({', '.join(absent)}):"
            " run `make install`, or set KRING_ASSETS_DIR"
        )
    services = Services(settings.service_urls(), timeout=settings.console_timeout_seconds)
    tokens = TokenValidator(settings.oidc())
    issuer = Issuer(settings, tokens)
    sessions = Sessions(idle_seconds=settings.console_idle_minutes * 60)
    renderer = Renderer()

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        log.info("service.starting", settings=settings.describe())
        yield
        await services.close()
        log.info("service.stopped")

    api = FastAPI(
        title="Kring console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    api.state.sessions = sessions

    def page(request: Request) -> Page:
        return Page(request, session_of(request, sessions), language_of(request))

    def problem_page(request: Request, status: int, detail: str | None) -> Response:
        response = renderer.render(
            page(request),
            "error.html",
            status,
            code=status,
            problem=PROBLEMS.get(status, N_("Something went wrong.")),
            detail=detail,
        )
        return response

    async def not_signed_in(request: Request, error: Exception) -> Response:
        return sign_in_redirect(request)

    async def signed_out(request: Request, error: Exception) -> Response:
        sessions.end(request.cookies.get(SESSION_COOKIE))
        return sign_in_redirect(request)

    async def bad_form(request: Request, error: Exception) -> Response:
        log.warning("console.form_refused", reason=str(error))
        return problem_page(request, 403, None)

    async def sign_in_failed(request: Request, error: Exception) -> Response:
        return renderer.render(
            page(request), "signed_out.html", 400, problem=None, detail=str(error)
        )

    async def service_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, ServiceError)
        return problem_page(request, error.status if error.status < 600 else 502, error.detail)

    async def invalid(request: Request, error: Exception) -> Response:
        return problem_page(request, 404, None)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if request.url.path.startswith("/health/"):
            return JSONResponse({"detail": error.detail}, status_code=error.status_code)
        return problem_page(request, error.status_code, None)

    async def unexpected(request: Request, error: Exception) -> Response:
        log.error("http.unhandled", path=request.url.path, error=type(error).__name__)
        return problem_page(request, 500, None)

    api.add_exception_handler(NotSignedInError, not_signed_in)
    api.add_exception_handler(SignedOutError, signed_out)
    api.add_exception_handler(BadFormError, bad_form)
    api.add_exception_handler(SignInError, sign_in_failed)
    api.add_exception_handler(ServiceError, service_error)
    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(Exception, unexpected)

    @api.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/health/ready", include_in_schema=False)
    async def ready() -> Response:
        try:
            await issuer.discovery()
        except SignInError as error:
            return JSONResponse({"status": "not ready", "reasons": [str(error)]}, status_code=503)
        return JSONResponse({"status": "ready"})

    @api.get("/static/vendor/{asset}", include_in_schema=False)
    async def vendored_asset(asset: str) -> Response:
        if asset not in NEEDS:
            return Response(status_code=404)
        return vendored(asset, settings.assets_dir)

    @api.get("/static/{name}", include_in_schema=False)
    async def own_static(name: str) -> Response:
        if name not in OWN_STATIC:
            return Response(status_code=404)
        return FileResponse(STATIC / name, media_type=OWN_STATIC[name])

    api.include_router(router(settings, services, sessions, issuer, renderer))
    install_request_context(api)
    api.add_middleware(PageHeaders)
    api.add_middleware(Edge, allowed_hosts=settings.hosts(), document_policy=PAGE_CSP)
    return api


class PageHeaders:
    """What a browser is told besides the edge's headers: never frame a page, never send its
    address (it holds a case id) to another site."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "same-origin"
            await send(message)

        await self.app(scope, receive, with_headers)
