"""Claim checks between services: case data one service needs from another, asked for over core
NATS (request and reply, never on a stream) by the service's own identity.

The stream carries no case data and outlives any erasure, so text a service needs from another
(the conference questions and minimum requirements plans prints on the plan's copies) travels
here: the asking service stores it under the case's key, in its own store, and it is erased
with the case there. Only the identities ``shared.permissions`` names may ask, and only the
owner may answer; the answer goes to the asker's own inbox. Without TLS between the services
and NATS the text crosses the connection in the clear, as the NATS passwords do: a deployment
across machines runs NATS with TLS (``docs/bus.md``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.subjects import claim_subject

#: Plans asks intake for what the plan needs of the clarification.
CLARIFICATION = "clarification"
CLARIFICATION_SUBJECT = claim_subject("intake", CLARIFICATION)

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClarificationClaim(_Contract):
    """Plans' request: the clarification of this (accepted) case."""

    case_id: UUID


class QuestionForPlan(_Contract):
    """A conference question as accepted; ``question_id`` is ``q<n>`` in the clarification's
    order (fixed once the request is accepted)."""

    question_id: Annotated[str, Field(pattern=r"^q[0-9]{1,3}$")]
    text: Text


class ProfessionalForPlan(_Contract):
    """Who set a minimum requirement; ``subject`` is who they sign in as, where the regional
    manager recorded it: the plan's sign-off against the requirement is theirs."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    organisation: Annotated[str, Field(min_length=1, max_length=200)]
    role: Annotated[str, Field(min_length=1, max_length=200)]
    subject: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class RequirementForPlan(_Contract):
    requirement_id: Annotated[str, Field(pattern=r"^m[0-9]{1,3}$")]
    text: Text
    set_by: ProfessionalForPlan


class ClarificationForPlan(_Contract):
    questions: list[QuestionForPlan] = Field(min_length=1, max_length=20)
    requirements: list[RequirementForPlan] = Field(default_factory=list, max_length=20)


class ClaimOutcome(StrEnum):
    FOUND = "found"
    #: Not known to the owner, or not yet accepted: ask again later.
    NOT_YET = "not_yet"
    #: Erased: never ask again (the asker erases it too, on ``CaseErased``).
    ERASED = "erased"
    #: The owner could not answer now (its store away): ask again later.
    FAILED = "failed"


class ClarificationAnswer(_Contract):
    outcome: ClaimOutcome
    clarification: ClarificationForPlan | None = None
