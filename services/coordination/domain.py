"""The coordinated case and its rules, from the accepted request to the conference held. No I/O.

An independent coordinator is assigned (``pool.py`` chooses); they make first contact with the
central person within a few days; with the central person they invite the participants, each
with a role, who confirm or decline (a decline is respected, never pressed) and consent to take
part and to have their details shared (consent they can withdraw); they note what information
is needed and who brings it, and the family's practicalities; the conference is scheduled and
held in three parts, as its model says. A case may also end before a conference: stopped (with
a reason from the kept list) or with a plan made without a meeting.

Names and contact details of participants are kept here and nowhere else: no view, log line or
integration event carries them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from pydantic import Field

from shared.errors import DomainRuleError, InvalidFieldError, NotFoundError, NotPermittedError
from shared.values import Value


class Stage(StrEnum):
    WAITING = "waiting_for_coordinator"
    ASSIGNED = "coordinator_assigned"
    PREPARING = "preparing"  # the first contact was made
    SCHEDULED = "conference_scheduled"
    CONFERENCE_HELD = "conference_held"
    STOPPED = "stopped"
    PLAN_WITHOUT_MEETING = "plan_without_meeting"


ENDED = frozenset({Stage.CONFERENCE_HELD, Stage.STOPPED, Stage.PLAN_WITHOUT_MEETING})


class Invitation(StrEnum):
    INVITED = "invited"
    CONFIRMED = "confirmed"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"  # confirmed, then withdrew consent to take part


class Consent(StrEnum):
    TAKE_PART = "take_part"
    SHARE_DETAILS = "share_details"


#: Not coming, and respected: only the participant themself changes that answer.
NOT_COMING = frozenset({Invitation.DECLINED, Invitation.WITHDRAWN})

PROFESSIONAL_ROLES = frozenset({"professional", "expert"})
COORDINATOR_CHAIRED = frozenset({"group", "restorative", "learning_circle"})
PARTS = ("information", "plan_making", "presentation")

#: The actor role of a participant speaking for themself (``shared.actor.Role``).
PARTICIPANT_ROLE = "participant"


class Participant(Value):
    """Someone invited to the conference, as coordination keeps them: name and contact (never
    shown), role, organisation, language, their answer and consents, and whether the
    coordinator informed them of the aim, the way of working, responsibilities and
    possibilities (as the leaflets on conferences ask), or why not."""

    stored_as = "coordination.participant"

    participant_id: str
    name: str
    contact: str | None = None
    role: str
    organisation: str | None = None
    language: str | None = None
    invitation: Invitation = Invitation.INVITED
    take_part: bool = False
    share_details: bool = False
    #: Consents withdrawn (``share_details``, ``take_part``), in order.
    withdrawn: list[str] = Field(default_factory=list)
    informed_on: date | None = None
    #: Why the coordinator could not inform them (kept here, shown nowhere).
    not_informed_reason: str | None = None

    @property
    def coming(self) -> bool:
        return self.invitation not in NOT_COMING

    @property
    def prepared(self) -> bool:
        """Informed, or the coordinator recorded why not."""
        return self.informed_on is not None or self.not_informed_reason is not None


class PassedOver(Value):
    """A coordinator of the region the choice considered and did not take, with the first
    requirement they did not meet: ``language``, ``independence``, ``wish:<name>``,
    ``availability``, ``room``, or ``ranked_lower`` (they fitted, others came first). Never
    what made them not independent: that a relation exists is shown to the regional manager
    alone, and its content to nobody."""

    stored_as = "coordination.passed_over"

    coordinator_id: str
    requirement: str


class ParticipantNotFoundError(NotFoundError):
    def __init__(self, case_id: UUID, participant_id: str) -> None:
        super().__init__(f"case {case_id} has no participant {participant_id!r}")


def derive_stage(
    *, ended: str | None, held: bool, coordinators: bool, contacted: bool, scheduled: bool
) -> Stage:
    """A case's stage follows from what happened to it (the case list uses the same rule)."""
    if held:
        return Stage.CONFERENCE_HELD
    if ended:
        return Stage(ended)
    if not coordinators:
        return Stage.WAITING
    if scheduled:
        return Stage.SCHEDULED
    return Stage.PREPARING if contacted else Stage.ASSIGNED


