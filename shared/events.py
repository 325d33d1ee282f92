"""Integration events: Kring's public contract (docs/architecture.md, "The event contract").

Each event is a pydantic model with a stable name and version; on the bus it travels inside a
CloudEvents 1.0 envelope (``shared.envelope``). Events carry what a consumer needs and no more:
roles, counts and organisations, never names, addresses or plan text, because copies on the stream
outlive any erasure in a store.

**Versions.** A field added to, or changed in, a published event is a breaking change for a
strict consumer (every event is ``extra="forbid"``). Such a change makes a new version: the class
keeps its name and gets ``version = 2`` (its CloudEvents ``type`` ends ``.v2``, its subject stays),
and the old form stays beside it as a ``SupersededEvent`` subclass (``ConferenceHeldV1``) whose
``upcast()`` returns the new one. ``shared.envelope.decode`` reads every version on the stream and
upcasts each message to the current version, so consumers, the replay and exports only ever see
the current class; services publish only the current version (``EVENT_CLASSES``). What a
producer starts to say that no consumer needs changed gets a new event type instead.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.subjects import ORGANISATION_ID, event_subject


class ConferenceModel(StrEnum):
    """The four conference models that share one shape (docs/architecture.md, "The domain")."""

    FAMILY = "family"  # Eigen Kracht-conferentie
    GROUP = "group"  # Alle Hens / groepsconferentie
    RESTORATIVE = "restorative"  # Echt Recht
    LEARNING_CIRCLE = "learning_circle"  # Leercirkel


class ConferencePart(StrEnum):
    INFORMATION = "information"
    PLAN_MAKING = "plan_making"
    PRESENTATION = "presentation"


class ParticipantRole(StrEnum):
    """Who someone is at a conference, as the Eigen Kracht Centrale's leaflets name them
    (docs/architecture.md, "The domain")."""

    CENTRAL_PERSON = "central_person"
    FAMILY = "family"
    NETWORK = "network"  # friends, neighbours, colleagues
    CHILD = "child"
    PROFESSIONAL = "professional"
    EXPERT = "expert"
    VICTIM = "victim"
    OFFENDER = "offender"
    PUPIL = "pupil"
    TEACHER = "teacher"


class AgreementOutcome(StrEnum):
    KEPT = "kept"
    PARTLY_KEPT = "partly_kept"
    NOT_KEPT = "not_kept"


class RequesterRelation(StrEnum):
    """Who asked for the conference, as a relation to the central person(s) or group."""

    SELF = "self"
    FAMILY = "family"
    NEIGHBOUR = "neighbour"
    TEACHER = "teacher"
    CARE_WORKER = "care_worker"
    POLICE = "police"
    OTHER = "other"


class OpenRequestStage(StrEnum):
    """How far a request got before it was accepted (intake's stages before acceptance)."""

    SUBMITTED = "submitted"
    CLARIFIED = "clarified"


class RatingGroup(StrEnum):
    """Who gave a mark: the central person(s), family and network, or a professional."""

    FAMILY_NETWORK = "family_network"
    PROFESSIONAL = "professional"


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CoordinatorWishes(_Part):
    """What the family asked of its coordinator, where it asked anything. Short codes describing
    the coordinator wanted (e.g. gender "f", culture "moluccan"), never a family member."""

    gender: str | None = Field(default=None, max_length=40)
    background: str | None = Field(default=None, max_length=80)
    culture: str | None = Field(default=None, max_length=80)


class IntegrationEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str]
    version: ClassVar[int] = 1
    origin: ClassVar[str]

    case_id: UUID
    model: ConferenceModel

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents ``type``, e.g. ``nl.kring.plan-distributed.v1``."""
        return f"nl.kring.{cls.name}.v{cls.version}"

    @classmethod
    def schema_uri(cls) -> str:
        """The CloudEvents ``dataschema``: names the payload's schema and its version."""
        return f"urn:kring:schema:{cls.name}:{cls.version}"

    @classmethod
    def subject(cls) -> str:
        return event_subject(cls.origin, cls.name)


