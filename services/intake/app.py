"""Intake's eventsourcing application: the command handlers (load, call, save)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError

from services.intake.domain import Request
from shared.actor import Actor
from shared.application import CaseNotFoundError, KringApplication
from shared.clock import Clock, SystemClock


class IntakeApplication(KringApplication):
    name = "intake"

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()

    def submit(self, actor: Actor, **request: Any) -> UUID:
        case = Request(
            id=uuid4(), submitted_at=self.clock.now(), actor=actor.as_record(), **request
        )
        self.save(case)
        return case.id

    def clarify(self, case_id: UUID, actor: Actor, **clarification: Any) -> Request:
        case = self.get(case_id)
        case.clarify(actor=actor.as_record(), **clarification)
        self.save(case)
        return case

    def accept(self, case_id: UUID, actor: Actor) -> Request:
        case = self.get(case_id)
        case.accept(at=self.clock.now(), actor=actor.as_record())
        self.save(case)
        return case

    def withdraw(self, case_id: UUID, reason: str, actor: Actor) -> Request:
        case = self.get(case_id)
        case.withdraw(reason=reason, at=self.clock.now(), actor=actor.as_record())
        self.save(case)
        return case

    def get(self, case_id: UUID) -> Request:
        try:
            case: Request = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None
        return case
