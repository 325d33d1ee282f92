"""The facts of each case, folded from its integration events in any order.

One fold serves the export and the report, so the two always agree. A case is known by a key
the caller chooses: the export's keyed pseudonym, the report's case id (it never leaves memory).
Every time is the earliest seen, so an event re-published late, or two origins' relays that
publish in another order than things happened, change nothing. A re-published copy (the same
``origin:position``) is folded once. An erased case is dropped with everything known of it, and
nothing of it is taken in again.

Only ids, codes, counts, marks and times are kept: the stream carries nothing else.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from shared.envelope import Delivered
from shared.events import (
    CaseEndedWithoutConference,
    CaseErased,
    ConferenceHeld,
    ConferencePart,
    CoordinatorAssigned,
    FirstContactMade,
    FollowUpConferenceRequested,
    FollowUpDue,
    IntegrationEvent,
    OutcomeRecorded,
    ParticipantRole,
    PlanDistributed,
    RatingsRecorded,
    RequestReceived,
    RequestSubmitted,
    RequestWithdrawn,
    RequestWithdrawnBeforeAcceptance,
)

#: The users' zone: months and days are counted as a regional manager's calendar shows them.
ZONE = ZoneInfo("Europe/Amsterdam")
#: Who counts as a child among the people at a conference.
CHILD_ROLES = frozenset({ParticipantRole.CHILD, ParticipantRole.PUPIL})


class Outcome(StrEnum):
    """Where a request ended up, as the field counts it."""

    CONFERENCE = "conference"
    PLAN_WITHOUT_MEETING = "plan_without_meeting"
    STOPPED = "stopped"
    OPEN = "open"  # still under way


class StopStage(StrEnum):
    """How far a stopped case got, as far as the stream shows it."""

    SUBMITTED = "submitted"
    CLARIFIED = "clarified"
    ACCEPTED = "accepted"  # waiting for a coordinator
    COORDINATOR_ASSIGNED = "coordinator_assigned"
    FIRST_CONTACT = "first_contact"  # in preparation


#: Why a request stopped when it was withdrawn before acceptance (no reason travels with it).
WITHDRAWN_BEFORE_ACCEPTANCE = "withdrawn_before_acceptance"
#: What ``follow_up_of`` says when the case followed up was erased: a follow-up still, of what
#: can no longer be named.
ERASED_CASE = "erased"


@dataclass(slots=True)
class CaseFacts:
    """What the stream says of one case. Times are the earliest seen."""

    case: str
    model: str
    region: str | None = None
    requester_relation: str | None = None
    informational_talk: bool | None = None
    follow_up_of: str | None = None
    submitted_at: datetime | None = None
    accepted_at: datetime | None = None
    withdrawn_before_acceptance_at: datetime | None = None
    withdrawn_stage: str | None = None
    withdrawn_after_acceptance_at: datetime | None = None
    assigned_at: datetime | None = None
    contacted_at: datetime | None = None
    held_on: date | None = None
    attended: int | None = None
    children: int | None = None
    ended_at: datetime | None = None
    ending: str | None = None
    stop_reason: str | None = None
    distributed_at: datetime | None = None
    plan_versions: int = 0
    follow_up_due_at: datetime | None = None
    outcome_recorded_at: datetime | None = None
    follow_up_conferences: int = 0

    # -- what follows from the facts -----------------------------------------------------
    @property
    def outcome(self) -> Outcome:
        if self.held_on is not None:
            return Outcome.CONFERENCE
        if self.ending == "plan_without_meeting":
            return Outcome.PLAN_WITHOUT_MEETING
        if (
            self.ending == "stopped"
            or self.withdrawn_before_acceptance_at is not None
            or self.withdrawn_after_acceptance_at is not None
        ):
            return Outcome.STOPPED
        return Outcome.OPEN

    @property
    def why_stopped(self) -> str | None:
        if self.outcome is not Outcome.STOPPED:
            return None
        if self.stop_reason is not None:
            return self.stop_reason
        if self.accepted_at is None:
            return WITHDRAWN_BEFORE_ACCEPTANCE
        return "request_withdrawn"

    @property
    def stop_stage(self) -> StopStage | None:
        if self.outcome is not Outcome.STOPPED:
            return None
        if self.accepted_at is None:
            return StopStage(self.withdrawn_stage or StopStage.SUBMITTED)
        if self.contacted_at is not None:
            return StopStage.FIRST_CONTACT
        if self.assigned_at is not None:
            return StopStage.COORDINATOR_ASSIGNED
        return StopStage.ACCEPTED

    @property
    def made_a_plan(self) -> bool:
        return self.outcome in (Outcome.CONFERENCE, Outcome.PLAN_WITHOUT_MEETING)

    def days_from_request(self, to: datetime | date | None) -> float | None:
        """Days from the request to ``to``; a date (the conference's day) counts from the day
        the request was made, in the users' calendar."""
        if to is None or self.submitted_at is None:
            return None
        if isinstance(to, datetime):
            return (to - self.submitted_at).total_seconds() / 86_400
        return float((to - self.submitted_at.astimezone(ZONE).date()).days)


#: The stored form of a case's facts (the export keeps them between runs).
FACT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(CaseFacts))


