"""Coordination's HTTP API: parse, build the command, hand it over. Rules live in the domain.

Names and contact details of participants go in (``POST /cases/{id}/participants``) and never
come out: every view shows participant ids, roles, organisations, invitation states and consents.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import APIRouter, Body, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.coordination.access import RULES
from services.coordination.app import CoordinationApplication
from services.coordination.domain import (
    CoordinatedCase,
    Invitation,
    Participant,
    PassedOver,
    Stage,
)
from services.coordination.pool import CoordinatorPool, RelationKind
from shared.errors import InvalidFieldError
from shared.events import (
    ConferenceModel,
    ConferencePart,
    CoordinatorWishes,
    Ending,
    ParticipantRole,
    StopReason,
)
from shared.http import (
    NOT_FOUND,
    NOT_FOUND_OR_CONFLICT,
    Caller,
    PageOf,
    Paging,
    Responses,
    access,
    run_sync,
)
from shared.identity import Principal
from shared.views import paginate

T = TypeVar("T")

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(max_length=2000)]
Language = Annotated[str, Field(min_length=2, max_length=35)]
ParticipantId = Annotated[str, Field(min_length=1, max_length=64)]
INVALID: Responses = {
    422: {"description": "invalid input, or a participant or coordinator the case lacks"}
}
COMMAND: Responses = NOT_FOUND_OR_CONFLICT | INVALID
COORDINATOR_COMMAND: Responses = {404: {"description": "unknown coordinator"}, **INVALID}


# -- the pool --------------------------------------------------------------------------------
class NewCoordinator(BaseModel):
    """A coordinator joins the pool, or is updated (an upsert). Fields after ``capacity`` that
    are left out keep an existing coordinator's value."""

    model_config = ConfigDict(extra="forbid")

    coordinator_id: Text
    regions: list[Text] = Field(min_length=1, max_length=20)
    languages: list[Language] = Field(min_length=1, max_length=20)
    #: Open cases at a time for an automatic assignment; 0: none for now.
    capacity: int = Field(3, ge=0, le=50)
    #: Whom they work for: not independent where one of these is involved in a case.
    organisations: list[Text] = Field(default_factory=list, max_length=20)
    gender: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    backgrounds: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=20
    )
    cultures: list[Annotated[str, Field(min_length=1, max_length=80)]] = Field(
        default_factory=list, max_length=20
    )
    available: bool = True


class Availability(BaseModel):
    """Available, or not: until a date (available again on it), or until further notice."""

    model_config = ConfigDict(extra="forbid")

    available: bool
    until: date | None = None


class Relation(BaseModel):
    """A declared relation: the coordinator is never assigned to this case. The note is shown
    nowhere and is erased with the case."""

    model_config = ConfigDict(extra="forbid")

    case_id: UUID
    kind: RelationKind
    note: LongText = ""


class RelationRef(BaseModel):
    case_id: UUID
    kind: str


class CoordinatorView(BaseModel):
    coordinator_id: str
    regions: list[str]
    languages: list[str]
    capacity: int
    open_cases: int
    #: Available now (by the clock).
    available: bool
    unavailable_until: date | None
    organisations: list[str]
    gender: str | None
    backgrounds: list[str]
    cultures: list[str]
    case_ids: list[UUID]
    relations: list[RelationRef]

    @classmethod
    def of(cls, pool: CoordinatorPool, coordinator_id: str, today: date) -> CoordinatorView:
        d = pool.coordinators[coordinator_id]
        return cls(
            coordinator_id=coordinator_id,
            regions=d["regions"],
            languages=d["languages"],
            capacity=d["capacity"],
            open_cases=pool.load_of(coordinator_id),
            available=pool.is_available(coordinator_id, today),
            unavailable_until=pool.unavailable_until(coordinator_id, today),
            organisations=d["organisations"],
            gender=d["gender"],
            backgrounds=d["backgrounds"],
            cultures=d["cultures"],
            case_ids=pool.holds.get(coordinator_id, []),
            relations=[
                RelationRef(case_id=case_id, kind=kind)
                for case_id, by_coordinator in pool.relations.items()
                for kind in by_coordinator.get(coordinator_id, [])
            ],
        )


