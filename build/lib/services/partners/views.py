"""The partners service's read model: every notification and how its webhook fares, per partner
and per case, kept by following the service's own log (``shared.projection``), and the queue the
webhook worker takes its next deliveries from.

Rows outlive a case's erasure: they hold ids, dates and outcomes only, and what was sent to whom,
revocations included, is what an operator must be able to show."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.utils import get_topic

from services.partners.domain import Kind, Notification, WebhookStatus
from shared.projection import LogProjection

if TYPE_CHECKING:
    from shared.application import KringApplication

TOPICS = [
    get_topic(cls)
    for cls in (
        Notification.Issued,  # type: ignore[attr-defined]
        Notification.Attempted,  # type: ignore[attr-defined]
        Notification.Cancelled,  # type: ignore[attr-defined]
        Notification.Resent,  # type: ignore[attr-defined]
    )
]


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


class Deliveries:
    def __init__(self, app: KringApplication) -> None:
        self._rows: dict[UUID, DeliveryRow] = {}
        self._lock = threading.Lock()
        self._projection = LogProjection(app, self._apply, topics=TOPICS)

    def catch_up(self) -> None:
        self._projection.catch_up()

    def _apply(self, event: Any) -> None:
        identity: UUID = event.originator_id
        with self._lock:
            if isinstance(event, Notification.Issued):  # type: ignore[attr-defined]
                webhook = WebhookStatus.PENDING if event.webhook else WebhookStatus.NONE
                self._rows[identity] = DeliveryRow(
                    event_id=identity,
                    organisation=event.organisation,
                    case_id=event.case_id,
                    kind=Kind(event.kind),
                    issued_at=event.issued_at,
                    position=self._projection.position,
                    data=event.data,
                    webhook_status=webhook,
                    next_attempt_at=event.issued_at if event.webhook else None,
                )
                return
            row = self._rows.get(identity)
            if row is None:
                return
            if isinstance(event, Notification.Attempted):  # type: ignore[attr-defined]
                status = row.webhook_status
                if event.error is None:
                    status = WebhookStatus.SENT
                elif event.give_up is not None:
                    status = WebhookStatus.FAILED
                self._rows[identity] = replace(
                    row,
                    webhook_status=status,
                    attempts=row.attempts + 1,
                    series_attempts=row.series_attempts + 1,
                    series_started_at=row.series_started_at or event.at,
                    last_attempt_at=event.at,
                    last_status_code=event.status_code,
                    last_error=event.error,
                    next_attempt_at=event.retry_at if status is WebhookStatus.PENDING else None,
                    sent_at=event.at if event.error is None else row.sent_at,
                    detail=event.give_up,
                    history=(
                        *row.history,
                        (event.at, event.status_code, event.error, event.retry_at),
                    ),
                )
            elif isinstance(event, Notification.Cancelled):  # type: ignore[attr-defined]
                self._rows[identity] = replace(
                    row,
                    webhook_status=WebhookStatus.CANCELLED,
                    next_attempt_at=None,
                    detail=event.reason,
                )
            elif isinstance(event, Notification.Resent):  # type: ignore[attr-defined]
                self._rows[identity] = replace(
                    row,
                    webhook_status=WebhookStatus.PENDING,
                    series_attempts=0,
                    series_started_at=None,
                    next_attempt_at=event.at,
                    detail=None,
                )

    def _select(self, keep: Callable[[DeliveryRow], bool]) -> list[DeliveryRow]:
        self.catch_up()
        with self._lock:
            return sorted((r for r in self._rows.values() if keep(r)), key=lambda r: r.position)

    def of_partner(
        self, organisation: str, *, case_id: UUID | None = None, status: WebhookStatus | None = None
    ) -> list[DeliveryRow]:
        return self._select(
            lambda r: (
                r.organisation == organisation
                and (case_id is None or r.case_id == case_id)
                and (status is None or r.webhook_status is status)
            )
        )

    def of_case(self, case_id: UUID) -> list[DeliveryRow]:
        return self._select(lambda r: r.case_id == case_id)

    def get(self, event_id: UUID) -> DeliveryRow | None:
        self.catch_up()
        with self._lock:
            return self._rows.get(event_id)

    def due(self, now: datetime, sending: Callable[[str], bool]) -> list[DeliveryRow]:
        """What the webhook worker sends now: per organisation and case the oldest notification
        still pending (a case's events reach a partner in order: the next waits until the one
        before was sent or given up), if its time has come and the organisation takes webhooks."""
        first: dict[tuple[str, UUID], DeliveryRow] = {}
        for row in self._select(lambda r: r.webhook_status is WebhookStatus.PENDING):
            first.setdefault((row.organisation, row.case_id), row)
        return [
            row
            for row in first.values()
            if row.next_attempt_at is not None
            and row.next_attempt_at <= now
            and sending(row.organisation)
        ]
