"""``kring export`` and ``kring report`` on a stream of many cases as the field makes them: every
model, requests withdrawn before acceptance, cases stopped at each step for each reason, plans
without a meeting, conferences with their attendance, follow-up contacts with outcomes and
ratings, follow-up conferences, a few erasures. The export's events per second (as the analyst,
with direct gets) are set against the raw ordered-consumer read of the same stream in the same
run (as admin, who may make a consumer); the report is timed whole."""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nats.js.errors import NotFoundError

from bench.baselines import ordered_read
from bench.report import Report, section
from kring.analytics.export import ExportRequest, export
from kring.analytics.report import ReportRequest, make_report
from kring.client import connect_nats
from shared.bus import ensure_streams
from shared.envelope import encode, message_headers
from shared.events import (
    CaseEndedWithoutConference,
    CaseErased,
    ConferenceHeld,
    CoordinatorAssigned,
    FirstContactMade,
    FollowUpConferenceRequested,
    FollowUpDue,
    IntegrationEvent,
    OutcomeRecorded,
    ParticipantRef,
    PlanDistributed,
    Rating,
    RatingsRecorded,
    RequestReceived,
    RequestSubmitted,
    RequestWithdrawn,
    RequestWithdrawnBeforeAcceptance,
)
from shared.permissions import ADMIN, ANALYST, SERVICES
from shared.stream_read import DirectReader
from shared.subjects import ALL_SUBJECTS, STREAM
from tests.servers import NatsServer

