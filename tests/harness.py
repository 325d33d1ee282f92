"""Running services in-process against a real nats-server, and reading the real stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from nats.js.api import DeliverPolicy

from shared.runtime import RunningService, ServiceDefinition, build_service
from shared.subjects import ALL_SUBJECTS


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


async def stream_messages(nats_url: str, subjects: str = ALL_SUBJECTS) -> list[Any]:
    """Every message now on the stream under ``subjects``, read with an ordered consumer."""
    connection = await nats.connect(nats_url)
    try:
        js = connection.jetstream()
        try:
            info = await js.stream_info("KRING")
        except nats.js.errors.NotFoundError:
            return []
        if info.state.messages == 0:
            return []
        subscription = await js.subscribe(
            subjects, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        messages = []
        last = info.state.last_seq
        while True:
            try:
                message = await subscription.next_msg(timeout=1.0)
            except nats.errors.TimeoutError:
                break
            messages.append(message)
            if message.metadata.sequence.stream >= last:
                break
        await subscription.unsubscribe()
        return messages
    finally:
        await connection.close()


def envelopes(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]
