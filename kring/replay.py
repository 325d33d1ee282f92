"""An analyst's replay: the whole KRING stream (or a time window, one case, some types) folded
into a small projection: per case its model, the stage it reached and when each event happened;
counts per event type, per stop reason, per stage; lead times.

The stream is read with direct gets in batches (``shared.stream_read``: an analyst may create no
consumer on KRING) and each message is decoded and its provenance checked with
``shared.envelope``, so the replay sees exactly what consumers see. Nothing
personal is kept: integration events carry ids, roles and counts only. A message that does not
decode is counted by reason, never fatal; a re-published copy (same ``origin:position``) counts
once.
"""

from __future__ import annotations

import heapq
import statistics
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from kring.client import connect_nats
from shared.envelope import Delivered, PoisonMessageError, decode, verify
from shared.events import (
    EVENT_CLASSES,
    SUPERSEDED_EVENT_CLASSES,
    CaseEndedWithoutConference,
    Ending,
    IntegrationEvent,
    RequestWithdrawn,
)
from shared.stream_read import DirectReader, NoRespondersError, StoredMessage
from shared.subjects import ALL_SUBJECTS, STREAM

#: The path of a case; the stage a case reached is the furthest step seen, unless it ended.
PATH: tuple[str, ...] = (
    "request-received",
    "coordinator-assigned",
    "conference-held",
    "plan-distributed",
    "follow-up-due",
    "outcome-recorded",
)
STEP: dict[str, int] = {name: step for step, name in enumerate(PATH)}
#: Lead times an analyst asks for first: (label, from event, to event).
LEAD_TIMES: tuple[tuple[str, str, str], ...] = (
    ("accepted_to_assigned", "request-received", "coordinator-assigned"),
    ("accepted_to_conference", "request-received", "conference-held"),
    ("conference_to_distributed", "conference-held", "plan-distributed"),
)
EVENT_NAMES: dict[str, type[IntegrationEvent]] = {c.name: c for c in EVENT_CLASSES}


class ReplayFilterError(ValueError):
    pass


def event_name(given: str) -> str:
    """``plan-distributed`` or its CloudEvents type ``nl.kring.plan-distributed.v1`` (an older
    version's type names the same events: they are read as the current version)."""
    for event_class in (*EVENT_CLASSES, *SUPERSEDED_EVENT_CLASSES):
        if given in (event_class.name, event_class.type_name()):
            return event_class.name
    known = ", ".join(sorted(EVENT_NAMES))
    raise ReplayFilterError(f"unknown event type {given!r}; known: {known}")


@dataclass(frozen=True)
class ReplayFilter:
    since: datetime | None = None
    until: datetime | None = None
    case_id: UUID | None = None
    #: Event names (``plan-distributed``); empty means all.
    types: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        case_id: UUID | None = None,
        types: Iterable[str] = (),
    ) -> ReplayFilter:
        for moment in (since, until):
            if moment is not None and moment.tzinfo is None:
                raise ReplayFilterError("give times with a zone, e.g. 2026-03-01T00:00:00+00:00")
        return cls(since, until, case_id, frozenset(event_name(t) for t in types))

    def subjects(self) -> frozenset[str] | None:
        if not self.types:
            return None
        return frozenset(EVENT_NAMES[name].subject() for name in self.types)

    def admits(self, delivered: Delivered) -> bool:
        if self.since is not None and delivered.time < self.since:
            return False
        if self.until is not None and delivered.time >= self.until:
            return False
        return self.case_id is None or delivered.case_id == self.case_id


@dataclass
class CaseLine:
    case_id: UUID
    model: str
    stage: str = ""
    stop_reason: str | None = None
    step: int = -1
    stopped: bool = False
    #: When each event type first happened for this case (the event's own time).
    times: dict[str, datetime] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": str(self.case_id),
            "model": self.model,
            "stage": self.stage,
            "stop_reason": self.stop_reason,
            "times": {name: at.isoformat() for name, at in self.times.items()},
        }


