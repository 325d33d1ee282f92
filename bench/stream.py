"""A fresh KRING stream filled as the relays fill it: each event under its origin's next
position, with the headers and message id the relays give it, many publishes in flight."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import nats
from nats.js.errors import NotFoundError

from shared.bus import ensure_streams
from shared.envelope import ORIGIN_HEADER, POSITION_HEADER, encode, message_id
from shared.events import IntegrationEvent
from shared.subjects import STREAM
from tests.factories import NOW


async def fill_stream(nats_url: str, events: Iterable[IntegrationEvent]) -> None:
    connection = await nats.connect(nats_url)
    try:
        js: Any = connection.jetstream(publish_async_max_pending=4000)
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(STREAM)
        await ensure_streams(js)
        positions: Counter[str] = Counter()
        for published, item in enumerate(events):
            positions[item.origin] += 1
            position = positions[item.origin]
            at = NOW + timedelta(seconds=published)
            await js.publish_async(
                item.subject(),
                encode(item, origin=item.origin, position=position, time=at),
                headers={
                    "Nats-Msg-Id": message_id(item.origin, position),
                    ORIGIN_HEADER: item.origin,
                    POSITION_HEADER: str(position),
                },
            )
        await js.publish_async_completed()
    finally:
        await connection.close()