class SupersededEvent(IntegrationEvent):
    """An older version of an event, still read from the stream: ``upcast`` says what it means in
    the current version. Never published any more."""

    def upcast(self) -> IntegrationEvent:
        raise NotImplementedError


def upcast(event: IntegrationEvent) -> IntegrationEvent:
    """The current version of ``event`` (itself if it is current)."""
    while isinstance(event, SupersededEvent):
        event = event.upcast()
    return event


class RequestSubmitted(IntegrationEvent):
    """A request for a conference was made (intake), whether it is accepted later or not: what
    share of requests reaches a conference is counted from here. The requester is a relation,
    never a name; the description stays in intake's store."""

    name = "request-submitted"
    origin = "intake"

    region: str
    requester_relation: RequesterRelation
    informational_talk: bool
    #: The case this request follows up (a follow-up conference), if any.
    follow_up_of: UUID | None
    submitted_at: AwareDatetime


class RequestWithdrawnBeforeAcceptance(IntegrationEvent):
    """A request was withdrawn before it was accepted (intake). A type of its own, not
    ``RequestWithdrawn``: coordination follows that one and never heard of this case. The
    reason stays in intake's store."""

    name = "request-withdrawn-before-acceptance"
    origin = "intake"

    #: None for a withdrawal stored before intake recorded region and stage with it.
    region: str | None
    stage: OpenRequestStage | None
    withdrawn_at: AwareDatetime


class RequestReceived(IntegrationEvent):
    """A clarified request was accepted for a conference (intake)."""

    name = "request-received"
    origin = "intake"

    region: str
    languages: list[str] = Field(default_factory=list)
    informational_talk: bool = False
    #: A professional set minimum requirements for a safe plan: plans needs a sign-off.
    has_minimum_requirements: bool = False
    #: Set by the regional manager: a group conference may have two coordinators.
    coordinators_needed: int = Field(default=1, ge=1, le=2)
    coordinator_wishes: CoordinatorWishes | None = None
    #: Organisations already working with the family or group: a coordinator who works for one
    #: of them is not independent for this case.
    involved_organisations: list[str] = Field(default_factory=list)
    #: The case this one follows up (a follow-up conference), if any.
    follow_up_of: UUID | None = None
    submitted_at: AwareDatetime
    accepted_at: AwareDatetime


class RequestWithdrawn(IntegrationEvent):
    """An accepted request was withdrawn by the requester or the regional manager (intake).
    Published only after acceptance: before it, nobody downstream knows the case."""

    name = "request-withdrawn"
    origin = "intake"

    withdrawn_at: AwareDatetime


class CoordinatorAssigned(IntegrationEvent):
    """An independent coordinator took the case (coordination)."""

    name = "coordinator-assigned"
    origin = "coordination"

    coordinator_ids: list[str] = Field(min_length=1)
    assigned_at: AwareDatetime
    first_contact_due: AwareDatetime
    #: Assigned by the regional manager rather than chosen from the pool.
    by_hand: bool = False
    #: Replaces an earlier assignment of the same case.
    reassignment: bool = False


class FirstContactMade(IntegrationEvent):
    """The coordinator made the first contact with the central person (coordination)."""

    name = "first-contact-made"
    origin = "coordination"

    contacted_at: AwareDatetime


class ParticipantRef(_Part):
    """A participant as other services may know them: an opaque id, a role, an organisation for
    professionals and experts. Names and addresses stay in coordination's store."""

    participant_id: str = Field(min_length=1, max_length=64)
    role: ParticipantRole
    organisation: str | None = None


