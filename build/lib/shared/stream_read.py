"""Reading a stream without a consumer: JetStream's direct get, in batches.

Readers (the analyst's replay, the operator's dead-letter list, the demo, the tests) read this
way because creating any consumer needs ``$JS.API.CONSUMER.CREATE.<stream>``, and that subject
also lets its holder rewrite another identity's durable consumer while nobody is bound to it
(``shared.permissions``). A direct get is read-only: it cannot change anything on the server.

One request ``{"seq": n, "batch": b, "next_by_subj": subject}`` on ``$JS.API.DIRECT.GET.<stream>``
answers with up to ``b`` messages on the reply subject, each with its stream sequence, subject
and time in ``Nats-*`` headers, then an empty message with status 204 (``EOB``); 404 when nothing
matches. ``{"multi_last": [subject], "up_to_seq": n}`` answers the last message of each subject
matching ``subject`` at or before ``n``. On a cluster a direct get may be served by a replica a
moment behind its leader.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

API = "$JS.API.DIRECT.GET"
#: What ``str.isspace`` calls whitespace among ASCII bytes (nats-py's test for a header name).
_SPACES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
BATCH = 1000
#: Bounds one answer (a batch of large messages), under the client's pending-bytes limit.
MAX_BYTES = 8 * 1024 * 1024
TIMEOUT_SECONDS = 5.0


class ReaderClient(Client):
    """nats-py's client, parsing header blocks the same way in a tenth of the time. A direct
    get answers each message with nine header lines (its own three and six ``Nats-*``), and
    nats-py's parser tests each header name character by character in Python: in a replay that
    was half the time. Same result as ``Client._parse_header_lines`` for every block
    (``tests/unit/test_stream_read.py``)."""

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip()
            if not key.isascii() or len(key.translate(None, _SPACES)) != len(key):
                continue
            out[key.decode("ascii")] = value.strip().decode("utf-8", "replace")
        return out


class DirectGetError(RuntimeError):
    """The server answered a direct get with an error status."""


class NoRespondersError(DirectGetError):
    """Nobody answers direct gets for the stream: it is not there (or, on a cluster, none of
    its replicas is up)."""


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    subject: str
    data: bytes
    #: The message's own headers, and the ``Nats-*`` ones the direct get adds.
    headers: dict[str, str]

    @property
    def time(self) -> datetime:
        """When the stream stored it (nanoseconds cut to microseconds)."""
        return datetime.fromisoformat(self.headers["Nats-Time-Stamp"])

    @property
    def pending(self) -> int:
        """How many later messages match the request's subject (when it was answered)."""
        return int(self.headers.get("Nats-Num-Pending", "0"))


class DirectReader:
    """One reply subscription for a series of direct gets on one connection, one at a time."""

    def __init__(self, connection: Client, stream: str) -> None:
        self.connection = connection
        self.stream = stream
        self._inbox = connection.new_inbox()
        self._subscription: Any = None
        self._request = 0
        self._answer: list[StoredMessage] = []
        self._done: asyncio.Future[tuple[str, str]] | None = None
        self._single = False

    async def __aenter__(self) -> DirectReader:
        # No pending limits: a batch is bounded by MAX_BYTES, and a dropped reply would be a
        # message silently missing from a replay.
        self._subscription = await self.connection.subscribe(
            f"{self._inbox}.*", cb=self._on_reply, pending_msgs_limit=0, pending_bytes_limit=0
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    async def _on_reply(self, message: Msg) -> None:
        if message.subject != f"{self._inbox}.{self._request}" or self._done is None:
            return  # the late answer to a request given up on
        headers: dict[str, str] = dict(message.headers or {})
        status = headers.get("Status")
        if status is not None:
            if not self._done.done():
                self._done.set_result((status, headers.get("Description", "")))
            return
        self._answer.append(
            StoredMessage(
                seq=int(headers["Nats-Sequence"]),
                subject=headers["Nats-Subject"],
                data=message.data,
                headers=headers,
            )
        )
        if self._single and not self._done.done():
            self._done.set_result(("200", ""))

    async def get(
        self, request: dict[str, Any], *, subject: str | None = None
    ) -> list[StoredMessage]:
        """One request; ``[]`` when nothing matches. ``subject`` asks for that subject's last
        message with the subject in the API subject (no body), a form permissions can scope."""
        self._request += 1
        self._answer = []
        self._single = subject is not None
        self._done = asyncio.get_running_loop().create_future()
        api = f"{API}.{self.stream}" + (f".{subject}" if subject else "")
        body = b"" if subject else json.dumps(request).encode()
        await self.connection.publish(api, body, reply=f"{self._inbox}.{self._request}")
        try:
            status, description = await asyncio.wait_for(self._done, TIMEOUT_SECONDS)
        except TimeoutError:
            raise DirectGetError(f"no answer from {api} (is the stream there?)") from None
        if status == "404":
            return []
        if status == "503":
            raise NoRespondersError(f"nobody answers {api}: no stream {self.stream}?")
        if status not in ("200", "204"):
            raise DirectGetError(f"{api}: {status} {description}")
        return self._answer

    async def read(
        self,
        subject: str = ">",
        *,
        start_seq: int = 1,
        start_time: datetime | None = None,
        up_to_seq: int | None = None,
        batch: int = BATCH,
    ) -> AsyncIterator[list[StoredMessage]]:
        """Every message under ``subject`` from ``start_seq`` (or ``start_time``) to the end of
        the stream as it is now (or ``up_to_seq``), batch by batch, in stream order."""
        request: dict[str, Any] = {"batch": batch, "next_by_subj": subject, "max_bytes": MAX_BYTES}
        if start_time is not None:
            request["start_time"] = start_time.isoformat()
        else:
            request["seq"] = max(start_seq, 1)
        while True:
            found = await self.get(request)
            if up_to_seq is not None:
                found = [m for m in found if m.seq <= up_to_seq]
            if not found:
                return
            yield found
            last = found[-1]
            if last.pending == 0 or (up_to_seq is not None and last.seq >= up_to_seq):
                return
            request.pop("start_time", None)
            request["seq"] = last.seq + 1

    async def last(self, subject: str, *, up_to_seq: int | None = None) -> StoredMessage | None:
        """The last message under ``subject`` (at or before ``up_to_seq``), or None."""
        request: dict[str, Any] = {"multi_last": [subject], "batch": BATCH}
        if up_to_seq is not None:
            request["up_to_seq"] = up_to_seq
        found = await self.get(request)
        return max(found, key=lambda m: m.seq) if found else None


async def read_all(
    connection: Client, stream: str, subject: str = ">", **options: Any
) -> list[StoredMessage]:
    """Every message under ``subject`` now on ``stream`` (for small streams: tests, the CLI)."""
    messages: list[StoredMessage] = []
    async with DirectReader(connection, stream) as reader:
        try:
            async for found in reader.read(subject, **options):
                messages.extend(found)
        except NoRespondersError:
            return []  # no stream: nothing on it
    return messages
