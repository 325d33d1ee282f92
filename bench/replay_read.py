"""Replay: ``kring.replay`` folding the whole KRING stream into the analyst's projection (as the
analyst, with direct gets: an analyst may create no consumer), against the raw ordered-consumer
read of the same stream (as admin, who may)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from bench.baselines import ordered_read
from bench.report import Report, section
from bench.stream import fill_stream
from kring.client import connect_nats
from kring.replay import Projection, ReplayFilter, replay_with
from shared.events import FollowUpDue, IntegrationEvent
from shared.subjects import ALL_SUBJECTS, STREAM
from tests.factories import (
    NOW,
    conference_held,
    coordinator_assigned,
    plan_distributed,
    request_received,
)
from tests.servers import NatsServer


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


def stream_events(count: int) -> Iterator[IntegrationEvent]:
    """``count`` integration events, case after case, each case's as the workflow makes them."""
    while True:
        for item in case_events(uuid.uuid4()):
            if count == 0:
                return
            count -= 1
            yield item


async def replay(server: NatsServer) -> Projection:
    """What ``kring replay`` does, as the analyst."""
    connection = await connect_nats(server.url, "analyst", password=server.password("analyst"))
    try:
        return await replay_with(connection, ReplayFilter())
    finally:
        await connection.close()


async def replay_bench(
    report: Report, server: NatsServer, count: int, profiler: Any = None
) -> None:
    section(f"replay ({count} integration events on KRING)")
    await fill_stream(server, stream_events(count))
    connection = await server.connect("admin")
    try:
        _, raw_rate = await ordered_read(connection, STREAM, ALL_SUBJECTS)
    finally:
        await connection.close()
    report.add("replay_raw_read", "raw ordered-consumer read of KRING", raw_rate, "msg/s")
    started = time.perf_counter()
    projection = await replay(server)
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
            await replay(server)
        finally:
            profiler.stop()
