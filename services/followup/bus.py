"""What follow-up follows (plans) and publishes: FollowUpDue when a timer fires, OutcomeRecorded
(without the notes; the family's own next meeting is one too, kind ``next_meeting``),
PlanRevisionRequested (a meeting asked for a revised plan; plans shows it), RatingsRecorded (marks
by group), FollowUpConferenceRequested (without the reason; intake opens the case)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.followup.domain import NEXT_MEETING, FollowUp
from shared.events import (
    FollowUpConferenceRequested,
    FollowUpDue,
    IntegrationEvent,
    OutcomeRecorded,
    PlanRevisionRequested,
    Rating,
    RatingsRecorded,
)
from shared.permissions import follows

#: Intake for the case's region (``RequestReceived``) and an erased case (``CaseErased``);
#: coordination for the case's coordinators (``CoordinatorAssigned``): who may see a follow-up.
FOLLOWS = follows("followup")  # the permission table says whom it may follow


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    e: Any = domain_event
    if isinstance(domain_event, FollowUp.Due):  # type: ignore[attr-defined]
        return FollowUpDue(
            case_id=e.originator_id,
            model=e.model,
            timer_id=e.timer_id,
            kind=e.kind,
            due_at=e.due_at,
        )
    if isinstance(domain_event, FollowUp.OutcomeRecorded):  # type: ignore[attr-defined]
        return OutcomeRecorded(
            case_id=e.originator_id,
            model=e.model,
            timer_id=e.timer_id,
            kind=e.kind,
            reached=e.reached,
            agreements=e.agreements,
            recorded_at=e.at,
        )
    if isinstance(domain_event, FollowUp.MeetingRecorded):  # type: ignore[attr-defined]
        # The family's own meeting is a contact: analysts count it as one (held: reached).
        return OutcomeRecorded(
            case_id=e.originator_id,
            model=e.model,
            timer_id=e.outcome.timer_id,
            kind=NEXT_MEETING,
            reached=e.outcome.held,
            agreements=e.outcome.agreements,
            recorded_at=e.at,
        )
    if isinstance(domain_event, FollowUp.PlanRevisionRequested):  # type: ignore[attr-defined]
        return PlanRevisionRequested(
            case_id=e.originator_id, model=e.model, timer_id=e.timer_id, requested_at=e.at
        )
    if isinstance(domain_event, FollowUp.RatingsRecorded):  # type: ignore[attr-defined]
        return RatingsRecorded(
            case_id=e.originator_id,
            model=e.model,
            timer_id=e.timer_id,
            kind=e.kind,
            ratings=[Rating(by=r.by, meeting=r.meeting, plan=r.plan) for r in e.ratings],
            recorded_at=e.at,
        )
    if isinstance(domain_event, FollowUp.FollowUpConferenceRequested):  # type: ignore[attr-defined]
        return FollowUpConferenceRequested(
            case_id=e.originator_id,
            model=e.model,
            new_case_id=e.new_case_id,
            requested_at=e.at,
        )
    return None
