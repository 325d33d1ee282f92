"""Coordination's HTTP API: the pool, manual assignment, the conference held."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.coordination.app import CoordinationApplication
from services.coordination.domain import CoordinatedCase, Stage
from shared.actor import ActorHeader
from shared.events import ConferenceModel, ConferencePart, Ending, StopReason
from shared.http import NOT_FOUND, NOT_FOUND_OR_CONFLICT, run_sync

Text = Annotated[str, Field(min_length=1, max_length=200)]


class NewCoordinator(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coordinator_id: Text
    regions: list[Text] = Field(min_length=1)
    languages: list[Annotated[str, Field(min_length=2, max_length=35)]] = Field(min_length=1)
    capacity: int = Field(3, ge=1, le=50)


class CoordinatorView(BaseModel):
    coordinator_id: str
    regions: list[str]
    languages: list[str]
    capacity: int
    open_cases: int


class ManualAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coordinator_id: Text
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class AttendanceRole(StrEnum):
    CENTRAL_PERSON = "central_person"
    FAMILY = "family"
    NETWORK = "network"
    CHILD = "child"
    PROFESSIONAL = "professional"
    EXPERT = "expert"
    VICTIM = "victim"
    OFFENDER = "offender"
    PUPIL = "pupil"
    TEACHER = "teacher"
    COORDINATOR = "coordinator"
    INTERPRETER = "interpreter"


class ConferenceRecord(BaseModel):
    """Which parts took place, and how many were present per role in each."""

    model_config = ConfigDict(extra="forbid")

    held_on: date
    parts: list[ConferencePart] = Field(min_length=1)
    attendance: dict[ConferencePart, dict[AttendanceRole, Annotated[int, Field(ge=0, le=500)]]] = (
        Field(default_factory=dict)
    )


class EndingRecord(BaseModel):
    """How a case ended without a conference. ``note`` stays in coordination's store."""

    model_config = ConfigDict(extra="forbid")

    ending: Ending
    reason: StopReason | None = None
    note: Annotated[str, Field(max_length=2000)] = ""


class CaseView(BaseModel):
    case_id: UUID
    stage: Stage
    model: ConferenceModel
    region: str
    languages: list[str]
    coordinator_ids: list[str]
    waiting_reason: str | None
    first_contact_due: datetime | None
    contacted_at: datetime | None
    overdue: bool
    held_on: date | None
    stop_reason: StopReason | None

    @classmethod
    def of(cls, case: CoordinatedCase, now: datetime) -> CaseView:
        return cls(
            case_id=case.id,
            stage=case.stage,
            model=ConferenceModel(case.model),
            region=case.region,
            languages=case.languages,
            coordinator_ids=case.coordinator_ids,
            waiting_reason=case.waiting_reason,
            first_contact_due=case.first_contact_due,
            contacted_at=case.contacted_at,
            overdue=case.is_overdue(now),
            held_on=case.held_on,
            stop_reason=StopReason(case.stop_reason) if case.stop_reason else None,
        )


def router(app: CoordinationApplication) -> APIRouter:
    api = APIRouter(tags=["coordination"])

    @api.post("/coordinators", status_code=status.HTTP_201_CREATED)
    async def register(body: NewCoordinator, actor: ActorHeader) -> CoordinatorView:
        """Add a coordinator to the pool (or update one)."""
        await run_sync(
            app.register_coordinator,
            body.coordinator_id,
            body.regions,
            body.languages,
            body.capacity,
            actor,
        )
        return (await list_coordinators_view())[body.coordinator_id]

    async def list_coordinators_view() -> dict[str, CoordinatorView]:
        pool = await run_sync(app.pool)
        return {
            cid: CoordinatorView(coordinator_id=cid, open_cases=pool.load.get(cid, 0), **details)
            for cid, details in pool.coordinators.items()
        }

    @api.get("/coordinators")
    async def list_coordinators() -> list[CoordinatorView]:
        return list((await list_coordinators_view()).values())

    @api.get("/cases")
    async def list_cases(
        stage: Stage | None = None,
        region: Annotated[str | None, Query(max_length=200)] = None,
        coordinator_id: Annotated[str | None, Query(max_length=200)] = None,
        overdue: bool | None = None,
    ) -> list[CaseView]:
        """Cases in coordination; ``overdue=true``: first contact past its deadline."""
        cases = await run_sync(
            lambda: app.cases(
                stage=stage.value if stage else None,
                region=region,
                coordinator_id=coordinator_id,
                overdue=overdue,
            )
        )
        now = app.clock.now()
        return [CaseView.of(case, now) for case in cases]

    @api.post("/cases/{case_id}/contact", responses=NOT_FOUND_OR_CONFLICT)
    async def first_contact(case_id: UUID, actor: ActorHeader) -> CaseView:
        """The coordinator made first contact with the central person."""
        return CaseView.of(await run_sync(app.record_contact, case_id, actor), app.clock.now())

    @api.post("/cases/{case_id}/end", responses=NOT_FOUND_OR_CONFLICT)
    async def end(case_id: UUID, body: EndingRecord, actor: ActorHeader) -> CaseView:
        """The case ends before a conference: stopped (with a reason from the kept list), or
        a plan made without a meeting."""
        reason = body.reason.value if body.reason else None
        case = await run_sync(
            app.end_without_conference, case_id, body.ending.value, reason, body.note, actor
        )
        return CaseView.of(case, app.clock.now())

    @api.get("/cases/{case_id}", responses=NOT_FOUND)
    async def get_case(case_id: UUID) -> CaseView:
        return CaseView.of(await run_sync(app.get, case_id), app.clock.now())

    @api.post("/cases/{case_id}/assign", responses=NOT_FOUND_OR_CONFLICT)
    async def assign(case_id: UUID, body: ManualAssignment, actor: ActorHeader) -> CaseView:
        """The regional manager assigns or reassigns a coordinator by hand, with a reason."""
        case = await run_sync(app.assign_by_hand, case_id, body.coordinator_id, body.reason, actor)
        return CaseView.of(case, app.clock.now())

    @api.post("/cases/{case_id}/conference", responses=NOT_FOUND_OR_CONFLICT)
    async def conference_held(
        case_id: UUID, body: ConferenceRecord, actor: ActorHeader
    ) -> CaseView:
        """Record that the conference was held."""
        attendance = {
            part.value: {role.value: count for role, count in roles.items()}
            for part, roles in body.attendance.items()
        }
        parts = [part.value for part in body.parts]
        case = await run_sync(app.hold_conference, case_id, body.held_on, parts, attendance, actor)
        return CaseView.of(case, app.clock.now())

    return api
