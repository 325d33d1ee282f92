"""What intake publishes: an accepted request becomes RequestReceived. Intake follows nobody."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.intake.domain import Request
from shared.events import IntegrationEvent, RequestReceived

FOLLOWS: tuple[str, ...] = ()


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    if isinstance(domain_event, Request.Accepted):  # type: ignore[attr-defined]
        accepted: Any = domain_event
        return RequestReceived(
            case_id=accepted.originator_id,
            model=accepted.model,
            region=accepted.region,
            languages=accepted.languages,
            informational_talk=accepted.informational_talk,
            has_minimum_requirements=getattr(accepted, "has_minimum_requirements", False),
            submitted_at=accepted.submitted_at,
            accepted_at=accepted.at,
        )
    return None
