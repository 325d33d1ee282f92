"""Tracked, idempotent consumers (docs/architecture.md, "Outbox and tracking").

One durable JetStream push consumer per (service, origin), explicit acks, handled one message at
a time in stream order, in the one replica that holds the service's lease (``shared.lease``):
its subscriptions live on that term's connection (``shared.bus``). A message that reaches a
replica whose term has run out (it was paused past its lease, say) is neither applied nor
acknowledged: JetStream gives it to the next holder after the ack wait, and a write already
under way is refused by the store (``shared.fence``). Each message is applied through
``KringApplication.process``, which records the upstream origin and position atomically with the
events it causes; a redelivery or a re-published copy (new stream sequence, same origin and
position) changes nothing.

Acks are manual, because faststream's default policy terminates a message on any error
(docs/architecture.md): a message that cannot be parsed, or whose subject, envelope and headers
do not agree on where it comes from (``shared.envelope.verify``), goes to the dead-letter stream
at once; one that fails to apply is retried with back-off and parked after ``max_deliver``
tries. A store that cannot be reached is not the message's fault: it is offered again until the
store is back.

A dead letter is replayed by the service that parked it, on the operator's request
(``replay_request_subject``): it reads the original message from KRING itself, by its stream
sequence, and applies it. So a replay carries only bytes the origin published: the operator
names a message, it never supplies one.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, Literal

from faststream import AckPolicy
from faststream.message import StreamMessage
from faststream.nats import JStream, NatsBroker
from faststream.nats.annotations import NatsMessage
from faststream.nats.message import NatsMessage as NatsMessageType
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import BaseModel, ConfigDict, Field

from shared import fence
from shared.application import KringApplication
from shared.bus import Bus
from shared.envelope import (
    CONFLICT_HEADER,
    ORIGIN_HEADER,
    POSITION_HEADER,
    Delivered,
    PoisonMessageError,
    decode,
    verify,
)
from shared.logging import bound_case, get_logger
from shared.metrics import CONSUMED, DEAD_LETTERS
from shared.permissions import durable_name
from shared.store import STORE_UNAVAILABLE
from shared.subjects import STREAM, dead_letter_subject, origin_subjects, replay_request_subject

log = get_logger(__name__)

REASON_HEADER = "Kring-DLQ-Reason"
CONSUMER_HEADER = "Kring-DLQ-Consumer"
SEQUENCE_HEADER = "Kring-DLQ-Stream-Sequence"
SUBJECT_HEADER = "Kring-DLQ-Subject"
#: How soon a message is offered again while the store cannot be reached.
STORE_RETRY_SECONDS = 2.0


__all__ = ["durable_name", "handle_message", "subscribe"]


def subscribe(
    bus: Bus,
    app: KringApplication,
    origin: str,
    *,
    max_deliver: int = 5,
    ack_wait_seconds: float = 10.0,
) -> None:
    """Have ``app`` follow everything ``origin`` publishes, in each term of this replica."""
    consumer = durable_name(app.name, origin)
    subject = origin_subjects(origin)
    bus.add_consumer(consumer, subject)

    def register(broker: NatsBroker, term: fence.Term | None) -> None:
        # faststream warns that a durable push consumer cannot scale out; with ``queue`` (a
        # deliver group) it does, which is what we set.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*can't be scaled horizontally.*")
            subscriber = broker.subscriber(
                subject,
                stream=JStream(STREAM, declare=False),
                durable=consumer,
                queue=consumer,
                deliver_policy=DeliverPolicy.ALL,
                # ``name`` makes nats-py create it under $JS.API.CONSUMER.CREATE.<stream>.<name>.
                # <filter>, the form whose name and filter the server's permissions can pin.
                config=ConsumerConfig(
                    name=consumer, ack_wait=ack_wait_seconds, max_ack_pending=1000
                ),
                ack_policy=AckPolicy.MANUAL,
                decoder=_raw_body,
                title=f"{app.name}:{origin}",
                description=f"{app.name} applies what {origin} publishes, exactly once",
            )

        @subscriber
        async def handle(message: NatsMessage) -> None:
            if term is not None and not term.valid():
                # This replica's term ran out: not applied, not acknowledged (the next holder
                # gets it once the ack wait has passed).
                log.info("consumer.term_over", consumer=consumer)
                return
            try:
                with fence.within(term):
                    await handle_message(
                        broker.connection.jetstream(), app, consumer, message, max_deliver
                    )
            except fence.LeaseLostError:
                log.info("consumer.term_over", consumer=consumer)
            except Exception as error:  # never silent: faststream logs nothing
                log.error(
                    "consumer.unexpected", error=type(error).__name__, detail=str(error)[:200]
                )
                await message.nack(delay=5.0)

        replays = broker.subscriber(
            replay_request_subject(consumer),
            queue=consumer,  # one replica answers
            title=f"{consumer}:replay",
            description=f"replay one of {consumer}'s dead letters from KRING (operator's request)",
        )

        @replays
        async def replay(request: ReplayRequest) -> ReplayAnswer:
            if term is not None and not term.valid():
                return ReplayAnswer(
                    outcome="refused", detail="this replica's lease ran out; ask again"
                )
            try:
                with fence.within(term):
                    js = broker.connection.jetstream()
                    return await replay_from_stream(js, app, origin, request.stream_sequence)
            except Exception as error:  # answered, never silent
                log.error("consumer.replay_failed", error=type(error).__name__)
                return ReplayAnswer(outcome="failed", detail=type(error).__name__)

    bus.register(register)


class ReplayRequest(BaseModel):
    """The operator's request: apply the KRING message at this stream sequence again."""

    model_config = ConfigDict(extra="forbid")

    stream_sequence: int = Field(ge=1)


