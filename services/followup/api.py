"""Follow-up's HTTP API: parse, build the command, hand it over. Rules live in the domain.

Notes of an outcome and the reason for a follow-up conference go in and stay in the store; no
view returns them (free text about people), as intake and plans return no names.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import APIRouter, Header, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.followup.access import RULES
from services.followup.app import FollowupApplication
from services.followup.domain import FollowUp, Rating, Stage
from shared.events import AgreementOutcome, ConferenceModel, RatingGroup
from shared.http import (
    NOT_FOUND,
    NOT_FOUND_OR_CONFLICT,
    Caller,
    PageOf,
    Paging,
    Responses,
    access,
    run_sync,
)

T = TypeVar("T")

AgreementId = Annotated[str, Field(min_length=1, max_length=20)]
INVALID: Responses = {422: {"description": "invalid input, or a timer or agreement id not here"}}


class OutcomeIn(BaseModel):
    """What a contact found: whether anyone was reached, and per agreement of the current plan
    version whether it was kept. ``notes`` stay in followup's store; no view or event shows them."""

    model_config = ConfigDict(extra="forbid")

    timer_id: Annotated[str, Field(min_length=1, max_length=80)]
    reached: bool
    agreements: dict[AgreementId, AgreementOutcome] = Field(default_factory=dict, max_length=200)
    notes: Annotated[str, Field(max_length=5000)] = ""


class MeetingIn(BaseModel):
    """The family's own next meeting: held (``held_on``) or not; per agreement of the current
    plan, how it went (``kept``, ``partly_kept``, ``not_kept``); whether they want a revised
    plan (plans hears of it, the coordinator writes the next version); when they meet again.
    ``timer_id`` names the meeting (``next_meeting``, ``next_meeting-2``); left out, the
    earliest not yet recorded. ``notes`` stay in followup's store."""

    model_config = ConfigDict(extra="forbid")

    timer_id: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    held: bool
    held_on: date | None = None
    agreements: dict[AgreementId, AgreementOutcome] = Field(default_factory=dict, max_length=200)
    revised_plan_wanted: bool = False
    next_meeting_on: date | None = None
    notes: Annotated[str, Field(max_length=5000)] = ""


Mark = Annotated[int, Field(ge=1, le=10)]


class RatingIn(BaseModel):
    """One respondent's marks (1-10) for the meeting and for the plan (either may be left out),
    and their group: the family and network (the central persons among them) or a professional.
    Never who they are."""

    model_config = ConfigDict(extra="forbid")

    by: RatingGroup
    meeting: Mark | None = None
    plan: Mark | None = None

    @model_validator(mode="after")
    def gives_a_mark(self) -> RatingIn:
        if self.meeting is None and self.plan is None:
            raise ValueError("give a mark for the meeting, the plan or both")
        return self


class RatingsIn(BaseModel):
    """The marks of everyone asked at one contact, one entry per respondent."""

    model_config = ConfigDict(extra="forbid")

    timer_id: Annotated[str, Field(min_length=1, max_length=80)]
    ratings: list[RatingIn] = Field(min_length=1, max_length=200)