@dataclass(frozen=True, slots=True)
class OutcomeFact:
    case: str
    recorded_at: datetime
    kind: str | None
    timer_id: str | None
    reached: bool
    #: agreement id -> kept, partly_kept, not_kept
    agreements: dict[str, str]


@dataclass(frozen=True, slots=True)
class RatingFact:
    case: str
    recorded_at: datetime
    kind: str
    by: str
    meeting: int | None
    plan: int | None


@dataclass(frozen=True, slots=True)
class AttendanceFact:
    case: str
    held_on: date
    role: str
    #: Different people in this role over the whole conference (None: coordinator, interpreter).
    attended: int | None
    #: How many of this role were present in each part.
    by_part: dict[str, int]


class Sink:
    """Where the fold puts what happened, one row per event (the export writes them; the
    report counts them). The default keeps nothing."""

    def event(self, case: str, delivered: Delivered) -> None:
        pass

    def attendance(self, row: AttendanceFact) -> None:
        pass

    def outcome(self, row: OutcomeFact) -> None:
        pass

    def rating(self, row: RatingFact) -> None:
        pass

    def erased(self, case: str) -> None:
        pass


@dataclass
class Fold:
    """Every case's facts, folded event by event. ``key`` turns a case id into the case's key."""

    key: Callable[[UUID], str]
    sink: Sink = field(default_factory=Sink)
    cases: dict[str, CaseFacts] = field(default_factory=dict)
    #: Keys of the cases erased: nothing of them is taken in again.
    erased: set[str] = field(default_factory=set)
    #: Erased cases as kept between runs: a digest of the key, which matches no row anywhere.
    erased_digests: set[str] = field(default_factory=set)
    #: Keys erased by this fold's events (not those known erased before).
    newly_erased: set[str] = field(default_factory=set)
    #: ``origin:position`` of every event folded (a re-published copy is folded once).
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0
    folded: int = 0
    last_time: datetime | None = None

    def __post_init__(self) -> None:
        self._handlers: dict[type[IntegrationEvent], Callable[[Any, CaseFacts, Delivered], None]]
        self._handlers = {
            RequestSubmitted: self._submitted,
            RequestWithdrawnBeforeAcceptance: self._withdrawn_before_acceptance,
            RequestReceived: self._received,
            RequestWithdrawn: self._withdrawn_after_acceptance,
            CoordinatorAssigned: self._assigned,
            FirstContactMade: self._contacted,
            ConferenceHeld: self._held,
            CaseEndedWithoutConference: self._ended,
            PlanDistributed: self._distributed,
            FollowUpDue: self._due,
            OutcomeRecorded: self._outcome,
            RatingsRecorded: self._ratings,
            FollowUpConferenceRequested: self._follow_up_conference,
        }
        #: case id (as an int: hashed in C, unlike a UUID) -> the case's key
        self._keys: dict[int, str] = {}

    def key_of(self, case_id: UUID) -> str:
        found = self._keys.get(case_id.int)
        if found is None:
            found = self._keys[case_id.int] = self.key(case_id)
            if self.erased_digests and erased_digest(found) in self.erased_digests:
                self.erased.add(found)
        return found

    def fold_all(self, delivered: Iterable[Delivered]) -> Fold:
        for one in delivered:
            self.fold(one)
        return self

    def fold(self, delivered: Delivered) -> None:
        # The hot path of an export, run once per event: set and dict lookups, one handler.
        seen = self.seen
        event_id = delivered.event_id
        if event_id in seen:
            self.duplicates += 1
            return
        seen.add(event_id)
        event = delivered.event
        key = self._keys.get(event.case_id.int) or self.key_of(event.case_id)
        if key in self.erased:
            return
        self.folded += 1
        at = delivered.time
        if self.last_time is None or at > self.last_time:
            self.last_time = at
        kind = type(event)
        if kind is CaseErased:
            self.erase(key)
            return
        facts = self.cases.get(key)
        if facts is None:
            facts = self.cases[key] = CaseFacts(case=key, model=event.model.value)
        self.sink.event(key, delivered)
        handler = self._handlers.get(kind)
        if handler is not None:
            handler(event, facts, delivered)

    def erase(self, key: str) -> None:
        self.erased.add(key)
        self.newly_erased.add(key)
        self.cases.pop(key, None)
        for facts in self.cases.values():
            if facts.follow_up_of == key:
                facts.follow_up_of = ERASED_CASE
        self.sink.erased(key)

    def _link(self, case_id: UUID) -> str:
        key = self.key_of(case_id)
        return ERASED_CASE if key in self.erased else key

    # -- one handler per event type ------------------------------------------------------
    def _submitted(self, e: RequestSubmitted, f: CaseFacts, _: Delivered) -> None:
        f.region = e.region
        f.requester_relation = e.requester_relation.value
        f.informational_talk = e.informational_talk
        if e.follow_up_of is not None:
            f.follow_up_of = self._link(e.follow_up_of)
        f.submitted_at = _earliest(f.submitted_at, e.submitted_at)

    def _withdrawn_before_acceptance(
        self, e: RequestWithdrawnBeforeAcceptance, f: CaseFacts, _: Delivered
    ) -> None:
        f.withdrawn_before_acceptance_at = _earliest(
            f.withdrawn_before_acceptance_at, e.withdrawn_at
        )
        f.withdrawn_stage = e.stage.value if e.stage else None
        if f.region is None:
            f.region = e.region

    def _received(self, e: RequestReceived, f: CaseFacts, _: Delivered) -> None:
        # Requests made before RequestSubmitted existed are known from here on.
        f.region = f.region or e.region
        if f.informational_talk is None:
            f.informational_talk = e.informational_talk
        if f.follow_up_of is None and e.follow_up_of is not None:
            f.follow_up_of = self._link(e.follow_up_of)
        f.submitted_at = _earliest(f.submitted_at, e.submitted_at)
        f.accepted_at = _earliest(f.accepted_at, e.accepted_at)

    def _withdrawn_after_acceptance(self, e: RequestWithdrawn, f: CaseFacts, _: Delivered) -> None:
        f.withdrawn_after_acceptance_at = _earliest(f.withdrawn_after_acceptance_at, e.withdrawn_at)

    def _assigned(self, e: CoordinatorAssigned, f: CaseFacts, _: Delivered) -> None:
        f.assigned_at = _earliest(f.assigned_at, e.assigned_at)

    def _contacted(self, e: FirstContactMade, f: CaseFacts, _: Delivered) -> None:
        f.contacted_at = _earliest(f.contacted_at, e.contacted_at)

    def _held(self, e: ConferenceHeld, f: CaseFacts, _: Delivered) -> None:
        f.held_on = e.held_on
        f.attended = sum(e.attended.values())
        f.children = sum(n for role, n in e.attended.items() if role in CHILD_ROLES)
        by_part: dict[str, dict[str, int]] = {}
        for part, counts in e.attendance.items():
            for role, count in counts.items():
                by_part.setdefault(role, {})[ConferencePart(part).value] = count
        attended: dict[str, int] = {role.value: n for role, n in e.attended.items()}
        for role in sorted(set(by_part) | set(attended)):
            self.sink.attendance(
                AttendanceFact(
                    case=f.case,
                    held_on=e.held_on,
                    role=role,
                    attended=attended.get(role),
                    by_part=by_part.get(role, {}),
                )
            )

    def _ended(self, e: CaseEndedWithoutConference, f: CaseFacts, _: Delivered) -> None:
        f.ending = e.ending.value
        f.stop_reason = e.reason.value if e.reason else None
        f.ended_at = _earliest(f.ended_at, e.ended_at)

    def _distributed(self, e: PlanDistributed, f: CaseFacts, _: Delivered) -> None:
        f.distributed_at = _earliest(f.distributed_at, e.distributed_at)
        f.plan_versions = max(f.plan_versions, e.plan_version)

    def _due(self, e: FollowUpDue, f: CaseFacts, _: Delivered) -> None:
        if e.kind != "next_meeting_reminder":
            f.follow_up_due_at = _earliest(f.follow_up_due_at, e.due_at)

    def _outcome(self, e: OutcomeRecorded, f: CaseFacts, _: Delivered) -> None:
        f.outcome_recorded_at = _earliest(f.outcome_recorded_at, e.recorded_at)
        self.sink.outcome(
            OutcomeFact(
                case=f.case,
                recorded_at=e.recorded_at,
                kind=e.kind,
                timer_id=e.timer_id,
                reached=e.reached,
                agreements={a: r.value for a, r in e.agreements.items()},
            )
        )

    def _ratings(self, e: RatingsRecorded, f: CaseFacts, _: Delivered) -> None:
        for rating in e.ratings:
            self.sink.rating(
                RatingFact(
                    case=f.case,
                    recorded_at=e.recorded_at,
                    kind=e.kind,
                    by=rating.by.value,
                    meeting=rating.meeting,
                    plan=rating.plan,
                )
            )

    def _follow_up_conference(
        self, e: FollowUpConferenceRequested, f: CaseFacts, _: Delivered
    ) -> None:
        f.follow_up_conferences += 1


