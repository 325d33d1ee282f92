"""Plans' rules, through its application on a real SQLite store: the plan opens on whichever
upstream event comes first; writing, versions, acceptance, the professional's sign-off,
distribution, delivery records, the printed copy and the case list."""

from __future__ import annotations

import itertools
import uuid
from datetime import date
from typing import Any

import pytest

from services.plans.api import PlanContent
from services.plans.app import PendingEmail, PlansApplication
from services.plans.bus import translate
from services.plans.delivery import DeliveryWorker
from services.plans.document import document_of, render_html, render_pdf
from services.plans.domain import Channel, DeliveryStatus, Stage
from shared.claims import (
    ClarificationForPlan,
    ProfessionalForPlan,
    QuestionForPlan,
    RequirementForPlan,
)
from shared.errors import DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import (
    ConferenceHeld,
    ConferencePart,
    ParticipantConsentWithdrawn,
    ParticipantRef,
    PlanDistributed,
)
from tests.factories import (
    NOW,
    acted,
    case_ended,
    coordinator_assigned,
    delivered,
    participant,
    principal,
    register_partners,
    request_received,
)

COORDINATOR = principal("c1", "coordinator")
PROFESSIONAL = principal("jz-anna", "professional")

PARTICIPANTS = [
    ParticipantRef(participant_id="p-johan", role="central_person"),
    ParticipantRef(participant_id="p-father", role="family"),
    ParticipantRef(participant_id="p-herman", role="family"),
    ParticipantRef(participant_id="p-worker", role="professional", organisation="Jeugdzorg"),
]

PLAN: dict[str, Any] = {
    "agreements": [
        {"who": ["p-father"], "what": "Johan grows up with his father"},
        {
            "who": ["p-father", "p-herman"],
            "what": "map the finances together",
            "where": "at father's",
            "when": {"on": "2026-07-03"},
        },
        {
            "who": ["p-johan"],
            "what": "goes swimming with Wim",
            "when": {"recurring": "every Friday"},
        },
    ],
    "if_something_does_not_work": "aunt Edith calls mother",
    "watched_by": "p-herman",
    "next_meeting_on": "2026-09-29",
    "professional_support": [{"organisation": "Jeugdzorg", "what": "coaches father"}],
}


