"""Running one service: the FastAPI app, the bus, the relay and any timers in one process.

HTTP serves at once; the bus connects in the background (the service is not ready until it
has), so a service started while NATS is away still accepts and stores commands, and the relay
publishes them once NATS is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from faststream.nats import JStream
from faststream.specification import AsyncAPI
from pydantic import ValidationError

from shared.access import Rule
from shared.application import KringApplication
from shared.bus import Bus
from shared.consumer import subscribe
from shared.edge import Edge
from shared.events import EVENT_CLASSES
from shared.http import (
    ACCESS_KEY,
    AUTHENTICATION,
    PUBLIC,
    common_router,
    install_error_handlers,
    install_request_context,
)
from shared.logging import configure_logging, get_logger
from shared.relay import OutboxRelay, Translator
from shared.settings import ServiceSettings
from shared.subjects import STREAM
from shared.tokens import TokenValidator

log = get_logger(__name__)

Background = Callable[[], Awaitable[None]]
SHUTDOWN_SECONDS = 5.0


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
    background: Sequence[Background] = ()


@dataclass
class RunningService:
    api: FastAPI
    bus: Bus
    relay: OutboxRelay
    #: Every route the API serves but FastAPI's own documents, each naming its access rule.
    routes: list[APIRoute]


def build_service(definition: ServiceDefinition) -> RunningService:
    settings, app = definition.settings, definition.app
    bus = Bus(settings.nats_url, settings.stream_replicas)
    for origin in definition.follows:
        subscribe(
            bus,
            app,
            origin,
            max_deliver=settings.consumer_max_deliver,
            ack_wait_seconds=settings.consumer_ack_wait_seconds,
        )
    _document_publications(bus, app.name)
    relay = OutboxRelay(app, bus, definition.translate)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("service.starting", settings=settings.describe())
        tasks = [
            asyncio.create_task(_supervised("bus", bus.run, once=True)),
            asyncio.create_task(_supervised("relay", relay.run)),
            *(asyncio.create_task(_supervised(job.__name__, job)) for job in definition.background),
        ]
        try:
            yield
        finally:
            log.info("service.stopping")
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
    )
    api.state.tokens = TokenValidator(settings.oidc())
    install_error_handlers(api)
    install_request_context(api)
    # Outermost: a request naming another host is refused before anything else runs.
    api.add_middleware(Edge, allowed_hosts=settings.hosts())

    def asyncapi() -> str:
        spec = AsyncAPI(bus.broker, title=f"Kring {app.name}", version="0.1.0")
        return spec.to_specification().to_json()

    common = common_router(app, lambda: bus.ready, asyncapi, definition.history_rule)
    routes = [r for r in (*common.routes, *definition.router.routes) if isinstance(r, APIRoute)]
    for route in routes:
        if (route.openapi_extra or {}).get(ACCESS_KEY) != PUBLIC:
            route.responses = {**AUTHENTICATION, **route.responses}
    api.include_router(common)
    api.include_router(definition.router)
    return RunningService(api=api, bus=bus, relay=relay, routes=routes)


def _document_publications(bus: Bus, origin: str) -> None:
    """Register what this service publishes, so its AsyncAPI document names the contract.
    (The relay publishes; these publisher objects only describe.)"""
    for event_class in EVENT_CLASSES:
        if event_class.origin == origin:
            bus.broker.publisher(
                event_class.subject(),
                stream=JStream(STREAM, declare=False),
                schema=event_class,
                title=event_class.type_name(),
                description=(event_class.__doc__ or "").strip(),
            )


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
    try:
        definition = build()
    except ValidationError as error:
        # One line naming each variable that is missing or malformed, never a stack trace.
        wrong = "; ".join(
            f"KRING_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise SystemExit(f"invalid configuration: {wrong}") from None
    settings = definition.settings
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    service = build_service(definition)
    config = uvicorn.Config(
        service.api,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
