"""Replay: ``kring.replay`` folding the whole KRING stream into the analyst's projection, against
the raw ordered-consumer read of the same stream."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import nats
from nats.js.errors import NotFoundError

from bench.baselines import ordered_read
from bench.report import Report, section
from kring.replay import replay
from shared.bus import ensure_streams
from shared.envelope import ORIGIN_HEADER, POSITION_HEADER, encode, message_id
from shared.events import FollowUpDue, IntegrationEvent
from shared.subjects import ALL_SUBJECTS, STREAM
from tests.factories import (
    NOW,
    conference_held,
    coordinator_assigned,
    plan_distributed,
    request_received,
)


def case_events(case_id: uuid.UUID) -> list[IntegrationEvent]:
    return [
        request_received(case_id),
        coordinator_assigned(case_id),
        conference_held(case_id),
        plan_distributed(case_id),
        FollowUpDue(
            case_id=case_id, model="family", timer_id="research", kind="research", due_at=NOW
        ),
    ]


async def fill_stream(nats_url: str, count: int) -> None:
    """``count`` integration events on a fresh KRING stream, published as the relays do."""
    connection = await nats.connect(nats_url)
    try:
        js: Any = connection.jetstream(publish_async_max_pending=4000)
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(STREAM)
        await ensure_streams(js)
        positions: Counter[str] = Counter()
        published = 0
        while published < count:
            for step, item in enumerate(case_events(uuid.uuid4())):
                positions[item.origin] += 1
                position = positions[item.origin]
                at = NOW + timedelta(seconds=published + step)
                await js.publish_async(
                    item.subject(),
                    encode(item, origin=item.origin, position=position, time=at),
                    headers={
                        "Nats-Msg-Id": message_id(item.origin, position),
                        ORIGIN_HEADER: item.origin,
                        POSITION_HEADER: str(position),
                    },
                )
                published += 1
        await js.publish_async_completed()
    finally:
        await connection.close()


async def replay_bench(report: Report, nats_url: str, count: int, profiler: Any = None) -> None:
    section(f"replay ({count} integration events on KRING)")
    await fill_stream(nats_url, count)
    connection = await nats.connect(nats_url)
    try:
        _, raw_rate = await ordered_read(connection, STREAM, ALL_SUBJECTS)
    finally:
        await connection.close()
    report.add("replay_raw_read", "raw ordered-consumer read of KRING", raw_rate, "msg/s")
    started = time.perf_counter()
    projection = await replay(nats_url)
    rate = projection.read / (time.perf_counter() - started)
    if projection.events != count:
        raise RuntimeError(f"replay folded {projection.events} of {count} events")
    report.add(
        "replay",
        f"kring replay into the projection ({len(projection.cases)} cases)",
        rate,
        "events/s",
        baseline="replay_raw_read",
        target=">= 0.5 x raw read",
        met=rate >= 0.5 * raw_rate,
    )
    if profiler is not None:
        profiler.start()
        try:
            await replay(nats_url)
        finally:
            profiler.stop()
