"""Intake's HTTP API: parse, build the command, hand it over. Rules live in the domain."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from services.intake.app import IntakeApplication
from services.intake.domain import Request, Stage
from shared.actor import ActorHeader
from shared.events import ConferenceModel
from shared.http import NOT_FOUND, NOT_FOUND_OR_CONFLICT, run_sync

Text = Annotated[str, Field(min_length=1, max_length=200)]


class Relation(StrEnum):
    SELF = "self"
    FAMILY = "family"
    NEIGHBOUR = "neighbour"
    TEACHER = "teacher"
    CARE_WORKER = "care_worker"
    POLICE = "police"
    OTHER = "other"


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    relation: Relation
    contact: Annotated[str, Field(max_length=200)] | None = None


class SubmitRequest(BaseModel):
    """A request for a conference. Anyone may submit one."""

    model_config = ConfigDict(extra="forbid")

    requester: Requester
    central_persons: list[Text] = Field(min_length=1, max_length=50)
    model: ConferenceModel
    region: Text
    languages: list[Annotated[str, Field(min_length=2, max_length=35)]] = Field(
        default_factory=lambda: ["nl"], min_length=1, max_length=10
    )
    description: Annotated[str, Field(min_length=1, max_length=10_000)]
    informational_talk: bool = False


class Payer(StrEnum):
    MUNICIPALITY = "municipality"
    PROVINCE = "province"
    SCHOOL = "school"
    INSTITUTION = "institution"
    OTHER = "other"


class FundingStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REFUSED = "refused"


class Funding(BaseModel):
    """Who pays for the conference (financiering), and how far that is settled."""

    model_config = ConfigDict(extra="forbid")

    payer: Payer
    organisation: Text | None = None
    status: FundingStatus = FundingStatus.REQUESTED


class Professional(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    organisation: Text
    role: Text


class MinimumRequirement(BaseModel):
    """A condition every safe plan must meet (minimumeis), set by a professional."""

    model_config = ConfigDict(extra="forbid")

    requirement: Annotated[str, Field(min_length=1, max_length=2000)]
    set_by: Professional


class Clarification(BaseModel):
    """The regional manager's clarification: concrete, open conference questions."""

    model_config = ConfigDict(extra="forbid")

    conference_questions: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        min_length=1, max_length=20
    )
    funding: Funding
    minimum_requirements: list[MinimumRequirement] = Field(default_factory=list, max_length=20)


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class CaseCreated(BaseModel):
    case_id: UUID
    stage: Stage


class CaseView(BaseModel):
    case_id: UUID
    stage: Stage
    model: ConferenceModel
    region: str
    languages: list[str]
    informational_talk: bool
    submitted_at: datetime
    accepted_at: datetime | None
    withdrawal_reason: str | None
    conference_questions: list[str]
    funding: Funding | None
    minimum_requirements: list[MinimumRequirement]

    @classmethod
    def of(cls, case: Request) -> CaseView:
        return cls(
            case_id=case.id,
            stage=case.stage,
            model=ConferenceModel(case.model),
            region=case.region,
            languages=case.languages,
            informational_talk=case.informational_talk,
            submitted_at=case.submitted_at,
            accepted_at=case.accepted_at,
            withdrawal_reason=case.withdrawal_reason,
            conference_questions=case.conference_questions,
            funding=Funding.model_validate(case.funding) if case.funding else None,
            minimum_requirements=[
                MinimumRequirement.model_validate(m) for m in case.minimum_requirements
            ],
        )


def router(app: IntakeApplication) -> APIRouter:
    api = APIRouter(tags=["intake"])

    @api.post("/cases", status_code=status.HTTP_201_CREATED)
    async def submit(body: SubmitRequest, actor: ActorHeader) -> CaseCreated:
        """Submit a request for a conference."""
        request = body.model_dump(mode="json")
        case_id = await run_sync(lambda: app.submit(actor, **request))
        return CaseCreated(case_id=case_id, stage=Stage.SUBMITTED)

    @api.post("/cases/{case_id}/clarify", responses=NOT_FOUND_OR_CONFLICT)
    async def clarify(case_id: UUID, body: Clarification, actor: ActorHeader) -> CaseView:
        """The regional manager records the conference question(s), funding and any minimum
        requirements; again to revise them, until the request is accepted."""
        clarification = body.model_dump(mode="json")
        return CaseView.of(await run_sync(lambda: app.clarify(case_id, actor, **clarification)))

    @api.post("/cases/{case_id}/accept", responses=NOT_FOUND_OR_CONFLICT)
    async def accept(case_id: UUID, actor: ActorHeader) -> CaseView:
        """The regional manager accepts the clarified request for a conference."""
        return CaseView.of(await run_sync(app.accept, case_id, actor))

    @api.post("/cases/{case_id}/withdraw", responses=NOT_FOUND_OR_CONFLICT)
    async def withdraw(case_id: UUID, body: Withdrawal, actor: ActorHeader) -> CaseView:
        """Withdraw a request that has not been accepted yet."""
        return CaseView.of(await run_sync(app.withdraw, case_id, body.reason, actor))

    @api.get("/cases/{case_id}", responses=NOT_FOUND)
    async def get_case(case_id: UUID) -> CaseView:
        return CaseView.of(await run_sync(app.get, case_id))

    return api
