"""Who may call what, read from the services' own route tables and rule tables: the access matrix
README shows (``test_access.py`` checks README against it, so they cannot drift).

``python -m tests.access_matrix`` prints it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.coordination.access import RULES as COORDINATION_RULES
from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.followup.access import RULES as FOLLOWUP_RULES
from services.followup.bootstrap import build as build_followup
from services.followup.settings import FollowupSettings
from services.intake.access import RULES as INTAKE_RULES
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.partners.access import RULES as PARTNERS_RULES
from services.partners.bootstrap import build as build_partners
from services.partners.settings import PartnersSettings
from services.plans.access import RULES as PLANS_RULES
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.access import ACCESS_LOG, ERASURE_STATUS, METRICS, Rule, Scope
from shared.actor import TOKEN_ROLES, Role
from shared.http import ACCESS_KEY, PUBLIC
from shared.runtime import RunningService, ServiceDefinition, build_service

#: The columns, in the order people meet them.
ROLES: tuple[Role, ...] = (
    Role.REQUESTER,
    Role.REGIONAL_MANAGER,
    Role.COORDINATOR,
    Role.PROFESSIONAL,
    Role.PARTICIPANT,
    Role.RESEARCHER,
    Role.OPERATOR,
    Role.PARTNER,
)
assert set(ROLES) == set(TOKEN_ROLES)

CELL = {
    Scope.ANY: "✓",
    Scope.REGION: "region",
    Scope.ASSIGNED: "own",
    Scope.ON_BEHALF: "for coordinator",
    Scope.SELF: "self",
    Scope.SUBMITTER: "submitter",
    Scope.ORGANISATION: "own organisation",
}
COMMON_RULES: dict[str, Rule] = {
    "access_log": ACCESS_LOG,
    "erasure_status": ERASURE_STATUS,
    "metrics": METRICS,
}

Builder = Callable[..., ServiceDefinition]
SERVICES: dict[str, tuple[Builder, Any, dict[str, Rule], int]] = {
    "intake": (build_intake, IntakeSettings, INTAKE_RULES, 8001),
    "coordination": (build_coordination, CoordinationSettings, COORDINATION_RULES, 8002),
    "plans": (build_plans, PlansSettings, PLANS_RULES, 8003),
    "followup": (build_followup, FollowupSettings, FOLLOWUP_RULES, 8004),
    "partners": (build_partners, PartnersSettings, PARTNERS_RULES, 8006),
}


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    path: str
    #: The rule's name in the service's table; ``public`` for none; None: not declared.
    rule_name: str | None
    rule: Rule | None


def rule_of(service: str, name: str | None) -> Rule | None:
    if name is None or name == PUBLIC:
        return None
    rules = SERVICES[service][2]
    return rules.get(name) or COMMON_RULES.get(name)


def routes_of(service: str, running: RunningService) -> Iterator[Route]:
    for route in running.routes:
        name = (route.openapi_extra or {}).get(ACCESS_KEY)
        for method in sorted(route.methods - {"HEAD"}):
            yield Route(service, method, route.path, name, rule_of(service, name))


def built(
    service: str, data_dir: Path, **settings: Any
) -> tuple[ServiceDefinition, RunningService]:
    build, settings_class, _, _ = SERVICES[service]
    definition = build(settings_class(nats_url="nats://127.0.0.1:1", data_dir=data_dir, **settings))
    return definition, build_service(definition)


def cell(rule: Rule | None, role: Role) -> str:
    if rule is None:
        return "public"
    scope = rule.scope_of(role)
    return CELL[scope] if scope is not None else "—"


def render(routes: list[Route]) -> str:
    """README's matrix: one table, a row per operation, a column per role."""
    lines = [
        "| service | operation | " + " | ".join(r.value for r in ROLES) + " |",
        "|---|---|" + "---|" * len(ROLES),
    ]
    for route in routes:
        if route.path.startswith(("/docs", "/redoc", "/openapi")):
            continue
        cells = [cell(route.rule, role) for role in ROLES]
        port = SERVICES[route.service][3]
        operation = f"`{route.method} :{port}{route.path}`"
        lines.append(f"| {route.service} | {operation} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def all_routes(base: Path) -> list[Route]:
    found: list[Route] = []
    for service in SERVICES:
        definition, running = built(service, base / service)
        try:
            found.extend(routes_of(service, running))
        finally:
            definition.app.close()
    return found


def main() -> None:
    from tests.tokens import session_issuer

    session_issuer()  # the services need an issuer named to be built
    with tempfile.TemporaryDirectory() as base:
        print(render(all_routes(Path(base))))


if __name__ == "__main__":
    main()
