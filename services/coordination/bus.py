"""What coordination follows and publishes.

Follows intake (``RequestReceived``: assign; ``RequestWithdrawn``: stop the preparation) and
plans (``PlanDistributed``: the coordinators' task ends). Publishes ``CoordinatorAssigned`` (the
whole set, each time it changes), ``ConferenceHeld`` (parts, attendance by role, participant
refs), ``ParticipantConsentWithdrawn`` (sharing consent only) and ``CaseEndedWithoutConference``.
Names, contact details, notes and reasons stay in the store.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.coordination.domain import Consent, CoordinatedCase
from shared.events import (
    CaseEndedWithoutConference,
    ConferenceHeld,
    ConferenceModel,
    ConferencePart,
    CoordinatorAssigned,
    IntegrationEvent,
    ParticipantConsentWithdrawn,
    ParticipantRef,
)
from shared.permissions import follows

FOLLOWS = follows("coordination")  # the permission table says whom it may follow


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    e: Any = domain_event
    if isinstance(domain_event, CoordinatedCase.CoordinatorAssigned):
        assigned = domain_event
        return CoordinatorAssigned(
            case_id=assigned.originator_id,
            model=ConferenceModel(assigned.model),
            coordinator_ids=assigned.coordinator_ids,
            assigned_at=assigned.at,
            first_contact_due=assigned.first_contact_due,
            by_hand=assigned.by_hand,
            reassignment=assigned.reassignment,
        )
    if isinstance(domain_event, CoordinatedCase.ConferenceHeld):
        held = domain_event
        return ConferenceHeld(
            case_id=held.originator_id,
            model=ConferenceModel(held.model),
            held_on=held.held_on,
            parts=[ConferencePart(part) for part in held.parts],
            attendance={ConferencePart(k): v for k, v in held.attendance.items()},
            participants=[ParticipantRef.model_validate(p) for p in held.participants],
        )
    if isinstance(domain_event, CoordinatedCase.ConsentWithdrawn):  # type: ignore[attr-defined]
        if e.what != Consent.SHARE_DETAILS:
            return None  # no longer coming: nothing for others to stop sharing
        return ParticipantConsentWithdrawn(
            case_id=e.originator_id,
            model=e.model,
            participant_id=e.participant_id,
            withdrawn_at=e.at,
        )
    if isinstance(domain_event, CoordinatedCase.EndedWithoutConference):  # type: ignore[attr-defined]
        return CaseEndedWithoutConference(
            case_id=e.originator_id,
            model=e.model,
            ending=e.ending,
            reason=e.reason,
            ended_at=e.at,
        )
    return None