class ConferenceHeld(IntegrationEvent):
    """The conference took place: which parts, who was there by role per part, and how many
    people took part (coordination)."""

    name = "conference-held"
    version = 2
    origin = "coordination"

    held_on: date
    parts: list[ConferencePart] = Field(min_length=1)
    #: Per part, how many were present by role (the coordinator and an interpreter included).
    attendance: dict[ConferencePart, dict[str, int]] = Field(default_factory=dict)
    #: Everyone who took part, and every central person: the plan's recipients.
    participants: list[ParticipantRef] = Field(default_factory=list)
    #: How many different people took part, by role, over the whole conference: each person once
    #: however many parts they were at; the coordinator and an interpreter are not counted.
    attended: dict[ParticipantRole, int]


def attended_from(
    participants: list[ParticipantRef], attendance: dict[ConferencePart, dict[str, int]]
) -> dict[ParticipantRole, int]:
    """The people who took part by role, from what version 1 said. ``participants`` lists
    everyone present in some part, and every central person even if absent; so each role is
    counted from it, except the central persons, who count as the most present in any one part
    (exact for one central person, at least right for more). Without participants (events from
    before they were listed) every role counts as the most present in any one part."""
    roles = {role.value for role in ParticipantRole}
    most_in_a_part: dict[ParticipantRole, int] = {}
    for counts in attendance.values():
        for role, count in counts.items():
            if role in roles:
                key = ParticipantRole(role)
                most_in_a_part[key] = max(most_in_a_part.get(key, 0), count)
    if not participants:
        return {role: n for role, n in most_in_a_part.items() if n > 0}
    attended: dict[ParticipantRole, int] = {}
    for ref in participants:
        if ref.role is not ParticipantRole.CENTRAL_PERSON:
            attended[ref.role] = attended.get(ref.role, 0) + 1
    central = most_in_a_part.get(ParticipantRole.CENTRAL_PERSON, 0)
    if central:
        attended[ParticipantRole.CENTRAL_PERSON] = central
    return attended


class ConferenceHeldV1(SupersededEvent):
    """Version 1 of ``ConferenceHeld``: without ``attended`` (counted from ``participants`` and
    ``attendance`` when read)."""

    name = "conference-held"
    version = 1
    origin = "coordination"

    held_on: date
    parts: list[ConferencePart] = Field(min_length=1)
    attendance: dict[ConferencePart, dict[str, int]] = Field(default_factory=dict)
    participants: list[ParticipantRef] = Field(default_factory=list)

    def upcast(self) -> ConferenceHeld:
        return ConferenceHeld(
            **self.model_dump(), attended=attended_from(self.participants, self.attendance)
        )


class ParticipantConsentWithdrawn(IntegrationEvent):
    """A participant withdrew consent to have their details shared (coordination): no service
    shares them from now on."""

    name = "participant-consent-withdrawn"
    origin = "coordination"

    participant_id: str
    withdrawn_at: AwareDatetime


class Ending(StrEnum):
    STOPPED = "stopped"  # stopped during preparation
    PLAN_WITHOUT_MEETING = "plan_without_meeting"


class StopReason(StrEnum):
    """The kept list of reasons a case stops before a conference (analysts count them)."""

    REQUEST_WITHDRAWN = "request_withdrawn"
    NETWORK_NOT_WILLING = "network_not_willing"
    SAFETY = "safety"
    NO_COORDINATOR = "no_coordinator"
    OTHER = "other"


class CaseEndedWithoutConference(IntegrationEvent):
    """The case ended before a conference: stopped, or a plan made without a meeting
    (coordination)."""

    name = "case-ended-without-conference"
    origin = "coordination"

    ending: Ending
    reason: StopReason | None = None
    ended_at: AwareDatetime


class Recipient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: str
    organisation: str | None = None


class PlanDistributed(IntegrationEvent):
    """The written plan went to every participant (plans)."""

    name = "plan-distributed"
    origin = "plans"

    plan_version: int = Field(ge=1)
    distributed_at: AwareDatetime
    recipients: list[Recipient] = Field(default_factory=list)
    shared_with_organisations: list[str] = Field(default_factory=list)
    next_meeting_on: date | None = None
    #: Opaque ids of the plan's agreements, so a follow-up can record each one's outcome.
    agreement_ids: list[str] = Field(default_factory=list)


