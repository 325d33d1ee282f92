"""The events analysts count from, as the services publish them: first contact, attendance over
the whole conference (version 2 of ConferenceHeld, version 1 still read), ratings at a follow-up
contact; and the stored events they come from, read back as an earlier release stored them."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.coordination.app import CoordinationApplication
from services.coordination.bus import translate as coordination_translate
from services.followup.app import FollowupApplication
from services.followup.bus import translate as followup_translate
from services.followup.domain import Rating
from services.intake.app import IntakeApplication
from services.intake.bus import translate as intake_translate
from shared.clock import ManualClock
from shared.envelope import decode, encode
from shared.errors import DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import (
    ConferenceHeld,
    ConferenceHeldV1,
    ConferencePart,
    FirstContactMade,
    ParticipantRef,
    ParticipantRole,
    RatingGroup,
    RatingsRecorded,
    RequestWithdrawnBeforeAcceptance,
)
from shared.identity import Principal
from tests.factories import (
    CLARIFICATION,
    NOW,
    REGIONS,
    REQUEST_BODY,
    coordinator_assigned,
    delivered,
    part,
    plan_distributed,
    principal,
    ready_for_conference,
    request_received,
    rewrite_stored_states,
)

COORDINATOR = principal("ana", "coordinator")
RESEARCHER = principal("r1", "researcher")
REQUESTER = principal("ria", "requester")
MANAGER = principal("rm", "regional_manager", regions=REGIONS)
POSITIONS = itertools.count(1)


def coordination_with_a_case(make_app: Any) -> tuple[CoordinationApplication, uuid.UUID]:
    app = make_app(CoordinationApplication, clock=ManualClock(NOW))
    app.register_coordinator("ana", ["Utrecht"], ["nl"], 5, MANAGER)
    case_id = uuid.uuid4()
    app.process(delivered(request_received(case_id), next(POSITIONS)))
    return app, case_id


def test_the_first_contact_is_published_with_its_time(make_app: Any) -> None:
    app, case_id = coordination_with_a_case(make_app)
    app.record_contact(case_id, COORDINATOR)
    [contact] = [
        e
        for e in map(coordination_translate, app.events.get(case_id))
        if isinstance(e, FirstContactMade)
    ]
    assert (contact.model, contact.contacted_at) == ("family", NOW)


def test_attendance_counts_each_person_once_over_the_parts_they_were_at(make_app: Any) -> None:
    app, case_id = coordination_with_a_case(make_app)
    ids = ready_for_conference(app, case_id, COORDINATOR, NOW.date())
    _, child = app.invite(
        case_id, COORDINATOR, name="Johan", role="child", contact=None, organisation=None,
        language="nl",
    )  # fmt: skip
    app.confirm(case_id, child, True, COORDINATOR)
    family = [ids["central_person"], ids["family"], child]
    parts = {
        "information": part([*family, ids["professional"]], coordinator=True),
        "plan_making": part(family),
        "presentation": part([*family, ids["professional"]], coordinator=True),
    }
    app.hold_conference(case_id, NOW.date(), parts, COORDINATOR)
    [held] = [
        e
        for e in map(coordination_translate, app.events.get(case_id))
        if isinstance(e, ConferenceHeld)
    ]
    # Four people, each at two or three parts; the coordinator is not one of them.
    assert held.attended == {
        ParticipantRole.CENTRAL_PERSON: 1,
        ParticipantRole.FAMILY: 1,
        ParticipantRole.CHILD: 1,
        ParticipantRole.PROFESSIONAL: 1,
    }
    assert held.attendance[ConferencePart.INFORMATION]["coordinator"] == 1


def test_version_1_of_conference_held_is_read_as_version_2() -> None:
    case_id = uuid.uuid4()
    old = ConferenceHeldV1(
        case_id=case_id,
        model="family",
        held_on=date(2026, 4, 1),
        parts=[ConferencePart.INFORMATION, ConferencePart.PLAN_MAKING],
        attendance={
            ConferencePart.INFORMATION: {"central_person": 1, "family": 3, "professional": 2},
            ConferencePart.PLAN_MAKING: {"central_person": 1, "family": 3, "child": 1},
        },
        participants=[
            ParticipantRef(participant_id="p1", role="central_person"),
            *(ParticipantRef(participant_id=f"f{i}", role="family") for i in range(3)),
            ParticipantRef(participant_id="k1", role="child"),
            ParticipantRef(participant_id="w1", role="professional", organisation="Jeugdzorg"),
            ParticipantRef(participant_id="w2", role="professional", organisation="Politie"),
        ],
    )
    raw = encode(old, origin="coordination", position=3, time=NOW)
    assert json.loads(raw)["type"] == "nl.kring.conference-held.v1"
    read = decode(raw).event
    assert isinstance(read, ConferenceHeld)
    assert read.type_name() == "nl.kring.conference-held.v2"
    assert read.attended == {"central_person": 1, "family": 3, "child": 1, "professional": 2}
    assert read.participants == old.participants


def test_version_1_without_participants_counts_the_most_present_in_one_part() -> None:
    old = ConferenceHeldV1(
        case_id=uuid.uuid4(),
        model="group",
        held_on=date(2026, 4, 1),
        parts=[ConferencePart.INFORMATION, ConferencePart.PLAN_MAKING],
        attendance={
            ConferencePart.INFORMATION: {"network": 6, "coordinator": 2},
            ConferencePart.PLAN_MAKING: {"network": 8, "coordinator": 2, "interpreter": 1},
        },
    )
    assert decode(encode(old, origin="coordination", position=4, time=NOW)).event.attended == {
        "network": 8
    }


def test_a_withdrawal_and_a_first_contact_stored_by_an_earlier_release_still_read(
    make_app: Any, tmp_path: Path
) -> None:
    intake = make_app(IntakeApplication)
    early = intake.submit(REQUESTER, **REQUEST_BODY)
    intake.withdraw(early, "solved", REQUESTER)
    late = intake.submit(REQUESTER, **REQUEST_BODY)
    intake.clarify(late, MANAGER, **CLARIFICATION)
    intake.accept(late, MANAGER)
    intake.withdraw(late, "moved", MANAGER)

    def as_version_1(name: str, state: dict[str, Any]) -> None:
        if name == "Withdrawn":
            for field in ("class_version", "region", "stage"):
                state.pop(field)
            if state["was_accepted"] is False:
                state.pop("was_accepted")  # the earliest form, before it existed
                state.pop("model")

    rewrite_stored_states(intake, tmp_path / "intake.sqlite", as_version_1)
    intake.close()
    again = make_app(IntakeApplication)
    assert again.get(early).stage == "withdrawn" and again.get(late).stage == "withdrawn"
    # The earliest form has no model: nothing can be published under it.
    assert [e for e in map(intake_translate, again.events.get(early)) if e is not None][1:] == []
    [*_, withdrawn] = [e for e in map(intake_translate, again.events.get(late)) if e is not None]
    assert withdrawn.name == "request-withdrawn"

    coordination, case_id = coordination_with_a_case(make_app)
    coordination.record_contact(case_id, COORDINATOR)

    def contact_as_version_1(name: str, state: dict[str, Any]) -> None:
        if name == "FirstContactMade":
            state.pop("class_version")
            state.pop("model")

    rewrite_stored_states(coordination, tmp_path / "coordination.sqlite", contact_as_version_1)
    coordination.close()
    again_coordination = make_app(CoordinationApplication, clock=ManualClock(NOW))
    assert again_coordination.get(case_id).contacted_at == NOW
    published = map(coordination_translate, again_coordination.events.get(case_id))
    assert not any(isinstance(e, FirstContactMade) for e in published)


def test_a_withdrawal_before_acceptance_says_region_and_stage_not_the_reason(
    make_app: Any,
) -> None:
    intake = make_app(IntakeApplication)
    case_id = intake.submit(REQUESTER, **(REQUEST_BODY | {"region": "Zeeland"}))
    intake.withdraw(case_id, "Johan lives with his aunt now", REQUESTER)
    [*_, withdrawn] = [e for e in map(intake_translate, intake.events.get(case_id)) if e]
    assert isinstance(withdrawn, RequestWithdrawnBeforeAcceptance)
    assert (withdrawn.region, withdrawn.stage) == ("Zeeland", "submitted")
    assert "Johan" not in withdrawn.model_dump_json()


#: The coordinator ``coordinator_assigned`` assigns, and a regional manager of another region.
CASE_COORDINATOR = principal("c1", "coordinator")
ELSEWHERE = principal("rm-texel", "regional_manager", regions=("Texel",))


class FollowUpCase:
    """A follow-up in Utrecht whose coordinator is c1 (as followup hears both before the plan)."""

    def __init__(self, make_app: Any) -> None:
        self.clock = ManualClock(NOW)
        self.app: FollowupApplication = make_app(FollowupApplication, clock=self.clock)
        self.id = uuid.uuid4()
        self.app.process(delivered(request_received(self.id), next(POSITIONS)))
        self.app.process(delivered(coordinator_assigned(self.id), next(POSITIONS)))
        event = plan_distributed(self.id, at=NOW, agreement_ids=["a1"])
        self.app.process(delivered(event, next(POSITIONS)))

    def rate(self, timer_id: str, *ratings: Rating, actor: Principal = RESEARCHER) -> None:
        self.app.record_ratings(self.id, timer_id, list(ratings), actor)

    def published(self) -> list[RatingsRecorded]:
        return [
            e
            for e in map(followup_translate, self.app.events.get(self.id))
            if isinstance(e, RatingsRecorded)
        ]


def test_ratings_are_recorded_once_per_contact_that_came_due_and_published_by_group(
    make_app: Any,
) -> None:
    case = FollowUpCase(make_app)
    with pytest.raises(DomainRuleError, match="not due yet"):
        case.rate("research", Rating("family_network", 8, 9))
    case.clock.advance(timedelta(days=91))
    # Who may record a contact's outcome records its ratings; anyone else is refused by role.
    for nobody in (CASE_COORDINATOR, ELSEWHERE):
        with pytest.raises(NotPermittedError, match="research contact needs the role researcher"):
            case.rate("research", Rating("family_network", 8, 9), actor=nobody)
    for nobody in (RESEARCHER, principal("c2", "coordinator"), ELSEWHERE):
        with pytest.raises(NotPermittedError, match="ratings given at the coordinator's call"):
            case.rate("coordinator_call", Rating("family_network", 8, 9), actor=nobody)
    with pytest.raises(NotPermittedError, match="ratings given at a contact needs the role"):
        case.rate("research", Rating("family_network", 8, 9), actor=REQUESTER)
    with pytest.raises(InvalidFieldError, match="unknown timer"):
        case.rate("interview", Rating("family_network", 8, 9))
    case.rate(
        "research",
        Rating("family_network", 8, 9),
        Rating("family_network", 7, None),
        Rating("professional", 6, 7),
    )
    with pytest.raises(DomainRuleError, match="already recorded"):
        case.rate("research", Rating("professional", 10, 10))
    [published] = case.published()
    assert (published.timer_id, published.kind) == ("research", "research")
    assert [(r.by, r.meeting, r.plan) for r in published.ratings] == [
        (RatingGroup.FAMILY_NETWORK, 8, 9),
        (RatingGroup.FAMILY_NETWORK, 7, None),
        (RatingGroup.PROFESSIONAL, 6, 7),
    ]
    # The coordinator's call, due too by now, takes its own once, from the case's coordinator.
    case.rate("coordinator_call", Rating("professional", 5, 5), actor=CASE_COORDINATOR)
    assert [p.timer_id for p in case.published()] == ["research", "coordinator_call"]
    # The marks are read back after a restart (value objects through the store).
    assert case.app.get(case.id).ratings["research"][2] == Rating("professional", 6, 7)
