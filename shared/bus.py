"""The connection to NATS JetStream: FastStream brokers that never give up reconnecting, and the
one place the KRING streams are declared.

A service starts serving HTTP at once; the bus connects in the background and the service
reports not-ready until it has (nats-py alone gives up after about two minutes).

Two connections, both as the service's own identity (``shared.permissions``), with replies and
push deliveries under that identity's inbox prefix, the only place the server lets it read:

- the bus's own, in every replica: readiness (``kring_bus_connected``), and the AsyncAPI
  document of what the service publishes and follows (its subscribers are registered on this
  broker for the document, and never started on it);
- the *term's*, only in the replica that holds the service's lease (``shared.lease``): the
  streams made where missing, the durable consumers and the operator's replay requests, the
  relay's publishes and reads, the dead letters. It is closed when the term ends, so nothing of
  a replica that lost its lease reaches NATS afterwards; what it had been delivered and not
  acknowledged goes to the next holder once JetStream's ack wait has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.security import NatsSecurity, NatsUserPassword
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared.fence import Term
from shared.logging import get_logger
from shared.metrics import BUS_CONNECTED
from shared.nats_tls import servers
from shared.permissions import inbox_prefix
from shared.subjects import ALL_SUBJECTS, DLQ_STREAM, DLQ_SUBJECTS, STREAM

log = get_logger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0
#: How long a term's connection may take to hand back what it was delivered when it closes.
TERM_DRAIN_SECONDS = 2
#: What a follower registers: its subscribers, on a broker, for a term (None: the document).
Registration = Callable[[NatsBroker, Term | None], None]


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
    tls: SSLContext | None = None,
    connected_gauge: bool = True,
    drain_timeout: int = 30,
) -> NatsBroker:
    async def disconnected() -> None:
        if connected_gauge:
            BUS_CONNECTED.set(0)
        log.warning("bus.disconnected", term=not connected_gauge)

    async def reconnected() -> None:
        if connected_gauge:
            BUS_CONNECTED.set(1)
        log.info("bus.reconnected", term=not connected_gauge)
        await on_reconnect()

    return NatsBroker(
        servers(nats_url),
        security=NatsUserPassword(user, password, ssl_context=tls, use_ssl=tls is not None)
        if user and password
        else (NatsSecurity(ssl_context=tls, use_ssl=True) if tls is not None else None),
        inbox_prefix=inbox_prefix(user) if user else "_INBOX",
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        drain_timeout=drain_timeout,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        # Consumers log what matters themselves; faststream's per-message logging costs a
        # fifth of the throughput (make bench: consumer_logged) and prints outside structlog.
        logger=None,
    )


async def _nothing() -> None:
    return None


class Bus:
    """Owns the connections' lives: the bus's own (connect, forever) and each term's (connect,
    declare streams, start the subscribers; close)."""

    def __init__(
        self,
        nats_url: str,
        replicas: int = 1,
        *,
        user: str | None = None,
        password: str | None = None,
        tls: SSLContext | None = None,
    ) -> None:
        self._replicas = replicas
        self._reconnect_listeners: list[Callable[[], None]] = []
        self.nats_url, self.user, self._password, self._tls = nats_url, user, password, tls
        self.broker = build_broker(nats_url, _nothing, user=user, password=password, tls=tls)
        self._registrations: list[Registration] = []
        #: The term's broker while this replica holds the lease (None otherwise).
        self.term_broker: NatsBroker | None = None
        self._started = asyncio.Event()
        self._connected = False
        #: The durable consumers this service subscribes to: (name, filter subject).
        self.consumers: list[tuple[str, str]] = []
        #: Why the last attempt to connect failed (for readiness), if it did.
        self.problem: str | None = None

    def make_term_broker(self) -> NatsBroker:
        """A broker for one term (its own connection); replaceable, as the bench does."""
        return build_broker(
            self.nats_url,
            self._notify_reconnected,
            user=self.user,
            password=self._password,
            tls=self._tls,
            connected_gauge=False,
            drain_timeout=TERM_DRAIN_SECONDS,
        )

    def register(self, registration: Registration) -> None:
        """Subscribers to start with each term (and to document now)."""
        registration(self.broker, None)
        self._registrations.append(registration)

    def add_consumer(self, name: str, subject: str) -> None:
        self.consumers.append((name, subject))

    def on_reconnected(self, listener: Callable[[], None]) -> None:
        self._reconnect_listeners.append(listener)

    async def _notify_reconnected(self) -> None:
        for listener in self._reconnect_listeners:
            listener()

    @property
    def connection(self) -> Any:
        """The term's connection while there is one, else the bus's own."""
        broker = self.term_broker if self._started.is_set() else None
        return (broker or self.broker).connection

    @property
    def js(self) -> JetStreamContext:
        js: JetStreamContext = self.connection.jetstream()
        return js

    @property
    def ready(self) -> bool:
        if not self._connected:
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
        """Until this replica's term has its consumers subscribed (its relay may publish)."""
        await self._started.wait()

    async def connect(self) -> None:
        """The bus's own connection (retried by the caller until it succeeds)."""
        log.info("bus.connecting", user=self.user)
        try:
            await self.broker.connect()
        except Exception as error:  # refused credentials, no server: said, then retried
            self.problem = _connect_problem(error, self.user)
            log.error("bus.connect_failed", user=self.user, problem=self.problem)
            raise
        self.problem = None
        self._connected = True
        BUS_CONNECTED.set(1)
        log.info("bus.ready")

    async def start_term(self, term: Term | None) -> None:
        """Connect the term's broker, declare the streams, subscribe; return once subscribed
        (retried by the caller while NATS is away)."""
        await self.stop_term()
        broker = self.make_term_broker()
        for registration in self._registrations:
            registration(broker, term)
        self.term_broker = broker
        await broker.connect()
        js = broker.connection.jetstream()
        delay = 0.2
        while True:
            try:
                await ensure_streams(js, self._replicas)
                await self._adopt_consumers(js, broker)
                break
            except Exception as error:  # JetStream not available yet: retry
                log.warning("bus.streams_unavailable", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        await broker.start()
        self._started.set()
        log.info("bus.term_started", consumers=len(self.consumers))

    async def stop_term(self) -> None:
        """Close the term's connection (its subscriptions with it)."""
        self._started.clear()
        broker, self.term_broker = self.term_broker, None
        if broker is None:
            return
        try:
            await asyncio.wait_for(broker.stop(), TERM_DRAIN_SECONDS + 1)
        except Exception as error:  # not even a drain: close it outright
            log.warning("bus.term_stop_failed", error=type(error).__name__)
            connection = getattr(broker, "_connection", None)
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
        log.info("bus.term_stopped")

    async def run(self) -> None:
        """Both at once, for a process that is the only one of its service (the bench, tools)."""
        await self.connect()
        await self.start_term(None)

    async def _adopt_consumers(self, js: JetStreamContext, broker: NatsBroker) -> None:
        """A durable made before this service had its own identity delivers to a default
        ``_INBOX.…`` subject, where the server no longer lets it subscribe: move its deliveries
        under the service's inbox (its position and acks are kept)."""
        if self.user is None:
            return
        prefix = inbox_prefix(self.user) + "."
        for name, _ in self.consumers:
            try:
                info = await js.consumer_info(STREAM, name)
            except NotFoundError:
                continue  # made on subscribe
            deliver = info.config.deliver_subject
            if deliver is None or deliver.startswith(prefix):
                continue
            moved = info.config.evolve(name=name, deliver_subject=broker.connection.new_inbox())
            await js.add_consumer(STREAM, config=moved)
            log.warning("bus.consumer_inbox_moved", consumer=name)

    async def stop(self) -> None:
        await self.stop_term()
        BUS_CONNECTED.set(0)
        self._connected = False
        with contextlib.suppress(Exception):
            await self.broker.stop()


def _connect_problem(error: Exception, user: str | None) -> str:
    text = str(error)
    if "Authorization Violation" in text or "Authentication" in text:
        who = f"user {user!r}" if user else "an anonymous connection"
        return f"the server refused {who} (KRING_NATS_USER / KRING_NATS_PASSWORD)"
    return f"cannot connect ({type(error).__name__})"