#: An organisation id as the partner registry keeps it (``shared.subjects.ORGANISATION_ID``).
OrganisationId = Annotated[str, Field(pattern=f"^{ORGANISATION_ID.pattern}$", max_length=63)]


class AgreementRef(_Part):
    """An agreement of the plan as a partner may know it: its id and, where the agreement is
    for one day, that date. Never what, where or who: the plan's text stays in plans."""

    agreement_id: str = Field(min_length=1, max_length=20)
    on: date | None = None


class SharedWith(_Part):
    """One organisation the family consented to share this version with, and the agreements
    it takes part in (those of its professionals, found by the registry's id or name)."""

    organisation: OrganisationId
    agreements: list[AgreementRef] = Field(default_factory=list)


class PlanShared(IntegrationEvent):
    """A distributed version of the plan is shared with partner organisations, as the family
    consented (plans): the partners service tells each organisation, thinly."""

    name = "plan-shared"
    origin = "plans"

    plan_version: int = Field(ge=1)
    shared_at: AwareDatetime
    organisations: list[SharedWith] = Field(min_length=1)
    next_meeting_on: date | None = None


class PlanSharingWithdrawn(IntegrationEvent):
    """The family withdrew its consent to share the plan with one organisation (plans): it gets
    no further events of the case, and may no longer fetch its copy."""

    name = "plan-sharing-withdrawn"
    origin = "plans"

    organisation: OrganisationId
    withdrawn_at: AwareDatetime


class FollowUpDue(IntegrationEvent):
    """A follow-up contact is due now (followup)."""

    name = "follow-up-due"
    origin = "followup"

    timer_id: str
    kind: str
    due_at: AwareDatetime


class OutcomeRecorded(IntegrationEvent):
    """How the plan was carried out, at a follow-up (followup). Notes stay in the store."""

    name = "outcome-recorded"
    origin = "followup"

    reached: bool
    agreements: dict[str, AgreementOutcome] = Field(default_factory=dict)
    recorded_at: AwareDatetime
    #: Which contact this is the outcome of (its FollowUpDue's ``timer_id`` and ``kind``, e.g.
    #: ``coordinator_call`` or ``research``), so analysts can tell four weeks from three months.
    timer_id: str | None = None
    kind: str | None = None


class PlanRevisionRequested(IntegrationEvent):
    """At their own next meeting the family asked for a revised plan (followup): plans shows the
    request until the coordinator writes the next version. ``timer_id`` names the meeting."""

    name = "plan-revision-requested"
    origin = "followup"

    timer_id: str = Field(min_length=1, max_length=80)
    requested_at: AwareDatetime


class Rating(_Part):
    """One respondent's marks (1-10): for the meeting, for the plan, or both."""

    by: RatingGroup
    meeting: int | None = Field(default=None, ge=1, le=10)
    plan: int | None = Field(default=None, ge=1, le=10)

    @model_validator(mode="after")
    def gives_a_mark(self) -> Rating:
        if self.meeting is None and self.plan is None:
            raise ValueError("a rating gives a mark for the meeting, the plan or both")
        return self


class RatingsRecorded(IntegrationEvent):
    """How the people at the conference rated the meeting and the plan, asked at a follow-up
    contact (followup): marks and who gave them by group, never who they are."""

    name = "ratings-recorded"
    origin = "followup"

    timer_id: str
    kind: str
    ratings: list[Rating] = Field(min_length=1)
    recorded_at: AwareDatetime


class FollowUpConferenceRequested(IntegrationEvent):
    """A follow-up conference was requested (followup); intake opens ``new_case_id`` for it,
    linked to this case."""

    name = "follow-up-conference-requested"
    origin = "followup"

    new_case_id: UUID
    requested_at: AwareDatetime


