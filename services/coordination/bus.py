"""What coordination follows (intake) and publishes (CoordinatorAssigned, ConferenceHeld)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.coordination.domain import CoordinatedCase
from shared.events import (
    CaseEndedWithoutConference,
    ConferenceHeld,
    CoordinatorAssigned,
    IntegrationEvent,
)

FOLLOWS: tuple[str, ...] = ("intake",)


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    e: Any = domain_event
    if isinstance(domain_event, CoordinatedCase.CoordinatorAssigned):  # type: ignore[attr-defined]
        return CoordinatorAssigned(
            case_id=e.originator_id,
            model=e.model,
            coordinator_ids=e.coordinator_ids,
            assigned_at=e.at,
            first_contact_due=e.first_contact_due,
        )
    if isinstance(domain_event, CoordinatedCase.ConferenceHeld):  # type: ignore[attr-defined]
        return ConferenceHeld(
            case_id=e.originator_id,
            model=e.model,
            held_on=e.held_on,
            parts=e.parts,
            attendance=e.attendance,
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
