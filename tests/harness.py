"""Running services in-process against a real nats-server, and reading the real stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from nats.aio.client import Client

from shared.runtime import RunningService, ServiceDefinition, build_service
from shared.stream_read import StoredMessage, read_all
from shared.subjects import ALL_SUBJECTS, STREAM


@dataclass
class Running:
    service: RunningService
    definition: ServiceDefinition
    http: httpx.AsyncClient

    @property
    def app(self) -> Any:
        return self.definition.app


def staff_headers() -> dict[str, str]:
    """A token for a regional manager (and operator, researcher, professional) of every region
    the tests name: what a test's client sends unless a request names its own. The tests of who
    may do what (``test_access.py``) send their own tokens on every request."""
    from tests.factories import REGIONS
    from tests.tokens import bearer

    roles = ["regional_manager", "operator", "researcher", "professional"]
    return bearer("staff", roles, regions=REGIONS)


@asynccontextmanager
async def running(definition: ServiceDefinition) -> AsyncIterator[Running]:
    service = build_service(definition)
    async with service.api.router.lifespan_context(service.api):
        transport = httpx.ASGITransport(app=service.api)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=staff_headers()
        ) as http:
            yield Running(service, definition, http)


async def eventually(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 15.0,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll a condition that an event will make true (not a sleep standing in for one).
    ``interval``: longer for a check that is costly itself (reading a whole stream or store)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


class Connects(Protocol):
    """A NATS server a test can connect to as one of the identities (``tests.servers``)."""

    async def connect(self, identity: str = ..., **options: Any) -> Client: ...


async def stream_messages(
    nats: Connects, subjects: str = ALL_SUBJECTS, stream: str = STREAM
) -> list[StoredMessage]:
    """Every message now on the stream under ``subjects``, read as the analyst reads it."""
    connection = await nats.connect("analyst" if stream == STREAM else "operator")
    try:
        return await read_all(connection, stream, subjects)
    finally:
        await connection.close()


def envelopes(messages: list[StoredMessage]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]
