"""Coordination's application: assignment on RequestReceived, the end of a case on
RequestWithdrawn, the coordinators' task ending on PlanDistributed; the commands of the regional
manager, the coordinator and the participants; the overdue job. The case lists are its read
model (``views.py``).

A case and the pool are snapshotted: a case gathers an event per invitation, answer and step
of the preparation, and the pool one with every case taken and released, forever.

Everything that changes the pool (one aggregate) runs under one lock in this process and is
retried when another process saved the pool at the same moment, so the consumer and the HTTP
commands never refuse each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from copy import deepcopy
from datetime import date, timedelta
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.coordination.access import RULES
from services.coordination.domain import (
    ENDED,
    VALUES,
    CoordinatedCase,
    Stage,
)
from services.coordination.pool import (
    POOL_ID,
    CaseNeeds,
    Choice,
    CoordinatorPool,
    HandAssignment,
    RelationNotes,
)
from services.coordination.views import CoordinationViews
from shared.access import Facts
from shared.actor import system_actor
from shared.application import KringApplication, mutate_all
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered
from shared.erasure import CaseErasedError
from shared.errors import CaseNotFoundError, DomainRuleError
from shared.events import CaseErased, PlanDistributed, RequestReceived, RequestWithdrawn
from shared.identity import Principal
from shared.logging import bound_case, get_logger

log = get_logger(__name__)
T = TypeVar("T")

#: Tries of a command when another process saved the pool (or the case) at the same moment.
TRIES = 5
#: The users' zone: "today" for availability and schedules (as followup's reminders).
USERS_ZONE = ZoneInfo("Europe/Amsterdam")
#: How far back a chain of follow-up cases is followed for relations and continuity.
FOLLOW_UP_DEPTH = 10

#: Snapshots: a case every ten events, the pool every two hundred (measured in
#: ``bench/RESULTS.md``).
CASE_SNAPSHOT_EVENTS = 10
POOL_SNAPSHOT_EVENTS = 200


class CoordinationApplication(KringApplication):
    name = "coordination"
    policies = {
        RequestReceived: "on_request_received",
        RequestWithdrawn: "on_request_withdrawn",
        PlanDistributed: "on_plan_distributed",
        CaseErased: "on_case_erased",
    }
    shared_aggregate_ids = frozenset({POOL_ID})
    value_types = VALUES
    snapshotting_intervals = {
        **KringApplication.snapshotting_intervals,
        CoordinatedCase: CASE_SNAPSHOT_EVENTS,
        CoordinatorPool: POOL_SNAPSHOT_EVENTS,
    }

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
        self._pool_lock = threading.RLock()
        #: The pool gathers events with every case; it is kept in memory and brought up to
        #: date from the store on each read (another process may have saved since); a process
        #: starts from its latest snapshot.
        self._pool: CoordinatorPool | None = None
        self.views = CoordinationViews(self, self.clock)

    # -- time ----------------------------------------------------------------------------
    def today(self) -> date:
        """The date availability and schedules are judged by: the users' (Amsterdam)."""
        return self.clock.now().astimezone(USERS_ZONE).date()

    # -- policies ------------------------------------------------------------------------
    def process(self, delivered: Delivered) -> bool:
        with self._pool_lock:
            return _retrying(
                lambda: self._guarded(
                    lambda: super(CoordinationApplication, self).process(delivered)
                )
            )

    def on_request_received(
        self, event: RequestReceived, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        wishes = event.coordinator_wishes.model_dump() if event.coordinator_wishes else None
        case = CoordinatedCase.receive(
            event.case_id,
            model=event.model.value,
            region=event.region,
            languages=event.languages,
            accepted_at=event.accepted_at,
            actor=self.system,
            coordinators_needed=event.coordinators_needed,
            coordinator_wishes=wishes,
            involved_organisations=event.involved_organisations,
            follow_up_of=event.follow_up_of,
        )
        pool = self.pool()
        choice = pool.choose(self._needs(case), case.coordinators_needed, self.today())
        if choice.chosen:
            self._assign(pool, case, choice.chosen, choice.reason, self.system, choice=choice)
        else:
            case.wait(
                reason=choice.waiting_reason or "nobody fits",
                actor=self.system,
                passed_over=choice.passed_over,
            )
        processing.collect_events(case, pool)

    def on_request_withdrawn(
        self, event: RequestWithdrawn, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        case = self.get(event.case_id)
        if case.request_withdrawn(at=event.withdrawn_at, actor=self.system):
            pool = self.pool()
            self._release(pool, case, case.coordinator_ids, self.system)
            processing.collect_events(case, pool)
        else:
            processing.collect_events(case)

    def on_plan_distributed(
        self, event: PlanDistributed, processing: ProcessingEvent[UUID], _: Delivered
    ) -> None:
        try:
            case = self.get(event.case_id)
        except CaseNotFoundError:
            return  # not a case coordination prepared
        if case.end_task(at=event.distributed_at, actor=self.system):
            pool = self.pool()
            self._release(pool, case, case.coordinator_ids, self.system)
            processing.collect_events(case, pool)

    def keys_of_case(self, case_id: UUID) -> list[UUID]:
        return [case_id, RelationNotes.create_id(case_id)]

    def relation_notes(self, case_id: UUID) -> RelationNotes:
        try:
            notes: RelationNotes = self.repository.get(RelationNotes.create_id(case_id))
        except AggregateNotFoundError:
            notes = RelationNotes(case_id=case_id)
        return notes

    def before_erasure(self, case_id: UUID, actor: dict[str, str]) -> list[Any]:
        """An erased case no longer counts against its coordinators. (A relation a coordinator
        declared to it stays in the pool: it protects the people, and names no one; what they
        wrote about it goes with the case's key.)"""
        pool = self.pool()
        for coordinator_id, held in pool.holds.items():
            if case_id in held:
                pool.release(coordinator_id=coordinator_id, case_id=case_id, actor=actor)
        return [pool]

    # -- the pool ------------------------------------------------------------------------
    def register_coordinator(
        self,
        coordinator_id: str,
        regions: list[str],
        languages: list[str],
        capacity: int,
        principal: Principal,
        **optional: Any,
    ) -> CoordinatorPool:
        """Add a coordinator or update one. ``optional`` (organisations, gender, backgrounds,
        cultures, available) left out keeps an existing coordinator's value. A coordinator who
        now works for an organisation involved in a case they hold is no longer independent of
        it: released from it, and the case is assigned afresh or waits saying why."""
        rule = RULES["register"]
        rule.check_role(principal)

        def register() -> CoordinatorPool:
            pool = self.pool()
            actor = rule.permit(principal, Facts(regions=tuple(regions)))
            if coordinator_id in pool.coordinators:
                # Whoever manages where they work now, not only where they are to work.
                rule.permit(principal, self._coordinator_facts(pool, coordinator_id))
            by = actor.as_record()
            pool.register(
                coordinator_id=coordinator_id,
                regions=regions,
                languages=languages,
                capacity=capacity,
                actor=by,
                organisations=optional.get("organisations"),
                gender=optional.get("gender"),
                backgrounds=optional.get("backgrounds"),
                cultures=optional.get("cultures"),
                available=optional.get("available"),
                keep_gender="gender" not in optional,
            )
            changed: list[Any] = [pool]
            for case_id in list(pool.holds.get(coordinator_id, [])):
                case = self.get(case_id)
                problem = pool.independence_problem(coordinator_id, self._needs(case))
                if problem and not case.is_over:
                    released = (
                        f"{coordinator_id} is no longer independent ({problem}) and was released"
                    )
                    self._replace(pool, case, coordinator_id, released, by)
                    changed.append(case)
            self.save(*changed)
            return deepcopy(pool)  # the caller reads it outside the pool lock

        return self._pool_command(register)

    def set_availability(
        self, coordinator_id: str, available: bool, until: date | None, principal: Principal
    ) -> CoordinatorPool:
        RULES["availability"].check_role(principal)

        def set_it() -> CoordinatorPool:
            pool = self.pool()
            pool.check_known(coordinator_id)
            actor = RULES["availability"].permit(
                principal, self._coordinator_facts(pool, coordinator_id)
            )
            pool.set_availability(
                coordinator_id=coordinator_id,
                available=available,
                until=until,
                today=self.today(),
                actor=actor.as_record(),
            )
            self.save(pool)
            return deepcopy(pool)

        return self._pool_command(set_it)

    def declare_relation(
        self, coordinator_id: str, case_id: UUID, kind: str, note: str, principal: Principal
    ) -> tuple[CoordinatorPool, CoordinatedCase | None]:
        """A coordinator is not independent for a case: never assigned to it. If they hold it
        now (and preparation is not over) they are released and the case is assigned afresh
        without them, or waits saying why. A case coordination has not heard of yet is fine:
        the relation counts when it arrives."""
        RULES["relation"].check_role(principal)

        def declare() -> tuple[CoordinatorPool, CoordinatedCase | None]:
            if self.keyring.is_erased(case_id):
                raise CaseErasedError(case_id)
            pool = self.pool()
            pool.check_known(coordinator_id)
            actor = RULES["relation"].permit(
                principal, self._coordinator_facts(pool, coordinator_id)
            )
            by = actor.as_record()
            pool.declare_relation(
                coordinator_id=coordinator_id, case_id=case_id, kind=kind, actor=by
            )
            changed: list[Any] = [pool]
            if note:
                notes = self.relation_notes(case_id)
                notes.write(coordinator_id=coordinator_id, kind=kind, note=note, actor=by)
                changed.append(notes)
            try:
                case: CoordinatedCase | None = self.get(case_id)
            except CaseNotFoundError:
                case = None
            if case is not None:
                case.note_relation(coordinator_id=coordinator_id, kind=kind, actor=by)
                if coordinator_id in case.coordinator_ids and case.stage not in ENDED:
                    released = (
                        f"{coordinator_id} declared a relation to the case ({kind}) and was"
                        " released"
                    )
                    self._replace(pool, case, coordinator_id, released, by)
                changed.append(case)
            self.save(*changed)
            return deepcopy(pool), case

        return self._pool_command(declare)

    def _replace(
        self,
        pool: CoordinatorPool,
        case: CoordinatedCase,
        coordinator_id: str,
        released: str,
        actor: dict[str, str],
    ) -> None:
        remaining = [c for c in case.coordinator_ids if c != coordinator_id]
        self._release(pool, case, [coordinator_id], actor)
        missing = case.coordinators_needed - len(remaining)
        choice = pool.choose(self._needs(case), missing, self.today(), exclude=remaining)
        new = remaining + choice.chosen
        if not new:
            case.release_all(
                reason=released,
                waiting_reason=choice.waiting_reason or "nobody fits",
                at=self.clock.now(),
                actor=actor,
            )
            return
        reason = f"{released}; {choice.reason}" if choice.chosen else released
        self._assign(pool, case, new, reason, actor, choice=choice)

    # -- assignment by hand --------------------------------------------------------------
    def assign_by_hand(
        self, case_id: UUID, coordinator_ids: list[str] | str, reason: str, principal: Principal
    ) -> CoordinatedCase:
        """The regional manager assigns or reassigns (the whole set), with a reason. Refused
        (``CoordinatorPool.check_assignable``): a coordinator who is not independent for the
        case, or unavailable; two where the case needs one. Allowed, and written down: over
        capacity, outside the region or language, not matching the family's wishes."""
        ids = [coordinator_ids] if isinstance(coordinator_ids, str) else list(coordinator_ids)
        RULES["assign"].check_role(principal)

        def assign() -> CoordinatedCase:
            case = self.get(case_id)
            actor = RULES["assign"].permit(principal, self._facts(case)).as_record()
            pool = self.pool()
            hand = self._by_hand(pool, case, ids)
            self._release(pool, case, hand.released, actor)
            self._assign(
                pool,
                case,
                hand.coordinator_ids,
                reason,
                actor,
                by_hand=True,
                waiting_reason=hand.waiting_reason,
                mismatches=hand.mismatches,
                over_capacity=hand.over_capacity,
            )
            self.save(case, pool)
            return case

        return self._pool_command(assign)

    def check_assignment(
        self, case_id: UUID, coordinator_ids: list[str], principal: Principal
    ) -> dict[str, Any]:
        """What assigning these coordinators by hand would meet, without assigning: the
        refusal it would get, or what would be written down (mismatches, over capacity, a
        second coordinator still needed). The regional manager sees it before confirming; the
        read is recorded."""
        rule = RULES["assign"]
        rule.check_role(principal)
        case = self.get(case_id)
        facts = self._facts(case)
        self.log_read(case_id, rule.permit(principal, facts), "assignment.check", facts)
        pool = self.pool()
        try:
            hand = self._by_hand(pool, case, coordinator_ids)
        except DomainRuleError as refusal:
            return {"refused": str(refusal), "mismatches": [], "over_capacity": []}
        return {
            "refused": None,
            "mismatches": hand.mismatches,
            "over_capacity": hand.over_capacity,
            "waiting_reason": hand.waiting_reason,
        }

    def _by_hand(
        self, pool: CoordinatorPool, case: CoordinatedCase, ids: list[str]
    ) -> HandAssignment:
        """The refusals of an assignment by hand (raised), else what it writes down: who is
        over capacity, every mismatch, and why the case still waits (the pool's rule)."""
        case.check_can_be_assigned()
        return pool.check_hand_assignment(
            ids,
            self._needs(case),
            current=case.coordinator_ids,
            coordinators_needed=case.coordinators_needed,
            today=self.today(),
        )

    def record_contact(self, case_id: UUID, principal: Principal) -> CoordinatedCase:
        return self._case_command(
            "contact",
            case_id,
            principal,
            lambda case, actor: case.record_contact(at=self.clock.now(), actor=actor),
        )

    def invite(
        self, case_id: UUID, principal: Principal, **participant: Any
    ) -> tuple[CoordinatedCase, str]:
        found: list[str] = []

        def invite(case: CoordinatedCase, actor: dict[str, str]) -> None:
            found.append(case.invite(actor=actor, **participant))

        case = self._case_command("invite", case_id, principal, invite)
        return case, found[-1]

    def confirm(
        self, case_id: UUID, participant_id: str, share_details: bool, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "answer",
            case_id,
            principal,
            lambda case, actor: case.confirm(
                participant_id=participant_id, share_details=share_details, actor=actor
            ),
            participant_id=participant_id,
        )

    def decline(
        self, case_id: UUID, participant_id: str, reason: str, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "answer",
            case_id,
            principal,
            lambda case, actor: case.decline(
                participant_id=participant_id, reason=reason, actor=actor
            ),
            participant_id=participant_id,
        )

    def withdraw_consent(
        self, case_id: UUID, participant_id: str, what: str, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "answer",
            case_id,
            principal,
            lambda case, actor: case.withdraw_consent(
                participant_id=participant_id, what=what, at=self.clock.now(), actor=actor
            ),
            participant_id=participant_id,
        )

    def record_informed(
        self, case_id: UUID, participant_id: str, on: date | None, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "inform",
            case_id,
            principal,
            lambda case, actor: case.record_informed(
                participant_id=participant_id,
                on=on or self.today(),
                today=self.today(),
                actor=actor,
            ),
        )

    def record_not_informed(
        self, case_id: UUID, participant_id: str, reason: str, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "inform",
            case_id,
            principal,
            lambda case, actor: case.record_not_informed(
                participant_id=participant_id, reason=reason, actor=actor
            ),
        )

    def need_information(
        self, case_id: UUID, topic: str, brought_by: str, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "information",
            case_id,
            principal,
            lambda case, actor: case.need_information(
                topic=topic, brought_by=brought_by, actor=actor
            ),
        )

    def arrange(
        self, case_id: UUID, arrangements: dict[str, Any], principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "arrangements",
            case_id,
            principal,
            lambda case, actor: case.arrange(
                arrangements=arrangements, today=self.today(), actor=actor
            ),
        )

    def schedule(
        self, case_id: UUID, on: date, venue: str, principal: Principal
    ) -> CoordinatedCase:
        return self._case_command(
            "schedule",
            case_id,
            principal,
            lambda case, actor: case.schedule(on=on, venue=venue, today=self.today(), actor=actor),
        )

    def hold_conference(
        self,
        case_id: UUID,
        held_on: date,
        parts: Mapping[str, Mapping[str, Any]],
        principal: Principal,
    ) -> CoordinatedCase:
        return self._case_command(
            "conference",
            case_id,
            principal,
            lambda case, actor: case.hold_conference(held_on=held_on, parts=parts, actor=actor),
        )

    def end_without_conference(
        self, case_id: UUID, ending: str, reason: str | None, note: str, principal: Principal
    ) -> CoordinatedCase:
        """A stopped case frees its coordinators now; with a plan made without a meeting they
        still write it up, and are freed when it is distributed."""
        RULES["end"].check_role(principal)

        def end() -> CoordinatedCase:
            case = self.get(case_id)
            actor = RULES["end"].permit(principal, self._facts(case)).as_record()
            case.end_without_conference(
                ending=ending, reason=reason, note=note, at=self.clock.now(), actor=actor
            )
            if case.stage is not Stage.STOPPED:
                self.save(case)
                return case
            pool = self.pool()
            self._release(pool, case, case.coordinator_ids, actor)
            self.save(case, pool)
            return case

        return self._pool_command(end)

    # -- the overdue job -----------------------------------------------------------------
    def record_overdue(self) -> int:
        """Record ``FirstContactOverdue`` on every case whose deadline passed without contact
        (once per deadline); return how many were recorded now."""
        now = self.clock.now()
        recorded = 0
        for row in self.views.overdue_unrecorded(now):
            with bound_case(row["case_id"]):
                case = self.get(row["case_id"])
                if not case.record_overdue(now=now, actor=self.system):
                    continue
                try:
                    self.save(case)
                except IntegrityError:
                    continue  # changed at the same moment: the next tick looks again
                log.info("coordination.first_contact_overdue")
                recorded += 1
        return recorded

    # -- queries -------------------------------------------------------------------------
    def read(self, case_id: UUID, principal: Principal, what: str = "case") -> CoordinatedCase:
        """The case, for someone who may read it (``participants``: its participant list);
        the read is recorded."""
        rule = RULES["participants" if what == "participants" else "read"]
        rule.check_role(principal)
        case = self.get(case_id)
        facts = self._facts(case)
        self.log_read(case_id, rule.permit(principal, facts), what, facts)
        return case

    def case_facts(self, case_id: UUID) -> Facts:
        return self._facts(self.get(case_id))

    def sees_passed_over(self, case: CoordinatedCase, principal: Principal) -> bool:
        """Why the others were passed over is the regional manager's to see: it tells that a
        coordinator was not independent (never why)."""
        return RULES["passed_over"].allows(principal, self._facts(case))

    def coordinators(self, principal: Principal) -> tuple[CoordinatorPool, list[str]]:
        """The pool, and the coordinators in it the caller may see: those working in their
        region(s), or a coordinator's own entry."""
        rule = RULES["list_coordinators"]
        rule.check_role(principal)
        with self._pool_lock:
            pool = deepcopy(self.pool())  # read outside the lock, while commands change it
        seen = [
            cid
            for cid in sorted(pool.coordinators)
            if rule.allows(principal, self._coordinator_facts(pool, cid))
        ]
        return pool, seen

    def get(self, case_id: UUID) -> CoordinatedCase:
        try:
            case: CoordinatedCase = self.repository.get(case_id)
        except AggregateNotFoundError:
            raise self.missing(case_id) from None
        return case

    def pool(self) -> CoordinatorPool:
        """The pool as stored now: the one kept in memory, brought up to date. Change it only
        holding the pool lock, as the commands and policies do, and save what you change: a
        command that fails, or leaves changes unsaved, drops it (``_guarded``), and the next one
        loads it again. (Copying the pool for every command cost a millisecond and more, and
        grows with it.)"""
        with self._pool_lock:
            pool = self._current_pool()
            if pool is None:
                pool = self._pool = CoordinatorPool(id=POOL_ID)
            return pool

    def _guarded(self, command: Callable[[], T]) -> T:
        """Run a command that may change the pool kept in memory: if it fails, or leaves a
        change of it unsaved, the pool is dropped (read again from the store next time)."""
        try:
            return command()
        except BaseException:
            self._pool = None
            raise
        finally:
            if self._pool is not None and self._pool.pending_events:
                self._pool = None

    def _current_pool(self) -> CoordinatorPool | None:
        """The pool kept in memory, brought up to date (in the pool lock; not to be changed)."""
        known = self._pool
        if known is None:
            try:
                known = self.repository.get(POOL_ID)  # from its latest snapshot
            except AggregateNotFoundError:
                known = None
        newer = self.events.get(POOL_ID, gt=known.version if known else None)
        self._pool = mutate_all(known, newer)
        return self._pool

    def relations_of(self, case_id: UUID) -> list[dict[str, str]]:
        """The relations coordinators declared to the case, as the pool holds them: whether
        they were declared before coordination heard of the case or after."""
        with self._pool_lock:
            pool = self._current_pool()
            declared = pool.relations_to(case_id) if pool is not None else {}
            return [
                {"coordinator_id": coordinator_id, "kind": kind}
                for coordinator_id, kinds in sorted(declared.items())
                for kind in kinds
            ]

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _facts(case: CoordinatedCase, participant_id: str | None = None) -> Facts:
        return Facts.of_case(case.id, case.region, case.coordinator_ids, participant_id)

    @staticmethod
    def _coordinator_facts(pool: CoordinatorPool, coordinator_id: str) -> Facts:
        regions = pool.coordinators[coordinator_id]["regions"]
        return Facts(regions=tuple(regions), coordinator_ids=(coordinator_id,))

    def _needs(self, case: CoordinatedCase) -> CaseNeeds:
        earlier: list[UUID] = []
        preferred: list[str] = []
        follow_up_of = case.follow_up_of
        while follow_up_of is not None and len(earlier) < FOLLOW_UP_DEPTH:
            earlier.append(follow_up_of)
            try:
                original = self.get(follow_up_of)
            except CaseNotFoundError:
                break
            if not preferred:
                preferred = list(original.coordinator_ids)
            follow_up_of = original.follow_up_of
        return CaseNeeds(
            case_id=case.id,
            region=case.region,
            languages=case.languages,
            involved_organisations=case.involved_organisations,
            wishes=dict(case.coordinator_wishes),
            earlier_cases=earlier,
            preferred=preferred,
        )

    def _assign(
        self,
        pool: CoordinatorPool,
        case: CoordinatedCase,
        coordinator_ids: list[str],
        reason: str,
        actor: dict[str, str],
        *,
        choice: Choice | None = None,
        by_hand: bool = False,
        waiting_reason: str | None = None,
        mismatches: list[str] | None = None,
        over_capacity: list[str] | None = None,
    ) -> None:
        now = self.clock.now()
        for coordinator_id in coordinator_ids:
            pool.take(coordinator_id=coordinator_id, case_id=case.id, actor=actor)
        case.assign(
            coordinator_ids=coordinator_ids,
            reason=reason,
            at=now,
            first_contact_due=now + self.first_contact,
            actor=actor,
            by_hand=by_hand,
            waiting_reason=choice.waiting_reason if choice else waiting_reason,
            mismatches=mismatches,
            over_capacity=over_capacity,
            passed_over=choice.passed_over if choice else (),
        )

    @staticmethod
    def _release(
        pool: CoordinatorPool,
        case: CoordinatedCase,
        coordinator_ids: list[str],
        actor: dict[str, str],
    ) -> None:
        for coordinator_id in coordinator_ids:
            pool.release(coordinator_id=coordinator_id, case_id=case.id, actor=actor)

    def _pool_command(self, command: Callable[[], T]) -> T:
        with self._pool_lock:
            return _retrying(lambda: self._guarded(command))

    def _case_command(
        self,
        rule: str,
        case_id: UUID,
        principal: Principal,
        command: Callable[[CoordinatedCase, dict[str, str]], object],
        participant_id: str | None = None,
    ) -> CoordinatedCase:
        """Load, hold the caller against the rule, call, save: again if another process saved
        the case at the same moment."""
        RULES[rule].check_role(principal)

        def run() -> CoordinatedCase:
            case = self.get(case_id)
            actor = RULES[rule].permit(principal, self._facts(case, participant_id))
            command(case, actor.as_record())
            self.save(case)
            return case

        return _retrying(run)


def _retrying(command: Callable[[], T]) -> T:
    """Run a command that loads, decides and saves; again if another process saved one of its
    aggregates first (nothing was stored by the attempt that lost)."""
    for attempt in range(TRIES):
        try:
            return command()
        except IntegrityError:
            if attempt == TRIES - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
