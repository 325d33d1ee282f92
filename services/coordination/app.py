"""Coordination's application: assignment on RequestReceived, and the commands of the
regional manager and the coordinator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.utils import get_topic

from services.coordination.domain import POOL_ID, CoordinatedCase, CoordinatorPool
from shared.actor import Actor, system_actor
from shared.application import CaseNotFoundError, KringApplication
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.events import RequestReceived
from shared.projection import LogProjection


class CoordinationApplication(KringApplication):
    name = "coordination"
    policies = {RequestReceived: "on_request_received"}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        first_contact_days: float = 3.0,
    ) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.first_contact = timedelta(days=first_contact_days)
        self.system = system_actor(self.name).as_record()
        self._known_cases: set[UUID] = set()
        self._case_ids = LogProjection(
            self,
            lambda event: self._known_cases.add(event.originator_id),
            topics=[get_topic(CoordinatedCase.Received)],  # type: ignore[attr-defined]
        )

    # -- policy ------------------------------------------------------------------------
    def on_request_received(
        self,
        event: RequestReceived,
        processing: ProcessingEvent[UUID],
        delivered: Delivered,
    ) -> None:
        case = CoordinatedCase(
            id=event.case_id,
            model=event.model.value,
            region=event.region,
            languages=event.languages,
            accepted_at=event.accepted_at,
            actor=self.system,
        )
        pool = self.pool()
        chosen, reason = pool.choose(event.region, event.languages)
        if chosen is None:
            case.wait(reason=reason, actor=self.system)
        else:
            self._assign(pool, case, chosen, reason, self.system)
        processing.collect_events(case, pool)

    # -- commands ----------------------------------------------------------------------
    def register_coordinator(
        self,
        coordinator_id: str,
        regions: list[str],
        languages: list[str],
        capacity: int,
        actor: Actor,
    ) -> None:
        pool = self.pool()
        pool.register(
            coordinator_id=coordinator_id,
            regions=regions,
            languages=languages,
            capacity=capacity,
            actor=actor.as_record(),
        )
        self.save(pool)

    def assign_by_hand(
        self, case_id: UUID, coordinator_id: str, reason: str, actor: Actor
    ) -> CoordinatedCase:
        case = self.get(case_id)
        pool = self.pool()
        pool.check_known(coordinator_id)
        for previous in case.coordinator_ids:
            pool.release(coordinator_id=previous, case_id=case_id, actor=actor.as_record())
        self._assign(pool, case, coordinator_id, reason, actor.as_record())
        self.save(case, pool)
        return case

    def record_contact(self, case_id: UUID, actor: Actor) -> CoordinatedCase:
        case = self.get(case_id)
        case.record_contact(at=self.clock.now(), actor=actor.as_record())
        self.save(case)
        return case

    def end_without_conference(
        self, case_id: UUID, ending: str, reason: str | None, note: str, actor: Actor
    ) -> CoordinatedCase:
        case = self.get(case_id)
        case.end_without_conference(
            ending=ending, reason=reason, note=note, at=self.clock.now(), actor=actor.as_record()
        )
        pool = self.pool()
        for coordinator_id in case.coordinator_ids:
            pool.release(coordinator_id=coordinator_id, case_id=case_id, actor=actor.as_record())
        self.save(case, pool)
        return case

    def hold_conference(
        self,
        case_id: UUID,
        held_on: date,
        parts: list[str],
        attendance: dict[str, dict[str, int]],
        actor: Actor,
    ) -> CoordinatedCase:
        case = self.get(case_id)
        case.hold_conference(
            held_on=held_on, parts=parts, attendance=attendance, actor=actor.as_record()
        )
        self.save(case)
        return case

    # -- queries -----------------------------------------------------------------------
    def cases(
        self,
        *,
        stage: str | None = None,
        region: str | None = None,
        coordinator_id: str | None = None,
        overdue: bool | None = None,
    ) -> list[CoordinatedCase]:
        """The cases coordination holds, filtered; ``overdue`` by the clock, now."""
        self._case_ids.catch_up()
        now = self.clock.now()
        found = []
        for case_id in sorted(self._known_cases):
            case = self.get(case_id)
            if (
                (stage is None or case.stage.value == stage)
                and (region is None or case.region == region)
                and (coordinator_id is None or coordinator_id in case.coordinator_ids)
                and (overdue is None or case.is_overdue(now) == overdue)
            ):
                found.append(case)
        return found

    def get(self, case_id: UUID) -> CoordinatedCase:
        try:
            case: CoordinatedCase = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None
        return case

    def pool(self) -> CoordinatorPool:
        try:
            pool: CoordinatorPool = self.repository.get(POOL_ID)
        except AggregateNotFoundError:
            pool = CoordinatorPool(id=POOL_ID)
        return pool

    def _assign(
        self,
        pool: CoordinatorPool,
        case: CoordinatedCase,
        coordinator_id: str,
        reason: str,
        actor: dict[str, str],
    ) -> None:
        now = self.clock.now()
        pool.take(coordinator_id=coordinator_id, case_id=case.id, actor=actor)
        case.assign(
            coordinator_ids=[coordinator_id],
            reason=reason,
            at=now,
            first_contact_due=now + self.first_contact,
            actor=actor,
        )
