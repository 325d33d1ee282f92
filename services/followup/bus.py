"""What follow-up follows (plans) and publishes (FollowUpDue)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.followup.domain import FollowUp
from shared.events import FollowUpDue, IntegrationEvent

FOLLOWS: tuple[str, ...] = ("plans",)


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    if isinstance(domain_event, FollowUp.Due):  # type: ignore[attr-defined]
        e: Any = domain_event
        return FollowUpDue(
            case_id=e.originator_id,
            model=e.model,
            timer_id=e.timer_id,
            kind=e.kind,
            due_at=e.due_at,
        )
    return None
