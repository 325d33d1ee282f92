"""Plans' application: it learns of the request (intake) and of the coordinator and the
conference (coordination) from the bus, in any order; it takes the coordinator's and the
professional's commands over HTTP. Its lists (the cases, and the e-mails the delivery worker
still has to send) are its read model (``views.py``)."""

from __future__ import annotations

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
    PartnerDirectory,
    Plan,
    PlanContent,
    PlanParticipant,
    Professional,
)
from services.plans.views import PlansViews
from shared.access import Facts
from shared.actor import Actor, system_actor
from shared.application import KringApplication
from shared.claims import ClarificationForPlan
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.errors import CaseNotFoundError, NotPermittedError
from shared.events import (
    PARTNER_REGISTRY_ID,
    CaseEndedWithoutConference,
    CaseErased,
    ConferenceHeld,
    CoordinatorAssigned,
    IntegrationEvent,
    ParticipantConsentWithdrawn,
    PartnerRegistered,
    PartnerRevoked,
    PlanRevisionRequested,
    RequestReceived,
)
from shared.identity import Principal

#: Saving a delivery record retries this often when an HTTP command saved the plan at the same
#: moment; the e-mail is already out, so giving up would send it again on the next round.
RECORD_TRIES = 5


@dataclass(frozen=True)
class PendingEmail:
    case_id: UUID
    version: int
    participant_id: str


#: A plan gathers an event per copy delivered, version and sign-off: loaded from a snapshot
#: every ten events.
PLAN_SNAPSHOT_EVENTS = 10


class PlansApplication(KringApplication):
    name = "plans"
    snapshotting_intervals = {**KringApplication.snapshotting_intervals, Plan: PLAN_SNAPSHOT_EVENTS}
    policies = {
        RequestReceived: "on_request_received",
        CoordinatorAssigned: "on_coordinator_assigned",
        ConferenceHeld: "on_conference_held",
        CaseEndedWithoutConference: "on_case_ended_without_conference",
        ParticipantConsentWithdrawn: "on_consent_withdrawn",
        PlanRevisionRequested: "on_revision_requested",
        CaseErased: "on_case_erased",
        PartnerRegistered: "on_partner_registered",
        PartnerRevoked: "on_partner_revoked",
    }
    shared_aggregate_ids = frozenset({PARTNER_REGISTRY_ID})
    value_types = VALUES

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.system = system_actor(self.name).as_record()
        self.views = PlansViews(self)

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

    def on_partner_registered(
        self, event: PartnerRegistered, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        directory = self.partners()
        directory.note_registered(
            organisation=event.organisation, name=event.organisation_name, at=event.registered_at
        )
        processing.collect_events(directory)

    def on_partner_revoked(
        self, event: PartnerRevoked, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        directory = self.partners()
        directory.note_revoked(organisation=event.organisation, at=event.revoked_at)
        processing.collect_events(directory)

    def partners(self) -> PartnerDirectory:
        """Plans' copy of the partner registry, as far as it has heard."""
        try:
            directory: PartnerDirectory = self.repository.get(PARTNER_REGISTRY_ID)
        except AggregateNotFoundError:
            directory = PartnerDirectory(id=PARTNER_REGISTRY_ID)
        return directory

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
            partners=self.partners(),
        )
        self.save(plan)
        return plan

    def withdraw_sharing(self, case_id: UUID, organisation: str, principal: Principal) -> Plan:
        plan, actor = self._permitted("withdraw_sharing", case_id, principal)
        plan.withdraw_sharing(
            organisation=organisation, at=self.clock.now(), actor=actor.as_record()
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

    def read_copy(
        self, case_id: UUID, principal: Principal, version: int | None, kind: str
    ) -> tuple[Plan, int]:
        """A partner organisation's copy (the claim check): only of a case shared with its
        organisation, only a version shared with it (by default the latest), while it is a
        partner; the fetch is recorded. Returns the plan and the version."""
        rule = RULES["copy"]
        rule.check_role(principal)
        plan = self.get(case_id)
        facts = Facts.of_case(
            plan.id, plan.region, plan.coordinator_ids, organisations=plan.shared_organisations()
        )
        actor = rule.permit(principal, facts)
        if not self.partners().is_active(principal.organisation):
            raise NotPermittedError(
                f"{rule.action} needs a registered partner: {principal.organisation!r} is not one"
            )
        shared = plan.versions_shared_with(principal.organisation or "")
        if version is not None and version not in shared:
            raise NotPermittedError(
                f"version {version} was not shared with {principal.organisation}; shared: "
                + ", ".join(str(v) for v in shared)
            )
        chosen = version or shared[-1]
        self.log_read(case_id, actor, f"plan.copy.{kind}.v{chosen}", facts)
        return plan, chosen

    def case_facts(self, case_id: UUID) -> Facts:
        return self._facts(self.get(case_id))

    def get(self, case_id: UUID) -> Plan:
        try:
            plan: Plan = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise self.missing(case_id) from None
        return plan

    def pending_emails(self) -> list[PendingEmail]:
        """The e-mail copies a distribution left without a delivery record (the delivery
        worker's round); an erased case's are gone with it."""
        return [
            PendingEmail(row["case_id"], row["version"], row["participant_id"])
            for row in self.views.pending_emails()
        ]
