"""Who is calling: the principal a validated token names. No I/O, no framework: domains take it.

A principal is a person or a registered client (``client_credentials``) with the roles, regions,
coordinator id, organisation and participations its issuer vouches for. Where these are found in
the token's claims is configuration (``ClaimNames``): a top-level ``roles`` claim by default,
Keycloak's ``realm_access.roles`` by setting ``KRING_OIDC_ROLES_CLAIM``. Roles Kring does not know
are ignored, and ``system`` is never taken from a token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from shared.actor import TOKEN_ROLES, Actor, Role


def fold(text: str) -> str:
    """Compare region names the way people write them (as coordination's pool does)."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class Participation:
    """A participant's own link to one case: they speak for themself there and nowhere else."""

    case_id: UUID
    participant_id: str

    @classmethod
    def parse(cls, text: str) -> Participation | None:
        """``<case id>:<participant id>``; None for anything else."""
        case, _, participant = text.partition(":")
        try:
            case_id = UUID(case)
        except ValueError:
            return None
        if not participant or len(participant) > 64:
            return None
        return cls(case_id, participant)

    def __str__(self) -> str:
        return f"{self.case_id}:{self.participant_id}"


@dataclass(frozen=True)
class Principal:
    subject: str
    name: str
    roles: frozenset[Role] = frozenset()
    #: Regions as written in the token; compare with ``manages``.
    regions: tuple[str, ...] = ()
    coordinator_id: str | None = None
    organisation: str | None = None
    participations: frozenset[Participation] = frozenset()
    #: The OAuth client the token was issued to (``azp`` or ``client_id``).
    client_id: str | None = None
    _folded_regions: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded_regions", frozenset(fold(r) for r in self.regions))

    def has(self, role: Role) -> bool:
        return role in self.roles

    def in_region(self, region: str | None) -> bool:
        return region is not None and fold(region) in self._folded_regions

    def in_any_region(self, regions: Iterable[str]) -> bool:
        return any(self.in_region(r) for r in regions)

    def is_participant(self, case_id: UUID, participant_id: str | None) -> bool:
        return participant_id is not None and (
            Participation(case_id, participant_id) in self.participations
        )

    def acting_as(self, role: Role, on_behalf_of: str | None = None) -> Actor:
        return Actor(id=self.subject, name=self.name, role=role, on_behalf_of=on_behalf_of)


@dataclass(frozen=True)
class ClaimNames:
    """Where the principal's facts are in a token: dotted paths into its claims."""

    roles: str = "roles"
    regions: str = "kring_regions"
    coordinator: str = "kring_coordinator_id"
    organisation: str = "kring_organisation"
    participant: str = "kring_participant"


class InvalidClaimsError(ValueError):
    """The token is valid but does not say who it is for (no ``sub``)."""


def principal_from_claims(claims: Mapping[str, Any], names: ClaimNames) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidClaimsError("the token names no subject (sub)")
    display = claims.get("name") or claims.get("preferred_username") or subject
    roles = frozenset(Role(r) for r in _strings(_at(claims, names.roles)) if r in TOKEN_ROLES)
    participations = frozenset(
        p for p in (Participation.parse(t) for t in _strings(_at(claims, names.participant))) if p
    )
    coordinator = _at(claims, names.coordinator)
    organisation = _at(claims, names.organisation)
    client = claims.get("azp") or claims.get("client_id")
    return Principal(
        subject=subject[:200],
        name=str(display)[:200],
        roles=roles,
        regions=tuple(r[:200] for r in _strings(_at(claims, names.regions))),
        coordinator_id=coordinator[:200] if isinstance(coordinator, str) and coordinator else None,
        organisation=organisation[:200] if isinstance(organisation, str) and organisation else None,
        participations=participations,
        client_id=client[:200] if isinstance(client, str) else None,
    )


def _at(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    """A claim given as one string or a list of them; anything else counts as none."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v][:100]
    return []
