"""Follow-up's application: schedule on PlanDistributed, fire timers when due."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from services.followup.domain import FollowUp
from shared.actor import system_actor
from shared.application import CaseNotFoundError, KringApplication
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.events import PlanDistributed
from shared.logging import bound_case, get_logger
from shared.projection import LogProjection

log = get_logger(__name__)

RESEARCH = "research"


class FollowupApplication(KringApplication):
    name = "followup"
    policies = {PlanDistributed: "on_plan_distributed"}

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        research_delay: timedelta = timedelta(days=91),
    ) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.research_delay = research_delay
        self.system = system_actor(self.name).as_record()
        # Pending timers, projected from this service's own notification log.
        self._pending: dict[tuple[UUID, str], datetime] = {}
        self._timers = LogProjection(
            self,
            self._project_timer,
            topics=[
                get_topic(FollowUp.Scheduled),  # type: ignore[attr-defined]
                get_topic(FollowUp.Due),  # type: ignore[attr-defined]
            ],
        )

    def on_plan_distributed(
        self, event: PlanDistributed, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        try:
            self.repository.get(event.case_id)
            return  # a later version was distributed: the schedule stands
        except AggregateNotFoundError:
            pass
        follow_up = FollowUp(
            id=event.case_id,
            model=event.model.value,
            plan_version=event.plan_version,
            distributed_at=event.distributed_at,
            actor=self.system,
        )
        follow_up.schedule(
            timer_id=RESEARCH,
            kind=RESEARCH,
            due_at=event.distributed_at + self.research_delay,
            actor=self.system,
        )
        processing.collect_events(follow_up)

    def fire_due_timers(self) -> int:
        """Fire every timer that is due by the clock; return how many fired."""
        self._timers.catch_up()
        now = self.clock.now()
        fired = 0
        for (case_id, timer_id), due_at in sorted(self._pending.items(), key=lambda i: i[1]):
            if due_at > now:
                continue
            with bound_case(case_id):
                follow_up = self.get(case_id)
                if timer_id not in follow_up.pending():
                    continue
                follow_up.fire(timer_id=timer_id, at=now, actor=self.system)
                try:
                    self.save(follow_up)
                except IntegrityError:
                    continue  # another worker fired it first
                log.info("followup.due", timer=timer_id)
                fired += 1
        return fired

    def _project_timer(self, event: Any) -> None:
        key = (event.originator_id, event.timer_id)
        if isinstance(event, FollowUp.Scheduled):  # type: ignore[attr-defined]
            self._pending[key] = event.due_at
        else:
            self._pending.pop(key, None)

    def get(self, case_id: UUID) -> FollowUp:
        try:
            follow_up: FollowUp = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None
        return follow_up
