"""A principal from a token's claims, and a rule held against it: the claims configured, roles
Kring does not know left out, ``system`` never taken, and a refusal that says what is missing."""

from __future__ import annotations

import uuid

import pytest

from shared.access import Facts, Rule, Scope, grants
from shared.actor import Role
from shared.errors import NotPermittedError
from shared.identity import ClaimNames, InvalidClaimsError, Participation, principal_from_claims

KEYCLOAK = ClaimNames(roles="realm_access.roles")


def test_claims_make_the_principal_from_where_they_are_configured() -> None:
    case = uuid.uuid4()
    claims = {
        "sub": "f81d4fae",
        "preferred_username": "anna",
        "realm_access": {"roles": ["regional_manager", "offline_access", "system", "coordinator"]},
        "kring_regions": "Utrecht",
        "kring_coordinator_id": "c7",
        "kring_participant": [f"{case}:p2", "not-a-case:p1", f"{case}:"],
        "azp": "kring-console",
    }
    principal = principal_from_claims(claims, KEYCLOAK)
    assert principal.subject == "f81d4fae" and principal.name == "anna"
    assert principal.roles == {Role.REGIONAL_MANAGER, Role.COORDINATOR}  # no system, ever
    assert principal.regions == ("Utrecht",) and principal.in_region(" utrecht ")
    assert principal.coordinator_id == "c7" and principal.client_id == "kring-console"
    assert principal.participations == {Participation(case, "p2")}
    assert principal_from_claims(claims, ClaimNames()).roles == frozenset()  # roles elsewhere
    with pytest.raises(InvalidClaimsError):
        principal_from_claims({"name": "nobody"}, ClaimNames())


def test_a_rule_lets_in_the_first_grant_met_and_says_what_is_missing() -> None:
    rule = Rule(
        "recording the first contact",
        grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.ON_BEHALF)),
    )
    case = Facts.of_case(uuid.uuid4(), "Utrecht", ["c1", "c2"])
    claims = {
        "sub": "x",
        "roles": ["coordinator", "regional_manager"],
        "kring_regions": ["Utrecht"],
    }
    both = principal_from_claims(claims | {"kring_coordinator_id": "c2"}, ClaimNames())
    assert rule.permit(both, case).as_record() == {"id": "x", "name": "x", "role": "coordinator"}
    manager = principal_from_claims(claims | {"roles": ["regional_manager"]}, ClaimNames())
    assert rule.permit(manager, case).on_behalf_of == "c1,c2"
    texel = principal_from_claims(
        {"sub": "t", "roles": ["regional_manager"], "kring_regions": ["Texel"]}, ClaimNames()
    )
    with pytest.raises(NotPermittedError) as refused:
        rule.permit(texel, case)
    assert str(refused.value) == (
        "recording the first contact needs the coordinator assigned to this case (c1 or c2),"
        " or the role regional_manager for region Utrecht, acting for the assigned coordinator"
    )
    researcher = principal_from_claims({"sub": "r", "roles": ["researcher"]}, ClaimNames())
    with pytest.raises(NotPermittedError, match="needs the role coordinator or the role"):
        rule.check_role(researcher)
