"""What every service's HTTP API shares: who is calling, error mapping, health, history, the
access log, erasure status, metrics, AsyncAPI.

Errors are types, mapped once here: no valid token is 401, a refusal by role or scope 403 naming
what is missing, a broken rule 409 with the reason, an unknown case 404, an erased one 410,
invalid input 422 naming the field but never echoing what was sent, a store that cannot be
reached 503, anything else 500 without internals.

Who is calling comes from a bearer token (``Caller``), validated by the service's
``TokenValidator`` (``shared.tokens``); FastAPI's ``HTTPBearer`` puts the scheme in the OpenAPI
document. Every route names the access rule it is under (``access(rules, name)``), so a test can
walk the route table and README's matrix is made from it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID, uuid4

import structlog
from eventsourcing.persistence import IntegrityError
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.access import ACCESS_LOG, ERASURE_STATUS, METRICS, Facts, Rule
from shared.application import HistoryEntry, KringApplication
from shared.erasure import CaseErasedError
from shared.errors import DomainRuleError, InvalidFieldError, NotFoundError, NotPermittedError
from shared.identity import Principal
from shared.logging import get_logger
from shared.store import STORE_UNAVAILABLE
from shared.tokens import IdentityUnavailableError, InvalidTokenError, TokenValidator
from shared.views import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    InvalidCursorError,
    Page,
    PageRequest,
    ViewsBehindError,
    decode_cursor,
    encode_cursor,
)

log = get_logger(__name__)
T = TypeVar("T")
RowT = TypeVar("RowT", bound=BaseModel)

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {
    404: {"description": "unknown case"},
    410: {"description": "the case was erased"},
}
CONFLICT: Responses = {409: {"description": "not allowed in the case's current stage"}}
NOT_FOUND_OR_CONFLICT: Responses = {**NOT_FOUND, **CONFLICT}
AUTHENTICATION: Responses = {
    401: {"description": "no valid bearer token"},
    403: {"description": "the caller's role or scope does not allow this; the reason says what"},
}

#: How long the HTTP servers keep an idle connection open: longer than any client's own idle
#: limit (httpx's 5 s, a proxy's or load balancer's 60 s), so a client never reuses a
#: connection at the moment the server closes it (equal limits made that a race: "server
#: disconnected without sending a response" once in a while).
KEEP_ALIVE_SECONDS = 75

#: ``openapi_extra`` key naming a route's access rule; ``PUBLIC`` for the few without a token.
ACCESS_KEY = "x-kring-access"
PUBLIC = "public"

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="An OIDC access token (JWT) from the configured issuer (KRING_OIDC_ISSUER).",
)


class NotAuthenticatedError(Exception):
    """No bearer token came with the request: 401."""


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """FastAPI dependency: the principal the request's bearer token names (401 without one)."""
    if credentials is None:
        raise NotAuthenticatedError("a bearer token is needed (Authorization: Bearer <token>)")
    validator: TokenValidator = request.app.state.tokens
    return await validator.principal(credentials.credentials)


Caller = Annotated[Principal, Depends(current_principal)]


