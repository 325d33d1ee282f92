"""The partners service's HTTP API: the registry (an operator's), each partner's deliveries, and
resending. Parse, hand over, answer; the rules are the domain's, who may is ``access.py``.

A webhook's signing secret is answered once, when it is made (registering with a webhook,
setting one, rotating): nobody can read it back. Lists take ``?limit=&after=`` and answer
``{"items", "next", "total"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.partners.access import RULES
from services.partners.app import PartnersApplication
from services.partners.domain import Partner, WebhookStatus
from services.partners.ssrf import TargetRefusedError, TargetRules, check_url
from services.partners.views import DeliveryRow
from shared.errors import InvalidFieldError
from shared.http import NOT_FOUND, NOT_FOUND_OR_CONFLICT, Caller, Responses, access, run_sync
from shared.subjects import ORGANISATION_ID, PARTNER_CONSUMER, partner_stream
from shared.views import DEFAULT_LIMIT, MAX_LIMIT, PageRequest, decode_cursor, encode_cursor
from shared.views import Page as ReadPage

T = TypeVar("T")

OrganisationId = Annotated[str, Field(pattern=f"^{ORGANISATION_ID.pattern}$", max_length=63)]
INVALID: Responses = {422: {"description": "invalid input (the field is named)"}}


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: OrganisationId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    #: Where to POST its notifications (https; a public address), or none: NATS only.
    webhook_url: Annotated[str, Field(max_length=2000)] | None = None


class WebhookTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(min_length=1, max_length=2000)]


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Every notification issued at or after this time goes to the webhook again.
    since: AwareDatetime


class WebhookView(BaseModel):
    url: str
    enabled: bool
    disabled_because: str | None
    #: How many secrets sign now (two for a while after a rotation).
    signing_secrets: int


class PartnerView(BaseModel):
    organisation: str
    name: str
    active: bool
    registered_at: datetime
    revoked_at: datetime | None
    #: Its feed on NATS: the stream, and the durable pull consumer it fetches from.
    stream: str
    consumer: str
    webhook: WebhookView | None

    @classmethod
    def of(cls, partner: Partner, now: datetime) -> PartnerView:
        webhook = partner.webhook
        return cls(
            organisation=partner.organisation,
            name=partner.name,
            active=partner.active,
            registered_at=partner.registered_at,
            revoked_at=partner.revoked_at,
            stream=partner_stream(partner.organisation),
            consumer=PARTNER_CONSUMER,
            webhook=WebhookView(
                url=webhook.url,
                enabled=webhook.disabled is None,
                disabled_because=webhook.disabled,
                signing_secrets=len(webhook.signing_secrets(now)),
            )
            if webhook
            else None,
        )


class WithSecret(BaseModel):
    partner: PartnerView
    #: The webhook's signing secret (Standard Webhooks, ``whsec_…``): shown this once.
    webhook_secret: str | None


class Attempt(BaseModel):
    #: When it was made.
    at: datetime
    status_code: int | None
    error: str | None
    #: When it is tried again (None: sent, or given up).
    retry_at: datetime | None


class DeliveryView(BaseModel):
    event_id: UUID
    organisation: str
    case_id: UUID
    type: str
    issued_at: datetime
    sequence: int
    #: ``none`` (no webhook when it was issued: NATS only), ``pending``, ``sent``, ``failed``,
    #: ``cancelled``.
    webhook_status: WebhookStatus
    attempts: int
    last_error: str | None
    last_status_code: int | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    detail: str | None
    history: list[Attempt]

    @classmethod
    def of(cls, row: DeliveryRow) -> DeliveryView:
        return cls(
            event_id=row.event_id,
            organisation=row.organisation,
            case_id=row.case_id,
            type=f"nl.kring.partner.{row.kind.value}.v1",
            issued_at=row.issued_at,
            sequence=row.position,
            webhook_status=row.webhook_status,
            attempts=row.attempts,
            last_error=row.last_error,
            last_status_code=row.last_status_code,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
            detail=row.detail,
            history=[
                Attempt(at=a, status_code=s, error=e, retry_at=r) for a, s, e, r in row.history
            ],
        )


class Page(BaseModel):
    items: list[Any]
    next: str | None
    total: int | None


class PartnerPage(Page):
    items: list[PartnerView]


class DeliveryPage(Page):
    items: list[DeliveryView]


class Replayed(BaseModel):
    replayed: list[UUID]


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def page(
    items: Sequence[T], key: Callable[[T], str], *, list_name: str, limit: int, after: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` (ordered by ``key``) after the cursor ``after``: the registry is
    one aggregate, paged in memory, with the cursors the read models' lists use."""
    start = 0
    if after is not None:
        [last] = decode_cursor(after, list_name, {})
        start = next((i for i, item in enumerate(items) if key(item) > str(last)), len(items))
    chosen = list(items[start : start + limit])
    more = start + limit < len(items)
    following = encode_cursor(list_name, {}, [key(chosen[-1])]) if more and chosen else None
    return chosen, following


