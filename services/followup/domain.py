"""The follow-up of a plan (vervolg) and its rules. No I/O.

After the plan is distributed somebody gets back in touch: the coordinator calls after about four
weeks (Eigen Kracht's own site), and research contacts follow after about three months (seed
000: "Na drie maanden wordt voor onderzoeksdoeleinden contact opgenomen"). Which contacts, and
when, is a schedule per conference model. Beside the contacts, a reminder of the plan's own next
meeting (when everyone meets again). At each contact the outcome is recorded: whether anyone was
reached, and per agreement (afspraak) whether it was kept, partly kept or not kept; and at a
contact, the marks (1-10) the people asked gave the meeting and the plan, by group (family and
network, or professionals). A follow-up conference (vervolgconferentie) may be requested; intake
opens it as a new, linked case.

Timers are event-sourced: scheduling, firing and cancelling are events of the case's follow-up,
so a restart neither loses nor doubles one, and a timer fires once even if two workers race
(the second save conflicts on the aggregate version).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event
from pydantic import Field

from shared.errors import DomainRuleError, InvalidFieldError
from shared.values import Value

#: The kind of the next-meeting reminder; every other kind is a contact.
REMINDER = "next_meeting_reminder"
COORDINATOR_CALL = "coordinator_call"
RESEARCH = "research"
#: The family's own next meeting (the leaflet on requesting a conference: "wanneer iedereen
#: weer bijeenkomt om te kijken hoe het gaat"), a contact of its own: held or not, the
#: agreements reviewed, a revised plan wanted or not. Due on the meeting's day.
NEXT_MEETING = "next_meeting"
#: Kinds the schedule may not name: the follow-up makes these from the plan itself.
RESERVED_KINDS = frozenset({REMINDER, NEXT_MEETING})

#: The users' zone, and the time of day a reminder is due (the start of a working day).
USERS_ZONE = ZoneInfo("Europe/Amsterdam")
REMINDER_TIME = time(9, 0)
SECONDS_PER_DAY = 86_400.0

#: Who may record which contact's outcome is ``services.followup.access``.


class Stage(StrEnum):
    SCHEDULED = "follow_up_scheduled"  # contacts ahead; none due without its outcome
    DUE = "follow_up_due"  # a contact came due and its outcome is not recorded yet
    FOLLOWED_UP = "followed_up"  # every contact came due and has its outcome


@dataclass(frozen=True)
class Contact:
    """One entry of a model's schedule: a contact of some kind, so many days after the plan."""

    kind: str
    after_days: float


#: The default for every model: the coordinator's call after four weeks (Eigen Kracht), the
#: research contact after three months (the leaflet on conferences for a group, neighbourhood
#: or street).
DEFAULT_CONTACTS: tuple[Contact, ...] = (
    Contact(COORDINATOR_CALL, 28),
    Contact(RESEARCH, 91),
)


@dataclass(frozen=True)
class Schedule:
    """When the timers of a follow-up are due. ``seconds_per_day`` is how long a schedule day
    lasts on the clock (86,400 in earnest; a fraction of a second for a demo or a test)."""

    contacts: Mapping[str, Sequence[Contact]] = field(default_factory=dict)
    default: Sequence[Contact] = DEFAULT_CONTACTS
    seconds_per_day: float = SECONDS_PER_DAY
    reminder_days_before: int = 7

    def contacts_for(self, model: str) -> list[Contact]:
        """The model's contacts in time order (a model without its own list has the default)."""
        return sorted(self.contacts.get(model, self.default), key=lambda c: c.after_days)

    def days(self, days: float) -> timedelta:
        return timedelta(seconds=days * self.seconds_per_day)

    def contact_due(self, distributed_at: datetime, contact: Contact) -> datetime:
        return distributed_at + self.days(contact.after_days)

    def reminder_due(self, next_meeting_on: date, distributed_at: datetime) -> datetime | None:
        """``reminder_days_before`` days before the meeting at 09:00 in Amsterdam; at once if
        that moment passed before the plan was distributed but the meeting is still ahead;
        None if the meeting itself passed. With compressed days the span from the distribution
        to that moment shrinks in proportion, like every other timer."""
        distributed_on = distributed_at.astimezone(USERS_ZONE).date()
        if next_meeting_on < distributed_on:
            return None
        reminder_on = next_meeting_on - timedelta(days=self.reminder_days_before)
        moment = datetime.combine(reminder_on, REMINDER_TIME, tzinfo=USERS_ZONE)
        if moment <= distributed_at:
            return distributed_at
        return distributed_at + (moment - distributed_at) * (self.seconds_per_day / SECONDS_PER_DAY)

    def meeting_due(self, next_meeting_on: date, since: datetime) -> datetime:
        """The next meeting as a contact: due at 09:00 in Amsterdam on its day (its outcome is
        recorded once it was held, or was not); at once if that moment has passed. Compressed
        in proportion with the schedule's days, like every other timer."""
        moment = datetime.combine(next_meeting_on, REMINDER_TIME, tzinfo=USERS_ZONE)
        if moment <= since:
            return since
        return since + (moment - since) * (self.seconds_per_day / SECONDS_PER_DAY)


