"""The base of every service's eventsourcing application.

It adds three things to ``eventsourcing.application.Application``:
- ``process(delivered)``: handle one integration event exactly once, recording the upstream
  origin and position as ``Tracking`` atomically with the events it causes;
- a wake-up hook, so the outbox relay publishes as soon as anything is stored;
- ``history(case_id)``: the stored events of a case, in order, with time, actor and type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    JSONTranscoder,
    Recording,
    Tracking,
    Transcoding,
)
from eventsourcing.utils import get_topic
from pydantic import BaseModel

from shared.envelope import Delivered
from shared.errors import NotFoundError
from shared.events import IntegrationEvent
from shared.store import StoreQueries


class CaseNotFoundError(NotFoundError):
    def __init__(self, case_id: UUID) -> None:
        super().__init__(f"case {case_id} not found")
        self.case_id = case_id


class HistoryEntry(BaseModel):
    case_id: UUID
    service: str
    time: datetime
    type: str
    actor: dict[str, str] | None = None
    aggregate: str
    version: int


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class KringApplication(Application[UUID]):
    """One service's store. Subclasses name themselves and list their policies."""

    name = "kring"
    log_section_size = 500
    #: What to do with each integration event type this service consumes.
    policies: ClassVar[Mapping[type[IntegrationEvent], str]] = {}

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self.queries = StoreQueries(self.recorder)
        self._on_stored: list[Callable[[], None]] = []

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def construct_recorder(self) -> ApplicationRecorder:
        # A process recorder stores tracking rows atomically with events.
        return self.factory.process_recorder()

    # -- the outbox side ---------------------------------------------------------------
    def on_stored(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from whatever thread stored) after every successful save."""
        self._on_stored.append(callback)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        for callback in self._on_stored:
            callback()

    # -- the consumer side -------------------------------------------------------------
    def has_processed(self, delivered: Delivered) -> bool:
        return self.queries.has_tracking(delivered.origin, delivered.position)

    def process(self, delivered: Delivered) -> bool:
        """Apply one upstream event exactly once. Returns False if it was already applied."""
        if self.has_processed(delivered):
            return False
        method_name = self.policies.get(type(delivered.event))
        processing_event: ProcessingEvent[UUID] = ProcessingEvent(
            Tracking(application_name=delivered.origin, notification_id=delivered.position)
        )
        if method_name is not None:
            policy: Callable[[Any, ProcessingEvent[UUID], Delivered], None] = getattr(
                self, method_name
            )
            policy(delivered.event, processing_event, delivered)
        try:
            recordings = self._record(processing_event)
        except IntegrityError:
            # Someone else (a redelivery handled concurrently) got there first: fine if it
            # was this very position; otherwise a real conflict the caller must retry.
            if self.has_processed(delivered):
                return False
            raise
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return True

    # -- reading -----------------------------------------------------------------------
    def history(self, case_id: UUID, aggregate_ids: list[UUID] | None = None) -> list[HistoryEntry]:
        entries: list[HistoryEntry] = []
        for aggregate_id in aggregate_ids or [case_id]:
            for event in self.events.get(aggregate_id):
                entries.append(self._history_entry(case_id, event))
        if not entries:
            raise CaseNotFoundError(case_id)
        return sorted(entries, key=lambda e: (e.time, e.version))

    def _history_entry(self, case_id: UUID, event: DomainEventProtocol[UUID]) -> HistoryEntry:
        topic = get_topic(type(event))
        aggregate, _, event_name = topic.rpartition(".")
        return HistoryEntry(
            case_id=case_id,
            service=self.name,
            time=cast(Any, event).timestamp,
            type=event_name,
            actor=getattr(event, "actor", None),
            aggregate=aggregate.rpartition(":")[2],
            version=event.originator_version,
        )
