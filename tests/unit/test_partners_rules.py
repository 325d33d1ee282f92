"""The partners service's rules, and plans' side of sharing, on real SQLite stores: the registry,
the back-off over three days, an attempt recorded once, what a withdrawal and an erasure send and
cancel; plans sharing only with registered partners, per organisation the agreements its people
take part in, and the partner's copy only while it is shared."""

from __future__ import annotations

import ipaddress
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.partners.app import PartnersApplication
from services.partners.domain import (
    Kind,
    Registry,
    RetryPolicy,
    WebhookStatus,
)
from services.partners.ssrf import TargetRefusedError, TargetRules, check_addresses, check_url
from services.plans.app import PlansApplication
from services.plans.bus import translate
from shared.actor import Role
from shared.errors import DomainRuleError, InvalidFieldError, NotPermittedError
from shared.events import (
    PARTNER_REGISTRY_ID,
    AgreementRef,
    CaseErased,
    ParticipantRef,
    PlanShared,
    PlanSharingWithdrawn,
    SharedWith,
)
from shared.identity import Principal
from tests.factories import (
    NOW,
    delivered,
    plain,
    principal,
    register_partners,
    revoke_partner,
    rewrite_stored_states,
)
from tests.unit.test_plans_rules import content, held_case

OPERATOR = principal("ops", "operator")
COORDINATOR = principal("c1", "coordinator")
_positions = itertools.count(1)


def partner_principal(organisation: str) -> Principal:
    return Principal(
        subject=f"partner-{organisation}",
        name=organisation,
        roles=frozenset({Role.PARTNER}),
        organisation=organisation,
    )


# -- the back-off ---------------------------------------------------------------------------
def test_the_back_off_doubles_with_jitter_and_gives_up_after_three_days() -> None:
    policy = RetryPolicy()
    first = datetime(2026, 3, 2, tzinfo=UTC)
    now, failures, waits = first, 0, []
    while True:
        failures += 1
        retry = policy.next_try(first_attempt=first, now=now, failures=failures, jitter=0.5)
        if retry is None:
            break
        waits.append(retry - now)
        now = retry
    assert waits[0] == timedelta(seconds=7.5)  # half of 10 s, and half of the other half
    assert all(b >= a for a, b in itertools.pairwise(waits))
    assert max(waits) <= timedelta(hours=6)
    assert now - first <= timedelta(days=3) < now - first + timedelta(hours=6)
    assert 15 <= len(waits) + 1 <= 30  # about twenty tries in the three days
    for jitter in (0.0, 0.999):
        pause = policy.delay(3, jitter)
        assert timedelta(seconds=20) <= pause <= timedelta(seconds=40)
    asked = policy.next_try(
        first_attempt=first, now=first, failures=1, jitter=0, at_least=timedelta(minutes=5)
    )
    assert asked == first + timedelta(minutes=5)  # Retry-After wins when it asks for longer


# -- the registry -----------------------------------------------------------------------------
def test_the_registry_takes_ids_of_one_form_once_and_a_revoked_partner_again() -> None:
    registry = Registry(id=PARTNER_REGISTRY_ID)
    actor = {"id": "ops", "role": "operator"}
    for wrong in ("Jeugdzorg Utrecht", "-x", "x" * 64, "a.b", "a*"):
        with pytest.raises(InvalidFieldError):
            registry.register(
                organisation=wrong, name="x", webhook_url=None, secret=None, at=NOW, actor=actor
            )
    registry.register(
        organisation="jz", name="Jeugdzorg", webhook_url=None, secret=None, at=NOW, actor=actor
    )
    with pytest.raises(DomainRuleError, match="a partner already"):
        registry.register(
            organisation="jz", name="Again", webhook_url=None, secret=None, at=NOW, actor=actor
        )
    registry.revoke(organisation="jz", at=NOW, actor=actor)
    with pytest.raises(DomainRuleError, match="no longer a partner"):
        registry.set_webhook(organisation="jz", url="https://x", secret="s", at=NOW, actor=actor)
    registry.register(
        organisation="jz", name="Again", webhook_url=None, secret=None, at=NOW, actor=actor
    )
    assert registry.partner("jz").active and registry.partner("jz").name == "Again"


