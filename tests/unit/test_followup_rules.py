"""Follow-up's rules, through its application on a real SQLite store: the model's contact
schedule and the next-meeting reminder, timers that fire once at their time across restarts and
racing workers, revised plans, outcomes, the stages and the list, follow-up conferences."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent

from services.followup.app import IDEMPOTENT_FOLLOW_UP, FollowupApplication
from services.followup.bus import translate
from services.followup.domain import (
    NEXT_MEETING,
    REMINDER,
    Contact,
    FollowUp,
    Schedule,
    Stage,
)
from shared.actor import Actor
from shared.clock import ManualClock
from shared.errors import CaseNotFoundError, DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import (
    FollowUpConferenceRequested,
    FollowUpDue,
    OutcomeRecorded,
    PlanRevisionRequested,
)
from tests.factories import (
    REGIONS,
    acted,
    coordinator_assigned,
    delivered,
    plan_distributed,
    principal,
    request_received,
)

RESEARCHER = principal("r1", "researcher")
COORDINATOR = principal("c1", "coordinator")
MANAGER = principal("rm", "regional_manager", regions=REGIONS)
FAMILY = principal("herman", "participant")
SYSTEM = {"id": "followup", "role": "system"}
DAY = timedelta(days=1)
#: Positions on the bus, unique across the module so cases in one store never share one.
POSITIONS = itertools.count(1)


class Case:
    """One case's follow-up in one application, with the test's own positions on the bus."""

    def __init__(self, app: FollowupApplication, clock: ManualClock) -> None:
        self.app, self.clock = app, clock
        self.id = uuid.uuid4()
        self.positions: list[int] = []

    def distribute(self, **plan: Any) -> bool:
        if not self.positions:
            # What followup hears before a plan: the case's region and its coordinator.
            self.app.process(delivered(request_received(self.id), next(POSITIONS)))
            self.app.process(delivered(coordinator_assigned(self.id), next(POSITIONS)))
        plan.setdefault("agreement_ids", ["a1", "a2"])
        event = plan_distributed(self.id, at=plan.pop("at", self.clock.now()), **plan)
        self.positions.append(next(POSITIONS))
        return self.app.process(delivered(event, self.positions[-1]))

    def timers(self) -> dict[str, dict[str, Any]]:
        return self.app.get(self.id).timers

    def types(self) -> list[str]:
        return [entry.type for entry in self.app.history(self.id)]

    def record(self, timer_id: str, actor: Actor = RESEARCHER, **outcome: Any) -> FollowUp:
        values = {"reached": True, "agreements": {}, "notes": ""} | outcome
        return self.app.record_outcome(
            self.id,
            timer_id,
            values["reached"],
            values["agreements"],
            values["notes"],
            actor,
        )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(make_app, clock: ManualClock) -> FollowupApplication:
    return make_app(FollowupApplication, clock=clock)


@pytest.fixture
def case(app: FollowupApplication, clock: ManualClock) -> Case:
    return Case(app, clock)


# -- the schedule --------------------------------------------------------------------------
def test_by_default_the_coordinator_calls_after_four_weeks_and_research_follows_after_three_months(
    case: Case, clock: ManualClock
) -> None:
    case.distribute()
    timers = case.timers()
    assert {t: d.kind for t, d in timers.items()} == {
        "coordinator_call": "coordinator_call",
        "research": "research",
    }
    assert timers["coordinator_call"].due_at == clock.now() + 28 * DAY
    assert timers["research"].due_at == clock.now() + 91 * DAY
    follow_up = case.app.get(case.id)
    assert follow_up.stage is Stage.SCHEDULED
    assert follow_up.agreement_ids == ["a1", "a2"]
    assert case.types() == ["Opened", "Scheduled", "Scheduled"]


def test_each_model_has_its_own_list_and_a_repeated_kind_gets_numbered_ids(
    make_app, clock: ManualClock
) -> None:
    twice = (Contact("research", 365), Contact("research", 180))
    schedule = Schedule(contacts={"restorative": twice})
    app = make_app(FollowupApplication, clock=clock, schedule=schedule)
    restorative, family = Case(app, clock), Case(app, clock)
    restorative.distribute(model="restorative")
    family.distribute(model="family")
    timers = restorative.timers()
    assert list(timers) == ["research", "research-2"]
    assert timers["research"].due_at == clock.now() + 180 * DAY
    assert timers["research-2"].due_at == clock.now() + 365 * DAY
    assert list(family.timers()) == ["coordinator_call", "research"]


def test_a_schedule_day_lasts_seconds_per_day(make_app, clock: ManualClock) -> None:
    app = make_app(FollowupApplication, clock=clock, schedule=Schedule(seconds_per_day=0.2))
    case = Case(app, clock)
    case.distribute()
    timers = case.timers()
    assert timers["coordinator_call"].due_at == clock.now() + timedelta(seconds=5.6)
    assert timers["research"].due_at == clock.now() + timedelta(seconds=18.2)


def test_the_reminder_is_due_a_week_before_the_next_meeting_at_nine_in_amsterdam(
    make_app, clock: ManualClock
) -> None:
    app = make_app(FollowupApplication, clock=clock)
    summer, winter = Case(app, clock), Case(app, clock)
    summer.distribute(next_meeting_on=date(2026, 4, 7))  # summer time: UTC+2
    winter.distribute(next_meeting_on=date(2026, 2, 10))  # winter time: UTC+1
    assert summer.timers()[REMINDER].due_at == datetime(2026, 3, 31, 7, 0, tzinfo=UTC)
    assert winter.timers()[REMINDER].due_at == datetime(2026, 2, 3, 8, 0, tzinfo=UTC)

    compressed = make_app(FollowupApplication, clock=clock, schedule=Schedule(seconds_per_day=0.2))
    fast = Case(compressed, clock)
    fast.distribute(next_meeting_on=date(2026, 4, 7))
    moment = datetime(2026, 3, 31, 7, 0, tzinfo=UTC)
    expected = clock.now() + (moment - clock.now()) * (0.2 / 86_400)
    assert fast.timers()[REMINDER].due_at == expected


def test_a_reminder_whose_moment_passed_is_due_at_once_and_a_past_meeting_gets_none(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 1, 8))  # a week before was 1 January
    assert case.timers()[REMINDER].due_at == clock.now()
    assert app.fire_due_timers() == 1
    assert case.timers()[REMINDER].fired_at == clock.now()

    past = Case(app, clock)
    past.distribute(next_meeting_on=date(2026, 1, 4))
    assert REMINDER not in past.timers()


# -- firing ----------------------------------------------------------------------------------
def test_each_timer_fires_once_at_its_time_and_is_published_as_follow_up_due(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 3, 1))
    published: list[tuple[str, str]] = []
    for due_at in sorted(t.due_at for t in case.timers().values()):
        clock.advance(due_at - clock.now() - timedelta(seconds=1))
        assert app.fire_due_timers() == 0
        clock.advance(timedelta(seconds=1))
        assert app.fire_due_timers() == 1
        assert app.fire_due_timers() == 0
    for event in app.events.get(case.id):
        integration = translate(event)
        if isinstance(integration, FollowUpDue):
            published.append((integration.timer_id, integration.kind))
    assert published == [
        ("coordinator_call", "coordinator_call"),
        (REMINDER, REMINDER),
        (NEXT_MEETING, NEXT_MEETING),  # the family's own meeting, on its day
        ("research", "research"),
    ]


def test_two_workers_on_one_store_fire_a_timer_once(make_app, clock: ManualClock) -> None:
    first = make_app(FollowupApplication, clock=clock)
    second = make_app(FollowupApplication, clock=clock)
    case = Case(first, clock)
    case.distribute()
    clock.advance(28 * DAY)
    mine, theirs = first.get(case.id), second.get(case.id)
    assert mine.fire_due(at=clock.now(), actor=SYSTEM) == ["coordinator_call"]
    assert theirs.fire_due(at=clock.now(), actor=SYSTEM) == ["coordinator_call"]
    first.save(mine)
    with pytest.raises(IntegrityError):
        second.save(theirs)
    assert second.fire_due_timers() == 0
    assert case.types().count("Due") == 1


def test_a_restart_neither_loses_nor_doubles_a_timer_or_an_outcome(
    make_app, clock: ManualClock
) -> None:
    app = make_app(FollowupApplication, clock=clock)
    case = Case(app, clock)
    case.distribute()
    clock.advance(28 * DAY)
    assert app.fire_due_timers() == 1
    case.record("coordinator_call", COORDINATOR, agreements={"a1": "kept"})
    app.close()

    restarted = make_app(FollowupApplication, clock=clock)
    case.app = restarted
    assert restarted.fire_due_timers() == 0
    redelivered = plan_distributed(case.id, at=clock.now(), agreement_ids=["a1", "a2"])
    assert restarted.process(delivered(redelivered, case.positions[0])) is False
    clock.advance(63 * DAY)
    assert restarted.fire_due_timers() == 1
    assert restarted.fire_due_timers() == 0
    assert case.types() == ["Opened", "Scheduled", "Scheduled", "Due", "OutcomeRecorded", "Due"]
    assert [o["agreements"] for o in restarted.get(case.id).outcomes] == [{"a1": "kept"}]
    assert restarted.views.cases(RESEARCHER)[0]["outcomes"] == 1


# -- a revised plan -------------------------------------------------------------------------
def test_a_revised_plan_keeps_the_contacts_takes_its_agreements_and_moves_the_reminder(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 3, 1))
    calls = ("coordinator_call", "research")
    contacts_before = {t: d.due_at for t, d in case.timers().items() if t in calls}
    clock.advance(DAY)
    case.distribute(plan_version=2, next_meeting_on=date(2026, 3, 15), agreement_ids=["a1", "a3"])
    follow_up = app.get(case.id)
    assert follow_up.plan_version == 2 and follow_up.agreement_ids == ["a1", "a3"]
    timers = case.timers()
    assert {t: d.due_at for t, d in timers.items() if t in calls} == contacts_before
    assert timers[REMINDER].cancelled_at == clock.now()
    assert timers[NEXT_MEETING].cancelled_at == clock.now()  # the meeting moved with it
    assert timers[f"{REMINDER}-2"].due_at == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)
    assert timers[f"{NEXT_MEETING}-2"].due_at == datetime(2026, 3, 15, 8, 0, tzinfo=UTC)

    clock.advance(365 * DAY)
    # Both calls, the new reminder and the new meeting; never the old ones.
    assert app.fire_due_timers() == 4
    assert timers[REMINDER].fired_at is None
    fired = [translate(e) for e in app.events.get(case.id)]
    assert REMINDER not in [e.timer_id for e in fired if isinstance(e, FollowUpDue)]

    before = app.recorder.max_notification_id()
    assert case.distribute(plan_version=1, next_meeting_on=date(2026, 3, 1))  # a stale version
    assert app.get(case.id).plan_version == 2
    assert [e.type for e in app.history(case.id)][-1] == "Due"
    assert app.recorder.max_notification_id() == before


def test_a_revision_keeping_the_meeting_keeps_the_reminder_and_one_without_a_meeting_cancels_it(
    case: Case, app: FollowupApplication
) -> None:
    case.distribute(next_meeting_on=date(2026, 3, 1))
    case.distribute(plan_version=2, next_meeting_on=date(2026, 3, 1))
    assert "Cancelled" not in case.types()
    case.distribute(plan_version=3, next_meeting_on=None)
    timers = case.timers()
    assert timers[REMINDER].cancelled_at is not None
    assert [t for t in timers if "reminder" in t] == [REMINDER]
    assert timers[NEXT_MEETING].cancelled_at is not None and NEXT_MEETING + "-2" not in timers
    assert case.types()[-3:] == ["RevisedPlanNoted", "Cancelled", "Cancelled"]


def test_a_meeting_moved_after_its_reminder_fired_gets_a_new_reminder(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 1, 8))  # the reminder is due at once
    assert app.fire_due_timers() == 1
    case.distribute(plan_version=2, next_meeting_on=date(2026, 2, 12))
    timers = case.timers()
    assert timers[REMINDER].fired_at is not None and timers[REMINDER].cancelled_at is None
    assert timers[f"{REMINDER}-2"].due_at == datetime(2026, 2, 5, 8, 0, tzinfo=UTC)
    # The fired reminder stays as it was; only the meeting's pending contact moves.
    assert case.types().count("Cancelled") == 1 and timers[NEXT_MEETING].cancelled_at


# -- outcomes --------------------------------------------------------------------------------
def test_an_outcome_before_its_contact_is_due_is_refused_with_the_reason_and_stores_nothing(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute()
    clock.advance(27 * DAY)
    before = app.recorder.max_notification_id()
    with pytest.raises(DomainRuleError, match="not due yet"):
        case.record("coordinator_call", COORDINATOR)
    assert app.recorder.max_notification_id() == before


def test_a_contact_due_by_the_clock_fires_before_its_outcome_is_recorded(
    case: Case, clock: ManualClock
) -> None:
    case.distribute()
    clock.advance(28 * DAY)  # the timer loop has not run
    case.record("coordinator_call", COORDINATOR, reached=False)
    assert case.types()[-2:] == ["Due", "OutcomeRecorded"]


def test_only_a_contact_that_came_due_takes_one_outcome_for_agreements_the_plan_has(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 1, 8))  # the reminder is due at once
    clock.advance(28 * DAY)
    app.fire_due_timers()
    before = app.recorder.max_notification_id()
    with pytest.raises(DomainRuleError, match="reminder of the next meeting, not a contact"):
        case.record(REMINDER, COORDINATOR)
    with pytest.raises(InvalidFieldError) as unknown_timer:
        case.record("research-7", COORDINATOR)
    assert unknown_timer.value.loc == ("timer_id",)
    with pytest.raises(InvalidFieldError) as unknown_agreement:
        case.record("coordinator_call", COORDINATOR, agreements={"a1": "kept", "a7": "kept"})
    assert unknown_agreement.value.loc == ("agreements", "a7")
    with pytest.raises(InvalidFieldError) as nobody_reached:
        case.record("coordinator_call", COORDINATOR, reached=False, agreements={"a1": "kept"})
    assert nobody_reached.value.loc == ("agreements",)
    assert app.recorder.max_notification_id() == before

    case.record(
        "coordinator_call", COORDINATOR, agreements={"a1": "kept", "a2": "partly_kept"}, notes="ok"
    )
    with pytest.raises(DomainRuleError, match="already recorded"):
        case.record("coordinator_call", COORDINATOR)
    [outcome] = app.get(case.id).outcomes
    assert outcome["agreements"] == {"a1": "kept", "a2": "partly_kept"}
    assert outcome["by"] == acted(COORDINATOR)


def test_the_coordinator_records_the_call_a_researcher_the_research_the_manager_either(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute()
    clock.advance(91 * DAY)
    app.fire_due_timers()
    other_manager = principal("rm-texel", "regional_manager", regions=("Texel",))
    for actor in (RESEARCHER, principal("c2", "coordinator"), other_manager):
        with pytest.raises(NotPermittedError, match="the coordinator's call needs"):
            case.record("coordinator_call", actor)
    for actor in (COORDINATOR, other_manager):
        with pytest.raises(NotPermittedError, match="research contact needs the role researcher"):
            case.record("research", actor)
    with pytest.raises(NotPermittedError, match="outcome needs the role coordinator"):
        case.record("research", FAMILY)
    case.record("coordinator_call", MANAGER)
    case.record("research", RESEARCHER)
    by = [o["by"] for o in app.get(case.id).outcomes]
    assert by == [acted(MANAGER) | {"on_behalf_of": "c1"}, acted(RESEARCHER)]


def test_the_stage_moves_from_scheduled_to_due_to_followed_up_and_the_list_shows_it(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    other = Case(app, clock)
    other.distribute(model="group", next_meeting_on=date(2026, 6, 1))
    case.distribute()

    def row() -> dict[str, Any]:
        return next(r for r in app.views.cases(RESEARCHER) if r["case_id"] == case.id)

    start = clock.now()
    assert (row()["stage"], row()["next_due_at"], row()["outcomes"]) == (
        Stage.SCHEDULED,
        start + 28 * DAY,
        0,
    )
    clock.advance(28 * DAY)
    app.fire_due_timers()
    assert app.get(case.id).stage is Stage.DUE
    assert (row()["stage"], row()["next_due_at"]) == (Stage.DUE, start + 91 * DAY)
    case.record("coordinator_call", COORDINATOR)
    assert row()["stage"] is Stage.SCHEDULED and row()["outcomes"] == 1
    clock.advance(63 * DAY)
    app.fire_due_timers()
    case.record("research", RESEARCHER, reached=False)
    assert app.get(case.id).stage is Stage.FOLLOWED_UP
    assert (row()["stage"], row()["next_due_at"], row()["outcomes"]) == (
        Stage.FOLLOWED_UP,
        None,
        2,
    )
    assert [r["case_id"] for r in app.views.cases(RESEARCHER, stage=Stage.FOLLOWED_UP)] == [case.id]
    assert [r["case_id"] for r in app.views.cases(RESEARCHER, model="group")] == [other.id]
    assert [r["case_id"] for r in app.views.cases(RESEARCHER)] == [other.id, case.id]


def test_an_outcome_is_published_with_its_contact_but_without_its_notes(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute()
    clock.advance(28 * DAY)
    case.record(
        "coordinator_call",
        COORDINATOR,
        agreements={"a2": "not_kept"},
        notes="Father drinks again; Herman worried",
    )
    [published] = [
        e for e in map(translate, app.events.get(case.id)) if isinstance(e, OutcomeRecorded)
    ]
    assert (published.timer_id, published.kind, published.reached) == (
        "coordinator_call",
        "coordinator_call",
        True,
    )
    assert published.agreements == {"a2": "not_kept"}
    assert "Herman" not in published.model_dump_json()


# -- follow-up conferences --------------------------------------------------------------------
def test_a_follow_up_conference_asked_twice_with_one_key_opens_one_case(
    case: Case, app: FollowupApplication
) -> None:
    case.distribute()
    first = app.request_follow_up_conference(case.id, "agreements not kept", COORDINATOR, "form-1")
    again = app.request_follow_up_conference(case.id, "agreements not kept", COORDINATOR, "form-1")
    assert first == again == uuid.uuid5(IDEMPOTENT_FOLLOW_UP, f"{case.id}\nform-1")
    other = app.request_follow_up_conference(case.id, "", MANAGER, "form-2")
    unkeyed = app.request_follow_up_conference(case.id, "", MANAGER)
    assert len({first, other, unkeyed}) == 3
    assert app.get(case.id).follow_up_cases == [first, other, unkeyed]
    requested = [e for e in app.history(case.id) if e.type == "FollowUpConferenceRequested"]
    behalf = acted(MANAGER) | {"on_behalf_of": "c1"}  # the regional manager acts for c1
    assert [e.actor for e in requested] == [acted(COORDINATOR), behalf, behalf]
    published = [
        e
        for e in map(translate, app.events.get(case.id))
        if isinstance(e, FollowUpConferenceRequested)
    ]
    assert [e.new_case_id for e in published] == [first, other, unkeyed]
    assert "not kept" not in published[0].model_dump_json()


def test_a_follow_up_conference_needs_a_distributed_plan(app: FollowupApplication) -> None:
    with pytest.raises(CaseNotFoundError):
        app.request_follow_up_conference(uuid.uuid4(), "", COORDINATOR, "k")


def test_every_stored_event_keeps_its_actor(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute()
    clock.advance(28 * DAY)
    app.fire_due_timers()
    case.record("coordinator_call", COORDINATOR)
    app.request_follow_up_conference(case.id, "", COORDINATOR)
    actors = [(e.type, e.actor) for e in app.history(case.id)]
    assert actors == [
        ("Opened", SYSTEM),
        ("Scheduled", SYSTEM),
        ("Scheduled", SYSTEM),
        ("Due", SYSTEM),
        ("OutcomeRecorded", acted(COORDINATOR)),
        ("FollowUpConferenceRequested", acted(COORDINATOR)),
    ]


def test_a_follow_up_stored_before_reminders_and_outcomes_existed_still_replays(
    app: FollowupApplication, clock: ManualClock
) -> None:
    case_id = uuid.uuid4()
    new = FollowUp.open(
        case_id,
        model="family",
        plan_version=1,
        distributed_at=clock.now(),
        next_meeting_on=None,
        agreement_ids=[],
        schedule=Schedule(default=(Contact("research", 91),)),
        at=clock.now(),
        actor=SYSTEM,
    )
    # As the first release stored it: before case keys, and without two fields.
    first_release = Mapper(transcoder=app.mapper.transcoder)
    stored = [first_release.to_stored_event(e) for e in new.collect_events()]
    opened = app.mapper.transcoder.decode(stored[0].state)
    del opened["next_meeting_on"], opened["agreement_ids"]
    stored[0] = dataclasses.replace(stored[0], state=app.mapper.transcoder.encode(opened))
    app.recorder.insert_events([StoredEvent(**dataclasses.asdict(s)) for s in stored])

    follow_up = app.get(case_id)
    assert (follow_up.agreement_ids, follow_up.next_meeting_on) == ([], None)
    clock.advance(91 * DAY)
    assert app.fire_due_timers() == 1
    app.record_outcome(case_id, "research", True, {}, "", RESEARCHER)
    assert app.get(case_id).stage is Stage.FOLLOWED_UP


# -- the family's own next meeting --------------------------------------------------------------
def meeting(
    app: FollowupApplication, case: Case, who: Actor = COORDINATOR, **outcome: Any
) -> FollowUp:
    values: dict[str, Any] = {
        "timer_id": None,
        "held": True,
        "held_on": date(2026, 3, 1),
        "agreements": {},
        "revised_plan_wanted": False,
        "next_meeting_on": None,
        "notes": "",
    } | outcome
    return app.record_meeting(case.id, who, **values)


def test_the_familys_next_meeting_is_a_contact_recorded_held_with_its_agreements_reviewed(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 3, 1))
    assert case.timers()[NEXT_MEETING].due_at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    clock.advance(datetime(2026, 3, 1, 20, 0, tzinfo=UTC) - clock.now())
    with pytest.raises(DomainRuleError, match="record it as a meeting"):
        case.record(NEXT_MEETING, COORDINATOR)
    with pytest.raises(NotPermittedError, match="recording the family's next meeting"):
        meeting(app, case, RESEARCHER)
    herman = principal("herman", "participant", participations=((case.id, "p3"),))
    follow_up = meeting(
        app,
        case,
        herman,  # the family reports its own meeting
        agreements={"a1": "kept", "a2": "partly_kept"},
        revised_plan_wanted=True,
        next_meeting_on=date(2026, 6, 1),
        notes="We agreed to swap Wednesdays.",
    )
    [held] = follow_up.meetings
    assert (held.held, held.held_on, held.revised_plan_wanted) == (True, date(2026, 3, 1), True)
    assert follow_up.timers[NEXT_MEETING].outcome_recorded
    # When they meet again: a new reminder and a new meeting, from the date they set.
    assert follow_up.next_meeting_on == date(2026, 6, 1)
    assert follow_up.timers[f"{NEXT_MEETING}-2"].due_at > clock.now()
    published = [translate(e) for e in app.events.get(case.id)]
    [outcome] = [e for e in published if isinstance(e, OutcomeRecorded)]
    assert (outcome.kind, outcome.reached, outcome.agreements) == (
        NEXT_MEETING,
        True,
        {"a1": "kept", "a2": "partly_kept"},
    )
    [revision] = [e for e in published if isinstance(e, PlanRevisionRequested)]
    assert revision.timer_id == NEXT_MEETING and "swap" not in revision.model_dump_json()
    with pytest.raises(DomainRuleError, match="already recorded"):
        meeting(app, case, timer_id=NEXT_MEETING)


def test_a_recorded_meeting_moves_the_follow_up_list_as_a_contact_outcome(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    """The read model applies the meeting as the outcome of its contact: the list's stage is
    the aggregate's, and the meeting counts among its outcomes."""
    case.distribute(next_meeting_on=date(2026, 3, 1))
    clock.advance(datetime(2026, 3, 1, 20, 0, tzinfo=UTC) - clock.now())
    app.fire_due_timers()

    def row() -> dict[str, Any]:
        [found] = [r for r in app.views.cases(RESEARCHER) if r["case_id"] == case.id]
        return found

    assert row()["stage"] is Stage.DUE and row()["outcomes"] == 0
    follow_up = meeting(app, case)
    assert follow_up.timers[NEXT_MEETING].outcome_recorded
    assert (row()["stage"], row()["outcomes"]) == (follow_up.stage, 1)