def paging(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page (at most {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
    after: Annotated[
        str | None,
        Query(min_length=1, max_length=1000, description="the `next` of the page before"),
    ] = None,
) -> PageRequest:
    """FastAPI dependency: which page of a list. A limit above the maximum is 422 (never cut
    silently); a cursor that is malformed or from another list is 422 naming ``after``."""
    return PageRequest(limit=limit, after=after)


Paging = Annotated[PageRequest, Depends(paging)]


class PageOf(BaseModel, Generic[RowT]):
    """One page of a list: its rows, the cursor of the next page (None: the last), and how many
    rows the list has in all for this caller and these filters."""

    items: list[RowT]
    next: str | None
    total: int | None

    @classmethod
    def of(cls, page: Page, row: type[RowT]) -> PageOf[RowT]:
        return cls(
            items=[row.model_validate(r) for r in page.items], next=page.next, total=page.total
        )


def access(rules: Mapping[str, Rule], name: str) -> dict[str, Any]:
    """``openapi_extra`` for a route under the rule ``name`` of the service's table."""
    if name != PUBLIC and name not in rules:
        raise KeyError(f"no access rule {name!r}")
    return {ACCESS_KEY: name}


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
    async def not_authenticated(request: Request, error: Exception) -> Response:
        # RFC 6750: say which scheme, and (for a bad token) that it is invalid; never what the
        # token held.
        challenge = "Bearer"
        if isinstance(error, InvalidTokenError):
            challenge = f'Bearer error="invalid_token", error_description="{error}"'
        return JSONResponse(
            status_code=401, content={"detail": str(error)}, headers={"WWW-Authenticate": challenge}
        )

    async def not_permitted(request: Request, error: Exception) -> Response:
        return JSONResponse(status_code=403, content={"detail": str(error)})

    async def identity_unavailable(request: Request, error: Exception) -> Response:
        return JSONResponse(
            status_code=503, content={"detail": str(error)}, headers={"Retry-After": "5"}
        )

    async def invalid_input(request: Request, error: Exception) -> Response:
        # FastAPI's answer without ``input`` (and ``ctx``, which may hold it): a field is named,
        # what was sent is never echoed (it may be personal data, or a 1 MB body).
        assert isinstance(error, RequestValidationError)
        detail = [
            {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
            for e in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": detail})

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
        # The same answer as for invalid input, naming the field (in the body unless it says).
        assert isinstance(error, InvalidFieldError)
        loc = list(error.loc) if error.loc[:1] in (("query",), ("path",)) else ["body", *error.loc]
        detail = [{"type": "value_error", "loc": loc, "msg": error.message}]
        return JSONResponse(status_code=422, content={"detail": detail})

    async def views_behind(request: Request, error: Exception) -> Response:
        return JSONResponse(
            status_code=503, content={"detail": str(error)}, headers={"Retry-After": "5"}
        )

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

    api.add_exception_handler(NotAuthenticatedError, not_authenticated)
    api.add_exception_handler(InvalidTokenError, not_authenticated)
    api.add_exception_handler(NotPermittedError, not_permitted)
    api.add_exception_handler(IdentityUnavailableError, identity_unavailable)
    api.add_exception_handler(RequestValidationError, invalid_input)
    api.add_exception_handler(DomainRuleError, rule_broken)
    api.add_exception_handler(NotFoundError, not_found)
    api.add_exception_handler(CaseErasedError, erased)
    api.add_exception_handler(InvalidFieldError, invalid_field)
    api.add_exception_handler(IntegrityError, concurrent_change)
    api.add_exception_handler(ViewsBehindError, views_behind)
    for unavailable in STORE_UNAVAILABLE:
        api.add_exception_handler(unavailable, store_unavailable)
    api.add_exception_handler(Exception, unexpected)


class AccessLogEntry(BaseModel):
    case_id: UUID
    service: str
    at: datetime
    #: The reader: their subject, display name, the role they read in, for whom.
    subject: str
    name: str | None
    role: str
    on_behalf_of: str | None
    #: What was read (``case``, ``participants``, ``plan``, ``plan.document.pdf``, ``history``…).
    what: str


class ErasureStatus(BaseModel):
    case_id: UUID
    service: str
    erased: bool
    erased_at: datetime | None
    #: Whether this service ever stored anything of the case.
    known: bool


def common_router(
    app: KringApplication,
    not_ready: Callable[[], list[str]],
    asyncapi: Callable[[], str],
    history_rule: Rule,
) -> APIRouter:
    router = APIRouter()
    rules = {
        "history": history_rule,
        "access_log": ACCESS_LOG,
        "erasure_status": ERASURE_STATUS,
        "metrics": METRICS,
    }

    @router.get("/health/live", tags=["operations"], openapi_extra=access(rules, PUBLIC))
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        tags=["operations"],
        responses={503: {}},
        openapi_extra=access(rules, PUBLIC),
    )
    async def is_ready() -> Response:
        reasons = not_ready()
        if not reasons:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)

    @router.get(
        "/metrics",
        tags=["operations"],
        include_in_schema=False,
        openapi_extra=access(rules, "metrics"),
    )
    async def metrics(principal: Caller) -> Response:
        METRICS.permit(principal)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @router.get(
        "/asyncapi.json",
        tags=["operations"],
        include_in_schema=False,
        openapi_extra=access(rules, PUBLIC),
    )
    async def asyncapi_document() -> Response:
        return Response(asyncapi(), media_type="application/json")

    @router.get(
        "/cases/{case_id}/history",
        tags=["audit"],
        responses={404: {"description": "no events for this case here"}, **AUTHENTICATION},
        openapi_extra=access(rules, "history"),
    )
    async def case_history(case_id: UUID, principal: Caller) -> list[HistoryEntry]:
        """Every event this service stored for the case, in order, with time and actor. Of an
        erased case only its erasure is left (an operator or any regional manager may read
        that)."""
        return await asyncio.to_thread(_history, app, history_rule, case_id, principal)

    @router.get(
        "/cases/{case_id}/access-log",
        tags=["audit"],
        responses={404: {"description": "no reads recorded for this case here"}, **AUTHENTICATION},
        openapi_extra=access(rules, "access_log"),
    )
    async def access_log(case_id: UUID, principal: Caller, page: Paging) -> PageOf[AccessLogEntry]:
        """Every read of the case's personal data here: who (and in which role), what, when,
        oldest first, a page at a time. Kept after the case is erased; it holds nothing of the
        family."""
        found = await asyncio.to_thread(_access_log, app, case_id, principal, page)
        return PageOf[AccessLogEntry].of(found, AccessLogEntry)

    @router.get(
        "/cases/{case_id}/erasure",
        tags=["audit"],
        responses=AUTHENTICATION,
        openapi_extra=access(rules, "erasure_status"),
    )
    async def erasure_status(case_id: UUID, principal: Caller) -> ErasureStatus:
        """Whether the case was erased here (and when), and whether this service ever held
        anything of it: no personal data."""
        ERASURE_STATUS.permit(principal, Facts(case_id=case_id))
        return ErasureStatus.model_validate(await asyncio.to_thread(app.erasure_status, case_id))

    return router


def _history(
    app: KringApplication, rule: Rule, case_id: UUID, principal: Principal
) -> list[HistoryEntry]:
    if not principal.roles & ERASURE_STATUS.roles:
        rule.check_role(principal)  # before anything is loaded: nothing said of the case
    try:
        facts = app.case_facts(case_id)
    except CaseErasedError:
        # Nothing of the case can be read any more; who erased it, when and why is left.
        ERASURE_STATUS.permit(principal, Facts(case_id=case_id))
        return app.history(case_id)
    actor = rule.permit(principal, facts)
    entries = app.history(case_id)
    app.log_read(case_id, actor, "history", facts)
    return entries


def _access_log(
    app: KringApplication, case_id: UUID, principal: Principal, request: PageRequest
) -> Page:
    ACCESS_LOG.check_role(principal)
    try:
        facts = app.case_facts(case_id)
    except (CaseErasedError, NotFoundError):
        # Erased (or never here): the region the reads recorded is what is left of it.
        facts = Facts(case_id=case_id, regions=tuple(app.access_log.regions(case_id)))
    ACCESS_LOG.permit(principal, facts)
    list_id, filters = "access_log", {"case_id": str(case_id)}
    after = 0
    if request.after is not None:
        (after,) = decode_cursor(request.after, list_id, filters)
        if not isinstance(after, int):
            raise InvalidCursorError("not a cursor of this list")
    entries, following, total = app.access_log.entries_page(case_id, after, request.limit)
    if not total:
        raise NotFoundError(f"no reads of case {case_id} are recorded here")
    return Page(
        items=[vars(e) for e in entries],
        next=None if following is None else encode_cursor(list_id, filters, [following]),
        total=total,
    )


async def run_sync(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking application call off the event loop (eventsourcing has no async API)."""
    return await asyncio.to_thread(function, *args)
