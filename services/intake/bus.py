"""What intake follows (followup: a follow-up conference opens a case) and publishes: every
request becomes RequestSubmitted (model, region, the requester's relation: no name, no
description); an accepted request becomes RequestReceived; a withdrawal after acceptance becomes
RequestWithdrawn, one before it RequestWithdrawnBeforeAcceptance (coordination never heard of
that case); an erasure becomes CaseErased, which every other service follows."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.intake.domain import Request
from shared.erasure import ErasureLog
from shared.events import (
    CaseErased,
    ConferenceModel,
    CoordinatorWishes,
    IntegrationEvent,
    RequestReceived,
    RequestSubmitted,
    RequestWithdrawn,
    RequestWithdrawnBeforeAcceptance,
)
from shared.permissions import follows

FOLLOWS = follows("intake")  # the permission table says whom it may follow


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    if isinstance(domain_event, Request.Submitted):  # type: ignore[attr-defined]
        submitted: Any = domain_event
        return RequestSubmitted(
            case_id=submitted.originator_id,
            model=ConferenceModel(submitted.model),
            region=submitted.region,
            requester_relation=submitted.requester["relation"],
            informational_talk=submitted.informational_talk,
            # getattr: requests stored before follow-up conferences existed do not have it.
            follow_up_of=getattr(submitted, "follow_up_of", None),
            submitted_at=submitted.submitted_at,
        )
    if isinstance(domain_event, Request.Accepted):
        accepted = domain_event
        return RequestReceived(
            case_id=accepted.originator_id,
            model=ConferenceModel(accepted.model),
            region=accepted.region,
            languages=accepted.languages,
            informational_talk=accepted.informational_talk,
            has_minimum_requirements=accepted.has_minimum_requirements,
            coordinators_needed=accepted.coordinators_needed,
            coordinator_wishes=(
                CoordinatorWishes.model_validate(accepted.coordinator_wishes)
                if accepted.coordinator_wishes
                else None
            ),
            involved_organisations=accepted.involved_organisations,
            follow_up_of=accepted.follow_up_of,
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
    if isinstance(domain_event, Request.Withdrawn):
        withdrawn = domain_event
        if withdrawn.model is None:
            return None  # stored before the model rode along: nothing to publish it under
        if not withdrawn.was_accepted:
            return RequestWithdrawnBeforeAcceptance(
                case_id=withdrawn.originator_id,
                model=ConferenceModel(withdrawn.model),
                region=withdrawn.region,
                stage=withdrawn.stage,
                withdrawn_at=withdrawn.at,
            )
        return RequestWithdrawn(
            case_id=withdrawn.originator_id,
            model=ConferenceModel(withdrawn.model),
            withdrawn_at=withdrawn.at,
        )
    return None
