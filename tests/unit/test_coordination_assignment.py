"""Coordination: who is assigned to a case, and why; the unassigned list; assignment by hand;
relations, availability and capacity; what a withdrawal and a distributed plan change.

Through the application on a real SQLite store; each test makes its own ids.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.coordination.app import CoordinationApplication
from services.coordination.bus import translate
from services.coordination.domain import Stage
from services.coordination.pool import CoordinatorNotFoundError
from shared.clock import ManualClock
from shared.errors import DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import CoordinatorAssigned, CoordinatorWishes, IntegrationEvent
from tests.factories import (
    REGIONS,
    delivered,
    plan_distributed,
    principal,
    ready_for_conference,
    request_received,
    request_withdrawn,
    rewrite_stored_states,
)

MANAGER = principal("rm", "regional_manager", regions=REGIONS)
COORDINATOR = principal("c1", "coordinator")
ANA = principal("ana", "coordinator")


class Coordination:
    """The application with a manual clock, and a counter for upstream positions."""

    def __init__(self, make_app: Any) -> None:
        self.clock = ManualClock()
        self.app: CoordinationApplication = make_app(
            CoordinationApplication, clock=self.clock, first_contact_days=3
        )
        self.position = 0

    def join(self, coordinator_id: str, region: str = "Utrecht", **details: Any) -> None:
        languages = details.pop("languages", ["nl"])
        capacity = details.pop("capacity", 3)
        self.app.register_coordinator(
            coordinator_id, [region], languages, capacity, MANAGER, **details
        )

    def receive(self, **overrides: Any) -> uuid.UUID:
        event = request_received(**overrides)
        self.deliver(event)
        return event.case_id

    def deliver(self, event: IntegrationEvent) -> None:
        self.position += 1
        self.app.process(delivered(event, self.position))

    def published(self, case_id: uuid.UUID, kind: type[IntegrationEvent]) -> list[Any]:
        events = [translate(e) for e in self.app.events.get(case_id)]
        return [e for e in events if isinstance(e, kind)]


@pytest.fixture
def co(make_app: Any) -> Coordination:
    return Coordination(make_app)


def test_the_reasons_for_an_automatic_choice_are_recorded(co: Coordination) -> None:
    co.join("ana")
    case_id = co.receive()
    case = co.app.get(case_id)
    assert case.coordinator_ids == ["ana"]
    (assignment,) = case.assignments
    assert assignment["by_hand"] is False
    for said in ("works in Utrecht", "speaks nl", "independent", "0 open cases of 3"):
        assert said in assignment["reason"]


def test_a_coordinator_of_an_involved_organisation_is_not_independent(co: Coordination) -> None:
    co.join("aa-jeugdzorg", organisations=["Jeugdzorg Utrecht"])
    co.join("zz-free", capacity=1)
    first = co.receive(involved_organisations=["jeugdzorg  utrecht"])  # as people write it
    assert co.app.get(first).coordinator_ids == ["zz-free"]
    second = co.receive(involved_organisations=["Jeugdzorg Utrecht"])
    case = co.app.get(second)
    assert case.stage is Stage.WAITING
    assert case.waiting_reason == "every coordinator who fits is at capacity"
    third = co.receive(involved_organisations=["Jeugdzorg Utrecht"], region="Utrecht")
    co.join("zz-free", capacity=5)
    with pytest.raises(DomainRuleError, match=r"not independent.*Jeugdzorg Utrecht"):
        co.app.assign_by_hand(third, ["aa-jeugdzorg"], "nobody else", MANAGER)


def test_the_family_s_wishes_are_requirements_and_the_waiting_reason_names_the_unmet_one(
    co: Coordination,
) -> None:
    co.join("bram", gender="m", cultures=["moluccan"])
    co.join("fenna", gender="f", backgrounds=["farming"])
    wished = co.receive(coordinator_wishes=CoordinatorWishes(gender="F", background="farming"))
    case = co.app.get(wished)
    assert case.coordinator_ids == ["fenna"]
    assert "matches wish gender=F" in case.assignments[0]["reason"]
    unmet = co.receive(coordinator_wishes=CoordinatorWishes(gender="f", culture="moluccan"))
    case = co.app.get(unmet)
    assert case.stage is Stage.WAITING
    assert "wish culture=moluccan" in (case.waiting_reason or "")
    # The regional manager may still assign by hand, with a reason; what is unmet is written down.
    assigned = co.app.assign_by_hand(unmet, ["bram"], "the family agreed on Bram", MANAGER)
    assert assigned.assignments[-1]["mismatches"] == ["bram does not match the wish gender=f"]


def test_region_and_language_are_matched_and_the_least_loaded_goes_first(co: Coordination) -> None:
    co.join("busy", languages=["nl", "tr"], capacity=5)
    co.join("idle", languages=["nl"], capacity=5)
    co.join("zwolle", region="Zwolle")
    turkish = co.receive(languages=["tr"])
    assert co.app.get(turkish).coordinator_ids == ["busy"]
    dutch = co.receive(region="utrecht")  # regions compare as people write them
    assert co.app.get(dutch).coordinator_ids == ["idle"]
    nobody = co.receive(languages=["ar"])
    assert co.app.get(nobody).waiting_reason == "no coordinator in Utrecht speaks ar"
    elsewhere = co.receive(region="Zeeland")
    assert co.app.get(elsewhere).waiting_reason == "no coordinator works in region Zeeland"


def test_the_unassigned_list_says_why_each_case_waits(co: Coordination) -> None:
    waiting = co.receive(region="Drenthe")
    co.join("ana")
    assigned = co.receive()
    rows = {row["case_id"]: row for row in co.app.views.unassigned_page(MANAGER, None).items}
    assert assigned not in rows
    assert rows[waiting]["waiting_reason"] == "no coordinator works in region Drenthe"
    assert rows[waiting]["missing"] == 1


def test_a_group_conference_gets_two_coordinators_or_waits_for_the_second(
    co: Coordination,
) -> None:
    co.join("ana")
    co.join("bob")
    both = co.receive(model="group", coordinators_needed=2)
    assert sorted(co.app.get(both).coordinator_ids) == ["ana", "bob"]
    (published,) = co.published(both, CoordinatorAssigned)
    assert sorted(published.coordinator_ids) == ["ana", "bob"]

    co.join("bob", capacity=1)  # bob is now full
    one = co.receive(model="group", coordinators_needed=2)
    case = co.app.get(one)
    assert case.coordinator_ids == ["ana"]
    assert case.stage is Stage.ASSIGNED  # preparation can start
    row = next(r for r in co.app.views.unassigned_page(MANAGER, None).items if r["case_id"] == one)
    assert row["missing"] == 1
    assert row["waiting_reason"] == (
        "a second coordinator is needed: every other coordinator who fits is at capacity"
    )
    co.join("cas")
    case = co.app.assign_by_hand(one, ["ana", "cas"], "Cas joins Ana", MANAGER)
    assert case.waiting_reason is None
    assert one not in [r["case_id"] for r in co.app.views.unassigned_page(MANAGER, None).items]
    last = co.published(one, CoordinatorAssigned)[-1]
    assert (last.coordinator_ids, last.by_hand, last.reassignment) == (["ana", "cas"], True, True)


def test_two_coordinators_only_where_the_case_asks_for_two(co: Coordination) -> None:
    co.join("ana")
    co.join("bob")
    case_id = co.receive()
    with pytest.raises(DomainRuleError, match="prepared by one coordinator"):
        co.app.assign_by_hand(case_id, ["ana", "bob"], "both", MANAGER)
    with pytest.raises(InvalidFieldError, match="named twice") as named:
        co.app.assign_by_hand(
            co.receive(model="group", coordinators_needed=2), ["bob", "bob"], "x", MANAGER
        )
    assert named.value.loc == ("coordinator_ids", 1)


def test_reassignment_by_hand_releases_the_previous_coordinator_with_the_reason(
    co: Coordination,
) -> None:
    co.join("ana")
    co.join("bob")
    case_id = co.receive()
    first = co.app.get(case_id).coordinator_ids[0]
    other = "bob" if first == "ana" else "ana"
    with pytest.raises(NotPermittedError, match="by hand needs the role regional_manager"):
        co.app.assign_by_hand(case_id, [other], "swap", COORDINATOR)
    texel = principal("rm-texel", "regional_manager", regions=("Texel",))
    with pytest.raises(NotPermittedError, match="regional_manager for region Utrecht"):
        co.app.assign_by_hand(case_id, [other], "swap", texel)
    with pytest.raises(DomainRuleError, match="already coordinate"):
        co.app.assign_by_hand(case_id, [first], "again", MANAGER)
    case = co.app.assign_by_hand(case_id, other, "the family knows the first", MANAGER)
    assert case.coordinator_ids == [other]
    assert co.app.pool().load == {first: 0, other: 1}
    assert case.assignments[-1]["reason"] == "the family knows the first"
    assert case.assignments[-1]["by"] == "rm"


def test_capacity_by_hand_is_the_manager_s_decision_and_is_written_down(
    co: Coordination,
) -> None:
    co.join("ana", capacity=1)
    co.receive()
    waiting = co.receive()
    assert co.app.get(waiting).waiting_reason == "every coordinator who fits is at capacity"
    case = co.app.assign_by_hand(waiting, ["ana"], "Ana agreed to a second case", MANAGER)
    assert case.assignments[-1]["over_capacity"] == ["ana"]
    assert co.app.pool().load["ana"] == 2


def test_an_unavailable_coordinator_is_not_chosen_nor_assigned_until_the_date(
    co: Coordination,
) -> None:
    co.join("ana")
    today = co.app.today()
    co.app.set_availability("ana", False, today + timedelta(days=7), MANAGER)
    case_id = co.receive()
    assert co.app.get(case_id).waiting_reason == "every coordinator who fits is unavailable"
    with pytest.raises(DomainRuleError, match="ana is unavailable until"):
        co.app.assign_by_hand(case_id, ["ana"], "back soon", MANAGER)
    co.clock.advance(timedelta(days=7))
    assert co.app.pool().is_available("ana", co.app.today())
    assert co.app.assign_by_hand(case_id, ["ana"], "back", MANAGER).coordinator_ids == ["ana"]
    co.app.set_availability("ana", False, None, MANAGER)  # until further notice
    co.clock.advance(timedelta(days=365))
    assert "unavailable" in (co.app.get(co.receive()).waiting_reason or "")
    with pytest.raises(InvalidFieldError, match="only given with available: false"):
        co.app.set_availability("ana", True, co.app.today() + timedelta(days=1), MANAGER)
    with pytest.raises(InvalidFieldError, match="after today"):
        co.app.set_availability("ana", False, co.app.today(), MANAGER)
    with pytest.raises(CoordinatorNotFoundError):
        co.app.set_availability("nobody", False, None, MANAGER)


def test_registering_again_keeps_what_is_left_out(co: Coordination) -> None:
    co.join("ana", organisations=["Gemeente Utrecht"], gender="f", available=False)
    co.join("ana", capacity=9)  # as the workflow re-registers: the first four fields only
    details = co.app.pool().coordinators["ana"]
    assert details["organisations"] == ["Gemeente Utrecht"]
    assert (details["gender"], details["available"], details["capacity"]) == ("f", False, 9)
    co.join("ana", gender=None, available=True)
    details = co.app.pool().coordinators["ana"]
    assert (details["gender"], details["available"]) == (None, True)


def test_a_declared_relation_releases_the_coordinator_and_the_case_is_assigned_afresh(
    co: Coordination,
) -> None:
    co.join("ana")
    co.join("bob")
    case_id = co.receive()
    holder = co.app.get(case_id).coordinator_ids[0]
    other = "bob" if holder == "ana" else "ana"
    _, case = co.app.declare_relation(holder, case_id, "family_of_party", "aunt of Johan", MANAGER)
    assert case is not None and case.coordinator_ids == [other]
    assert case.relations == [{"coordinator_id": holder, "kind": "family_of_party"}]
    assert f"{holder} declared a relation" in case.assignments[-1]["reason"]
    assert co.app.pool().load[holder] == 0
    last = co.published(case_id, CoordinatorAssigned)[-1]
    assert (last.coordinator_ids, last.reassignment, last.by_hand) == ([other], True, False)
    # Never again assigned to it, not even by hand.
    co.app.declare_relation(other, case_id, "care_worker", "", MANAGER)
    case = co.app.get(case_id)
    assert case.stage is Stage.WAITING
    assert case.waiting_reason == (
        "no coordinator in Utrecht who speaks nl is independent of this case"
    )
    with pytest.raises(DomainRuleError, match="declared a relation to this case"):
        co.app.assign_by_hand(case_id, [holder], "needed", MANAGER)
    # The note is kept with the case, under a key the case's erasure shreds, never in the pool.
    assert co.app.relation_notes(case_id).notes == [
        {"coordinator_id": holder, "kind": "family_of_party", "note": "aunt of Johan"}
    ]
    assert all(not hasattr(e, "note") for e in co.app.events.get(co.app.pool().id))


def test_a_relation_declared_before_the_case_arrives_counts_when_it_does(
    co: Coordination,
) -> None:
    co.join("ana")
    co.join("bob", capacity=5)
    case_id = uuid.uuid4()
    _, case = co.app.declare_relation("ana", case_id, "other_stake", "", MANAGER)
    assert case is None
    co.receive(case_id=case_id)
    assert co.app.get(case_id).coordinator_ids == ["bob"]


def test_a_follow_up_goes_to_the_same_coordinator_and_keeps_the_relations(
    co: Coordination,
) -> None:
    co.join("ana", capacity=5)
    co.join("bob", capacity=5)
    co.join("cas", capacity=5)
    original = co.receive()
    first = co.app.get(original).coordinator_ids[0]
    co.receive()  # now another coordinator is less loaded than the first
    follow_up = co.receive(follow_up_of=original)
    case = co.app.get(follow_up)
    assert case.coordinator_ids == [first]
    assert "coordinated the case this one follows up" in case.assignments[0]["reason"]
    unrelated = sorted({"ana", "bob", "cas"} - {first})[0]
    co.app.declare_relation(unrelated, original, "family_of_party", "", MANAGER)
    co.app.set_availability(first, False, None, MANAGER)
    again = co.receive(follow_up_of=follow_up)
    (third,) = {"ana", "bob", "cas"} - {first, unrelated}
    assert co.app.get(again).coordinator_ids == [third]  # relations carry down the chain


def test_a_withdrawn_request_stops_the_preparation_and_frees_the_coordinators(
    co: Coordination,
) -> None:
    co.join("ana")
    case_id = co.receive()
    co.deliver(request_withdrawn(case_id))
    case = co.app.get(case_id)
    assert (case.stage, case.stop_reason) == (Stage.STOPPED, "request_withdrawn")
    assert co.app.pool().load["ana"] == 0
    ended = [e for e in (translate(x) for x in co.app.events.get(case_id)) if e is not None][-1]
    assert (ended.name, ended.reason) == ("case-ended-without-conference", "request_withdrawn")


def test_a_withdrawal_after_the_conference_is_noted_and_changes_nothing(
    co: Coordination,
) -> None:
    co.join("ana")
    case_id = co.receive()
    ids = ready_for_conference(co.app, case_id, ANA, co.app.today())
    held = {"plan_making": {"present": [ids["family"]], "coordinator": False}}
    co.app.hold_conference(case_id, co.app.today(), held, ANA)
    co.deliver(request_withdrawn(case_id))
    case = co.app.get(case_id)
    assert case.stage is Stage.CONFERENCE_HELD and case.request_withdrawn_at is not None
    assert [e.type for e in co.app.history(case_id)][-1] == "RequestWithdrawalNoted"
    assert [e for e in map(translate, co.app.events.get(case_id)) if e is not None][
        -1
    ].name == "conference-held"


def test_the_coordinators_task_ends_when_the_plan_is_distributed(co: Coordination) -> None:
    co.join("ana")
    case_id = co.receive()
    co.deliver(plan_distributed(case_id))  # before the conference: nothing happens
    assert co.app.pool().load["ana"] == 1
    ids = ready_for_conference(co.app, case_id, ANA, co.app.today())
    held = {"plan_making": {"present": [ids["family"]], "coordinator": False}}
    co.app.hold_conference(case_id, co.app.today(), held, ANA)
    assert co.app.pool().load["ana"] == 1  # the plan is still to be written and sent
    co.deliver(plan_distributed(case_id))
    co.deliver(plan_distributed(case_id))  # a later version: once is enough
    assert co.app.pool().load["ana"] == 0
    assert [e.type for e in co.app.history(case_id)].count("CoordinatorTaskEnded") == 1
    co.deliver(plan_distributed(uuid.uuid4()))  # a case coordination never had


def test_a_plan_without_a_meeting_keeps_the_coordinator_until_it_is_distributed(
    co: Coordination,
) -> None:
    co.join("ana")
    case_id = co.receive()
    co.app.end_without_conference(case_id, "plan_without_meeting", None, "", ANA)
    assert co.app.pool().load["ana"] == 1
    co.deliver(plan_distributed(case_id))
    assert co.app.pool().load["ana"] == 0


def test_a_redelivered_request_assigns_once(co: Coordination) -> None:
    co.join("ana")
    event = request_received()
    assert co.app.process(delivered(event, 41)) is True
    assert co.app.process(delivered(event, 41)) is False
    assert co.app.pool().load["ana"] == 1


def test_events_stored_before_the_new_fields_existed_still_replay(
    co: Coordination, tmp_path: Any, make_app: Any
) -> None:
    co.join("ana")
    case_id = co.receive(model="group", coordinators_needed=2)
    # Strip what the events of an earlier version did not have.
    newer = {
        "Received": (
            "coordinators_needed",
            "coordinator_wishes",
            "involved_organisations",
            "follow_up_of",
        ),
        "CoordinatorAssigned": (
            "by_hand",
            "reassignment",
            "waiting_reason",
            "mismatches",
            "over_capacity",
        ),
        "CoordinatorRegistered": (
            "organisations",
            "gender",
            "backgrounds",
            "cultures",
            "available",
            "keep_gender",
        ),
    }

    def strip(name: str, state: dict[str, Any]) -> None:
        for field in newer.get(name, ()):
            state.pop(field, None)
        if name in newer:
            state.pop("class_version", None)  # an earlier release stored version 1

    rewrite_stored_states(co.app, tmp_path / "coordination.sqlite", strip)
    co.app.close()
    again = make_app(CoordinationApplication, clock=co.clock)
    case = again.get(case_id)
    assert (case.coordinators_needed, case.coordinator_ids, case.stage) == (
        1,
        ["ana"],
        Stage.ASSIGNED,
    )
    assert again.pool().coordinators["ana"]["organisations"] == []
    published = [e for e in map(translate, again.events.get(case_id)) if e is not None]
    assert [(e.by_hand, e.reassignment) for e in published] == [(False, False)]
    assert again.views.cases()[0]["coordinators_needed"] == 1


def test_a_coordinator_re_registered_with_an_involved_organisation_leaves_the_case(
    co: Coordination,
) -> None:
    co.join("ana")
    co.join("bob")
    case_id = co.receive(involved_organisations=["Jeugdzorg Utrecht"])
    first = co.app.get(case_id).coordinator_ids[0]
    other = "bob" if first == "ana" else "ana"
    # The coordinator now works for the organisation involved in the case they hold.
    co.join(first, organisations=["jeugdzorg  utrecht"])
    case = co.app.get(case_id)
    assert case.coordinator_ids == [other]
    assert case.assignments[-1]["reason"].startswith(
        f"{first} is no longer independent (works for jeugdzorg  utrecht, involved in this case)"
    )
    assert co.app.pool().load == {first: 0, other: 1}
    published = co.published(case_id, CoordinatorAssigned)[-1]
    assert (published.coordinator_ids, published.reassignment) == ([other], True)
    # By hand, the same check refuses them, and nobody else left: the case waits, saying why.
    with pytest.raises(DomainRuleError, match=f"{first} is not independent"):
        co.app.assign_by_hand(case_id, [first], "they know the family", MANAGER)
    co.join(other, organisations=["Jeugdzorg Utrecht"])
    case = co.app.get(case_id)
    assert case.coordinator_ids == [] and case.stage is Stage.WAITING
    assert "independent" in (case.waiting_reason or "")


def test_a_re_registration_after_the_conference_releases_nobody(co: Coordination) -> None:
    co.join("ana")
    case_id = co.receive(involved_organisations=["Veilig Thuis"])
    ids = ready_for_conference(co.app, case_id, ANA, co.app.today())
    held = {"plan_making": {"present": [ids["family"]], "coordinator": False}}
    co.app.hold_conference(case_id, co.app.today(), held, ANA)
    co.join("ana", organisations=["Veilig Thuis"])
    assert co.app.get(case_id).coordinator_ids == ["ana"]  # the plan is still theirs to write


def test_the_check_before_an_assignment_by_hand_says_what_the_assignment_would_meet(
    co: Coordination,
) -> None:
    co.join("ana", capacity=1)
    co.join("eve", languages=["en"])
    co.join("zed", region="Zwolle")
    held = co.receive()
    assert co.app.get(held).coordinator_ids == ["ana"]
    case_id = co.receive(coordinator_wishes=CoordinatorWishes(gender="f"))
    before = co.app.get(case_id)
    # What assigning would write down: every mismatch, who would be over capacity.
    check = co.app.check_assignment(case_id, ["eve"], MANAGER)
    assert check["refused"] is None
    assert check["mismatches"] == ["eve does not speak nl", "eve does not match the wish gender=f"]
    assert co.app.check_assignment(case_id, ["ana"], MANAGER)["over_capacity"] == ["ana"]
    assert (
        "zed does not work in Utrecht"
        in co.app.check_assignment(case_id, ["zed"], MANAGER)["mismatches"]
    )
    # The refusals the assignment would meet, said instead of raised.
    assert "two are for a group conference" in (
        co.app.check_assignment(case_id, ["eve", "zed"], MANAGER)["refused"] or ""
    )
    co.app.declare_relation("eve", case_id, "family_of_party", "", MANAGER)
    assert "eve is not independent" in (
        co.app.check_assignment(case_id, ["eve"], MANAGER)["refused"] or ""
    )
    with pytest.raises(InvalidFieldError, match="'nobody' is not in the pool"):
        co.app.check_assignment(case_id, ["nobody"], MANAGER)
    # Only the region's manager may ask, and nothing is assigned by asking.
    with pytest.raises(NotPermittedError, match="by hand needs the role regional_manager"):
        co.app.check_assignment(case_id, ["eve"], COORDINATOR)
    texel = principal("rm-texel", "regional_manager", regions=("Texel",))
    with pytest.raises(NotPermittedError, match="regional_manager for region Utrecht"):
        co.app.check_assignment(case_id, ["eve"], texel)
    after = co.app.get(case_id)
    assert after.coordinator_ids == before.coordinator_ids
    assert after.assignments == before.assignments
    assert co.app.pool().load["ana"] == 1
    # The read is on the access log, as a read of the case is.
    assert "assignment.check" in [e.what for e in co.app.access_log.entries(case_id)]


def test_the_others_of_the_region_are_passed_over_with_the_first_requirement_they_missed(
    co: Coordination,
) -> None:
    """Language, independence, a wish, availability, room: the first one each did not meet;
    ``ranked_lower`` for one who fitted but had more cases. Coordinators of other regions are
    not considered. Independence says no more: neither relation nor organisation is named."""
    co.join("ana", gender="f", capacity=3)  # chosen
    co.join("bea", languages=["en"])
    co.join("cas", gender="f", organisations=["Woonstichting"])
    co.join("dirk", gender="m")
    co.join("eva", gender="f", available=False)
    co.join("fien", gender="f", capacity=0)
    co.join("gijs", region="Zeeland", gender="f")
    co.join("hanna", gender="f", capacity=3)
    co.app.process(delivered(request_received(), 500))
    early = co.app.get(co.app.views.cases()[0]["case_id"])
    assert early.coordinator_ids == ["ana"]  # both free: by id, ana first
    case_id = co.receive(
        coordinator_wishes=CoordinatorWishes(gender="f"),
        involved_organisations=["woonstichting"],
    )
    case = co.app.get(case_id)
    assert case.coordinator_ids == ["hanna"]  # ana holds one case now, hanna none
    reasons = {p.coordinator_id: p.requirement for p in case.passed_over}
    assert reasons == {
        "ana": "ranked_lower",
        "bea": "language",
        "cas": "independence",
        "dirk": "wish:gender",
        "eva": "availability",
        "fien": "room",
    }
    # Nobody fits: the case waits, and says why each was passed over.
    waiting = co.receive(region="Zeeland", languages=["tr"])
    assert {p.coordinator_id: p.requirement for p in co.app.get(waiting).passed_over} == {
        "gijs": "language"
    }


def test_why_others_were_passed_over_is_for_the_regional_manager_only(co: Coordination) -> None:
    from services.coordination.api import CaseView

    co.join("ana")
    co.join("bea", languages=["en"])
    case_id = co.receive()
    case = co.app.get(case_id)
    assert co.app.sees_passed_over(case, MANAGER)
    assert not co.app.sees_passed_over(case, ANA)  # the assigned coordinator is not told
    zeeland = principal("rm-z", "regional_manager", regions=("Zeeland",))
    assert not co.app.sees_passed_over(case, zeeland)
    now = co.clock.now()
    assert CaseView.of(case, now, [], passed_over=True).passed_over == case.passed_over
    assert CaseView.of(case, now, []).passed_over is None