class Timer(Value):
    """One durable timer of a follow-up: a contact (the coordinator's call, research, the
    family's next meeting) or the reminder of the next meeting."""

    stored_as = "followup.timer"

    timer_id: str
    kind: str
    due_at: datetime
    fired_at: datetime | None = None
    cancelled_at: datetime | None = None
    outcome_recorded: bool = False

    @property
    def pending(self) -> bool:
        return self.fired_at is None and self.cancelled_at is None


class MeetingOutcome(Value):
    """What came of the family's own next meeting: held (on a day) or not, the agreements they
    reviewed (kept, partly kept, not kept), whether they want a revised plan, and when they
    meet again, if they said."""

    stored_as = "followup.meeting_outcome"

    timer_id: str
    held: bool
    held_on: date | None = None
    agreements: dict[str, str] = Field(default_factory=dict)
    revised_plan_wanted: bool = False
    next_meeting_on: date | None = None


@dataclass(frozen=True)
class Rating:
    """One respondent's marks (1-10) for the meeting and the plan, either may be missing, and
    the group they belong to (``shared.events.RatingGroup``): never who they are."""

    by: str
    meeting: int | None
    plan: int | None

    def as_record(self) -> dict[str, Any]:
        return {"by": self.by, "meeting": self.meeting, "plan": self.plan}


class CaseScope(Aggregate):
    """What followup knows of a case besides its follow-up, for who may see it: its region
    (from the accepted request) and its coordinators (each assignment). Heard before any plan
    is distributed, so an aggregate of its own, under a key of its own that the case's erasure
    shreds with the case's (``FollowupApplication.keys_of_case``)."""

    @staticmethod
    def create_id(case_id: UUID) -> UUID:
        return uuid5(case_id, "followup-scope")

    @event("Opened")
    def __init__(self, case_id: UUID) -> None:
        self.case_id = case_id
        self.region: str | None = None
        self.coordinator_ids: list[str] = []

    @event("RegionNoted")
    def note_region(self, *, region: str, actor: dict[str, str]) -> None:
        self.region = region

    @event("CoordinatorsNoted")
    def note_coordinators(self, *, coordinator_ids: list[str], actor: dict[str, str]) -> None:
        self.coordinator_ids = list(coordinator_ids)


def is_contact(kind: str) -> bool:
    return kind != REMINDER


def stage_of(timers: Iterable[Mapping[str, Any]]) -> Stage:
    """The stage of a follow-up from its timers (the aggregate and the case list share this)."""
    contacts = [t for t in timers if is_contact(t["kind"]) and t.get("cancelled_at") is None]
    if any(t["fired_at"] is not None and not t.get("outcome_recorded") for t in contacts):
        return Stage.DUE
    if contacts and all(t["fired_at"] is not None and t.get("outcome_recorded") for t in contacts):
        return Stage.FOLLOWED_UP
    return Stage.SCHEDULED


