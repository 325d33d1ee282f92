"""How long a lost stream takes to come back: ``python -m tests.deploy.measure_rebuild [EVENTS]``.

Starts the three NATS nodes of docker-compose.yml as local processes (their own config, with
``sync_interval: always``), stores EVENTS accepted requests in a fresh intake store (SQLite), then
lets intake's relay publish them all into an empty KRING stream with three replicas, as after a
lost stream, and prints the rate. docs/operations.md quotes the figure.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.relay_catchup import store_accepted_requests
from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared.bus import Bus
from shared.logging import configure_logging
from shared.relay import OutboxRelay
from shared.subjects import STREAM
from tests.deploy.compose_processes import nats_only


async def measure(events: int, work: Path) -> str:
    cluster = nats_only(work / "nats")
    cluster.up()
    try:
        url = ",".join(cluster.nats_servers())
        password = cluster.nats_password("intake")
        settings = IntakeSettings(
            nats_url=url,
            nats_user="intake",
            nats_password=password,
            data_dir=work / "data",
            oidc_issuer="http://127.0.0.1",
        )
        definition = build(settings)
        app = definition.app
        store_accepted_requests(app, events)
        bus = Bus(url, replicas=3, user="intake", password=password)
        await asyncio.wait_for(bus.run(), 60)
        relay = OutboxRelay(app, bus, definition.translate)
        last = app.recorder.max_notification_id()
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        while relay.position != last:
            await asyncio.sleep(0.05)
        took = time.perf_counter() - started
        task.cancel()
        info = await bus.js.stream_info(STREAM)
        await bus.stop()
        app.close()
        count = info.state.messages
        return (
            f"{count} events back on {STREAM} (R{info.config.num_replicas}, three local nodes,"
            f" sync_interval always) in {took:.1f} s: {count / took:,.0f} events/s"
        )
    finally:
        cluster.down()


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    configure_logging("measure", "WARNING", "console")
    with tempfile.TemporaryDirectory() as work:
        print(asyncio.run(measure(events, Path(work))))


if __name__ == "__main__":
    main()
