"""The rules of each service's domain, through its application (a real SQLite store)."""

import uuid
from datetime import date, timedelta

import pytest

from services.coordination.app import CoordinationApplication
from services.coordination.bus import translate as coordination_translate
from services.coordination.domain import Stage as CoordinationStage
from services.followup.app import FollowupApplication
from services.followup.domain import Contact, Schedule
from services.intake.app import IntakeApplication
from services.intake.bus import translate
from services.intake.domain import Stage as IntakeStage
from services.plans.app import PlansApplication
from shared.clock import ManualClock
from shared.errors import CaseNotFoundError, DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import RequestReceived
from tests.factories import (
    CLARIFICATION,
    REGIONS,
    REQUEST_BODY,
    acted,
    conference_held,
    coordinator_assigned,
    delivered,
    part,
    plan_distributed,
    principal,
    ready_for_conference,
    request_received,
)

REQUESTER = principal("ria", "requester")
MANAGER = principal("rm", "regional_manager", regions=REGIONS)
COORDINATOR = principal("c1", "coordinator")
FAMILY_TIME = {"plan_making": part([], coordinator=False)}


def test_a_request_is_accepted_only_once_clarified(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY, informational_talk=False)
    with pytest.raises(DomainRuleError, match="clarified"):
        app.accept(case_id, MANAGER)
    with pytest.raises(DomainRuleError, match="at least one conference question"):
        app.clarify(case_id, MANAGER, **(CLARIFICATION | {"conference_questions": []}))
    app.clarify(case_id, MANAGER, **CLARIFICATION)
    revised = CLARIFICATION | {"conference_questions": ["How can Johan go to school again?"]}
    assert app.clarify(case_id, MANAGER, **revised).conference_questions == [
        "How can Johan go to school again?"
    ]
    assert app.accept(case_id, MANAGER).stage is IntakeStage.ACCEPTED


def test_received_says_whether_a_safety_minimum_was_set(make_app) -> None:
    app = make_app(IntakeApplication)
    requirement = {
        "requirement": "Living with this man is not a solution.",
        "set_by": {"name": "J. de Vries", "organisation": "Jeugdzorg", "role": "guardian"},
    }
    flags = []
    for requirements in ([], [requirement]):
        case_id = app.submit(REQUESTER, **REQUEST_BODY, informational_talk=False)
        app.clarify(case_id, MANAGER, **(CLARIFICATION | {"minimum_requirements": requirements}))
        app.accept(case_id, MANAGER)
        published = [translate(e) for e in app.events.get(case_id)]
        flags += [e.has_minimum_requirements for e in published if isinstance(e, RequestReceived)]
    assert flags == [False, True]


def test_an_accepted_request_cannot_be_accepted_or_clarified_again(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY, informational_talk=False)
    app.clarify(case_id, MANAGER, **CLARIFICATION)
    assert app.accept(case_id, MANAGER).stage is IntakeStage.ACCEPTED
    with pytest.raises(DomainRuleError, match="accepted"):
        app.accept(case_id, MANAGER)
    with pytest.raises(DomainRuleError, match="accepted"):
        app.clarify(case_id, MANAGER, **CLARIFICATION)


def test_a_withdrawn_request_cannot_be_accepted(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY, informational_talk=False)
    app.withdraw(case_id, "the family solved it", REQUESTER)
    with pytest.raises(DomainRuleError, match="withdrawn"):
        app.accept(case_id, MANAGER)


def test_every_stored_event_keeps_its_actor(make_app) -> None:
    app = make_app(IntakeApplication)
    case_id = app.submit(REQUESTER, **REQUEST_BODY, informational_talk=False)
    app.clarify(case_id, MANAGER, **CLARIFICATION)
    app.accept(case_id, MANAGER)
    actors = [entry.actor for entry in app.history(case_id)]
    assert actors == [acted(REQUESTER), acted(MANAGER), acted(MANAGER)]


def test_an_unknown_case_is_not_found(make_app) -> None:
    app = make_app(IntakeApplication)
    with pytest.raises(CaseNotFoundError):
        app.get(uuid.uuid4())
    with pytest.raises(CaseNotFoundError):
        app.history(uuid.uuid4())


