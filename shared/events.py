"""Integration events: Kring's public contract (DESIGN.md §3, §5).

Each event is a pydantic model with a stable name and version; on the bus it travels inside a
CloudEvents 1.0 envelope (``shared.envelope``). Events carry what a consumer needs and no more:
roles, counts and organisations, never names, addresses or plan text, because copies on the stream
outlive any erasure in a store.

A breaking change gets a new class with ``version = 2`` beside the old one; consumers keep
reading v1 until every producer has moved.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.subjects import event_subject


class ConferenceModel(StrEnum):
    """The four conference models that share one shape (DESIGN.md §2)."""

    FAMILY = "family"  # Eigen Kracht-conferentie
    GROUP = "group"  # Alle Hens / groepsconferentie
    RESTORATIVE = "restorative"  # Echt Recht
    LEARNING_CIRCLE = "learning_circle"  # Leercirkel


class ConferencePart(StrEnum):
    INFORMATION = "information"
    PLAN_MAKING = "plan_making"
    PRESENTATION = "presentation"


class ParticipantRole(StrEnum):
    """Who someone is at a conference (DESIGN.md §2, seeds 000-003)."""

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


class ParticipantRef(_Part):
    """A participant as other services may know them: an opaque id, a role, an organisation for
    professionals and experts. Names and addresses stay in coordination's store."""

    participant_id: str = Field(min_length=1, max_length=64)
    role: ParticipantRole
    organisation: str | None = None


class ConferenceHeld(IntegrationEvent):
    """The conference took place: which parts, and who was there by role (coordination)."""

    name = "conference-held"
    origin = "coordination"

    held_on: date
    parts: list[ConferencePart] = Field(min_length=1)
    attendance: dict[ConferencePart, dict[str, int]] = Field(default_factory=dict)
    #: Everyone who took part, and every central person: the plan's recipients.
    participants: list[ParticipantRef] = Field(default_factory=list)


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


EVENT_CLASSES: tuple[type[IntegrationEvent], ...] = (
    RequestReceived,
    RequestWithdrawn,
    CoordinatorAssigned,
    ConferenceHeld,
    ParticipantConsentWithdrawn,
    CaseEndedWithoutConference,
    PlanDistributed,
    FollowUpDue,
    OutcomeRecorded,
    FollowUpConferenceRequested,
    PlanRevisionRequested,
    CaseErased,
)
EVENTS_BY_TYPE: dict[str, type[IntegrationEvent]] = {c.type_name(): c for c in EVENT_CLASSES}


__all__ = [
    "EVENTS_BY_TYPE",
    "EVENT_CLASSES",
    "AgreementOutcome",
    "CaseEndedWithoutConference",
    "CaseErased",
    "ConferenceHeld",
    "ConferenceModel",
    "ConferencePart",
    "CoordinatorAssigned",
    "CoordinatorWishes",
    "Ending",
    "FollowUpConferenceRequested",
    "FollowUpDue",
    "IntegrationEvent",
    "OutcomeRecorded",
    "ParticipantConsentWithdrawn",
    "ParticipantRef",
    "ParticipantRole",
    "PlanDistributed",
    "PlanRevisionRequested",
    "Recipient",
    "RequestReceived",
    "RequestWithdrawn",
    "StopReason",
]
