"""Running one service: the FastAPI app, the bus, the relay and any timers in one process.

HTTP serves at once, in every replica; the bus connects in the background (the service is not
ready until it has), so a service started while NATS is away still accepts and stores commands,
and the relay publishes them once NATS is back. The relay, the tracked consumers and the
``background`` jobs run only while this replica holds the service's lease (``shared.lease``), as
that term's work (``shared.fence``); on SQLite a service is one process and always holds it.
While the store cannot be reached (PostgreSQL away), the service is not ready and answers every
request but health and metrics with 503 at once, having stored nothing; consumers, the relay and
timers wait and go on when it is back.

A service that cannot start says why in one line on stderr and exits with ``EXIT_CONFIG`` (a
setting is wrong: starting again will not help) or ``EXIT_UNAVAILABLE`` (something it needs is
away: starting again later may); ``kring run`` tells the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import uvicorn
from eventsourcing.persistence import ProgrammingError
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from shared import fence
from shared.access import Rule
from shared.application import KringApplication
from shared.asyncapi import document, render
from shared.bus import Bus
from shared.consumer import subscribe
from shared.docs import docs_router
from shared.edge import Edge
from shared.http import (
    ACCESS_KEY,
    AUTHENTICATION,
    KEEP_ALIVE_SECONDS,
    PUBLIC,
    common_router,
    install_error_handlers,
    install_request_context,
)
from shared.lease import Leader, Lease, lease_for
from shared.logging import configure_logging, get_logger
from shared.nats_tls import tls_context
from shared.partner_feed import DEFAULT_SOURCE
from shared.relay import OutboxRelay, Translator
from shared.settings import ServiceSettings, SettingError, StoreKind, problem_line
from shared.store import STORE_UNAVAILABLE, StoreConfigError
from shared.tokens import TokenValidator

log = get_logger(__name__)

Background = Callable[[], Awaitable[None]]
SHUTDOWN_SECONDS = 5.0
#: sysexits.h: a setting is wrong (starting again will not help) / something needed is away.
EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69
#: Everything a service creates (stores, their WAL, files) is readable by its owner alone.
UMASK = 0o077
#: Paths served while the store is away: they read nothing from it.
WITHOUT_STORE = ("/health/", "/metrics", "/docs", "/redoc", "/openapi.json", "/asyncapi.json")


@dataclass
class ServiceDefinition:
    """Everything a service's composition root hands to the runtime."""

    settings: ServiceSettings
    app: KringApplication
    translate: Translator
    router: APIRouter
    description: str
    #: Who may read a case's history here (the service's rule for its audit trail).
    history_rule: Rule
    follows: Sequence[str] = ()
    #: Jobs of the active replica only (timers, deliveries), started with each term.
    background: Sequence[Background] = ()
    #: Jobs that need the service's bus (the runtime makes it): each is handed it.
    bus_jobs: Sequence[Callable[[Bus], Background]] = ()
    #: Called with the bus before it starts: requests the service answers, or a part that asks
    #: (claim checks between services, ``shared.claims``).
    on_bus: Sequence[Callable[[Bus], None]] = ()


@dataclass
class RunningService:
    api: FastAPI
    bus: Bus
    relay: OutboxRelay
    #: Every route the API serves but FastAPI's own documents, each naming its access rule.
    routes: list[APIRoute]
    store: StoreHealth
    leader: Leader


class StoreHealth:
    """Whether the service's store answers, asked every ``interval`` seconds in a thread (a
    probe that has not answered within ``timeout`` counts as no; the next one waits for it)."""

    def __init__(
        self, app: KringApplication, *, interval: float = 1.0, timeout: float = 2.0
    ) -> None:
        self.app = app
        self.interval, self.timeout = interval, timeout
        self._probe: asyncio.Future[None] | None = None

    @property
    def reachable(self) -> bool:
        return self.app.store_reachable

    async def watch(self) -> None:
        while True:
            reachable = await self.probe()
            if reachable != self.reachable:
                if reachable:
                    log.warning("store.reachable")
                else:
                    log.error("store.unreachable")
            self.app.store_reachable = reachable
            await asyncio.sleep(self.interval)

    async def probe(self) -> bool:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(self.app.queries.ping))
            # Its failure is read here, or by nobody once it outlived its timeout.
            self._probe.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), self.timeout)
        except TimeoutError:
            return False
        except STORE_UNAVAILABLE:
            return False
        return True


