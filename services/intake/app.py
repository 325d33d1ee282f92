"""Intake's eventsourcing application: the command handlers (load, call, save), the one policy
(a follow-up conference opens a linked case) and the list of requests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.intake.domain import Request, Stage
from shared.actor import Actor, Role, system_actor
from shared.application import KringApplication
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.erasure import ErasureReason
from shared.errors import CaseNotFoundError, DomainRuleError
from shared.events import FollowUpConferenceRequested
from shared.projection import LogProjection

#: Namespace of case ids made from an Idempotency-Key, so a retried submission finds its case.
IDEMPOTENT_SUBMISSION = UUID("6f1d0c8e-2b9a-4d67-9a53-1d2f7e0c4b11")

#: The fields of a submission that must match when an Idempotency-Key is used again.
SUBMITTED_FIELDS = (
    "requester",
    "central_persons",
    "central_group",
    "model",
    "region",
    "languages",
    "description",
    "informational_talk",
    "coordinator_wishes",
)


#: Who may erase a case.
ERASERS = frozenset({Role.REGIONAL_MANAGER, Role.OPERATOR})


class IdempotencyKeyReusedError(DomainRuleError):
    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class IntakeApplication(KringApplication):
    name = "intake"
    policies = {FollowUpConferenceRequested: "on_follow_up_conference_requested"}

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.system = system_actor(self.name).as_record()
        self._rows: dict[UUID, dict[str, Any]] = {}
        self._rows_lock = threading.Lock()
        self._list = LogProjection(self, self._project_row, forget=self._forget_row)

    # -- policy ------------------------------------------------------------------------
    def on_follow_up_conference_requested(
        self,
        event: FollowUpConferenceRequested,
        processing: ProcessingEvent[UUID],
        delivered: Delivered,
    ) -> None:
        original = self.get(event.case_id)
        follow_up = original.open_follow_up(
            event.new_case_id, at=event.requested_at, actor=self.system
        )
        processing.collect_events(original, follow_up)

    # -- commands ----------------------------------------------------------------------
    def submit(self, actor: Actor, idempotency_key: str | None = None, **request: Any) -> UUID:
        """Store a new request. With an Idempotency-Key the case id is derived from it, so a
        submission retried after a lost answer returns the case it already made."""
        if idempotency_key is None:
            case = Request.submit(
                uuid4(), submitted_at=self.clock.now(), actor=actor.as_record(), **request
            )
            self.save(case)
            return case.id
        case_id = uuid5(IDEMPOTENT_SUBMISSION, f"{actor.id}\n{idempotency_key}")
        try:
            self._check_same_request(self.get(case_id), request)
            return case_id
        except CaseNotFoundError:
            pass
        case = Request.submit(
            case_id, submitted_at=self.clock.now(), actor=actor.as_record(), **request
        )
        try:
            self.save(case)
        except IntegrityError:  # the same key, submitted concurrently: one of them stored it
            self._check_same_request(self.get(case_id), request)
        return case_id

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

    def erase_case(self, case_id: UUID, reason: ErasureReason, actor: Actor) -> datetime:
        """Erase the case (right to erasure): here first, then, through ``CaseErased``, in every
        service. Returns when it was erased."""
        if actor.role not in ERASERS:
            raise DomainRuleError("only a regional_manager or an operator erases a case")
        self.get(case_id)  # 404 for a case intake does not know, 410 for one erased already
        at = self.clock.now()
        self.erase(case_id, reason.value, at, actor.as_record())
        self._list.catch_up()
        return at

    # -- queries -----------------------------------------------------------------------
    def get(self, case_id: UUID) -> Request:
        try:
            case: Request = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None
        return case

    def cases(
        self, stage: Stage | None = None, model: str | None = None, region: str | None = None
    ) -> list[dict[str, Any]]:
        """Every request's row, oldest first: projected from the log, so no aggregate is loaded."""
        self._list.catch_up()
        with self._rows_lock:
            rows = [dict(row) for row in self._rows.values()]
        return [
            row
            for row in rows
            if (stage is None or row["stage"] == stage)
            and (model is None or row["model"] == model)
            and (region is None or row["region"].casefold() == region.casefold())
        ]

    def _forget_row(self, case_id: UUID) -> None:
        with self._rows_lock:
            self._rows.pop(case_id, None)

    def _project_row(self, event: Any) -> None:
        with self._rows_lock:
            if isinstance(event, Request.Submitted):  # type: ignore[attr-defined]
                self._rows[event.originator_id] = {
                    "case_id": event.originator_id,
                    "model": event.model,
                    "region": event.region,
                    "stage": Stage.SUBMITTED,
                    "submitted_at": event.submitted_at,
                    "accepted_at": None,
                    "follow_up_of": getattr(event, "follow_up_of", None),
                }
                return
            row = self._rows.get(event.originator_id)
            if row is None:
                return
            if isinstance(event, Request.Clarified):  # type: ignore[attr-defined]
                row["stage"] = Stage.CLARIFIED
            elif isinstance(event, Request.Accepted):  # type: ignore[attr-defined]
                row["stage"], row["accepted_at"] = Stage.ACCEPTED, event.at
            elif isinstance(event, Request.Withdrawn):
                row["stage"] = Stage.WITHDRAWN

    @staticmethod
    def _check_same_request(case: Request, request: Mapping[str, Any]) -> None:
        for name in SUBMITTED_FIELDS:
            if name in request and getattr(case, name) != request[name]:
                raise IdempotencyKeyReusedError