def test_the_least_loaded_coordinator_in_region_and_language_is_chosen(make_app) -> None:
    clock = ManualClock()
    app = make_app(CoordinationApplication, clock=clock, first_contact_days=3)
    app.register_coordinator("busy", ["Utrecht"], ["nl"], 5, MANAGER)
    app.register_coordinator("free", ["Utrecht"], ["nl", "tr"], 5, MANAGER)
    app.register_coordinator("elsewhere", ["Zwolle"], ["nl"], 5, MANAGER)
    app.process(delivered(request_received(), 1))  # goes to "busy" or "free": both at 0
    second = request_received()
    app.process(delivered(second, 2))
    loads = app.pool().load
    assert loads["busy"] == 1 and loads["free"] == 1 and loads["elsewhere"] == 0
    case = app.get(second.case_id)
    assert case.first_contact_due == clock.now() + timedelta(days=3)
    turkish = request_received(languages=["tr"])
    app.process(delivered(turkish, 3))
    assert app.get(turkish.case_id).coordinator_ids == ["free"]


def test_nobody_fits_so_the_case_waits_saying_why_until_assigned_by_hand(make_app) -> None:
    app = make_app(CoordinationApplication)
    app.register_coordinator("c1", ["Zwolle"], ["nl"], 5, MANAGER)
    event = request_received()
    app.process(delivered(event, 1))
    case = app.get(event.case_id)
    assert case.stage is CoordinationStage.WAITING
    assert "Utrecht" in (case.waiting_reason or "")
    with pytest.raises(DomainRuleError, match="a conference needs an assigned coordinator"):
        app.hold_conference(event.case_id, date(2026, 4, 1), FAMILY_TIME, MANAGER)
    with pytest.raises(InvalidFieldError, match="not in the pool"):
        app.assign_by_hand(event.case_id, "nobody", "try", MANAGER)
    assigned = app.assign_by_hand(event.case_id, "c1", "travels to Utrecht", MANAGER)
    assert assigned.stage is CoordinationStage.ASSIGNED
    assert app.pool().load["c1"] == 1


def test_a_conference_is_recorded_once(make_app) -> None:
    clock = ManualClock()
    app = make_app(CoordinationApplication, clock=clock)
    app.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    event = request_received()
    app.process(delivered(event, 1))
    ids = ready_for_conference(app, event.case_id, COORDINATOR, app.today())
    held = {"plan_making": part([ids["central_person"], ids["family"]])}
    app.hold_conference(event.case_id, app.today(), held, COORDINATOR)
    with pytest.raises(DomainRuleError, match="already"):
        app.hold_conference(event.case_id, app.today(), held, COORDINATOR)


