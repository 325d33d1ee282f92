"""Plans' HTTP API: write up the plan (a new version each time), distribute it."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from services.plans.app import PlansApplication
from services.plans.domain import Plan, Stage
from shared.actor import ActorHeader
from shared.events import ConferenceModel
from shared.http import NOT_FOUND, NOT_FOUND_OR_CONFLICT, run_sync

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=5000)]


class Agreement(BaseModel):
    """Who does what, where and when (afspraak)."""

    model_config = ConfigDict(extra="forbid")

    who: Text
    what: LongText
    where: Text | None = None
    when: Text | None = None


class PlanContent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agreements: list[Agreement] = Field(min_length=1, max_length=200)
    if_something_does_not_work: LongText | None = None
    watched_by: Text | None = None
    next_meeting_on: date | None = None
    professional_support: list[Text] = Field(default_factory=list)


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Text
    organisation: Text | None = None


class Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: list[RecipientIn] = Field(min_length=1, max_length=500)
    shared_with_organisations: list[Text] = Field(default_factory=list)


class PlanVersion(BaseModel):
    version: int
    content: PlanContent


class PlanView(BaseModel):
    case_id: UUID
    stage: Stage
    model: ConferenceModel
    coordinator_ids: list[str]
    held_on: date | None
    versions: list[PlanVersion]
    distributed_versions: list[int]

    @classmethod
    def of(cls, plan: Plan) -> PlanView:
        return cls(
            case_id=plan.id,
            stage=plan.stage,
            model=ConferenceModel(plan.model),
            coordinator_ids=plan.coordinator_ids,
            held_on=plan.held_on,
            versions=[
                PlanVersion(version=v["version"], content=PlanContent.model_validate(v["content"]))
                for v in plan.versions
            ],
            distributed_versions=[d["version"] for d in plan.distributions],
        )


def router(app: PlansApplication) -> APIRouter:
    api = APIRouter(tags=["plans"])

    @api.get("/cases/{case_id}", responses=NOT_FOUND)
    async def get_plan(case_id: UUID) -> PlanView:
        return PlanView.of(await run_sync(app.get, case_id))

    @api.post("/cases/{case_id}/plan", responses=NOT_FOUND_OR_CONFLICT)
    async def write(case_id: UUID, body: PlanContent, actor: ActorHeader) -> PlanView:
        """Write up the plan; a second write-up is a new version, the old one stays."""
        content: dict[str, Any] = body.model_dump(mode="json")
        return PlanView.of(await run_sync(app.write, case_id, content, actor))

    @api.post("/cases/{case_id}/plan/distribute", responses=NOT_FOUND_OR_CONFLICT)
    async def distribute(case_id: UUID, body: Distribution, actor: ActorHeader) -> PlanView:
        """Send the latest version to every participant."""
        recipients: list[dict[str, str | None]] = [r.model_dump() for r in body.recipients]
        plan = await run_sync(
            app.distribute, case_id, recipients, body.shared_with_organisations, actor
        )
        return PlanView.of(plan)

    return api