def test_a_rotated_secret_signs_beside_the_old_one_for_the_overlap_only() -> None:
    registry = Registry(id=PARTNER_REGISTRY_ID)
    actor = {"id": "ops", "role": "operator"}
    registry.register(
        organisation="jz", name="J", webhook_url="https://x", secret="old", at=NOW, actor=actor
    )
    registry.rotate_secret(
        organisation="jz", secret="new", overlap=timedelta(hours=1), at=NOW, actor=actor
    )
    webhook = registry.partner("jz").webhook
    assert webhook is not None
    assert webhook.signing_secrets(NOW + timedelta(minutes=59)) == ["new", "old"]
    assert webhook.signing_secrets(NOW + timedelta(hours=1)) == ["new"]
    registry.rotate_secret(
        organisation="jz", secret="newer", overlap=timedelta(hours=1), at=NOW, actor=actor
    )
    assert webhook.signing_secrets(NOW) == ["newer", "new", "old"]  # each until its own time


# -- notifications ----------------------------------------------------------------------------
def shared(case_id: uuid.UUID, *organisations: str, version: int = 1) -> PlanShared:
    return PlanShared(
        case_id=case_id,
        model="family",
        plan_version=version,
        shared_at=NOW,
        organisations=[
            SharedWith(organisation=o, agreements=[AgreementRef(agreement_id="a1")])
            for o in organisations
        ],
    )


def partners_with(make_app: Any, **webhooks: str | None) -> PartnersApplication:
    app: PartnersApplication = make_app(PartnersApplication)
    for organisation, url in webhooks.items():
        app.register(organisation.replace("_", "-"), organisation, url, OPERATOR)
    return app


def test_an_attempt_is_recorded_once_whoever_records_it(make_app: Any) -> None:
    app = partners_with(make_app, jz="https://partner.example.org/kring")
    case_id = uuid.uuid4()
    app.process(delivered(shared(case_id, "jz"), next(_positions), origin="plans"))
    [row] = app.views.of_case(case_id)
    assert row.webhook_status is WebhookStatus.PENDING
    retry = NOW + timedelta(seconds=10)
    outcome: dict[str, Any] = {
        "at": NOW,
        "status_code": 500,
        "error": "answered 500",
        "retry_at": retry,
        "give_up": None,
    }
    assert app.record_attempt(row.event_id, number=1, **outcome)
    assert not app.record_attempt(row.event_id, number=1, **outcome)  # a second worker's
    assert not app.record_attempt(row.event_id, number=3, **outcome)  # not the next one
    sent = outcome | {"status_code": 200, "error": None, "retry_at": None}
    assert app.record_attempt(row.event_id, number=2, **sent)
    assert not app.record_attempt(row.event_id, number=3, **outcome)  # sent: nothing more
    [row] = app.views.of_case(case_id)
    assert (row.webhook_status, row.attempts) == (WebhookStatus.SENT, 2)


def test_a_withdrawal_cancels_what_was_still_to_go_and_revokes_once(make_app: Any) -> None:
    app = partners_with(make_app, jz="https://partner.example.org/kring", school=None)
    case_id = uuid.uuid4()
    app.process(delivered(shared(case_id, "jz", "school"), next(_positions), origin="plans"))
    withdrawn = PlanSharingWithdrawn(
        case_id=case_id, model="family", organisation="jz", withdrawn_at=NOW
    )
    app.process(delivered(withdrawn, next(_positions), origin="plans"))
    app.process(delivered(withdrawn, next(_positions), origin="plans"))  # told twice: once
    rows = [(r.organisation, r.kind, r.webhook_status) for r in app.views.of_case(case_id)]
    assert rows == [
        ("jz", Kind.PLAN_SHARED, WebhookStatus.CANCELLED),
        ("school", Kind.PLAN_SHARED, WebhookStatus.NONE),  # NATS only
        ("jz", Kind.PLAN_REVOKED, WebhookStatus.PENDING),
    ]
    revocation = app.views.of_case(case_id)[2]
    assert revocation.data["reason"] == "consent_withdrawn"


