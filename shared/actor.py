"""Who did it: every command names its actor, every stored event keeps it.

Until authentication exists the actor comes from two request headers; a command without them
is refused (422 naming the header).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Header
from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    REQUESTER = "requester"
    REGIONAL_MANAGER = "regional_manager"
    COORDINATOR = "coordinator"
    PROFESSIONAL = "professional"
    PARTICIPANT = "participant"
    RESEARCHER = "researcher"  # makes the research contacts of the follow-up
    OPERATOR = "operator"
    SYSTEM = "system"


class Actor(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=200)
    role: Role

    def as_record(self) -> dict[str, str]:
        """The form stored in events (plain strings, so any transcoder keeps it)."""
        return {"id": self.id, "role": self.role.value}


def system_actor(service: str) -> Actor:
    """The actor of what a service does by itself (reacting to an event, a timer firing)."""
    return Actor(id=service, role=Role.SYSTEM)


ACTOR_HEADER = "X-Kring-Actor"
ROLE_HEADER = "X-Kring-Role"


async def actor_from_headers(
    x_kring_actor: Annotated[str, Header(min_length=1, max_length=200)],
    x_kring_role: Annotated[Role, Header()],
) -> Actor:
    """FastAPI dependency: the acting person, from ``X-Kring-Actor`` and ``X-Kring-Role``.
    ``async`` though it awaits nothing: FastAPI runs a plain ``def`` dependency in a worker
    thread, a thread hop on every command for a constructor call."""
    return Actor(id=x_kring_actor, role=x_kring_role)


ActorHeader = Annotated[Actor, Depends(actor_from_headers)]
