"""What the partners service follows (plans' sharing, intake's erasures) and publishes on KRING
(the registry's changes, which plans keeps a copy of). The partners' own feeds are not KRING's:
``services.partners.feed`` publishes them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from services.partners.domain import Registry
from shared.events import IntegrationEvent, PartnerRegistered, PartnerRevoked
from shared.permissions import follows

FOLLOWS = follows("partners")


def translate(domain_event: DomainEventProtocol[UUID]) -> IntegrationEvent | None:
    e: Any = domain_event
    if isinstance(domain_event, Registry.Registered):  # type: ignore[attr-defined]
        return PartnerRegistered(
            organisation=e.organisation, organisation_name=e.name, registered_at=e.at
        )
    if isinstance(domain_event, Registry.Revoked):  # type: ignore[attr-defined]
        return PartnerRevoked(organisation=e.organisation, revoked_at=e.at)
    return None