def test_an_erasure_revokes_to_each_organisation_still_shared_with_and_keeps_the_record(
    make_app: Any,
) -> None:
    app = partners_with(make_app, jz=None, school=None, police=None)
    case_id = uuid.uuid4()
    app.process(delivered(shared(case_id, "jz", "school", "police"), next(_positions), "plans"))
    app.process(
        delivered(
            PlanSharingWithdrawn(
                case_id=case_id, model="family", organisation="school", withdrawn_at=NOW
            ),
            next(_positions),
            origin="plans",
        )
    )
    app.revoke("police", OPERATOR)
    erased = CaseErased(case_id=case_id, model="family", reason="other", erased_at=NOW)
    app.process(delivered(erased, next(_positions), origin="intake"))
    revoked = [
        (r.organisation, r.data["reason"])
        for r in app.views.of_case(case_id)
        if r.kind is Kind.PLAN_REVOKED
    ]
    # school's consent was withdrawn (nothing more of the case); police is no partner now.
    assert revoked == [("school", "consent_withdrawn"), ("jz", "case_erased")]
    assert app.keyring.is_erased(case_id)
    assert app.erasure_status(case_id)["erased"] is True


def test_a_case_shared_with_no_partner_of_ours_leaves_nothing(make_app: Any) -> None:
    app = partners_with(make_app, jz=None)
    app.revoke("jz", OPERATOR)
    case_id = uuid.uuid4()
    app.process(delivered(shared(case_id, "jz"), next(_positions), origin="plans"))
    assert app.views.of_case(case_id) == []
    assert app.erasure_status(case_id)["known"] is False


def test_the_deliveries_survive_a_restart_and_a_rebuild_equals_them_erasures_included(
    make_app: Any,
) -> None:
    deliveries_survive_a_restart_and_a_rebuild(make_app)


def deliveries_survive_a_restart_and_a_rebuild(make_app: Any) -> None:
    """The deliveries are a table in partners' own database: a start resumes it without
    reading the log again, and one built anew from the log (``kring rebuild partners``) has
    the same rows, attempts, revocations and the record of an erased case included. (Also on
    PostgreSQL: ``tests/integration/test_read_models_postgres.py``.)"""
    app = partners_with(make_app, jz="https://partner.example.org/kring", school=None)
    kept, erased_case = uuid.uuid4(), uuid.uuid4()
    for case_id in (kept, erased_case):
        app.process(delivered(shared(case_id, "jz", "school"), next(_positions), "plans"))
    [first, _] = app.views.of_case(kept)
    failed = {"status_code": 503, "error": "answered 503", "give_up": None}
    app.record_attempt(
        first.event_id, number=1, at=NOW, retry_at=NOW + timedelta(seconds=9), **failed
    )
    app.record_attempt(
        first.event_id,
        number=2,
        at=NOW + timedelta(seconds=9),
        status_code=200,
        error=None,
        retry_at=None,
        give_up=None,
    )
    erased = CaseErased(case_id=erased_case, model="family", reason="other", erased_at=NOW)
    app.process(delivered(erased, next(_positions), origin="intake"))
    live = app.views.dump()
    assert len(live["deliveries"]) == 6  # two per case, and both told of the erasure
    [row] = [r for r in app.views.of_case(kept) if r.organisation == "jz"]
    assert [(s, e) for _, s, e, _ in row.history] == [(503, "answered 503"), (200, None)]
    assert row.webhook_status is WebhookStatus.SENT and row.attempts == 2
    app.close()

    restarted: PartnersApplication = make_app(PartnersApplication)
    assert restarted.views.catch_up() == 0 and restarted.views.notifications_read == 0
    assert restarted.views.dump() == live
    restarted.views.rebuild()
    assert restarted.views.dump() == live
    assert [r.kind for r in restarted.views.of_case(erased_case)] == [
        Kind.PLAN_SHARED,
        Kind.PLAN_SHARED,
        Kind.PLAN_REVOKED,
        Kind.PLAN_REVOKED,
    ]