@dataclass
class Projection:
    cases: dict[UUID, CaseLine] = field(default_factory=dict)
    by_type: Counter[str] = field(default_factory=Counter)
    stop_reasons: Counter[str] = field(default_factory=Counter)
    undecodable: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    read: int = 0
    first: datetime | None = None
    last: datetime | None = None
    _seen: set[str] = field(default_factory=set, repr=False)

    @property
    def events(self) -> int:
        return sum(self.by_type.values())

    def fold(self, delivered: Delivered) -> None:
        # The hot path of a replay: plain comparisons and dict lookups only.
        seen = self._seen
        if delivered.event_id in seen:
            self.duplicates += 1
            return
        seen.add(delivered.event_id)
        event, at = delivered.event, delivered.time
        name = event.name
        self.by_type[name] += 1
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at
        line = self.cases.get(event.case_id)
        if line is None:
            line = self.cases[event.case_id] = CaseLine(event.case_id, event.model.value)
        times = line.times
        if name not in times or at < times[name]:
            times[name] = at
        step = STEP.get(name)
        if step is not None:
            if line.step < step and not line.stopped:
                line.step, line.stage = step, name
        elif isinstance(event, CaseEndedWithoutConference):
            line.stop_reason = event.reason.value if event.reason else event.ending.value
            self.stop_reasons[line.stop_reason] += 1
            line.stage = f"ended:{event.ending.value}"
            # A plan made without a meeting still goes on to distribution and follow-up.
            line.stopped = event.ending is Ending.STOPPED
        elif isinstance(event, RequestWithdrawn):
            line.stop_reason, line.stage, line.stopped = "request_withdrawn", "withdrawn", True

    def stages(self) -> Counter[str]:
        return Counter(line.stage or "unknown" for line in self.cases.values())

    def models(self) -> Counter[str]:
        return Counter(line.model for line in self.cases.values())

    def lead_times(self) -> dict[str, dict[str, float]]:
        """Median and maximum seconds between two events of the same case, where both are seen."""
        found: dict[str, dict[str, float]] = {}
        for label, start, end in LEAD_TIMES:
            spans = [
                (line.times[end] - line.times[start]).total_seconds()
                for line in self.cases.values()
                if start in line.times and end in line.times
            ]
            if spans:
                found[label] = {
                    "cases": len(spans),
                    "median_s": statistics.median(spans),
                    "max_s": max(spans),
                }
        return found

    def summary(self, *, with_cases: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = {
            "messages_read": self.read,
            "events": self.events,
            "duplicates": self.duplicates,
            "undecodable": dict(self.undecodable),
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "cases": len(self.cases),
            "by_type": dict(sorted(self.by_type.items())),
            "stages": dict(sorted(self.stages().items())),
            "models": dict(sorted(self.models().items())),
            "stop_reasons": dict(sorted(self.stop_reasons.items())),
            "lead_times": self.lead_times(),
        }
        if with_cases:
            result["case_lines"] = [line.as_dict() for line in self.cases.values()]
        return result


async def replay(
    nats_url: str, chosen: ReplayFilter | None = None, *, stream: str = STREAM
) -> Projection:
    """Read the stream up to its last message now, folding what ``chosen`` admits."""
    chosen = chosen or ReplayFilter()
    connection = await connect_nats(nats_url)
    try:
        return await replay_with(connection, chosen, stream=stream)
    finally:
        await connection.close()


async def replay_with(
    connection: Client, chosen: ReplayFilter, *, stream: str = STREAM
) -> Projection:
    projection = Projection()
    try:
        last = (await connection.jetstream().stream_info(stream)).state.last_seq
    except NotFoundError:
        return projection
    # Types are filtered by the server: each type has its subject.
    subjects = sorted(chosen.subjects() or {ALL_SUBJECTS})
    # Cheap pre-filter: the case id is in the envelope's ``subject``; most messages are skipped
    # without a decode.
    needle = str(chosen.case_id).encode() if chosen.case_id else None
    async with DirectReader(connection, stream) as reader:
        try:
            async for batch in _in_stream_order(reader, subjects, chosen.since, last):
                for message in batch:
                    projection.read += 1
                    if needle is not None and needle not in message.data:
                        continue
                    try:
                        delivered = decode(message.data)
                        verify(delivered, message.subject, message.headers)
                    except PoisonMessageError as poison:
                        projection.undecodable[poison.reason] += 1
                        continue
                    if chosen.admits(delivered):
                        projection.fold(delivered)
        except NoRespondersError:
            return projection  # the stream went away meanwhile
    return projection


async def _in_stream_order(
    reader: DirectReader, subjects: list[str], since: datetime | None, last: int
) -> AsyncIterator[list[StoredMessage]]:
    """The messages under ``subjects`` up to ``last``, in stream order. A window's start is
    filtered by the server (the stream's time is the publish time, never before the event's own
    time); its end is not: a relay may publish an old event late."""
    if len(subjects) == 1:
        async for batch in reader.read(subjects[0], start_time=since, up_to_seq=last):
            yield batch
        return
    # Several types: each read on its own (the server filters), merged by stream sequence.
    found: list[list[StoredMessage]] = []
    for subject in subjects:
        found.append(
            [m async for b in reader.read(subject, start_time=since, up_to_seq=last) for m in b]
        )
    yield list(heapq.merge(*found, key=lambda m: m.seq))


def stream_sequence(message: Msg) -> int:
    """The stream sequence of a message an ordered consumer delivered, read from its reply
    subject (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.
    <pending>``) rather than through ``Msg.metadata``, which builds a dataclass and a datetime per
    message: a fifth of a replay's time."""
    tokens = message.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5])
    return int(message.metadata.sequence.stream)  # the longer form, with domain and account


def summary_lines(projection: Projection, *, case_id: UUID | None = None) -> list[str]:
    """The projection as an analyst reads it on a terminal."""
    summary = projection.summary()
    lines = [
        f"events {summary['events']} in {summary['cases']} case(s)"
        f" (read {summary['messages_read']}, duplicates {summary['duplicates']},"
        f" undecodable {sum(projection.undecodable.values())})",
        f"from {summary['first'] or '-'} to {summary['last'] or '-'}",
    ]
    for title, key in (
        ("by type", "by_type"),
        ("stage reached", "stages"),
        ("models", "models"),
        ("stop reasons", "stop_reasons"),
        ("undecodable", "undecodable"),
    ):
        if summary[key]:
            lines.append(f"{title}:")
            lines.extend(f"  {count:>7}  {name}" for name, count in summary[key].items())
    if summary["lead_times"]:
        lines.append("lead times (median / max, hours):")
        for label, figures in summary["lead_times"].items():
            lines.append(
                f"  {label:<28} {figures['median_s'] / 3600:>8.2f} / {figures['max_s'] / 3600:.2f}"
                f"  ({int(figures['cases'])} cases)"
            )
    if case_id is not None and case_id in projection.cases:
        line = projection.cases[case_id]
        lines.append(f"case {line.case_id} ({line.model}): {line.stage}")
        for name, at in sorted(line.times.items(), key=lambda item: item[1]):
            lines.append(f"  {at.isoformat()}  {name}")
    return lines