def content_body(plan: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """The content as a client sends it (JSON)."""
    return PlanContent.model_validate((plan or PLAN) | changes).model_dump(mode="json")


def content(plan: dict[str, Any] | None = None, **changes: Any) -> Any:
    """The content as the HTTP edge hands it over (validated, as the domain's value)."""
    return PlanContent.model_validate((plan or PLAN) | changes).value()


def conference(case_id: uuid.UUID, participants: list[ParticipantRef] | None = None) -> Any:
    return ConferenceHeld(
        case_id=case_id,
        model="family",
        held_on=date(2026, 4, 1),
        parts=[ConferencePart.INFORMATION, ConferencePart.PLAN_MAKING, ConferencePart.PRESENTATION],
        participants=PARTICIPANTS if participants is None else participants,
        attended={},
    )


def consent_withdrawn(case_id: uuid.UUID, participant_id: str) -> ParticipantConsentWithdrawn:
    return ParticipantConsentWithdrawn(
        case_id=case_id, model="family", participant_id=participant_id, withdrawn_at=NOW
    )


#: Upstream positions for ``held_case``: each case's events must be new positions of their origin,
#: or tracking rightly takes them for ones already applied.
_positions = itertools.count(100)


QUESTIONS = [
    QuestionForPlan(
        question_id="q1", text="Where can Johan (8) grow up safely, and what does that need?"
    ),
    QuestionForPlan(question_id="q2", text="How do Johan and Wim stay close?"),
]
REQUIREMENT = RequirementForPlan(
    requirement_id="m1",
    text="Living with this man is not a solution.",
    set_by=ProfessionalForPlan(
        name="Anna", organisation="Jeugdzorg", role="care worker", subject="jz-anna"
    ),
)


def clarification(minimum: bool = False) -> ClarificationForPlan:
    """What intake answers plans' claim check with."""
    return ClarificationForPlan(questions=QUESTIONS, requirements=[REQUIREMENT] if minimum else [])


def held_case(app: PlansApplication, minimum: bool = False, **request: Any) -> uuid.UUID:
    """A case whose request (and its clarification, from intake) and conference plans has
    heard of."""
    case_id = uuid.uuid4()
    request_event = request_received(case_id, has_minimum_requirements=minimum, **request)
    app.process(delivered(request_event, next(_positions)))
    assert app.note_clarification(case_id, clarification(minimum))
    app.process(delivered(conference(case_id), next(_positions), origin="coordination"))
    # Coordinator c1 prepares it: the coordinator of the case may write its plan.
    app.process(delivered(coordinator_assigned(case_id), next(_positions), origin="coordination"))
    return case_id


def published(app: PlansApplication, case_id: uuid.UUID) -> list[PlanDistributed]:
    return [e for e in map(translate, app.events.get(case_id)) if isinstance(e, PlanDistributed)]


def test_the_plan_opens_on_whichever_upstream_event_comes_first(make_app) -> None:
    app = make_app(PlansApplication)
    first_request, first_conference = uuid.uuid4(), uuid.uuid4()
    app.process(delivered(request_received(first_request, languages=["en", "nl"]), 1))
    app.process(delivered(conference(first_request), 1, origin="coordination"))
    app.process(delivered(conference(first_conference), 2, origin="coordination"))
    app.process(delivered(coordinator_assigned(first_conference), 3, origin="coordination"))
    app.process(delivered(request_received(first_conference, has_minimum_requirements=True), 2))
    for case_id in (first_request, first_conference):
        plan = app.get(case_id)
        assert plan.request_known and plan.stage is Stage.CONFERENCE_HELD
        assert list(plan.participants) == ["p-johan", "p-father", "p-herman", "p-worker"]
    assert app.get(first_request).languages == ["en", "nl"]
    assert app.get(first_conference).has_minimum_requirements
    assert app.get(first_conference).coordinator_ids == ["c1"]


def test_a_plan_is_written_only_after_the_conference_and_never_for_a_stopped_case(
    make_app,
) -> None:
    app = make_app(PlansApplication)
    waiting, stopped = uuid.uuid4(), uuid.uuid4()
    app.process(delivered(coordinator_assigned(waiting), 1))
    app.process(delivered(case_ended(stopped, "stopped", "safety"), 2))
    app.process(delivered(coordinator_assigned(stopped), 3))
    with pytest.raises(DomainRuleError, match="after the conference"):
        app.write(waiting, content(), COORDINATOR)
    with pytest.raises(DomainRuleError, match="stopped"):
        app.write(stopped, content(), COORDINATOR)
    with pytest.raises(DomainRuleError, match="stopped"):
        app.record_recipients(stopped, [{"participant_id": "p1", "role": "family"}], COORDINATOR)


def test_a_plan_made_without_a_meeting_names_its_participants_first(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = uuid.uuid4()
    app.process(delivered(case_ended(case_id, "plan_without_meeting"), 1))
    app.process(delivered(coordinator_assigned(case_id), 2))
    with pytest.raises(DomainRuleError, match="participants are not known"):
        app.write(case_id, content(), COORDINATOR)
    with pytest.raises(InvalidFieldError) as missing_role:
        app.record_recipients(case_id, [{"participant_id": "p-johan"}], COORDINATOR)
    assert missing_role.value.loc == ("recipients", 0, "role")
    entries = [{"participant_id": p.participant_id, "role": p.role.value} for p in PARTICIPANTS]
    app.record_recipients(case_id, entries, COORDINATOR)
    plan = app.write(case_id, content(), COORDINATOR)
    assert plan.stage is Stage.WRITTEN and plan.current_version == 1


def test_only_the_coordinator_writes_up_the_plan(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    with pytest.raises(NotPermittedError, match="writing up the plan needs the role coordinator"):
        app.write(case_id, content(), participant(case_id, "p-herman"))
    with pytest.raises(NotPermittedError, match=r"assigned to this case \(c1\)"):
        app.write(case_id, content(), principal("c2", "coordinator"))
    texel = principal("rm-texel", "regional_manager", regions=("Texel",))
    with pytest.raises(NotPermittedError, match="regional_manager for region Utrecht"):
        app.write(case_id, content(), texel)
    plan = app.write(case_id, content(), principal("rm", "regional_manager"))
    assert plan.versions[0]["written_by"]["on_behalf_of"] == "c1"


def test_unknown_participant_ids_are_refused_naming_the_field(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    wrong_who = content(agreements=[{"who": ["p-father", "p-nobody"], "what": "cooks"}])
    with pytest.raises(InvalidFieldError) as who:
        app.write(case_id, wrong_who, COORDINATOR)
    assert who.value.loc == ("agreements", 0, "who", 1)
    with pytest.raises(InvalidFieldError) as watcher:
        app.write(case_id, content(watched_by="uncle Herman"), COORDINATOR)
    assert watcher.value.loc == ("watched_by",)
    with pytest.raises(InvalidFieldError) as recipient:
        app.record_recipients(
            case_id,
            [{"participant_id": "p-father"}, {"participant_id": "p-x", "role": "family"}],
            COORDINATOR,
        )
    assert recipient.value.loc == ("recipients", 1, "participant_id")
    with pytest.raises(InvalidFieldError) as role:
        app.record_recipients(
            case_id, [{"participant_id": "p-father", "role": "network"}], COORDINATOR
        )
    assert role.value.loc == ("recipients", 0, "role")
    with pytest.raises(InvalidFieldError) as early:
        app.write(case_id, content(next_meeting_on="2026-03-01"), COORDINATOR)
    assert early.value.loc == ("next_meeting_on",)
    assert app.get(case_id).versions == []  # nothing half-stored


def test_every_revision_is_a_new_version_and_agreements_keep_their_ids(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    first = app.write(case_id, content(), COORDINATOR).written_version(1)
    assert [a.id for a in first["content"].agreements] == ["a1", "a2", "a3"]
    kept = {**PLAN["agreements"][0], "id": "a1", "what": "Johan lives with his father"}
    revised = content(
        agreements=[kept, {"who": ["p-herman"], "what": "pays the after-school care"}]
    )
    plan = app.write(case_id, revised, COORDINATOR)
    assert [a.id for a in plan.written_version(2)["content"].agreements] == ["a1", "a4"]
    assert plan.written_version(1)["content"].agreements[0].what == (
        "Johan grows up with his father"
    )
    with pytest.raises(InvalidFieldError) as unknown:
        app.write(case_id, content(agreements=[{**kept, "id": "a99"}]), COORDINATOR)
    assert unknown.value.loc == ("agreements", 0, "id")
    with pytest.raises(InvalidFieldError, match="twice"):
        app.write(case_id, content(agreements=[kept, kept]), COORDINATOR)


def test_distribution_needs_the_familys_acceptance_of_the_current_version(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    with pytest.raises(DomainRuleError, match="no written plan"):
        app.distribute(case_id, [], COORDINATOR)
    app.write(case_id, content(), COORDINATOR)
    with pytest.raises(DomainRuleError, match="not been accepted"):
        app.distribute(case_id, [], COORDINATOR)
    with pytest.raises(NotPermittedError, match="acceptance needs"):
        app.accept(case_id, 1, participant(uuid.uuid4(), "p-herman"))  # of another case
    app.accept(case_id, 1, participant(case_id, "p-herman"))
    with pytest.raises(DomainRuleError, match="already accepted"):
        app.accept(case_id, 1, COORDINATOR)
    with pytest.raises(NotPermittedError, match="acceptance needs"):
        app.accept(case_id, 1, PROFESSIONAL)
    app.write(case_id, content(watched_by="p-father"), COORDINATOR)
    with pytest.raises(DomainRuleError, match=r"only the current version \(2\)"):
        app.accept(case_id, 1, COORDINATOR)
    with pytest.raises(DomainRuleError, match="version 2 has not been accepted"):
        app.distribute(case_id, [], COORDINATOR)
    app.accept(case_id, 2, COORDINATOR)
    with pytest.raises(DomainRuleError, match=r"only the current version \(2\)"):
        app.distribute(case_id, [], COORDINATOR, 1)
    assert app.distribute(case_id, [], COORDINATOR, 2).stage is Stage.DISTRIBUTED
    with pytest.raises(DomainRuleError, match="already distributed"):
        app.distribute(case_id, [], COORDINATOR)


def test_distribution_waits_until_plans_has_heard_of_the_request(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = uuid.uuid4()
    app.process(delivered(conference(case_id), 1, origin="coordination"))
    app.process(delivered(coordinator_assigned(case_id), 2, origin="coordination"))
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    with pytest.raises(DomainRuleError, match="not yet heard of the accepted request"):
        app.distribute(case_id, [], COORDINATOR)
    app.process(delivered(request_received(case_id), 1))
    with pytest.raises(DomainRuleError, match="not yet received the conference questions"):
        app.distribute(case_id, [], COORDINATOR)
    assert app.note_clarification(case_id, clarification())
    assert not app.note_clarification(case_id, clarification())  # once
    app.distribute(case_id, [], COORDINATOR)


def test_a_minimum_requirement_needs_a_professionals_sign_off_of_each_version(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app, minimum=True)
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    with pytest.raises(DomainRuleError, match="a professional must first record"):
        app.distribute(case_id, [], COORDINATOR)
    with pytest.raises(NotPermittedError, match="signing off the plan needs the role professional"):
        app.sign_off(case_id, 1, True, None, COORDINATOR)
    texel = principal("jz-texel", "professional", regions=("Texel",))
    with pytest.raises(NotPermittedError, match="professional for region Utrecht"):
        app.sign_off(case_id, 1, True, None, texel)
    with pytest.raises(InvalidFieldError) as no_reason:
        app.sign_off(case_id, 1, False, "  ", PROFESSIONAL)
    assert no_reason.value.loc == ("reason",)
    app.sign_off(case_id, 1, False, "father still lives with the man", PROFESSIONAL)
    with pytest.raises(DomainRuleError, match="does not meet the minimum requirement"):
        app.distribute(case_id, [], COORDINATOR)
    with pytest.raises(DomainRuleError, match="already signed off"):
        app.sign_off(case_id, 1, True, None, PROFESSIONAL)  # a refusal stands for its version

    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 2, COORDINATOR)
    with pytest.raises(DomainRuleError, match="version 2 meets it"):
        app.distribute(case_id, [], COORDINATOR)  # the new version needs its own sign-off
    with pytest.raises(DomainRuleError, match="only the current version"):
        app.sign_off(case_id, 1, True, None, PROFESSIONAL)
    app.sign_off(case_id, 2, True, None, PROFESSIONAL)
    app.distribute(case_id, [], COORDINATOR)
    assert app.get(case_id).sign_off_of(2)["by"] == acted(PROFESSIONAL)


def test_no_sign_off_where_no_minimum_requirement_was_set(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    app.write(case_id, content(), COORDINATOR)
    with pytest.raises(DomainRuleError, match="no minimum requirement"):
        app.sign_off(case_id, 1, True, None, PROFESSIONAL)


def test_distribution_reaches_every_participant_and_publishes_roles_not_people(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    app.record_recipients(
        case_id,
        [
            {"participant_id": "p-father", "name": "Kees", "channel": "email", "email": "k@x.nl"},
            {
                "participant_id": "p-herman",
                "name": "Herman",
                "channel": "post",
                "address": "Dorp 1",
            },
        ],
        COORDINATOR,
    )
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    app.process(delivered(consent_withdrawn(case_id, "p-worker"), 3, origin="coordination"))
    register_partners(app, jeugdzorg="Jeugdzorg", basisschool_de_linde="Basisschool De Linde")
    shared = ["jeugdzorg", "basisschool-de-linde", "jeugdzorg"]
    plan = app.distribute(case_id, shared, COORDINATOR)

    [event] = published(app, case_id)
    assert event.plan_version == 1 and event.next_meeting_on == date(2026, 9, 29)
    assert event.agreement_ids == ["a1", "a2", "a3"]
    assert event.shared_with_organisations == ["jeugdzorg", "basisschool-de-linde"]
    # The worker withdrew consent to share their details: their organisation is not listed.
    assert [(r.role, r.organisation) for r in event.recipients] == [
        ("central_person", None),
        ("family", None),
        ("family", None),
        ("professional", None),
    ]
    assert "Kees" not in event.model_dump_json() and "k@x.nl" not in event.model_dump_json()
    channels = {d["participant_id"]: (d["channel"], d["status"]) for d in plan.deliveries}
    assert channels == {
        "p-johan": ("by_hand", "pending"),
        "p-father": ("email", "pending"),
        "p-herman": ("post", "pending"),
        "p-worker": ("by_hand", "pending"),
    }
    assert app.pending_emails() == [PendingEmail(case_id, 1, "p-father")]


def test_the_coordinator_records_each_copy_posted_or_handed_over_once(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    with pytest.raises(DomainRuleError, match="was not distributed"):
        app.record_handover(case_id, 1, "p-johan", Channel.BY_HAND, COORDINATOR)
    app.distribute(case_id, [], COORDINATOR)
    plan = app.record_handover(case_id, 1, "p-johan", Channel.BY_HAND, COORDINATOR)
    assert plan.delivery(1, "p-johan")["status"] == DeliveryStatus.DELIVERED
    with pytest.raises(DomainRuleError, match="already delivered"):
        app.record_handover(case_id, 1, "p-johan", Channel.POST, COORDINATOR)
    with pytest.raises(DomainRuleError, match="was not distributed"):
        app.record_handover(case_id, 1, "p-nobody", Channel.POST, COORDINATOR)


async def test_without_smtp_an_email_copy_is_recorded_not_sent_once(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app)
    app.record_recipients(
        case_id,
        [{"participant_id": "p-father", "channel": "email", "email": "k@x.nl"}],
        COORDINATOR,
    )
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    app.distribute(case_id, [], COORDINATOR)
    worker = DeliveryWorker(app, mailer=None)
    assert await worker.deliver_pending() == 1
    assert await worker.deliver_pending() == 0
    delivery = app.get(case_id).delivery(1, "p-father")
    assert (delivery["status"], delivery["detail"]) == ("not_sent", "no SMTP configured")
    # The coordinator hands that copy over instead.
    app.record_handover(case_id, 1, "p-father", Channel.BY_HAND, COORDINATOR)
    assert app.get(case_id).delivery(1, "p-father")["status"] == "delivered"


def test_the_copy_prints_names_given_roles_otherwise_and_no_withdrawn_name(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app, languages=["en"])
    app.record_recipients(
        case_id,
        [
            {"participant_id": "p-father", "name": "Kees <b>de Vries</b>"},
            {"participant_id": "p-herman", "name": "Herman"},
        ],
        COORDINATOR,
    )
    app.write(case_id, content(), COORDINATOR)
    html = render_html(document_of(app.get(case_id), 1))
    assert "Agreements" in html and "every Friday" in html and "July 3, 2026" in html
    assert "Kees &lt;b&gt;de Vries&lt;/b&gt;" in html and "<b>de Vries" not in html
    assert "central person" in html  # Johan's name was not given
    assert "Where can Johan (8) grow up safely" in html and "How do Johan and Wim" in html
    app.process(delivered(consent_withdrawn(case_id, "p-herman"), 3, origin="coordination"))
    after = render_html(document_of(app.get(case_id), 1))
    assert "Herman" not in after and "family member" in after
    dutch = render_html(document_of(app.get(case_id), 1, "nl"))
    assert "Afspraken" in dutch and "3 juli 2026" in dutch


def test_a_language_kring_has_no_text_for_prints_in_dutch_and_says_so(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app, languages=["de", "nl"])
    app.record_recipients(
        case_id, [{"participant_id": "p-father", "name": "Gülşen Łukasz"}], COORDINATOR
    )
    app.write(case_id, content(), COORDINATOR)
    document = document_of(app.get(case_id), 1)
    assert document.language == "nl" and "Afspraken" in render_html(document)
    assert "Gülşen Łukasz" in render_html(document)
    assert document.fallback_note is not None and "Duits, de" in document.fallback_note
    assert document.fallback_note in render_html(document)
    pdf = render_pdf(document)
    assert pdf.startswith(b"%PDF") and pdf == render_pdf(document_of(app.get(case_id), 1))


def test_the_case_list_has_stage_version_and_distribution(make_app) -> None:
    app = make_app(PlansApplication)
    written, distributed, waiting = held_case(app), held_case(app), uuid.uuid4()
    app.process(delivered(coordinator_assigned(waiting), 9, origin="coordination"))
    for case_id in (written, distributed):
        app.write(case_id, content(), COORDINATOR)
    app.accept(distributed, 1, COORDINATOR)
    app.distribute(distributed, [], COORDINATOR)
    rows = {row["case_id"]: row for row in app.views.cases(COORDINATOR)}
    assert app.views.cases(principal("c2", "coordinator")) == []
    assert set(r["case_id"] for r in app.views.cases(principal("rm", "regional_manager"))) == {
        written,
        distributed,
    }  # the waiting case's region is not known to plans yet
    assert (rows[written]["stage"], rows[written]["current_version"]) == (Stage.WRITTEN, 1)
    assert rows[written]["distributed"] is False
    assert rows[distributed]["distributed"] and rows[distributed]["distributed_version"] == 1
    assert rows[waiting]["stage"] == Stage.AWAITING_CONFERENCE
    assert [r["case_id"] for r in app.views.cases(COORDINATOR, stage=Stage.DISTRIBUTED)] == [
        distributed
    ]
    assert app.views.cases(COORDINATOR, model="group") == []


def test_a_request_noted_before_plans_knew_regions_replays_without_one(make_app, tmp_path) -> None:
    from tests.factories import rewrite_stored_states

    app = make_app(PlansApplication)
    case_id = held_case(app)
    assert app.get(case_id).region == "Utrecht"

    def as_version_1(name: str, state: dict[str, Any]) -> None:
        if name == "RequestNoted":
            state.pop("region", None)
            state.pop("class_version", None)

    rewrite_stored_states(app, tmp_path / "plans.sqlite", as_version_1)
    again = make_app(PlansApplication)
    plan = again.get(case_id)
    assert plan.request_known and plan.region is None
    # Its region unknown, the plan is its coordinator's to see, no regional manager's yet.
    assert [r["case_id"] for r in again.views.cases(COORDINATOR)] == [case_id]
    assert again.views.cases(principal("rm", "regional_manager")) == []


def test_the_sign_off_belongs_to_the_professional_who_set_the_requirement(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app, minimum=True)
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    colleague = principal("jz-bram", "professional")  # of the region, but not who set it
    with pytest.raises(NotPermittedError, match=r"m1 needs Anna \(Jeugdzorg\), who set it"):
        app.sign_off(case_id, 1, True, None, colleague)
    with pytest.raises(InvalidFieldError) as unknown:
        app.sign_off(case_id, 1, True, None, PROFESSIONAL, ["m9"])
    assert unknown.value.loc == ("requirement_ids", 0)
    # Anna is away: the regional manager names Bram in her place, with why (recorded).
    with pytest.raises(NotPermittedError, match="naming who signs off"):
        app.name_signatory(case_id, "m1", "jz-bram", "Bram", "Anna is away", COORDINATOR)
    with pytest.raises(InvalidFieldError, match="needs a reason"):
        app.name_signatory(case_id, "m1", "jz-bram", "Bram", " ", principal("rm"))
    plan = app.name_signatory(case_id, "m1", "jz-bram", "Bram", "Anna is away", principal("rm"))
    assert plan.signatories["m1"].named_by == "rm" and plan.signatories["m1"].reason
    with pytest.raises(NotPermittedError, match="Bram, named by the regional manager"):
        app.sign_off(case_id, 1, True, None, PROFESSIONAL)  # Anna no longer signs it
    plan = app.sign_off(case_id, 1, True, None, colleague)
    assert plan.sign_off_of(1, "m1")["requirement_ids"] == ["m1"]
    app.distribute(case_id, [], COORDINATOR)


def test_a_requirement_whose_setter_has_no_sign_in_waits_for_a_named_professional(
    make_app,
) -> None:
    app = make_app(PlansApplication)
    case_id = uuid.uuid4()
    app.process(delivered(request_received(case_id, has_minimum_requirements=True), 70))
    anonymous = REQUIREMENT.model_copy(
        update={"set_by": REQUIREMENT.set_by.model_copy(update={"subject": None})}
    )
    with pytest.raises(DomainRuleError, match="not yet received the minimum requirements"):
        app.process(delivered(conference(case_id), 71, origin="coordination"))
        app.process(delivered(coordinator_assigned(case_id), 72, origin="coordination"))
        app.write(case_id, content(), COORDINATOR)
        app.sign_off(case_id, 1, True, None, PROFESSIONAL)
    app.note_clarification(
        case_id, ClarificationForPlan(questions=QUESTIONS, requirements=[anonymous])
    )
    with pytest.raises(NotPermittedError, match="or a professional the regional manager names"):
        app.sign_off(case_id, 1, True, None, PROFESSIONAL)


def test_agreements_say_which_questions_they_answer_and_the_copy_groups_them(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = held_case(app, minimum=True, languages=["en"])
    answering = [
        PLAN["agreements"][0] | {"answers": ["q1"]},
        PLAN["agreements"][1] | {"answers": ["q1", "q2", "q1"]},
        PLAN["agreements"][2] | {"answers": ["q2"]},
    ]
    with pytest.raises(InvalidFieldError) as unknown:
        app.write(case_id, content(agreements=[answering[0] | {"answers": ["q7"]}]), COORDINATOR)
    assert unknown.value.loc == ("agreements", 0, "answers", 0)
    plan = app.write(case_id, content(agreements=answering), COORDINATOR)
    assert [a.answers for a in plan.written_version(1)["content"].agreements] == [
        ["q1"],
        ["q1", "q2"],
        ["q2"],
    ]
    document = document_of(plan, 1)
    assert [(q.text[:8], q.answered_by) for q in document.questions] == [
        ("Where ca", "Agreements for this question: 1, 2"),
        ("How do J", "Agreements for this question: 2, 3"),
    ]
    html = render_html(document)
    assert "The questions" in html and "Minimum requirement for a safe plan" in html
    assert "Living with this man is not a solution." in html
    assert "Set by Anna (care worker, Jeugdzorg)" in html


def test_a_revision_asked_for_at_the_familys_meeting_shows_until_the_next_version(
    make_app,
) -> None:
    from datetime import timedelta

    from services.plans.api import PlanView
    from shared.clock import ManualClock
    from shared.events import PlanRevisionRequested

    clock = ManualClock()
    app = make_app(PlansApplication, clock=clock)
    case_id = held_case(app)
    app.write(case_id, content(), COORDINATOR)
    clock.advance(timedelta(days=60))
    event = PlanRevisionRequested(
        case_id=case_id, model="family", timer_id="next_meeting", requested_at=clock.now()
    )
    app.process(delivered(event, next(_positions), origin="followup"))
    assert PlanView.of(app.get(case_id)).revision_requested_at == clock.now()
    clock.advance(timedelta(days=2))
    assert app.write(case_id, content(), COORDINATOR).revision_requested is None


def test_a_plan_stored_before_questions_and_values_replays_and_prints_as_it_was(
    make_app, tmp_path
) -> None:
    """Version 1 events: the content a dict with the coordinator's one question, the
    conference's participants dicts, a sign-off that named no requirement, and no
    clarification from intake. They read as the values of today; the copy prints the question
    the version copied, and the sign-off as it always did."""
    from tests.factories import plain, rewrite_stored_states

    app = make_app(PlansApplication)
    case_id = uuid.uuid4()
    app.process(delivered(request_received(case_id, has_minimum_requirements=True), 990))
    app.process(delivered(conference(case_id), 991, origin="coordination"))
    app.process(delivered(coordinator_assigned(case_id), 992, origin="coordination"))
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    app.note_clarification(case_id, clarification(minimum=True))
    app.sign_off(case_id, 1, True, None, PROFESSIONAL)

    def as_version_1(name: str, state: dict[str, Any]) -> None:
        if name == "Written":
            state["content"] = plain(state["content"]) | {"question": "Where can Johan live?"}
            for agreement in state["content"]["agreements"]:
                agreement.pop("answers")
        elif name == "ConferenceNoted":
            state["participants"] = plain(state["participants"])
        elif name == "SignedOff":
            state.pop("requirement_ids")
        else:
            return
        state.pop("class_version", None)

    rewrite_stored_states(app, tmp_path / "plans.sqlite", as_version_1)
    again = make_app(PlansApplication)
    plan = again.get(case_id)
    written = plan.written_version(1)["content"]
    assert written.question == "Where can Johan live?" and written.agreements[0].id == "a1"
    assert plan.participants["p-father"].role == "family"
    assert plan.sign_off_of(1, "m1")["requirement_ids"] is None  # covers every requirement
    assert plan.distribution_blockers() == []
    # Without the questions from intake (as before), the copy prints the one it copied.
    plan.questions = []
    assert document_of(plan, 1).question == "Where can Johan live?"
