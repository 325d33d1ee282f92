"""The base of every service's eventsourcing application.

It adds four things to ``eventsourcing.application.Application``:
- ``process(delivered)``: handle one integration event exactly once, recording the upstream
  origin and position as ``Tracking`` atomically with the events it causes;
- a wake-up hook, so the outbox relay publishes as soon as anything is stored;
- ``history(case_id)``: the stored events of a case, in order, with time, actor and type;
- erasure: every case's events under a key of its own, shredded to erase the case
  (``shared.erasure``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    Recording,
    Tracking,
    Transcoding,
)
from eventsourcing.utils import Environment, get_topic
from pydantic import BaseModel

from shared.access import Facts
from shared.access_log import AccessLog
from shared.actor import Actor
from shared.at_rest import open_at_rest
from shared.envelope import Delivered
from shared.erasure import (
    ERASURE_LOG_ID,
    CaseErasedError,
    CaseKeyMapper,
    CaseKeyring,
    ErasureLog,
)
from shared.errors import CaseNotFoundError, DomainRuleError
from shared.events import CaseErased, IntegrationEvent
from shared.store import StoreQueries, schema_lock, zero_what_is_freed
from shared.values import Value, ValueTranscoding


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
    #: Aggregates that are not one case (e.g. coordination's pool): under the service's key.
    shared_aggregate_ids: ClassVar[frozenset[UUID]] = frozenset()
    #: The value objects its events and aggregates keep (``shared.values``).
    value_types: ClassVar[tuple[type[Value], ...]] = ()

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.queries: StoreQueries
        self.access_log: AccessLog
        #: False while the store cannot be reached (kept by ``shared.runtime.StoreHealth``):
        #: consumers and the relay wait rather than queue up calls that cannot succeed.
        self.store_reachable = True
        super().__init__(env)
        self._on_stored: list[Callable[[], None]] = []
        mapper = cast(CaseKeyMapper, self.mapper)
        self.keyring = CaseKeyring(self.queries, mapper.cipher)
        mapper.shared_ids = frozenset({ERASURE_LOG_ID, *self.shared_aggregate_ids})
        mapper.keyring = self.keyring
        # A new case's key goes into the same transaction as its first events. eventsourcing's
        # recorders (SQLite and PostgreSQL alike) insert a save's events and tracking in
        # ``_insert_events`` inside that transaction; the keys go in just before.
        insert_events = self.recorder._insert_events  # type: ignore[attr-defined]

        def insert_with_new_keys(cursor: Any, stored_events: Any, **kwargs: Any) -> Any:
            self.keyring.seal_new_keys(cursor, stored_events)
            return insert_events(cursor, stored_events, **kwargs)

        setattr(self.recorder, "_insert_events", insert_with_new_keys)  # noqa: B010
        # A crash between recording an erasure and shredding the keys: shred them now.
        erased = self.erasure_log().erased
        self.keyring.prefetch(key for case_id in erased for key in self.keys_of_case(case_id))
        for case_id, record in erased.items():
            keys = self.keys_of_case(case_id)
            if not all(self.keyring.is_erased(key) for key in keys):
                self.keyring.erase(keys, record["at"])
        if erased:
            self.queries.scrub()  # in case a checkpoint after an erasure could not finish

    def close(self, wait_seconds: float = 5.0) -> None:
        """Close the store once no thread is using it. eventsourcing's SQLite pool closes
        connections that are in use, and SQLite crashes the process (a segfault) when a thread
        a cancelled task left running (a relay read, a projection) is mid-query at that moment."""
        pool: Any = getattr(getattr(self.recorder, "datastore", None), "pool", None)
        in_use = getattr(pool, "num_in_use", None)
        if isinstance(in_use, int):
            deadline = time.monotonic() + wait_seconds
            while pool.num_in_use and time.monotonic() < deadline:
                time.sleep(0.01)
        super().close()

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        factory = super().construct_factory(env)
        zero_what_is_freed(getattr(factory, "datastore", None))
        return factory

    def construct_recorder(self) -> ApplicationRecorder:
        # A process recorder stores tracking rows atomically with events. Its tables and the
        # service's own are made, and the service key checked, in the database's schema lock:
        # any number of processes may start at once (``shared.store``).
        with schema_lock(getattr(self.factory, "datastore", None)):
            recorder = self.factory.process_recorder()
            self.queries = StoreQueries(recorder, self.name)
            self.queries.create_tables()
            open_at_rest(self.queries, self.mapper.cipher)
            self.access_log = AccessLog(recorder, self.name)
        return recorder

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=CaseKeyMapper
        )

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        for value_type in self.value_types:
            transcoder.register(ValueTranscoding(value_type))

    # -- the outbox side ---------------------------------------------------------------
    def on_stored(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from whatever thread stored) after every successful save."""
        self._on_stored.append(callback)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        self.keyring.keys_stored({r.domain_event.originator_id for r in recordings})
        # An erasure recorded (by a command or a policy) shreds the case's key at once.
        shredded = False
        for recording in recordings:
            erased: Any = recording.domain_event
            if isinstance(erased, ErasureLog.CaseErased):
                self.keyring.erase(self.keys_of_case(erased.case_id), erased.at)
                shredded = True
        if shredded:
            self.queries.scrub()  # no file of the store keeps the keys (WAL included)
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
        if self.keyring.is_erased(delivered.case_id):
            method_name = None  # nothing more is stored about an erased case; tracked all the same
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

    # -- erasure -----------------------------------------------------------------------
    def erasure_log(self) -> ErasureLog:
        try:
            log: ErasureLog = self.repository.get(ERASURE_LOG_ID)
        except AggregateNotFoundError:
            log = ErasureLog(id=ERASURE_LOG_ID)
        return log

    def erase(
        self,
        case_id: UUID,
        reason: str,
        at: datetime,
        actor: dict[str, str],
        *,
        with_cases: Sequence[UUID] = (),
        saving: Sequence[Any] = (),
    ) -> ErasureLog:
        """Erase the case here, and ``with_cases`` with it (each recorded as erased with it),
        in one transaction with the aggregates in ``saving``: recorded in the erasure log, then
        their keys are shredded."""
        log = self.erasure_log()
        if case_id in log.erased:
            raise DomainRuleError(f"case {case_id} was already erased")
        self._record_erasure(log, case_id, reason, at, actor)
        changed = [*saving, *self.before_erasure(case_id, actor)]
        for linked in with_cases:
            if linked not in log.erased:
                self._record_erasure(log, linked, reason, at, actor, erased_with=case_id)
                changed += self.before_erasure(linked, actor)
        self.save(log, *changed)
        return log

    def on_case_erased(
        self, event: CaseErased, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        """Policy: intake erased the case; erase it here too."""
        log = self.erasure_log()
        if event.case_id in log.erased:
            return
        system = {"id": self.name, "role": "system"}
        self._record_erasure(log, event.case_id, event.reason, event.erased_at, system)
        processing.collect_events(log, *self.before_erasure(event.case_id, system))

    def missing(self, case_id: UUID, otherwise: CaseNotFoundError | None = None) -> Exception:
        """What to raise for a case this service holds no events of: ``CaseErasedError`` (410)
        once its erasure reached this service, whether or not the case ever did (a follow-up
        case only intake knew, a case stopped before followup heard of it), else
        ``otherwise`` (404). A client can tell "erased" from "never existed" everywhere."""
        if self.keyring.is_erased(case_id):
            return CaseErasedError(case_id)
        return otherwise or CaseNotFoundError(case_id)

    def keys_of_case(self, case_id: UUID) -> list[UUID]:
        """The keys a case's erasure shreds: the case's own, and those of any aggregate a
        service keeps beside the case under a key of its own (coordination's relation notes)."""
        return [case_id]

    def before_erasure(self, case_id: UUID, actor: dict[str, str]) -> list[Any]:
        """What a service changes elsewhere as a case goes (aggregates to save alongside the
        erasure), read while the case still can be. None by default."""
        return []

    def _record_erasure(
        self,
        log: ErasureLog,
        case_id: UUID,
        reason: str,
        at: datetime,
        actor: dict[str, str],
        erased_with: UUID | None = None,
    ) -> None:
        model: str | None
        try:
            model = getattr(self.repository.get(case_id), "model", None)
        except (AggregateNotFoundError, CaseErasedError):
            model = None
        log.record(
            case_id=case_id,
            model=model,
            reason=reason,
            at=at,
            actor=actor,
            erased_with=erased_with,
        )

    # -- reading -----------------------------------------------------------------------
    def case_facts(self, case_id: UUID) -> Facts:
        """What the read rules look at for the case here (its region, its coordinators); 404
        for a case this service does not know, 410 for one erased. Each service says."""
        raise NotImplementedError

    def log_read(self, case_id: UUID, actor: Actor, what: str, facts: Facts) -> None:
        """Record a read of the case's personal data before it is answered (NEN 7513)."""
        region = facts.regions[0] if facts.regions else None
        self.access_log.record(case_id, actor, what, region, datetime.now(UTC))

    def erasure_status(self, case_id: UUID) -> dict[str, Any]:
        """Whether the case was erased here, and whether this service ever held anything of
        it; no personal data (for operators and ``kring erase``)."""
        erased = self.erasure_log().erased.get(case_id)
        known = bool(self.recorder.select_events(case_id, limit=1))
        return {
            "case_id": case_id,
            "service": self.name,
            "erased": erased is not None,
            "erased_at": erased["at"] if erased else None,
            "known": known,
        }

    def history(self, case_id: UUID, aggregate_ids: list[UUID] | None = None) -> list[HistoryEntry]:
        erased = self.erasure_log().erased.get(case_id)
        if erased is not None:
            # Nothing of the case can be read any more; its erasure stays on the record.
            return [
                HistoryEntry(
                    case_id=case_id,
                    service=self.name,
                    time=erased["at"],
                    type="CaseErased",
                    actor=erased["actor"],
                    aggregate="ErasureLog",
                    version=0,
                )
            ]
        entries: list[HistoryEntry] = []
        for aggregate_id in aggregate_ids or [case_id]:
            for event in self.events.get(aggregate_id):
                entries.append(self._history_entry(case_id, event))
        if not entries:
            raise self.missing(case_id)
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
