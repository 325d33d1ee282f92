"""Small builders for test data; every test makes its own unique ids."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from shared.actor import Role
from shared.envelope import ORIGIN_HEADER, POSITION_HEADER, Delivered, encode
from shared.erasure import CASE_KEY_PREFIX
from shared.events import (
    CaseEndedWithoutConference,
    ConferenceHeld,
    ConferencePart,
    CoordinatorAssigned,
    IntegrationEvent,
    ParticipantRole,
    PartnerRegistered,
    PartnerRevoked,
    PlanDistributed,
    Recipient,
    RequestReceived,
    RequestWithdrawn,
)
from shared.identity import Participation, Principal

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def request_received(case_id: uuid.UUID | None = None, **overrides: Any) -> RequestReceived:
    values: dict[str, Any] = {
        "case_id": case_id or uuid.uuid4(),
        "model": "family",
        "region": "Utrecht",
        "languages": ["nl"],
        "submitted_at": NOW,
        "accepted_at": NOW,
    }
    return RequestReceived(**(values | overrides))


def coordinator_assigned(case_id: uuid.UUID) -> CoordinatorAssigned:
    return CoordinatorAssigned(
        case_id=case_id,
        model="family",
        coordinator_ids=["c1"],
        assigned_at=NOW,
        first_contact_due=NOW,
    )


def conference_held(case_id: uuid.UUID) -> ConferenceHeld:
    return ConferenceHeld(
        case_id=case_id,
        model="family",
        held_on=date(2026, 4, 1),
        parts=[ConferencePart.INFORMATION, ConferencePart.PLAN_MAKING, ConferencePart.PRESENTATION],
        attendance={ConferencePart.PLAN_MAKING: {"family": 5}},
        attended={ParticipantRole.FAMILY: 5},
    )


def case_ended(
    case_id: uuid.UUID, ending: str, reason: str | None = None
) -> CaseEndedWithoutConference:
    return CaseEndedWithoutConference(
        case_id=case_id, model="group", ending=ending, reason=reason, ended_at=NOW
    )


def plan_distributed(case_id: uuid.UUID, at: datetime = NOW, **overrides: Any) -> PlanDistributed:
    values: dict[str, Any] = {
        "case_id": case_id,
        "model": "family",
        "plan_version": 1,
        "distributed_at": at,
        "recipients": [Recipient(role="family")],
    }
    return PlanDistributed(**(values | overrides))


def delivered(event: IntegrationEvent, position: int, origin: str | None = None) -> Delivered:
    origin = origin or event.origin
    return Delivered(
        event=event, origin=origin, position=position, event_id=f"{origin}:{position}", time=NOW
    )


def envelope(event: IntegrationEvent, position: int, origin: str | None = None) -> bytes:
    return encode(event, origin=origin or event.origin, position=position, time=NOW)


def bus_headers(origin: str, position: int, msg_id: str | None = None) -> dict[str, str]:
    """The headers a relay sets on a message (``Nats-Msg-Id`` only when given: without it the
    server stores every copy, as it does a redelivery)."""
    headers = {ORIGIN_HEADER: origin, POSITION_HEADER: str(position)}
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    return headers


REQUEST_BODY: dict[str, Any] = {
    "requester": {"name": "Ria", "relation": "family"},
    "central_persons": ["Johan"],
    "model": "family",
    "region": "Utrecht",
    "languages": ["nl"],
    "description": "Where can Johan (8) grow up safely?",
}


CLARIFICATION: dict[str, Any] = {
    "conference_questions": ["Where can Johan (8) grow up safely, and what does that need?"],
    "funding": {"payer": "municipality", "organisation": "Gemeente Utrecht"},
    "minimum_requirements": [],
}


def headers(
    actor: str = "tester",
    role: str = "regional_manager",
    *,
    region: str | None = "Utrecht",
    coordinator: str | None = None,
    participant: tuple[str, ...] = (),
) -> dict[str, str]:
    """A bearer token of the session's issuer for ``actor`` in ``role``: a regional manager of
    Utrecht by default; a coordinator is coordinator ``actor`` unless ``coordinator`` says."""
    from tests.tokens import bearer

    if role == "coordinator":
        coordinator = coordinator or actor
    regions = (region,) if region and role in ("regional_manager", "professional") else ()
    return bearer(actor, [role], regions=regions, coordinator=coordinator, participant=participant)


def principal(
    name: str = "tester",
    *roles: str,
    regions: tuple[str, ...] = ("Utrecht",),
    coordinator: str | None = None,
    participations: tuple[tuple[uuid.UUID, str], ...] = (),
) -> Principal:
    """A principal as a validated token would give it, for calling an application directly: a
    regional manager of Utrecht by default; a coordinator is coordinator ``name``."""
    chosen = frozenset(Role(r) for r in roles or ("regional_manager",))
    if Role.COORDINATOR in chosen:
        coordinator = coordinator or name
    return Principal(
        subject=name,
        name=name,
        roles=chosen,
        regions=regions,
        coordinator_id=coordinator,
        participations=frozenset(Participation(c, p) for c, p in participations),
    )


#: Every region the tests name: a regional manager of them all acts anywhere in a test.
REGIONS = ("Utrecht", "Zwolle", "Zeeland", "Drenthe", "Texel", "Elders", "X")


def request_withdrawn(case_id: uuid.UUID, model: str = "family") -> RequestWithdrawn:
    return RequestWithdrawn(case_id=case_id, model=model, withdrawn_at=NOW)


def part(
    present: list[str], coordinator: bool = False, interpreter: bool = False
) -> dict[str, Any]:
    """One part of a conference as coordination records it."""
    return {"present": present, "coordinator": coordinator, "interpreter": interpreter}


def ready_for_conference(app: Any, case_id: uuid.UUID, actor: Any, today: date) -> dict[str, str]:
    """Take an assigned case in coordination to ``conference_scheduled``: first contact, a
    central person, a family member and a professional invited, confirmed and informed.
    Returns their participant ids by role."""
    app.record_contact(case_id, actor)
    ids = {}
    for role, organisation in (
        ("central_person", None),
        ("family", None),
        ("professional", "Jeugdzorg Utrecht"),
    ):
        _, pid = app.invite(
            case_id,
            actor,
            name=f"Someone {role}",
            role=role,
            contact=None,
            organisation=organisation,
            language="nl",
        )
        app.confirm(case_id, pid, True, actor)
        app.record_informed(case_id, pid, None, actor)
        ids[role] = pid
    app.schedule(case_id, today, "the community centre", actor)
    return ids


def rewrite_stored_states(
    app: Any, database: Path, edit: Callable[[str, dict[str, Any]], None]
) -> None:
    """Rewrite stored events as an earlier release stored them: ``edit(event name, state)``
    changes the JSON state in place. A case's events are opened with the case's key and sealed
    again (``shared.erasure``); ``app`` is the open application whose store this is."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT rowid, originator_id, topic, state FROM stored_events").fetchall()
        for rowid, originator_id, topic, state in rows:
            cipher = None
            if state.startswith(CASE_KEY_PREFIX):
                cipher = app.keyring.cipher(uuid.UUID(originator_id), create=False)
                state = cipher.decrypt(state[len(CASE_KEY_PREFIX) :])
            data = json.loads(state)
            edit(topic.rpartition(".")[2], data)
            state = json.dumps(data).encode()
            if cipher is not None:
                state = CASE_KEY_PREFIX + cipher.encrypt(state)
            db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state, rowid))


