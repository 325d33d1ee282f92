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

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
    EventStore,
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

from shared import fence
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
from shared.snapshots import CurrentSnapshots, KringSnapshot
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


class KringProcessingEvent(ProcessingEvent[UUID]):
    """eventsourcing's, collecting an aggregate's events without asking two runtime protocols
    what each object is (on Python 3.11 tens of microseconds each, for every object of every
    save and every message applied): Kring's aggregates are ``Aggregate``s."""

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif obj is not None:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


def mutate_all(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """eventsourcing's ``project_aggregate`` without its check that each event can mutate
    (``isinstance`` against a runtime protocol: on Python 3.11 tens of microseconds per event,
    the larger part of loading a case of thirty events). Every stored event is one of the
    aggregates' own classes, which can."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class CheckedRepository(Repository[UUID]):
    """eventsourcing's repository, asking the store whether a case was erased before loading it:
    a case erased through another replica on the same database is gone here at once too, never
    read through a case key this process still holds in its cache."""

    keyring: CaseKeyring
    shared_ids: frozenset[UUID] = frozenset()

    def get(self, aggregate_id: UUID, **kwargs: Any) -> Any:
        if aggregate_id not in self.shared_ids:
            self.keyring.refresh(aggregate_id)
        kwargs.setdefault("projector_func", mutate_all)
        return super().get(aggregate_id, **kwargs)


class KringApplication(Application[UUID]):
    """One service's store. Subclasses name themselves and list their policies.

    Aggregates whose histories make loading costly are snapshotted (``snapshotting_intervals``:
    every so many events), each snapshot in the same store and sealed like the events."""

    name = "kring"
    log_section_size = 500
    #: What to do with each integration event type this service consumes.
    policies: ClassVar[Mapping[type[IntegrationEvent], str]] = {}
    #: Aggregates that are not one case (e.g. coordination's pool): under the service's key.
    shared_aggregate_ids: ClassVar[frozenset[UUID]] = frozenset()
    #: The value objects its events and aggregates keep (``shared.values``).
    value_types: ClassVar[tuple[type[Value], ...]] = ()
    #: The erasure log gathers an event with every erasure, forever.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {ErasureLog: 100}

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
        repository = cast(CheckedRepository, self.repository)
        repository.keyring, repository.shared_ids = self.keyring, mapper.shared_ids
        # A new case's key goes into the same transaction as its first events, and an erased
        # case's keys are shredded in the transaction that records the erasure (so no replica
        # ever sees the one without the other). eventsourcing's recorders (SQLite and
        # PostgreSQL alike) insert a save's events and tracking in ``_insert_events`` inside
        # that transaction; the keys go in just before. So does the lease's fence: a save made
        # by a consumer or timer whose replica lost the lease is refused there, with nothing of
        # it stored (``shared.fence``).
        insert_events = self.recorder._insert_events  # type: ignore[attr-defined]
        self._shredding = threading.local()

        def insert_with_new_keys(cursor: Any, stored_events: Any, **kwargs: Any) -> Any:
            fence.check_in(cursor)
            self.keyring.seal_new_keys(cursor, stored_events)
            for case_id, at in getattr(self._shredding, "keys", ()):
                self.queries.erase_case_key_in(cursor, case_id, at)
            return insert_events(cursor, stored_events, **kwargs)

        setattr(self.recorder, "_insert_events", insert_with_new_keys)  # noqa: B010
        # An erasure recorded by an earlier release, which shredded after the commit, and
        # crashed in between: shred them now.
        erased = self.erasure_log().erased
        self.keyring.prefetch(key for case_id in erased for key in self.keys_of_case(case_id))
        for case_id, record in erased.items():
            keys = self.keys_of_case(case_id)
            if not all(self.keyring.known_erased(key) for key in keys):
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

    def construct_snapshot_store(self) -> EventStore[UUID]:
        # Its table is made under the schema lock too (on PostgreSQL ``<service>_snapshots``).
        with schema_lock(getattr(self.factory, "datastore", None)):
            return super().construct_snapshot_store()

    def construct_repository(self) -> Repository[UUID]:
        snapshots = None if self.snapshots is None else CurrentSnapshots(self.snapshots)
        return CheckedRepository(
            event_store=self.events,
            snapshot_store=cast("EventStore[UUID] | None", snapshots),
        )

    def take_snapshot(
        self,
        aggregate_id: UUID,
        version: int | None = None,
        projector_func: Any = None,
    ) -> None:
        """eventsourcing's, with Kring's snapshot class (UUID-keyed maps, enum members)."""
        if self.snapshots is None:
            return
        aggregate: MutableOrImmutableAggregate[UUID] = self.repository.get(
            aggregate_id, version=version
        )
        self.snapshots.put([KringSnapshot.take(aggregate)])

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """A snapshot of each aggregate the save took past a multiple of its interval, taken
        of the aggregate as it was just stored (eventsourcing's reloads it from the store)."""
        if self.snapshots is None or not self.snapshotting_intervals:
            return
        first: dict[UUID, int] = {}
        for event in processing_event.events:
            first.setdefault(event.originator_id, event.originator_version)
        for aggregate_id, aggregate in processing_event.aggregates.items():
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is None or aggregate_id not in first:
                continue
            before = first[aggregate_id] - 1
            if aggregate.version // interval > before // interval:
                self.snapshots.put([KringSnapshot.take(aggregate)])

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

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """eventsourcing's ``save``, collecting with ``KringProcessingEvent``."""
        processing_event = KringProcessingEvent()
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        self._shredding.keys = [
            (key, e.at)
            for e in processing_event.events
            if isinstance(e, ErasureLog.CaseErased)
            for key in self.keys_of_case(e.case_id)
        ]
        try:
            return super()._record(processing_event)
        finally:
            self._shredding.keys = ()

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        self.keyring.keys_stored({r.domain_event.originator_id for r in recordings})
        # An erasure recorded (by a command or a policy) shredded the case's keys in its own
        # transaction; this process forgets them too.
        shredded = False
        for recording in recordings:
            erased: Any = recording.domain_event
            if isinstance(erased, ErasureLog.CaseErased):
                self.keyring.forget(self.keys_of_case(erased.case_id))
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
        processing_event: ProcessingEvent[UUID] = KringProcessingEvent(
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
        erased = self.erasure_record(case_id)
        known = bool(self.recorder.select_events(case_id, limit=1))
        return {
            "case_id": case_id,
            "service": self.name,
            "erased": erased is not None,
            "erased_at": erased["at"] if erased else None,
            "known": known,
        }

    def erasure_record(self, case_id: UUID) -> dict[str, Any] | None:
        """The erasure log's record of the case, if it was erased here. The case's key row
        says whether (one query); only then is the log read (its history grows with every
        erasure; it is snapshotted)."""
        found = self.queries.case_key(case_id)
        if found is None or not found[1]:
            return None
        record: dict[str, Any] | None = self.erasure_log().erased.get(case_id)
        return record

    def history(self, case_id: UUID, aggregate_ids: list[UUID] | None = None) -> list[HistoryEntry]:
        erased = self.erasure_record(case_id)
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
