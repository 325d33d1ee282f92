"""Plans' application: it learns of the request (intake) and of the coordinator and the
conference (coordination) from the bus, in any order; it takes the coordinator's and the
professional's commands over HTTP; and it keeps two lists from its own log: the cases, and the
e-mails the delivery worker still has to send."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.plans.access import RULES
from services.plans.domain import (
    VALUES,
    Channel,
    ConferenceQuestion,
    DeliveryStatus,
    MinimumRequirement,
    Plan,
    PlanContent,
    PlanParticipant,
    Professional,
    Stage,
)
from shared.access import Facts
from shared.actor import Actor, system_actor
from shared.application import KringApplication
from shared.claims import ClarificationForPlan
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.errors import CaseNotFoundError
from shared.events import (
    CaseEndedWithoutConference,
    CaseErased,
    ConferenceHeld,
    CoordinatorAssigned,
    IntegrationEvent,
    ParticipantConsentWithdrawn,
    PlanRevisionRequested,
    RequestReceived,
)
from shared.identity import Principal
from shared.projection import LogProjection

#: Saving a delivery record retries this often when an HTTP command saved the plan at the same
#: moment; the e-mail is already out, so giving up would send it again on the next round.
RECORD_TRIES = 5


@dataclass(frozen=True)
class PendingEmail:
    case_id: UUID
    version: int
    participant_id: str


class PlansApplication(KringApplication):
    name = "plans"
    policies = {
        RequestReceived: "on_request_received",
        CoordinatorAssigned: "on_coordinator_assigned",
        ConferenceHeld: "on_conference_held",
        CaseEndedWithoutConference: "on_case_ended_without_conference",
        ParticipantConsentWithdrawn: "on_consent_withdrawn",
        PlanRevisionRequested: "on_revision_requested",
        CaseErased: "on_case_erased",
    }
    value_types = VALUES

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.system = system_actor(self.name).as_record()
        self._rows: dict[UUID, dict[str, Any]] = {}
        self._pending: dict[PendingEmail, None] = {}
        self._lists_lock = threading.Lock()
        self._lists = LogProjection(self, self._project, forget=self._forget)

    # -- policies: any of them may come first, and each opens the plan if needed ----------
    def on_request_received(
        self, event: RequestReceived, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan = self._open(event)
        plan.note_request(
            languages=event.languages,
            has_minimum_requirements=event.has_minimum_requirements,
            region=event.region,
            actor=self.system,
        )
        processing.collect_events(plan)

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
        plan.note_conference(
            held_on=event.held_on,
            participants=[
                PlanParticipant(
                    participant_id=p.participant_id, role=p.role.value, organisation=p.organisation
                )
                for p in event.participants
            ],
            actor=self.system,
        )
        processing.collect_events(plan)

    def on_case_ended_without_conference(
        self, event: CaseEndedWithoutConference, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan = self._open(event)
        plan.note_ended_without_conference(ending=event.ending.value, actor=self.system)
        processing.collect_events(plan)

    def on_consent_withdrawn(
        self, event: ParticipantConsentWithdrawn, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        plan = self._open(event)
        plan.note_consent_withdrawn(
            participant_id=event.participant_id, at=event.withdrawn_at, actor=self.system
        )
        processing.collect_events(plan)

    def on_revision_requested(
        self, event: PlanRevisionRequested, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        """At their own next meeting the family asked for a revised plan: shown until the
        coordinator writes the next version."""
        plan = self._open(event)
        plan.note_revision_requested(
            requested_at=event.requested_at, timer_id=event.timer_id, actor=self.system
        )
        processing.collect_events(plan)

    def _open(self, event: IntegrationEvent) -> Plan:
        try:
            plan: Plan = self.repository.get(event.case_id)
        except AggregateNotFoundError:
            plan = Plan(id=event.case_id, model=event.model.value, actor=self.system)
        return plan

    # -- commands: load, check, call, save ---------------------------------------------------
    def record_recipients(
        self, case_id: UUID, entries: list[dict[str, Any]], principal: Principal
    ) -> Plan:
        plan, actor = self._permitted("recipients", case_id, principal)
        plan.record_recipients(entries=entries, actor=actor.as_record())
        self.save(plan)
        return plan

    def note_clarification(self, case_id: UUID, found: ClarificationForPlan) -> bool:
        """Intake answered plans' claim check: keep the questions and requirements with the plan
        (under the case's key, erased with it). False if the plan has them already, or is gone."""
        for attempt in range(RECORD_TRIES):
            try:
                plan = self.get(case_id)
            except CaseNotFoundError:
                return False
            if plan.clarification_known:
                return False
            plan.note_clarification(
                questions=[ConferenceQuestion(**q.model_dump()) for q in found.questions],
                requirements=[
                    MinimumRequirement(
                        requirement_id=m.requirement_id,
                        text=m.text,
                        set_by=Professional(**m.set_by.model_dump()),
                    )
                    for m in found.requirements
                ],
                actor=self.system,
            )
            try:
                self.save(plan)
                return True
            except IntegrityError:
                if attempt == RECORD_TRIES - 1:
                    raise
        return False  # pragma: no cover - the loop returns or raises

    def name_signatory(
        self,
        case_id: UUID,
        requirement_id: str,
        subject: str,
        name: str,
        reason: str,
        principal: Principal,
    ) -> Plan:
        plan, actor = self._permitted("signatory", case_id, principal)
        plan.name_signatory(
            requirement_id=requirement_id,
            subject=subject,
            name=name,
            reason=reason,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(plan)
        return plan

    def write(self, case_id: UUID, content: PlanContent, principal: Principal) -> Plan:
        plan, actor = self._permitted("write", case_id, principal)
        plan.write(content=content, at=self.clock.now(), actor=actor.as_record())
        self.save(plan)
        return plan

    def accept(self, case_id: UUID, version: int, principal: Principal) -> Plan:
        plan, actor = self._permitted("accept", case_id, principal)
        plan.accept(version=version, at=self.clock.now(), actor=actor.as_record())
        self.save(plan)
        return plan

    def sign_off(
        self,
        case_id: UUID,
        version: int,
        meets: bool,
        reason: str | None,
        principal: Principal,
        requirement_ids: list[str] | None = None,
    ) -> Plan:
        plan, actor = self._permitted("sign_off", case_id, principal)
        plan.sign_off(
            version=version,
            meets=meets,
            reason=reason,
            at=self.clock.now(),
            actor=actor.as_record(),
            requirement_ids=requirement_ids,
        )
        self.save(plan)
        return plan

    def distribute(
        self,
        case_id: UUID,
        shared_with_organisations: list[str],
        principal: Principal,
        version: int | None = None,
    ) -> Plan:
        plan, actor = self._permitted("distribute", case_id, principal)
        plan.distribute(
            shared_with_organisations=shared_with_organisations,
            version=version,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(plan)
        return plan

    def record_handover(
        self,
        case_id: UUID,
        version: int,
        participant_id: str,
        channel: Channel,
        principal: Principal,
    ) -> Plan:
        plan, actor = self._permitted("handover", case_id, principal)
        plan.record_handover(
            version=version,
            participant_id=participant_id,
            channel=channel.value,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(plan)
        return plan

    def _permitted(self, rule: str, case_id: UUID, principal: Principal) -> tuple[Plan, Actor]:
        """Load the plan and hold the caller against the rule: first whether their roles could
        ever allow it (nothing is said of the case otherwise), then the case's region and
        coordinators."""
        RULES[rule].check_role(principal)
        plan = self.get(case_id)
        return plan, RULES[rule].permit(principal, self._facts(plan))

    @staticmethod
    def _facts(plan: Plan) -> Facts:
        return Facts.of_case(plan.id, plan.region, plan.coordinator_ids)

    def record_email_outcome(
        self, pending: PendingEmail, status: DeliveryStatus, detail: str | None = None
    ) -> bool:
        """The delivery worker's record; False if the copy already had one."""
        for attempt in range(RECORD_TRIES):
            plan = self.get(pending.case_id)
            recorded = plan.record_email_outcome(
                version=pending.version,
                participant_id=pending.participant_id,
                status=status,
                detail=detail,
                at=self.clock.now(),
                actor=self.system,
            )
            if not recorded:
                return False
            try:
                self.save(plan)
                return True
            except IntegrityError:
                if attempt == RECORD_TRIES - 1:
                    raise
        return False  # pragma: no cover - the loop returns or raises

    # -- queries -----------------------------------------------------------------------------
    def read(self, case_id: UUID, principal: Principal, what: str) -> Plan:
        """The plan, for someone who may read it; the read (``what``: the plan, its copies, a
        printed document) is recorded."""
        rule = "document" if what.startswith("plan.document") else "read"
        plan, actor = self._permitted(rule, case_id, principal)
        self.log_read(case_id, actor, what, self._facts(plan))
        return plan

    def case_facts(self, case_id: UUID) -> Facts:
        return self._facts(self.get(case_id))

    def get(self, case_id: UUID) -> Plan:
        try:
            plan: Plan = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise self.missing(case_id) from None
        return plan

    def cases(
        self, principal: Principal, stage: Stage | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """The cases plans knows that the caller may see, oldest first, without loading an
        aggregate."""
        rule = RULES["list"]
        rule.check_role(principal)
        self._lists.catch_up()
        with self._lists_lock:
            rows = [dict(row) for row in self._rows.values()]
        return [
            row
            for row in rows
            if rule.allows(
                principal, Facts.of_case(row["case_id"], row["region"], row["coordinator_ids"])
            )
            and (stage is None or row["stage"] == stage)
            and (model is None or row["model"] == model)
        ]

    def pending_emails(self) -> list[PendingEmail]:
        self._lists.catch_up()
        with self._lists_lock:
            return list(self._pending)

    def _forget(self, case_id: UUID) -> None:
        """An erased case leaves the lists; its e-mail copies are no longer sent."""
        with self._lists_lock:
            self._rows.pop(case_id, None)
            for pending in [p for p in self._pending if p.case_id == case_id]:
                del self._pending[pending]

    def _project(self, event: Any) -> None:
        case_id: UUID = event.originator_id
        with self._lists_lock:
            if isinstance(event, Plan.Opened):  # type: ignore[attr-defined]
                self._rows[case_id] = {
                    "case_id": case_id,
                    "model": event.model,
                    "stage": Stage.AWAITING_CONFERENCE,
                    "current_version": None,
                    "distributed": False,
                    "distributed_version": None,
                    "region": None,
                    "coordinator_ids": [],
                }
                return
            row = self._rows.get(case_id)
            if row is None:
                return
            if isinstance(event, Plan.RequestNoted):
                row["region"] = event.region
            elif isinstance(event, Plan.CoordinatorNoted):  # type: ignore[attr-defined]
                row["coordinator_ids"] = list(event.coordinator_ids)
            elif isinstance(event, Plan.ConferenceNoted):
                if row["stage"] == Stage.AWAITING_CONFERENCE:
                    row["stage"] = Stage.CONFERENCE_HELD
            elif isinstance(event, Plan.EndedWithoutConference):  # type: ignore[attr-defined]
                ended_with_plan = event.ending == "plan_without_meeting"
                row["stage"] = Stage.WITHOUT_MEETING if ended_with_plan else Stage.STOPPED
            elif isinstance(event, Plan.Written):
                row["stage"], row["current_version"] = Stage.WRITTEN, event.version
            elif isinstance(event, Plan.Distributed):  # type: ignore[attr-defined]
                row["stage"], row["distributed"] = Stage.DISTRIBUTED, True
                row["distributed_version"] = event.version
                for r in event.recipients:
                    if r.get("channel") == Channel.EMAIL.value:
                        self._pending[PendingEmail(case_id, event.version, r["participant_id"])] = (
                            None
                        )
            elif isinstance(event, Plan.DeliveryRecorded):  # type: ignore[attr-defined]
                self._pending.pop(PendingEmail(case_id, event.version, event.participant_id), None)
