"""The coordinator pool and the coordinated case. No I/O.

An independent coordinator (onafhankelijke Eigen Kracht-coördinator) is assigned from the pool:
in the case's region, speaking one of its languages, with room, least loaded first. Nobody fits:
the case waits, saying why, until the regional manager assigns by hand.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from shared.http import DomainRuleError

POOL_ID = uuid5(UUID("6f1c1a52-47a4-4c55-9d39-0c8f4f5bd0a1"), "coordinator-pool")


class Stage(StrEnum):
    WAITING = "waiting_for_coordinator"
    ASSIGNED = "coordinator_assigned"
    CONFERENCE_HELD = "conference_held"
    STOPPED = "stopped"
    PLAN_WITHOUT_MEETING = "plan_without_meeting"


ENDED = frozenset({Stage.CONFERENCE_HELD, Stage.STOPPED, Stage.PLAN_WITHOUT_MEETING})


PROFESSIONAL_ROLES = frozenset({"professional", "expert"})
COORDINATOR_CHAIRED = frozenset({"group", "restorative", "learning_circle"})


def check_conference_rules(
    model: str, parts: list[str], attendance: dict[str, dict[str, int]]
) -> None:
    """The three parts as each model holds them (DESIGN.md section 2, seeds 001 and 002).

    ``family``: part two is private family time (besloten deel): no professional, expert or
    coordinator present. ``group``, ``restorative`` and ``learning_circle``: the coordinator
    chairs part two (gespreksleider), so must be present; professionals may stay throughout.
    """
    unknown = sorted(set(attendance) - set(parts))
    if unknown:
        raise DomainRuleError(f"attendance given for parts that did not take place: {unknown}")
    present = {role for role, count in attendance.get("plan_making", {}).items() if count > 0}
    if model == "family" and "plan_making" in parts:
        outsiders = sorted(present & (PROFESSIONAL_ROLES | {"coordinator"}))
        if outsiders:
            raise DomainRuleError(
                "private family time is for the family and their network only; "
                f"not present may be: {', '.join(outsiders)}"
            )
    if model in COORDINATOR_CHAIRED and "plan_making" in parts and "coordinator" not in present:
        raise DomainRuleError(
            f"in a {model} conference the coordinator chairs part two: record the coordinator"
            " as present in plan_making"
        )


class CoordinatorPool(Aggregate):
    """All coordinators and how many open cases each carries."""

    @event("Opened")
    def __init__(self, id: UUID) -> None:
        self.coordinators: dict[str, dict[str, Any]] = {}
        self.load: dict[str, int] = {}

    @event("CoordinatorRegistered")
    def register(
        self,
        *,
        coordinator_id: str,
        regions: list[str],
        languages: list[str],
        capacity: int,
        actor: dict[str, str],
    ) -> None:
        self.coordinators[coordinator_id] = {
            "regions": regions,
            "languages": languages,
            "capacity": capacity,
        }
        self.load.setdefault(coordinator_id, 0)

    def choose(self, region: str, languages: list[str]) -> tuple[str | None, str]:
        """The coordinator to assign and why, or None and why nobody fits."""
        in_region = [c for c, d in self.coordinators.items() if region in d["regions"]]
        if not in_region:
            return None, f"no coordinator works in region {region}"
        speaking = [
            c
            for c in in_region
            if not languages or set(languages) & set(self.coordinators[c]["languages"])
        ]
        if not speaking:
            return None, f"no coordinator in {region} speaks {', '.join(languages)}"
        with_room = [c for c in speaking if self.load[c] < self.coordinators[c]["capacity"]]
        if not with_room:
            return None, f"every coordinator in {region} who speaks the language is at capacity"
        chosen = min(with_room, key=lambda c: (self.load[c], c))
        return chosen, (
            f"works in {region}, speaks a needed language, "
            f"least loaded ({self.load[chosen]} open cases)"
        )

    def check_known(self, coordinator_id: str) -> None:
        if coordinator_id not in self.coordinators:
            raise DomainRuleError(f"coordinator {coordinator_id} is not in the pool")

    @event("CaseTaken")
    def take(self, *, coordinator_id: str, case_id: UUID, actor: dict[str, str]) -> None:
        self.load[coordinator_id] = self.load.get(coordinator_id, 0) + 1

    @event("CaseReleased")
    def release(self, *, coordinator_id: str, case_id: UUID, actor: dict[str, str]) -> None:
        self.load[coordinator_id] = max(0, self.load.get(coordinator_id, 0) - 1)


class CoordinatedCase(Aggregate):
    """A case as coordination sees it: from an accepted request to the conference held."""

    @event("Received")
    def __init__(
        self,
        id: UUID,
        *,
        model: str,
        region: str,
        languages: list[str],
        accepted_at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.model = model
        self.region = region
        self.languages = languages
        self.accepted_at = accepted_at
        self.stage = Stage.WAITING
        self.coordinator_ids: list[str] = []
        self.waiting_reason: str | None = None
        self.first_contact_due: datetime | None = None
        self.contacted_at: datetime | None = None
        self.held_on: date | None = None
        self.stop_reason: str | None = None

    @event("WaitingForCoordinator")
    def wait(self, *, reason: str, actor: dict[str, str]) -> None:
        self.waiting_reason = reason

    def assign(
        self,
        *,
        coordinator_ids: list[str],
        reason: str,
        at: datetime,
        first_contact_due: datetime,
        actor: dict[str, str],
    ) -> None:
        if self.stage in ENDED:
            raise DomainRuleError(
                f"the case has ended ({self.stage.value}); the coordinator can no longer change"
            )
        self._assigned(
            coordinator_ids=coordinator_ids,
            reason=reason,
            at=at,
            first_contact_due=first_contact_due,
            model=self.model,
            actor=actor,
        )

    @event("CoordinatorAssigned")
    def _assigned(
        self,
        *,
        coordinator_ids: list[str],
        reason: str,
        at: datetime,
        first_contact_due: datetime,
        model: str,
        actor: dict[str, str],
    ) -> None:
        self.coordinator_ids = coordinator_ids
        self.first_contact_due = first_contact_due
        self.waiting_reason = None
        self.stage = Stage.ASSIGNED

    def record_contact(self, *, at: datetime, actor: dict[str, str]) -> None:
        """The coordinator's first contact with the central person."""
        if self.stage is not Stage.ASSIGNED:
            raise DomainRuleError("first contact is recorded once a coordinator is assigned")
        if self.contacted_at is not None:
            raise DomainRuleError("the first contact was already recorded")
        self._contacted(at=at, actor=actor)

    @event("FirstContactMade")
    def _contacted(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.contacted_at = at

    def is_overdue(self, now: datetime) -> bool:
        """Assigned, not yet in contact, and past the deadline for first contact."""
        return (
            self.stage is Stage.ASSIGNED
            and self.contacted_at is None
            and self.first_contact_due is not None
            and now > self.first_contact_due
        )

    def end_without_conference(
        self, *, ending: str, reason: str | None, note: str, at: datetime, actor: dict[str, str]
    ) -> None:
        """Stopped during preparation (with a reason from the kept list), or a plan made
        without a meeting (which needs a coordinator)."""
        self.check_not_ended()
        if ending == Stage.STOPPED.value and reason is None:
            raise DomainRuleError("a stopped case needs a reason from the list")
        if ending == Stage.PLAN_WITHOUT_MEETING.value and self.stage is not Stage.ASSIGNED:
            raise DomainRuleError("a plan without a meeting needs an assigned coordinator")
        self._ended(ending=ending, reason=reason, note=note, at=at, model=self.model, actor=actor)

    @event("EndedWithoutConference")
    def _ended(
        self,
        *,
        ending: str,
        reason: str | None,
        note: str,
        at: datetime,
        model: str,
        actor: dict[str, str],
    ) -> None:
        self.stage = Stage(ending)
        self.stop_reason = reason

    def check_not_ended(self) -> None:
        if self.stage in ENDED:
            raise DomainRuleError(f"the case has ended ({self.stage.value})")

    def hold_conference(
        self,
        *,
        held_on: date,
        parts: list[str],
        attendance: dict[str, dict[str, int]],
        actor: dict[str, str],
    ) -> None:
        if self.stage is Stage.CONFERENCE_HELD:
            raise DomainRuleError("the conference was already recorded as held")
        self.check_not_ended()
        if self.stage is Stage.WAITING:
            raise DomainRuleError("a conference needs an assigned coordinator first")
        check_conference_rules(self.model, parts, attendance)
        self._held(
            held_on=held_on, parts=parts, attendance=attendance, model=self.model, actor=actor
        )

    @event("ConferenceHeld")
    def _held(
        self,
        *,
        held_on: date,
        parts: list[str],
        attendance: dict[str, dict[str, int]],
        model: str,
        actor: dict[str, str],
    ) -> None:
        self.held_on = held_on
        self.stage = Stage.CONFERENCE_HELD
