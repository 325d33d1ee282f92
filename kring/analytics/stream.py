"""Reading the KRING stream in order, from a stream position, up to its last message now.

As the ``analyst`` identity, which may only read KRING (stream info and direct get, no
consumer: ``shared.permissions``): direct gets in batches (``shared.stream_read``, as
``kring.replay``). Each message is decoded and its provenance checked with ``shared.envelope``,
so analysts see exactly what consumers see, upcast to the current versions. A message that does
not decode or does not agree on where it comes from is counted by reason, never fatal.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from shared.envelope import Delivered, PoisonMessageError, decode, verify
from shared.stream_read import DirectReader, NoRespondersError
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
    async with DirectReader(connection, stream) as reader:
        try:
            async for batch in reader.read(ALL_SUBJECTS, start_seq=after + 1, up_to_seq=until):
                for message in batch:
                    result.read += 1
                    try:
                        delivered = decode(message.data)
                        verify(delivered, message.subject, message.headers)
                    except PoisonMessageError as poison:
                        result.undecodable[poison.reason] += 1
                    else:
                        on_event(delivered)
                    if result.read % YOUNG_COLLECTION_EVERY == 0:
                        gc.collect(1)
                        if on_progress is not None:
                            on_progress(message.seq)
        except NoRespondersError:
            raise NoStreamError(f"there is no {stream} stream on this NATS server") from None
    if on_progress is not None:
        on_progress(until)
    return result