def test_deliveries_page_through_with_cursors_of_their_own_list(make_app: Any) -> None:
    from shared.views import InvalidCursorError, PageRequest

    app = partners_with(make_app, jz=None, school=None)
    cases = [uuid.uuid4() for _ in range(7)]
    for case_id in cases:
        app.process(delivered(shared(case_id, "jz", "school"), next(_positions), "plans"))
    seen: list[uuid.UUID] = []
    request = PageRequest(limit=3)
    while True:
        rows, page = app.views.page_of_partner("jz", request)
        assert page.total == 7
        seen += [r.case_id for r in rows]
        if page.next is None:
            break
        request = PageRequest(limit=3, after=page.next)
    assert seen == cases
    _, first = app.views.page_of_partner("jz", PageRequest(limit=3))
    assert first.next is not None
    for other in (
        lambda: app.views.page_of_partner("school", PageRequest(limit=3, after=first.next)),
        lambda: app.views.page_of_partner(
            "jz", PageRequest(limit=3, after=first.next), status=WebhookStatus.NONE
        ),
        lambda: app.views.page_of_case(cases[0], PageRequest(limit=3, after=first.next)),
        lambda: app.views.page_of_partner("jz", PageRequest(limit=3, after="abc")),
    ):
        with pytest.raises(InvalidCursorError):
            other()


# -- the SSRF guard's address rules -------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "2001:db8::1",
    ],
)
def test_every_non_public_address_is_refused(address: str) -> None:
    with pytest.raises(TargetRefusedError):
        check_addresses([address], TargetRules())
    assert check_addresses([address], TargetRules(allow_private=True)) == [address]


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    with pytest.raises(TargetRefusedError, match="private"):
        check_addresses(["93.184.215.14", "10.1.1.1"], TargetRules())
    assert check_addresses(["93.184.215.14", "2606:2800:21f:cb07::1"], TargetRules())
    assert ipaddress.ip_address("93.184.215.14").is_global


def test_a_public_https_url_is_taken_as_it_is() -> None:
    url = "https://partner.example.org:8443/kring?x=1"
    assert check_url(url, TargetRules()) == url


# -- plans' side ------------------------------------------------------------------------------
PARTICIPANTS = [
    ParticipantRef(participant_id="p-johan", role="central_person"),
    ParticipantRef(participant_id="p-father", role="family"),
    ParticipantRef(participant_id="p-herman", role="family"),
    ParticipantRef(participant_id="p-worker", role="professional", organisation="Jeugdzorg"),
]


