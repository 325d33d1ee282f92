"""Plans' HTTP API: parse, build the command, hand it over. Rules live in the domain.

Names and delivery addresses go in (``/plan/recipients``) and come out only on the printed
copies; no view returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.plans.access import RULES
from services.plans.app import PlansApplication
from services.plans.document import document_of, language_of, render_html, render_pdf
from services.plans.domain import (
    Channel,
    DeliveryStatus,
    Plan,
    Stage,
    VersionNotFoundError,
)
from services.plans.domain import (
    PlanContent as ContentValue,
)
from services.plans.mail import MAX_ADDRESS_LENGTH, checked_address
from services.plans.texts import LANGUAGES
from shared.events import ConferenceModel, ParticipantRole
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

Text = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=5000)]
ParticipantId = Annotated[str, Field(min_length=1, max_length=64)]
Version = Annotated[int, Field(ge=1, le=10_000)]
INVALID: Responses = {422: {"description": "invalid input, or a participant id the case lacks"}}


# -- what the coordinator writes -----------------------------------------------------------
class When(BaseModel):
    """A one-off date, or a recurring time in the family's own words ("every Friday")."""

    model_config = ConfigDict(extra="forbid")

    on: date | None = None
    recurring: Text | None = None

    @model_validator(mode="after")
    def one_of_both(self) -> When:
        if (self.on is None) == (self.recurring is None):
            raise ValueError("give either 'on' (a date) or 'recurring' (e.g. 'every Friday')")
        return self