ReplayOutcome = Literal[
    "applied", "already-applied", "conflict", "failed", "poison", "gone", "refused"
]


class ReplayAnswer(BaseModel):
    outcome: ReplayOutcome
    detail: str = ""


async def replay_from_stream(
    js: JetStreamContext, app: KringApplication, origin: str, stream_sequence: int
) -> ReplayAnswer:
    try:
        stored = await js.get_msg(STREAM, seq=stream_sequence)
    except NotFoundError:
        return ReplayAnswer(
            outcome="gone",
            detail=f"KRING no longer holds sequence {stream_sequence} (a lost message is "
            "published again by its relay and reaches the consumer by itself)",
        )
    subject = stored.subject or ""
    if not subject.startswith(origin_subjects(origin)[:-1]):
        return ReplayAnswer(
            outcome="refused", detail=f"sequence {stream_sequence} is not {origin}'s"
        )
    try:
        delivered = decode(stored.data or b"")
        verify(delivered, subject, stored.headers)
    except PoisonMessageError as poison:
        return ReplayAnswer(outcome="poison", detail=f"{poison.reason}: {poison.detail}"[:500])
    with bound_case(delivered.case_id, delivered.event_id):
        try:
            applied = await asyncio.to_thread(app.process, delivered)
        except fence.LeaseLostError:
            return ReplayAnswer(outcome="refused", detail="this replica's lease ran out; ask again")
        except Exception as error:
            return ReplayAnswer(
                outcome="failed", detail=f"processing-failed:{type(error).__name__}"
            )
    log.info("consumer.replayed", stream_sequence=stream_sequence, applied=applied)
    if not applied and (stored.headers or {}).get(CONFLICT_HEADER) is not None:
        # As when it was parked: what was applied at this position was another message.
        return ReplayAnswer(
            outcome="conflict",
            detail=f"another message was applied at {delivered.event_id}; a person must decide",
        )
    return ReplayAnswer(outcome="applied" if applied else "already-applied")


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """Skip faststream's JSON decoding: ``shared.envelope`` parses, and names what is wrong."""
    return bytes(message.body)


