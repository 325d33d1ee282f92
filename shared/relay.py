"""The outbox relay: stored events → JetStream (DESIGN.md §3).

A service never publishes inside a command. The relay reads the application's notification log
in order, turns the events that make up the public contract into CloudEvents, and publishes them
with ``Nats-Msg-Id = <origin>:<position>``. It keeps a checkpoint in the service's own database,
advanced only over a contiguous run of acknowledged publishes.

Where to resume is the lower of that checkpoint and the last position found on the stream. So
after a crash it re-publishes at most one batch (JetStream drops those duplicates within its
window, consumers' tracking after it), and when the stream lost its tail or was recreated the
relay re-publishes from the store: the store is the truth, the stream is derived. On a start or
a reconnect it also goes back over the last minute (``REPUBLISH_SECONDS``): the stream's last
message may be one that landed after the server lost older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from nats.js.errors import NotFoundError

from shared.application import KringApplication
from shared.bus import DUPLICATE_WINDOW_SECONDS, Bus
from shared.envelope import ORIGIN_HEADER, POSITION_HEADER, encode, message_id
from shared.erasure import CaseErasedError
from shared.events import IntegrationEvent
from shared.logging import get_logger
from shared.metrics import RELAY_FAILURES, RELAY_POSITION, RELAY_PUBLISHED
from shared.subjects import STREAM, origin_subjects

log = get_logger(__name__)

Translator = Callable[[DomainEventProtocol[UUID]], IntegrationEvent | None]

#: On a start or a reconnect, what was published (or stored) this recently is published again,
#: even where the stream's last message is newer: a crashed server may have lost it while a
#: publish buffered during the outage landed first. The server drops the copies it still holds
#: (its duplicate window is longer).
REPUBLISH_SECONDS = DUPLICATE_WINDOW_SECONDS / 2
#: The time of a notification that cannot be read any more (its case was erased).
ERASED_LONG_AGO = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Outgoing:
    position: int
    event: IntegrationEvent | None
    time: datetime


class OutboxRelay:
    def __init__(
        self,
        app: KringApplication,
        bus: Bus,
        translate: Translator,
        *,
        batch_size: int = 500,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self.app = app
        self.origin = app.name
        self.bus = bus
        self.translate = translate
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.position: int | None = None
        self._rewind = False
        #: (when, from which position) of each advance in the last ``REPUBLISH_SECONDS``.
        self._advances: deque[tuple[float, int]] = deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        app.on_stored(self._wake_from_any_thread)
        bus.on_reconnected(self.rewind)

    def _wake_from_any_thread(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def rewind(self) -> None:
        """Re-derive the resume position (after a reconnect the stream may have lost its tail).
        A batch in flight finishes first; the next one starts from the re-derived position."""
        self._rewind = True
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            await self.bus.wait_started()
            if not self.app.store_reachable:  # nothing to read until it is back
                await asyncio.sleep(self.idle_poll_seconds)
                continue
            try:
                if self.position is None or self._rewind:
                    self._rewind = False
                    self.position = await self.resume_position()
                relayed = await self.relay_batch()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the service alive; retry
                RELAY_FAILURES.labels(self.origin).inc()
                log.warning("relay.failed", error=type(error).__name__, detail=str(error)[:200])
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if relayed < self.batch_size:
                await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll_seconds)
        self._wake.clear()

    async def resume_position(self) -> int:
        checkpoint = await asyncio.to_thread(self.app.queries.checkpoint, self.origin)
        on_stream = await self.last_position_on_stream()
        recent = min(
            self._published_since(time.monotonic() - REPUBLISH_SECONDS, checkpoint),
            await asyncio.to_thread(
                self._stored_since, datetime.now(UTC) - timedelta(seconds=REPUBLISH_SECONDS)
            ),
        )
        position = min(checkpoint, on_stream, recent)
        log.info(
            "relay.resume",
            checkpoint=checkpoint,
            on_stream=on_stream,
            recent=recent,
            position=position,
        )
        return position

    def _published_since(self, moment: float, default: int) -> int:
        """Where the relay was at ``moment`` (``default`` if it has not moved since)."""
        while self._advances and self._advances[0][0] < moment:
            self._advances.popleft()
        return self._advances[0][1] if self._advances else default

    def _stored_since(self, moment: datetime) -> int:
        """The last position stored before ``moment``, read back from the store's end (what a
        process that just started knows of "recent")."""
        end = self.app.recorder.max_notification_id() or 0
        while end > 0:
            start = max(end - self.batch_size, 0)
            older = [o.position for o in self._read(start) if o.time < moment]
            if older:
                return max(older)
            end = start
        return 0

    async def last_position_on_stream(self) -> int:
        try:
            message = await self.bus.js.get_last_msg(STREAM, origin_subjects(self.origin))
        except NotFoundError:
            return 0
        headers = message.headers or {}
        return int(headers.get(POSITION_HEADER, 0))

    async def relay_batch(self) -> int:
        """Publish the next batch; return how many notifications it covered."""
        assert self.position is not None
        outgoing = await asyncio.to_thread(self._read, self.position)
        if not outgoing:
            return 0
        to_publish = [o for o in outgoing if o.event is not None]
        results = await asyncio.gather(
            *(self._publish(o) for o in to_publish), return_exceptions=True
        )
        failed = {o.position: r for o, r in zip(to_publish, results, strict=True) if r is not None}
        reached = self.position
        for item in outgoing:
            if item.position in failed:
                break
            reached = item.position
        published = sum(1 for o in to_publish if o.position <= reached)
        if reached != self.position:
            if published:
                # Only where something went out: most commands store events the contract
                # does not carry, and a checkpoint write for each is a commit (an fsync) per
                # command for nothing. Behind by those, a restart only re-reads them.
                await asyncio.to_thread(self.app.queries.save_checkpoint, self.origin, reached)
            self._advances.append((time.monotonic(), self.position))
            self._published_since(time.monotonic() - REPUBLISH_SECONDS, reached)  # prune
            self.position = reached
            RELAY_POSITION.labels(self.origin).set(reached)
            RELAY_PUBLISHED.labels(self.origin).inc(published)
        if failed:
            first = failed[min(failed)]
            raise first if isinstance(first, BaseException) else RuntimeError(str(first))
        return len(outgoing)

    def _read(self, after: int) -> list[Outgoing]:
        notifications = self.app.recorder.select_notifications(
            start=after, limit=self.batch_size, inclusive_of_start=False
        )
        self.app.keyring.prefetch(n.originator_id for n in notifications)
        outgoing = []
        for notification in notifications:
            try:
                domain_event: Any = self.app.mapper.to_domain_event(notification)
            except CaseErasedError:
                # Erased before it went out: nothing of it is published any more.
                outgoing.append(Outgoing(notification.id, None, ERASED_LONG_AGO))
                continue
            outgoing.append(
                Outgoing(notification.id, self.translate(domain_event), domain_event.timestamp)
            )
        return outgoing

    async def _publish(self, item: Outgoing) -> BaseException | None:
        assert item.event is not None
        payload = encode(item.event, origin=self.origin, position=item.position, time=item.time)
        headers = {
            "Nats-Msg-Id": message_id(self.origin, item.position),
            ORIGIN_HEADER: self.origin,
            POSITION_HEADER: str(item.position),
        }
        try:
            ack = await self.bus.js.publish(
                item.event.subject(), payload, stream=STREAM, headers=headers
            )
            if ack.duplicate and not await self._still_stored(ack.seq):
                # The server remembers the id (duplicate window) but the message itself was
                # removed: publish it again under a suffixed id. Consumers track by origin
                # and position, so this copy is applied at most once.
                headers["Nats-Msg-Id"] += f":again-{ack.seq}"
                await self.bus.js.publish(
                    item.event.subject(), payload, stream=STREAM, headers=headers
                )
        except Exception as error:  # reported to relay_batch, which retries
            return error
        return None

    async def _still_stored(self, sequence: int) -> bool:
        try:
            await self.bus.js.get_msg(STREAM, seq=sequence)
        except NotFoundError:
            return False
        return True