class RelationView(BaseModel):
    coordinator_id: str
    case_id: UUID
    kind: RelationKind
    #: Whether coordination knows the case yet (a relation may be declared before it arrives).
    case_known: bool
    #: The case's coordinators after the relation was declared.
    coordinator_ids: list[str]
    waiting_reason: str | None


# -- assignment --------------------------------------------------------------------------------
class ManualAssignment(BaseModel):
    """The whole set of coordinators, with the reason. ``{coordinator_id, reason}`` (one
    coordinator) is still accepted."""

    model_config = ConfigDict(extra="forbid")

    coordinator_ids: list[Text] | None = Field(None, min_length=1, max_length=2)
    coordinator_id: Text | None = None
    reason: Annotated[str, Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def one_form(self) -> ManualAssignment:
        if (self.coordinator_ids is None) == (self.coordinator_id is None):
            raise ValueError("give coordinator_ids (one or two), or coordinator_id")
        return self

    @property
    def ids(self) -> list[str]:
        return self.coordinator_ids or [self.coordinator_id or ""]


# -- participants ------------------------------------------------------------------------------
class NewParticipant(BaseModel):
    """Someone invited to the conference. Name and contact stay in coordination's store."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    role: ParticipantRole
    contact: Annotated[str, Field(max_length=200)] | None = None
    organisation: Text | None = None
    language: Language | None = None


class Confirmation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    share_details: bool = False


class Decline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=1000)] = ""


class WithdrawnConsent(StrEnum):
    SHARE_DETAILS = "share_details"
    TAKE_PART = "take_part"


class ConsentWithdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    what: WithdrawnConsent


class Consents(BaseModel):
    take_part: bool
    share_details: bool


class ParticipantView(BaseModel):
    participant_id: str
    role: ParticipantRole
    organisation: str | None
    language: str | None
    invitation: Invitation
    consents: Consents
    #: Consents withdrawn (history: ``share_details``, ``take_part``).
    withdrawn: list[str]
    #: When the coordinator informed them of the aim, the way of working, responsibilities
    #: and possibilities; None if not (yet).
    informed_on: dt.date | None
    #: The coordinator recorded why they could not be informed (the reason is not shown).
    not_informed_reason_given: bool

    @classmethod
    def of(cls, participant_id: str, p: Participant) -> ParticipantView:
        return cls(
            participant_id=participant_id,
            role=ParticipantRole(p.role),
            organisation=p.organisation,
            language=p.language,
            invitation=p.invitation,
            consents=Consents(take_part=p.take_part, share_details=p.share_details),
            withdrawn=p.withdrawn,
            informed_on=p.informed_on,
            not_informed_reason_given=p.not_informed_reason is not None,
        )


class Informed(BaseModel):
    """The coordinator informed the participant (on a day, today if left out)."""

    model_config = ConfigDict(extra="forbid")

    on: dt.date | None = None


class NotInformed(BaseModel):
    """Why the coordinator could not inform the participant: kept, shown nowhere."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


# -- preparation -------------------------------------------------------------------------------
class InformationNeeded(BaseModel):
    """Information needed at the conference, and the participant who brings it."""

    model_config = ConfigDict(extra="forbid")

    topic: Annotated[str, Field(min_length=1, max_length=500)]
    brought_by: ParticipantId


class InformationView(BaseModel):
    information_id: str
    topic: str
    brought_by: str


class Arrangements(BaseModel):
    """The family's practicalities; again to revise them (the whole set)."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date | None = None
    venue: Text | None = None
    languages: list[Language] = Field(default_factory=list, max_length=10)
    #: The language an interpreter is needed for: one of ``languages``.
    interpreter: Language | None = None
    food: Annotated[str, Field(max_length=1000)] | None = None
    rituals: Annotated[str, Field(max_length=1000)] | None = None


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: date
    venue: Text


# -- the conference and endings ----------------------------------------------------------------
class PartRecord(BaseModel):
    """Who was present in one part: participant ids, the coordinator, an interpreter."""

    model_config = ConfigDict(extra="forbid")

    present: list[ParticipantId] = Field(max_length=500)
    coordinator: bool
    interpreter: bool = False


class ConferenceRecord(BaseModel):
    """The conference held: a part left out did not take place."""

    model_config = ConfigDict(extra="forbid")

    held_on: date
    parts: dict[ConferencePart, PartRecord] = Field(min_length=1)


class EndingRecord(BaseModel):
    """How a case ended without a conference. ``note`` stays in coordination's store."""

    model_config = ConfigDict(extra="forbid")

    ending: Ending
    reason: StopReason | None = None
    note: LongText = ""


# -- views -------------------------------------------------------------------------------------
class AssignmentView(BaseModel):
    coordinator_ids: list[str]
    reason: str
    by_hand: bool
    reassignment: bool
    at: datetime
    by: str | None
    #: What the coordinators chosen by hand do not meet (region, language, wishes).
    mismatches: list[str]
    #: Coordinators the regional manager assigned beyond their capacity.
    over_capacity: list[str]


class AssignmentCheck(BaseModel):
    coordinator_ids: list[str]
    #: Why the assignment would be refused (not independent, unavailable, too many), or None.
    refused: str | None
    #: What the coordinators do not meet (region, language, wishes): written down if assigned.
    mismatches: list[str]
    #: Those who would be over their capacity.
    over_capacity: list[str]
    #: Why the case would still wait (a second coordinator), if it would.
    waiting_reason: str | None = None


class RelationOfCase(BaseModel):
    coordinator_id: str
    kind: str


class PartView(BaseModel):
    present: list[str]
    attendance: dict[str, int]


class CaseRow(BaseModel):
    case_id: UUID
    model: ConferenceModel
    region: str
    stage: Stage
    coordinator_ids: list[str]
    coordinators_needed: int
    overdue: bool
    waiting_reason: str | None
    first_contact_due: datetime | None
    contacted_at: datetime | None
    scheduled_on: date | None
    held_on: date | None
    follow_up_of: UUID | None
    accepted_at: datetime


class UnassignedRow(BaseModel):
    case_id: UUID
    model: ConferenceModel
    region: str
    stage: Stage
    coordinator_ids: list[str]
    coordinators_needed: int
    #: How many coordinators the case still waits for.
    missing: int
    waiting_reason: str | None
    accepted_at: datetime


class CaseView(BaseModel):
    case_id: UUID
    stage: Stage
    model: ConferenceModel
    region: str
    languages: list[str]
    coordinators_needed: int
    coordinator_wishes: CoordinatorWishes | None
    involved_organisations: list[str]
    follow_up_of: UUID | None
    coordinator_ids: list[str]
    assignments: list[AssignmentView]
    waiting_reason: str | None
    #: Why each other coordinator of the region was passed over by the last automatic choice
    #: (the first requirement not met); for the regional manager only, else None.
    passed_over: list[PassedOver] | None
    #: Confirmed participants neither informed nor with a reason why not: scheduling waits.
    uninformed: list[str]
    relations: list[RelationOfCase]
    first_contact_due: datetime | None
    contacted_at: datetime | None
    overdue: bool
    overdue_recorded: bool
    participants: list[ParticipantView]
    information: list[InformationView]
    arrangements: Arrangements | None
    scheduled_on: date | None
    venue: str | None
    held_on: date | None
    parts: dict[ConferencePart, PartView]
    stop_reason: StopReason | None
    request_withdrawn_at: datetime | None
    task_ended_at: datetime | None

    @classmethod
    def of(
        cls,
        case: CoordinatedCase,
        now: datetime,
        relations: list[dict[str, str]],
        *,
        passed_over: bool = False,
    ) -> CaseView:
        """``relations``: as the pool holds them (declared before or after the case arrived),
        with any the case recorded itself. ``passed_over``: whether the caller sees why the
        others were passed over (the regional manager)."""
        conference = case.conference or {}
        shown = sorted({(r["coordinator_id"], r["kind"]) for r in [*relations, *case.relations]})
        return cls(
            case_id=case.id,
            stage=case.stage,
            model=ConferenceModel(case.model),
            region=case.region,
            languages=case.languages,
            coordinators_needed=case.coordinators_needed,
            coordinator_wishes=(
                CoordinatorWishes.model_validate(case.coordinator_wishes)
                if case.coordinator_wishes
                else None
            ),
            involved_organisations=case.involved_organisations,
            follow_up_of=case.follow_up_of,
            coordinator_ids=case.coordinator_ids,
            assignments=[AssignmentView.model_validate(a) for a in case.assignments],
            waiting_reason=case.waiting_reason,
            passed_over=case.passed_over if passed_over else None,
            uninformed=case.uninformed,
            relations=[RelationOfCase(coordinator_id=c, kind=k) for c, k in shown],
            first_contact_due=case.first_contact_due,
            contacted_at=case.contacted_at,
            overdue=case.is_overdue(now),
            overdue_recorded=(
                case.overdue_recorded_for is not None
                and case.overdue_recorded_for == case.first_contact_due
            ),
            participants=[ParticipantView.of(pid, p) for pid, p in case.participants.items()],
            information=[InformationView.model_validate(i) for i in case.information],
            arrangements=(
                Arrangements.model_validate(case.arrangements) if case.arrangements else None
            ),
            scheduled_on=case.scheduled_on,
            venue=case.venue,
            held_on=case.held_on,
            parts={
                ConferencePart(part): PartView(
                    present=conference.get("present", {}).get(part, []),
                    attendance=conference.get("attendance", {}).get(part, {}),
                )
                for part in conference.get("parts", [])
            },
            stop_reason=StopReason(case.stop_reason) if case.stop_reason else None,
            request_withdrawn_at=case.request_withdrawn_at,
            task_ended_at=case.task_ended_at,
        )


class CreatedParticipant(ParticipantView):
    case_id: UUID


def router(app: CoordinationApplication) -> APIRouter:
    api = APIRouter(tags=["coordination"])

    def view(case: CoordinatedCase, principal: Principal) -> CaseView:
        shown = app.sees_passed_over(case, principal)
        return CaseView.of(case, app.clock.now(), app.relations_of(case.id), passed_over=shown)

    # -- the pool ------------------------------------------------------------------------
    @api.post(
        "/coordinators",
        status_code=status.HTTP_201_CREATED,
        responses=INVALID,
        openapi_extra=access(RULES, "register"),
    )
    async def register(body: NewCoordinator, principal: Caller) -> CoordinatorView:
        """Add a coordinator to the pool, or update one (the fields after ``capacity`` that are
        left out keep their value)."""
        optional = {
            name: getattr(body, name)
            for name in ("organisations", "gender", "backgrounds", "cultures", "available")
            if name in body.model_fields_set
        }
        pool = await run_sync(
            lambda: app.register_coordinator(
                body.coordinator_id,
                body.regions,
                body.languages,
                body.capacity,
                principal,
                **optional,
            )
        )
        return CoordinatorView.of(pool, body.coordinator_id, app.today())

    @api.get("/coordinators", openapi_extra=access(RULES, "list_coordinators"))
    async def list_coordinators(principal: Caller, page: Paging) -> PageOf[CoordinatorView]:
        """The coordinators working in the caller's region(s); a coordinator's own entry. By
        coordinator id, a page at a time."""
        pool, seen = await run_sync(app.coordinators, principal)
        chosen = paginate(
            [{"coordinator_id": cid} for cid in seen],
            key="coordinator_id",
            list_id="coordination.coordinators",
            filters={},
            request=page,
        )
        today = app.today()
        chosen.items = [
            CoordinatorView.of(pool, row["coordinator_id"], today).model_dump()
            for row in chosen.items
        ]
        return PageOf[CoordinatorView].of(chosen, CoordinatorView)

    @api.post(
        "/coordinators/{coordinator_id}/availability",
        responses=COORDINATOR_COMMAND,
        openapi_extra=access(RULES, "availability"),
    )
    async def availability(
        coordinator_id: str, body: Availability, principal: Caller
    ) -> CoordinatorView:
        """Available, or unavailable until a date (available again on it) or until further
        notice. Cases they hold stay theirs; the regional manager reassigns if needed."""
        pool = await run_sync(
            app.set_availability, coordinator_id, body.available, body.until, principal
        )
        return CoordinatorView.of(pool, coordinator_id, app.today())

    @api.post(
        "/coordinators/{coordinator_id}/relations",
        status_code=status.HTTP_201_CREATED,
        responses=COORDINATOR_COMMAND | {410: NOT_FOUND[410]},
        openapi_extra=access(RULES, "relation"),
    )
    async def relation(coordinator_id: str, body: Relation, principal: Caller) -> RelationView:
        """A relation that makes the coordinator not independent for a case: they are never
        assigned to it. If they hold it now they are released and the case is assigned afresh
        without them, or waits on the unassigned list saying why."""
        _, case = await run_sync(
            app.declare_relation,
            coordinator_id,
            body.case_id,
            body.kind.value,
            body.note,
            principal,
        )
        return RelationView(
            coordinator_id=coordinator_id,
            case_id=body.case_id,
            kind=body.kind,
            case_known=case is not None,
            coordinator_ids=case.coordinator_ids if case else [],
            waiting_reason=case.waiting_reason if case else None,
        )

    # -- the cases -----------------------------------------------------------------------
    @api.get("/cases", openapi_extra=access(RULES, "list"))
    async def list_cases(
        principal: Caller,
        page: Paging,
        stage: Stage | None = None,
        model: ConferenceModel | None = None,
        region: Annotated[str | None, Query(max_length=200)] = None,
        coordinator_id: Annotated[str | None, Query(max_length=200)] = None,
        overdue: bool | None = None,
    ) -> PageOf[CaseRow]:
        """Cases in coordination, oldest first, a page at a time; ``overdue=true``: first
        contact past its deadline and not yet made."""
        rows = await run_sync(
            lambda: app.views.cases_page(
                principal,
                page,
                now=app.clock.now(),
                stage=stage.value if stage else None,
                model=model.value if model else None,
                region=region,
                coordinator_id=coordinator_id,
                overdue=overdue,
            )
        )
        return PageOf[CaseRow].of(rows, CaseRow)

    @api.get("/cases/unassigned", openapi_extra=access(RULES, "unassigned"))
    async def unassigned(principal: Caller, page: Paging) -> PageOf[UnassignedRow]:
        """Cases waiting for a coordinator, or for the second one they need, each with why:
        the regional manager's list for assigning by hand. Oldest first, a page at a time."""
        rows = await run_sync(app.views.unassigned_page, principal, page)
        return PageOf[UnassignedRow].of(rows, UnassignedRow)

    @api.get("/cases/{case_id}", responses=NOT_FOUND, openapi_extra=access(RULES, "read"))
    async def get_case(case_id: UUID, principal: Caller) -> CaseView:
        """The case, for its coordinator or the regional manager of its region (the read is
        recorded)."""
        return view(await run_sync(app.read, case_id, principal), principal)

    @api.post("/cases/{case_id}/assign", responses=COMMAND, openapi_extra=access(RULES, "assign"))
    async def assign(case_id: UUID, body: ManualAssignment, principal: Caller) -> CaseView:
        """The regional manager assigns or reassigns by hand (the whole set, which replaces
        the previous one), with a reason."""
        try:
            case = await run_sync(app.assign_by_hand, case_id, body.ids, body.reason, principal)
        except InvalidFieldError as error:
            if body.coordinator_id is None:
                raise
            # The one-coordinator body: name the field it has.
            raise InvalidFieldError(("coordinator_id",), error.message) from None
        return view(case, principal)

    @api.get(
        "/cases/{case_id}/assign/check",
        responses=NOT_FOUND | INVALID,
        openapi_extra=access(RULES, "assign"),
    )
    async def check_assignment(
        case_id: UUID,
        principal: Caller,
        coordinator_id: Annotated[list[Text], Query(min_length=1, max_length=2)],
    ) -> AssignmentCheck:
        """What assigning these coordinators by hand would meet, before it is done: the
        refusal it would get, or each mismatch and who would be over capacity (what the
        assignment writes down). Nothing is assigned (the read is recorded)."""
        ids = list(coordinator_id)
        try:
            found = await run_sync(app.check_assignment, case_id, ids, principal)
        except InvalidFieldError as error:
            raise InvalidFieldError(("coordinator_id", *error.loc[1:]), error.message) from None
        return AssignmentCheck(coordinator_ids=ids, **found)

    @api.post(
        "/cases/{case_id}/contact",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "contact"),
    )
    async def first_contact(case_id: UUID, principal: Caller) -> CaseView:
        """The coordinator made first contact with the central person."""
        return view(await run_sync(app.record_contact, case_id, principal), principal)

    # -- participants --------------------------------------------------------------------
    @api.post(
        "/cases/{case_id}/participants",
        status_code=status.HTTP_201_CREATED,
        responses=COMMAND,
        openapi_extra=access(RULES, "invite"),
    )
    async def invite(case_id: UUID, body: NewParticipant, principal: Caller) -> CreatedParticipant:
        """Invite someone, with their role. The answer gives their participant id; name and
        contact are never shown again."""
        participant = body.model_dump(mode="json")
        case, participant_id = await run_sync(lambda: app.invite(case_id, principal, **participant))
        created = ParticipantView.of(participant_id, case.participants[participant_id])
        return CreatedParticipant(case_id=case_id, **created.model_dump())

    @api.get(
        "/cases/{case_id}/participants",
        responses=NOT_FOUND,
        openapi_extra=access(RULES, "participants"),
    )
    async def participants(case_id: UUID, principal: Caller) -> list[ParticipantView]:
        """Ids, roles, organisations, invitation states and consents, in the order invited (the
        read is recorded)."""
        case = await run_sync(app.read, case_id, principal, "participants")
        return [ParticipantView.of(pid, p) for pid, p in case.participants.items()]

    @api.post(
        "/cases/{case_id}/participants/{participant_id}/confirm",
        responses=COMMAND,
        openapi_extra=access(RULES, "answer"),
    )
    async def confirm(
        case_id: UUID,
        participant_id: str,
        principal: Caller,
        body: Annotated[Confirmation | None, Body()] = None,
    ) -> ParticipantView:
        """They come: consent to take part, and to share their details as given."""
        share = (body or Confirmation()).share_details
        case = await run_sync(app.confirm, case_id, participant_id, share, principal)
        return ParticipantView.of(participant_id, case.participants[participant_id])

    @api.post(
        "/cases/{case_id}/participants/{participant_id}/decline",
        responses=COMMAND,
        openapi_extra=access(RULES, "answer"),
    )
    async def decline(
        case_id: UUID,
        participant_id: str,
        principal: Caller,
        body: Annotated[Decline | None, Body()] = None,
    ) -> ParticipantView:
        """They are not coming: recorded and respected, never pressed. Only the participant
        themself (a token with the role ``participant`` naming them) changes that answer."""
        reason = (body or Decline()).reason
        case = await run_sync(app.decline, case_id, participant_id, reason, principal)
        return ParticipantView.of(participant_id, case.participants[participant_id])

    @api.post(
        "/cases/{case_id}/participants/{participant_id}/consent/withdraw",
        responses=COMMAND,
        openapi_extra=access(RULES, "answer"),
    )
    async def withdraw_consent(
        case_id: UUID, participant_id: str, body: ConsentWithdrawal, principal: Caller
    ) -> ParticipantView:
        """Withdraw consent to share details (nothing is shared from now on; other services are
        told) or to take part (no longer coming, as after a decline)."""
        case = await run_sync(
            app.withdraw_consent, case_id, participant_id, body.what.value, principal
        )
        return ParticipantView.of(participant_id, case.participants[participant_id])

    @api.post(
        "/cases/{case_id}/participants/{participant_id}/informed",
        responses=COMMAND,
        openapi_extra=access(RULES, "inform"),
    )
    async def informed(
        case_id: UUID,
        participant_id: str,
        principal: Caller,
        body: Annotated[Informed | None, Body()] = None,
    ) -> ParticipantView:
        """The coordinator informed the participant of the aim, the way of working,
        responsibilities and possibilities, and prepared them for the questions. The
        conference is scheduled once every confirmed participant was (or has a reason why
        not)."""
        on = (body or Informed()).on
        case = await run_sync(app.record_informed, case_id, participant_id, on, principal)
        return ParticipantView.of(participant_id, case.participants[participant_id])

    @api.post(
        "/cases/{case_id}/participants/{participant_id}/not-informed",
        responses=COMMAND,
        openapi_extra=access(RULES, "inform"),
    )
    async def not_informed(
        case_id: UUID, participant_id: str, body: NotInformed, principal: Caller
    ) -> ParticipantView:
        """The coordinator could not inform the participant, and records why (kept in the
        store, never shown); scheduling no longer waits for them."""
        case = await run_sync(
            app.record_not_informed, case_id, participant_id, body.reason, principal
        )
        return ParticipantView.of(participant_id, case.participants[participant_id])

    # -- preparation ---------------------------------------------------------------------
    @api.post(
        "/cases/{case_id}/information",
        responses=COMMAND,
        openapi_extra=access(RULES, "information"),
    )
    async def information(case_id: UUID, body: InformationNeeded, principal: Caller) -> CaseView:
        """Information needed at the conference, and who brings it; the same topic again
        changes who brings it."""
        return view(
            await run_sync(app.need_information, case_id, body.topic, body.brought_by, principal),
            principal,
        )

    @api.put(
        "/cases/{case_id}/arrangements",
        responses=COMMAND,
        openapi_extra=access(RULES, "arrangements"),
    )
    async def arrangements(case_id: UUID, body: Arrangements, principal: Caller) -> CaseView:
        """The family's practicalities: date, venue, languages and interpreter, food,
        rituals."""
        return view(await run_sync(app.arrange, case_id, body.model_dump(), principal), principal)

    @api.post(
        "/cases/{case_id}/schedule", responses=COMMAND, openapi_extra=access(RULES, "schedule")
    )
    async def schedule(case_id: UUID, body: Schedule, principal: Caller) -> CaseView:
        """Schedule the conference (again to move it): after the first contact, with at least
        one confirmed participant who is not a professional."""
        return view(
            await run_sync(app.schedule, case_id, body.on, body.venue, principal), principal
        )

    @api.post(
        "/cases/{case_id}/conference", responses=COMMAND, openapi_extra=access(RULES, "conference")
    )
    async def conference_held(case_id: UUID, body: ConferenceRecord, principal: Caller) -> CaseView:
        """The conference was held: per part that took place, who was present (participant
        ids), and whether the coordinator and an interpreter were."""
        parts = {part.value: record.model_dump() for part, record in body.parts.items()}
        return view(
            await run_sync(app.hold_conference, case_id, body.held_on, parts, principal),
            principal,
        )

    @api.post(
        "/cases/{case_id}/end", responses=NOT_FOUND_OR_CONFLICT, openapi_extra=access(RULES, "end")
    )
    async def end(case_id: UUID, body: EndingRecord, principal: Caller) -> CaseView:
        """The case ends before a conference: stopped (with a reason from the kept list), or
        a plan made without a meeting."""
        reason = body.reason.value if body.reason else None
        return view(
            await run_sync(
                app.end_without_conference, case_id, body.ending.value, reason, body.note, principal
            ),
            principal,
        )

    return api
