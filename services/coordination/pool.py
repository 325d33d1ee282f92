"""The coordinator pool and how coordinators are chosen for a case. No I/O.

A coordinator (onafhankelijke Eigen Kracht-coördinator) works in one or more regions, speaks
one or more languages and takes up to ``capacity`` cases at a time. They are never assigned to a
case they are not independent for: one where an organisation they work for is involved, or one
they declared a relation to (a care worker on it, family of a party, any other stake). The
family's wishes (gender, background, culture) are requirements for an automatic choice; the
regional manager may depart from them by hand, with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from services.coordination.domain import PassedOver
from shared.errors import DomainRuleError, InvalidFieldError, NotFoundError

POOL_ID = uuid5(UUID("6f1c1a52-47a4-4c55-9d39-0c8f4f5bd0a1"), "coordinator-pool")

#: The family's wishes, and the coordinator's attribute each is matched against.
WISHES = ("gender", "background", "culture")


class RelationKind(StrEnum):
    """Why a coordinator is not independent for one case."""

    CARE_WORKER = "care_worker"  # works as a care worker on the case
    FAMILY_OF_PARTY = "family_of_party"  # family of the central person or another party
    OTHER_STAKE = "other_stake"  # any other stake in the outcome


class RelationNotes(Aggregate):
    """What coordinators wrote about their relation to one case ("my sister is the child's
    teacher"): personal data about the case's people, so under a key of its own that the case's
    erasure shreds with the case's (``CoordinationApplication.keys_of_case``). Shown nowhere;
    kept for the audit of why a coordinator stood aside. Its own aggregate, not the case's,
    because a relation may be declared before coordination has heard of the case."""

    @staticmethod
    def create_id(case_id: UUID) -> UUID:
        return uuid5(case_id, "relation-notes")

    @event("Opened")
    def __init__(self, case_id: UUID) -> None:
        self.case_id = case_id
        #: One per note: {"coordinator_id", "kind", "note"}.
        self.notes: list[dict[str, str]] = []

    @event("NoteWritten")
    def write(self, *, coordinator_id: str, kind: str, note: str, actor: dict[str, str]) -> None:
        self.notes.append({"coordinator_id": coordinator_id, "kind": kind, "note": note})


class CoordinatorNotFoundError(NotFoundError):
    def __init__(self, coordinator_id: str) -> None:
        super().__init__(f"coordinator {coordinator_id!r} is not in the pool")
        self.coordinator_id = coordinator_id


def fold(text: str) -> str:
    """Compare names of regions, languages, organisations the way people write them."""
    return " ".join(text.split()).casefold()


def folded(texts: Iterable[str]) -> set[str]:
    return {fold(t) for t in texts}


@dataclass(frozen=True)
class CaseNeeds:
    """What a case asks of its coordinators."""

    case_id: UUID
    region: str
    languages: Sequence[str] = ()
    involved_organisations: Sequence[str] = ()
    #: The family's wishes that were given: ``{"gender": "f"}``.
    wishes: dict[str, str] = field(default_factory=dict)
    #: The cases this one follows up, nearest first: a relation to one of them counts here too.
    earlier_cases: Sequence[UUID] = ()
    #: Who coordinated the case this one follows up: preferred where they fit.
    preferred: Sequence[str] = ()


@dataclass(frozen=True)
class Choice:
    """The coordinators chosen, why each, why the case (still) waits, if it does, and why each
    other coordinator of the region was passed over."""

    chosen: list[str]
    reasons: dict[str, str]
    waiting_reason: str | None
    passed_over: list[PassedOver] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(f"{c}: {self.reasons[c]}" for c in self.chosen)


@dataclass(frozen=True)
class HandAssignment:
    """A regional manager's assignment by hand, as the pool and the case allow it: the new
    set, who it releases, and what it departs from (written down with the assignment)."""

    coordinator_ids: list[str]
    released: list[str]
    over_capacity: list[str]
    mismatches: list[str]
    waiting_reason: str | None


class CoordinatorPool(Aggregate):
    """All coordinators: what they offer, whether they are available, the cases each holds, and
    the relations that make them not independent for a case. One aggregate, so that a choice
    and the load it adds are one decision."""

    @event("Opened")
    def __init__(self, id: UUID) -> None:
        #: coordinator id -> regions, languages, capacity, organisations, gender, backgrounds,
        #: cultures, available, unavailable_until
        self.coordinators: dict[str, dict[str, Any]] = {}
        #: coordinator id -> the cases they hold now
        self.holds: dict[str, list[UUID]] = {}
        #: case id -> coordinator id -> the kinds of relation declared
        self.relations: dict[UUID, dict[str, list[str]]] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> CoordinatorPool:
        """Containers copied, values shared: every value in the pool is immutable (text,
        numbers, dates, UUIDs), and copying thousands of UUIDs one by one is slow."""
        clone = object.__new__(type(self))
        clone.__dict__.update({k: _copied(v) for k, v in self.__dict__.items()})
        return clone

    # -- the pool ------------------------------------------------------------------------
    @event("CoordinatorRegistered")
    def register(
        self,
        *,
        coordinator_id: str,
        regions: list[str],
        languages: list[str],
        capacity: int,
        actor: dict[str, str],
        # None: keep what an existing coordinator had (a new one gets the default). Defaults:
        # absent in events stored before these fields existed.
        organisations: list[str] | None = None,
        gender: str | None = None,
        backgrounds: list[str] | None = None,
        cultures: list[str] | None = None,
        available: bool | None = None,
        keep_gender: bool = True,
    ) -> None:
        known = self.coordinators.get(coordinator_id)
        details: dict[str, Any] = dict(known) if known else _new_coordinator()
        details |= {"regions": regions, "languages": languages, "capacity": capacity}
        if organisations is not None:
            details["organisations"] = organisations
        if backgrounds is not None:
            details["backgrounds"] = backgrounds
        if cultures is not None:
            details["cultures"] = cultures
        if gender is not None or not keep_gender:
            details["gender"] = gender
        if available is not None:
            details["available"], details["unavailable_until"] = available, None
        self.coordinators[coordinator_id] = details
        self.holds.setdefault(coordinator_id, [])

    def set_availability(
        self,
        *,
        coordinator_id: str,
        available: bool,
        until: date | None,
        today: date,
        actor: dict[str, str],
    ) -> None:
        """Available, or unavailable until a date (available again on it) or until further
        notice. The cases they hold stay theirs; the regional manager reassigns if needed."""
        self.check_known(coordinator_id)
        if until is not None and available:
            raise InvalidFieldError(("until",), "a date is only given with available: false")
        if until is not None and until <= today:
            raise InvalidFieldError(("until",), f"must be after today ({today.isoformat()})")
        self._availability_set(
            coordinator_id=coordinator_id, available=available, until=until, actor=actor
        )

    @event("AvailabilitySet")
    def _availability_set(
        self, *, coordinator_id: str, available: bool, until: date | None, actor: dict[str, str]
    ) -> None:
        self.coordinators[coordinator_id] |= {"available": available, "unavailable_until": until}

    def declare_relation(
        self, *, coordinator_id: str, case_id: UUID, kind: str, actor: dict[str, str]
    ) -> None:
        """Record that a coordinator is not independent for a case. What they wrote about it is
        kept with the case (``RelationNotes``), never in the pool: it goes when the case does."""
        self.check_known(coordinator_id)
        self._relation_declared(
            coordinator_id=coordinator_id, case_id=case_id, kind=kind, actor=actor
        )

    @event("RelationDeclared")
    def _relation_declared(
        self, *, coordinator_id: str, case_id: UUID, kind: str, actor: dict[str, str]
    ) -> None:
        kinds = self.relations.setdefault(case_id, {}).setdefault(coordinator_id, [])
        if kind not in kinds:
            kinds.append(kind)

    # -- load ----------------------------------------------------------------------------
    def take(self, *, coordinator_id: str, case_id: UUID, actor: dict[str, str]) -> None:
        if case_id not in self.holds.get(coordinator_id, []):
            self._taken(coordinator_id=coordinator_id, case_id=case_id, actor=actor)

    def release(self, *, coordinator_id: str, case_id: UUID, actor: dict[str, str]) -> None:
        if case_id in self.holds.get(coordinator_id, []):
            self._released(coordinator_id=coordinator_id, case_id=case_id, actor=actor)

    @event("CaseTaken")
    def _taken(self, *, coordinator_id: str, case_id: UUID, actor: dict[str, str]) -> None:
        holds = self.holds.setdefault(coordinator_id, [])
        if case_id not in holds:
            holds.append(case_id)

    @event("CaseReleased")
    def _released(self, *, coordinator_id: str, case_id: UUID, actor: dict[str, str]) -> None:
        holds = self.holds.setdefault(coordinator_id, [])
        if case_id in holds:
            holds.remove(case_id)

    @property
    def load(self) -> dict[str, int]:
        """How many open cases each coordinator holds."""
        return {c: len(cases) for c, cases in self.holds.items()}

    def load_of(self, coordinator_id: str) -> int:
        return len(self.holds.get(coordinator_id, []))

    # -- facts about one coordinator -------------------------------------------------------
    def check_known(self, coordinator_id: str) -> None:
        if coordinator_id not in self.coordinators:
            raise CoordinatorNotFoundError(coordinator_id)

    def is_available(self, coordinator_id: str, today: date) -> bool:
        details = self.coordinators[coordinator_id]
        if details["available"]:
            return True
        until: date | None = details["unavailable_until"]
        return until is not None and today >= until

    def unavailable_until(self, coordinator_id: str, today: date) -> date | None:
        if self.is_available(coordinator_id, today):
            return None
        until: date | None = self.coordinators[coordinator_id]["unavailable_until"]
        return until

    def unavailability(self, coordinator_id: str, today: date) -> str | None:
        if self.is_available(coordinator_id, today):
            return None
        until = self.unavailable_until(coordinator_id, today)
        when = f" until {until.isoformat()}" if until else " until further notice"
        return f"{coordinator_id} is unavailable{when}"

    def has_room(self, coordinator_id: str) -> bool:
        capacity: int = self.coordinators[coordinator_id]["capacity"]
        return self.load_of(coordinator_id) < capacity

    def relations_to(self, case_id: UUID) -> dict[str, list[str]]:
        return self.relations.get(case_id, {})

    def independence_problem(self, coordinator_id: str, needs: CaseNeeds) -> str | None:
        """Why the coordinator is not independent for the case, or None if they are."""
        works_for = self.coordinators[coordinator_id]["organisations"]
        involved = folded(needs.involved_organisations)
        clash = sorted(o for o in works_for if fold(o) in involved)
        if clash:
            return f"works for {', '.join(clash)}, involved in this case"
        kinds = self.relations_to(needs.case_id).get(coordinator_id)
        if kinds:
            return f"declared a relation to this case ({', '.join(kinds)})"
        for earlier in needs.earlier_cases:
            kinds = self.relations_to(earlier).get(coordinator_id)
            if kinds:
                return (
                    f"declared a relation ({', '.join(kinds)}) to case {earlier}, which this"
                    " case follows up"
                )
        return None

    def assignable_problem(self, coordinator_id: str, needs: CaseNeeds, today: date) -> str | None:
        """Why the coordinator may not take the case at all, chosen or by hand: not independent
        of it, or unavailable. None if they may."""
        problem = self.independence_problem(coordinator_id, needs)
        if problem:
            return f"{coordinator_id} is not independent for this case: {problem}"
        return self.unavailability(coordinator_id, today)

    def check_assignable(
        self, coordinator_ids: Sequence[str], needs: CaseNeeds, today: date
    ) -> None:
        """Where the case and the pool meet: every one named is in the pool, named once,
        independent of the case and available. The automatic choice, an assignment by hand and
        a re-registration (for the cases a coordinator holds) all ask this."""
        for i, cid in enumerate(coordinator_ids):
            if cid in coordinator_ids[:i]:
                raise InvalidFieldError(("coordinator_ids", i), f"{cid} is named twice")
            if cid not in self.coordinators:
                raise InvalidFieldError(("coordinator_ids", i), f"{cid!r} is not in the pool")
            problem = self.assignable_problem(cid, needs, today)
            if problem:
                raise DomainRuleError(problem)

    def check_hand_assignment(
        self,
        coordinator_ids: Sequence[str],
        needs: CaseNeeds,
        *,
        current: Sequence[str],
        coordinators_needed: int,
        today: date,
    ) -> HandAssignment:
        """Where an assignment by hand meets the pool and the case. Refused: anyone not
        assignable (``check_assignable``), more coordinators than the case needs, the set it
        has already. Allowed and written down: over capacity, outside the region or language,
        not matching the family's wishes."""
        ids = list(coordinator_ids)
        self.check_assignable(ids, needs, today)
        if len(ids) > coordinators_needed:
            raise DomainRuleError(
                "this case is prepared by one coordinator: two are for a group conference"
                " whose clarification asked for two"
            )
        if sorted(ids) == sorted(current):
            raise DomainRuleError(f"{', '.join(ids)} already coordinate this case")
        new = [c for c in ids if c not in current]
        return HandAssignment(
            coordinator_ids=ids,
            released=[c for c in current if c not in ids],
            over_capacity=[c for c in new if not self.has_room(c)],
            mismatches=[m for c in ids for m in self.mismatches(c, needs)],
            waiting_reason=(
                "a second coordinator is needed: the regional manager assigned one"
                if len(ids) < coordinators_needed
                else None
            ),
        )

    def works_in(self, coordinator_id: str, region: str) -> bool:
        return fold(region) in folded(self.coordinators[coordinator_id]["regions"])

    def speaks(self, coordinator_id: str, languages: Sequence[str]) -> list[str]:
        """The case's languages the coordinator speaks (all of them if the case names none)."""
        theirs = folded(self.coordinators[coordinator_id]["languages"])
        if not languages:
            return list(self.coordinators[coordinator_id]["languages"][:1])
        return [language for language in languages if fold(language) in theirs]

    def meets_wish(self, coordinator_id: str, wish: str, value: str) -> bool:
        details = self.coordinators[coordinator_id]
        if wish == "gender":
            gender: str | None = details["gender"]
            return gender is not None and fold(gender) == fold(value)
        return fold(value) in folded(details[f"{wish}s"])

    def mismatches(self, coordinator_id: str, needs: CaseNeeds) -> list[str]:
        """What of the case's needs the coordinator does not meet (region, language, wishes):
        recorded when the regional manager assigns them all the same."""
        found = []
        if not self.works_in(coordinator_id, needs.region):
            found.append(f"{coordinator_id} does not work in {needs.region}")
        if not self.speaks(coordinator_id, needs.languages):
            found.append(f"{coordinator_id} does not speak {', '.join(needs.languages)}")
        for wish, value in needs.wishes.items():
            if not self.meets_wish(coordinator_id, wish, value):
                found.append(f"{coordinator_id} does not match the wish {wish}={value}")
        return found

    # -- the choice ------------------------------------------------------------------------
    def choose(
        self, needs: CaseNeeds, count: int, today: date, exclude: Sequence[str] = ()
    ) -> Choice:
        """Up to ``count`` coordinators for the case: in its region, speaking one of its
        languages, independent, matching every wish given, available and with room; whoever
        coordinated the case this one follows up first, then the least loaded. If fewer than
        ``count`` fit, the waiting reason names the first requirement nobody (else) met."""
        fitting, why = self._fitting(needs, today, exclude)
        ranked = sorted(fitting, key=lambda c: (c not in needs.preferred, self.load_of(c), c))
        chosen = ranked[:count]
        self.check_assignable(chosen, needs, today)
        reasons = {c: self._why_chosen(c, needs, fitting) for c in chosen}
        waiting_reason = None
        if len(chosen) < count:
            _, why_not = self._fitting(needs, today, [*exclude, *chosen])
            if chosen:
                waiting_reason = f"a second coordinator is needed: {why_not}"
            else:
                waiting_reason = why or why_not
        return Choice(
            chosen=chosen,
            reasons=reasons,
            waiting_reason=waiting_reason,
            passed_over=self.passed_over(needs, today, [*exclude, *chosen]),
        )

    def passed_over(self, needs: CaseNeeds, today: date, taken: Sequence[str]) -> list[PassedOver]:
        """Every coordinator of the case's region not taken, with the first requirement they
        did not meet, in the order the choice asks them; ``ranked_lower`` for one who met
        them all but came after those taken (continuity, then load)."""
        return [
            PassedOver(
                coordinator_id=c, requirement=self.first_unmet(c, needs, today) or "ranked_lower"
            )
            for c in sorted(self.coordinators)
            if c not in taken and self.works_in(c, needs.region)
        ]

    def first_unmet(self, coordinator_id: str, needs: CaseNeeds, today: date) -> str | None:
        if not self.speaks(coordinator_id, needs.languages):
            return "language"
        if self.independence_problem(coordinator_id, needs) is not None:
            return "independence"
        for wish, value in needs.wishes.items():
            if not self.meets_wish(coordinator_id, wish, value):
                return f"wish:{wish}"
        if not self.is_available(coordinator_id, today):
            return "availability"
        if not self.has_room(coordinator_id):
            return "room"
        return None

    def _fitting(
        self, needs: CaseNeeds, today: date, exclude: Sequence[str]
    ) -> tuple[list[str], str | None]:
        """Everyone who fits, or nobody and the first requirement nobody met."""
        other = "other " if exclude else ""
        region = needs.region
        spoken = " or ".join(needs.languages)
        speaking = f" who speaks {spoken}" if needs.languages else ""
        steps: list[tuple[Callable[[str], bool], str]] = [
            (lambda c: self.works_in(c, region), f"no {other}coordinator works in region {region}"),
            (
                lambda c: bool(self.speaks(c, needs.languages)),
                f"no {other}coordinator in {region} speaks {spoken}",
            ),
            (
                lambda c: self.independence_problem(c, needs) is None,
                f"no {other}coordinator in {region}{speaking} is independent of this case",
            ),
        ]
        for wish, value in needs.wishes.items():
            steps.append(
                (
                    self._wish_test(wish, value),
                    f"no {other}independent coordinator in {region}{speaking} matches the"
                    f" family's wish {wish}={value}",
                )
            )
        steps += [
            (
                lambda c: self.is_available(c, today),
                f"every {other}coordinator who fits is unavailable",
            ),
            (self.has_room, f"every {other}coordinator who fits is at capacity"),
        ]
        candidates = [c for c in sorted(self.coordinators) if c not in exclude]
        for keep, why in steps:
            candidates = [c for c in candidates if keep(c)]
            if not candidates:
                return [], why
        return candidates, None

    def _wish_test(self, wish: str, value: str) -> Callable[[str], bool]:
        return lambda c: self.meets_wish(c, wish, value)

    def _why_chosen(self, coordinator_id: str, needs: CaseNeeds, fitting: list[str]) -> str:
        load = self.load_of(coordinator_id)
        capacity = self.coordinators[coordinator_id]["capacity"]
        parts = [f"works in {needs.region}"]
        spoken = self.speaks(coordinator_id, needs.languages)
        if spoken:
            parts.append(f"speaks {', '.join(spoken)}")
        parts += [f"matches wish {w}={v}" for w, v in needs.wishes.items()]
        parts.append("independent (no involved organisation, no declared relation)")
        parts.append("available")
        if coordinator_id in needs.preferred:
            parts.append("coordinated the case this one follows up")
        cases = f"{load} open case{'' if load == 1 else 's'} of {capacity}"
        least = load <= min(self.load_of(c) for c in fitting)
        parts.append(f"{cases}, least loaded" if least else cases)
        return "; ".join(parts)


def _copied(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


def _new_coordinator() -> dict[str, Any]:
    return {
        "organisations": [],
        "gender": None,
        "backgrounds": [],
        "cultures": [],
        "available": True,
        "unavailable_until": None,
    }