class CaseErased(IntegrationEvent):
    """The case was erased (intake, at the request of a regional manager or an operator): every
    service erases what it holds of it. ``reason`` is a code from a kept list."""

    name = "case-erased"
    origin = "intake"

    reason: str = Field(min_length=1, max_length=40)
    erased_at: AwareDatetime


#: The subject of the partner registry's events: the registry is one aggregate, not a case.
PARTNER_REGISTRY_ID = UUID("5c1e6a52-93b1-5b7e-8d3c-1f0e2a4b6c8d")


class PartnerRegistryEvent(IntegrationEvent):
    """An event of the partner registry (partners), not of a case: its subject (``case_id``) is
    the registry's id and it has no conference model."""

    case_id: UUID = PARTNER_REGISTRY_ID
    model: ConferenceModel | None = None  # type: ignore[assignment]


class PartnerRegistered(PartnerRegistryEvent):
    """An organisation became a partner (partners): plans may share with it from now on."""

    name = "partner-registered"
    origin = "partners"

    organisation: OrganisationId
    #: How the organisation is called (not a person): participants' organisations are matched
    #: against it and the id.
    organisation_name: str = Field(min_length=1, max_length=200)
    registered_at: AwareDatetime


class PartnerRevoked(PartnerRegistryEvent):
    """An organisation is no longer a partner (partners): nothing more is shared with it."""

    name = "partner-revoked"
    origin = "partners"

    organisation: OrganisationId
    revoked_at: AwareDatetime


#: What the services publish: the current version of every event.
EVENT_CLASSES: tuple[type[IntegrationEvent], ...] = (
    RequestSubmitted,
    RequestWithdrawnBeforeAcceptance,
    RequestReceived,
    RequestWithdrawn,
    CoordinatorAssigned,
    FirstContactMade,
    ConferenceHeld,
    ParticipantConsentWithdrawn,
    CaseEndedWithoutConference,
    PlanDistributed,
    PlanShared,
    PlanSharingWithdrawn,
    FollowUpDue,
    OutcomeRecorded,
    RatingsRecorded,
    FollowUpConferenceRequested,
    PlanRevisionRequested,
    CaseErased,
    PartnerRegistered,
    PartnerRevoked,
)
#: Older versions still read from the stream (and upcast on decode).
SUPERSEDED_EVENT_CLASSES: tuple[type[SupersededEvent], ...] = (ConferenceHeldV1,)
#: Every type a consumer reads, by CloudEvents ``type``.
EVENTS_BY_TYPE: dict[str, type[IntegrationEvent]] = {
    c.type_name(): c for c in (*EVENT_CLASSES, *SUPERSEDED_EVENT_CLASSES)
}


__all__ = [
    "EVENTS_BY_TYPE",
    "EVENT_CLASSES",
    "PARTNER_REGISTRY_ID",
    "SUPERSEDED_EVENT_CLASSES",
    "AgreementOutcome",
    "AgreementRef",
    "CaseEndedWithoutConference",
    "CaseErased",
    "ConferenceHeld",
    "ConferenceHeldV1",
    "ConferenceModel",
    "ConferencePart",
    "CoordinatorAssigned",
    "CoordinatorWishes",
    "Ending",
    "FirstContactMade",
    "FollowUpConferenceRequested",
    "FollowUpDue",
    "IntegrationEvent",
    "OpenRequestStage",
    "OutcomeRecorded",
    "ParticipantConsentWithdrawn",
    "ParticipantRef",
    "ParticipantRole",
    "PartnerRegistered",
    "PartnerRegistryEvent",
    "PartnerRevoked",
    "PlanDistributed",
    "PlanRevisionRequested",
    "PlanShared",
    "PlanSharingWithdrawn",
    "Rating",
    "RatingGroup",
    "RatingsRecorded",
    "Recipient",
    "RequestReceived",
    "RequestSubmitted",
    "RequestWithdrawn",
    "RequestWithdrawnBeforeAcceptance",
    "RequesterRelation",
    "SharedWith",
    "StopReason",
    "SupersededEvent",
    "attended_from",
    "upcast",
]
