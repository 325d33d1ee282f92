"""What coordination follows and publishes.

Follows intake (``RequestReceived``: assign; ``RequestWithdrawn``: stop the preparation) and
plans (``PlanDistributed``: the coordinators' task ends). Publishes ``CoordinatorAssigned`` (the
whole set, each time it changes), ``FirstContactMade``, ``ConferenceHeld`` (parts, attendance by
role per part and over the whole conference, participant refs), ``ParticipantConsentWithdrawn``
(sharing consent only) and ``CaseEndedWithoutConference``.
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
    FirstContactMade,
    IntegrationEvent,
    ParticipantConsentWithdrawn,
    ParticipantRef,
    ParticipantRole,
    attended_from,
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
    if isinstance(domain_event, CoordinatedCase.FirstContactMade):
        contacted = domain_event
        if contacted.model is None:
            return None  # stored before the model rode along: nothing to publish it under
        return FirstContactMade(
            case_id=contacted.originator_id,
            model=ConferenceModel(contacted.model),
            contacted_at=contacted.at,
        )
    if isinstance(domain_event, CoordinatedCase.ConferenceHeld):
        held = domain_event
        participants = [ParticipantRef.model_validate(p) for p in held.participants]
        return ConferenceHeld(
            case_id=held.originator_id,
            model=ConferenceModel(held.model),
            held_on=held.held_on,
            parts=[ConferencePart(part) for part in held.parts],
            attendance={ConferencePart(k): v for k, v in held.attendance.items()},
            participants=participants,
            attended=_attended(held.present, participants, held.attendance),
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


def _attended(
    present: dict[str, list[str]] | None,
    participants: list[ParticipantRef],
    attendance: dict[Any, dict[str, int]],
) -> dict[ParticipantRole, int]:
    """Each person present in some part once, by role. Conferences stored before the ids present
    were kept are counted as version 1 of the event is read (``attended_from``)."""
    if not present:
        return attended_from(participants, attendance)
    there = {pid for ids in present.values() for pid in ids}
    attended: dict[ParticipantRole, int] = {}
    # In the order of the participants (a list), never of the set: the payload's bytes must be
    # the same in every process, or a relay publishing it again finds its own message
    # "different" (string hashes, and so a set's order, change from one process to the next).
    for ref in participants:
        if ref.participant_id in there:
            attended[ref.role] = attended.get(ref.role, 0) + 1
    return attended