def shared_plan(make_app: Any) -> tuple[PlansApplication, uuid.UUID]:
    app: PlansApplication = make_app(PlansApplication)
    register_partners(app, jeugdzorg="Jeugdzorg", school="School")
    case_id = held_case(app)
    plan = content(
        agreements=[
            {"who": ["p-father", "p-worker"], "what": "talks", "when": {"on": "2026-05-04"}},
            {"who": ["p-herman"], "what": "visits"},
            {"who": ["p-worker"], "what": "coaches", "when": {"recurring": "weekly"}},
        ]
    )
    app.write(case_id, plan, COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    return app, case_id


def test_a_plan_is_shared_per_organisation_with_the_agreements_its_people_take_part_in(
    make_app: Any,
) -> None:
    app, case_id = shared_plan(make_app)
    app.distribute(case_id, ["jeugdzorg", "school"], COORDINATOR)
    [event] = [e for e in map(translate, app.events.get(case_id)) if isinstance(e, PlanShared)]
    per = {
        s.organisation: [(a.agreement_id, a.on) for a in s.agreements] for s in event.organisations
    }
    # The worker's organisation was entered by name: found by the registry's name.
    assert per == {"jeugdzorg": [("a1", date(2026, 5, 4)), ("a3", None)], "school": []}
    assert "talks" not in event.model_dump_json()


def test_a_sharing_stored_by_the_first_release_reads_as_the_same_values(
    make_app: Any, tmp_path: Any
) -> None:
    """Version 1 of plans' ``Shared`` kept each organisation as a dict and the dates as text;
    it reads as today's values and is told to partners the same."""
    app, case_id = shared_plan(make_app)
    app.distribute(case_id, ["jeugdzorg", "school"], COORDINATOR)
    told = [e for e in map(translate, app.events.get(case_id)) if isinstance(e, PlanShared)]

    rewritten: list[Any] = []

    def as_version_1(name: str, state: dict[str, Any]) -> None:
        if name == "Shared":
            rewritten.append(state["next_meeting_on"])
            state["organisations"] = plain(state["organisations"])
            state["next_meeting_on"] = plain(state["next_meeting_on"])
            state.pop("class_version", None)

    rewrite_stored_states(app, tmp_path / "plans.sqlite", as_version_1)
    assert len(rewritten) == 1
    again: PlansApplication = make_app(PlansApplication)
    assert [e for e in map(translate, again.events.get(case_id)) if isinstance(e, PlanShared)] == (
        told
    )
    assert again.get(case_id).shared_organisations() == ["jeugdzorg", "school"]


def test_sharing_names_registered_partners_only_and_a_revoked_one_is_refused(
    make_app: Any,
) -> None:
    app, case_id = shared_plan(make_app)
    with pytest.raises(InvalidFieldError) as unknown:
        app.distribute(case_id, ["jeugdzorg", "Jeugdzorg"], COORDINATOR)
    assert unknown.value.loc == ("shared_with_organisations", 1)
    assert "did you mean 'jeugdzorg' (Jeugdzorg)?" in unknown.value.message
    revoke_partner(app, "school")
    with pytest.raises(InvalidFieldError, match="no longer a partner"):
        app.distribute(case_id, ["school"], COORDINATOR)
    assert app.get(case_id).distributions == []


def test_a_partners_copy_only_while_shared_only_of_its_versions_and_recorded(
    make_app: Any,
) -> None:
    app, case_id = shared_plan(make_app)
    app.distribute(case_id, ["jeugdzorg"], COORDINATOR)
    partner, school = partner_principal("jeugdzorg"), partner_principal("school")
    assert app.read_copy(case_id, partner, None, "json")[1] == 1
    with pytest.raises(NotPermittedError, match="organisation the family shares this plan with"):
        app.read_copy(case_id, school, None, "json")
    with pytest.raises(NotPermittedError, match="version 2 was not shared"):
        app.read_copy(case_id, partner, 2, "pdf")
    with pytest.raises(NotPermittedError):
        app.read_copy(case_id, COORDINATOR, None, "json")  # only a partner's client
    app.withdraw_sharing(case_id, "jeugdzorg", COORDINATOR)
    with pytest.raises(NotPermittedError):
        app.read_copy(case_id, partner, 1, "json")
    with pytest.raises(DomainRuleError, match="already withdrawn"):
        app.withdraw_sharing(case_id, "jeugdzorg", COORDINATOR)
    with pytest.raises(InvalidFieldError, match="never shared"):
        app.withdraw_sharing(case_id, "school", COORDINATOR)
    reads = [(e.subject, e.role, e.what) for e in app.access_log.entries(case_id)]
    assert reads == [("partner-jeugdzorg", "partner", "plan.copy.json.v1")]
    # Named again in a later distribution: the family consented again.
    app.write(case_id, content(), COORDINATOR)
    app.accept(case_id, 2, COORDINATOR)
    app.distribute(case_id, ["jeugdzorg"], COORDINATOR)
    assert app.read_copy(case_id, partner, None, "json")[1] == 2
    assert app.get(case_id).versions_shared_with("jeugdzorg") == [1, 2]
