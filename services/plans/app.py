"""Plans' application: it learns of the coordinator and the conference from the bus, and takes
the coordinator's write-up and distribution over HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent

from services.plans.domain import Plan
from shared.actor import Actor, system_actor
from shared.application import CaseNotFoundError, KringApplication
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.events import (
    CaseEndedWithoutConference,
    ConferenceHeld,
    CoordinatorAssigned,
    IntegrationEvent,
)


class PlansApplication(KringApplication):
    name = "plans"
    policies = {
        CoordinatorAssigned: "on_coordinator_assigned",
        ConferenceHeld: "on_conference_held",
        CaseEndedWithoutConference: "on_case_ended_without_conference",
    }

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.system = system_actor(self.name).as_record()

    # -- policies: either event may arrive first, so both open the plan if needed ---------
    def on_coordinator_assigned(
        self, event: CoordinatorAssigned, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan = self._open(event)
        plan.note_coordinator(coordinator_ids=event.coordinator_ids, actor=self.system)
        processing.collect_events(plan)

    def on_conference_held(
        self, event: ConferenceHeld, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan = self._open(event)
        plan.note_conference(held_on=event.held_on, actor=self.system)
        processing.collect_events(plan)

    def on_case_ended_without_conference(
        self, event: CaseEndedWithoutConference, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan = self._open(event)
        plan.note_ended_without_conference(ending=event.ending.value, actor=self.system)
        processing.collect_events(plan)

    def _open(self, event: IntegrationEvent) -> Plan:
        try:
            plan: Plan = self.repository.get(event.case_id)
        except AggregateNotFoundError:
            plan = Plan(id=event.case_id, model=event.model.value, actor=self.system)
        return plan

    # -- commands ----------------------------------------------------------------------
    def write(self, case_id: UUID, content: dict[str, Any], actor: Actor) -> Plan:
        plan = self.get(case_id)
        plan.write(content=content, at=self.clock.now(), actor=actor.as_record())
        self.save(plan)
        return plan

    def distribute(
        self,
        case_id: UUID,
        recipients: list[dict[str, str | None]],
        shared_with_organisations: list[str],
        actor: Actor,
    ) -> Plan:
        plan = self.get(case_id)
        plan.distribute(
            recipients=recipients,
            shared_with_organisations=shared_with_organisations,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(plan)
        return plan

    def get(self, case_id: UUID) -> Plan:
        try:
            plan: Plan = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None
        return plan
