"""Intake's eventsourcing application: the command handlers (load, call, save) and the one
policy (a follow-up conference opens a linked case). The list of requests is its read model
(``views.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.intake.access import RULES
from services.intake.domain import VALUES, Request, TalkOutcome
from services.intake.views import IntakeViews
from shared.access import Facts
from shared.actor import Actor, system_actor
from shared.application import KringApplication
from shared.claims import ClaimOutcome, ClarificationAnswer
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.erasure import CaseErasedError, ErasureReason
from shared.errors import CaseNotFoundError, DomainRuleError
from shared.events import FollowUpConferenceRequested
from shared.identity import Principal

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


#: The users' zone: "today" for the date of an informational talk.
USERS_ZONE = ZoneInfo("Europe/Amsterdam")

#: Tries of an erasure that meets a concurrent change of one of its cases.
ERASE_ATTEMPTS = 3


@dataclass(frozen=True)
class Erasure:
    case_id: UUID
    at: datetime
    #: The follow-up cases erased with it.
    follow_ups: list[UUID]


class IdempotencyKeyReusedError(DomainRuleError):
    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used for a different request")


class IntakeApplication(KringApplication):
    name = "intake"
    policies = {FollowUpConferenceRequested: "on_follow_up_conference_requested"}
    value_types = VALUES

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.system = system_actor(self.name).as_record()
        self.views = IntakeViews(self)

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
    def submit(
        self, principal: Principal, idempotency_key: str | None = None, **request: Any
    ) -> UUID:
        """Store a new request. With an Idempotency-Key the case id is derived from it (and
        from who sent it), so a submission retried after a lost answer returns the case it
        already made, and nobody else's key can name it."""
        actor = RULES["submit"].permit(principal)
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

    def clarify(self, case_id: UUID, principal: Principal, **clarification: Any) -> Request:
        case, actor = self._permitted("clarify", case_id, principal)
        case.clarify(actor=actor.as_record(), **clarification)
        self.save(case)
        return case

    def record_talk(
        self,
        case_id: UUID,
        principal: Principal,
        *,
        held_on: date,
        held_by: str | None,
        outcome: TalkOutcome,
    ) -> Request:
        """The informational talk, recorded by the regional manager; ``held_by`` defaults to
        the one recording it."""
        case, actor = self._permitted("talk", case_id, principal)
        case.record_talk(
            held_on=held_on,
            held_by=held_by or actor.name or actor.id,
            outcome=outcome,
            at=self.clock.now(),
            today=self.today(),
            actor=actor.as_record(),
        )
        self.save(case)
        return case

    def today(self) -> date:
        """The users' date (Europe/Amsterdam), as the other services judge dates."""
        return self.clock.now().astimezone(USERS_ZONE).date()

    def accept(self, case_id: UUID, principal: Principal) -> Request:
        case, actor = self._permitted("accept", case_id, principal)
        case.accept(at=self.clock.now(), actor=actor.as_record())
        self.save(case)
        return case

    def withdraw(self, case_id: UUID, reason: str, principal: Principal) -> Request:
        case, actor = self._permitted("withdraw", case_id, principal)
        case.withdraw(reason=reason, at=self.clock.now(), actor=actor.as_record())
        self.save(case)
        return case

    def erase_case(self, case_id: UUID, reason: ErasureReason, principal: Principal) -> Erasure:
        """Erase the case (right to erasure) and every follow-up case opened from it, and from
        those in turn: here first, in one transaction, then, through one ``CaseErased`` each,
        in every service. Each follow-up case is recorded as erased with the case it follows.
        A case that is itself a follow-up is erased alone: the case it follows is a request of
        its own, and keeps only the follow-up's id. 404 for a case intake does not know, 410 for
        one erased already."""
        for attempt in range(ERASE_ATTEMPTS):
            case, actor = self._permitted("erase", case_id, principal)
            cases = self._with_follow_ups(case)
            at = self.clock.now()
            for each in cases:
                each.close_for_erasure(at=at, actor=actor.as_record())
            linked = [each.id for each in cases[1:]]
            try:
                self.erase(
                    case_id, reason.value, at, actor.as_record(), with_cases=linked, saving=cases
                )
            except IntegrityError:  # a follow-up opened, or the case changed, at that moment
                if attempt + 1 == ERASE_ATTEMPTS:
                    raise
                continue
            return Erasure(case_id=case_id, at=at, follow_ups=linked)
        raise AssertionError("unreachable")  # pragma: no cover

    def _with_follow_ups(self, case: Request) -> list[Request]:
        """The case, then every follow-up case opened from it and from those, oldest first; one
        erased already went with what followed it."""
        cases, seen, waiting = [case], {case.id}, list(case.follow_ups)
        while waiting:
            follow_up_id = waiting.pop(0)
            if follow_up_id in seen:
                continue
            seen.add(follow_up_id)
            try:
                follow_up = self.get(follow_up_id)
            except CaseNotFoundError:  # CaseErasedError included
                continue
            cases.append(follow_up)
            waiting += follow_up.follow_ups
        return cases

    def _permitted(self, rule: str, case_id: UUID, principal: Principal) -> tuple[Request, Actor]:
        """Load the case and hold the caller against the rule: first whether their roles could
        ever allow it (nothing is said of the case otherwise), then its region."""
        RULES[rule].check_role(principal)
        case = self.get(case_id)
        return case, RULES[rule].permit(principal, self._facts(case))

    @staticmethod
    def _facts(case: Request) -> Facts:
        return Facts.of_case(case.id, case.region, submitted_by=case.submitted_by)

    # -- queries -----------------------------------------------------------------------
    def read(self, case_id: UUID, principal: Principal) -> Request:
        """The request, for someone who may read it; the read is recorded."""
        case, actor = self._permitted("read", case_id, principal)
        self.log_read(case_id, actor, "case", self._facts(case))
        return case

    def case_facts(self, case_id: UUID) -> Facts:
        return self._facts(self.get(case_id))

    def clarification_for_plan(self, case_id: UUID, asked_by: str) -> ClarificationAnswer:
        """A claim check (``shared.claims``): the questions and minimum requirements of an
        accepted case, for the service ``asked_by``. The read is recorded, as any read of the
        case's data is."""
        try:
            case = self.get(case_id)
        except CaseErasedError:
            return ClarificationAnswer(outcome=ClaimOutcome.ERASED)
        except CaseNotFoundError:
            return ClarificationAnswer(outcome=ClaimOutcome.NOT_YET)
        clarification = case.for_the_plan()
        if clarification is None:
            return ClarificationAnswer(outcome=ClaimOutcome.NOT_YET)
        self.log_read(case_id, system_actor(asked_by), "clarification", self._facts(case))
        return ClarificationAnswer(outcome=ClaimOutcome.FOUND, clarification=clarification)

    def get(self, case_id: UUID) -> Request:
        try:
            case: Request = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise self.missing(case_id) from None
        return case

    @staticmethod
    def _check_same_request(case: Request, request: Mapping[str, Any]) -> None:
        for name in SUBMITTED_FIELDS:
            if name in request and getattr(case, name) != request[name]:
                raise IdempotencyKeyReusedError
