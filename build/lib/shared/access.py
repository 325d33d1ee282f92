"""Who may: the rules each service's domain declares, and how a principal is held against them.

No I/O, no framework. A ``Rule`` grants an action to roles, each within a scope: any holder of
the role, one of the case's region, the coordinator assigned to the case, a regional manager of
the region acting for that coordinator (recorded as such), or the participant themself. The
first grant a principal meets decides the role they act in; none met is ``NotPermittedError``
naming what is missing. Each service keeps its rules in one table (``services/*/access.py``);
every HTTP route names the rule it is under, and README's access matrix is made from the same
tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared.actor import Actor, Role
from shared.errors import NotPermittedError
from shared.identity import Principal


class Scope(StrEnum):
    ANY = "any"
    REGION = "region"
    ASSIGNED = "assigned"
    ON_BEHALF = "for coordinator"
    SELF = "self"
    #: The one who submitted the request (its ``requester``), themself.
    SUBMITTER = "submitter"
    #: A partner organisation's client, for a case the family shares with that organisation.
    ORGANISATION = "shared with"


@dataclass(frozen=True)
class Facts:
    """What a rule looks at. For a case: its id, region and coordinators; for a coordinator of
    the pool: their regions and their id as ``coordinator_ids``; for an answer of a participant:
    who."""

    case_id: UUID | None = None
    regions: tuple[str, ...] = ()
    coordinator_ids: tuple[str, ...] = ()
    participant_id: str | None = None
    #: The subject who submitted the case's request, where the service knows it.
    submitted_by: str | None = None
    #: The partner organisations the case is shared with now.
    organisations: tuple[str, ...] = ()

    @classmethod
    def of_case(
        cls,
        case_id: UUID,
        region: str | None,
        coordinator_ids: Iterable[str] = (),
        participant_id: str | None = None,
        submitted_by: str | None = None,
        organisations: Iterable[str] = (),
    ) -> Facts:
        return cls(
            case_id=case_id,
            regions=(region,) if region else (),
            coordinator_ids=tuple(coordinator_ids),
            participant_id=participant_id,
            submitted_by=submitted_by,
            organisations=tuple(organisations),
        )


@dataclass(frozen=True)
class Rule:
    """``action`` completes "… needs …" in a refusal: "clarify the request"."""

    action: str
    grants: tuple[tuple[Role, Scope], ...] = ()
    #: Any authenticated principal, whatever their roles (they act as ``anyone_as``).
    anyone: bool = False
    anyone_as: Role = Role.REQUESTER

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(role for role, _ in self.grants)

    def scope_of(self, role: Role) -> Scope | None:
        if self.anyone:
            return Scope.ANY
        return next((scope for r, scope in self.grants if r is role), None)

    def check_role(self, principal: Principal) -> None:
        """Before anything is loaded: the principal holds a role the rule grants at all."""
        if self.anyone or principal.roles & self.roles:
            return
        roles = " or ".join(f"the role {r.value}" for r in dict.fromkeys(r for r, _ in self.grants))
        raise NotPermittedError(f"{self.action} needs {roles or 'a role nobody has'}")

    def permit(self, principal: Principal, facts: Facts = Facts()) -> Actor:
        """The actor the principal acts as here, or ``NotPermittedError`` saying what is missing."""
        if self.anyone:
            return principal.acting_as(self.anyone_as)
        for role, scope in self.grants:
            if role in principal.roles and _meets(principal, scope, facts):
                behalf = ",".join(facts.coordinator_ids) if scope is Scope.ON_BEHALF else None
                return principal.acting_as(role, on_behalf_of=behalf or None)
        self.check_role(principal)
        needs = ", or ".join(dict.fromkeys(_needs(r, s, facts) for r, s in self.grants))
        raise NotPermittedError(f"{self.action} needs {needs}")

    def allows(self, principal: Principal, facts: Facts) -> bool:
        """For filtering a list: would ``permit`` let the principal see this row?"""
        return self.anyone or any(
            role in principal.roles and _meets(principal, scope, facts)
            for role, scope in self.grants
        )


def grants(*pairs: tuple[Role, Scope]) -> tuple[tuple[Role, Scope], ...]:
    return tuple(pairs)


def _meets(principal: Principal, scope: Scope, facts: Facts) -> bool:
    if scope is Scope.ANY:
        return True
    if scope in (Scope.REGION, Scope.ON_BEHALF):
        return principal.in_any_region(facts.regions)
    if scope is Scope.ASSIGNED:
        return principal.coordinator_id is not None and (
            principal.coordinator_id in facts.coordinator_ids
        )
    if scope is Scope.SUBMITTER:
        return facts.submitted_by is not None and principal.subject == facts.submitted_by
    if scope is Scope.ORGANISATION:
        return principal.organisation is not None and principal.organisation in facts.organisations
    if facts.case_id is None:
        return False
    if facts.participant_id is None:  # a read: any participant of the case
        return any(p.case_id == facts.case_id for p in principal.participations)
    return principal.is_participant(facts.case_id, facts.participant_id)


def _needs(role: Role, scope: Scope, facts: Facts) -> str:
    if scope is Scope.ANY:
        return f"the role {role.value}"
    if scope in (Scope.REGION, Scope.ON_BEHALF):
        where = _regions(facts.regions)
        acting = ", acting for the assigned coordinator" if scope is Scope.ON_BEHALF else ""
        return f"the role {role.value} for {where}{acting}"
    if scope is Scope.ASSIGNED:
        if facts.case_id is None:
            return f"coordinator {_ids(facts.coordinator_ids)} themself"
        if not facts.coordinator_ids:
            return "the coordinator assigned to this case (none is yet)"
        return f"the coordinator assigned to this case ({_ids(facts.coordinator_ids)})"
    if scope is Scope.SUBMITTER:
        return "the one who submitted the request"
    if scope is Scope.ORGANISATION:
        return f"the role {role.value} of an organisation the family shares this plan with"
    if facts.participant_id is None:
        return "a participant of this case"
    return f"participant {facts.participant_id} of this case themself"


def _regions(regions: Sequence[str]) -> str:
    if not regions:
        return "the case's region (not known here yet)"
    return "region " + " or ".join(regions)


def _ids(ids: Sequence[str]) -> str:
    return " or ".join(ids) or "?"


#: The rules every service shares (``shared.http.common_router``).
ACCESS_LOG = Rule(
    "reading who read a case",
    grants((Role.REGIONAL_MANAGER, Scope.REGION), (Role.OPERATOR, Scope.ANY)),
)
ERASURE_STATUS = Rule(
    "asking whether a case was erased",
    grants((Role.OPERATOR, Scope.ANY), (Role.REGIONAL_MANAGER, Scope.ANY)),
)
METRICS = Rule("reading the metrics", grants((Role.OPERATOR, Scope.ANY)))