def first_contact_overdue(stage: str, first_contact_due: datetime | None, now: datetime) -> bool:
    """Assigned, not yet in contact (the stage says so), and past the deadline."""
    return stage == Stage.ASSIGNED and first_contact_due is not None and now > first_contact_due


def check_conference_rules(
    model: str, parts: list[str], attendance: dict[str, dict[str, int]]
) -> None:
    """The three parts as each model holds them (docs/architecture.md, "The domain"; the leaflets
    on group conferences and on requesting a conference).

    ``family``: part two is private family time (besloten deel): no professional, expert or
    coordinator present. ``group``, ``restorative`` and ``learning_circle``: the coordinator
    chairs part two (gespreksleider), so must be present; professionals may stay throughout.
    """
    unknown = sorted(set(attendance) - set(parts))
    if unknown:
        raise DomainRuleError(f"attendance given for parts that did not take place: {unknown}")
    present = {role for role, count in attendance.get("plan_making", {}).items() if count > 0}
    if model == "family" and "plan_making" in parts:
        outsiders = sorted(present & (PROFESSIONAL_ROLES | {"coordinator"}))
        if outsiders:
            raise DomainRuleError(
                "private family time is for the family and their network only; "
                f"not present may be: {', '.join(outsiders)}"
            )
    if model in COORDINATOR_CHAIRED and "plan_making" in parts and "coordinator" not in present:
        raise DomainRuleError(
            f"in a {model} conference the coordinator chairs part two: record the coordinator"
            " as present in plan_making"
        )