class Agreement(BaseModel):
    """Who does what, where and when (afspraak). ``who``: participant ids from the conference.
    ``id``: leave it out for a new agreement; give an earlier version's id to keep that
    agreement (a follow-up records one outcome per id)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=20)] | None = None
    who: list[ParticipantId] = Field(min_length=1, max_length=50)
    what: LongText
    where: Text | None = None
    when: When | None = None
    #: The conference questions this agreement answers (``q1``, ``q2``: the plan's questions,
    #: as the regional manager clarified them).
    answers: list[Annotated[str, Field(min_length=1, max_length=8)]] = Field(
        default_factory=list, max_length=20
    )


class Support(BaseModel):
    """Professional support the family chose: which organisation, doing what."""

    model_config = ConfigDict(extra="forbid")

    organisation: Text
    what: LongText


class PlanContent(BaseModel):
    """One version of the plan. The conference questions and minimum requirements are not
    written here: plans has them from intake, as the regional manager clarified them, and
    prints them on every copy; an agreement says which questions it answers."""

    model_config = ConfigDict(extra="forbid")

    agreements: list[Agreement] = Field(min_length=1, max_length=200)
    if_something_does_not_work: LongText
    #: The participant who watches that the agreements are kept.
    watched_by: ParticipantId
    next_meeting_on: date | None = None
    professional_support: list[Support] = Field(default_factory=list, max_length=50)

    def value(self) -> ContentValue:
        return ContentValue.model_validate(self.model_dump(mode="json"))


# -- names and delivery --------------------------------------------------------------------
class ByEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email"]
    email: Annotated[str, Field(max_length=MAX_ADDRESS_LENGTH), AfterValidator(checked_address)]


class ByPost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["post"]
    address: Annotated[str, Field(min_length=1, max_length=500)]


class ByHand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["by_hand"] = "by_hand"


Delivery = Annotated[ByEmail | ByPost | ByHand, Field(discriminator="channel")]


class RecipientIn(BaseModel):
    """One participant's printed name and how their copy reaches them. ``role`` and
    ``organisation`` only introduce a participant of a plan made without a meeting."""

    model_config = ConfigDict(extra="forbid")

    participant_id: ParticipantId
    name: Text | None = None
    delivery: Delivery = Field(default_factory=ByHand)
    role: ParticipantRole | None = None
    organisation: Text | None = None


class Recipients(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: list[RecipientIn] = Field(min_length=1, max_length=500)


# -- acceptance, sign-off, distribution, delivery --------------------------------------------
class Acceptance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version


class SignOff(BaseModel):
    """The professional's verdict on this version against the minimum requirement(s) theirs
    to sign: those named in ``requirement_ids``, or (left out) every one that is theirs."""

    model_config = ConfigDict(extra="forbid")

    version: Version
    meets: bool
    reason: LongText | None = None
    requirement_ids: list[Annotated[str, Field(min_length=1, max_length=8)]] | None = Field(
        None, min_length=1, max_length=20
    )


class SignatoryIn(BaseModel):
    """The professional who signs off a requirement in place of the one who set it: who they
    sign in as (their token's subject), their name, and why."""

    model_config = ConfigDict(extra="forbid")

    subject: Text
    name: Text
    reason: LongText


class Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Organisations the family consented to share the plan with.
    shared_with_organisations: list[Text] = Field(default_factory=list, max_length=50)
    #: The version the coordinator means to send; it must be the current one.
    version: Version | None = None


class SharingWithdrawal(BaseModel):
    """The family withdraws its consent to share the plan with one organisation."""

    model_config = ConfigDict(extra="forbid")

    organisation: Text


class HandChannel(StrEnum):
    POST = "post"
    BY_HAND = "by_hand"


class Handover(BaseModel):
    """The coordinator posted or handed over a copy."""

    model_config = ConfigDict(extra="forbid")

    version: Version
    participant_id: ParticipantId
    channel: HandChannel


# -- views ---------------------------------------------------------------------------------
class ParticipantView(BaseModel):
    participant_id: str
    role: str
    organisation: str | None
    consent_withdrawn: bool
    name_given: bool
    channel: Channel


class SignOffView(BaseModel):
    meets: bool
    reason: str | None
    at: datetime
    by: str
    #: The requirements it covers (None: every one, a sign-off from before plans knew them).
    requirement_ids: list[str] | None = None

    @classmethod
    def of(cls, sign_off: dict[str, Any] | None) -> SignOffView | None:
        if sign_off is None:
            return None
        return cls(
            meets=sign_off["meets"],
            reason=sign_off["reason"],
            at=sign_off["at"],
            by=sign_off["by"]["id"],
            requirement_ids=sign_off.get("requirement_ids"),
        )


class RequirementSignOff(BaseModel):
    requirement_id: str
    sign_off: SignOffView | None


class VersionView(BaseModel):
    version: int
    written_at: datetime
    written_by: str | None
    accepted: bool
    #: The last sign-off of this version (any requirement); per requirement below.
    sign_off: SignOffView | None
    sign_offs: list[RequirementSignOff]
    distributed_at: datetime | None
    content: ContentValue

    @classmethod
    def of(cls, plan: Plan, number: int) -> VersionView:
        v = plan.written_version(number)
        latest = [s for s in plan.sign_offs if s["version"] == number]
        sign_off = latest[-1] if latest else None
        distribution = plan.distribution_of(number)
        return cls(
            version=number,
            written_at=v["written_at"],
            written_by=(v.get("written_by") or {}).get("id"),
            accepted=plan.accepted(number),
            sign_off=SignOffView.of(sign_off),
            sign_offs=[
                RequirementSignOff(
                    requirement_id=m.requirement_id,
                    sign_off=SignOffView.of(plan.sign_off_of(number, m.requirement_id)),
                )
                for m in plan.requirements
            ],
            distributed_at=distribution["at"] if distribution else None,
            content=v["content"],
        )


class DeliveryView(BaseModel):
    version: int
    participant_id: str
    role: str | None
    channel: Channel
    status: DeliveryStatus
    detail: str | None
    at: datetime


class QuestionView(BaseModel):
    question_id: str
    text: str


class SetByView(BaseModel):
    name: str
    organisation: str
    role: str


class RequirementView(BaseModel):
    """A minimum requirement as it is on the table: its text, who set it, and who signs it
    off (the one who set it, or the professional the regional manager named in their place)."""

    requirement_id: str
    text: str
    set_by: SetByView
    #: Whether the setter's sign-in is known (else nobody may sign until one is named).
    setter_signs: bool
    #: The professional the regional manager named in their place (the reason is kept in the
    #: store with the naming, not shown).
    named_signatory: str | None


class DistributionView(BaseModel):
    version: int
    at: datetime
    shared_with_organisations: list[str]
    recipients: int


class PlanView(BaseModel):
    case_id: UUID
    stage: Stage
    model: ConferenceModel
    #: The language copies are printed in: the family's, where Kring has text for it.
    document_language: str
    has_minimum_requirements: bool
    #: Whether plans has the questions and requirements from intake yet (printed on copies).
    clarification_known: bool
    questions: list[QuestionView]
    minimum_requirements: list[RequirementView]
    coordinator_ids: list[str]
    held_on: date | None
    participants: list[ParticipantView]
    current_version: int | None
    versions: list[VersionView]
    distributions: list[DistributionView]
    deliveries: list[DeliveryView]
    #: Why the current version cannot be distributed now; empty when it can.
    distribution_blocked_by: list[str]
    #: When the family asked, at their own next meeting, for a revised plan not yet written.
    revision_requested_at: datetime | None

    @classmethod
    def of(cls, plan: Plan) -> PlanView:
        return cls(
            case_id=plan.id,
            stage=plan.stage,
            model=ConferenceModel(plan.model),
            document_language=language_of(plan),
            has_minimum_requirements=plan.has_minimum_requirements,
            clarification_known=plan.clarification_known,
            questions=[QuestionView(**q.model_dump()) for q in plan.questions],
            minimum_requirements=[
                RequirementView(
                    requirement_id=m.requirement_id,
                    text=m.text,
                    set_by=SetByView(
                        name=m.set_by.name, organisation=m.set_by.organisation, role=m.set_by.role
                    ),
                    setter_signs=m.set_by.subject is not None
                    and m.requirement_id not in plan.signatories,
                    named_signatory=(
                        plan.signatories[m.requirement_id].name
                        if m.requirement_id in plan.signatories
                        else None
                    ),
                )
                for m in plan.requirements
            ],
            coordinator_ids=plan.coordinator_ids,
            held_on=plan.held_on,
            participants=[
                ParticipantView(
                    participant_id=pid,
                    role=p.role,
                    organisation=p.organisation,
                    consent_withdrawn=pid in plan.consent_withdrawn,
                    name_given=bool(plan.directory.get(pid, {}).get("name")),
                    channel=plan.directory.get(pid, {}).get("channel") or Channel.BY_HAND,
                )
                for pid, p in plan.participants.items()
            ],
            current_version=plan.current_version,
            versions=[VersionView.of(plan, v["version"]) for v in plan.versions],
            distributions=[
                DistributionView(
                    version=d["version"],
                    at=d["at"],
                    shared_with_organisations=d.get("shared_with_organisations", []),
                    recipients=len(d["recipients"]),
                )
                for d in plan.distributions
            ],
            deliveries=deliveries_of(plan),
            distribution_blocked_by=plan.distribution_blockers(),
            revision_requested_at=plan.revision_requested,
        )


def deliveries_of(plan: Plan, version: int | None = None) -> list[DeliveryView]:
    return [
        DeliveryView(
            version=d["version"],
            participant_id=d["participant_id"],
            role=_role(plan, d["participant_id"]),
            channel=d["channel"],
            status=d["status"],
            detail=d["detail"],
            at=d["at"],
        )
        for d in plan.deliveries
        if version is None or d["version"] == version
    ]


class CopyAgreement(BaseModel):
    """One agreement as the partner's copy has it: who by role (and organisation), never by
    name."""

    id: str
    who: list[str]
    organisations: list[str]
    what: str
    where: str | None
    when: When | None


class PartnerCopy(BaseModel):
    """A partner organisation's copy of one version, as JSON (the claim check)."""

    case_id: UUID
    plan_version: int
    distributed_at: datetime | None
    question: str | None
    agreements: list[CopyAgreement]
    #: The agreements the partner's own people take part in.
    your_agreements: list[str]
    if_something_does_not_work: str
    watched_by: str
    next_meeting_on: date | None
    professional_support: list[Support]

    @classmethod
    def of(cls, plan: Plan, number: int, yours: list[str]) -> PartnerCopy:
        content: ContentValue = plan.written_version(number)["content"]
        distribution = plan.distribution_of(number)

        def role(pid: str) -> str:
            found = plan.participants.get(pid)
            return found.role if found is not None else "participant"

        def organisation_of(pid: str) -> str | None:
            found = plan.participants.get(pid)
            if found is None or pid in plan.consent_withdrawn:
                return None
            return found.organisation or None

        return cls(
            case_id=plan.id,
            plan_version=number,
            distributed_at=distribution["at"] if distribution else None,
            question=content.question,
            agreements=[
                CopyAgreement(
                    id=a.id,
                    who=[role(pid) for pid in a.who],
                    organisations=sorted({o for o in (organisation_of(p) for p in a.who) if o}),
                    what=a.what,
                    where=a.where,
                    when=When.model_validate(a.when.model_dump()) if a.when else None,
                )
                for a in content.agreements
                if a.id
            ],
            your_agreements=yours,
            if_something_does_not_work=content.if_something_does_not_work,
            watched_by=role(content.watched_by),
            next_meeting_on=content.next_meeting_on,
            professional_support=[
                Support(organisation=s.organisation, what=s.what)
                for s in content.professional_support
            ],
        )


class CaseRow(BaseModel):
    case_id: UUID
    model: ConferenceModel
    stage: Stage
    current_version: int | None
    distributed: bool
    distributed_version: int | None


#: The languages Kring prints a plan in (``services.plans.texts``).
Language = StrEnum("Language", {code.upper(): code for code in LANGUAGES})  # type: ignore[misc]


def _role(plan: Plan, participant_id: str) -> str | None:
    known = plan.participants.get(participant_id)
    return known.role if known else None


PDF: Responses = {200: {"content": {"application/pdf": {}}}, **NOT_FOUND}
HTML: Responses = {200: {"content": {"text/html": {}}}, **NOT_FOUND}


def router(app: PlansApplication) -> APIRouter:
    api = APIRouter(tags=["plans"])
    command = NOT_FOUND_OR_CONFLICT | INVALID

    @api.get("/cases", openapi_extra=access(RULES, "list"))
    async def list_cases(
        principal: Caller,
        page: Paging,
        stage: Stage | None = None,
        model: ConferenceModel | None = None,
    ) -> PageOf[CaseRow]:
        """The cases plans knows that the caller may see, oldest first, by stage and model, a
        page at a time."""
        rows = await run_sync(
            lambda: app.views.cases_page(principal, page, stage=stage, model=model)
        )
        return PageOf[CaseRow].of(rows, CaseRow)

    @api.get("/cases/{case_id}", responses=NOT_FOUND, openapi_extra=access(RULES, "read"))
    async def get_case(case_id: UUID, principal: Caller) -> PlanView:
        """The plan (the read is recorded)."""
        return PlanView.of(await run_sync(app.read, case_id, principal, "plan"))

    @api.get("/cases/{case_id}/plan", responses=NOT_FOUND, openapi_extra=access(RULES, "read"))
    async def get_plan(case_id: UUID, principal: Caller) -> PlanView:
        """The plan: participants (ids, roles, organisations), every version with its
        acceptance and sign-off, distributions, deliveries, and what blocks a distribution (the
        read is recorded)."""
        return PlanView.of(await run_sync(app.read, case_id, principal, "plan"))

    @api.post(
        "/cases/{case_id}/plan/recipients",
        responses=command,
        openapi_extra=access(RULES, "recipients"),
    )
    async def record_recipients(case_id: UUID, body: Recipients, principal: Caller) -> PlanView:
        """Per participant id: the name printed on the copies and the delivery channel (e-mail
        with address, post with address, by hand). Again to correct it."""
        entries = [_entry(r) for r in body.recipients]
        return PlanView.of(await run_sync(app.record_recipients, case_id, entries, principal))

    @api.post("/cases/{case_id}/plan", responses=command, openapi_extra=access(RULES, "write"))
    async def write(case_id: UUID, body: PlanContent, principal: Caller) -> PlanView:
        """Write up the plan; every write-up is a new version, the old ones stay readable."""
        return PlanView.of(await run_sync(app.write, case_id, body.value(), principal))

    @api.get(
        "/cases/{case_id}/plan/versions/{version}",
        responses=NOT_FOUND,
        openapi_extra=access(RULES, "read"),
    )
    async def get_version(case_id: UUID, version: Version, principal: Caller) -> VersionView:
        plan = await run_sync(app.read, case_id, principal, f"plan.version.{version}")
        return await run_sync(VersionView.of, plan, version)

    @api.post(
        "/cases/{case_id}/plan/accept", responses=command, openapi_extra=access(RULES, "accept")
    )
    async def accept(case_id: UUID, body: Acceptance, principal: Caller) -> PlanView:
        """The family accepted this (the current) version: recorded by the coordinator or a
        participant."""
        return PlanView.of(await run_sync(app.accept, case_id, body.version, principal))

    @api.post(
        "/cases/{case_id}/plan/sign-off", responses=command, openapi_extra=access(RULES, "sign_off")
    )
    async def sign_off(case_id: UUID, body: SignOff, principal: Caller) -> PlanView:
        """The professional who set a minimum requirement (or the one the regional manager
        named in their place) records that this (the current) version meets it, or that it
        does not, with the reason."""
        return PlanView.of(
            await run_sync(
                app.sign_off,
                case_id,
                body.version,
                body.meets,
                body.reason,
                principal,
                body.requirement_ids,
            )
        )

    @api.post(
        "/cases/{case_id}/plan/requirements/{requirement_id}/signatory",
        responses=command,
        openapi_extra=access(RULES, "signatory"),
    )
    async def name_signatory(
        case_id: UUID, requirement_id: str, body: SignatoryIn, principal: Caller
    ) -> PlanView:
        """The regional manager names the professional who signs off this requirement in place
        of the one who set it (recorded, with the reason); again to name another."""
        return PlanView.of(
            await run_sync(
                app.name_signatory,
                case_id,
                requirement_id,
                body.subject,
                body.name,
                body.reason,
                principal,
            )
        )

    @api.post(
        "/cases/{case_id}/plan/distribute",
        responses=command,
        openapi_extra=access(RULES, "distribute"),
    )
    async def distribute(case_id: UUID, body: Distribution, principal: Caller) -> PlanView:
        """Send the current version to every participant and every central person. E-mail
        copies go out in the background; post and by-hand copies wait for the coordinator."""
        plan = await run_sync(
            app.distribute, case_id, body.shared_with_organisations, principal, body.version
        )
        return PlanView.of(plan)

    @api.post(
        "/cases/{case_id}/plan/sharing/withdraw",
        responses=command,
        openapi_extra=access(RULES, "withdraw_sharing"),
    )
    async def withdraw_sharing(
        case_id: UUID, body: SharingWithdrawal, principal: Caller
    ) -> PlanView:
        """The family withdraws its consent to share the plan with one organisation: it is told
        so, gets nothing more of the case, and can no longer fetch its copy."""
        return PlanView.of(
            await run_sync(app.withdraw_sharing, case_id, body.organisation, principal)
        )

    @api.get("/cases/{case_id}/plan/copy", responses=NOT_FOUND, openapi_extra=access(RULES, "copy"))
    async def partner_copy(
        principal: Caller, case_id: UUID, version: Version | None = None
    ) -> PartnerCopy:
        """A partner organisation's copy (the claim check of its feed's ``plan-shared``): the
        latest version shared with its organisation, or ``?version=`` one shared with it; the
        fetch is recorded; 410 once the case is erased."""
        plan, number = await run_sync(app.read_copy, case_id, principal, version, "json")
        yours = await run_sync(_agreements_of, app, plan, principal.organisation or "", number)
        return PartnerCopy.of(plan, number, yours)

    @api.get(
        "/cases/{case_id}/plan/copy.pdf",
        response_class=Response,
        responses=PDF,
        openapi_extra=access(RULES, "copy"),
    )
    async def partner_copy_pdf(
        principal: Caller, case_id: UUID, version: Version | None = None
    ) -> Response:
        """The partner's copy as the participants' printed copy, in the family's language."""
        plan, number = await run_sync(app.read_copy, case_id, principal, version, "pdf")
        pdf = await run_sync(render_pdf, document_of(plan, number))
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="plan-v{number}.pdf"'},
        )

    @api.get(
        "/cases/{case_id}/plan/copy.html",
        response_class=HTMLResponse,
        responses=HTML,
        openapi_extra=access(RULES, "copy"),
    )
    async def partner_copy_html(
        principal: Caller, case_id: UUID, version: Version | None = None
    ) -> HTMLResponse:
        plan, number = await run_sync(app.read_copy, case_id, principal, version, "html")
        return HTMLResponse(await run_sync(render_html, document_of(plan, number)))

    @api.get(
        "/cases/{case_id}/plan/deliveries", responses=NOT_FOUND, openapi_extra=access(RULES, "read")
    )
    async def deliveries(
        principal: Caller, case_id: UUID, version: Version | None = None
    ) -> list[DeliveryView]:
        """One record per copy: channel, status, time."""
        return deliveries_of(
            await run_sync(app.read, case_id, principal, "plan.deliveries"), version
        )

    @api.post(
        "/cases/{case_id}/plan/deliveries",
        responses=command,
        openapi_extra=access(RULES, "handover"),
    )
    async def record_handover(case_id: UUID, body: Handover, principal: Caller) -> PlanView:
        """The coordinator posted or handed over a copy (also one whose e-mail failed)."""
        plan = await run_sync(
            app.record_handover,
            case_id,
            body.version,
            body.participant_id,
            Channel(body.channel.value),
            principal,
        )
        return PlanView.of(plan)

    @api.get(
        "/cases/{case_id}/plan/document.html",
        response_class=HTMLResponse,
        responses=HTML,
        openapi_extra=access(RULES, "document"),
    )
    async def document_html(
        principal: Caller,
        case_id: UUID,
        version: Version | None = None,
        language: Language | None = None,
    ) -> HTMLResponse:
        """A printable copy; by default the current version in the family's language (the read
        is recorded)."""
        html = await run_sync(
            _render, app, case_id, principal, version, language, render_html, "html"
        )
        return HTMLResponse(html)

    @api.get(
        "/cases/{case_id}/plan/document.pdf",
        response_class=Response,
        responses=PDF,
        openapi_extra=access(RULES, "document"),
    )
    async def document_pdf(
        principal: Caller,
        case_id: UUID,
        version: Version | None = None,
        language: Language | None = None,
    ) -> Response:
        pdf = await run_sync(_render, app, case_id, principal, version, language, render_pdf, "pdf")
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="plan-v{version or "current"}.pdf"'},
        )

    return api


def _render(
    app: PlansApplication,
    case_id: UUID,
    principal: Any,
    version: int | None,
    language: Language | None,
    render: Callable[[Any], T],
    kind: str,
) -> T:
    plan = app.read(case_id, principal, f"plan.document.{kind}")
    number = version or plan.current_version
    if number is None:
        raise VersionNotFoundError(case_id, 1)
    return render(document_of(plan, number, language.value if language else None))


def _agreements_of(app: PlansApplication, plan: Plan, organisation: str, number: int) -> list[str]:
    version = plan.written_version(number)
    return [a.agreement_id for a in plan.agreements_of(organisation, app.partners(), version)]


def _entry(recipient: RecipientIn) -> dict[str, Any]:
    delivery = recipient.delivery
    return {
        "participant_id": recipient.participant_id,
        "name": recipient.name,
        "role": recipient.role.value if recipient.role else None,
        "organisation": recipient.organisation,
        "channel": delivery.channel,
        "email": delivery.email if isinstance(delivery, ByEmail) else None,
        "address": delivery.address if isinstance(delivery, ByPost) else None,
    }
