"""Each partner's feed on NATS: its own stream, one durable pull consumer it reads from, and a
relay that publishes every notification for it there.

The relay follows the service's own log like the outbox relay (``shared.relay``) follows a
service's: a notification is stored first (by the policy that made it, with the upstream event's
tracking), and published after, with ``Nats-Msg-Id`` = its id, so the stream drops a copy it
already holds (within a day: each partner stream's duplicate window). The checkpoint is per
partner and moves only over acknowledged publishes, so one partner whose feed cannot be written
(its stream not yet permitted after a registration, say) holds up nobody else. A copy published
again after a crash beyond that day reaches the partner twice with the same id: partners
de-duplicate by id (``docs/partners.md``).

The partner's stream and consumer are made here, by the partners service's identity, as soon as
the partner is registered and NATS lets it (``shared.permissions``: it may make exactly those). The
partner itself creates nothing: it fetches from ``feed``, acks, resets it to a sequence to
replay, and reads its stream with direct gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from services.partners.app import PartnersApplication
from services.partners.domain import Notification
from shared.bus import Bus
from shared.erasure import CaseErasedError
from shared.logging import get_logger
from shared.partner_feed import PARTNER_EVENTS_BY_NAME, encode_partner_event
from shared.subjects import PARTNER_CONSUMER, partner_stream, partner_subject, partner_subjects

log = get_logger(__name__)

ISSUED = get_topic(Notification.Issued)  # type: ignore[attr-defined]
#: A partner's stream drops a second copy of a notification for this long.
DUPLICATE_WINDOW_SECONDS = 86_400.0
#: How long a fetched message waits for the partner's ack before it is delivered again.
ACK_WAIT_SECONDS = 30.0


def checkpoint_name(organisation: str) -> str:
    return f"feed:{organisation}"


def partner_payload(
    *,
    event_id: UUID,
    kind: str,
    data: dict[str, Any],
    issued_at: datetime,
    position: int,
    source: str,
) -> bytes:
    """A notification as the partner receives it, on NATS and in a webhook alike."""
    event = PARTNER_EVENTS_BY_NAME[kind].model_validate(data)
    return encode_partner_event(
        event, event_id=event_id, source=source, time=issued_at, position=position
    )


def feed_stream_config(organisation: str, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=partner_stream(organisation),
        subjects=[partner_subjects(organisation)],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        allow_direct=True,
    )


def feed_consumer_config(organisation: str) -> ConsumerConfig:
    return ConsumerConfig(
        # ``name`` and one filter: created under $JS.API.CONSUMER.CREATE.<stream>.feed.<filter>,
        # the form the partners service's permission pins.
        name=PARTNER_CONSUMER,
        durable_name=PARTNER_CONSUMER,
        filter_subject=partner_subjects(organisation),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        max_ack_pending=1000,
    )


async def ensure_feed(js: JetStreamContext, organisation: str, replicas: int = 1) -> None:
    """The partner's stream and its ``feed`` consumer, made if missing, never changed."""
    stream = partner_stream(organisation)
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(feed_stream_config(organisation, replicas))
        log.info("partner.feed_created", organisation=organisation)
    try:
        await js.consumer_info(stream, PARTNER_CONSUMER)
    except NotFoundError:
        await js.add_consumer(stream, config=feed_consumer_config(organisation))