class CoordinatedCase(Aggregate):
    """A case as coordination sees it: from an accepted request to the conference held.

    Create one with ``CoordinatedCase.receive``: eventsourcing insists on every ``__init__``
    argument at creation, while the defaults below are what events stored before a field
    existed replay with."""

    @classmethod
    def receive(
        cls,
        id: UUID,
        *,
        model: str,
        region: str,
        languages: list[str],
        accepted_at: datetime,
        actor: dict[str, str],
        coordinators_needed: int = 1,
        coordinator_wishes: dict[str, str] | None = None,
        involved_organisations: list[str] | None = None,
        follow_up_of: UUID | None = None,
    ) -> CoordinatedCase:
        return cls(
            id=id,
            model=model,
            region=region,
            languages=languages,
            accepted_at=accepted_at,
            actor=actor,
            coordinators_needed=coordinators_needed,
            coordinator_wishes=coordinator_wishes,
            involved_organisations=involved_organisations,
            follow_up_of=follow_up_of,
        )

    class Received(Aggregate.Created):
        """Version 2 declares every field; version 1 events lack those added one by one since
        (two coordinators, wishes, organisations, the case followed up)."""

        class_version = 2
        model: str
        region: str
        languages: list[str]
        accepted_at: datetime
        actor: dict[str, str]
        coordinators_needed: int
        coordinator_wishes: dict[str, str] | None
        involved_organisations: list[str] | None
        follow_up_of: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("coordinators_needed", 1)
            state.setdefault("coordinator_wishes", None)
            state.setdefault("involved_organisations", None)
            state.setdefault("follow_up_of", None)

    @event(Received)
    def __init__(
        self,
        id: UUID,
        *,
        model: str,
        region: str,
        languages: list[str],
        accepted_at: datetime,
        actor: dict[str, str],
        coordinators_needed: int,
        coordinator_wishes: dict[str, str] | None,
        involved_organisations: list[str] | None,
        follow_up_of: UUID | None,
    ) -> None:
        self.model = model
        self.region = region
        self.languages = languages
        self.accepted_at = accepted_at
        self.coordinators_needed = coordinators_needed
        self.coordinator_wishes = {k: v for k, v in (coordinator_wishes or {}).items() if v}
        self.involved_organisations = involved_organisations or []
        self.follow_up_of = follow_up_of
        self.coordinator_ids: list[str] = []
        #: Every assignment: the set, why, by hand or not, when, by whom.
        self.assignments: list[dict[str, Any]] = []
        self.waiting_reason: str | None = None
        #: Who the last automatic choice passed over, and why (``PassedOver``).
        self.passed_over: list[PassedOver] = []
        #: Declared relations (coordinator id, kind); the notes stay in the pool's events.
        self.relations: list[dict[str, str]] = []
        self.first_contact_due: datetime | None = None
        self.contacted_at: datetime | None = None
        self.overdue_recorded_for: datetime | None = None
        self.participants: dict[str, Participant] = {}
        self.information: list[dict[str, str]] = []
        self.arrangements: dict[str, Any] | None = None
        self.scheduled_on: date | None = None
        self.venue: str | None = None
        self.held_on: date | None = None
        self.conference: dict[str, Any] | None = None
        self.ended: str | None = None
        self.stop_reason: str | None = None
        self.request_withdrawn_at: datetime | None = None
        self.task_ended_at: datetime | None = None
        self.stage = Stage.WAITING

    def _restage(self) -> None:
        self.stage = derive_stage(
            ended=self.ended,
            held=self.held_on is not None,
            coordinators=bool(self.coordinator_ids),
            contacted=self.contacted_at is not None,
            scheduled=self.scheduled_on is not None,
        )

    # -- facts ---------------------------------------------------------------------------
    @property
    def is_over(self) -> bool:
        """Held, stopped or ended with a plan made without a meeting: preparation is over."""
        return self.stage in ENDED

    def is_overdue(self, now: datetime) -> bool:
        return first_contact_overdue(self.stage, self.first_contact_due, now)

    @property
    def needs_coordinators(self) -> int:
        """How many more coordinators the case waits for (0 once it has its set, or is over)."""
        if self.is_over:
            return 0
        return max(0, self.coordinators_needed - len(self.coordinator_ids))

    def check_not_ended(self) -> None:
        if self.stage in ENDED:
            raise DomainRuleError(f"the case has ended ({self.stage.value})")

    def check_in_preparation(self, what: str) -> None:
        self.check_not_ended()
        if not self.coordinator_ids:
            raise DomainRuleError(f"{what} once a coordinator is assigned")

    # -- assignment ----------------------------------------------------------------------
    def wait(
        self, *, reason: str, actor: dict[str, str], passed_over: Sequence[PassedOver] = ()
    ) -> None:
        self._waiting(reason=reason, actor=actor, passed_over=list(passed_over))

    class WaitingForCoordinator(Aggregate.Event):
        """Version 2 says who was passed over and why; version 1 did not."""

        class_version = 2
        reason: str
        actor: dict[str, str]
        passed_over: list[PassedOver]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["passed_over"] = []

    @event(WaitingForCoordinator)
    def _waiting(
        self, *, reason: str, actor: dict[str, str], passed_over: list[PassedOver]
    ) -> None:
        self.waiting_reason = reason
        self.passed_over = passed_over

    def check_can_be_assigned(self) -> None:
        if self.stage in ENDED:
            raise DomainRuleError(
                f"the case has ended ({self.stage.value}); the coordinator can no longer change"
            )

    def assign(
        self,
        *,
        coordinator_ids: list[str],
        reason: str,
        at: datetime,
        first_contact_due: datetime,
        actor: dict[str, str],
        by_hand: bool = False,
        waiting_reason: str | None = None,
        mismatches: list[str] | None = None,
        over_capacity: list[str] | None = None,
        passed_over: Sequence[PassedOver] = (),
    ) -> None:
        """A new set of coordinators (the whole set). Until the first contact is made, the
        deadline for it runs from this assignment; after it, it stays as it was."""
        self.check_can_be_assigned()
        if not coordinator_ids:
            raise DomainRuleError("an assignment names at least one coordinator")
        self._assigned(
            coordinator_ids=coordinator_ids,
            reason=reason,
            at=at,
            first_contact_due=(
                first_contact_due
                if self.contacted_at is None or self.first_contact_due is None
                else self.first_contact_due
            ),
            model=self.model,
            actor=actor,
            by_hand=by_hand,
            reassignment=bool(self.assignments),
            waiting_reason=waiting_reason,
            mismatches=mismatches or [],
            over_capacity=over_capacity or [],
            passed_over=list(passed_over),
        )

    class CoordinatorAssigned(Aggregate.Event):
        """Version 2 says who the choice passed over and why, and declares every field;
        version 1 events lack those added one by one since (by hand, reassignment, waiting
        reason, mismatches, over capacity)."""

        class_version = 2
        coordinator_ids: list[str]
        reason: str
        at: datetime
        first_contact_due: datetime
        model: str
        actor: dict[str, str]
        by_hand: bool
        reassignment: bool
        waiting_reason: str | None
        mismatches: list[str]
        over_capacity: list[str]
        passed_over: list[PassedOver]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("by_hand", False)
            state.setdefault("reassignment", False)
            state.setdefault("waiting_reason", None)
            state["mismatches"] = state.get("mismatches") or []
            state["over_capacity"] = state.get("over_capacity") or []
            state["passed_over"] = []

    @event(CoordinatorAssigned)
    def _assigned(
        self,
        *,
        coordinator_ids: list[str],
        reason: str,
        at: datetime,
        first_contact_due: datetime,
        model: str,
        actor: dict[str, str],
        by_hand: bool,
        reassignment: bool,
        waiting_reason: str | None,
        mismatches: list[str],
        over_capacity: list[str],
        passed_over: list[PassedOver],
    ) -> None:
        self.coordinator_ids = coordinator_ids
        self.first_contact_due = first_contact_due
        self.waiting_reason = waiting_reason
        self.passed_over = passed_over
        self.assignments.append(
            {
                "coordinator_ids": coordinator_ids,
                "reason": reason,
                "by_hand": by_hand,
                "reassignment": reassignment,
                "at": at,
                "by": actor.get("id"),
                "mismatches": mismatches,
                "over_capacity": over_capacity,
            }
        )
        self._restage()

    def release_all(
        self, *, reason: str, waiting_reason: str, at: datetime, actor: dict[str, str]
    ) -> None:
        """Every coordinator was released and nobody fits in their place: the case waits."""
        self.check_can_be_assigned()
        self._released(
            released=list(self.coordinator_ids),
            reason=reason,
            waiting_reason=waiting_reason,
            at=at,
            actor=actor,
        )

    @event("CoordinatorsReleased")
    def _released(
        self,
        *,
        released: list[str],
        reason: str,
        waiting_reason: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.coordinator_ids = []
        self.waiting_reason = waiting_reason
        self.assignments.append(
            {
                "coordinator_ids": [],
                "reason": reason,
                "by_hand": False,
                "reassignment": True,
                "at": at,
                "by": actor.get("id"),
                "mismatches": [],
                "over_capacity": [],
            }
        )
        self._restage()

    @event("RelationDeclared")
    def note_relation(self, *, coordinator_id: str, kind: str, actor: dict[str, str]) -> None:
        """A coordinator declared a relation to this case: never assigned to it."""
        entry = {"coordinator_id": coordinator_id, "kind": kind}
        if entry not in self.relations:
            self.relations.append(entry)

    # -- first contact -------------------------------------------------------------------
    def record_contact(self, *, at: datetime, actor: dict[str, str]) -> None:
        """The coordinator's first contact with the central person."""
        self.check_not_ended()
        if not self.coordinator_ids:
            raise DomainRuleError("first contact is recorded once a coordinator is assigned")
        if self.contacted_at is not None:
            raise DomainRuleError("the first contact was already recorded")
        self._contacted(at=at, actor=actor, model=self.model)

    class FirstContactMade(Aggregate.Event):
        """The model rides along so the relay can publish the first contact alone."""

        class_version = 2
        at: datetime
        actor: dict[str, str]
        model: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["model"] = None  # version 1 was never published

    @event(FirstContactMade)
    def _contacted(self, *, at: datetime, actor: dict[str, str], model: str | None) -> None:
        self.contacted_at = at
        self._restage()

    def record_overdue(self, *, now: datetime, actor: dict[str, str]) -> bool:
        """Record, once per deadline, that the first contact is overdue (for the audit trail).
        Returns whether it was recorded now."""
        due = self.first_contact_due
        if due is None or not self.is_overdue(now) or self.overdue_recorded_for == due:
            return False
        self._overdue(due=due, at=now, actor=actor)
        return True

    @event("FirstContactOverdue")
    def _overdue(self, *, due: datetime, at: datetime, actor: dict[str, str]) -> None:
        self.overdue_recorded_for = due

    # -- participants --------------------------------------------------------------------
    def invite(
        self,
        *,
        name: str,
        role: str,
        contact: str | None,
        organisation: str | None,
        language: str | None,
        actor: dict[str, str],
    ) -> str:
        """Invite someone; returns their participant id (``p1``, ``p2``, …): opaque, short,
        unique in the case, and not personal."""
        self.check_in_preparation("participants are invited")
        for pid, p in self.participants.items():
            if not p.coming and _same_name(p.name, name):
                raise DomainRuleError(
                    f"{pid} ({p.role}) said they are not coming; that answer is respected"
                    " and they are not invited again: only they can change it"
                )
        participant_id = f"p{len(self.participants) + 1}"
        self._invited(
            participant_id=participant_id,
            name=name,
            role=role,
            contact=contact,
            organisation=organisation,
            language=language,
            actor=actor,
        )
        return participant_id

    @event("ParticipantInvited")
    def _invited(
        self,
        *,
        participant_id: str,
        name: str,
        role: str,
        contact: str | None,
        organisation: str | None,
        language: str | None,
        actor: dict[str, str],
    ) -> None:
        self.participants[participant_id] = Participant(
            participant_id=participant_id,
            name=name,
            contact=contact,
            role=role,
            organisation=organisation,
            language=language,
        )

    def participant(self, participant_id: str) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise ParticipantNotFoundError(self.id, participant_id) from None

    def _change(self, participant_id: str, **changes: Any) -> None:
        self.participants[participant_id] = self.participants[participant_id].but(**changes)

    def confirm(self, *, participant_id: str, share_details: bool, actor: dict[str, str]) -> None:
        """The participant comes: consent to take part, and to share their details as given.
        After a decline or a withdrawal only the participant themself changes the answer."""
        p = self.participant(participant_id)
        self.check_not_ended()
        if p.invitation is Invitation.CONFIRMED:
            raise DomainRuleError(f"{participant_id} has already confirmed")
        if not p.coming and actor.get("role") != PARTICIPANT_ROLE:
            # Who may, not the case's state: the participant themself may say yes again.
            raise NotPermittedError(
                f"{participant_id} said they are not coming ({p.invitation.value}); a decline is"
                " respected and never pressed: changing it needs participant"
                f" {participant_id} of this case themself"
            )
        self._confirmed(participant_id=participant_id, share_details=share_details, actor=actor)

    @event("ParticipantConfirmed")
    def _confirmed(
        self, *, participant_id: str, share_details: bool, actor: dict[str, str]
    ) -> None:
        p = self.participants[participant_id]
        # A withdrawal of sharing is final for the case: others were told to stop sharing.
        self._change(
            participant_id,
            invitation=Invitation.CONFIRMED,
            take_part=True,
            share_details=share_details and Consent.SHARE_DETAILS not in p.withdrawn,
        )

    def decline(self, *, participant_id: str, reason: str, actor: dict[str, str]) -> None:
        """The participant is not coming. Recorded and respected; the reason stays here."""
        p = self.participant(participant_id)
        self.check_not_ended()
        if not p.coming:
            raise DomainRuleError(f"{participant_id} already said they are not coming")
        self._declined(participant_id=participant_id, reason=reason, actor=actor)

    @event("ParticipantDeclined")
    def _declined(self, *, participant_id: str, reason: str, actor: dict[str, str]) -> None:
        self._change(participant_id, invitation=Invitation.DECLINED, take_part=False)

    def withdraw_consent(
        self, *, participant_id: str, what: str, at: datetime, actor: dict[str, str]
    ) -> None:
        """Withdraw consent to share details (at any time: nothing is shared from now on) or to
        take part (before the conference: they are no longer coming, as after a decline)."""
        p = self.participant(participant_id)
        if what == Consent.SHARE_DETAILS:
            if Consent.SHARE_DETAILS in p.withdrawn:
                raise DomainRuleError(f"{participant_id} already withdrew consent to share")
            if not p.share_details:
                raise DomainRuleError(
                    f"{participant_id} has not consented to share their details: nothing to"
                    " withdraw"
                )
        else:
            if self.stage is Stage.CONFERENCE_HELD:
                raise DomainRuleError(
                    "the conference was held: taking part cannot be withdrawn afterwards;"
                    " consent to share details can"
                )
            self.check_not_ended()
            if not p.take_part:
                raise DomainRuleError(
                    f"{participant_id} has not consented to take part: record a decline instead"
                )
        self._consent_withdrawn(
            participant_id=participant_id, what=what, at=at, model=self.model, actor=actor
        )

    @event("ConsentWithdrawn")
    def _consent_withdrawn(
        self, *, participant_id: str, what: str, at: datetime, model: str, actor: dict[str, str]
    ) -> None:
        p = self.participants[participant_id]
        changes: dict[str, Any] = {
            what: False,
            "withdrawn": p.withdrawn if what in p.withdrawn else [*p.withdrawn, what],
        }
        if what == Consent.TAKE_PART:
            changes["invitation"] = Invitation.WITHDRAWN
        self._change(participant_id, **changes)

    def check_can_come(self, participant_id: str, loc: Sequence[str | int]) -> Participant:
        p = self.participants.get(participant_id)
        if p is None:
            raise InvalidFieldError(
                loc, f"unknown participant {participant_id!r}: not in this case"
            )
        if not p.coming:
            raise InvalidFieldError(
                loc,
                f"{participant_id} said they are not coming ({p.invitation.value}); that answer"
                " is respected",
            )
        return p

    # -- informing every participant -----------------------------------------------------
    def record_informed(
        self, *, participant_id: str, on: date, today: date, actor: dict[str, str]
    ) -> None:
        """The coordinator informed the participant of the aim, the way of working,
        responsibilities and possibilities of the conference, and prepared them for its
        questions (as the leaflets on conferences ask)."""
        p = self.participant(participant_id)
        self.check_in_preparation("participants are informed")
        if not p.coming:
            raise DomainRuleError(
                f"{participant_id} said they are not coming ({p.invitation.value}): there is"
                " nothing to prepare them for"
            )
        if on > today:
            raise InvalidFieldError(("on",), f"must not be after today ({today.isoformat()})")
        self._informed(participant_id=participant_id, on=on, actor=actor)

    @event("ParticipantInformed")
    def _informed(self, *, participant_id: str, on: date, actor: dict[str, str]) -> None:
        self._change(participant_id, informed_on=on, not_informed_reason=None)

    def record_not_informed(
        self, *, participant_id: str, reason: str, actor: dict[str, str]
    ) -> None:
        """The coordinator could not inform the participant, and says why (kept, shown
        nowhere): the conference may be scheduled all the same."""
        p = self.participant(participant_id)
        self.check_in_preparation("participants are informed")
        if p.informed_on is not None:
            raise DomainRuleError(f"{participant_id} was informed on {p.informed_on.isoformat()}")
        if not reason.strip():
            raise InvalidFieldError(("reason",), "say why they could not be informed")
        self._not_informed(participant_id=participant_id, reason=reason, actor=actor)

    @event("ParticipantNotInformed")
    def _not_informed(self, *, participant_id: str, reason: str, actor: dict[str, str]) -> None:
        self._change(participant_id, not_informed_reason=reason)

    @property
    def uninformed(self) -> list[str]:
        """Confirmed participants neither informed nor with a reason why not."""
        return [
            pid
            for pid, p in self.participants.items()
            if p.invitation is Invitation.CONFIRMED and not p.prepared
        ]

    # -- preparation ---------------------------------------------------------------------
    def need_information(self, *, topic: str, brought_by: str, actor: dict[str, str]) -> str:
        """Information needed at the conference, and the participant who brings it (an expert
        or professional usually). The same topic again changes who brings it."""
        self.check_in_preparation("information is noted")
        self.check_can_come(brought_by, ("brought_by",))
        existing = next((i for i in self.information if _same_name(i["topic"], topic)), None)
        information_id = existing["information_id"] if existing else f"i{len(self.information) + 1}"
        self._information_needed(
            information_id=information_id, topic=topic, brought_by=brought_by, actor=actor
        )
        return information_id

    @event("InformationNeeded")
    def _information_needed(
        self, *, information_id: str, topic: str, brought_by: str, actor: dict[str, str]
    ) -> None:
        entry = {"information_id": information_id, "topic": topic, "brought_by": brought_by}
        for i, existing in enumerate(self.information):
            if existing["information_id"] == information_id:
                self.information[i] = entry
                return
        self.information.append(entry)

    def arrange(self, *, arrangements: dict[str, Any], today: date, actor: dict[str, str]) -> None:
        """The family's practicalities: date, venue, languages and interpreter, food, rituals.
        Again to revise them (the whole set)."""
        self.check_in_preparation("the practicalities are arranged")
        wanted: date | None = arrangements.get("date")
        if wanted is not None and wanted < today:
            raise InvalidFieldError(("date",), f"must not be before today ({today.isoformat()})")
        interpreter: str | None = arrangements.get("interpreter")
        languages = arrangements.get("languages") or []
        if interpreter is not None and interpreter.casefold() not in {
            lang.casefold() for lang in languages
        }:
            raise InvalidFieldError(
                ("interpreter",),
                "the interpreter's language must be one of the conference's languages",
            )
        self._arranged(arrangements=arrangements, actor=actor)

    @event("ArrangementsRecorded")
    def _arranged(self, *, arrangements: dict[str, Any], actor: dict[str, str]) -> None:
        self.arrangements = arrangements

    def schedule(self, *, on: date, venue: str, today: date, actor: dict[str, str]) -> None:
        """Set (or move) the conference's date and venue. It needs the first contact made and
        at least one confirmed participant who is not a professional or expert: the plan is
        the family's or the group's own."""
        self.check_in_preparation("the conference is scheduled")
        if self.contacted_at is None:
            raise DomainRuleError("the conference is scheduled after the first contact")
        if not any(
            p.invitation is Invitation.CONFIRMED and p.role not in PROFESSIONAL_ROLES
            for p in self.participants.values()
        ):
            raise DomainRuleError(
                "the conference is scheduled once at least one participant who is not a"
                " professional has confirmed"
            )
        if self.uninformed:
            who = ", ".join(self.uninformed)
            raise DomainRuleError(
                f"{who} confirmed but {'has' if len(self.uninformed) == 1 else 'have'}"
                " not been informed of the aim, the way of working, responsibilities and"
                " possibilities: record that they were, or why not, before scheduling"
            )
        if on < today:
            raise InvalidFieldError(("on",), f"must not be before today ({today.isoformat()})")
        self._scheduled(on=on, venue=venue, rescheduled=self.scheduled_on is not None, actor=actor)

    @event("ConferenceScheduled")
    def _scheduled(self, *, on: date, venue: str, rescheduled: bool, actor: dict[str, str]) -> None:
        self.scheduled_on = on
        self.venue = venue
        self._restage()

    # -- the conference ------------------------------------------------------------------
    def hold_conference(
        self, *, held_on: date, parts: Mapping[str, Mapping[str, Any]], actor: dict[str, str]
    ) -> None:
        """The conference took place: per part that took place, who was present (participant
        ids), whether the coordinator was, whether an interpreter was. The model's rules hold
        (``check_conference_rules``) on the role counts derived from the ids."""
        if self.stage is Stage.CONFERENCE_HELD:
            raise DomainRuleError("the conference was already recorded as held")
        self.check_not_ended()
        if not self.coordinator_ids:
            raise DomainRuleError("a conference needs an assigned coordinator first")
        if self.scheduled_on is None:
            raise DomainRuleError("a conference is recorded once it was scheduled")
        if not parts:
            raise InvalidFieldError(("parts",), "at least one part took place")
        attendance: dict[str, dict[str, int]] = {}
        present: dict[str, list[str]] = {}
        for part in PARTS:
            if part not in parts:
                continue
            record = parts[part]
            ids: list[str] = list(record.get("present", []))
            counts: dict[str, int] = {}
            for i, pid in enumerate(ids):
                loc = ("parts", part, "present", i)
                if pid in ids[:i]:
                    raise InvalidFieldError(loc, f"{pid} is listed twice")
                role = self.check_can_come(pid, loc).role
                counts[role] = counts.get(role, 0) + 1
            if record.get("coordinator"):
                counts["coordinator"] = len(self.coordinator_ids)
            if record.get("interpreter"):
                counts["interpreter"] = 1
            attendance[part], present[part] = counts, ids
        if not any(present.values()):
            raise InvalidFieldError(("parts",), "nobody was present: record who was there")
        check_conference_rules(self.model, list(attendance), attendance)
        if "plan_making" in present and not any(
            self.participants[pid].role not in PROFESSIONAL_ROLES for pid in present["plan_making"]
        ):
            raise DomainRuleError(
                "the plan is made by the family, the network or the group: record who of them"
                " was present in plan_making"
            )
        self._held(
            held_on=held_on,
            parts=list(attendance),
            attendance=attendance,
            model=self.model,
            actor=actor,
            present=present,
            participants=self._recipients(present),
        )

    def _recipients(self, present: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        """Everyone present in any part, and every central person even if absent: roles and,
        for professionals and experts who did not withdraw sharing, their organisation."""
        there = {pid for ids in present.values() for pid in ids}
        refs = []
        for pid, p in self.participants.items():
            if pid not in there and p.role != "central_person":
                continue
            share = Consent.SHARE_DETAILS not in p.withdrawn
            organisation = p.organisation if p.role in PROFESSIONAL_ROLES else None
            refs.append(
                {
                    "participant_id": pid,
                    "role": p.role,
                    "organisation": organisation if share else None,
                }
            )
        return refs

    class ConferenceHeld(Aggregate.Event):
        """Version 2 declares every field; version 1 events stored before the conference named
        its participants lack ``present`` and ``participants``."""

        class_version = 2
        held_on: date
        parts: list[str]
        attendance: dict[str, dict[str, int]]
        model: str
        actor: dict[str, str]
        present: dict[str, list[str]]
        participants: list[dict[str, Any]]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["present"] = state.get("present") or {}
            state["participants"] = state.get("participants") or []

    @event(ConferenceHeld)
    def _held(
        self,
        *,
        held_on: date,
        parts: list[str],
        attendance: dict[str, dict[str, int]],
        model: str,
        actor: dict[str, str],
        present: dict[str, list[str]],
        participants: list[dict[str, Any]],
    ) -> None:
        self.held_on = held_on
        self.conference = {"parts": parts, "attendance": attendance, "present": present}
        self._restage()

    # -- endings -------------------------------------------------------------------------
    def end_without_conference(
        self, *, ending: str, reason: str | None, note: str, at: datetime, actor: dict[str, str]
    ) -> None:
        """Stopped during preparation (with a reason from the kept list), or a plan made
        without a meeting (which needs a coordinator)."""
        self.check_not_ended()
        if ending == Stage.STOPPED.value and reason is None:
            raise DomainRuleError("a stopped case needs a reason from the list")
        if ending == Stage.PLAN_WITHOUT_MEETING.value and not self.coordinator_ids:
            raise DomainRuleError("a plan without a meeting needs an assigned coordinator")
        self._ended(ending=ending, reason=reason, note=note, at=at, model=self.model, actor=actor)

    @event("EndedWithoutConference")
    def _ended(
        self,
        *,
        ending: str,
        reason: str | None,
        note: str,
        at: datetime,
        model: str,
        actor: dict[str, str],
    ) -> None:
        self.ended = ending
        self.stop_reason = reason
        if reason == "request_withdrawn":
            self.request_withdrawn_at = at
        self._restage()

    def request_withdrawn(self, *, at: datetime, actor: dict[str, str]) -> bool:
        """Intake says the request was withdrawn. Before the conference the case stops
        (``request_withdrawn``); after it, or once ended, it is noted and changes nothing (the
        plan belongs to the family). Returns whether the case stopped."""
        if self.stage in ENDED:
            self._withdrawal_noted(at=at, actor=actor)
            return False
        self._ended(
            ending=Stage.STOPPED.value,
            reason="request_withdrawn",
            note="",
            at=at,
            model=self.model,
            actor=actor,
        )
        return True

    @event("RequestWithdrawalNoted")
    def _withdrawal_noted(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.request_withdrawn_at = at

    def end_task(self, *, at: datetime, actor: dict[str, str]) -> bool:
        """The plan was distributed: the coordinators' task ends (the leaflet on group
        conferences). Returns whether it ended now (once; only after a conference or a plan
        without a meeting)."""
        if self.task_ended_at is not None or self.stage not in (
            Stage.CONFERENCE_HELD,
            Stage.PLAN_WITHOUT_MEETING,
        ):
            return False
        self._task_ended(at=at, actor=actor)
        return True

    @event("CoordinatorTaskEnded")
    def _task_ended(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.task_ended_at = at


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


#: The values coordination's events and aggregates keep.
VALUES: tuple[type[Value], ...] = (Participant, PassedOver)
