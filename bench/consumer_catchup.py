"""Consumer catch-up: N PlanDistributed on KRING, applied by followup's tracked consumer
(``shared.consumer``, as the service runs it: one message at a time in stream order, exact
tracking, manual acks). Then the same with FastStream's per-message logging switched on (to a
file, as a service's stdout), which ``shared.bus`` switches off: what that logging costs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

from faststream.nats import NatsBroker
from faststream.nats.security import NatsUserPassword

from bench.report import Report, section
from bench.stream import fill_stream
from services.followup.bootstrap import build
from services.followup.settings import FollowupSettings
from shared.bus import Bus
from shared.consumer import subscribe
from shared.permissions import inbox_prefix
from tests.factories import plan_distributed
from tests.servers import NatsServer


def faststream_logger(path: Path) -> logging.Logger:
    logger = logging.getLogger(f"bench.faststream.{path.stem}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.FileHandler(path))
    return logger


async def catch_up(
    server: NatsServer, work: Path, count: int, *, faststream_logging: bool
) -> float:
    """Events per second from the consumer's start until the last one is applied."""
    await fill_stream(server, (plan_distributed(uuid.uuid4()) for _ in range(count)))
    app = build(FollowupSettings(**server.settings("followup"), data_dir=work)).app
    bus = Bus(server.url, user="followup", password=server.password("followup"))
    if faststream_logging:
        # The consumers run on the term's connection (shared.bus): that broker logs.
        def logging_broker() -> NatsBroker:
            return NatsBroker(
                server.url,
                security=NatsUserPassword("followup", server.password("followup")),
                inbox_prefix=inbox_prefix("followup"),
                logger=faststream_logger(work / "faststream.log"),
            )

        bus.make_term_broker = logging_broker  # type: ignore[method-assign]
    subscribe(bus, app, "plans")
    started = time.perf_counter()
    try:
        await bus.run()
        # In stream order: the last position tracked means all of them were applied.
        while not await asyncio.to_thread(app.queries.has_tracking, "plans", count):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        await bus.stop()
        app.close()
    return count / elapsed


async def consumer_bench(report: Report, server: NatsServer, work: Path, count: int) -> None:
    section(f"consumer catch-up ({count} PlanDistributed applied by followup's tracked consumer)")
    rate = await catch_up(server, work / "consumer", count, faststream_logging=False)
    report.add(
        "consumer_catchup",
        "consumer catch-up (shared.consumer, followup store)",
        rate,
        "events/s",
        baseline="es_saves",
    )
    logged = await catch_up(server, work / "consumer-logged", count, faststream_logging=True)
    report.add(
        "consumer_logged",
        "  the same with FastStream's per-message logging",
        logged,
        "events/s",
        baseline="consumer_catchup",
    )
