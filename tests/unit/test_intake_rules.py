"""Intake's rules beyond the basic flow: who a request is about, two coordinators, withdrawal
after acceptance, safe retries, follow-up conferences, the list."""

import uuid
from datetime import UTC, datetime

import pytest

from services.intake.app import IdempotencyKeyReusedError, IntakeApplication
from services.intake.bus import translate
from services.intake.domain import Stage
from shared.errors import DomainRuleError
from shared.events import (
    FollowUpConferenceRequested,
    OpenRequestStage,
    RequestReceived,
    RequestSubmitted,
    RequestWithdrawn,
    RequestWithdrawnBeforeAcceptance,
)
from tests.factories import CLARIFICATION, REGIONS, REQUEST_BODY, delivered, principal

REQUESTER = principal("ria", "requester")
MANAGER = principal("rm", "regional_manager", regions=REGIONS)
GROUP_REQUEST = REQUEST_BODY | {
    "model": "group",
    "central_persons": [],
    "central_group": "Residents of the Dorpsstraat",
}


def published(app: IntakeApplication, case_id: uuid.UUID) -> list[object]:
    """What intake publishes about the case after its submission."""
    submitted, *after = [e for e in map(translate, app.events.get(case_id)) if e is not None]
    assert isinstance(submitted, RequestSubmitted)
    return after


def accepted(app: IntakeApplication, body: dict[str, object], **clarification: object) -> uuid.UUID:
    case_id = app.submit(REQUESTER, **body)
    app.clarify(case_id, MANAGER, **(CLARIFICATION | clarification))
    app.accept(case_id, MANAGER)
    return case_id


def test_received_carries_what_coordination_needs_to_choose(make_app) -> None:
    app = make_app(IntakeApplication)
    wishes = {"gender": "f", "background": None, "culture": "moluccan"}
    case_id = accepted(
        app,
        GROUP_REQUEST | {"coordinator_wishes": wishes},
        coordinators_needed=2,
        involved_organisations=["Woonstichting"],
    )
    (received,) = published(app, case_id)
    assert isinstance(received, RequestReceived)
    assert received.coordinators_needed == 2
    assert received.coordinator_wishes is not None
    assert received.coordinator_wishes.culture == "moluccan"
    assert received.involved_organisations == ["Woonstichting"]
    assert received.follow_up_of is None


def test_two_coordinators_are_for_a_group_conference_only(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY)
    with pytest.raises(DomainRuleError, match="two coordinators are for a group conference"):
        app.clarify(case_id, MANAGER, **(CLARIFICATION | {"coordinators_needed": 2}))
    assert app.get(case_id).stage is Stage.SUBMITTED


def test_a_withdrawal_before_acceptance_is_a_type_coordination_does_not_follow(make_app) -> None:
    app = make_app(IntakeApplication)
    early = app.submit(REQUESTER, **REQUEST_BODY)
    app.withdraw(early, "the family solved it", REQUESTER)
    (withdrawn,) = published(app, early)
    assert isinstance(withdrawn, RequestWithdrawnBeforeAcceptance)
    assert (withdrawn.region, withdrawn.stage) == ("Utrecht", OpenRequestStage.SUBMITTED)
    assert "solved" not in withdrawn.model_dump_json()

    clarified = app.submit(REQUESTER, **REQUEST_BODY)
    app.clarify(clarified, MANAGER, **CLARIFICATION)
    app.withdraw(clarified, "the family solved it", REQUESTER)
    (withdrawn,) = published(app, clarified)
    assert isinstance(withdrawn, RequestWithdrawnBeforeAcceptance)
    assert withdrawn.stage is OpenRequestStage.CLARIFIED


def test_a_withdrawal_after_acceptance_is_published_for_coordination(make_app) -> None:
    app = make_app(IntakeApplication)

    late = accepted(app, REQUEST_BODY)
    app.withdraw(late, "the family moved away", MANAGER)
    assert [type(e) for e in published(app, late)] == [RequestReceived, RequestWithdrawn]
    assert app.get(late).stage is Stage.WITHDRAWN
    with pytest.raises(DomainRuleError, match="already withdrawn"):
        app.withdraw(late, "again", MANAGER)
    # The reason stays in intake's store: the event says only that and when.
    assert "moved" not in published(app, late)[1].model_dump_json()


def test_a_retried_submission_with_the_same_key_finds_its_case(make_app) -> None:
    app = make_app(IntakeApplication)
    first = app.submit(REQUESTER, "key-1", **REQUEST_BODY)
    assert app.submit(REQUESTER, "key-1", **REQUEST_BODY) == first
    assert app.submit(REQUESTER, "key-2", **REQUEST_BODY) != first
    other_actor = principal("someone-else", "requester")
    assert app.submit(other_actor, "key-1", **REQUEST_BODY) != first
    with pytest.raises(IdempotencyKeyReusedError):
        app.submit(REQUESTER, "key-1", **(REQUEST_BODY | {"region": "Zeeland"}))
    assert len(app.views.cases(MANAGER)) == 3


def test_a_follow_up_conference_opens_a_linked_case_once(make_app) -> None:
    app = make_app(IntakeApplication)
    original = accepted(app, REQUEST_BODY)
    new_case = uuid.uuid4()
    requested = FollowUpConferenceRequested(
        case_id=original,
        model="family",
        new_case_id=new_case,
        requested_at=datetime(2026, 9, 1, tzinfo=UTC),
    )
    assert app.process(delivered(requested, position=7))
    assert not app.process(delivered(requested, position=7))  # redelivered: nothing twice

    follow_up = app.get(new_case)
    assert follow_up.follow_up_of == original
    assert follow_up.stage is Stage.SUBMITTED  # the regional manager clarifies it afresh
    assert follow_up.central_persons == REQUEST_BODY["central_persons"]
    assert app.get(original).follow_ups == [new_case]
    assert [e.type for e in app.history(original)][-1] == "FollowUpOpened"
    assert [e.type for e in app.history(new_case)] == ["Submitted"]
    (submitted, *_) = [e for e in map(translate, app.events.get(new_case)) if e is not None]
    assert isinstance(submitted, RequestSubmitted)
    assert (submitted.follow_up_of, submitted.requester_relation) == (original, "family")

    app.clarify(new_case, MANAGER, **CLARIFICATION)
    app.accept(new_case, MANAGER)
    (received,) = published(app, new_case)
    assert isinstance(received, RequestReceived)
    assert received.follow_up_of == original


def test_the_list_filters_by_stage_model_and_region(make_app) -> None:
    app = make_app(IntakeApplication)
    family = accepted(app, REQUEST_BODY)
    group = app.submit(REQUESTER, **(GROUP_REQUEST | {"region": "Zeeland"}))
    assert [r["case_id"] for r in app.views.cases(MANAGER)] == [family, group]
    assert [r["case_id"] for r in app.views.cases(MANAGER, stage=Stage.ACCEPTED)] == [family]
    assert [r["case_id"] for r in app.views.cases(MANAGER, model="group")] == [group]
    assert [r["case_id"] for r in app.views.cases(MANAGER, region="zeeland")] == [group]
    app.withdraw(group, "no longer needed", REQUESTER)
    assert app.views.cases(MANAGER, model="group")[0]["stage"] == Stage.WITHDRAWN