MODELS = (("family", 60), ("group", 15), ("restorative", 10), ("learning_circle", 15))
REGIONS = (
    "Groningen", "Friesland", "Drenthe", "Overijssel", "Gelderland", "Utrecht",
    "Noord-Holland", "Zuid-Holland", "Zeeland", "Noord-Brabant", "Limburg", "Flevoland",
)  # fmt: skip
RELATIONS = ("self", "family", "neighbour", "teacher", "care_worker", "police", "other")
ROLES = {
    "family": ("central_person", "family", "network", "child", "professional"),
    "group": ("central_person", "network", "professional"),
    "restorative": ("offender", "victim", "family", "network", "professional"),
    "learning_circle": ("pupil", "teacher", "family", "network"),
}
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def case_events(
    rng: random.Random, earlier: list[uuid.UUID]
) -> list[tuple[IntegrationEvent, datetime]]:
    """One case's events as the services publish them, with the time each happened."""
    case_id = uuid.uuid4()
    model = rng.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]
    region = rng.choice(REGIONS)
    at = START + timedelta(minutes=rng.randrange(0, 660 * 24 * 60))
    follow_up_of = rng.choice(earlier) if earlier and rng.random() < 0.03 else None
    out: list[tuple[IntegrationEvent, datetime]] = []

    def add(event: IntegrationEvent, moment: datetime) -> None:
        out.append((event, moment))

    common: dict[str, Any] = {"case_id": case_id, "model": model}
    add(
        RequestSubmitted(
            **common, region=region, requester_relation=rng.choice(RELATIONS),
            informational_talk=rng.random() < 0.2, follow_up_of=follow_up_of, submitted_at=at,
        ),
        at,
    )  # fmt: skip
    earlier.append(case_id)
    fate = rng.random()
    if fate < 0.10:  # withdrawn before acceptance
        then = at + rng.randint(1, 14) * DAY
        stage = rng.choice(("submitted", "clarified"))
        add(RequestWithdrawnBeforeAcceptance(**common, region=region, stage=stage,
                                             withdrawn_at=then), then)  # fmt: skip
        return out
    if fate < 0.14:  # not accepted yet
        return out
    accepted = at + rng.randint(1, 10) * DAY
    add(RequestReceived(**common, region=region, follow_up_of=follow_up_of, submitted_at=at,
                        accepted_at=accepted), accepted)  # fmt: skip
    if fate < 0.17:
        then = accepted + rng.randint(5, 30) * DAY
        add(CaseEndedWithoutConference(**common, ending="stopped", reason="no_coordinator",
                                       ended_at=then), then)  # fmt: skip
        return out
    assigned = accepted + rng.randint(0, 3) * DAY
    add(CoordinatorAssigned(**common, coordinator_ids=[f"c{rng.randrange(250)}"],
                            assigned_at=assigned, first_contact_due=assigned + 3 * DAY),
        assigned)  # fmt: skip
    contacted = assigned + rng.randint(1, 5) * DAY
    add(FirstContactMade(**common, contacted_at=contacted), contacted)
    if fate < 0.30:  # stops during preparation, for each reason
        then = contacted + rng.randint(3, 40) * DAY
        reason = rng.choice(("network_not_willing", "safety", "other", "request_withdrawn"))
        if reason == "request_withdrawn":
            add(RequestWithdrawn(**common, withdrawn_at=then), then)
        add(CaseEndedWithoutConference(**common, ending="stopped", reason=reason, ended_at=then),
            then)  # fmt: skip
        return out
    agreements = [f"a{n}" for n in range(1, rng.randint(3, 7))]
    if fate < 0.42:  # a plan without a meeting
        then = contacted + rng.randint(5, 30) * DAY
        add(CaseEndedWithoutConference(**common, ending="plan_without_meeting", ended_at=then),
            then)  # fmt: skip
        distributed = then + rng.randint(1, 7) * DAY
    else:
        held_on = (at + rng.randint(18, 90) * DAY).date()
        attended = {role: rng.randint(1, 4) for role in ROLES[model]}
        refs = [
            ParticipantRef(participant_id=f"p{i}", role=role)
            for i, role in enumerate(r for r, n in attended.items() for _ in range(n))
        ]
        held_at = datetime.combine(held_on, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20)
        add(
            ConferenceHeld(
                **common, held_on=held_on, parts=["information", "plan_making", "presentation"],
                attendance={"information": {**attended, "coordinator": 1}, "plan_making": attended},
                participants=refs, attended=attended,
            ),
            held_at,
        )  # fmt: skip
        distributed = held_at + rng.randint(2, 10) * DAY
    add(PlanDistributed(**common, plan_version=1, distributed_at=distributed,
                        agreement_ids=agreements), distributed)  # fmt: skip
    for kind, after, chance in (("coordinator_call", 28, 0.9), ("research", 91, 0.7)):
        due = distributed + after * DAY
        if due > datetime(2026, 11, 30, tzinfo=UTC):
            break
        add(FollowUpDue(**common, timer_id=kind, kind=kind, due_at=due), due)
        if rng.random() > chance:
            continue
        recorded = due + rng.randint(0, 5) * DAY
        reached = rng.random() < 0.85
        results = {a: rng.choice(("kept", "kept", "partly_kept", "not_kept")) for a in agreements}
        add(OutcomeRecorded(**common, reached=reached, agreements=results if reached else {},
                            recorded_at=recorded, timer_id=kind, kind=kind), recorded)  # fmt: skip
        if reached:
            ratings = [
                Rating(by=rng.choice(("family_network", "family_network", "professional")),
                       meeting=rng.randint(5, 10), plan=rng.randint(5, 10))
                for _ in range(rng.randint(1, 4))
            ]  # fmt: skip
            add(RatingsRecorded(**common, timer_id=kind, kind=kind, ratings=ratings,
                                recorded_at=recorded), recorded)  # fmt: skip
        if rng.random() < 0.08:
            add(FollowUpConferenceRequested(**common, new_case_id=uuid.uuid4(),
                                            requested_at=recorded), recorded)  # fmt: skip
    if rng.random() < 0.005:
        gone = distributed + 120 * DAY
        add(CaseErased(**common, reason="requested_by_person", erased_at=gone), gone)
    return out


def field_stream(cases: int, seed: int = 12) -> Iterator[tuple[IntegrationEvent, datetime]]:
    """``cases`` cases' events, in the order the relays would publish them (by time)."""
    rng = random.Random(seed)  # noqa: S311 - made-up cases, not secrets
    earlier: list[uuid.UUID] = []
    everything = [item for _ in range(cases) for item in case_events(rng, earlier)]
    everything.sort(key=lambda item: item[1])
    yield from everything


