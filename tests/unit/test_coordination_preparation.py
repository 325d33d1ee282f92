"""Coordination: preparation with the participants (invitations, declines, consent), the
information needed, the practicalities, the schedule, the conference held; the overdue signal;
privacy. Through the application on a real SQLite store; each test makes its own ids."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.coordination.app import CoordinationApplication
from services.coordination.bus import translate
from services.coordination.domain import ParticipantNotFoundError, Stage
from shared.clock import ManualClock
from shared.errors import DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import ConferenceHeld, IntegrationEvent, ParticipantConsentWithdrawn
from shared.identity import Principal
from tests.factories import REGIONS, delivered, part, participant, principal, request_received

MANAGER = principal("rm", "regional_manager", regions=REGIONS)
COORDINATOR = principal("c1", "coordinator")


class Case:
    """One case in coordination, assigned to coordinator ``c1``."""

    def __init__(self, make_app: Any, model: str = "family", **request: Any) -> None:
        self.clock = ManualClock()
        self.app: CoordinationApplication = make_app(
            CoordinationApplication, clock=self.clock, first_contact_days=3
        )
        self.app.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
        event = request_received(model=model, **request)
        self.app.process(delivered(event, 1))
        self.id = event.case_id

    def invite(
        self,
        role: str,
        name: str = "",
        organisation: str | None = None,
        who: Principal = COORDINATOR,
    ) -> str:
        _, pid = self.app.invite(
            self.id,
            who,
            name=name or f"{role} {uuid.uuid4().hex[:6]}",
            role=role,
            contact="someone@example.org",
            organisation=organisation,
            language="nl",
        )
        return pid

    def confirmed(
        self, role: str, organisation: str | None = None, share: bool = True, inform: bool = True
    ) -> str:
        """Invited, confirmed, and (unless ``inform`` is false) informed by the coordinator."""
        pid = self.invite(role, organisation=organisation)
        self.app.confirm(self.id, pid, share, COORDINATOR)
        if inform:
            self.app.record_informed(self.id, pid, None, COORDINATOR)
        return pid

    def schedule(self) -> None:
        self.app.schedule(self.id, self.app.today(), "the community centre", COORDINATOR)

    def published(self, kind: type[IntegrationEvent]) -> list[Any]:
        events = [translate(e) for e in self.app.events.get(self.id)]
        return [e for e in events if isinstance(e, kind)]


def test_participants_get_short_opaque_ids_and_start_invited(make_app: Any) -> None:
    case = Case(make_app)
    first, second = case.invite("central_person"), case.invite("family")
    assert (first, second) == ("p1", "p2")
    p = case.app.get(case.id).participants[first]
    assert (p.invitation, p.take_part, p.share_details) == ("invited", False, False)


def test_participants_are_invited_only_once_a_coordinator_is_assigned_and_not_after_the_end(
    make_app: Any,
) -> None:
    case = Case(make_app, region="Drenthe")  # nobody works there: the case waits
    with pytest.raises(NotPermittedError, match=r"assigned to this case \(none is yet\)"):
        case.invite("family")
    with pytest.raises(DomainRuleError, match="once a coordinator is assigned"):
        case.invite("family", who=MANAGER)
    case.app.register_coordinator("c2", ["Drenthe"], ["nl"], 5, MANAGER)
    case.app.assign_by_hand(case.id, ["c2"], "travels", MANAGER)
    c2 = principal("c2", "coordinator")
    with pytest.raises(NotPermittedError, match=r"assigned to this case \(c2\)"):
        case.invite("family")  # c1 no longer
    case.invite("family", who=c2)
    case.app.end_without_conference(case.id, "stopped", "network_not_willing", "", c2)
    with pytest.raises(DomainRuleError, match="has ended"):
        case.invite("family", who=c2)


def test_a_decline_is_respected_and_never_pressed(make_app: Any) -> None:
    case = Case(make_app)
    pid = case.invite("family", name="Kees Jansen")
    case.app.decline(case.id, pid, "not with him at the table", COORDINATOR)
    with pytest.raises(NotPermittedError, match="respected and never pressed"):
        case.app.confirm(case.id, pid, True, COORDINATOR)
    with pytest.raises(DomainRuleError, match="not invited again"):
        case.invite("family", name="  kees   jansen ")
    with pytest.raises(DomainRuleError, match="already said they are not coming"):
        case.app.decline(case.id, pid, "", COORDINATOR)
    # Only the participant themself changes their answer.
    changed = case.app.confirm(case.id, pid, False, participant(case.id, pid))
    assert changed.participants[pid].invitation == "confirmed"
    with pytest.raises(DomainRuleError, match="already confirmed"):
        case.app.confirm(case.id, pid, False, COORDINATOR)


def test_withdrawing_consent_to_share_stops_sharing_and_is_published(make_app: Any) -> None:
    case = Case(make_app)
    pid = case.confirmed("professional", organisation="Jeugdzorg Utrecht", share=True)
    case.app.withdraw_consent(case.id, pid, "share_details", participant(case.id, pid))
    p = case.app.get(case.id).participants[pid]
    assert (p.share_details, p.take_part, p.withdrawn) == (False, True, ["share_details"])
    (withdrawn,) = case.published(ParticipantConsentWithdrawn)
    assert withdrawn.participant_id == pid
    with pytest.raises(DomainRuleError, match="already withdrew"):
        case.app.withdraw_consent(case.id, pid, "share_details", participant(case.id, pid))
    # A withdrawal of sharing is final for the case, even if they confirm again later.
    case.app.withdraw_consent(case.id, pid, "take_part", participant(case.id, pid))
    case.app.confirm(case.id, pid, True, participant(case.id, pid))
    assert case.app.get(case.id).participants[pid].share_details is False
    never = case.confirmed("family", share=False)
    with pytest.raises(DomainRuleError, match="has not consented to share"):
        case.app.withdraw_consent(case.id, never, "share_details", participant(case.id, never))


def test_withdrawing_consent_to_take_part_means_not_coming_and_keeps_the_history(
    make_app: Any,
) -> None:
    case = Case(make_app)
    invited = case.invite("family")
    with pytest.raises(DomainRuleError, match="record a decline instead"):
        case.app.withdraw_consent(case.id, invited, "take_part", COORDINATOR)
    pid = case.confirmed("network", inform=False)
    case.app.withdraw_consent(case.id, pid, "take_part", COORDINATOR)
    p = case.app.get(case.id).participants[pid]
    assert (p.invitation, p.take_part, p.withdrawn) == ("withdrawn", False, ["take_part"])
    with pytest.raises(NotPermittedError, match=r"needs participant .* themself"):
        case.app.confirm(case.id, pid, True, COORDINATOR)
    assert case.published(ParticipantConsentWithdrawn) == []  # nothing to stop sharing
    types = [e.type for e in case.app.history(case.id)]
    assert types[-3:] == ["ParticipantInvited", "ParticipantConfirmed", "ConsentWithdrawn"]


def test_an_unknown_participant_is_not_found(make_app: Any) -> None:
    case = Case(make_app)
    with pytest.raises(ParticipantNotFoundError):
        case.app.confirm(case.id, "p9", True, COORDINATOR)


def test_the_information_needed_names_who_brings_it(make_app: Any) -> None:
    case = Case(make_app)
    expert = case.invite("expert", organisation="GGD")
    guardian = case.invite("professional", organisation="Jeugdzorg Utrecht")
    case.app.need_information(case.id, "What the school sees", expert, COORDINATOR)
    case.app.need_information(case.id, "what the school sees", guardian, COORDINATOR)
    assert case.app.get(case.id).information == [
        {"information_id": "i1", "topic": "what the school sees", "brought_by": guardian}
    ]
    with pytest.raises(InvalidFieldError, match="unknown participant") as unknown:
        case.app.need_information(case.id, "Finances", "p42", COORDINATOR)
    assert unknown.value.loc == ("brought_by",)
    case.app.decline(case.id, expert, "", COORDINATOR)
    with pytest.raises(InvalidFieldError, match="not coming"):
        case.app.need_information(case.id, "Health", expert, COORDINATOR)


def test_the_family_s_practicalities_are_recorded_and_revised(make_app: Any) -> None:
    case = Case(make_app)
    today = case.app.today()
    arrangements = {
        "date": today + timedelta(days=14),
        "venue": "At the grandparents'",
        "languages": ["nl", "ar"],
        "interpreter": "ar",
        "food": "Soup",
        "rituals": "A prayer before the meal",
    }
    case.app.arrange(case.id, arrangements, COORDINATOR)
    case.app.arrange(case.id, arrangements | {"food": "Couscous"}, COORDINATOR)
    assert case.app.get(case.id).arrangements == arrangements | {"food": "Couscous"}
    with pytest.raises(InvalidFieldError, match="one of the conference's languages") as bad:
        case.app.arrange(case.id, arrangements | {"interpreter": "tr"}, COORDINATOR)
    assert bad.value.loc == ("interpreter",)
    with pytest.raises(InvalidFieldError, match="before today"):
        case.app.arrange(case.id, arrangements | {"date": today - timedelta(days=1)}, COORDINATOR)


def test_a_conference_is_scheduled_after_first_contact_with_someone_of_the_family_confirmed(
    make_app: Any,
) -> None:
    case = Case(make_app)
    case.confirmed("professional", organisation="Jeugdzorg Utrecht")
    with pytest.raises(DomainRuleError, match="after the first contact"):
        case.schedule()
    case.app.record_contact(case.id, COORDINATOR)
    assert case.app.get(case.id).stage is Stage.PREPARING
    with pytest.raises(DomainRuleError, match="not a professional has confirmed"):
        case.schedule()
    case.confirmed("central_person")
    with pytest.raises(InvalidFieldError, match="before today"):
        case.app.schedule(case.id, case.app.today() - timedelta(days=1), "x", COORDINATOR)
    case.schedule()
    assert case.app.get(case.id).stage is Stage.SCHEDULED
    later = case.app.today() + timedelta(days=3)
    moved = case.app.schedule(case.id, later, "the town hall", COORDINATOR)
    assert (moved.scheduled_on, moved.venue) == (later, "the town hall")


def _scheduled(make_app: Any, model: str) -> tuple[Case, dict[str, str]]:
    case = Case(make_app, model=model)
    case.app.record_contact(case.id, COORDINATOR)
    ids = {
        "central": case.confirmed("central_person"),
        "family": case.confirmed("family"),
        "pro": case.confirmed("professional", organisation="Jeugdzorg Utrecht"),
        "expert": case.confirmed("expert", organisation="GGD", share=True),
        "absent_central": case.confirmed("central_person"),
    }
    case.schedule()
    return case, ids


def test_the_conference_carries_parts_and_attendance_by_role_and_the_participants_by_id(
    make_app: Any,
) -> None:
    case, ids = _scheduled(make_app, "family")
    case.app.withdraw_consent(
        case.id, ids["expert"], "share_details", participant(case.id, ids["expert"])
    )
    parts = {
        "information": part([ids["central"], ids["family"], ids["pro"], ids["expert"]], True),
        "plan_making": part([ids["central"], ids["family"]], interpreter=True),
    }
    held = case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR)
    assert held.stage is Stage.CONFERENCE_HELD
    (event,) = case.published(ConferenceHeld)
    assert event.parts == ["information", "plan_making"]  # presentation did not take place
    assert event.attendance == {
        "information": {
            "central_person": 1,
            "family": 1,
            "professional": 1,
            "expert": 1,
            "coordinator": 1,
        },
        "plan_making": {"central_person": 1, "family": 1, "interpreter": 1},
    }
    refs = {p.participant_id: (p.role, p.organisation) for p in event.participants}
    assert refs == {
        ids["central"]: ("central_person", None),
        ids["family"]: ("family", None),
        ids["pro"]: ("professional", "Jeugdzorg Utrecht"),
        ids["expert"]: ("expert", None),  # withdrew sharing: no organisation
        ids["absent_central"]: ("central_person", None),  # every central person
    }


@pytest.mark.parametrize("outsider", ["pro", "expert", "coordinator"])
def test_private_family_time_is_refused_with_an_outsider_present(
    make_app: Any, outsider: str
) -> None:
    case, ids = _scheduled(make_app, "family")
    present = [ids["family"]] + ([ids[outsider]] if outsider != "coordinator" else [])
    parts = {"plan_making": part(present, coordinator=outsider == "coordinator")}
    with pytest.raises(DomainRuleError, match="private family time"):
        case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR)
    assert case.app.get(case.id).stage is Stage.SCHEDULED  # nothing half-stored


@pytest.mark.parametrize("model", ["group", "restorative", "learning_circle"])
def test_the_coordinator_chairs_part_two_and_professionals_may_stay_throughout(
    make_app: Any, model: str
) -> None:
    case, ids = _scheduled(make_app, model)
    everyone = [ids["central"], ids["family"], ids["pro"]]
    with pytest.raises(DomainRuleError, match="coordinator chairs part two"):
        case.app.hold_conference(
            case.id, case.app.today(), {"plan_making": part(everyone)}, COORDINATOR
        )
    parts = {name: part(everyone, True) for name in ("information", "plan_making", "presentation")}
    assert case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR).held_on


def test_who_was_present_must_be_a_participant_who_is_coming(make_app: Any) -> None:
    case, ids = _scheduled(make_app, "family")
    parts = {"information": part([ids["central"], "p99"], True)}
    with pytest.raises(InvalidFieldError, match="unknown participant") as unknown:
        case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR)
    assert unknown.value.loc == ("parts", "information", "present", 1)
    case.app.decline(case.id, ids["family"], "", COORDINATOR)
    parts = {"plan_making": part([ids["central"], ids["family"]])}
    with pytest.raises(InvalidFieldError, match="not coming") as declined:
        case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR)
    assert declined.value.loc == ("parts", "plan_making", "present", 1)
    with pytest.raises(InvalidFieldError, match="listed twice"):
        case.app.hold_conference(
            case.id, case.app.today(), {"information": part([ids["pro"], ids["pro"]])}, COORDINATOR
        )
    with pytest.raises(InvalidFieldError, match="nobody was present"):
        case.app.hold_conference(
            case.id, case.app.today(), {"information": part([], True)}, COORDINATOR
        )
    with pytest.raises(DomainRuleError, match="the plan is made by the family"):
        parts = {"information": part([ids["pro"]], True), "plan_making": part([])}
        case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR)


def test_a_conference_is_recorded_once_it_was_scheduled(make_app: Any) -> None:
    case = Case(make_app)
    pid = case.confirmed("family")
    with pytest.raises(DomainRuleError, match="once it was scheduled"):
        case.app.hold_conference(
            case.id, case.app.today(), {"plan_making": part([pid])}, COORDINATOR
        )


def test_a_missed_deadline_is_recorded_once_and_the_list_agrees(make_app: Any) -> None:
    case = Case(make_app)
    app, clock = case.app, case.clock
    assert app.record_overdue() == 0
    clock.advance(timedelta(days=3, seconds=1))
    (row,) = app.views.cases(overdue=True)
    assert row["case_id"] == case.id
    assert app.record_overdue() == 1
    assert app.record_overdue() == 0  # once per deadline
    assert [e.type for e in app.history(case.id)][-1] == "FirstContactOverdue"
    assert app.views.cases(overdue=True)[0]["overdue"] is True
    # A reassignment before contact gives the new coordinator a new deadline.
    app.register_coordinator("c2", ["Utrecht"], ["nl"], 5, MANAGER)
    app.assign_by_hand(case.id, ["c2"], "c1 is ill", MANAGER)
    assert app.views.cases(overdue=True) == []
    clock.advance(timedelta(days=4))
    assert app.record_overdue() == 1
    app.record_contact(case.id, principal("c2", "coordinator"))
    assert app.views.cases(overdue=True) == [] and app.record_overdue() == 0


def test_the_list_is_projected_from_the_log_and_filters(make_app: Any) -> None:
    case = Case(make_app)
    elsewhere = request_received(region="Zeeland", model="group")
    case.app.process(delivered(elsewhere, 2))
    case.app.record_contact(case.id, COORDINATOR)
    rows = {row["case_id"]: row for row in case.app.views.cases()}
    assert rows[case.id]["stage"] == "preparing"
    assert rows[elsewhere.case_id]["stage"] == "waiting_for_coordinator"
    assert rows[elsewhere.case_id]["waiting_reason"] == "no coordinator works in region Zeeland"
    assert [r["case_id"] for r in case.app.views.cases(model="group")] == [elsewhere.case_id]
    assert [r["case_id"] for r in case.app.views.cases(coordinator_id="c1")] == [case.id]
    assert [r["case_id"] for r in case.app.views.cases(region="zeeland")] == [elsewhere.case_id]
    # After a restart the list is rebuilt from the log, and agrees with the aggregates.
    before = case.app.views.cases()
    case.app.close()
    restarted = make_app(CoordinationApplication, clock=case.clock)
    assert restarted.views.cases() == before
    for row in before:
        assert row["stage"] == restarted.get(row["case_id"]).stage.value


def test_no_name_or_contact_leaves_the_store(make_app: Any) -> None:
    case, ids = _scheduled(make_app, "family")
    _, pid = case.app.invite(
        case.id,
        COORDINATOR,
        name="Geheime Naam",
        role="family",
        contact="geheim@example.org",
        organisation=None,
        language="nl",
    )
    case.app.confirm(case.id, pid, True, COORDINATOR)
    case.app.withdraw_consent(case.id, pid, "share_details", participant(case.id, pid))
    parts = {"plan_making": part([ids["family"], pid])}
    case.app.hold_conference(case.id, case.app.today(), parts, COORDINATOR)
    published = [e for e in map(translate, case.app.events.get(case.id)) if e is not None]
    text = json.dumps([e.model_dump(mode="json") for e in published])
    history = json.dumps([h.model_dump(mode="json") for h in case.app.history(case.id)])
    for personal in ("Geheime", "geheim@example.org", "someone@example.org"):
        assert personal not in text and personal not in history


def test_a_decline_is_recorded_even_while_the_case_waits_for_a_new_coordinator(
    make_app: Any,
) -> None:
    case = Case(make_app)
    pid = case.invite("family")
    case.app.declare_relation("c1", case.id, "other_stake", "", MANAGER)
    assert case.app.get(case.id).stage is Stage.WAITING
    declined = case.app.decline(case.id, pid, "", participant(case.id, pid))
    assert declined.participants[pid].invitation == "declined"


def test_scheduling_waits_until_everyone_confirmed_is_informed_or_has_a_reason(
    make_app: Any,
) -> None:
    case = Case(make_app)
    case.app.record_contact(case.id, COORDINATOR)
    central = case.confirmed("central_person", inform=False)
    aunt = case.confirmed("family", inform=False)
    declined = case.invite("network")
    case.app.decline(case.id, declined, "", COORDINATOR)
    with pytest.raises(DomainRuleError, match=r"p1, p2 confirmed but have not been informed"):
        case.schedule()
    with pytest.raises(DomainRuleError, match="nothing to prepare them for"):
        case.app.record_informed(case.id, declined, None, COORDINATOR)
    with pytest.raises(InvalidFieldError) as future:
        case.app.record_informed(case.id, central, case.app.today() + timedelta(1), COORDINATOR)
    assert future.value.loc == ("on",)
    case.app.record_informed(case.id, central, case.app.today(), COORDINATOR)
    with pytest.raises(DomainRuleError, match=r"p2 confirmed but has not been informed"):
        case.schedule()
    with pytest.raises(InvalidFieldError, match="say why"):
        case.app.record_not_informed(case.id, aunt, "  ", COORDINATOR)
    with pytest.raises(NotPermittedError, match="recording that a participant was informed"):
        case.app.record_not_informed(case.id, aunt, "abroad", principal("c2", "coordinator"))
    case.app.record_not_informed(case.id, aunt, "abroad until the day itself", COORDINATOR)
    with pytest.raises(DomainRuleError, match="was informed on"):
        case.app.record_not_informed(case.id, central, "changed my mind", COORDINATOR)
    case.schedule()
    scheduled = case.app.get(case.id)
    assert scheduled.stage is Stage.SCHEDULED and scheduled.uninformed == []
    assert scheduled.participants[central].informed_on == case.app.today()
    assert scheduled.participants[aunt].informed_on is None
    # A participant confirmed later is informed before the conference is moved.
    late = case.confirmed("network", inform=False)
    with pytest.raises(DomainRuleError, match=f"{late} confirmed but has not been informed"):
        case.app.schedule(case.id, case.app.today() + timedelta(2), "elsewhere", COORDINATOR)
    # Informed after all: the reason why not is gone.
    aunt_now = case.app.record_informed(case.id, aunt, None, COORDINATOR).participants[aunt]
    assert aunt_now.not_informed_reason is None and aunt_now.informed_on is not None
