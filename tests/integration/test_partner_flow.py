"""Partners over a real NATS: plans and the partners service in this process, intake's and
coordination's events published on KRING as their own identities (as their relays do), partner
A with a webhook on a real local HTTP receiver, partner B on NATS only. A plan shared with A only
reaches A; a withdrawn consent stops A's next event; an erasure sends the revocation and the
copy answers 410; every fetch of the copy is in plans' access log."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from nats.js.errors import NotFoundError
from standardwebhooks.webhooks import Webhook

from services.partners.bootstrap import build as build_partners
from services.partners.settings import PartnersSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.events import (
    CaseErased,
    ConferenceHeld,
    ConferencePart,
    CoordinatorAssigned,
    IntegrationEvent,
    ParticipantRef,
)
from shared.partner_feed import PartnerPlanRevoked, PartnerPlanShared, decode_partner_event
from shared.permissions import partner_identity_name
from shared.stream_read import read_all
from shared.subjects import STREAM, partner_stream
from tests.factories import bus_headers, envelope, headers, request_received
from tests.harness import Running, eventually, running
from tests.servers import NatsServer, WebhookReceiver
from tests.tokens import bearer
from tests.unit.test_plans_rules import clarification

OPERATOR = bearer("ops", ["operator"])
COORDINATOR = headers("c1", "coordinator")


@dataclass
class Partners:
    a: str
    b: str
    #: A's webhook secret, as registering answered it.
    secret: str


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    started = NatsServer(tmp_path / "nats", keys_dir=tmp_path / "keys").start()
    yield started
    started.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as started:
        yield started


class Upstream:
    """Intake's and coordination's events on KRING, published as their identities."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.positions = {"intake": itertools.count(1), "coordination": itertools.count(1)}

    async def publish(self, event: IntegrationEvent) -> None:
        position = next(self.positions[event.origin])
        connection = await self.server.connect(event.origin)
        try:
            await connection.jetstream().publish(
                event.subject(),
                envelope(event, position),
                stream=STREAM,
                headers=bus_headers(event.origin, position, f"{event.origin}:{position}"),
            )
        finally:
            await connection.close()


@dataclass
class System:
    plans: Running
    partners: Running
    upstream: Upstream
    server: NatsServer
    names: Partners