async def fill(server: NatsServer, cases: int) -> int:
    """A fresh KRING holding ``cases`` cases, each event published as the relays do: by its
    origin's identity, under its origin's next position, at the time it happened."""
    admin = await server.connect(ADMIN)
    origins = {name: await server.connect(name) for name in SERVICES}
    try:
        with contextlib.suppress(NotFoundError):
            await admin.jetstream().delete_stream(STREAM)
        await ensure_streams(admin.jetstream())
        streams: dict[str, Any] = {
            name: c.jetstream(publish_async_max_pending=4000) for name, c in origins.items()
        }
        positions: Counter[str] = Counter()
        published = 0
        for event, moment in field_stream(cases):
            positions[event.origin] += 1
            position = positions[event.origin]
            await streams[event.origin].publish_async(
                event.subject(),
                encode(event, origin=event.origin, position=position, time=moment),
                headers=message_headers(event.origin, position),
            )
            published += 1
        for js in streams.values():
            await js.publish_async_completed()
        return published
    finally:
        for connection in [admin, *origins.values()]:
            await connection.close()


async def direct_read(connection: Any) -> tuple[int, float]:
    """Every message of KRING by direct get in batches, as ``kring export`` reads, nothing
    decoded; (count, msg/s)."""
    count = 0
    started = time.perf_counter()
    async with DirectReader(connection, STREAM) as reader:
        async for batch in reader.read(ALL_SUBJECTS):
            count += len(batch)
    return count, count / (time.perf_counter() - started)


async def analytics_bench(
    report: Report, server: NatsServer, cases: int, *, exports: bool, reports: bool
) -> None:
    section(f"export and report ({cases} cases of every model on KRING)")
    began = time.perf_counter()
    events = await fill(server, cases)
    print(f"  {events} events of {cases} cases published in {time.perf_counter() - began:.0f} s")
    # The raw read as admin, who may make an ordered consumer; export and report as the analyst
    # does, who may not (direct get).
    admin = await server.connect(ADMIN)
    connection = await connect_nats(server.url, ANALYST, password=server.password(ANALYST))
    work = Path(tempfile.mkdtemp(prefix="kring-bench-analytics-"))
    try:
        if exports:
            count, raw_rate = await ordered_read(admin, STREAM, ALL_SUBJECTS)
            report.add("export_raw_read", "raw ordered-consumer read of KRING", raw_rate, "msg/s")
            # What the analyst's own read costs before anything is decoded: not a target, the
            # part of the export's time that direct get (rather than a consumer) accounts for.
            direct_count, direct_rate = await direct_read(connection)
            report.add(
                "export_direct_read",
                "raw direct-get read of KRING, as the analyst",
                direct_rate,
                "msg/s",
                baseline="export_raw_read",
            )
            if direct_count != events:
                raise RuntimeError(f"the direct-get read saw {direct_count} of {events} events")
            started = time.perf_counter()
            result = await export(connection, ExportRequest(target=work / "export"))
            elapsed = time.perf_counter() - started
            rate = result.read / elapsed
            print(f"  {result.summary()}")
            report.add(
                "export",
                f"kring export to Parquet, first run ({result.cases} cases, {elapsed:.1f} s)",
                rate,
                "events/s",
                baseline="export_raw_read",
                target=">= 0.5 x raw read",
                met=rate >= 0.5 * raw_rate,
            )
            started = time.perf_counter()
            again = await export(connection, ExportRequest(target=work / "export"))
            report.add(
                "export_again",
                f"kring export, a run with nothing new ({again.read} events read)",
                time.perf_counter() - started,
                "s",
            )
            if count != events:
                raise RuntimeError(f"the raw read saw {count} of {events} events")
        if reports:
            started = time.perf_counter()
            written = await make_report(connection, ReportRequest(out=work / "report.html"))
            elapsed = time.perf_counter() - started
            report.add(
                "report",
                f"kring report ({written.answer.overall.requests} requests,"
                f" {written.read.read} events, {len(written.pngs)} PNGs)",
                elapsed,
                "s",
            )
        print(f"  work folder: {work}")
    finally:
        await connection.close()
        await admin.close()
