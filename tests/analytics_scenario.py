"""A known set of cases for the analysts' figures, written so each figure can be counted by hand.

Thirteen requests; one (M) is erased, so twelve count. All times at 10:00 UTC.

- A, family, Utrecht, requester family: request 2 Mar, contact 5 Mar (3 d), conference 30 Mar
  (28 d): 11 people, 2 children; plan 1 Apr (30 d); coordinator's call: a1 kept, a2 partly, a3
  not; research: a1, a2 kept, a3 not; marks family 9/8 and 8/9, professional 7/6; asks for a
  follow-up conference (L).
- B, family, Utrecht, care_worker: request 4 Mar, contact 6 Mar (2 d), conference 15 Apr (42 d,
  sent as version 1 of the event): 5 people, no child; plan 20 Apr (47 d); call: a1, a2 kept;
  marks professional 8/8.
- C, group, Amsterdam, neighbour: request 9 Mar, contact 12 Mar (3 d), plan without a meeting
  20 Mar, plan 25 Mar (16 d).
- D, restorative, Amsterdam, police: request 10 Mar, contact 11 Mar (1 d), stopped 25 Mar:
  network not willing.
- E, family, Utrecht, self: request 11 Mar, withdrawn before acceptance 12 Mar (submitted).
- F, learning_circle, Zwolle, teacher: request 12 Mar, withdrawn before acceptance 16 Mar
  (clarified).
- G, family, Zwolle, family: request 16 Mar, accepted, stopped 30 Mar: no coordinator.
- H, group, Utrecht, other: request 18 Mar, coordinator 19 Mar, withdrawn after acceptance 20 Mar.
- I, family, Utrecht, family: request 20 Mar, contact 24 Mar (4 d): still in preparation.
- J, family, Utrecht, family: request 23 Mar: not yet clarified.
- K, learning_circle, Zwolle, teacher: request 2 Apr, contact 3 Apr (1 d), conference 20 Apr
  (18 d): 5 people, 1 pupil; plan 22 Apr (20 d); research: nobody reached.
- L, family, Utrecht, family: request 1 Jun, the follow-up conference of A.
- M, family, Utrecht, family: request 5 Mar, conference 1 Apr; then erased.

The stream also carries a re-published copy (A's acceptance) and one message that is not JSON.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shared.envelope import Delivered
from shared.events import (
    CaseEndedWithoutConference,
    CaseErased,
    ConferenceHeld,
    ConferenceHeldV1,
    CoordinatorAssigned,
    FirstContactMade,
    FollowUpConferenceRequested,
    FollowUpDue,
    IntegrationEvent,
    OutcomeRecorded,
    ParticipantRef,
    PlanDistributed,
    Rating,
    RatingsRecorded,
    RequestReceived,
    RequestSubmitted,
    RequestWithdrawn,
    RequestWithdrawnBeforeAcceptance,
    upcast,
)

#: Names that must never reach an export: the organisations a case names, and the sample people.
ORGANISATIONS = ("Jeugdzorg Utrecht", "Woonstichting De Kring", "Gemeente Zwolle")


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 10, 0, tzinfo=UTC)


@dataclass
class Scenario:
    ids: dict[str, uuid.UUID]
    #: (event, the time on its envelope), in the order published
    items: list[tuple[IntegrationEvent, datetime]]

    def delivered(self) -> list[Delivered]:
        """As the stream delivers them: each event under its origin's next position, the
        re-published copy under the same position as the original."""
        positions: Counter[str] = Counter()
        out: list[Delivered] = []
        first_position: dict[int, int] = {}
        for index, (event, moment) in enumerate(self.items):
            copy_of = next(
                (i for i, (e, m) in enumerate(self.items[:index]) if e is event and m == moment),
                None,
            )
            if copy_of is None:
                positions[event.origin] += 1
                first_position[index] = positions[event.origin]
                position = positions[event.origin]
            else:
                position = first_position[copy_of]
            out.append(
                Delivered(
                    event=upcast(event),  # as decoding does
                    origin=event.origin,
                    position=position,
                    event_id=f"{event.origin}:{position}",
                    time=moment,
                )
            )
        return out


def scenario() -> Scenario:
    ids = {name: uuid.uuid4() for name in "ABCDEFGHIJKLM"}
    items: list[tuple[IntegrationEvent, datetime]] = []

    def add(event: IntegrationEvent, moment: datetime) -> IntegrationEvent:
        items.append((event, moment))
        return event

    def submit(
        name: str, model: str, region: str, relation: str, when: datetime, **more: Any
    ) -> None:
        add(
            RequestSubmitted(
                case_id=ids[name],
                model=model,
                region=region,
                requester_relation=relation,
                informational_talk=name == "B",
                follow_up_of=more.get("follow_up_of"),
                submitted_at=when,
            ),
            when,
        )

    def accept(name: str, model: str, region: str, submitted: datetime, when: datetime) -> Any:
        return add(
            RequestReceived(
                case_id=ids[name],
                model=model,
                region=region,
                involved_organisations=["Woonstichting De Kring"] if name == "A" else [],
                submitted_at=submitted,
                accepted_at=when,
            ),
            when,
        )

    def assign(name: str, model: str, when: datetime) -> None:
        add(
            CoordinatorAssigned(
                case_id=ids[name],
                model=model,
                coordinator_ids=["ana"],
                assigned_at=when,
                first_contact_due=when,
            ),
            when,
        )

    def contact(name: str, model: str, when: datetime) -> None:
        add(FirstContactMade(case_id=ids[name], model=model, contacted_at=when), when)

    def distribute(name: str, model: str, when: datetime, agreements: list[str]) -> None:
        add(
            PlanDistributed(
                case_id=ids[name],
                model=model,
                plan_version=1,
                distributed_at=when,
                shared_with_organisations=["Gemeente Zwolle"] if name == "K" else [],
                agreement_ids=agreements,
            ),
            when,
        )

    def outcome(name: str, kind: str, when: datetime, reached: bool, **agreements: str) -> None:
        model = "learning_circle" if name == "K" else "family"
        add(
            FollowUpDue(case_id=ids[name], model=model, timer_id=kind, kind=kind, due_at=when),
            when,
        )
        add(
            OutcomeRecorded(
                case_id=ids[name],
                model=model,
                reached=reached,
                agreements=agreements,
                recorded_at=when,
                timer_id=kind,
                kind=kind,
            ),
            when,
        )

    def held(name: str, model: str, on: date, attended: dict[str, int]) -> None:
        refs = [
            ParticipantRef(
                participant_id=f"{role}{n}",
                role=role,
                organisation="Jeugdzorg Utrecht" if role == "professional" else None,
            )
            for role, count in attended.items()
            for n in range(count)
        ]
        add(
            ConferenceHeld(
                case_id=ids[name],
                model=model,
                held_on=on,
                parts=["information", "plan_making", "presentation"],
                attendance={
                    "information": {**attended, "coordinator": 1},
                    "plan_making": {r: n for r, n in attended.items() if r != "professional"},
                },
                participants=refs,
                attended=attended,
            ),
            datetime.combine(on, datetime.min.time(), tzinfo=UTC).replace(hour=18),
        )

    # A: the whole way, and a follow-up conference.
    submit("A", "family", "Utrecht", "family", at(3, 2))
    received_a = accept("A", "family", "Utrecht", at(3, 2), at(3, 3))
    assign("A", "family", at(3, 3))
    # B, C, D interleave with A, as cases do on a stream.
    submit("B", "family", "Utrecht", "care_worker", at(3, 4))
    accept("B", "family", "Utrecht", at(3, 4), at(3, 5))
    contact("A", "family", at(3, 5))
    submit("M", "family", "Utrecht", "family", at(3, 5))
    accept("M", "family", "Utrecht", at(3, 5), at(3, 6))
    assign("B", "family", at(3, 5))
    contact("B", "family", at(3, 6))
    add(received_a, at(3, 3))  # a re-published copy: counted once
    submit("C", "group", "Amsterdam", "neighbour", at(3, 9))
    accept("C", "group", "Amsterdam", at(3, 9), at(3, 10))
    assign("C", "group", at(3, 10))
    submit("D", "restorative", "Amsterdam", "police", at(3, 10))
    accept("D", "restorative", "Amsterdam", at(3, 10), at(3, 10))
    assign("D", "restorative", at(3, 10))
    contact("D", "restorative", at(3, 11))
    submit("E", "family", "Utrecht", "self", at(3, 11))
    contact("C", "group", at(3, 12))
    submit("F", "learning_circle", "Zwolle", "teacher", at(3, 12))
    add(
        RequestWithdrawnBeforeAcceptance(
            case_id=ids["E"], model="family", region="Utrecht", stage="submitted",
            withdrawn_at=at(3, 12),
        ),
        at(3, 12),
    )  # fmt: skip
    add(
        RequestWithdrawnBeforeAcceptance(
            case_id=ids["F"], model="learning_circle", region="Zwolle", stage="clarified",
            withdrawn_at=at(3, 16),
        ),
        at(3, 16),
    )  # fmt: skip
    submit("G", "family", "Zwolle", "family", at(3, 16))
    accept("G", "family", "Zwolle", at(3, 16), at(3, 17))
    submit("H", "group", "Utrecht", "other", at(3, 18))
    accept("H", "group", "Utrecht", at(3, 18), at(3, 18))
    assign("H", "group", at(3, 19))
    add(
        CaseEndedWithoutConference(
            case_id=ids["C"], model="group", ending="plan_without_meeting", ended_at=at(3, 20)
        ),
        at(3, 20),
    )
    add(RequestWithdrawn(case_id=ids["H"], model="group", withdrawn_at=at(3, 20)), at(3, 20))
    add(
        CaseEndedWithoutConference(
            case_id=ids["H"], model="group", ending="stopped", reason="request_withdrawn",
            ended_at=at(3, 20),
        ),
        at(3, 20),
    )  # fmt: skip
    submit("I", "family", "Utrecht", "family", at(3, 20))
    accept("I", "family", "Utrecht", at(3, 20), at(3, 21))
    assign("I", "family", at(3, 21))
    submit("J", "family", "Utrecht", "family", at(3, 23))
    contact("I", "family", at(3, 24))
    distribute("C", "group", at(3, 25), ["a1"])
    add(
        CaseEndedWithoutConference(
            case_id=ids["D"], model="restorative", ending="stopped",
            reason="network_not_willing", ended_at=at(3, 25),
        ),
        at(3, 25),
    )  # fmt: skip
    held(
        "A",
        "family",
        date(2026, 3, 30),
        {"central_person": 1, "family": 4, "network": 2, "child": 2, "professional": 2},
    )
    add(
        CaseEndedWithoutConference(
            case_id=ids["G"], model="family", ending="stopped", reason="no_coordinator",
            ended_at=at(3, 30),
        ),
        at(3, 30),
    )  # fmt: skip
    held("M", "family", date(2026, 4, 1), {"central_person": 1, "family": 6})
    distribute("A", "family", at(4, 1), ["a1", "a2", "a3"])
    submit("K", "learning_circle", "Zwolle", "teacher", at(4, 2))
    accept("K", "learning_circle", "Zwolle", at(4, 2), at(4, 2))
    assign("K", "learning_circle", at(4, 2))
    contact("K", "learning_circle", at(4, 3))
    # B's conference comes as version 1 of the event (before ``attended``): read as version 2.
    add(
        ConferenceHeldV1(
            case_id=ids["B"],
            model="family",
            held_on=date(2026, 4, 15),
            parts=["information", "plan_making", "presentation"],
            attendance={
                "information": {"central_person": 1, "family": 3, "professional": 1},
                "plan_making": {"central_person": 1, "family": 3},
            },
            participants=[
                ParticipantRef(participant_id="p1", role="central_person"),
                *(ParticipantRef(participant_id=f"f{n}", role="family") for n in range(3)),
                ParticipantRef(
                    participant_id="w1", role="professional", organisation="Jeugdzorg Utrecht"
                ),
            ],
        ),
        at(4, 15),
    )
    distribute("B", "family", at(4, 20), ["a1", "a2"])
    held(
        "K",
        "learning_circle",
        date(2026, 4, 20),
        {"pupil": 1, "teacher": 1, "family": 2, "network": 1},
    )
    distribute("K", "learning_circle", at(4, 22), ["a1"])
    outcome("A", "coordinator_call", at(4, 29), True, a1="kept", a2="partly_kept", a3="not_kept")
    add(
        FollowUpConferenceRequested(
            case_id=ids["A"], model="family", new_case_id=ids["L"], requested_at=at(5, 20)
        ),
        at(5, 20),
    )
    outcome("B", "coordinator_call", at(5, 18), True, a1="kept", a2="kept")
    add(
        RatingsRecorded(
            case_id=ids["B"],
            model="family",
            timer_id="coordinator_call",
            kind="coordinator_call",
            ratings=[Rating(by="professional", meeting=8, plan=8)],
            recorded_at=at(5, 18),
        ),
        at(5, 18),
    )
    submit("L", "family", "Utrecht", "family", at(6, 1), follow_up_of=ids["A"])
    outcome("A", "research", at(7, 1), True, a1="kept", a2="kept", a3="not_kept")
    add(
        RatingsRecorded(
            case_id=ids["A"],
            model="family",
            timer_id="research",
            kind="research",
            ratings=[
                Rating(by="family_network", meeting=9, plan=8),
                Rating(by="family_network", meeting=8, plan=9),
                Rating(by="professional", meeting=7, plan=6),
            ],
            recorded_at=at(7, 1),
        ),
        at(7, 1),
    )
    outcome("K", "research", at(7, 21), False)
    add(
        CaseErased(
            case_id=ids["M"], model="family", reason="requested_by_person", erased_at=at(8, 3)
        ),
        at(8, 3),
    )
    return Scenario(ids=ids, items=items)