class StoreGate:
    """Plain ASGI middleware: while the store is away, 503 at once for everything that would
    wait on it (eventsourcing retries a lost database for many seconds), so a client hears
    "try again" rather than nothing, and nothing is half-done."""

    def __init__(self, app: ASGIApp, store: StoreHealth) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.store.reachable
            or str(scope["path"]).startswith(WITHOUT_STORE)
        ):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            {"detail": "the store cannot be reached; nothing was done, try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
        await response(scope, receive, send)


def build_service(definition: ServiceDefinition) -> RunningService:
    settings, app = definition.settings, definition.app
    store = StoreHealth(app)
    bus = Bus(
        settings.nats_url,
        settings.stream_replicas,
        user=settings.nats_user,
        password=settings.nats_password.get_secret_value() if settings.nats_password else None,
        tls=tls_context(settings.nats_url, settings.nats_tls_ca_file),
    )
    for origin in definition.follows:
        subscribe(
            bus,
            app,
            origin,
            max_deliver=settings.consumer_max_deliver,
            ack_wait_seconds=settings.consumer_ack_wait_seconds,
        )
    for attach in definition.on_bus:
        attach(bus)
    relay = OutboxRelay(
        app, bus, definition.translate, unhealthy_after_seconds=settings.relay_unhealthy_seconds
    )
    lease = _lease(settings, app)
    term_tasks: list[asyncio.Task[None]] = []

    async def begin(term: fence.Term) -> None:
        """The term's work, each task carrying the term (and every thread it starts)."""
        relay.reset()
        with fence.within(term):
            term_tasks[:] = [
                asyncio.create_task(
                    _supervised("bus.term", lambda: bus.start_term(term), once=True)
                ),
                asyncio.create_task(_supervised("relay", relay.run)),
                *(
                    asyncio.create_task(_supervised(job.__name__, job))
                    for job in definition.background
                ),
                *(
                    asyncio.create_task(_supervised(job.__name__, job(bus)))
                    for job in definition.bus_jobs
                ),
            ]

    async def end() -> None:
        await _cancel_all(term_tasks)
        term_tasks.clear()
        await bus.stop_term()

    leader = Leader(lease, begin=begin, end=end)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("service.starting", settings=settings.describe())
        tasks = [
            asyncio.create_task(_supervised("bus", bus.connect, once=True)),
            asyncio.create_task(_supervised("store", store.watch)),
        ]
        leading = asyncio.create_task(_supervised("lease", leader.run))
        try:
            yield
        finally:
            log.info("service.stopping")
            await _cancel_all([leading])
            # The term's work stops and the lease is given up: another replica takes it now.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(leader.stop(), SHUTDOWN_SECONDS)
            await _cancel_all(tasks)
            # Bounded: a drain that never finishes must not keep the process alive.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.stop(), SHUTDOWN_SECONDS)
            app.close()
            log.info("service.stopped")

    api = FastAPI(
        title=f"Kring {app.name}",
        description=definition.description,
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
        # /docs and /redoc from the vendored assets (shared.docs), not FastAPI's CDN pages.
        docs_url=None,
        redoc_url=None,
    )
    api.state.tokens = TokenValidator(settings.oidc())
    install_error_handlers(api)
    api.add_middleware(StoreGate, store=store)
    install_request_context(api)
    # Outermost: a request naming another host is refused before anything else runs.
    api.add_middleware(Edge, allowed_hosts=settings.hosts())

    contract = render(
        document(
            app.name,
            description=definition.description,
            consumes=app.policies,
            nats_url=settings.nats_url,
            partners_source=str(getattr(settings, "partners_source", DEFAULT_SOURCE)),
        )
    )

    def asyncapi() -> str:
        return contract

    def not_ready() -> list[str]:
        unreachable = [] if store.reachable else ["the store cannot be reached"]
        views = getattr(app, "views", None)  # the service's read model (``shared.views``)
        behind = views.not_ready() if views is not None else []
        return [*unreachable, *bus.not_ready(), *relay.not_ready(), *behind]

    common = common_router(app, not_ready, asyncapi, definition.history_rule)
    routes = [r for r in (*common.routes, *definition.router.routes) if isinstance(r, APIRoute)]
    for route in routes:
        if (route.openapi_extra or {}).get(ACCESS_KEY) != PUBLIC:
            route.responses = {**AUTHENTICATION, **route.responses}
    api.include_router(common)
    api.include_router(docs_router(f"Kring {app.name}", assets=settings.assets_dir))
    api.include_router(definition.router)
    return RunningService(api=api, bus=bus, relay=relay, store=store, routes=routes, leader=leader)


def _lease(settings: ServiceSettings, app: KringApplication) -> Lease:
    postgres = settings.store is StoreKind.POSTGRES
    return lease_for(app.queries, postgres=postgres, seconds=settings.lease_seconds)


async def _cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait for them, cancelling again while any is left: Python 3.11's
    ``asyncio.wait_for`` (inside nats-py's requests) can swallow a cancellation that arrives as
    its inner future completes, and one such task would otherwise keep the service from ever
    stopping."""
    deadline = asyncio.get_running_loop().time() + SHUTDOWN_SECONDS
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.2)
        pending = [task for task in pending if not task.done()]
        if pending and asyncio.get_running_loop().time() > deadline:
            log.warning("service.tasks_not_stopped", tasks=len(pending))
            return


async def _supervised(name: str, job: Background, *, once: bool = False) -> None:
    """Run a background job; restart it with back-off if it fails, so one fault never takes
    the service down."""
    delay = 0.5
    while True:
        try:
            await job()
            if once:
                return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # logged, then restarted
            log.error(
                "service.job_failed", job=name, error=type(error).__name__, detail=str(error)[:200]
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


def serve(build: Callable[[], ServiceDefinition]) -> None:
    settings, service = prepare(build)
    config = uvicorn.Config(
        service.api,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    uvicorn.Server(config).run()


def prepare(build: Callable[[], ServiceDefinition]) -> tuple[ServiceSettings, RunningService]:
    """Everything before the service listens: its settings read and checked, its store opened.
    Anything wrong ends the process here with one line (``_exit``)."""
    os.umask(UMASK)
    try:
        definition = build()
    except ValidationError as error:
        _exit(problem_line(error), EXIT_CONFIG)
    except (StoreConfigError, SettingError) as error:
        _exit(str(error), EXIT_CONFIG)
    except STORE_UNAVAILABLE as error:
        _exit(f"cannot reach the store ({type(error).__name__}); is it running?", EXIT_UNAVAILABLE)
    except ProgrammingError as error:  # e.g. a schema that is not there, or not this role's
        _exit(f"KRING_POSTGRES_SCHEMA / KRING_POSTGRES_URL: {_first_line(error)}", EXIT_CONFIG)
    settings = definition.settings
    for variable, value in (
        ("KRING_NATS_USER", settings.nats_user),
        ("KRING_NATS_PASSWORD", settings.nats_password),
    ):
        if not value:
            # NATS refuses anonymous connections: say so now, not as an endless reconnect.
            _exit(
                f"{variable} is not set ({settings.service_name}'s NATS identity;"
                " `kring run` sets it, a deployment takes it from a secret)",
                EXIT_CONFIG,
            )
    if settings.nats_user != settings.service_name:
        # Each service may publish and follow only as itself (shared.permissions).
        _exit(
            f"KRING_NATS_USER: {settings.service_name} connects to NATS as its own identity,"
            f" {settings.service_name!r}, not {settings.nats_user!r}",
            EXIT_CONFIG,
        )
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    return settings, build_service(definition)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _exit(line: str, code: int) -> NoReturn:
    print(f"cannot start: {line}", file=sys.stderr, flush=True)
    raise SystemExit(code)