def router(app: PartnersApplication, rules: TargetRules) -> APIRouter:
    api = APIRouter(tags=["partners"])

    def checked_url(url: str, field: str) -> str:
        try:
            return check_url(url, rules)
        except TargetRefusedError as refused:
            raise InvalidFieldError((field,), str(refused)) from None

    def now() -> datetime:
        return app.clock.now()

    @api.post(
        "/partners",
        status_code=201,
        responses=NOT_FOUND_OR_CONFLICT | INVALID,
        openapi_extra=access(RULES, "register"),
    )
    async def register(body: Registration, principal: Caller) -> WithSecret:
        """Register a partner organisation: from now on plans may share with it, and it has a
        feed. Its NATS identity and OAuth client are made by ``kring partners add``."""
        url = checked_url(body.webhook_url, "webhook_url") if body.webhook_url else None
        partner, secret = await run_sync(app.register, body.organisation, body.name, url, principal)
        return WithSecret(partner=PartnerView.of(partner, now()), webhook_secret=secret)

    @api.get("/partners", openapi_extra=access(RULES, "list"))
    async def list_partners(
        principal: Caller, limit: Limit = DEFAULT_LIMIT, after: str | None = None
    ) -> PartnerPage:
        """Every partner, present and past, by organisation id."""
        partners = await run_sync(app.partners, principal)
        chosen, cursor = page(
            partners, lambda p: p.organisation, list_name="partners", limit=limit, after=after
        )
        return PartnerPage(
            items=[PartnerView.of(p, now()) for p in chosen], next=cursor, total=len(partners)
        )

    @api.get("/partners/{organisation}", responses=NOT_FOUND, openapi_extra=access(RULES, "read"))
    async def read_partner(organisation: OrganisationId, principal: Caller) -> PartnerView:
        return PartnerView.of(await run_sync(app.partner, organisation, principal), now())

    @api.put(
        "/partners/{organisation}/webhook",
        responses=NOT_FOUND_OR_CONFLICT | INVALID,
        openapi_extra=access(RULES, "webhook"),
    )
    async def set_webhook(
        organisation: OrganisationId, body: WebhookTarget, principal: Caller
    ) -> WithSecret:
        """Set (or replace, or enable again after a 410) the partner's webhook, with a new
        signing secret."""
        url = checked_url(body.url, "url")
        partner, secret = await run_sync(app.set_webhook, organisation, url, principal)
        return WithSecret(partner=PartnerView.of(partner, now()), webhook_secret=secret)

    @api.delete(
        "/partners/{organisation}/webhook",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "webhook"),
    )
    async def remove_webhook(organisation: OrganisationId, principal: Caller) -> PartnerView:
        return PartnerView.of(await run_sync(app.remove_webhook, organisation, principal), now())

    @api.post(
        "/partners/{organisation}/webhook/rotate",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "rotate"),
    )
    async def rotate(organisation: OrganisationId, principal: Caller) -> WithSecret:
        """A new signing secret; the old one signs too for a day
        (``KRING_WEBHOOK_ROTATION_OVERLAP_SECONDS``): two signatures on each webhook meanwhile."""
        partner, secret = await run_sync(app.rotate_secret, organisation, principal)
        return WithSecret(partner=PartnerView.of(partner, now()), webhook_secret=secret)

    @api.post(
        "/partners/{organisation}/revoke",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "revoke"),
    )
    async def revoke(organisation: OrganisationId, principal: Caller) -> PartnerView:
        """No longer a partner: nothing more is shared with it or sent to it."""
        return PartnerView.of(await run_sync(app.revoke, organisation, principal), now())

    @api.get(
        "/partners/{organisation}/deliveries",
        responses=NOT_FOUND,
        openapi_extra=access(RULES, "deliveries"),
    )
    async def deliveries(
        organisation: OrganisationId,
        principal: Caller,
        case_id: UUID | None = None,
        status: WebhookStatus | None = None,
        limit: Limit = DEFAULT_LIMIT,
        after: str | None = None,
    ) -> DeliveryPage:
        """Everything sent to the partner, oldest first, with each webhook's status, attempts
        and last error (``?case_id=``, ``?status=``)."""
        await run_sync(app.partner, organisation, principal)
        request = PageRequest(limit=limit, after=after)
        rows, found = await run_sync(
            lambda: app.views.page_of_partner(organisation, request, case_id=case_id, status=status)
        )
        return _page_of(rows, found)

    @api.get(
        "/cases/{case_id}/deliveries",
        responses=NOT_FOUND,
        openapi_extra=access(RULES, "case_deliveries"),
    )
    async def case_deliveries(
        case_id: UUID, principal: Caller, limit: Limit = DEFAULT_LIMIT, after: str | None = None
    ) -> DeliveryPage:
        """Everything sent to any partner about one case (revocations after its erasure too)."""
        RULES["case_deliveries"].permit(principal)
        request = PageRequest(limit=limit, after=after)
        rows, found = await run_sync(app.views.page_of_case, case_id, request)
        return _page_of(rows, found)

    @api.post(
        "/partners/{organisation}/deliveries/{event_id}/resend",
        responses=NOT_FOUND_OR_CONFLICT,
        openapi_extra=access(RULES, "resend"),
    )
    async def resend(
        organisation: OrganisationId, event_id: UUID, principal: Caller
    ) -> DeliveryView:
        """Send one notification to the webhook again (the same id, a new series of attempts)."""
        await run_sync(app.resend, organisation, event_id, principal)
        row = await run_sync(app.views.get, event_id)
        assert row is not None
        return DeliveryView.of(row)

    @api.post(
        "/partners/{organisation}/replay",
        responses=NOT_FOUND_OR_CONFLICT | INVALID,
        openapi_extra=access(RULES, "replay"),
    )
    async def replay(organisation: OrganisationId, body: Replay, principal: Caller) -> Replayed:
        """Send every notification issued since a time to the webhook again (a partner that lost
        what it received; on NATS a partner replays by itself)."""
        ids = await run_sync(app.replay, organisation, body.since, principal)
        return Replayed(replayed=ids)

    return api


def _page_of(rows: list[DeliveryRow], found: ReadPage) -> DeliveryPage:
    return DeliveryPage(
        items=[DeliveryView.of(r) for r in rows], next=found.next, total=found.total
    )
