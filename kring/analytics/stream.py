"""Reading the KRING stream in order, from a stream position, up to its last message now.

The fastest read nats-py has (an ordered consumer, as ``kring.replay``), each message decoded
with ``shared.envelope`` so analysts see exactly what consumers see, upcast to the current
versions. A message that does not decode is counted by reason, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from kring.replay import stream_sequence
from shared.envelope import Delivered, PoisonMessageError, decode
from shared.subjects import ALL_SUBJECTS, STREAM


class NoStreamError(LookupError):
    """The KRING stream is not there (Kring never ran against this server)."""


@dataclass(frozen=True)
class StreamState:
    """Where the stream stands: its first and last positions now, and when it was made (a
    stream deleted and made again starts its positions anew)."""

    first: int
    last: int
    created: datetime | None


@dataclass
class StreamRead:
    start: int
    last: int
    read: int = 0
    undecodable: Counter[str] = field(default_factory=Counter)


async def stream_state(connection: Client, stream: str = STREAM) -> StreamState:
    try:
        info = await connection.jetstream().stream_info(stream)
    except NotFoundError:
        raise NoStreamError(f"there is no {stream} stream on this NATS server") from None
    return StreamState(first=info.state.first_seq, last=info.state.last_seq, created=info.created)


async def read_stream(
    connection: Client,
    *,
    after: int,
    until: int,
    on_event: Callable[[Delivered], None],
    on_progress: Callable[[int], None] | None = None,
    stream: str = STREAM,
) -> StreamRead:
    """Fold every message after position ``after`` up to ``until`` (inclusive) into
    ``on_event``; ``on_progress`` hears the position reached every ``YOUNG_COLLECTION_EVERY``
    messages."""
    result = StreamRead(start=after + 1, last=until)
    if until <= after:
        return result
    with young_collections_only():
        return await _read(connection, after, until, on_event, on_progress, stream, result)


@contextlib.contextmanager
def young_collections_only() -> Iterator[None]:
    """A fold keeps a little of every event (its id, a row), so the heap grows with the stream,
    and Python's cyclic collector would walk all of it again and again: at a million events that
    doubled the time. Inside this, only the young generations are collected (every
    ``YOUNG_COLLECTION_EVERY`` messages read: cheap, only what came since); the whole heap again
    once it is left."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


YOUNG_COLLECTION_EVERY = 20_000


async def _read(
    connection: Client,
    after: int,
    until: int,
    on_event: Callable[[Delivered], None],
    on_progress: Callable[[int], None] | None,
    stream: str,
    result: StreamRead,
) -> StreamRead:
    done = asyncio.Event()
    failure: list[BaseException] = []

    async def on_message(message: Msg) -> None:
        if done.is_set():
            return
        sequence = stream_sequence(message)
        if sequence > until:
            done.set()
            return
        # Nothing more pending (the last messages were removed since the read began): done.
        last_one = _pending(message) == 0
        result.read += 1
        try:
            delivered = decode(message.data)
        except PoisonMessageError as poison:
            result.undecodable[poison.reason] += 1
        else:
            try:
                on_event(delivered)
            except BaseException as error:  # an error of ours must end the read, not hang it
                failure.append(error)
                done.set()
                return
        if result.read % YOUNG_COLLECTION_EVERY == 0:
            gc.collect(1)
            if on_progress is not None:
                on_progress(sequence)
        if sequence >= until or last_one:
            done.set()

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    subscription = await connection.jetstream().subscribe(
        ALL_SUBJECTS,
        stream=stream,
        cb=on_message,
        ordered_consumer=True,
        config=config,
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    try:
        await done.wait()
    finally:
        await subscription.unsubscribe()
    if failure:
        raise failure[0]
    if on_progress is not None:
        on_progress(until)
    return result


def _pending(message: Msg) -> int | None:
    """How many messages the stream holds after this one, from the reply subject (as
    ``kring.replay.stream_sequence`` reads the position)."""
    tokens = message.reply.split(".")
    return int(tokens[8]) if len(tokens) == 9 else None
