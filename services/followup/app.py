"""Follow-up's application: the follow-up opens (or notes a revision) on PlanDistributed, timers
fire when due, and the commands record outcomes and request follow-up conferences. Every
follow-up with its timers, for the timer loop and the case list, is its read model
(``views.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding

from services.followup.access import (
    OTHER_OUTCOMES,
    OTHER_RATINGS,
    OUTCOME_BY_KIND,
    RATINGS_BY_KIND,
    RULES,
)
from services.followup.domain import (
    USERS_ZONE,
    VALUES,
    CaseScope,
    FollowUp,
    MeetingOutcome,
    Rating,
    Schedule,
    is_contact,
)
from services.followup.views import FollowupViews
from shared.access import Facts, Rule
from shared.actor import system_actor
from shared.application import KringApplication
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.errors import CaseNotFoundError
from shared.events import CaseErased, CoordinatorAssigned, PlanDistributed, RequestReceived
from shared.identity import Principal
from shared.logging import bound_case, get_logger

log = get_logger(__name__)

#: Namespace of follow-up case ids made from the case and an Idempotency-Key, so a retried
#: request finds the case it opened.
IDEMPOTENT_FOLLOW_UP = UUID("3b0f5d62-8c1e-4a7b-9f24-6e5a1c9d7b30")


class NoFollowUpError(CaseNotFoundError):
    """No plan of this case was distributed (yet), so it has no follow-up: 404 with the reason."""

    def __init__(self, case_id: UUID) -> None:
        super().__init__(case_id)
        self.args = (f"case {case_id} has no follow-up: no plan of it was distributed",)


class RatingAsDict(Transcoding):
    type = Rating
    name = "followup_rating"

    def encode(self, obj: Rating) -> dict[str, Any]:
        return obj.as_record()

    def decode(self, data: dict[str, Any]) -> Rating:
        return Rating(by=data["by"], meeting=data["meeting"], plan=data["plan"])


class FollowupApplication(KringApplication):
    name = "followup"
    policies = {
        PlanDistributed: "on_plan_distributed",
        RequestReceived: "on_request_received",
        CoordinatorAssigned: "on_coordinator_assigned",
        CaseErased: "on_case_erased",
    }
    value_types = VALUES

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        schedule: Schedule | None = None,
    ) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.schedule = schedule or Schedule()
        self.system = system_actor(self.name).as_record()
        self.views = FollowupViews(self)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(RatingAsDict())

    # -- policy ------------------------------------------------------------------------
    def on_plan_distributed(
        self, event: PlanDistributed, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan: dict[str, Any] = {
            "plan_version": event.plan_version,
            "distributed_at": event.distributed_at,
            "next_meeting_on": event.next_meeting_on,
            "agreement_ids": list(event.agreement_ids),
            "schedule": self.schedule,
            "at": self.clock.now(),
            "actor": self.system,
        }
        try:
            follow_up: FollowUp = self.repository.get(event.case_id)
        except AggregateNotFoundError:
            follow_up = FollowUp.open(event.case_id, model=event.model.value, **plan)
        else:
            follow_up.revise(**plan)
        processing.collect_events(follow_up)

    def on_request_received(
        self, event: RequestReceived, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        scope = self.scope(event.case_id)
        scope.note_region(region=event.region, actor=self.system)
        processing.collect_events(scope)

    def on_coordinator_assigned(
        self, event: CoordinatorAssigned, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        scope = self.scope(event.case_id)
        scope.note_coordinators(coordinator_ids=event.coordinator_ids, actor=self.system)
        processing.collect_events(scope)

    def scope(self, case_id: UUID) -> CaseScope:
        try:
            scope: CaseScope = self.repository.get(CaseScope.create_id(case_id))
        except AggregateNotFoundError:
            scope = CaseScope(case_id=case_id)
        return scope

    def keys_of_case(self, case_id: UUID) -> list[UUID]:
        return [case_id, CaseScope.create_id(case_id)]

    # -- the timer loop ----------------------------------------------------------------
    def fire_due_timers(self) -> int:
        """Fire every timer that is due by the clock; return how many fired."""
        now = self.clock.now()
        fired = 0
        for case_id in self.cases_with_due_timers(now):
            with bound_case(case_id):
                follow_up = self.get(case_id)
                timer_ids = follow_up.fire_due(at=now, actor=self.system)
                if not timer_ids:
                    continue
                try:
                    self.save(follow_up)
                except IntegrityError:
                    continue  # another worker (or a command) saved first: next tick
                for timer_id in timer_ids:
                    log.info("followup.due", timer=timer_id)
                fired += len(timer_ids)
        return fired

    def cases_with_due_timers(self, now: datetime) -> list[UUID]:
        return self.views.cases_with_due_timers(now)

    # -- commands ----------------------------------------------------------------------
    def record_outcome(
        self,
        case_id: UUID,
        timer_id: str,
        reached: bool,
        agreements: Mapping[str, str],
        notes: str,
        principal: Principal,
    ) -> FollowUp:
        RULES["outcome"].check_role(principal)
        follow_up = self.get(case_id)
        rule = _contact_rule(follow_up, timer_id, OUTCOME_BY_KIND, OTHER_OUTCOMES, RULES["outcome"])
        actor = rule.permit(principal, self.case_facts(case_id))
        now = self.clock.now()
        # A contact due by the clock that the timer loop has not fired yet fires first, so
        # FollowUpDue always precedes its outcome.
        follow_up.fire_due(at=now, actor=self.system)
        follow_up.record_outcome(
            timer_id=timer_id,
            reached=reached,
            agreements=agreements,
            notes=notes,
            at=now,
            actor=actor.as_record(),
        )
        self.save(follow_up)
        return follow_up

    def record_meeting(
        self,
        case_id: UUID,
        principal: Principal,
        *,
        timer_id: str | None,
        held: bool,
        held_on: date | None,
        agreements: Mapping[str, str],
        revised_plan_wanted: bool,
        next_meeting_on: date | None,
        notes: str,
    ) -> FollowUp:
        """The family's own next meeting, recorded by the coordinator, the regional manager, or
        a participant of the case themself."""
        rule = RULES["meeting"]
        rule.check_role(principal)
        follow_up = self.get(case_id)
        actor = rule.permit(principal, self.case_facts(case_id))
        now = self.clock.now()
        follow_up.fire_due(at=now, actor=self.system)
        outcome = MeetingOutcome(
            timer_id=follow_up.meeting_timer(timer_id),
            held=held,
            held_on=held_on,
            agreements=dict(agreements),
            revised_plan_wanted=revised_plan_wanted,
            next_meeting_on=next_meeting_on,
        )
        follow_up.record_meeting(
            outcome=outcome,
            notes=notes,
            schedule=self.schedule,
            today=now.astimezone(USERS_ZONE).date(),
            at=now,
            actor=actor.as_record(),
        )
        self.save(follow_up)
        log.info("followup.meeting_recorded", held=held, revision=revised_plan_wanted)
        return follow_up

    def record_ratings(
        self, case_id: UUID, timer_id: str, ratings: list[Rating], principal: Principal
    ) -> FollowUp:
        RULES["ratings"].check_role(principal)
        follow_up = self.get(case_id)
        rule = _contact_rule(follow_up, timer_id, RATINGS_BY_KIND, OTHER_RATINGS, RULES["ratings"])
        actor = rule.permit(principal, self.case_facts(case_id))
        now = self.clock.now()
        follow_up.fire_due(at=now, actor=self.system)  # as for an outcome: FollowUpDue first
        follow_up.record_ratings(
            timer_id=timer_id, ratings=ratings, at=now, actor=actor.as_record()
        )
        self.save(follow_up)
        return follow_up

    def request_follow_up_conference(
        self,
        case_id: UUID,
        reason: str,
        principal: Principal,
        idempotency_key: str | None = None,
    ) -> UUID:
        """Returns the new case's id. With an Idempotency-Key it is derived from the case and
        the key, so a request retried after a lost answer returns the case it asked for."""
        rule = RULES["follow_up_conference"]
        rule.check_role(principal)
        if idempotency_key is None:
            new_case_id = uuid4()
        else:
            new_case_id = uuid5(IDEMPOTENT_FOLLOW_UP, f"{case_id}\n{idempotency_key}")
        follow_up = self.get(case_id)
        actor = rule.permit(principal, self.case_facts(case_id))
        requested = follow_up.request_follow_up_conference(
            new_case_id=new_case_id, reason=reason, at=self.clock.now(), actor=actor.as_record()
        )
        if requested:
            try:
                self.save(follow_up)
            except IntegrityError:
                # The same key at the same moment: fine if that one stored this request.
                if new_case_id not in self.get(case_id).follow_up_cases:
                    raise
            log.info("followup.conference_requested", new_case_id=str(new_case_id))
        return new_case_id

    # -- queries -----------------------------------------------------------------------
    def read(self, case_id: UUID, principal: Principal) -> FollowUp:
        """The follow-up, for someone who may read it; the read is recorded."""
        RULES["read"].check_role(principal)
        follow_up = self.get(case_id)
        facts = self.case_facts(case_id)
        self.log_read(case_id, RULES["read"].permit(principal, facts), "follow-up", facts)
        return follow_up

    def case_facts(self, case_id: UUID) -> Facts:
        """The case's region and coordinators as followup heard them (none yet: only a
        researcher may see it)."""
        self.get(case_id)  # 404 without a follow-up, 410 once erased
        scope = self.scope(case_id)
        return Facts.of_case(case_id, scope.region, scope.coordinator_ids)

    def get(self, case_id: UUID) -> FollowUp:
        try:
            follow_up: FollowUp = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise self.missing(case_id, NoFollowUpError(case_id)) from None
        return follow_up


def _contact_rule(
    follow_up: FollowUp, timer_id: str, by_kind: Mapping[str, Rule], other: Rule, route: Rule
) -> Rule:
    """A contact's own rule; for an unknown timer or the reminder the route's (the domain then
    refuses it, naming the timer)."""
    timer = follow_up.timers.get(timer_id)
    if timer is None or not is_contact(timer.kind):
        return route
    return by_kind.get(timer.kind, other)