def plain(value: Any) -> Any:
    """A stored state's values as an earlier release stored them: dicts and text, without the
    transcoder's ``{"_type_", "_data_"}`` wrapping."""
    if isinstance(value, dict) and set(value) == {"_type_", "_data_"}:
        return plain(value["_data_"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def acted(who: Principal, role: str | None = None) -> dict[str, str]:
    """The actor record an event keeps for ``who`` acting in ``role`` (their only role)."""
    chosen = Role(role) if role else next(iter(who.roles))
    return who.acting_as(chosen).as_record()


def participant(case_id: uuid.UUID, participant_id: str, name: str = "herman") -> Principal:
    """A participant speaking for themself in one case."""
    return principal(name, "participant", participations=((case_id, participant_id),))


_partner_positions = iter(range(1, 10**9))


def register_partners(app: Any, **partners: str) -> None:
    """Tell ``app`` (plans) of registered partners, ``organisation id=name``, as the partners
    service's events would (each at a new position of its)."""
    for organisation, name in partners.items():
        event = PartnerRegistered(
            organisation=organisation.replace("_", "-"), organisation_name=name, registered_at=NOW
        )
        app.process(delivered(event, next(_partner_positions)))


def revoke_partner(app: Any, organisation: str) -> None:
    event = PartnerRevoked(organisation=organisation, revoked_at=NOW)
    app.process(delivered(event, next(_partner_positions)))
