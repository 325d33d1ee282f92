"""Who did it: every stored event keeps its actor, and the actor comes from the caller's token.

The actor is the person (or client) a validated token names, in the role a rule let them act in
(``shared.access``), and, where a regional manager acts for the assigned coordinator, for whom.
``system`` is what a service does by itself (reacting to an event, a timer firing); no token can
make anyone ``system``.

Stored form: ``{"id", "role"}`` and, since identity came from tokens, ``"name"`` (the display
name) and ``"on_behalf_of"`` where it applies. Events stored before keep ``{"id", "role"}`` and
read as they were.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    REQUESTER = "requester"
    REGIONAL_MANAGER = "regional_manager"
    COORDINATOR = "coordinator"
    PROFESSIONAL = "professional"
    PARTICIPANT = "participant"
    RESEARCHER = "researcher"  # makes the research contacts of the follow-up
    OPERATOR = "operator"
    #: A partner organisation's client: fetches the plans shared with its organisation.
    PARTNER = "partner"
    SYSTEM = "system"


#: Roles a token may carry. ``system`` is never one of them.
TOKEN_ROLES = frozenset(Role) - {Role.SYSTEM}


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=200)
    role: Role
    name: str | None = Field(default=None, max_length=200)
    #: Whom a regional manager acted for (the assigned coordinators' ids, comma-separated).
    on_behalf_of: str | None = Field(default=None, max_length=400)

    def as_record(self) -> dict[str, str]:
        """The form stored in events (plain strings, so any transcoder keeps it)."""
        record = {"id": self.id, "role": self.role.value}
        if self.name:
            record["name"] = self.name
        if self.on_behalf_of:
            record["on_behalf_of"] = self.on_behalf_of
        return record


def system_actor(service: str) -> Actor:
    """The actor of what a service does by itself (reacting to an event, a timer firing)."""
    return Actor(id=service, role=Role.SYSTEM)
