"""Intake: the informational talk (held, when, by whom, what came of it; acceptance waits for it)
and the claim check plans asks for (the questions and minimum requirements of an accepted case,
with stable ids, never before acceptance, never once erased)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from services.intake.app import IntakeApplication
from services.intake.bus import translate
from services.intake.domain import MinimumRequirement, Professional, Stage, TalkOutcome
from shared.claims import ClaimOutcome
from shared.erasure import ErasureReason
from shared.errors import DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import RequestReceived, RequestSubmitted, RequestWithdrawnBeforeAcceptance
from tests.factories import CLARIFICATION, REQUEST_BODY, principal

REQUESTER = principal("ria", "requester")
MANAGER = principal("rm-anna", "regional_manager")
TODAY = date.today()


def clarification(**changes: Any) -> dict[str, Any]:
    from services.intake.domain import Funding

    return {
        "conference_questions": CLARIFICATION["conference_questions"],
        "funding": Funding.model_validate(CLARIFICATION["funding"]),
        "minimum_requirements": [],
    } | changes


def talked(app: IntakeApplication, outcome: TalkOutcome, case_id: uuid.UUID) -> Any:
    return app.record_talk(case_id, MANAGER, held_on=TODAY, held_by=None, outcome=outcome)


def test_acceptance_waits_for_an_informational_talk_that_was_asked_for(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **(REQUEST_BODY | {"informational_talk": True}))
    app.clarify(case_id, MANAGER, **clarification())
    assert app.get(case_id).waits_for_talk
    with pytest.raises(DomainRuleError, match="informational talk was asked for"):
        app.accept(case_id, MANAGER)
    case = talked(app, TalkOutcome.THINK_IT_OVER, case_id)
    assert case.waits_for_talk
    with pytest.raises(DomainRuleError, match="thinking it over"):
        app.accept(case_id, MANAGER)
    case = app.record_talk(
        case_id, MANAGER, held_on=TODAY, held_by="Fatima, coordinator", outcome=TalkOutcome.GO_AHEAD
    )
    assert [t.outcome for t in case.talks] == [TalkOutcome.THINK_IT_OVER, TalkOutcome.GO_AHEAD]
    assert case.talks[0].held_by == "rm-anna" and case.talks[1].held_by == "Fatima, coordinator"
    assert case.talks[1].recorded_by == "rm-anna" and not case.waits_for_talk
    assert app.accept(case_id, MANAGER).stage is Stage.ACCEPTED
    with pytest.raises(DomainRuleError, match="accepted cannot be given an informational talk"):
        talked(app, TalkOutcome.GO_AHEAD, case_id)


def test_a_no_after_the_talk_ends_the_request_before_acceptance(make_app) -> None:
    """Coordination never hears of it (no RequestWithdrawn); analysts count it as a request
    withdrawn before acceptance, at the stage it was at."""
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **(REQUEST_BODY | {"informational_talk": True}))
    case = talked(app, TalkOutcome.NO, case_id)
    assert case.stage is Stage.WITHDRAWN
    assert case.withdrawal_reason and "chose not to go ahead" in case.withdrawal_reason
    published = [e for e in map(translate, app.events.get(case_id)) if e is not None]
    assert [type(e) for e in published] == [RequestSubmitted, RequestWithdrawnBeforeAcceptance]
    withdrawn = published[1]
    assert isinstance(withdrawn, RequestWithdrawnBeforeAcceptance)
    assert withdrawn.stage == "submitted" and withdrawn.region == REQUEST_BODY["region"]


@pytest.mark.parametrize("release", ["declared without region", "with region and stage"])
def test_a_withdrawal_stored_as_either_releases_version_2_reads_as_version_3(
    make_app, tmp_path, release: str
) -> None:
    """Two releases stored a version 2 of Withdrawn: one declared version 1's fields only, the
    other added region and stage. Both read, and a region or stage stored stays as it was."""
    from tests.factories import rewrite_stored_states

    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY)
    app.clarify(case_id, MANAGER, **CLARIFICATION)
    app.withdraw(case_id, "the family found another way", MANAGER)

    def as_version_2(name: str, state: dict[str, Any]) -> None:
        if name != "Withdrawn":
            return
        state["class_version"] = 2
        if release == "declared without region":
            del state["region"], state["stage"]

    rewrite_stored_states(app, tmp_path / "intake.sqlite", as_version_2)
    again = make_app(IntakeApplication)
    [withdrawn] = [e for e in again.events.get(case_id) if type(e).__name__ == "Withdrawn"]
    if release == "declared without region":
        assert (withdrawn.region, withdrawn.stage) == (None, None)
    else:
        assert (withdrawn.region, withdrawn.stage) == (REQUEST_BODY["region"], "clarified")
    assert again.get(case_id).stage is Stage.WITHDRAWN
    [published] = [
        e
        for e in map(translate, again.events.get(case_id))
        if isinstance(e, RequestWithdrawnBeforeAcceptance)
    ]
    assert published.stage == withdrawn.stage


def test_a_talk_is_recorded_by_the_regional_manager_of_the_region_and_not_in_the_future(
    make_app,
) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY)
    with pytest.raises(NotPermittedError, match="recording the informational talk"):
        app.record_talk(
            case_id, REQUESTER, held_on=TODAY, held_by=None, outcome=TalkOutcome.GO_AHEAD
        )
    with pytest.raises(NotPermittedError, match="region Utrecht"):
        app.record_talk(
            case_id,
            principal("rm-z", "regional_manager", regions=("Zeeland",)),
            held_on=TODAY,
            held_by=None,
            outcome=TalkOutcome.GO_AHEAD,
        )
    with pytest.raises(InvalidFieldError) as future:
        app.record_talk(
            case_id,
            MANAGER,
            held_on=TODAY + timedelta(days=2),
            held_by=None,
            outcome=TalkOutcome.GO_AHEAD,
        )
    assert future.value.loc == ("held_on",)


def test_the_claim_answers_questions_and_requirements_with_ids_once_accepted(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY)
    requirement = MinimumRequirement(
        requirement="Living with this man is not a solution.",
        set_by=Professional(
            name="Anna", organisation="Jeugdzorg", role="care worker", subject="jz-anna"
        ),
    )
    app.clarify(
        case_id,
        MANAGER,
        **clarification(
            conference_questions=["Where can Johan grow up safely?", "How does Wim stay in touch?"],
            minimum_requirements=[requirement],
        ),
    )
    assert app.clarification_for_plan(case_id, "plans").outcome is ClaimOutcome.NOT_YET
    assert app.clarification_for_plan(uuid.uuid4(), "plans").outcome is ClaimOutcome.NOT_YET
    app.accept(case_id, MANAGER)
    answer = app.clarification_for_plan(case_id, "plans")
    assert answer.outcome is ClaimOutcome.FOUND and answer.clarification is not None
    assert [(q.question_id, q.text) for q in answer.clarification.questions] == [
        ("q1", "Where can Johan grow up safely?"),
        ("q2", "How does Wim stay in touch?"),
    ]
    [m1] = answer.clarification.requirements
    assert (m1.requirement_id, m1.set_by.subject) == ("m1", "jz-anna")
    reads = app.access_log.entries(case_id)
    assert [(r.subject, r.role, r.what) for r in reads] == [("plans", "system", "clarification")]
    app.erase_case(case_id, ErasureReason.REQUESTED_BY_PERSON, MANAGER)
    assert app.clarification_for_plan(case_id, "plans").outcome is ClaimOutcome.ERASED


def test_a_clarification_keeps_its_funding_and_requirements_as_values(make_app) -> None:
    from services.intake.domain import Funding

    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY)
    requirement = {
        "requirement": "No contact with the neighbour.",
        "set_by": {"name": "Anna", "organisation": "Jeugdzorg", "role": "care worker"},
    }
    app.clarify(case_id, MANAGER, **(CLARIFICATION | {"minimum_requirements": [requirement]}))
    app.close()
    again = make_app(IntakeApplication)  # read back from the store
    case = again.get(case_id)
    assert isinstance(case.funding, Funding) and case.funding.payer == "municipality"
    assert isinstance(case.minimum_requirements[0], MinimumRequirement)
    assert case.minimum_requirements[0].set_by.subject is None


def test_a_clarification_and_acceptance_stored_before_values_replay(make_app, tmp_path) -> None:
    """Version 1: funding and requirements as plain dicts, no two-coordinator fields, an
    acceptance without the fields added since. They read as today's values and defaults."""
    from services.intake.domain import Funding
    from tests.factories import rewrite_stored_states

    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY)
    requirement = {
        "requirement": "No contact with the neighbour.",
        "set_by": {"name": "Anna", "organisation": "Jeugdzorg", "role": "care worker"},
    }
    app.clarify(case_id, MANAGER, **(CLARIFICATION | {"minimum_requirements": [requirement]}))
    app.accept(case_id, MANAGER)

    def plain(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"_type_", "_data_"}:
            return plain(value["_data_"])
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    def as_version_1(name: str, state: dict[str, Any]) -> None:
        if name == "Clarified":
            state["funding"] = plain(state["funding"])
            state["minimum_requirements"] = plain(state["minimum_requirements"])
            for field in ("coordinators_needed", "involved_organisations", "coordinator_wishes"):
                state.pop(field)
        elif name == "Accepted":
            for field in ("has_minimum_requirements", "coordinators_needed", "follow_up_of"):
                state.pop(field)
        else:
            return
        state.pop("class_version")

    rewrite_stored_states(app, tmp_path / "intake.sqlite", as_version_1)
    again = make_app(IntakeApplication)
    case = again.get(case_id)
    assert isinstance(case.funding, Funding) and case.coordinators_needed == 1
    assert case.minimum_requirements[0].set_by.name == "Anna"
    [received] = [
        e for e in map(translate, again.events.get(case_id)) if isinstance(e, RequestReceived)
    ]
    assert received.has_minimum_requirements is False  # as version 1 published it
    answer = again.clarification_for_plan(case_id, "plans")
    assert answer.clarification is not None and answer.clarification.requirements
