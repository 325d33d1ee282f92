"""Property-based HTTP fuzzing of every service's OpenAPI document: no 5xx, ever, and no
unhandled error (one would reach the test itself: the ASGI call raises it).

Every operation of each service's document is called (``/health/ready`` answers 503 by design
while NATS is away, as here; it is checked for exactly that). Random ids only ever meet a 404, so
each store first holds real cases (a request at each stage, an assigned case with participants,
a plan with a conference and one written, a follow-up whose contacts came due) and the fuzzer
names them half the time. Both data that fits the schema and data that does not are sent.
``KRING_FUZZ_EXAMPLES`` sets the examples per operation (30 by default; ``make soak`` sends more).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from kring import scenarios
from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.followup.bootstrap import build as build_followup
from services.followup.settings import FollowupSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.partners.bootstrap import build as build_partners
from services.partners.settings import PartnersSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.events import AgreementRef, ConferenceModel, PlanShared, SharedWith
from shared.runtime import ServiceDefinition, build_service
from tests.factories import (
    REGIONS,
    coordinator_assigned,
    delivered,
    headers,
    plan_distributed,
    principal,
    register_partners,
    request_received,
)
from tests.tokens import bearer
from tests.unit.test_plans_rules import clarification, conference, content

EXAMPLES = int(os.environ.get("KRING_FUZZ_EXAMPLES", "30"))
#: The partner organisation the seeded plans are shared with, and the partners service knows.
ORGANISATION = "org-fuzz"
#: Who the fuzzer is: staff of every region, and a partner's client of ``ORGANISATION``, so every
#: rule lets it through to the handler.
STAFF = bearer(
    "staff",
    ["regional_manager", "operator", "researcher", "professional", "partner"],
    regions=REGIONS,
    kring_organisation=ORGANISATION,
)
COORDINATOR = principal("c1", "coordinator")
NO_NATS = "nats://127.0.0.1:1"

#: Path parameters naming what the seeded store holds, by name.
Seeded = dict[str, list[Any]]


class Http:
    """Requests to the service through schemathesis' own ASGI transport (as the fuzzer calls)."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Any:
        for result in self.schema.get_all_operations():
            operation = result.ok()
            if operation.method.upper() == "POST" and _matches(operation.path, path):
                names = [p.name for p in operation.iter_parameters() if p.location == "path"]
                values = dict(zip(names, _values(operation.path, path), strict=True))
                given: dict[str, Any] = {} if json is None else {"body": json}
                return operation.Case(path_parameters=values, headers=headers, **given).call()
        raise LookupError(path)


def _matches(template: str, path: str) -> bool:
    parts, wanted = template.split("/"), path.split("/")
    return len(parts) == len(wanted) and all(
        p == w or p.startswith("{") for p, w in zip(parts, wanted, strict=True)
    )


def _values(template: str, path: str) -> list[str]:
    return [
        w for p, w in zip(template.split("/"), path.split("/"), strict=True) if p.startswith("{")
    ]


def seed_intake(definition: ServiceDefinition, http: Http) -> Seeded:
    """A request submitted, one clarified, one accepted."""
    family = scenarios.SCENARIOS[ConferenceModel.FAMILY]
    cases = []
    for steps in ([], ["clarify"], ["clarify", "accept"]):
        created = http.post(
            "/cases",
            json=scenarios.request_body(family, "Utrecht"),
            headers=headers("ria", "requester"),
        )
        assert created.status_code == 201, created.text
        case_id = created.json()["case_id"]
        for step in steps:
            body = scenarios.clarification_body(family) if step == "clarify" else None
            if step == "accept":  # the family asked for an informational talk first
                talk = {"held_on": date.today().isoformat(), "outcome": "go_ahead"}
                held = http.post(
                    f"/cases/{case_id}/informational-talk", json=talk, headers=headers()
                )
                assert held.status_code == 200, held.text
            done = http.post(f"/cases/{case_id}/{step}", json=body, headers=headers())
            assert done.status_code == 200, done.text
        cases.append(case_id)
    return {"case_id": cases}


def seed_coordination(definition: ServiceDefinition, http: Http) -> Seeded:
    """A coordinator; a case assigned with two participants invited; one waiting."""
    registered = http.post(
        "/coordinators",
        json={"coordinator_id": "c-fuzz", "regions": ["Utrecht"], "languages": ["nl"]},
        headers=headers(),
    )
    assert registered.status_code == 201, registered.text
    assigned, waiting = uuid.uuid4(), uuid.uuid4()
    definition.app.process(delivered(request_received(assigned), 1))
    definition.app.process(delivered(request_received(waiting, region="Elders"), 2))
    participants = []
    for person in scenarios.SCENARIOS[ConferenceModel.FAMILY].people[:2]:
        invited = http.post(
            f"/cases/{assigned}/participants",
            json=scenarios.participant_body(person),
            headers=headers("c-fuzz", "coordinator"),
        )
        assert invited.status_code == 201, invited.text
        participants.append(invited.json()["participant_id"])
    return {
        "case_id": [str(assigned), str(waiting)],
        "participant_id": participants,
        "coordinator_id": ["c-fuzz"],
    }


