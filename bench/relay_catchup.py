"""Relay catch-up: N integration events stored while intake's relay is not running, then the
relay (``shared.relay.OutboxRelay``, as the service runs it) publishes them all."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

from nats.js.errors import NotFoundError

from bench.report import Report, section
from services.intake.bootstrap import build
from services.intake.domain import Request
from services.intake.settings import IntakeSettings
from shared.bus import Bus
from shared.relay import OutboxRelay
from shared.subjects import STREAM
from tests.servers import NatsServer

ACTOR = {"id": "bench", "role": "regional_manager"}
BATCH = 200


def store_accepted_requests(app: Any, count: int) -> None:
    """``count`` requests submitted, clarified and accepted: three domain events each, one of
    which (Accepted) the relay publishes as RequestReceived."""
    for first in range(0, count, BATCH):
        requests = []
        for _ in range(min(BATCH, count - first)):
            request = Request.submit(
                uuid.uuid4(),
                requester={"name": "Requester", "relation": "family"},
                central_persons=["Central person"],
                model="family",
                region="Utrecht",
                languages=["nl"],
                description="A first description.",
                submitted_at=app.clock.now(),
                actor=ACTOR,
            )
            request.clarify(
                conference_questions=["What does the family need?"],
                funding={"payer": "municipality"},
                minimum_requirements=[],
                actor=ACTOR,
            )
            request.accept(at=app.clock.now(), actor=ACTOR)
            requests.append(request)
        app.save(*requests)


async def delete_stream(server: NatsServer) -> None:
    connection = await server.connect("admin")
    try:
        with contextlib.suppress(NotFoundError):
            await connection.jetstream().delete_stream(STREAM)
    finally:
        await connection.close()


async def catch_up(server: NatsServer, work: Path, count: int, profiler: Any = None) -> float:
    """Events per second from the relay's start until the last stored event is acknowledged."""
    await delete_stream(server)
    definition = build(IntakeSettings(**server.settings("intake"), data_dir=work))
    app = definition.app
    store_accepted_requests(app, count)
    bus = Bus(server.url, user="intake", password=server.password("intake"))
    relay = OutboxRelay(app, bus, definition.translate)
    await bus.run()
    last = app.recorder.max_notification_id()
    if profiler is not None:
        profiler.start()
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    try:
        while relay.position != last:
            if task.done():
                task.result()
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
    finally:
        if profiler is not None:
            profiler.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.stop()
        app.close()
    info = await bus_stream_count(server)
    if info != count:
        raise RuntimeError(f"relay published {info} of {count} events")
    return count / elapsed


async def bus_stream_count(server: NatsServer) -> int:
    connection = await server.connect("analyst")
    try:
        return int((await connection.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await connection.close()


async def relay_bench(report: Report, server: NatsServer, work: Path, count: int) -> None:
    section(f"relay catch-up ({count} RequestReceived stored while the relay was stopped)")
    rate = await catch_up(server, work / "relay", count)
    best = max(report.value("publish_gather") or 0, report.value("publish_async") or 0)
    baseline = "publish_async" if best == report.value("publish_async") else "publish_gather"
    report.add(
        "relay_catchup",
        "relay catch-up (OutboxRelay, intake store)",
        rate,
        "events/s",
        baseline=baseline,
        target=">= 0.5 x raw pipelined publish",
        met=rate >= 0.5 * best if best else None,
    )
    if report.value("publish_gather"):
        report.add(
            "relay_vs_gather",
            "  (ratio to the 500-in-flight gather alone)",
            rate,
            "events/s",
            baseline="publish_gather",
        )
