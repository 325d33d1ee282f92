"""The connection to NATS JetStream: a FastStream broker that never gives up reconnecting,
and the one place the KRING streams are declared.

A service starts serving HTTP at once; the bus connects in the background and the service
reports not-ready until it has (DESIGN.md §7: nats-py gives up after ~2 minutes by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.logging import get_logger
from shared.metrics import BUS_CONNECTED
from shared.subjects import ALL_SUBJECTS, DLQ_STREAM, DLQ_SUBJECTS, STREAM

log = get_logger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """KRING keeps every integration event (no max age: the stream is the replayable log);
    KRING_DLQ keeps what consumers could not process."""
    common = {
        "storage": StorageType.FILE,
        "retention": RetentionPolicy.LIMITS,
        "discard": DiscardPolicy.OLD,
        "num_replicas": replicas,
        "duplicate_window": DUPLICATE_WINDOW_SECONDS,
        "allow_direct": True,
    }
    return [
        StreamConfig(name=STREAM, subjects=[ALL_SUBJECTS], **common),  # type: ignore[arg-type]
        StreamConfig(name=DLQ_STREAM, subjects=[DLQ_SUBJECTS], **common),  # type: ignore[arg-type]
    ]


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the streams if missing; never rewrite an existing one (operators may have tuned
    it, and faststream's declare-on-start would silently reset their settings)."""
    for config in stream_configs(replicas):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("bus.stream_created", stream=config.name)


def build_broker(nats_url: str, on_reconnect: Callable[[], Awaitable[None]]) -> NatsBroker:
    async def disconnected() -> None:
        BUS_CONNECTED.set(0)
        log.warning("bus.disconnected")

    async def reconnected() -> None:
        BUS_CONNECTED.set(1)
        log.info("bus.reconnected")
        await on_reconnect()

    return NatsBroker(
        nats_url,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        # Consumers log what matters themselves; faststream's per-message logging costs a
        # fifth of the throughput (DESIGN.md §6) and prints outside structlog.
        logger=None,
    )


class Bus:
    """Owns the broker's life: connect (forever), declare streams, start subscribers."""

    def __init__(self, nats_url: str, replicas: int = 1) -> None:
        self._replicas = replicas
        self._reconnect_listeners: list[Callable[[], None]] = []
        self.broker = build_broker(nats_url, self._notify_reconnected)
        self._started = asyncio.Event()

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        self._reconnect_listeners.append(listener)

    async def _notify_reconnected(self) -> None:
        for listener in self._reconnect_listeners:
            listener()

    @property
    def js(self) -> JetStreamContext:
        return self.broker.connection.jetstream()

    @property
    def ready(self) -> bool:
        if not self._started.is_set():
            return False
        connection = self.broker.connection
        return connection is not None and connection.is_connected

    async def wait_started(self) -> None:
        await self._started.wait()

    async def run(self) -> None:
        """Connect (retrying forever), declare streams, start subscribers."""
        log.info("bus.connecting")
        await self.broker.connect()
        delay = 0.2
        while True:
            try:
                await ensure_streams(self.js, self._replicas)
                break
            except Exception as error:  # JetStream not available yet: retry
                log.warning("bus.streams_unavailable", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self.broker.start()
        BUS_CONNECTED.set(1)
        self._started.set()
        log.info("bus.ready")

    async def stop(self) -> None:
        BUS_CONNECTED.set(0)
        await self.broker.stop()
