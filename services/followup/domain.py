"""The follow-up of a plan (vervolg) and its timers. No I/O.

Timers are event-sourced: scheduling and firing are events of the case's follow-up, so a
restart neither loses nor doubles one, and a timer fires once even if two workers race
(the second save conflicts on the aggregate version).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.http import DomainRuleError


class FollowUp(Aggregate):
    """The follow-up contacts of one case's plan."""

    @event("Opened")
    def __init__(
        self,
        id: UUID,
        *,
        model: str,
        plan_version: int,
        distributed_at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.model = model
        self.plan_version = plan_version
        self.distributed_at = distributed_at
        self.timers: dict[str, dict[str, Any]] = {}

    @event("Scheduled")
    def schedule(
        self, *, timer_id: str, kind: str, due_at: datetime, actor: dict[str, str]
    ) -> None:
        self.timers[timer_id] = {"kind": kind, "due_at": due_at, "fired_at": None}

    def fire(self, *, timer_id: str, at: datetime, actor: dict[str, str]) -> None:
        timer = self.timers.get(timer_id)
        if timer is None:
            raise DomainRuleError(f"no timer {timer_id}")
        if timer["fired_at"] is not None:
            raise DomainRuleError(f"timer {timer_id} already fired")
        if at < timer["due_at"]:
            raise DomainRuleError(f"timer {timer_id} is not due yet")
        self._due(
            timer_id=timer_id,
            kind=timer["kind"],
            due_at=timer["due_at"],
            model=self.model,
            at=at,
            actor=actor,
        )

    @event("Due")
    def _due(
        self,
        *,
        timer_id: str,
        kind: str,
        due_at: datetime,
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.timers[timer_id]["fired_at"] = at

    def pending(self) -> dict[str, datetime]:
        return {t: d["due_at"] for t, d in self.timers.items() if d["fired_at"] is None}
