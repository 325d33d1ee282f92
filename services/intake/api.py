"""Intake's HTTP API: parse, build the command, hand it over. Rules live in the domain."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.intake.access import RULES
from services.intake.app import IntakeApplication
from services.intake.domain import Funding as FundingValue
from services.intake.domain import InformationalTalk, Request, Stage, TalkOutcome
from services.intake.domain import MinimumRequirement as RequirementValue
from shared.erasure import ErasureReason
from shared.events import ConferenceModel, CoordinatorWishes, RequesterRelation
from shared.http import (
    CONFLICT,
    NOT_FOUND,
    NOT_FOUND_OR_CONFLICT,
    Caller,
    PageOf,
    Paging,
    access,
    run_sync,
)

Text = Annotated[str, Field(min_length=1, max_length=200)]


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    #: Published (``RequestSubmitted``); the name and contact stay in intake's store.
    relation: RequesterRelation
    contact: Annotated[str, Field(max_length=200)] | None = None


class SubmitRequest(BaseModel):
    """A request for a conference. Anyone may submit one. It names the central person(s), or the
    group (a street, a class, a team) the conference is about, or both."""

    model_config = ConfigDict(extra="forbid")

    requester: Requester
    central_persons: list[Text] = Field(default_factory=list, max_length=50)
    central_group: Text | None = None
    model: ConferenceModel
    region: Text
    languages: list[Annotated[str, Field(min_length=2, max_length=35)]] = Field(
        default_factory=lambda: ["nl"], min_length=1, max_length=10
    )
    description: Annotated[str, Field(min_length=1, max_length=10_000)]
    #: An informational talk (informatief gesprek) is asked for first, before anyone commits:
    #: acceptance waits until it is recorded (``POST /cases/{id}/informational-talk``).
    informational_talk: bool = False
    #: What the family asks of its coordinator, where it asks anything.
    coordinator_wishes: CoordinatorWishes | None = None

    @model_validator(mode="after")
    def names_someone(self) -> SubmitRequest:
        if not self.central_persons and not self.central_group:
            raise ValueError("name the central person(s) or the central group")
        return self


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
    """The professional who set a minimum requirement. ``subject``: who they sign in as (the
    subject of their token at the issuer, e.g. their Keycloak user id). The plan's sign-off
    against the requirement is theirs; without it, the regional manager names who signs in
    plans (``POST :8003/cases/{id}/plan/requirements/{m}/signatory``)."""

    model_config = ConfigDict(extra="forbid")

    name: Text
    organisation: Text
    role: Text
    subject: Text | None = None


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
    #: A group conference may be prepared by two coordinators.
    coordinators_needed: int = Field(default=1, ge=1, le=2)
    #: Organisations already working with the family or group (independence of the coordinator).
    involved_organisations: list[Text] = Field(default_factory=list, max_length=30)
    #: Revises the wishes given with the request; absent keeps them.
    coordinator_wishes: CoordinatorWishes | None = None


class TalkRecord(BaseModel):
    """An informational talk held: when, by whom (a name; the one recording it if left out),
    and what came of it. ``no`` ends the request; ``think_it_over`` keeps acceptance waiting
    until the next talk."""

    model_config = ConfigDict(extra="forbid")

    held_on: date
    held_by: Text | None = None
    outcome: TalkOutcome


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=1000)]


class Erasure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ErasureReason


class Erased(BaseModel):
    case_id: UUID
    erased_at: datetime
    #: The follow-up cases opened from it (and from those), erased with it.
    follow_ups_erased: list[UUID]


class CaseCreated(BaseModel):
    case_id: UUID
    stage: Stage


class CaseRow(BaseModel):
    case_id: UUID
    model: ConferenceModel
    region: str
    stage: Stage
    submitted_at: datetime
    accepted_at: datetime | None
    follow_up_of: UUID | None


class CaseView(BaseModel):
    case_id: UUID
    stage: Stage
    model: ConferenceModel
    region: str
    languages: list[str]
    informational_talk: bool
    coordinator_wishes: CoordinatorWishes | None
    coordinators_needed: int
    involved_organisations: list[str]
    follow_up_of: UUID | None
    follow_ups: list[UUID]
    submitted_at: datetime
    accepted_at: datetime | None
    withdrawal_reason: str | None
    conference_questions: list[str]
    funding: Funding | None
    minimum_requirements: list[MinimumRequirement]
    #: Every informational talk held, oldest first.
    informational_talks: list[InformationalTalk]
    #: Acceptance waits for the talk: asked for and not held, or the family thinks it over.
    waiting_for_talk: bool

    @classmethod
    def of(cls, case: Request) -> CaseView:
        return cls(
            case_id=case.id,
            stage=case.stage,
            model=ConferenceModel(case.model),
            region=case.region,
            languages=case.languages,
            informational_talk=case.informational_talk,
            coordinator_wishes=case.coordinator_wishes,
            coordinators_needed=case.coordinators_needed,
            involved_organisations=case.involved_organisations,
            follow_up_of=case.follow_up_of,
            follow_ups=case.follow_ups,
            submitted_at=case.submitted_at,
            accepted_at=case.accepted_at,
            withdrawal_reason=case.withdrawal_reason,
            conference_questions=case.conference_questions,
            funding=Funding.model_validate(case.funding.model_dump()) if case.funding else None,
            minimum_requirements=[
                MinimumRequirement.model_validate(m.model_dump()) for m in case.minimum_requirements
            ],
            informational_talks=case.talks,
            waiting_for_talk=case.waits_for_talk,
        )


def router(app: IntakeApplication) -> APIRouter:
    api = APIRouter(tags=["intake"])

    @api.post(
        "/cases",
        status_code=status.HTTP_201_CREATED,
        responses=CONFLICT,
        openapi_extra=access(RULES, "submit"),
    )
    async def submit(
        body: SubmitRequest,
        principal: Caller,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> CaseCreated:
        """Submit a request for a conference. Send an ``Idempotency-Key`` header to make a retry
        safe: the same key (from the same caller) returns the case it made the first time; the
        same key with a different request is refused (409)."""
        request = body.model_dump(mode="json")
        case_id = await run_sync(lambda: app.submit(principal, idempotency_key, **request))
        return CaseCreated(case_id=case_id, stage=Stage.SUBMITTED)

    @api.get("/cases", openapi_extra=access(RULES, "list"))
    async def list_cases(
        principal: Caller,
        page: Paging,
        stage: Stage | None = None,
        model: ConferenceModel | None = None,
        region: Annotated[str | None, Query(max_length=200)] = None,
    ) -> PageOf[CaseRow]:
        """The requests of the caller's region(s), oldest first, filtered by stage, model and
        region, a page at a time (``limit``, ``after``: the ``next`` of the page before)."""
        rows = await run_sync(
            lambda: app.views.cases_page(principal, page, stage=stage, model=model, region=region)
        )
        return PageOf[CaseRow].of(rows, CaseRow)

    @api.post(
        "/cases/{case_id}/clarify",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "clarify"),
    )
    async def clarify(case_id: UUID, body: Clarification, principal: Caller) -> CaseView:
        """The regional manager records the conference question(s), funding and any minimum
        requirements; again to revise them, until the request is accepted."""
        clarification = body.model_dump(
            mode="json", exclude={"funding", "minimum_requirements"}
        ) | {
            "funding": FundingValue.model_validate(body.funding.model_dump(mode="json")),
            "minimum_requirements": [
                RequirementValue.model_validate(m.model_dump(mode="json"))
                for m in body.minimum_requirements
            ],
        }
        return CaseView.of(await run_sync(lambda: app.clarify(case_id, principal, **clarification)))

    @api.post(
        "/cases/{case_id}/informational-talk",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "talk"),
    )
    async def informational_talk(case_id: UUID, body: TalkRecord, principal: Caller) -> CaseView:
        """The regional manager records an informational talk (before acceptance): when, by
        whom, and what came of it: ``go_ahead``, ``think_it_over`` (acceptance waits for the
        next talk) or ``no`` (the request ends, withdrawn with that reason)."""
        return CaseView.of(
            await run_sync(
                lambda: app.record_talk(
                    case_id,
                    principal,
                    held_on=body.held_on,
                    held_by=body.held_by,
                    outcome=body.outcome,
                )
            )
        )

    @api.post(
        "/cases/{case_id}/accept",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "accept"),
    )
    async def accept(case_id: UUID, principal: Caller) -> CaseView:
        """The regional manager accepts the clarified request for a conference."""
        return CaseView.of(await run_sync(app.accept, case_id, principal))

    @api.post(
        "/cases/{case_id}/withdraw",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "withdraw"),
    )
    async def withdraw(case_id: UUID, body: Withdrawal, principal: Caller) -> CaseView:
        """Withdraw the request, with a reason: before acceptance it ends here; after it,
        coordination stops the preparation."""
        return CaseView.of(await run_sync(app.withdraw, case_id, body.reason, principal))

    @api.post(
        "/cases/{case_id}/erase",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "erase"),
    )
    async def erase(case_id: UUID, body: Erasure, principal: Caller) -> Erased:
        """Erase the case (right to erasure), with a reason from the kept list: a regional
        manager or an operator. Its events in every service become unreadable for good (their
        keys are shredded); who erased it, when and why stays on the record, and every service
        answers 410 for it from then on. Every follow-up case opened from it goes with it
        (each recorded as erased with it, each published as erased)."""
        erasure = await run_sync(app.erase_case, case_id, body.reason, principal)
        return Erased(case_id=case_id, erased_at=erasure.at, follow_ups_erased=erasure.follow_ups)

    @api.get("/cases/{case_id}", responses=NOT_FOUND, openapi_extra=access(RULES, "read"))
    async def get_case(case_id: UUID, principal: Caller) -> CaseView:
        """The request, for the regional manager of its region (the read is recorded)."""
        return CaseView.of(await run_sync(app.read, case_id, principal))

    return api