class FeedRelay:
    def __init__(
        self,
        app: PartnersApplication,
        bus: Bus,
        *,
        source: str,
        replicas: int = 1,
        batch_size: int = 200,
        idle_poll_seconds: float = 1.0,
    ) -> None:
        self.app, self.bus = app, bus
        self.source = source
        self.replicas = replicas
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self._ready: set[str] = set()
        #: Why each partner's feed could not be written in the last round.
        self.failing: dict[str, str] = {}
        #: A partner whose feed could not be made is tried again from then (monotonic), after
        #: a pause that doubles up to five minutes: a partner registered before NATS lets this
        #: service make its feed (not yet reloaded, or no NATS identity made at all) costs a
        #: refusal now and then, not every second.
        self._retry: dict[str, tuple[float, float]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        app.on_stored(self._wake_from_any_thread)

    def _wake_from_any_thread(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def publish_feeds(self) -> None:
        """The service's background job: publish what is new, forever."""
        self._loop = asyncio.get_running_loop()
        delay = 0.2
        while True:
            await self.bus.wait_started()
            if not self.app.store_reachable:
                await asyncio.sleep(self.idle_poll_seconds)
                continue
            try:
                full = await self.round()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as error:  # logged, then tried again
                log.warning("partner.feed_failed", error=type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll_seconds)
                self._wake.clear()

    async def round(self) -> bool:
        """Publish the next batch for every active partner; True if there may be more."""
        registry = await asyncio.to_thread(self.app.registry)
        organisations = [o for o, p in registry.partners.items() if p.active]
        if not organisations:
            return False
        for organisation in organisations:
            # Each partner's feed is there from its registration (once NATS lets this service
            # make it), so a partner can start reading before anything is shared with it.
            await self._make_feed(organisation)
        checkpoints = {
            o: await asyncio.to_thread(self.app.queries.checkpoint, checkpoint_name(o))
            for o in organisations
        }
        start = min(checkpoints.values())
        batch = await asyncio.to_thread(self._read, start)
        if not batch:
            return False
        reached = dict(checkpoints)
        stopped: set[str] = set()
        for position, issued in batch:
            owner: str | None = issued.organisation if issued is not None else None
            for o in organisations:
                if o in stopped or position <= reached[o]:
                    continue
                if o != owner:
                    reached[o] = position  # nothing of o's up to here
                    continue
                try:
                    await self._publish(o, position, issued)
                except Exception as error:
                    stopped.add(o)
                    self.failing[o] = type(error).__name__
                    log.warning("partner.feed_blocked", organisation=o, error=type(error).__name__)
                    continue
                self.failing.pop(o, None)
                reached[o] = position
        for o, position in reached.items():
            if position != checkpoints[o]:
                await asyncio.to_thread(
                    self.app.queries.save_checkpoint, checkpoint_name(o), position
                )
        return len(batch) == self.batch_size

    def _read(self, after: int) -> Sequence[tuple[int, Any]]:
        notifications = self.app.recorder.select_notifications(
            start=after, limit=self.batch_size, topics=[ISSUED], inclusive_of_start=False
        )
        read: list[tuple[int, Any]] = []
        for notification in notifications:
            try:
                read.append((notification.id, self.app.mapper.to_domain_event(notification)))
            except CaseErasedError:  # never: notifications are not a case's; skip all the same
                read.append((notification.id, None))
        return read

    async def _make_feed(self, organisation: str) -> bool:
        if organisation in self._ready:
            return True
        now = time.monotonic()
        due, pause = self._retry.get(organisation, (0.0, 0.0))
        if now < due:
            return False
        try:
            await ensure_feed(self.bus.js, organisation, self.replicas)
        except Exception as error:  # tried again later; the other partners go on
            self.failing[organisation] = type(error).__name__
            pause = min(max(pause * 2, 1.0), 300.0)
            self._retry[organisation] = (now + pause, pause)
            log.warning(
                "partner.feed_not_made", organisation=organisation, error=type(error).__name__
            )
            return False
        self._ready.add(organisation)
        self._retry.pop(organisation, None)
        self.failing.pop(organisation, None)
        return True

    async def _publish(self, organisation: str, position: int, issued: Any) -> None:
        if not await self._make_feed(organisation):
            raise RuntimeError(f"the feed of {organisation} is not there yet")
        payload = partner_payload(
            event_id=issued.originator_id,
            kind=issued.kind,
            data=issued.data,
            issued_at=issued.issued_at,
            position=position,
            source=self.source,
        )
        await self.bus.js.publish(
            partner_subject(organisation, issued.kind),
            payload,
            stream=partner_stream(organisation),
            headers={"Nats-Msg-Id": str(issued.originator_id)},
        )
