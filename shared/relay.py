"""The outbox relay: stored events → JetStream (docs/architecture.md, "Outbox and tracking").

A service never publishes inside a command. The relay reads the application's notification log
in order, turns the events that make up the public contract into CloudEvents, and publishes them
with ``Nats-Msg-Id = <origin>:<position>``. It keeps a checkpoint in the service's own database,
advanced only over a contiguous run of acknowledged publishes.

Where to resume is the lower of that checkpoint and the last position found on the stream. So
after a crash it re-publishes at most one batch (JetStream drops those duplicates within its
window, consumers' tracking after it), and when the stream lost its tail or was recreated the
relay re-publishes from the store: the store is the truth, the stream is derived. On a start or
a reconnect it also goes back over the last minute (``REPUBLISH_SECONDS``): the stream's last
message may be one that landed after the server lost older ones. A last message whose
``Kring-Position`` is not a position is passed over (counted and logged), never trusted.

A "duplicate" answer is not taken on trust. JetStream de-duplicates by ``Nats-Msg-Id`` across the
whole stream, so any identity that may publish at all can take ``intake:15`` first on a subject of
its own, and the real event would vanish. The relay reads the message the server holds under that
id: its own copy, fine; gone, it publishes again under ``<id>:again-<seq>``; anything else is a
*conflict*: counted (``kring_relay_conflicts_total``), logged, and readiness answers 503 until the
service is restarted (someone must look), and the relay publishes its event again under
``<id>:conflict-<seq>`` with a ``Kring-Conflict`` header, so the event is on the stream. Consumers
track by origin and position: one that parked the other message (it fails their provenance
check) applies this one; one that had applied something at that position parks this one as
``conflicting-duplicate`` rather than skip it.

It runs in the one replica that holds the service's lease (``shared.lease``), as that term's
work, and starts each term afresh: the position it resumes from is derived again (the replica
that held the lease before may have moved the checkpoint on), and a round begins only while the
term lasts (``shared.fence``); the checkpoint of a relay whose term is over is not written. Two
replicas share the store, and so the checkpoint: it is one relay's at a time.

A relay that keeps failing (no round succeeding for ``unhealthy_after`` seconds, 30 by default)
also makes readiness 503. Thirty seconds is three times the longest ordinary interruption: a
JetStream leader election after a node is lost takes up to about ten seconds, and the relay's
back-off tops at five with a publish timing out after five; a relay stuck on something that will
not pass by itself shows within a minute of readiness probes.
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
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from shared import fence
from shared.application import KringApplication
from shared.bus import DUPLICATE_WINDOW_SECONDS, Bus
from shared.envelope import (
    CONFLICT_HEADER,
    ORIGIN_HEADER,
    POSITION_HEADER,
    encode,
    message_headers,
    parse_position,
)
from shared.erasure import CaseErasedError
from shared.events import IntegrationEvent
from shared.logging import get_logger
from shared.metrics import (
    RELAY_CONFLICTS,
    RELAY_FAILURES,
    RELAY_FOREIGN,
    RELAY_POSITION,
    RELAY_PUBLISHED,
)
from shared.stream_read import DirectReader, NoRespondersError
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
UNHEALTHY_AFTER_SECONDS = 30.0
#: Messages without a readable position passed over to find the last one of this origin;
#: beyond, the relay publishes from its checkpoint's start (nothing lost, more re-sent).
MAX_FOREIGN_SKIPS = 50
#: Tries to get one event onto the stream past ids others hold.
MAX_ID_TRIES = 4


class RelayConflictError(RuntimeError):
    """The relay could not find an id for its event that nobody else holds."""


@dataclass(frozen=True)
class Conflict:
    """Another message held the id of one of the relay's events."""

    position: int
    stream_sequence: int


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
        unhealthy_after_seconds: float = UNHEALTHY_AFTER_SECONDS,
    ) -> None:
        self.app = app
        self.origin = app.name
        self.bus = bus
        self.translate = translate
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.position: int | None = None
        self.unhealthy_after_seconds = unhealthy_after_seconds
        #: Since when no round has succeeded (monotonic), and why the last failed.
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.conflicts: list[Conflict] = []
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

    def not_ready(self) -> list[str]:
        """Why the relay makes the service not ready (empty: it does not)."""
        reasons = []
        if self.failing_since is not None:
            failing = time.monotonic() - self.failing_since
            if failing >= self.unhealthy_after_seconds:
                reasons.append(f"relay failing for {failing:.0f} s ({self.last_error})")
        if self.conflicts:
            last = self.conflicts[-1]
            reasons.append(
                f"relay: {len(self.conflicts)} conflict(s); the stream held another message under"
                f" {self.origin}:{last.position} (sequence {last.stream_sequence}); see the log,"
                " then restart the service"
            )
        return reasons

    def reset(self) -> None:
        """A new term: nothing known of where the stream or the checkpoint stand."""
        self.position = None
        self._rewind = False
        self._advances.clear()
        self.failing_since = None

    def rewind(self) -> None:
        """Re-derive the resume position (after a reconnect the stream may have lost its tail).
        A batch in flight finishes first; the next one starts from the re-derived position."""
        self._rewind = True
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        backoff = 0.1
        try:
            await self._run(backoff)
        finally:
            self.failing_since = None  # a replica without the term is not failing to relay

    async def _run(self, backoff: float) -> None:
        while True:
            await self.bus.wait_started()
            if not self.app.store_reachable or not fence.still_held():
                await asyncio.sleep(self.idle_poll_seconds)
                continue
            try:
                if self.position is None or self._rewind:
                    self._rewind = False
                    self.position = await self.resume_position()
                relayed = await self.relay_batch()
                backoff = 0.1
                self.failing_since = None
            except asyncio.CancelledError:
                raise
            except Exception as error:  # keep the service alive; retry
                RELAY_FAILURES.labels(self.origin).inc()
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.last_error = type(error).__name__
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
        """The position of this origin's last message on the stream (0: none). A message there
        without a readable ``Kring-Position`` (planted on an open server, or by a hand with
        this origin's credentials) is passed over to the one before it."""
        subject = origin_subjects(self.origin)
        up_to: int | None = None
        try:
            async with DirectReader(self.bus.connection, STREAM) as reader:
                for _ in range(MAX_FOREIGN_SKIPS):
                    found = await reader.last(subject, up_to_seq=up_to)
                    if found is None:
                        return 0
                    position = parse_position(found.headers.get(POSITION_HEADER))
                    if position is not None:
                        return position
                    RELAY_FOREIGN.labels(self.origin).inc()
                    log.warning("relay.unreadable_position_on_stream", stream_sequence=found.seq)
                    if found.seq <= 1:
                        return 0
                    up_to = found.seq - 1
        except NoRespondersError:
            try:
                await self.bus.js.stream_info(STREAM)
            except NotFoundError:
                return 0  # no stream: everything goes out again
            raise
        return 0

    async def relay_batch(self) -> int:
        """Publish the next batch; return how many notifications it covered."""
        assert self.position is not None
        outgoing = await asyncio.to_thread(self._read, self.position)
        if not outgoing or not fence.still_held():
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
            if published:
                log.debug("relay.published", count=published, up_to=reached)
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
        try:
            await self._publish_once(item)
        except Exception as error:  # reported to relay_batch, which retries
            return error
        return None

    async def _publish_once(self, item: Outgoing) -> None:
        """Put the event on the stream exactly once, whoever holds its id."""
        assert item.event is not None
        subject = item.event.subject()
        payload = encode(item.event, origin=self.origin, position=item.position, time=item.time)
        headers = message_headers(self.origin, item.position)
        base = headers["Nats-Msg-Id"]
        #: The other message found under our id, while its conflict copy is not yet known new.
        held: tuple[int, RawStreamMsg] | None = None
        for _ in range(MAX_ID_TRIES):
            ack = await self.bus.js.publish(subject, payload, stream=STREAM, headers=headers)
            if not ack.duplicate:
                if held is not None:
                    self._conflict(item.position, *held)
                return
            stored = await self._stored(ack.seq)
            if stored is None:
                # The server remembers the id (duplicate window) but the message itself was
                # removed: publish it again under a suffixed id. Consumers track by origin
                # and position, so this copy is applied at most once.
                headers["Nats-Msg-Id"] = f"{base}:again-{ack.seq}"
                continue
            if self._is_ours(stored, subject, payload, item.position):
                if held is not None:  # a conflict handled before (by this process or the last)
                    log.info("relay.conflict_handled_before", position=item.position)
                return
            if held is not None:
                self._conflict(item.position, *held)
            held = (ack.seq, stored)
            headers["Nats-Msg-Id"] = f"{base}:conflict-{ack.seq}"
            headers[CONFLICT_HEADER] = str(ack.seq)
        raise RelayConflictError(f"no free id for {base} after {MAX_ID_TRIES} tries")

    def _is_ours(self, stored: RawStreamMsg, subject: str, payload: bytes, position: int) -> bool:
        headers = stored.headers or {}
        return (
            stored.subject == subject
            and (stored.data or b"") == payload
            and headers.get(ORIGIN_HEADER) == self.origin
            and parse_position(headers.get(POSITION_HEADER)) == position
        )

    def _conflict(self, position: int, sequence: int, stored: RawStreamMsg) -> None:
        conflict = Conflict(position, sequence)
        if conflict not in self.conflicts:
            self.conflicts.append(conflict)
            RELAY_CONFLICTS.labels(self.origin).inc()
        log.error(
            "relay.duplicate_conflict",
            position=position,
            stream_sequence=sequence,
            held_on=stored.subject,
            republished_as=f"{self.origin}:{position}:conflict-{sequence}",
        )

    async def _stored(self, sequence: int) -> RawStreamMsg | None:
        """The message at ``sequence``, read from the stream's leader (a direct get may come
        from a replica that has not stored it yet)."""
        try:
            return await self.bus.js.get_msg(STREAM, seq=sequence)
        except NotFoundError:
            return None