@pytest.fixture
async def system(
    server: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> AsyncIterator[System]:
    tag = uuid.uuid4().hex[:6]
    a, b = f"jeugdzorg-{tag}", f"school-{tag}"
    server.add_partner(a)
    server.add_partner(b)
    plans_settings = PlansSettings(**server.settings("plans"), data_dir=tmp_path)
    partners_settings = PartnersSettings(
        **server.settings("partners"),
        data_dir=tmp_path,
        webhook_allow_private=True,
        webhook_allow_http=True,
        webhook_tick_seconds=0.05,
        webhook_first_retry_seconds=0.05,
    )
    async with (
        running(build_plans(plans_settings)) as plans,
        running(build_partners(partners_settings)) as partners,
    ):
        registered = await partners.http.post(
            "/partners",
            json={"organisation": a, "name": f"Jeugdzorg {tag}", "webhook_url": receiver.url},
            headers=OPERATOR,
        )
        assert registered.status_code == 201, registered.text
        secret = registered.json()["webhook_secret"]
        assert secret.startswith("whsec_")
        other = await partners.http.post(
            "/partners", json={"organisation": b, "name": f"School {tag}"}, headers=OPERATOR
        )
        assert other.status_code == 201 and other.json()["webhook_secret"] is None

        async def plans_knows_them() -> bool:
            directory = plans.app.partners()
            return bool(directory.is_active(a) and directory.is_active(b))

        await eventually(plans_knows_them, what="plans heard of both partners")
        yield System(plans, partners, Upstream(server), server, Partners(a, b, secret))


async def held_case(system: System) -> uuid.UUID:
    """A case through its conference: A's and B's people are participants, by organisation
    name as a coordinator enters it."""
    case_id = uuid.uuid4()
    tag = system.names.a.split("-")[-1]
    await system.upstream.publish(request_received(case_id))
    await system.upstream.publish(
        CoordinatorAssigned(
            case_id=case_id,
            model="family",
            coordinator_ids=["c1"],
            assigned_at=datetime(2026, 3, 2, tzinfo=UTC),
            first_contact_due=datetime(2026, 3, 5, tzinfo=UTC),
        )
    )
    participants = [
        ParticipantRef(participant_id="p-johan", role="central_person"),
        ParticipantRef(participant_id="p-father", role="family"),
        ParticipantRef(
            participant_id="p-worker", role="professional", organisation=f"jeugdzorg  {tag}"
        ),
        ParticipantRef(participant_id="p-teacher", role="teacher", organisation=f"School {tag}"),
    ]
    await system.upstream.publish(
        ConferenceHeld(
            case_id=case_id,
            model="family",
            held_on=date(2026, 4, 1),
            parts=list(ConferencePart),
            participants=participants,
            attended={"central_person": 1, "family": 1, "professional": 1, "teacher": 1},
        )
    )

    async def ready() -> bool:
        answer = await system.plans.http.get(f"/cases/{case_id}/plan", headers=COORDINATOR)
        return answer.status_code == 200 and answer.json()["stage"] == "conference_held"

    await eventually(ready, what="plans heard of the conference")
    # What intake's claim check answers (intake does not run here): the copies print them.
    assert system.plans.app.note_clarification(case_id, clarification())
    return case_id


PLAN: dict[str, Any] = {
    "agreements": [
        {"who": ["p-father", "p-worker"], "what": "weekly talk", "when": {"on": "2026-05-04"}},
        {"who": ["p-teacher"], "what": "reports at school", "when": {"recurring": "monthly"}},
        {"who": ["p-father"], "what": "Johan lives with his father"},
    ],
    "if_something_does_not_work": "aunt calls",
    "watched_by": "p-father",
    "next_meeting_on": "2026-09-29",
}


async def distribute(system: System, case_id: uuid.UUID, version: int, shared: list[str]) -> None:
    plans = system.plans.http
    written = await plans.post(f"/cases/{case_id}/plan", json=PLAN, headers=COORDINATOR)
    assert written.status_code == 200, written.text
    accepted = await plans.post(
        f"/cases/{case_id}/plan/accept", json={"version": version}, headers=COORDINATOR
    )
    assert accepted.status_code == 200, accepted.text
    sent = await plans.post(
        f"/cases/{case_id}/plan/distribute",
        json={"shared_with_organisations": shared, "version": version},
        headers=COORDINATOR,
    )
    assert sent.status_code == 200, sent.text


async def feed(system: System, organisation: str) -> list[tuple[Any, Any]]:
    """Everything on the organisation's feed, read as that partner (direct gets)."""
    connection = await system.server.connect(partner_identity_name(organisation))
    try:
        messages = await read_all(connection, partner_stream(organisation))
    finally:
        await connection.close()
    return [decode_partner_event(m.data) for m in messages]


def partner_headers(organisation: str) -> dict[str, str]:
    return bearer(f"partner-{organisation}", ["partner"], kring_organisation=organisation)


async def fetch(system: System, link: str, organisation: str) -> Any:
    parts = urlsplit(link)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return await system.plans.http.get(path, headers=partner_headers(organisation))


async def test_a_plan_shared_with_a_only_reaches_a_and_a_fetches_its_copy(
    system: System, receiver: WebhookReceiver
) -> None:
    a, b = system.names.a, system.names.b
    case_id = await held_case(system)
    await distribute(system, case_id, 1, [a])

    async def on_a_feed() -> bool:
        return len(await feed(system, a)) == 1

    await eventually(on_a_feed, what="the plan on A's feed")
    [(envelope_, event)] = await feed(system, a)
    assert isinstance(event, PartnerPlanShared)
    assert envelope_.subject == str(case_id) and event.plan_version == 1
    # Only the agreement A's own professional takes part in, by id and date; no text.
    assert [(r.agreement_id, r.on) for r in event.agreements] == [("a1", date(2026, 5, 4))]
    assert event.next_meeting_on == date(2026, 9, 29)
    assert "weekly talk" not in envelope_.model_dump_json()
    assert str(envelope_.dataref) == str(event.copy_links.json_url)

    await eventually(lambda: _delivered(receiver, 1), what="A's webhook")
    headers_, body, _ = receiver.requests[0]
    verified = Webhook(system.names.secret).verify(body, headers_)
    assert verified["id"] == str(envelope_.id) == headers_["webhook-id"]
    assert headers_["content-type"] == "application/cloudevents+json"

    # B was shared nothing: its feed, there since its registration, is empty.
    async def b_has_its_feed() -> bool:
        async with _Admin(system) as js:
            try:
                return (await js.stream_info(partner_stream(b))).state.messages == 0
            except NotFoundError:
                return False

    await eventually(b_has_its_feed, what="B's (empty) feed")

    # The claim check: A fetches its copy; B may not; every fetch is recorded.
    copy = await fetch(system, str(event.copy_links.json_url), a)
    assert copy.status_code == 200, copy.text
    assert copy.json()["your_agreements"] == ["a1"]
    assert copy.json()["agreements"][0]["who"] == ["family", "professional"]
    assert "p-father" not in copy.text  # roles, never participants
    pdf = await fetch(system, str(event.copy_links.pdf), a)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    html = await fetch(system, str(event.copy_links.html), a)
    assert html.status_code == 200 and "<html" in html.text.lower()
    refused = await fetch(system, str(event.copy_links.json_url), b)
    assert refused.status_code == 403
    assert "organisation the family shares this plan with" in refused.json()["detail"]
    nobody = await system.plans.http.get(
        f"/cases/{case_id}/plan/copy", headers=headers("c1", "coordinator")
    )
    assert nobody.status_code == 403
    log = await system.plans.http.get(f"/cases/{case_id}/access-log", headers=OPERATOR)
    reads = [(e["subject"], e["role"], e["what"]) for e in log.json()["items"]]
    assert [r for r in reads if r[1] == "partner"] == [
        (f"partner-{a}", "partner", f"plan.copy.{kind}.v1") for kind in ("json", "pdf", "html")
    ]


async def test_a_withdrawn_consent_stops_as_next_event_and_its_copy(
    system: System, receiver: WebhookReceiver
) -> None:
    a, b = system.names.a, system.names.b
    case_id = await held_case(system)
    await distribute(system, case_id, 1, [a, b])
    await eventually(lambda: _delivered(receiver, 1), what="A's webhook of version 1")

    withdrawn = await system.plans.http.post(
        f"/cases/{case_id}/plan/sharing/withdraw",
        json={"organisation": a},
        headers=COORDINATOR,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    await distribute(system, case_id, 2, [b])

    async def b_has_both() -> bool:
        return len(await feed(system, b)) == 2

    await eventually(b_has_both, what="both versions on B's feed")
    await eventually(lambda: _delivered(receiver, 2), what="A's webhook of the revocation")
    kinds = [(type(e).__name__, getattr(e, "plan_version", None)) for _, e in await feed(system, a)]
    assert kinds == [("PartnerPlanShared", 1), ("PartnerPlanRevoked", None)]
    [(_, revocation)] = [x for x in await feed(system, a) if isinstance(x[1], PartnerPlanRevoked)]
    assert revocation.reason == "consent_withdrawn"
    assert [e.plan_version for _, e in await feed(system, b)] == [1, 2]  # type: ignore[attr-defined]
    sequences = [int(envelope_.sequence) for envelope_, _ in await feed(system, a)]
    assert sequences == sorted(sequences)

    copy = await system.plans.http.get(
        f"/cases/{case_id}/plan/copy?version=1", headers=partner_headers(a)
    )
    assert copy.status_code == 403
    assert (
        await system.plans.http.get(f"/cases/{case_id}/plan/copy", headers=partner_headers(b))
    ).json()["plan_version"] == 2
    # A's webhook had the same two, verified, and nothing of version 2.
    bodies = [json.loads(body) for _, body, _ in receiver.requests]
    assert [x["type"] for x in bodies] == [
        "nl.kring.partner.plan-shared.v1",
        "nl.kring.partner.plan-revoked.v1",
    ]


async def test_an_erasure_sends_the_revocation_and_the_copy_answers_410(
    system: System, receiver: WebhookReceiver
) -> None:
    a = system.names.a
    case_id = await held_case(system)
    await distribute(system, case_id, 1, [a])
    await eventually(lambda: _delivered(receiver, 1), what="A's webhook")
    await system.upstream.publish(
        CaseErased(
            case_id=case_id,
            model="family",
            reason="requested_by_person",
            erased_at=datetime.now(UTC),
        )
    )
    await eventually(lambda: _delivered(receiver, 2), what="the revocation on A's webhook")

    async def revoked_on_nats() -> bool:
        return any(isinstance(e, PartnerPlanRevoked) for _, e in await feed(system, a))

    await eventually(revoked_on_nats, what="the revocation on A's feed")
    [(_, revocation)] = [x for x in await feed(system, a) if isinstance(x[1], PartnerPlanRevoked)]
    assert revocation.reason == "case_erased" and revocation.case_id == case_id
    answer = await system.plans.http.get(f"/cases/{case_id}/plan/copy", headers=partner_headers(a))
    assert answer.status_code == 410
    # The partners service erased its part, and kept what it sent to whom.
    status = await system.partners.http.get(f"/cases/{case_id}/erasure", headers=OPERATOR)
    assert status.json()["erased"] is True
    sent = await system.partners.http.get(f"/cases/{case_id}/deliveries", headers=OPERATOR)
    assert [(d["type"], d["webhook_status"]) for d in sent.json()["items"]] == [
        ("nl.kring.partner.plan-shared.v1", "sent"),
        ("nl.kring.partner.plan-revoked.v1", "sent"),
    ]


async def test_an_organisation_that_is_not_a_partner_is_refused_at_distribution(
    system: System,
) -> None:
    case_id = await held_case(system)
    plans = system.plans.http
    await plans.post(f"/cases/{case_id}/plan", json=PLAN, headers=COORDINATOR)
    await plans.post(f"/cases/{case_id}/plan/accept", json={"version": 1}, headers=COORDINATOR)
    tag = system.names.a.split("-")[-1]
    for given, says in (
        ("nobody-here", "not a partner's id"),
        (f"Jeugdzorg {tag}", f"did you mean '{system.names.a}'"),
    ):
        refused = await plans.post(
            f"/cases/{case_id}/plan/distribute",
            json={"shared_with_organisations": [system.names.b, given]},
            headers=COORDINATOR,
        )
        assert refused.status_code == 422, refused.text
        [problem] = refused.json()["detail"]
        assert problem["loc"] == ["body", "shared_with_organisations", 1]
        assert says in problem["msg"]
    plan = (await plans.get(f"/cases/{case_id}/plan", headers=COORDINATOR)).json()
    assert plan["distributions"] == []  # nothing went out


async def _delivered(receiver: WebhookReceiver, count: int) -> bool:
    return len(receiver.delivered) >= count


class _Admin:
    def __init__(self, system: System) -> None:
        self.server = system.server

    async def __aenter__(self) -> Any:
        self.connection = await self.server.connect("admin")
        return self.connection.jetstream(timeout=5)

    async def __aexit__(self, *_: object) -> None:
        await self.connection.close()