def test_plans_accepts_the_conference_before_the_coordinator(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = uuid.uuid4()
    app.process(delivered(conference_held(case_id), 2))
    app.process(delivered(coordinator_assigned(case_id), 1))
    plan = app.get(case_id)
    assert plan.coordinator_ids == ["c1"] and plan.held_on == date(2026, 4, 1)


def test_a_follow_up_fires_once_when_due_and_never_again_after_a_restart(make_app) -> None:
    clock = ManualClock()
    research_only = Schedule(default=(Contact("research", 91),))
    delay = timedelta(days=91)
    app = make_app(FollowupApplication, clock=clock, schedule=research_only)
    case_id = uuid.uuid4()
    app.process(delivered(plan_distributed(case_id, at=clock.now()), 1))
    assert app.fire_due_timers() == 0
    clock.advance(delay - timedelta(seconds=1))
    assert app.fire_due_timers() == 0
    clock.advance(timedelta(seconds=1))
    assert app.fire_due_timers() == 1
    assert app.fire_due_timers() == 0
    app.close()
    restarted = make_app(FollowupApplication, clock=clock, schedule=research_only)
    clock.advance(timedelta(days=365))
    assert restarted.fire_due_timers() == 0
    assert [e.type for e in restarted.history(case_id)] == ["Opened", "Scheduled", "Due"]


def test_a_timer_scheduled_before_a_restart_fires_after_it(make_app) -> None:
    clock = ManualClock()
    one_day = Schedule(default=(Contact("research", 1),))
    app = make_app(FollowupApplication, clock=clock, schedule=one_day)
    case_id = uuid.uuid4()
    app.process(delivered(plan_distributed(case_id, at=clock.now()), 1))
    app.close()
    restarted = make_app(FollowupApplication, clock=clock, schedule=one_day)
    clock.advance(timedelta(days=2))
    assert restarted.fire_due_timers() == 1


def test_a_missed_first_contact_shows_as_overdue_until_contact_is_made(make_app) -> None:
    clock = ManualClock()
    app = make_app(CoordinationApplication, clock=clock, first_contact_days=3)
    app.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    reached, missed = request_received(), request_received()
    elsewhere = request_received(region="Zwolle")
    for position, event in enumerate((reached, missed, elsewhere), start=1):
        app.process(delivered(event, position))
    assert app.views.cases(MANAGER, overdue=True) == []
    app.record_contact(reached.case_id, COORDINATOR)
    with pytest.raises(DomainRuleError, match="already recorded"):
        app.record_contact(reached.case_id, COORDINATOR)
    with pytest.raises(NotPermittedError, match=r"assigned to this case \(none is yet\)"):
        app.record_contact(elsewhere.case_id, COORDINATOR)
    with pytest.raises(DomainRuleError, match="once a coordinator is assigned"):
        app.record_contact(elsewhere.case_id, MANAGER)
    clock.advance(timedelta(days=3, seconds=1))
    assert [c["case_id"] for c in app.views.cases(MANAGER, overdue=True)] == [missed.case_id]
    assert {c["case_id"] for c in app.views.cases(MANAGER, overdue=False)} == {
        reached.case_id,
        elsewhere.case_id,
    }
    assert [c["case_id"] for c in app.views.cases(region="Zwolle")] == [elsewhere.case_id]
    waiting = app.views.cases(stage="waiting_for_coordinator")
    assert [c["case_id"] for c in waiting] == [elsewhere.case_id]
    assert {c["case_id"] for c in app.views.cases(coordinator_id="c1")} == {
        reached.case_id,
        missed.case_id,
    }
    app.record_contact(missed.case_id, COORDINATOR)
    assert app.views.cases(MANAGER, overdue=True) == []


def test_a_case_stopped_in_preparation_keeps_its_reason_and_frees_the_coordinator(
    make_app,
) -> None:
    app = make_app(CoordinationApplication)
    app.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    event = request_received()
    app.process(delivered(event, 1))
    with pytest.raises(DomainRuleError, match="needs a reason"):
        app.end_without_conference(event.case_id, "stopped", None, "", COORDINATOR)
    case = app.end_without_conference(
        event.case_id, "stopped", "network_not_willing", "nobody came", COORDINATOR
    )
    assert case.stage is CoordinationStage.STOPPED
    assert app.pool().load["c1"] == 0
    with pytest.raises(DomainRuleError, match="has ended"):
        app.hold_conference(event.case_id, date(2026, 4, 1), FAMILY_TIME, COORDINATOR)
    with pytest.raises(DomainRuleError, match="has ended"):
        app.end_without_conference(event.case_id, "stopped", "other", "", COORDINATOR)
    published = [coordination_translate(e) for e in app.events.get(event.case_id)]
    endings = [e for e in published if e is not None and e.name == "case-ended-without-conference"]
    assert [(e.ending.value, e.reason) for e in endings] == [("stopped", "network_not_willing")]


def test_a_plan_without_a_meeting_needs_a_coordinator(make_app) -> None:
    app = make_app(CoordinationApplication)
    event = request_received()
    app.process(delivered(event, 1))  # nobody in the pool: the case waits
    with pytest.raises(DomainRuleError, match="needs an assigned coordinator"):
        app.end_without_conference(event.case_id, "plan_without_meeting", None, "", MANAGER)
