"""The connection to NATS JetStream: a FastStream broker that never gives up reconnecting,
and the one place the KRING streams are declared.

A service starts serving HTTP at once; the bus connects in the background and the service
reports not-ready until it has (DESIGN.md §7: nats-py gives up after ~2 minutes by default).

It connects as the service's own identity (``shared.permissions``), with replies and push
deliveries under that identity's inbox prefix: the only place the server lets it read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker
from faststream.nats.security import NatsUserPassword
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.logging import get_logger
from shared.metrics import BUS_CONNECTED
from shared.permissions import inbox_prefix
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


def build_broker(
    nats_url: str,
    on_reconnect: Callable[[], Awaitable[None]],
    *,
    user: str | None = None,
    password: str | None = None,
) -> NatsBroker:
    async def disconnected() -> None:
        BUS_CONNECTED.set(0)
        log.warning("bus.disconnected")

    async def reconnected() -> None:
        BUS_CONNECTED.set(1)
        log.info("bus.reconnected")
        await on_reconnect()

    return NatsBroker(
        nats_url,
        security=NatsUserPassword(user, password) if user and password else None,
        inbox_prefix=inbox_prefix(user) if user else "_INBOX",
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

    def __init__(
        self,
        nats_url: str,
        replicas: int = 1,
        *,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self._replicas = replicas
        self._reconnect_listeners: list[Callable[[], None]] = []
        self.user = user
        self.broker = build_broker(nats_url, self._notify_reconnected, user=user, password=password)
        self._started = asyncio.Event()
        #: The durable consumers this service subscribes to: (name, filter subject).
        self.consumers: list[tuple[str, str]] = []
        #: Why the last attempt to connect failed (for readiness), if it did.
        self.problem: str | None = None

    def add_consumer(self, name: str, subject: str) -> None:
        self.consumers.append((name, subject))

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

    def not_ready(self) -> list[str]:
        """Why the bus is not ready (empty: it is)."""
        if self.ready:
            return []
        if self.problem:
            return [f"NATS: {self.problem}"]
        return ["waiting for NATS"]

    async def wait_started(self) -> None:
        await self._started.wait()

    async def run(self) -> None:
        """Connect (retrying forever), declare streams, start subscribers."""
        log.info("bus.connecting", user=self.user)
        try:
            await self.broker.connect()
        except Exception as error:  # refused credentials, no server: said, then retried
            self.problem = _connect_problem(error, self.user)
            log.error("bus.connect_failed", user=self.user, problem=self.problem)
            raise
        self.problem = None
        delay = 0.2
        while True:
            try:
                await ensure_streams(self.js, self._replicas)
                await self._adopt_consumers()
                break
            except Exception as error:  # JetStream not available yet: retry
                log.warning("bus.streams_unavailable", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await self.broker.start()
        BUS_CONNECTED.set(1)
        self._started.set()
        log.info("bus.ready")

    async def _adopt_consumers(self) -> None:
        """A durable made before this service had its own identity delivers to a default
        ``_INBOX.…`` subject, where the server no longer lets it subscribe: move its deliveries
        under the service's inbox (its position and acks are kept)."""
        if self.user is None:
            return
        prefix = inbox_prefix(self.user) + "."
        for name, _ in self.consumers:
            try:
                info = await self.js.consumer_info(STREAM, name)
            except NotFoundError:
                continue  # made on subscribe
            deliver = info.config.deliver_subject
            if deliver is None or deliver.startswith(prefix):
                continue
            moved = info.config.evolve(
                name=name, deliver_subject=self.broker.connection.new_inbox()
            )
            await self.js.add_consumer(STREAM, config=moved)
            log.warning("bus.consumer_inbox_moved", consumer=name)

    async def stop(self) -> None:
        BUS_CONNECTED.set(0)
        await self.broker.stop()


def _connect_problem(error: Exception, user: str | None) -> str:
    text = str(error)
    if "Authorization Violation" in text or "Authentication" in text:
        who = f"user {user!r}" if user else "an anonymous connection"
        return f"the server refused {who} (KRING_NATS_USER / KRING_NATS_PASSWORD)"
    return f"cannot connect ({type(error).__name__})"
