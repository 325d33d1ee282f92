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
    submitted_at: AwareDatetime
    accepted_at: AwareDatetime


class CoordinatorAssigned(IntegrationEvent):
    """An independent coordinator took the case (coordination)."""

    name = "coordinator-assigned"
    origin = "coordination"

    coordinator_ids: list[str] = Field(min_length=1)
    assigned_at: AwareDatetime
    first_contact_due: AwareDatetime


class ConferenceHeld(IntegrationEvent):
    """The conference took place: which parts, and who was there by role (coordination)."""

    name = "conference-held"
    origin = "coordination"

    held_on: date
    parts: list[ConferencePart] = Field(min_length=1)
    attendance: dict[ConferencePart, dict[str, int]] = Field(default_factory=dict)


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


class FollowUpDue(IntegrationEvent):
    """A follow-up contact is due now (followup)."""

    name = "follow-up-due"
    origin = "followup"

    timer_id: str
    kind: str
    due_at: AwareDatetime


EVENT_CLASSES: tuple[type[IntegrationEvent], ...] = (
    RequestReceived,
    CoordinatorAssigned,
    ConferenceHeld,
    CaseEndedWithoutConference,
    PlanDistributed,
    FollowUpDue,
)
EVENTS_BY_TYPE: dict[str, type[IntegrationEvent]] = {c.type_name(): c for c in EVENT_CLASSES}


__all__ = [
    "EVENTS_BY_TYPE",
    "EVENT_CLASSES",
    "CaseEndedWithoutConference",
    "ConferenceHeld",
    "ConferenceModel",
    "ConferencePart",
    "CoordinatorAssigned",
    "Ending",
    "FollowUpDue",
    "IntegrationEvent",
    "PlanDistributed",
    "Recipient",
    "RequestReceived",
    "StopReason",
]