def test_a_meeting_not_held_is_recorded_without_outcomes_and_may_set_a_new_date(
    case: Case, app: FollowupApplication, clock: ManualClock
) -> None:
    case.distribute(next_meeting_on=date(2026, 3, 1))
    clock.advance(datetime(2026, 3, 2, 9, 0, tzinfo=UTC) - clock.now())
    for wrong, field in (
        ({"held": False, "agreements": {"a1": "kept"}, "held_on": None}, ("agreements",)),
        ({"held": False}, ("held_on",)),
        ({"held": True, "held_on": None}, ("held_on",)),
        ({"held_on": date(2026, 3, 9)}, ("held_on",)),
        ({"held": False, "held_on": None, "revised_plan_wanted": True}, ("revised_plan_wanted",)),
        ({"agreements": {"a9": "kept"}}, ("agreements", "a9")),
    ):
        with pytest.raises(InvalidFieldError) as refused:
            meeting(app, case, **wrong)
        assert refused.value.loc == field, wrong
    follow_up = meeting(app, case, held=False, held_on=None, next_meeting_on=date(2026, 3, 20))
    assert [m.held for m in follow_up.meetings] == [False]
    assert not any(isinstance(translate(e), PlanRevisionRequested) for e in app.events.get(case.id))
    assert follow_up.timers[f"{NEXT_MEETING}-2"].pending
    # The moved meeting is recorded in its turn, even before its day (the family met early).
    early = meeting(app, case, held_on=date(2026, 3, 2))
    assert [m.timer_id for m in early.meetings] == [NEXT_MEETING, f"{NEXT_MEETING}-2"]
    assert early.timers[f"{NEXT_MEETING}-2"].fired_at == clock.now()  # due first, then recorded
    with pytest.raises(DomainRuleError, match="no next meeting still to record"):
        meeting(app, case)


def test_a_schedule_may_not_name_the_meetings_kinds() -> None:
    from services.followup.settings import FollowupSettings

    for kind in (REMINDER, NEXT_MEETING):
        with pytest.raises(ValueError, match="made from the plan's next meeting"):
            FollowupSettings(schedule={"family": [{"kind": kind, "after_days": 3}]})
