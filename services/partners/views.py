"""The partners service's read model: every notification and how its webhook fares, per partner
and per case, and the queue the webhook worker takes its next deliveries from: a table in the
service's own database kept from its own events (``shared.views``), so a start resumes it
where it was and ``kring rebuild partners`` builds it anew.

Rows outlive a case's erasure: they hold ids, dates and outcomes only, and what was sent to whom,
revocations included, is what an operator must be able to show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from services.partners.domain import Kind, Notification, WebhookStatus
from shared.views import (
    Clause,
    Column,
    Page,
    PageRequest,
    ReadModel,
    Table,
    Writer,
    all_of,
    columns,
    from_db,
    to_db,
)

DELIVERIES = Table(
    "deliveries",
    columns(
        "event_id:uuid",
        #: Its place in the service's log: the partner event's ``sequence``, and its order.
        "seq:int",
        "organisation",
        "case_id:uuid",
        Column("kind", "text", Kind),
        "issued_at:time",
        "data:json",
        Column("webhook_status", "text", WebhookStatus),
        "attempts:int",
        "series_attempts:int",
        "series_started_at:time",
        "last_attempt_at:time",
        "last_status_code:int",
        "last_error",
        "next_attempt_at:time",
        "sent_at:time",
        "detail",
        "history:json",
    ),
    key=("event_id",),
    indexes=(
        ("organisation", "seq", "event_id"),
        ("organisation", "case_id", "seq", "event_id"),
        ("organisation", "webhook_status", "seq", "event_id"),
        ("case_id", "seq", "event_id"),
        ("webhook_status", "seq"),
    ),
)
ORDER = ("seq", "event_id")


@dataclass(frozen=True)
class DeliveryRow:
    event_id: UUID
    organisation: str
    case_id: UUID
    kind: Kind
    issued_at: datetime
    #: Its place in the service's log: the partner event's ``sequence``, and its order.
    position: int
    data: dict[str, Any]
    webhook_status: WebhookStatus
    attempts: int = 0
    #: Attempts since it was last sent again by hand (a replay starts a new series).
    series_attempts: int = 0
    series_started_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    detail: str | None = None
    #: Every attempt: when it was made, what the endpoint answered, the error, when next.
    history: tuple[tuple[datetime, int | None, str | None, datetime | None], ...] = field(
        default=()
    )


class PartnersViews(ReadModel):
    tables = (DELIVERIES,)
    handles = (
        Notification.Issued,  # type: ignore[attr-defined]
        Notification.Attempted,  # type: ignore[attr-defined]
        Notification.Cancelled,  # type: ignore[attr-defined]
        Notification.Resent,  # type: ignore[attr-defined]
    )

    def case_of(self, event: Any) -> UUID | None:
        return None  # a notification is its own aggregate, and outlives its case's erasure

    def forget(self, case_id: UUID, w: Writer) -> None:
        """Nothing goes: what was sent of an erased case (ids, dates, outcomes) stays on record."""

    def apply(self, event: Any, position: int, w: Writer) -> None:
        identity: UUID = event.originator_id
        if isinstance(event, Notification.Issued):  # type: ignore[attr-defined]
            webhook = WebhookStatus.PENDING if event.webhook else WebhookStatus.NONE
            w.insert(
                "deliveries",
                event_id=identity,
                seq=position,
                organisation=event.organisation,
                case_id=event.case_id,
                kind=Kind(event.kind).value,
                issued_at=event.issued_at,
                data=event.data,
                webhook_status=webhook.value,
                attempts=0,
                series_attempts=0,
                series_started_at=None,
                last_attempt_at=None,
                last_status_code=None,
                last_error=None,
                next_attempt_at=event.issued_at if event.webhook else None,
                sent_at=None,
                detail=None,
                history=[],
            )
            return
        row = w.one("deliveries", event_id=identity)
        if row is None:
            return
        where = {"event_id": identity}
        if isinstance(event, Notification.Attempted):  # type: ignore[attr-defined]
            status = row["webhook_status"]
            if event.error is None:
                status = WebhookStatus.SENT
            elif event.give_up is not None:
                status = WebhookStatus.FAILED
            attempt = [
                to_db("time", event.at),
                event.status_code,
                event.error,
                to_db("time", event.retry_at),
            ]
            w.update(
                "deliveries",
                where,
                webhook_status=status.value,
                attempts=row["attempts"] + 1,
                series_attempts=row["series_attempts"] + 1,
                series_started_at=row["series_started_at"] or event.at,
                last_attempt_at=event.at,
                last_status_code=event.status_code,
                last_error=event.error,
                next_attempt_at=event.retry_at if status is WebhookStatus.PENDING else None,
                sent_at=event.at if event.error is None else row["sent_at"],
                detail=event.give_up,
                history=[*row["history"], attempt],
            )
        elif isinstance(event, Notification.Cancelled):  # type: ignore[attr-defined]
            w.update(
                "deliveries",
                where,
                webhook_status=WebhookStatus.CANCELLED.value,
                next_attempt_at=None,
                detail=event.reason,
            )
        elif isinstance(event, Notification.Resent):  # type: ignore[attr-defined]
            w.update(
                "deliveries",
                where,
                webhook_status=WebhookStatus.PENDING.value,
                series_attempts=0,
                series_started_at=None,
                next_attempt_at=event.at,
                detail=None,
            )

    # -- reading -----------------------------------------------------------------------------
    def _rows(self, where: Clause) -> list[DeliveryRow]:
        return [_row(r) for r in self.select("deliveries", where, order=ORDER)]

    def of_partner(
        self, organisation: str, *, case_id: UUID | None = None, status: WebhookStatus | None = None
    ) -> list[DeliveryRow]:
        return self._rows(_of_partner(organisation, case_id, status))

    def of_case(self, case_id: UUID) -> list[DeliveryRow]:
        return self._rows(Clause("case_id = %s", (str(case_id),)))

    def page_of_partner(
        self,
        organisation: str,
        request: PageRequest,
        *,
        case_id: UUID | None = None,
        status: WebhookStatus | None = None,
    ) -> tuple[list[DeliveryRow], Page]:
        page = self.page(
            "deliveries",
            list_id=f"deliveries:{organisation}",
            filters={"case_id": case_id, "status": status},
            where=_of_partner(organisation, case_id, status),
            request=request,
            order=ORDER,
        )
        return [_row(r) for r in page.items], page

    def page_of_case(self, case_id: UUID, request: PageRequest) -> tuple[list[DeliveryRow], Page]:
        page = self.page(
            "deliveries",
            list_id=f"case:{case_id}",
            filters={},
            where=Clause("case_id = %s", (str(case_id),)),
            request=request,
            order=ORDER,
        )
        return [_row(r) for r in page.items], page

    def get(self, event_id: UUID) -> DeliveryRow | None:
        found = self._rows(Clause("event_id = %s", (str(event_id),)))
        return found[0] if found else None

    def due(self, now: datetime, sending: Callable[[str], bool]) -> list[DeliveryRow]:
        """What the webhook worker sends now: per organisation and case the oldest notification
        still pending (a case's events reach a partner in order: the next waits until the one
        before was sent or given up), if its time has come and the organisation takes webhooks."""
        first: dict[tuple[str, UUID], DeliveryRow] = {}
        for row in self._rows(Clause("webhook_status = %s", (WebhookStatus.PENDING.value,))):
            first.setdefault((row.organisation, row.case_id), row)
        return [
            row
            for row in first.values()
            if row.next_attempt_at is not None
            and row.next_attempt_at <= now
            and sending(row.organisation)
        ]


def _of_partner(organisation: str, case_id: UUID | None, status: WebhookStatus | None) -> Clause:
    return all_of(
        [
            Clause("organisation = %s", (organisation,)),
            Clause("case_id = %s", (str(case_id),)) if case_id is not None else None,
            Clause("webhook_status = %s", (status.value,)) if status is not None else None,
        ]
    )


def _row(found: dict[str, Any]) -> DeliveryRow:
    return DeliveryRow(
        event_id=found["event_id"],
        organisation=found["organisation"],
        case_id=found["case_id"],
        kind=found["kind"],
        issued_at=found["issued_at"],
        position=found["seq"],
        data=found["data"],
        webhook_status=found["webhook_status"],
        attempts=found["attempts"],
        series_attempts=found["series_attempts"],
        series_started_at=found["series_started_at"],
        last_attempt_at=found["last_attempt_at"],
        last_status_code=found["last_status_code"],
        last_error=found["last_error"],
        next_attempt_at=found["next_attempt_at"],
        sent_at=found["sent_at"],
        detail=found["detail"],
        history=tuple(
            (from_db("time", at), code, error, from_db("time", retry))
            for at, code, error, retry in found["history"]
        ),
    )
