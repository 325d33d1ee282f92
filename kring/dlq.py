"""``kring dlq``: what consumers could not process, and retrying it.

Dead letters sit in the ``KRING_DLQ`` stream with their reason. A replay publishes the original
message again on its original subject (under a new ``Nats-Msg-Id``) and removes it from the
dead-letter stream; consumers that had already applied it change nothing, by their tracking.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import nats
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from kring.client import connect_nats
from shared.consumer import CONSUMER_HEADER, REASON_HEADER, SEQUENCE_HEADER, SUBJECT_HEADER
from shared.envelope import ORIGIN_HEADER, POSITION_HEADER
from shared.subjects import DLQ_STREAM, DLQ_SUBJECTS


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


def _dead_letter(message: Any) -> DeadLetter:
    headers = message.headers or {}
    return DeadLetter(
        sequence=int(message.metadata.sequence.stream),
        parked_at=message.metadata.timestamp,
        consumer=headers.get(CONSUMER_HEADER, "?"),
        reason=headers.get(REASON_HEADER, "?"),
        detail=headers.get("Kring-DLQ-Detail", ""),
        subject=headers.get(SUBJECT_HEADER, "?"),
        origin=headers.get(ORIGIN_HEADER),
        position=headers.get(POSITION_HEADER),
        stream_sequence=headers.get(SEQUENCE_HEADER, "?"),
    )


async def list_dead_letters(nats_url: str) -> list[DeadLetter]:
    connection = await connect_nats(nats_url)
    try:
        js = connection.jetstream()
        try:
            info = await js.stream_info(DLQ_STREAM)
        except NotFoundError:
            return []
        if info.state.messages == 0:
            return []
        subscription = await js.subscribe(
            DLQ_SUBJECTS, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        letters: list[DeadLetter] = []
        try:
            while True:
                message = await subscription.next_msg(timeout=2.0)
                letters.append(_dead_letter(message))
                if message.metadata.sequence.stream >= info.state.last_seq:
                    break
        except nats.errors.TimeoutError:
            pass
        finally:
            await subscription.unsubscribe()
        return letters
    finally:
        await connection.close()


async def replay(nats_url: str, sequences: list[int]) -> list[int]:
    """Re-publish the given dead letters on their original subjects; return those replayed."""
    connection = await connect_nats(nats_url)
    replayed: list[int] = []
    try:
        js = connection.jetstream()
        for sequence in sequences:
            try:
                message = await js.get_msg(DLQ_STREAM, seq=sequence)
            except NotFoundError:
                continue
            headers = dict(message.headers or {})
            subject = headers.get(SUBJECT_HEADER)
            if not subject:
                continue
            forward = {k: v for k, v in headers.items() if k in (ORIGIN_HEADER, POSITION_HEADER)}
            forward["Nats-Msg-Id"] = f"replay:{DLQ_STREAM}:{sequence}"
            await js.publish(subject, message.data or b"", headers=forward)
            await js.delete_msg(DLQ_STREAM, sequence)
            replayed.append(sequence)
        return replayed
    finally:
        await connection.close()
