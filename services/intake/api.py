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
        )


def router(app: IntakeApplication) -> APIRouter:
    api = APIRouter(tags=["intake"])

    @api.post("/cases", status_code=status.HTTP_201_CREATED)
    async def submit(body: SubmitRequest, actor: ActorHeader) -> CaseCreated:
        """Submit a request for a conference."""
        request = body.model_dump(mode="json")
        case_id = await run_sync(lambda: app.submit(actor, **request))
        return CaseCreated(case_id=case_id, stage=Stage.SUBMITTED)

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
