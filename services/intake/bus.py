"""What intake follows (followup: a follow-up conference opens a case) and publishes: an accepted
request becomes RequestReceived; a withdrawal after acceptance becomes RequestWithdrawn; an
erasure becomes CaseErased, which every other service follows."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.intake.domain import Request
from shared.erasure import ErasureLog
from shared.events import CaseErased, IntegrationEvent, RequestReceived, RequestWithdrawn
from shared.permissions import follows

FOLLOWS = follows("intake")  # the permission table says whom it may follow


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    if isinstance(domain_event, Request.Accepted):  # type: ignore[attr-defined]
        accepted: Any = domain_event
        return RequestReceived(
            case_id=accepted.originator_id,
            model=accepted.model,
            region=accepted.region,
            languages=accepted.languages,
            informational_talk=accepted.informational_talk,
            # getattr: events stored before these fields existed do not have them.
            has_minimum_requirements=getattr(accepted, "has_minimum_requirements", False),
            coordinators_needed=getattr(accepted, "coordinators_needed", 1),
            coordinator_wishes=getattr(accepted, "coordinator_wishes", None),
            involved_organisations=getattr(accepted, "involved_organisations", None) or [],
            follow_up_of=getattr(accepted, "follow_up_of", None),
            submitted_at=accepted.submitted_at,
            accepted_at=accepted.at,
        )
    if isinstance(domain_event, ErasureLog.CaseErased):
        erased: Any = domain_event
        return CaseErased(
            case_id=erased.case_id,
            model=erased.model,
            reason=erased.reason,
            erased_at=erased.at,
        )
    if isinstance(domain_event, Request.Withdrawn):  # type: ignore[attr-defined]
        withdrawn: Any = domain_event
        if not getattr(withdrawn, "was_accepted", False):
            return None  # nobody downstream knows a request that was never accepted
        return RequestWithdrawn(
            case_id=withdrawn.originator_id,
            model=withdrawn.model,
            withdrawn_at=withdrawn.at,
        )
    return None
