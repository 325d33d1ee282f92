"""Who may do what, from the route table itself: every route of every service names an access
rule (a new endpoint without one fails here), README's matrix is the one these tables make,
and per endpoint, against a real store and real tokens checked against the session's issuer:
no token is 401; a role the rule does not grant, a regional manager of another region, another
coordinator and another participant are 403 saying what is missing (a list leaves the case
out instead); the one the rule names gets past the gate.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kring import scenarios
from shared.access import Rule, Scope
from shared.actor import Role
from shared.events import AgreementRef, ConferenceModel, PlanShared, SharedWith
from shared.runtime import ServiceDefinition
from tests.access_matrix import ROLES, SERVICES, Route, all_routes, built, render, routes_of
from tests.factories import (
    CLARIFICATION,
    REQUEST_BODY,
    coordinator_assigned,
    delivered,
    plan_distributed,
    register_partners,
    request_received,
)
from tests.tokens import bearer
from tests.unit.test_plans_rules import clarification, conference, content, content_body

README = Path(__file__).parents[2] / "README.md"
REGION, OTHER_REGION = "Utrecht", "Texel"
SUBMITTER = "ria"
COORDINATOR, OTHER_COORDINATOR = "c1", "c2"
PARTICIPANT = "p1"
ORGANISATION, OTHER_ORGANISATION = "org-right", "org-wrong"

#: Query parameters a route needs to get past validation to its rule.
QUERIES: dict[tuple[str, str, str], str] = {
    ("coordination", "GET", "/cases/{case_id}/assign/check"): f"?coordinator_id={COORDINATOR}",
}
#: A body the schema accepts for each operation that takes one: the gate is what is tested.
TODAY = date.today().isoformat()
BODIES: dict[tuple[str, str, str], Any] = {
    ("intake", "POST", "/cases"): REQUEST_BODY,
    ("intake", "POST", "/cases/{case_id}/clarify"): CLARIFICATION,
    ("intake", "POST", "/cases/{case_id}/withdraw"): {"reason": "solved"},
    ("intake", "POST", "/cases/{case_id}/erase"): {"reason": "other"},
    ("intake", "POST", "/cases/{case_id}/informational-talk"): {
        "held_on": TODAY,
        "outcome": "go_ahead",
    },
    ("coordination", "POST", "/coordinators"): {
        "coordinator_id": COORDINATOR,
        "regions": [REGION],
        "languages": ["nl"],
        "capacity": 50,
    },
    ("coordination", "POST", "/coordinators/{coordinator_id}/availability"): {"available": True},
    ("coordination", "POST", "/coordinators/{coordinator_id}/relations"): {
        "case_id": str(uuid.uuid4()),
        "kind": "other_stake",
    },
    ("coordination", "POST", "/cases/{case_id}/assign"): {
        "coordinator_ids": [COORDINATOR],
        "reason": "r",
    },
    ("coordination", "POST", "/cases/{case_id}/participants"): {"name": "A", "role": "family"},
    ("coordination", "POST", "/cases/{case_id}/participants/{participant_id}/confirm"): {
        "share_details": True
    },
    ("coordination", "POST", "/cases/{case_id}/participants/{participant_id}/decline"): {},
    ("coordination", "POST", "/cases/{case_id}/participants/{participant_id}/informed"): {},
    ("coordination", "POST", "/cases/{case_id}/participants/{participant_id}/not-informed"): {
        "reason": "abroad"
    },
    (
        "coordination",
        "POST",
        "/cases/{case_id}/participants/{participant_id}/consent/withdraw",
    ): {"what": "share_details"},
    ("coordination", "POST", "/cases/{case_id}/information"): {
        "topic": "school",
        "brought_by": PARTICIPANT,
    },
    ("coordination", "PUT", "/cases/{case_id}/arrangements"): {},
    ("coordination", "POST", "/cases/{case_id}/schedule"): {"on": TODAY, "venue": "home"},
    ("coordination", "POST", "/cases/{case_id}/conference"): {
        "held_on": TODAY,
        "parts": {"information": {"present": [PARTICIPANT], "coordinator": True}},
    },
    ("coordination", "POST", "/cases/{case_id}/end"): {"ending": "stopped", "reason": "other"},
    ("plans", "POST", "/cases/{case_id}/plan/recipients"): {
        "recipients": [{"participant_id": "p-johan"}]
    },
    ("plans", "POST", "/cases/{case_id}/plan"): content_body(),
    ("plans", "POST", "/cases/{case_id}/plan/requirements/{requirement_id}/signatory"): {
        "subject": "jz-bram",
        "name": "Bram",
        "reason": "Anna is away",
    },
    ("plans", "POST", "/cases/{case_id}/plan/accept"): {"version": 1},
    ("plans", "POST", "/cases/{case_id}/plan/sign-off"): {"version": 1, "meets": True},
    ("plans", "POST", "/cases/{case_id}/plan/distribute"): {},
    ("plans", "POST", "/cases/{case_id}/plan/deliveries"): {
        "version": 1,
        "participant_id": "p-johan",
        "channel": "by_hand",
    },
    ("followup", "POST", "/cases/{case_id}/outcomes"): {
        "timer_id": "coordinator_call",
        "reached": True,
    },
    ("followup", "POST", "/cases/{case_id}/ratings"): {
        "timer_id": "coordinator_call",
        "ratings": [{"by": "family_network", "meeting": 8, "plan": 7}],
    },
    ("followup", "POST", "/cases/{case_id}/follow-up-conference"): {},
    ("plans", "POST", "/cases/{case_id}/plan/sharing/withdraw"): {"organisation": ORGANISATION},
    ("partners", "POST", "/partners"): {"organisation": "org-new", "name": "New"},
    ("partners", "PUT", "/partners/{organisation}/webhook"): {
        "url": "https://partner.example.org/kring"
    },
    ("partners", "POST", "/partners/{organisation}/replay"): {"since": "2026-01-01T00:00:00Z"},
    ("followup", "POST", "/cases/{case_id}/next-meeting"): {"held": False},
}


# -- one fresh case per request, so a command that succeeds changes nothing for the next ------
Seed = Callable[[ServiceDefinition, httpx.AsyncClient], Any]
_positions = iter(range(1000, 10**9))


async def seed_intake(definition: ServiceDefinition, http: httpx.AsyncClient) -> dict[str, str]:
    created = await http.post("/cases", json=REQUEST_BODY, headers=bearer(SUBMITTER, ["requester"]))
    case_id = created.json()["case_id"]
    manager = bearer("rm", ["regional_manager"], regions=[REGION])
    clarified = await http.post(f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=manager)
    assert clarified.status_code == 200, clarified.text
    return {"case_id": case_id}


async def seed_coordination(
    definition: ServiceDefinition, http: httpx.AsyncClient
) -> dict[str, str]:
    app = definition.app
    manager = bearer("rm", ["regional_manager"], regions=[REGION])
    for coordinator in (COORDINATOR, OTHER_COORDINATOR):
        body = {
            "coordinator_id": coordinator,
            "regions": [REGION],
            "languages": ["nl"],
            "capacity": 50,
        }
        registered = await http.post("/coordinators", json=body, headers=manager)
        assert registered.status_code == 201, registered.text
    await http.post(
        f"/coordinators/{OTHER_COORDINATOR}/availability",
        json={"available": False},
        headers=manager,
    )  # so c1 is the one chosen
    event = request_received()
    app.process(delivered(event, next(_positions)))
    assert app.get(event.case_id).coordinator_ids == [COORDINATOR]
    invited = await http.post(
        f"/cases/{event.case_id}/participants",
        json=scenarios.participant_body(scenarios.SCENARIOS[ConferenceModel.FAMILY].people[0]),
        headers=bearer(COORDINATOR, ["coordinator"], coordinator=COORDINATOR),
    )
    assert invited.json()["participant_id"] == PARTICIPANT, invited.text
    return {
        "case_id": str(event.case_id),
        "participant_id": PARTICIPANT,
        "coordinator_id": COORDINATOR,
    }


async def seed_plans(definition: ServiceDefinition, http: httpx.AsyncClient) -> dict[str, str]:
    """A held case whose plan is distributed and shared with the partner ``ORGANISATION``."""
    app = definition.app
    case_id = uuid.uuid4()
    app.process(delivered(request_received(case_id), next(_positions)))
    app.note_clarification(case_id, clarification(minimum=True))
    app.process(delivered(coordinator_assigned(case_id), next(_positions)))
    app.process(delivered(conference(case_id), next(_positions), origin="coordination"))
    if not app.partners().is_active(ORGANISATION):
        register_partners(app, org_right="Right")
    coordinator = principal_of(COORDINATOR)
    app.write(case_id, content(), coordinator)
    app.accept(case_id, 1, coordinator)
    app.distribute(case_id, [ORGANISATION], coordinator)
    return {
        "case_id": str(case_id),
        "version": "1",
        "organisation": ORGANISATION,
        "requirement_id": "m1",
    }


def principal_of(coordinator: str) -> Any:
    from tests.factories import principal

    return principal(coordinator, "coordinator")


async def seed_partners(definition: ServiceDefinition, http: httpx.AsyncClient) -> dict[str, str]:
    """The partner ``ORGANISATION`` (with a webhook) and one notification of a case for it."""
    app = definition.app
    if not app.registry().is_active(ORGANISATION):
        operator = bearer("ops", ["operator"])
        body = {
            "organisation": ORGANISATION,
            "name": "Right",
            "webhook_url": "https://partner.example.org/kring",
        }
        registered = await http.post("/partners", json=body, headers=operator)
        assert registered.status_code == 201, registered.text
    case_id = uuid.uuid4()
    shared = PlanShared(
        case_id=case_id,
        model="family",
        plan_version=1,
        shared_at=datetime.now(UTC),
        organisations=[
            SharedWith(organisation=ORGANISATION, agreements=[AgreementRef(agreement_id="a1")])
        ],
    )
    app.process(delivered(shared, next(_positions), origin="plans"))
    [row] = app.views.of_case(case_id)
    return {"case_id": str(case_id), "organisation": ORGANISATION, "event_id": str(row.event_id)}


async def seed_followup(definition: ServiceDefinition, http: httpx.AsyncClient) -> dict[str, str]:
    app = definition.app
    case_id = uuid.uuid4()
    a_year_ago = datetime.now(UTC) - timedelta(days=365)
    app.process(delivered(request_received(case_id), next(_positions)))
    app.process(delivered(coordinator_assigned(case_id), next(_positions)))
    distributed = plan_distributed(case_id, at=a_year_ago, agreement_ids=["a1"])
    app.process(delivered(distributed, next(_positions)))
    app.fire_due_timers()
    return {"case_id": str(case_id)}


SEEDS: dict[str, Seed] = {
    "intake": seed_intake,
    "coordination": seed_coordination,
    "plans": seed_plans,
    "followup": seed_followup,
    "partners": seed_partners,
}


# -- who ----------------------------------------------------------------------------------------
def token_for(role: Role, scope: Scope, params: dict[str, str], *, wrong: bool = False) -> Any:
    """The token of someone meeting (or, ``wrong``, just missing) one grant of a rule."""
    name = f"{role.value}-{'wrong' if wrong else 'right'}"
    if scope in (Scope.REGION, Scope.ON_BEHALF):
        return bearer(name, [role], regions=[OTHER_REGION if wrong else REGION])
    if scope is Scope.ASSIGNED:
        coordinator = OTHER_COORDINATOR if wrong else COORDINATOR
        return bearer(coordinator, [role], coordinator=coordinator)
    if scope is Scope.SELF:
        case_id, participant = params["case_id"], params.get("participant_id", PARTICIPANT)
        if wrong and "participant_id" in params:
            participant = "p9"  # another participant of the case: not them
        elif wrong:
            case_id = str(uuid.uuid4())  # a participant of another case
        return bearer(name, [role], participant=[f"{case_id}:{participant}"])
    if scope is Scope.SUBMITTER:
        return bearer("someone-else" if wrong else SUBMITTER, [role])
    if scope is Scope.ORGANISATION:
        organisation = OTHER_ORGANISATION if wrong else params.get("organisation", ORGANISATION)
        return bearer(name, [role], kring_organisation=organisation)
    return bearer(name, [role], regions=[REGION])


def right_token(rule: Rule, params: dict[str, str], service: str = "") -> Any:
    if rule.anyone:
        return bearer(SUBMITTER, [])
    grants = rule.grants
    if service == "partners":  # no case has a region there: the first grant not by region
        grants = tuple(g for g in grants if g[1] not in (Scope.REGION, Scope.ON_BEHALF))
    role, scope = grants[0]
    return token_for(role, scope, params)


def path_of(route: Route, params: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], route.path)


def is_list(route: Route) -> bool:
    return route.method == "GET" and "{" not in route.path


# -- the route table ----------------------------------------------------------------------------
def test_every_route_names_a_rule_and_readme_shows_the_matrix_they_make(tmp_path: Path) -> None:
    routes = all_routes(tmp_path)
    undeclared = [f"{r.service} {r.method} {r.path}" for r in routes if r.rule_name is None]
    assert undeclared == []
    unknown = [
        f"{r.service} {r.method} {r.path}: {r.rule_name}"
        for r in routes
        if r.rule_name != "public" and r.rule is None
    ]
    assert unknown == []
    public = sorted({r.path for r in routes if r.rule is None})
    assert public == ["/asyncapi.json", "/health/live", "/health/ready"]
    assert render(routes) in README.read_text(), (
        "README's access matrix: python -m tests.access_matrix"
    )


def test_the_route_table_holds_every_operation_the_api_serves(tmp_path: Path) -> None:
    for service in SERVICES:
        definition, running = built(service, tmp_path / service)
        try:
            served = {
                (method.upper(), path)
                for path, item in running.api.openapi()["paths"].items()
                for method in item
            }
            declared = {(r.method, r.path) for r in routes_of(service, running)}
            assert served <= declared, served - declared
        finally:
            definition.app.close()


@pytest.fixture(params=list(SERVICES))
async def service(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, ServiceDefinition, Any, httpx.AsyncClient]]:
    name = request.param
    definition, running = built(name, tmp_path)
    transport = httpx.ASGITransport(app=running.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        try:
            yield name, definition, running, http
        finally:
            definition.app.close()


async def test_every_endpoint_lets_in_only_whom_its_rule_names(
    service: tuple[str, ServiceDefinition, Any, httpx.AsyncClient],
) -> None:
    name, definition, running, http = service
    tried: list[str] = []
    for route in routes_of(name, running):
        if route.rule is None:
            continue
        rule = route.rule
        label = f"{name} {route.method} {route.path}"
        params = await SEEDS[name](definition, http)
        url = path_of(route, params) + QUERIES.get((name, route.method, route.path), "")
        body = BODIES.get((name, route.method, route.path))

        async def call(
            headers: dict[str, str], method: str = route.method, url: str = url, body: Any = body
        ) -> httpx.Response:
            return await http.request(method, url, json=body, headers=headers)

        # No token, and a token that is not one: 401 saying so.
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            refused = await call(headers)
            assert refused.status_code == 401, (label, refused.text)
            assert refused.headers["WWW-Authenticate"].startswith("Bearer"), label

        # A role the rule does not grant.
        if not rule.anyone:
            outsider = next(r for r in ROLES if r not in rule.roles)
            refused = await call(bearer(f"{outsider.value}-outsider", [outsider], regions=[REGION]))
            assert refused.status_code == 403, (label, refused.text)
            assert "needs the role" in refused.json()["detail"], (label, refused.text)

        # The right role out of scope: another region, another coordinator, another participant,
        # someone other than the submitter.
        for role, scope in rule.grants:
            if scope is Scope.ANY:
                continue
            # Someone holding only this role, so no other grant of the rule lets them in.
            wrong = token_for(role, scope, params, wrong=True)
            answer = await call(wrong)
            if is_list(route):
                assert answer.status_code == 200, (label, role, answer.text)
                assert params["case_id"] not in answer.text, (label, role)
                continue
            assert answer.status_code == 403, (label, role, scope, answer.text)
            detail = answer.json()["detail"]
            assert "needs" in detail, (label, detail)
            if scope in (Scope.REGION, Scope.ON_BEHALF) and name == "partners":
                # The partners service knows no case's region (it keeps no personal data): a
                # regional manager never reads its case routes, an operator does.
                assert "region (not known here yet)" in detail, (label, detail)
            elif scope in (Scope.REGION, Scope.ON_BEHALF):
                assert f"region {REGION}" in detail, (label, detail)
            if scope is Scope.ASSIGNED:
                assert COORDINATOR in detail, (label, detail)

        # The one the rule names first gets past the gate (the case's state may still refuse).
        allowed = await call(right_token(rule, params, name))
        assert allowed.status_code not in (401, 403), (label, allowed.text)
        assert allowed.status_code < 500, (label, allowed.text)
        tried.append(label)
    assert len(tried) >= 5


async def test_the_old_headers_make_nobody_anybody(tmp_path: Path) -> None:
    """The probes of issue 9: a made-up ``X-Kring-Role`` clarified and accepted a request, a
    made-up operator erased a case, ``role: system`` came from outside, and every GET answered
    without a word. Headers say nothing of who calls now; a token does, and only its issuer's."""
    definition, running = built("intake", tmp_path)
    transport = httpx.ASGITransport(app=running.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        params = await seed_intake(definition, http)
        case = f"/cases/{params['case_id']}"
        for role in ("regional_manager", "operator", "system"):
            made_up = {"X-Kring-Actor": "mallory", "X-Kring-Role": role}
            for method, path, body in (
                ("POST", f"{case}/accept", None),
                ("POST", f"{case}/erase", {"reason": "other"}),
                ("GET", "/cases", None),
                ("GET", case, None),
            ):
                answer = await http.request(method, path, json=body, headers=made_up)
                assert answer.status_code == 401, (role, path)
        # A requester's own token with a made-up role beside it is still a requester.
        requester = bearer(SUBMITTER, ["requester"]) | {"X-Kring-Role": "regional_manager"}
        refused = await http.post(f"{case}/accept", headers=requester)
        assert refused.status_code == 403
        assert "needs the role regional_manager" in refused.json()["detail"]
        # The system role is never taken from a token, signed as it may be.
        system = bearer("intake", ["system"], regions=[REGION])
        assert (await http.post(f"{case}/accept", headers=system)).status_code == 403
    history = definition.app.history(uuid.UUID(params["case_id"]))
    assert [e.type for e in history] == ["Submitted", "Clarified"]  # nothing else was stored
    definition.app.close()
