"""What every service's HTTP API shares: error mapping, health, history, metrics, AsyncAPI.

Errors are types, mapped once here: a broken rule is 409 with the reason, an unknown case 404,
invalid input 422 naming the field (FastAPI's own), a store that cannot be reached 503,
anything else 500 without internals.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID, uuid4

import structlog
from eventsourcing.persistence import IntegrityError
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.application import HistoryEntry, KringApplication
from shared.erasure import CaseErasedError
from shared.errors import DomainRuleError, InvalidFieldError, NotFoundError
from shared.logging import get_logger
from shared.store import STORE_UNAVAILABLE

log = get_logger(__name__)
T = TypeVar("T")

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {
    404: {"description": "unknown case"},
    410: {"description": "the case was erased"},
}
CONFLICT: Responses = {409: {"description": "not allowed in the case's current stage"}}
NOT_FOUND_OR_CONFLICT: Responses = {**NOT_FOUND, **CONFLICT}


CASE_IN_PATH = re.compile(r"/cases/([0-9a-fA-F-]{36})")


def install_request_context(api: FastAPI) -> None:
    """Bind a correlation id (``X-Correlation-Id``, or a new one) and the case id to every log
    line of a request, and log each command: method, route, status; never the body."""
    api.add_middleware(RequestContext)


class RequestContext:
    """``install_request_context`` as plain ASGI middleware: Starlette's ``BaseHTTPMiddleware``
    (``@app.middleware("http")``) runs each request in a task group of its own with a stream
    for the response, a cost on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        correlation_id = Headers(scope=scope).get("x-correlation-id") or uuid4().hex
        context = {"correlation_id": correlation_id}
        found = CASE_IN_PATH.search(path)
        if found:
            context["case_id"] = found.group(1)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Correlation-Id"] = correlation_id
            await send(message)

        with structlog.contextvars.bound_contextvars(**context):
            await self.app(scope, receive, send_with_id)
            if scope["method"] != "GET":
                log.info("http.command", method=scope["method"], path=path, status=status)


def install_error_handlers(api: FastAPI) -> None:
    async def rule_broken(request: Request, error: Exception) -> Response:
        return JSONResponse(status_code=409, content={"detail": str(error)})

    async def not_found(request: Request, error: Exception) -> Response:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    async def erased(request: Request, error: Exception) -> Response:
        return JSONResponse(status_code=410, content={"detail": str(error)})

    async def concurrent_change(request: Request, error: Exception) -> Response:
        # Optimistic concurrency: someone saved the same aggregate first. Nothing was stored.
        return JSONResponse(
            status_code=409, content={"detail": "the case changed at the same moment; try again"}
        )

    async def invalid_field(request: Request, error: Exception) -> Response:
        # The same answer FastAPI gives for invalid input, naming the field in the body.
        assert isinstance(error, InvalidFieldError)
        detail = [{"type": "value_error", "loc": ("body", *error.loc), "msg": error.message}]
        return await request_validation_exception_handler(request, RequestValidationError(detail))

    async def store_unavailable(request: Request, error: Exception) -> Response:
        # The store went away during the request: its transaction did not commit.
        log.error("http.store_unavailable", path=request.url.path, error=type(error).__name__)
        return JSONResponse(
            status_code=503,
            content={"detail": "the store cannot be reached; nothing was done, try again shortly"},
            headers={"Retry-After": "5"},
        )

    async def unexpected(request: Request, error: Exception) -> Response:
        log.error("http.unhandled", path=request.url.path, error=type(error).__name__)
        return JSONResponse(status_code=500, content={"detail": "internal error"})

    api.add_exception_handler(DomainRuleError, rule_broken)
    api.add_exception_handler(NotFoundError, not_found)
    api.add_exception_handler(CaseErasedError, erased)
    api.add_exception_handler(InvalidFieldError, invalid_field)
    api.add_exception_handler(IntegrityError, concurrent_change)
    for unavailable in STORE_UNAVAILABLE:
        api.add_exception_handler(unavailable, store_unavailable)
    api.add_exception_handler(Exception, unexpected)


def common_router(
    app: KringApplication,
    not_ready: Callable[[], list[str]],
    asyncapi: Callable[[], str],
) -> APIRouter:
    router = APIRouter()

    @router.get("/health/live", tags=["operations"])
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready", tags=["operations"], responses={503: {}})
    async def is_ready() -> Response:
        reasons = not_ready()
        if not reasons:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)

    @router.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/asyncapi.json", tags=["operations"], include_in_schema=False)
    async def asyncapi_document() -> Response:
        return Response(asyncapi(), media_type="application/json")

    @router.get(
        "/cases/{case_id}/history",
        tags=["audit"],
        responses={404: {"description": "no events for this case here"}},
    )
    async def case_history(case_id: UUID) -> list[HistoryEntry]:
        """Every event this service stored for the case, in order, with time and actor."""
        return await asyncio.to_thread(app.history, case_id)

    return router


async def run_sync(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking application call off the event loop (eventsourcing has no async API)."""
    return await asyncio.to_thread(function, *args)