def seed_plans(definition: ServiceDefinition, http: Http) -> Seeded:
    """A plan whose conference was held (participants known), one written up, and one
    distributed and shared with the partner ``ORGANISATION``."""
    app = definition.app
    cases = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
    for n, case_id in enumerate(cases):
        app.process(delivered(request_received(case_id), 10 + n))
        app.note_clarification(case_id, clarification(minimum=True))
        app.process(delivered(conference(case_id), 10 + n, origin="coordination"))
        app.process(delivered(coordinator_assigned(case_id), 20 + n, origin="coordination"))
    app.write(cases[1], content(), COORDINATOR)
    register_partners(app, org_fuzz="Fuzz")
    app.write(cases[2], content(), COORDINATOR)
    app.accept(cases[2], 1, COORDINATOR)
    app.distribute(cases[2], [ORGANISATION], COORDINATOR)
    # Each case's clarification set the requirement m1: naming its signatory reaches the rule.
    return {"case_id": [str(c) for c in cases], "version": [1], "requirement_id": ["m1"]}


def seed_partners(definition: ServiceDefinition, http: Http) -> Seeded:
    """A partner with a webhook, and a notification of a case for it."""
    registered = http.post(
        "/partners",
        json={
            "organisation": ORGANISATION,
            "name": "Fuzz",
            "webhook_url": "https://partner.example.org/kring",
        },
        headers=STAFF,
    )
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
    definition.app.process(delivered(shared, 1, origin="plans"))
    [row] = definition.app.views.of_case(case_id)
    return {
        "case_id": [str(case_id)],
        "organisation": [ORGANISATION],
        "event_id": [str(row.event_id)],
    }


def seed_followup(definition: ServiceDefinition, http: Http) -> Seeded:
    """A follow-up whose plan was distributed a year ago: its contacts came due."""
    case_id = uuid.uuid4()
    a_year_ago = datetime.now(UTC) - timedelta(days=365)
    app = definition.app
    app.process(delivered(request_received(case_id), 1))
    app.process(delivered(coordinator_assigned(case_id), 1))
    app.process(delivered(plan_distributed(case_id, at=a_year_ago, agreement_ids=["a1", "a2"]), 1))
    assert definition.app.fire_due_timers() >= 1
    return {"case_id": [str(case_id)]}


SERVICES: dict[str, tuple[Callable[..., ServiceDefinition], Any, Callable[..., Seeded]]] = {
    "intake": (build_intake, IntakeSettings, seed_intake),
    "coordination": (build_coordination, CoordinationSettings, seed_coordination),
    "plans": (build_plans, PlansSettings, seed_plans),
    "followup": (build_followup, FollowupSettings, seed_followup),
    "partners": (build_partners, PartnersSettings, seed_partners),
}


@pytest.fixture(params=list(SERVICES))
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Seeded]]:
    """The service's HTTP edge on a real store holding seeded cases; the bus is not needed (and
    NATS is not there)."""
    build, settings_class, seed = SERVICES[request.param]
    # schemathesis calls the app as "testserver": a host this deployment is configured to serve.
    definition = build(
        settings_class(nats_url=NO_NATS, data_dir=tmp_path, allowed_hosts="testserver")
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_service(definition).api)
    try:
        seeded = seed(definition, Http(schema))
        yield schema, seeded
    finally:
        definition.app.close()


def fuzz(strategy: Any, statuses: Counter[int]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: Any) -> None:
        # A valid token of someone who may do nearly everything (a regional manager of every
        # region, acting for the coordinators), so inputs reach the rules, not only the gate.
        response = case.call_and_validate(headers=STAFF, checks=[not_a_server_error])
        statuses[response.status_code] += 1

    no_server_error()


@pytest.mark.timeout(max(120, 2 * EXAMPLES))
def test_no_input_makes_a_service_fail(service: tuple[Any, Seeded]) -> None:
    schema, seeded = service
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        if operation.path == "/health/ready":
            # Not ready while NATS is away: 503 by design, and nothing else.
            response = operation.Case().call()
            assert response.status_code == 503, response.text
            continue
        names = [p.name for p in operation.iter_parameters() if p.location == "path"]
        combinations = [
            dict(zip(names, values, strict=True))
            for values in product(*(seeded.get(name, []) for name in names))
        ]
        strategy = st.one_of(
            operation.as_strategy(),
            operation.as_strategy(GenerationMode.NEGATIVE),
            *(operation.as_strategy(path_parameters=values) for values in combinations),
        )

        fuzz(strategy, statuses[label])

    # Honest coverage: every operation was called, and one naming what the store holds was
    # answered by the handler (not just "not found").
    called = {label for label, counts in statuses.items() if counts}
    expected = {f"{op.method.upper()} {op.path}" for op in operations} - {"GET /health/ready"}
    assert called == expected
    unreached = sorted(
        label for label, counts in statuses.items() if "{" in label and set(counts) <= {404}
    )
    assert unreached == [], dict(statuses)
    # And the token let the fuzzer past the gate: no operation only ever refused it.
    gated = sorted(label for label, counts in statuses.items() if set(counts) <= {401, 403})
    assert gated == [], dict(statuses)