async def handle_message(
    js: JetStreamContext,
    app: KringApplication,
    consumer: str,
    message: NatsMessageType,
    max_deliver: int,
) -> None:
    raw: Any = message.raw_message
    try:
        delivered = decode(message.body)
        verify(delivered, raw.subject, raw.headers)
    except PoisonMessageError as poison:
        await dead_letter(js, consumer, message, poison.reason, poison.detail)
        return
    attempt = int(raw.metadata.num_delivered) if raw.metadata else 1
    with bound_case(delivered.case_id, delivered.event_id):
        if not app.store_reachable:  # known to be away: not even tried
            CONSUMED.labels(consumer, "retried").inc()
            await message.nack(delay=STORE_RETRY_SECONDS)
            return
        try:
            applied = await asyncio.to_thread(app.process, delivered)
        except STORE_UNAVAILABLE as error:  # not the message's fault: wait, never park it
            CONSUMED.labels(consumer, "retried").inc()
            log.warning("consumer.store_unavailable", error=type(error).__name__)
            await message.nack(delay=STORE_RETRY_SECONDS)
            return
        except fence.LeaseLostError:
            raise  # not the message's fault either: left for the next holder
        except Exception as error:  # any failure to apply: retry, then park
            reason = f"processing-failed:{type(error).__name__}"
            if attempt >= max_deliver:
                await dead_letter(
                    js, consumer, message, reason, str(error)[:300], delivered=delivered
                )
                return
            CONSUMED.labels(consumer, "retried").inc()
            log.warning("consumer.retry", attempt=attempt, error=type(error).__name__)
            await message.nack(delay=min(0.2 * 2**attempt, 30.0))
            return
        if not fence.still_held():
            # The term ran out while the message was handled (paused past its lease, say,
            # after the store committed or after finding it applied): the ack is a side effect
            # like any other, so neither acked nor logged here. The next holder is offered it
            # again, finds it applied and acks it: nothing lost, nothing twice.
            raise fence.LeaseLostError("the term ran out while the message was handled")
        conflict = (raw.headers or {}).get(CONFLICT_HEADER)
        if not applied and conflict is not None:
            # The relay found another message under this event's id, and this consumer had
            # already applied something at this origin and position: most likely that other
            # message. Not a silent skip: parked, for a person to look at.
            await dead_letter(
                js,
                consumer,
                message,
                "conflicting-duplicate",
                f"another message was applied at {delivered.event_id} first (stream sequence "
                f"{conflict[:20]})",
                delivered=delivered,
            )
            return
        CONSUMED.labels(consumer, "applied" if applied else "duplicate").inc()
        log.debug("consumer.handled", event_type=delivered.event.name, applied=applied)
        await message.ack()


async def dead_letter(
    js: JetStreamContext,
    consumer: str,
    message: NatsMessageType,
    reason: str,
    detail: str,
    *,
    delivered: Delivered | None = None,
) -> None:
    """Park a message on the dead-letter stream with its reason, then ack it.

    If parking fails the message is not acked: it comes back rather than being lost."""
    raw: Any = message.raw_message
    sequence = str(raw.metadata.sequence.stream) if raw.metadata else "?"
    headers = {
        REASON_HEADER: reason,
        CONSUMER_HEADER: consumer,
        SEQUENCE_HEADER: sequence,
        SUBJECT_HEADER: raw.subject,
        "Kring-DLQ-Detail": detail[:500],
        "Nats-Msg-Id": f"{consumer}:{sequence}",
    }
    if delivered is not None:
        headers |= {ORIGIN_HEADER: delivered.origin, POSITION_HEADER: str(delivered.position)}
    else:
        for key in (ORIGIN_HEADER, POSITION_HEADER):
            if raw.headers and key in raw.headers:
                headers[key] = raw.headers[key]
    try:
        await js.publish(dead_letter_subject(consumer), message.body, headers=headers)
    except Exception as error:  # leave it unacked: it comes back
        log.error("consumer.dead_letter_failed", reason=reason, error=type(error).__name__)
        await message.nack(delay=5.0)
        return
    DEAD_LETTERS.labels(consumer, reason.split(":")[0]).inc()
    CONSUMED.labels(consumer, "dead_lettered").inc()
    log.warning("consumer.dead_lettered", reason=reason, stream_sequence=sequence)
    await message.ack()