def next_timer_id(kind: str, kinds: Iterable[str]) -> str:
    """The first timer of a kind is named by its kind, later ones ``<kind>-2``, ``<kind>-3``:
    stable (stored with the timer) and unique within the follow-up."""
    n = 1 + sum(1 for k in kinds if k == kind)
    return kind if n == 1 else f"{kind}-{n}"


class FollowUp(Aggregate):
    """The follow-up of one case's plan. Its id is the case id."""

    @classmethod
    def open(
        cls,
        case_id: UUID,
        *,
        model: str,
        plan_version: int,
        distributed_at: datetime,
        next_meeting_on: date | None,
        agreement_ids: list[str],
        schedule: Schedule,
        at: datetime,
        actor: dict[str, str],
    ) -> FollowUp:
        """The plan was distributed for the first time: schedule the model's contacts and the
        reminder of the next meeting."""
        follow_up = cls(
            id=case_id,
            model=model,
            plan_version=plan_version,
            distributed_at=distributed_at,
            next_meeting_on=next_meeting_on,
            agreement_ids=agreement_ids,
            actor=actor,
        )
        for contact in schedule.contacts_for(model):
            follow_up._schedule(
                contact.kind, schedule.contact_due(distributed_at, contact), actor=actor
            )
        follow_up._schedule_meeting(schedule, distributed_at, actor=actor)
        return follow_up

    @event("Opened")
    def __init__(
        self,
        id: UUID,
        *,
        model: str,
        plan_version: int,
        distributed_at: datetime,
        actor: dict[str, str],
        # Defaults: absent in events stored before they existed.
        next_meeting_on: date | None = None,
        agreement_ids: list[str] | None = None,
    ) -> None:
        self.model = model
        self.plan_version = plan_version
        self.first_distributed_at = distributed_at
        self.distributed_at = distributed_at
        self.next_meeting_on = next_meeting_on
        self.agreement_ids = list(agreement_ids or [])
        self.timers: dict[str, Timer] = {}
        #: One per contact: {"timer_id", "kind", "reached", "agreements", "notes", "at", "by"}.
        self.outcomes: list[dict[str, Any]] = []
        #: What came of each of the family's own next meetings.
        self.meetings: list[MeetingOutcome] = []
        #: When a meeting asked for a revised plan.
        self.revisions_requested: list[datetime] = []
        #: timer id -> the ratings recorded at that contact.
        self.ratings: dict[str, list[Rating]] = {}
        self.follow_up_cases: list[UUID] = []

    # -- a revised plan --------------------------------------------------------------------
    def revise(
        self,
        *,
        plan_version: int,
        distributed_at: datetime,
        next_meeting_on: date | None,
        agreement_ids: list[str],
        schedule: Schedule,
        at: datetime,
        actor: dict[str, str],
    ) -> bool:
        """A later version was distributed: the contact schedule stands; the agreements become
        the new version's; a moved next meeting replaces the pending reminder. An earlier or
        the same version changes nothing (returns False)."""
        if plan_version <= self.plan_version:
            return False
        moved = next_meeting_on != self.next_meeting_on
        self._revised_plan_noted(
            plan_version=plan_version,
            distributed_at=distributed_at,
            next_meeting_on=next_meeting_on,
            agreement_ids=agreement_ids,
            actor=actor,
        )
        if moved:
            reason = (
                f"the next meeting moved to {next_meeting_on.isoformat()}"
                if next_meeting_on
                else "the revised plan names no next meeting"
            )
            self._cancel_meeting(reason, at=at, actor=actor)
            self._schedule_meeting(schedule, distributed_at, actor=actor)
        return True

    def _cancel_meeting(self, reason: str, *, at: datetime, actor: dict[str, str]) -> None:
        """The meeting moved: its pending reminder and its pending contact never fire."""
        for timer_id in self.pending():
            if self.timers[timer_id].kind in RESERVED_KINDS:
                self._cancelled(timer_id=timer_id, reason=reason, at=at, actor=actor)

    @event("RevisedPlanNoted")
    def _revised_plan_noted(
        self,
        *,
        plan_version: int,
        distributed_at: datetime,
        next_meeting_on: date | None,
        agreement_ids: list[str],
        actor: dict[str, str],
    ) -> None:
        self.plan_version = plan_version
        self.distributed_at = distributed_at
        self.next_meeting_on = next_meeting_on
        self.agreement_ids = list(agreement_ids)

    # -- timers ----------------------------------------------------------------------------
    def _schedule_meeting(
        self, schedule: Schedule, since: datetime, *, actor: dict[str, str]
    ) -> None:
        """The reminder of the next meeting (unless the meeting passed already) and the
        meeting itself, as a contact."""
        if self.next_meeting_on is None:
            return
        due_at = schedule.reminder_due(self.next_meeting_on, since)
        if due_at is not None:
            self._schedule(REMINDER, due_at, actor=actor)
        self._schedule(NEXT_MEETING, schedule.meeting_due(self.next_meeting_on, since), actor=actor)

    def _schedule(self, kind: str, due_at: datetime, *, actor: dict[str, str]) -> None:
        timer_id = next_timer_id(kind, (t.kind for t in self.timers.values()))
        self._scheduled(timer_id=timer_id, kind=kind, due_at=due_at, actor=actor)

    @event("Scheduled")
    def _scheduled(
        self, *, timer_id: str, kind: str, due_at: datetime, actor: dict[str, str]
    ) -> None:
        self.timers[timer_id] = Timer(timer_id=timer_id, kind=kind, due_at=due_at)

    def fire_due(self, *, at: datetime, actor: dict[str, str]) -> list[str]:
        """Fire every pending timer that is due by ``at``, earliest first; return their ids."""
        due = sorted(
            (t for t, due_at in self.pending().items() if due_at <= at),
            key=lambda t: self.timers[t].due_at,
        )
        for timer_id in due:
            timer = self.timers[timer_id]
            self._due(
                timer_id=timer_id,
                kind=timer.kind,
                due_at=timer.due_at,
                model=self.model,
                at=at,
                actor=actor,
            )
        return due

    @event("Due")
    def _due(
        self,
        *,
        timer_id: str,
        kind: str,
        due_at: datetime,
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self._timer(timer_id, fired_at=at)

    @event("Cancelled")
    def _cancelled(
        self, *, timer_id: str, reason: str, at: datetime, actor: dict[str, str]
    ) -> None:
        self._timer(timer_id, cancelled_at=at)

    def pending(self) -> dict[str, datetime]:
        """Timers neither fired nor cancelled, with their due times."""
        return {t: d.due_at for t, d in self.timers.items() if d.pending}

    # -- outcomes --------------------------------------------------------------------------
    def record_outcome(
        self,
        *,
        timer_id: str,
        reached: bool,
        agreements: Mapping[str, str],
        notes: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        """How the plan is carried out, as found at a contact that came due: reached or not;
        per agreement of the current version kept, partly kept or not kept; notes."""
        timer = self.check_contact(timer_id, "outcome")
        kind = timer.kind
        if kind == NEXT_MEETING:
            raise DomainRuleError(
                f"{timer_id} is the family's own next meeting: record it as a meeting"
                " (POST /cases/{id}/next-meeting): held or not, agreements reviewed"
            )
        if timer.outcome_recorded:
            raise DomainRuleError(f"the outcome of {timer_id} was already recorded")
        self.check_agreements(reached, agreements)
        self._outcome_recorded(
            timer_id=timer_id,
            kind=kind,
            reached=reached,
            agreements=dict(agreements),
            notes=notes,
            model=self.model,
            at=at,
            actor=actor,
        )

    def check_contact(self, timer_id: str, what: str) -> Timer:
        """The contact ``timer_id``, if it is one, came due, so its ``what`` (an outcome,
        ratings) may be recorded (who may is ``services.followup.access``)."""
        timer = self.timers.get(timer_id)
        if timer is None:
            known = ", ".join(t for t in self.timers if is_contact(self.timers[t].kind))
            raise InvalidFieldError(
                ("timer_id",), f"unknown timer {timer_id!r}: this follow-up's contacts are {known}"
            )
        if not is_contact(timer.kind):
            raise DomainRuleError(
                f"{timer_id} is the reminder of the next meeting, not a contact: it has no {what}"
            )
        if timer.fired_at is None:
            raise DomainRuleError(
                f"{timer_id} is not due yet (due {timer.due_at.isoformat()}): a follow-up"
                f" {what} is recorded once its contact is due"
            )
        return timer

    def check_agreements(self, reached: bool, agreements: Mapping[str, str]) -> None:
        for agreement_id in agreements:
            if agreement_id not in self.agreement_ids:
                known = ", ".join(self.agreement_ids) or "none"
                raise InvalidFieldError(
                    ("agreements", agreement_id),
                    f"unknown agreement {agreement_id!r}: plan version {self.plan_version} has"
                    f" {known}",
                )
        if agreements and not reached:
            raise InvalidFieldError(
                ("agreements",),
                "a contact that reached nobody has no agreement outcomes: leave agreements out",
            )

    @event("OutcomeRecorded")
    def _outcome_recorded(
        self,
        *,
        timer_id: str,
        kind: str,
        reached: bool,
        agreements: dict[str, str],
        notes: str,
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self._timer(timer_id, outcome_recorded=True)
        self.outcomes.append(
            {
                "timer_id": timer_id,
                "kind": kind,
                "reached": reached,
                "agreements": agreements,
                "notes": notes,
                "at": at,
                "by": actor,
            }
        )

    # -- the family's own next meeting ------------------------------------------------------
    def meeting_timer(self, timer_id: str | None) -> str:
        """The next-meeting contact meant: the one named, or the earliest without an outcome."""
        if timer_id is not None:
            timer = self.timers.get(timer_id)
            if timer is None or timer.kind != NEXT_MEETING:
                known = ", ".join(t for t, d in self.timers.items() if d.kind == NEXT_MEETING)
                raise InvalidFieldError(
                    ("timer_id",),
                    f"unknown next meeting {timer_id!r}: this follow-up's are {known or 'none'}",
                )
            return timer_id
        open_ = sorted(
            (
                t
                for t, d in self.timers.items()
                if d.kind == NEXT_MEETING and not d.outcome_recorded and d.cancelled_at is None
            ),
            key=lambda t: self.timers[t].due_at,
        )
        if not open_:
            raise DomainRuleError(
                "this plan names no next meeting still to record: the plan (or a meeting"
                " recorded before) sets the next one"
            )
        return open_[0]

    def record_meeting(
        self,
        *,
        outcome: MeetingOutcome,
        notes: str,
        schedule: Schedule,
        today: date,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        """The family's own next meeting, as a contact: held (on a day) or not, the agreements
        reviewed, a revised plan wanted or not (plans hears of it), and when they meet again
        (a new reminder and contact). Recorded once per meeting; the meeting's contact comes
        due first if its day was not reached (the family met earlier than planned)."""
        timer = self.timers[outcome.timer_id]
        if timer.outcome_recorded:
            raise DomainRuleError(f"the next meeting {outcome.timer_id} was already recorded")
        if outcome.held and outcome.held_on is None:
            raise InvalidFieldError(("held_on",), "a meeting held needs the day it was held")
        if not outcome.held and outcome.held_on is not None:
            raise InvalidFieldError(("held_on",), "a meeting not held has no day: leave it out")
        if outcome.held_on is not None and outcome.held_on > today:
            raise InvalidFieldError(("held_on",), f"must not be after today ({today.isoformat()})")
        if outcome.next_meeting_on is not None and outcome.next_meeting_on < today:
            raise InvalidFieldError(
                ("next_meeting_on",), f"must not be before today ({today.isoformat()})"
            )
        if outcome.revised_plan_wanted and not outcome.held:
            raise InvalidFieldError(
                ("revised_plan_wanted",),
                "a revised plan is asked for at a meeting held: record the meeting held, or ask"
                " the coordinator",
            )
        self.check_agreements(outcome.held, outcome.agreements)
        if timer.fired_at is None:
            self._due(
                timer_id=outcome.timer_id,
                kind=NEXT_MEETING,
                due_at=timer.due_at,
                model=self.model,
                at=at,
                actor=actor,
            )
        self._meeting_recorded(outcome=outcome, notes=notes, model=self.model, at=at, actor=actor)
        if outcome.revised_plan_wanted:
            self._revision_requested(
                timer_id=outcome.timer_id, model=self.model, at=at, actor=actor
            )
        if outcome.next_meeting_on is not None:
            self._cancel_meeting(
                f"the family set its next meeting for {outcome.next_meeting_on.isoformat()}",
                at=at,
                actor=actor,
            )
            self._next_meeting_set(next_meeting_on=outcome.next_meeting_on, actor=actor)
            self._schedule_meeting(schedule, at, actor=actor)

    @event("MeetingRecorded")
    def _meeting_recorded(
        self,
        *,
        outcome: MeetingOutcome,
        notes: str,
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self._timer(outcome.timer_id, outcome_recorded=True)
        self.meetings.append(outcome)
        self.outcomes.append(
            {
                "timer_id": outcome.timer_id,
                "kind": NEXT_MEETING,
                "reached": outcome.held,
                "agreements": outcome.agreements,
                "notes": notes,
                "at": at,
                "by": actor,
            }
        )

    @event("PlanRevisionRequested")
    def _revision_requested(
        self, *, timer_id: str, model: str, at: datetime, actor: dict[str, str]
    ) -> None:
        self.revisions_requested.append(at)

    @event("NextMeetingSet")
    def _next_meeting_set(self, *, next_meeting_on: date, actor: dict[str, str]) -> None:
        self.next_meeting_on = next_meeting_on

    # -- ratings ---------------------------------------------------------------------------
    def record_ratings(
        self, *, timer_id: str, ratings: Sequence[Rating], at: datetime, actor: dict[str, str]
    ) -> None:
        """The marks the people asked at a contact gave the meeting and the plan, each
        respondent's once: recorded by whoever records that contact's outcome, once per contact
        (a second time is refused, so a retried request never counts anyone twice)."""
        timer = self.check_contact(timer_id, "rating")
        if timer_id in self.ratings:
            raise DomainRuleError(f"the ratings of {timer_id} were already recorded")
        if not ratings:
            raise InvalidFieldError(("ratings",), "give at least one respondent's marks")
        self._ratings_recorded(
            timer_id=timer_id,
            kind=timer.kind,
            ratings=list(ratings),
            model=self.model,
            at=at,
            actor=actor,
        )

    @event("RatingsRecorded")
    def _ratings_recorded(
        self,
        *,
        timer_id: str,
        kind: str,
        ratings: list[Rating],
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.ratings[timer_id] = list(ratings)

    # -- a follow-up conference -----------------------------------------------------------
    def request_follow_up_conference(
        self, *, new_case_id: UUID, reason: str, at: datetime, actor: dict[str, str]
    ) -> bool:
        """Ask for a follow-up conference; intake opens ``new_case_id`` for it. Asking again for
        the same new case changes nothing (returns False)."""
        if new_case_id in self.follow_up_cases:
            return False
        if new_case_id == self.id:
            raise DomainRuleError("a follow-up conference is a new case, not this one")
        self._follow_up_conference_requested(
            new_case_id=new_case_id, reason=reason, model=self.model, at=at, actor=actor
        )
        return True

    @event("FollowUpConferenceRequested")
    def _follow_up_conference_requested(
        self, *, new_case_id: UUID, reason: str, model: str, at: datetime, actor: dict[str, str]
    ) -> None:
        self.follow_up_cases.append(new_case_id)

    def _timer(self, timer_id: str, **changes: Any) -> None:
        self.timers[timer_id] = self.timers[timer_id].but(**changes)

    # -- reading ---------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return stage_of(t.model_dump() for t in self.timers.values())


#: The values followup's events and aggregates keep.
VALUES: tuple[type[Value], ...] = (Timer, MeetingOutcome)
