"""A fresh KRING stream filled as the relays fill it: each event by its origin's identity under
its origin's next position, with the headers and message id the relays give it, many publishes in
flight."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from nats.js.errors import NotFoundError

from shared.bus import ensure_streams
from shared.envelope import encode, message_headers
from shared.events import IntegrationEvent
from shared.permissions import ADMIN, SERVICES
from shared.subjects import STREAM
from tests.factories import NOW
from tests.servers import NatsServer


async def fill_stream(server: NatsServer, events: Iterable[IntegrationEvent]) -> None:
    admin = await server.connect(ADMIN)
    origins = {name: await server.connect(name) for name in SERVICES}
    try:
        with contextlib.suppress(NotFoundError):
            await admin.jetstream().delete_stream(STREAM)
        await ensure_streams(admin.jetstream())
        streams: dict[str, Any] = {
            name: c.jetstream(publish_async_max_pending=4000) for name, c in origins.items()
        }
        positions: Counter[str] = Counter()
        for published, item in enumerate(events):
            positions[item.origin] += 1
            position = positions[item.origin]
            at = NOW + timedelta(seconds=published)
            await streams[item.origin].publish_async(
                item.subject(),
                encode(item, origin=item.origin, position=position, time=at),
                headers=message_headers(item.origin, position),
            )
        for js in streams.values():
            await js.publish_async_completed()
    finally:
        for connection in [admin, *origins.values()]:
            await connection.close()
