"""Follow-up's HTTP API: a case's follow-up and its timers."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter
from pydantic import BaseModel

from services.followup.app import FollowupApplication
from services.followup.domain import FollowUp
from shared.events import ConferenceModel
from shared.http import NOT_FOUND, run_sync


class TimerView(BaseModel):
    timer_id: str
    kind: str
    due_at: datetime
    fired_at: datetime | None


class FollowUpView(BaseModel):
    case_id: UUID
    model: ConferenceModel
    plan_version: int
    distributed_at: datetime
    timers: list[TimerView]

    @classmethod
    def of(cls, follow_up: FollowUp) -> FollowUpView:
        return cls(
            case_id=follow_up.id,
            model=ConferenceModel(follow_up.model),
            plan_version=follow_up.plan_version,
            distributed_at=follow_up.distributed_at,
            timers=[TimerView(timer_id=t, **d) for t, d in follow_up.timers.items()],
        )


def router(app: FollowupApplication) -> APIRouter:
    api = APIRouter(tags=["followup"])

    @api.get("/cases/{case_id}", responses=NOT_FOUND)
    async def get_follow_up(case_id: UUID) -> FollowUpView:
        return FollowUpView.of(await run_sync(app.get, case_id))

    return api
