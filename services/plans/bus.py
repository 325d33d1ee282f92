"""What plans follows (intake's request, coordination's case, the partner registry) and publishes
(PlanDistributed; PlanShared and PlanSharingWithdrawn for the partners service)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.plans.domain import Plan
from shared.events import (
    AgreementRef,
    IntegrationEvent,
    PlanDistributed,
    PlanShared,
    PlanSharingWithdrawn,
    Recipient,
    SharedWith,
)
from shared.permissions import follows

#: Two origins, two consumers: their events may arrive in any relative order.
FOLLOWS = follows("plans")  # the permission table says whom it may follow


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    if isinstance(domain_event, Plan.Distributed):  # type: ignore[attr-defined]
        e: Any = domain_event
        return PlanDistributed(
            case_id=e.originator_id,
            model=e.model,
            plan_version=e.version,
            distributed_at=e.at,
            # Roles and organisations only: participant ids, names and channels stay here.
            recipients=[
                Recipient(role=r["role"], organisation=r.get("organisation")) for r in e.recipients
            ],
            shared_with_organisations=e.shared_with_organisations,
            next_meeting_on=e.next_meeting_on,
            agreement_ids=getattr(e, "agreement_ids", None) or [],
        )
    if isinstance(domain_event, Plan.Shared):
        shared = domain_event
        return PlanShared(
            case_id=shared.originator_id,
            model=shared.model,
            plan_version=shared.version,
            shared_at=shared.at,
            organisations=[
                SharedWith(
                    organisation=o.organisation,
                    agreements=[
                        AgreementRef(agreement_id=a.agreement_id, on=a.on) for a in o.agreements
                    ],
                )
                for o in shared.organisations
            ],
            next_meeting_on=shared.next_meeting_on,
        )
    if isinstance(domain_event, Plan.SharingWithdrawn):
        withdrawn = domain_event
        return PlanSharingWithdrawn(
            case_id=withdrawn.originator_id,
            model=withdrawn.model,
            organisation=withdrawn.organisation,
            withdrawn_at=withdrawn.at,
        )
    return None
