"""``kring dlq``: what consumers could not process, and retrying it.

Dead letters sit in the ``KRING_DLQ`` stream with their reason, read here with direct gets as the
``operator`` identity. A replay asks the service that parked the letter to apply the original
message again: the service reads it from KRING itself by its stream sequence
(``shared.consumer.replay_from_stream``), so the operator can name a message but never supply
one, and cannot forge an event. A letter applied (or found already applied: consumers track by
origin and position) is removed from the dead-letter stream; any other answer leaves it there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from kring.client import connect_nats
from shared.consumer import (
    CONSUMER_HEADER,
    REASON_HEADER,
    SEQUENCE_HEADER,
    SUBJECT_HEADER,
    ReplayAnswer,
    ReplayRequest,
)
from shared.envelope import ORIGIN_HEADER, POSITION_HEADER
from shared.permissions import OPERATOR
from shared.stream_read import StoredMessage, read_all
from shared.subjects import DLQ_STREAM, DLQ_SUBJECTS, replay_request_subject

#: How long a service may take to answer a replay (it applies the event first).
REPLAY_TIMEOUT_SECONDS = 30.0
#: The answers after which a dead letter is removed.
DONE = ("applied", "already-applied")


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    parked_at: datetime
    consumer: str
    reason: str
    detail: str
    subject: str
    origin: str | None
    position: str | None
    stream_sequence: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"parked_at": self.parked_at.isoformat()}


@dataclass(frozen=True)
class Replayed:
    """What became of one dead letter named for a replay."""

    sequence: int
    outcome: str
    detail: str = ""

    @property
    def done(self) -> bool:
        return self.outcome in DONE


def _dead_letter(message: StoredMessage) -> DeadLetter:
    headers = message.headers
    return DeadLetter(
        sequence=message.seq,
        parked_at=message.time,
        consumer=headers.get(CONSUMER_HEADER, "?"),
        reason=headers.get(REASON_HEADER, "?"),
        detail=headers.get("Kring-DLQ-Detail", ""),
        subject=headers.get(SUBJECT_HEADER, "?"),
        origin=headers.get(ORIGIN_HEADER),
        position=headers.get(POSITION_HEADER),
        stream_sequence=headers.get(SEQUENCE_HEADER, "?"),
    )


async def list_dead_letters(nats_url: str) -> list[DeadLetter]:
    connection = await connect_nats(nats_url, OPERATOR)
    try:
        return await dead_letters(connection)
    finally:
        await connection.close()


async def dead_letters(connection: Client) -> list[DeadLetter]:
    return [_dead_letter(m) for m in await read_all(connection, DLQ_STREAM, DLQ_SUBJECTS)]


async def replay(nats_url: str, sequences: list[int]) -> list[Replayed]:
    """Ask the owning service to apply each named dead letter again; remove those done."""
    connection = await connect_nats(nats_url, OPERATOR)
    try:
        return await replay_with(connection, sequences)
    finally:
        await connection.close()


async def replay_with(connection: Client, sequences: list[int]) -> list[Replayed]:
    return [await _replay_one(connection, sequence) for sequence in sequences]


async def _replay_one(connection: Client, sequence: int) -> Replayed:
    js = connection.jetstream()
    try:
        message = await js.get_msg(DLQ_STREAM, seq=sequence)
    except NotFoundError:
        return Replayed(sequence, "unknown", "no such dead letter")
    headers = message.headers or {}
    consumer = headers.get(CONSUMER_HEADER, "")
    stream_sequence = headers.get(SEQUENCE_HEADER, "")
    if not consumer or not stream_sequence.isdigit():
        return Replayed(sequence, "refused", "the letter names no consumer or stream sequence")
    request = ReplayRequest(stream_sequence=int(stream_sequence))
    try:
        reply = await connection.request(
            replay_request_subject(consumer),
            request.model_dump_json().encode(),
            timeout=REPLAY_TIMEOUT_SECONDS,
        )
    except nats.errors.NoRespondersError:
        return Replayed(sequence, "unanswered", f"nobody answers for {consumer}: is it running?")
    except nats.errors.TimeoutError:
        return Replayed(sequence, "unanswered", f"{consumer} did not answer in time")
    try:
        answer = ReplayAnswer.model_validate(json.loads(reply.data))
    except (ValueError, ValidationError):
        return Replayed(sequence, "failed", f"{consumer} answered something unreadable")
    if answer.outcome in DONE:
        await js.delete_msg(DLQ_STREAM, sequence)
    return Replayed(sequence, answer.outcome, answer.detail)