def erased_digest(key: str) -> str:
    """How an erased case's key is remembered: never the key itself, which is in the rows."""
    return hashlib.sha256(f"erased:{key}".encode()).hexdigest()[:32]


def _earliest(known: Any, new: Any) -> Any:
    return new if known is None or new < known else known


class Months:
    """The month (``2026-03``) of a moment in the users' calendar, quickly: a bisection into the
    months' first moments, worked out once per year seen."""

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._names: list[str] = []
        self._years: set[int] = set()

    def of(self, moment: datetime | date) -> str:
        if not isinstance(moment, datetime):
            return f"{moment.year:04d}-{moment.month:02d}"
        stamp = moment.timestamp()
        year = moment.year
        if year not in self._years or (year + 1) not in self._years:
            self._add_years(year - 1, year + 1)
        index = bisect.bisect_right(self._starts, stamp) - 1
        return self._names[index]

    def _add_years(self, first: int, last: int) -> None:
        for year in range(first, last + 1):
            if year in self._years or not 1 <= year <= 9998:
                continue
            self._years.add(year)
            for month in range(1, 13):
                start = datetime(year, month, 1, tzinfo=ZONE).timestamp()
                index = bisect.bisect_left(self._starts, start)
                self._starts.insert(index, start)
                self._names.insert(index, f"{year:04d}-{month:02d}")


def months_of(stamps: Any) -> list[str]:
    """The users' month of each of many moments (microseconds since 1970, UTC), at once."""
    import numpy as np

    values = np.asarray(stamps, dtype=np.int64)
    if values.size == 0:
        return []
    first = datetime.fromtimestamp(int(values.min()) / 1e6, ZONE).year - 1
    last = datetime.fromtimestamp(int(values.max()) / 1e6, ZONE).year + 1
    names = [f"{y:04d}-{m:02d}" for y in range(first, last + 1) for m in range(1, 13)]
    starts = np.array(
        [
            int(datetime(y, m, 1, tzinfo=ZONE).timestamp() * 1_000_000)
            for y in range(first, last + 1)
            for m in range(1, 13)
        ],
        dtype=np.int64,
    )
    index = np.searchsorted(starts, values, side="right") - 1
    return [names[i] for i in index.tolist()]


def in_window(moment: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    """Whether ``moment`` lies in [since, until); an unknown moment lies in no window but the
    whole of time."""
    if moment is None:
        return since is None and until is None
    return (since is None or moment >= since) and (until is None or moment < until)