class FollowUpConferenceIn(BaseModel):
    """Why a follow-up conference is asked for; stays in followup's store."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=2000)] = ""


class FollowUpConferenceCreated(BaseModel):
    case_id: UUID
    #: The case intake opens for the follow-up conference, linked to this one.
    new_case_id: UUID


class TimerView(BaseModel):
    timer_id: str
    kind: str
    due_at: datetime
    fired_at: datetime | None
    cancelled_at: datetime | None
    outcome_recorded: bool


class OutcomeView(BaseModel):
    timer_id: str
    kind: str
    reached: bool
    agreements: dict[str, AgreementOutcome]
    recorded_at: datetime
    #: The actor id of who recorded it.
    recorded_by: str
    #: Notes were recorded (they are kept in the store, not shown).
    notes_given: bool


class MeetingView(BaseModel):
    timer_id: str
    held: bool
    held_on: date | None
    agreements: dict[str, AgreementOutcome]
    revised_plan_wanted: bool
    next_meeting_on: date | None


class RatingView(BaseModel):
    by: RatingGroup
    meeting: int | None
    plan: int | None


class FollowUpView(BaseModel):
    case_id: UUID
    model: ConferenceModel
    plan_version: int
    #: When the current plan version was distributed.
    distributed_at: datetime
    #: When the first version was distributed: the contacts count from here.
    first_distributed_at: datetime
    next_meeting_on: date | None
    agreement_ids: list[str]
    stage: Stage
    #: Earliest due first.
    timers: list[TimerView]
    outcomes: list[OutcomeView]
    #: The family's own next meetings recorded (each is also among ``outcomes``).
    meetings: list[MeetingView]
    #: When a meeting asked for a revised plan.
    revisions_requested: list[datetime]
    #: Per contact (timer id), the marks its respondents gave.
    ratings: dict[str, list[RatingView]]
    follow_up_cases: list[UUID]

    @classmethod
    def of(cls, follow_up: FollowUp) -> FollowUpView:
        timers = sorted(follow_up.timers.items(), key=lambda item: (item[1].due_at, item[0]))
        return cls(
            case_id=follow_up.id,
            model=ConferenceModel(follow_up.model),
            plan_version=follow_up.plan_version,
            distributed_at=follow_up.distributed_at,
            first_distributed_at=follow_up.first_distributed_at,
            next_meeting_on=follow_up.next_meeting_on,
            agreement_ids=follow_up.agreement_ids,
            stage=follow_up.stage,
            timers=[
                TimerView(
                    timer_id=timer_id,
                    kind=t.kind,
                    due_at=t.due_at,
                    fired_at=t.fired_at,
                    cancelled_at=t.cancelled_at,
                    outcome_recorded=t.outcome_recorded,
                )
                for timer_id, t in timers
            ],
            outcomes=[
                OutcomeView(
                    timer_id=o["timer_id"],
                    kind=o["kind"],
                    reached=o["reached"],
                    agreements=o["agreements"],
                    recorded_at=o["at"],
                    recorded_by=o["by"]["id"],
                    notes_given=bool(o["notes"]),
                )
                for o in follow_up.outcomes
            ],
            meetings=[MeetingView.model_validate(m.model_dump()) for m in follow_up.meetings],
            revisions_requested=follow_up.revisions_requested,
            ratings={
                timer_id: [
                    RatingView(by=RatingGroup(r.by), meeting=r.meeting, plan=r.plan) for r in rated
                ]
                for timer_id, rated in follow_up.ratings.items()
            },
            follow_up_cases=follow_up.follow_up_cases,
        )


class CaseRow(BaseModel):
    case_id: UUID
    model: ConferenceModel
    stage: Stage
    #: The earliest timer neither fired nor cancelled (a contact or the reminder), if any.
    next_due_at: datetime | None
    #: How many outcomes were recorded.
    outcomes: int


def router(app: FollowupApplication) -> APIRouter:
    api = APIRouter(tags=["followup"])
    command = NOT_FOUND_OR_CONFLICT | INVALID

    @api.get("/cases", openapi_extra=access(RULES, "list"))
    async def list_cases(
        principal: Caller,
        page: Paging,
        stage: Stage | None = None,
        model: ConferenceModel | None = None,
    ) -> PageOf[CaseRow]:
        """The follow-ups the caller may see, oldest first, filtered by stage and model, a page
        at a time."""
        rows = await run_sync(
            lambda: app.views.cases_page(principal, page, stage=stage, model=model)
        )
        return PageOf[CaseRow].of(rows, CaseRow)

    @api.get("/cases/{case_id}", responses=NOT_FOUND, openapi_extra=access(RULES, "read"))
    async def get_follow_up(case_id: UUID, principal: Caller) -> FollowUpView:
        """The follow-up: the plan version it follows, its timers, outcomes and follow-up
        conferences (the read is recorded)."""
        return FollowUpView.of(await run_sync(app.read, case_id, principal))

    @api.post(
        "/cases/{case_id}/outcomes",
        status_code=status.HTTP_201_CREATED,
        responses=command,
        openapi_extra=access(RULES, "outcome"),
    )
    async def record_outcome(case_id: UUID, body: OutcomeIn, principal: Caller) -> FollowUpView:
        """Record what a contact that came due found: the coordinator's call by the case's
        coordinator, other contacts by a researcher, any by the regional manager of the
        region. 409 before the contact is due, for the next-meeting reminder, or a second
        time; 422 for a timer or agreement id the follow-up does not have."""
        agreements = {k: v.value for k, v in body.agreements.items()}
        follow_up = await run_sync(
            app.record_outcome,
            case_id,
            body.timer_id,
            body.reached,
            agreements,
            body.notes,
            principal,
        )
        return FollowUpView.of(follow_up)

    @api.post(
        "/cases/{case_id}/next-meeting",
        status_code=status.HTTP_201_CREATED,
        responses=command,
        openapi_extra=access(RULES, "meeting"),
    )
    async def record_meeting(case_id: UUID, body: MeetingIn, principal: Caller) -> FollowUpView:
        """The family's own next meeting, recorded as a contact by the coordinator, the
        regional manager, or a participant of the case themself: held or not, agreements
        reviewed, a revised plan wanted or not, and when they meet again (a new reminder and
        meeting). 409 once recorded, or with no meeting left to record; 422 for a day in the
        future, an agreement the plan lacks, outcomes or a revision for a meeting not held."""
        agreements = {k: v.value for k, v in body.agreements.items()}
        follow_up = await run_sync(
            lambda: app.record_meeting(
                case_id,
                principal,
                timer_id=body.timer_id,
                held=body.held,
                held_on=body.held_on,
                agreements=agreements,
                revised_plan_wanted=body.revised_plan_wanted,
                next_meeting_on=body.next_meeting_on,
                notes=body.notes,
            )
        )
        return FollowUpView.of(follow_up)

    @api.post(
        "/cases/{case_id}/ratings",
        status_code=status.HTTP_201_CREATED,
        responses=command,
        openapi_extra=access(RULES, "ratings"),
    )
    async def record_ratings(case_id: UUID, body: RatingsIn, principal: Caller) -> FollowUpView:
        """Record the marks (1-10) the people asked at a contact that came due gave the meeting
        and the plan, one entry per respondent, by group: whoever may record that contact's
        outcome records them (403 for anyone else), once per contact. 409 before the contact is
        due, for the reminder, or a second time; 422 for a timer id the follow-up does not have
        or a mark outside 1-10."""
        ratings = [Rating(by=r.by.value, meeting=r.meeting, plan=r.plan) for r in body.ratings]
        follow_up = await run_sync(app.record_ratings, case_id, body.timer_id, ratings, principal)
        return FollowUpView.of(follow_up)

    @api.post(
        "/cases/{case_id}/follow-up-conference",
        status_code=status.HTTP_201_CREATED,
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "follow_up_conference"),
    )
    async def request_follow_up_conference(
        case_id: UUID,
        principal: Caller,
        body: FollowUpConferenceIn | None = None,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
    ) -> FollowUpConferenceCreated:
        """Ask for a follow-up conference (the coordinator or the regional manager); intake
        opens it as a new case linked to this one. Send an ``Idempotency-Key`` header to
        make a retry safe: the same key returns the same new case. 404 if no plan of this case
        was distributed."""
        reason = body.reason if body else ""
        new_case_id = await run_sync(
            app.request_follow_up_conference, case_id, reason, principal, idempotency_key
        )
        return FollowUpConferenceCreated(case_id=case_id, new_case_id=new_case_id)

    return api
