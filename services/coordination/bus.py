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
    CoordinatorAssigned,
    IntegrationEvent,
    ParticipantConsentWithdrawn,
)
from shared.permissions import follows

FOLLOWS = follows("coordination")  # the permission table says whom it may follow


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    e: Any = domain_event
    if isinstance(domain_event, CoordinatedCase.CoordinatorAssigned):  # type: ignore[attr-defined]
        return CoordinatorAssigned(
            case_id=e.originator_id,
            model=e.model,
            coordinator_ids=e.coordinator_ids,
            assigned_at=e.at,
            first_contact_due=e.first_contact_due,
            # getattr: events stored before these fields existed do not have them.
            by_hand=getattr(e, "by_hand", False),
            reassignment=getattr(e, "reassignment", False),
        )
    if isinstance(domain_event, CoordinatedCase.ConferenceHeld):  # type: ignore[attr-defined]
        return ConferenceHeld(
            case_id=e.originator_id,
            model=e.model,
            held_on=e.held_on,
            parts=e.parts,
            attendance=e.attendance,
            participants=getattr(e, "participants", None) or [],
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
