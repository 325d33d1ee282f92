"""The request (aanvraag) and its rules. No I/O.

Anyone may request a conference. The regional manager (regiomanager) clarifies it: one or more
conference questions (conferentievragen), the funding (financiering) and, where safety is at
stake, minimum requirements for a safe plan (minimumeisen), each set by a professional. A
clarified request is accepted for a conference, or the request is withdrawn. Acceptance is what
the rest of Kring hears about; a withdrawal after acceptance too.

A follow-up conference (vervolgconferentie) is a new request, linked both ways to the case it
follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from pydantic import Field

from shared.claims import (
    ClarificationForPlan,
    ProfessionalForPlan,
    QuestionForPlan,
    RequirementForPlan,
)
from shared.errors import DomainRuleError, InvalidFieldError
from shared.values import Value

#: Models in which the regional manager may ask for two coordinators (the leaflet on group
#: conferences: a group or neighbourhood conference is often prepared by two).
TWO_COORDINATOR_MODELS = frozenset({"group"})


class Stage(StrEnum):
    SUBMITTED = "submitted"
    CLARIFIED = "clarified"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"


class TalkOutcome(StrEnum):
    """What came of an informational talk (informatief gesprek)."""

    GO_AHEAD = "go_ahead"  # the family wants the conference
    THINK_IT_OVER = "think_it_over"  # they take time to decide: acceptance waits
    NO = "no"  # they do not want one: the request ends here


class InformationalTalk(Value):
    """An informational talk held before anyone commits: when, by whom (the name of the one
    who held it, a regional manager or a colleague), and what came of it."""

    stored_as = "intake.informational_talk"

    held_on: date
    held_by: str = Field(min_length=1, max_length=200)
    outcome: TalkOutcome
    #: The subject who recorded it.
    recorded_by: str


class Funding(Value):
    """Who pays for the conference (financiering), and how far that is settled."""

    stored_as = "intake.funding"

    payer: str
    organisation: str | None = None
    status: str = "requested"


class Professional(Value):
    """The professional who set a minimum requirement. ``subject`` is who they sign in as (their
    token's subject at the issuer): the plan's sign-off against the requirement is theirs."""

    stored_as = "intake.professional"

    name: str
    organisation: str
    role: str
    subject: str | None = None


class MinimumRequirement(Value):
    """A condition every safe plan must meet (minimumeis), set by a professional, on the table
    for everyone."""

    stored_as = "intake.minimum_requirement"

    requirement: str
    set_by: Professional


#: The reason a request ends when the family says no after the informational talk.
NO_AFTER_TALK = "after the informational talk the family chose not to go ahead"


class Request(Aggregate):
    """A request for a conference (aanvraag). Its id is the case id across Kring.

    Create one with ``Request.submit``: eventsourcing insists on every ``__init__`` argument at
    creation, while the defaults below are what events stored before a field existed replay with.
    """

    @classmethod
    def submit(
        cls,
        id: UUID,
        *,
        central_group: str | None = None,
        coordinator_wishes: dict[str, Any] | None = None,
        follow_up_of: UUID | None = None,
        informational_talk: bool = False,
        **request: Any,
    ) -> Request:
        return cls(
            id=id,
            informational_talk=informational_talk,
            central_group=central_group,
            coordinator_wishes=coordinator_wishes,
            follow_up_of=follow_up_of,
            **request,
        )

    @event("Submitted")
    def __init__(
        self,
        id: UUID,
        *,
        requester: dict[str, Any],
        central_persons: list[str],
        model: str,
        central_group: str | None = None,
        coordinator_wishes: dict[str, Any] | None = None,
        follow_up_of: UUID | None = None,
        region: str,
        languages: list[str],
        description: str,
        informational_talk: bool,
        submitted_at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.requester = requester
        self.central_persons = central_persons
        self.central_group = central_group
        self.coordinator_wishes = coordinator_wishes
        self.follow_up_of = follow_up_of
        self.follow_ups: list[UUID] = []
        self.coordinators_needed = 1
        self.involved_organisations: list[str] = []
        self.model = model
        self.region = region
        self.languages = languages
        self.description = description
        self.informational_talk = informational_talk
        self.submitted_at = submitted_at
        #: Who submitted it (the token's subject): they may withdraw it again.
        self.submitted_by: str | None = actor.get("id") if actor.get("role") != "system" else None
        self.accepted_at: datetime | None = None
        self.withdrawal_reason: str | None = None
        self.conference_questions: list[str] = []
        self.funding: Funding | None = None
        self.minimum_requirements: list[MinimumRequirement] = []
        self.talks: list[InformationalTalk] = []
        self.stage = Stage.SUBMITTED

    def clarify(
        self,
        *,
        conference_questions: list[str],
        funding: Funding | Mapping[str, Any],
        minimum_requirements: Sequence[MinimumRequirement | Mapping[str, Any]],
        actor: dict[str, str],
        coordinators_needed: int = 1,
        involved_organisations: list[str] | None = None,
        coordinator_wishes: dict[str, Any] | None = None,
    ) -> None:
        """Record (or revise, until acceptance) the regional manager's clarification."""
        self.check_is_open("clarified")
        if not conference_questions:
            raise DomainRuleError("a clarification needs at least one conference question")
        self.check_coordinators_needed(coordinators_needed)
        self._clarified(
            conference_questions=conference_questions,
            funding=Funding.model_validate(funding),
            minimum_requirements=[
                MinimumRequirement.model_validate(m) for m in minimum_requirements
            ],
            actor=actor,
            coordinators_needed=coordinators_needed,
            involved_organisations=involved_organisations or [],
            coordinator_wishes=coordinator_wishes or self.coordinator_wishes,
        )

    def check_coordinators_needed(self, wanted: int) -> None:
        if wanted == 2 and self.model not in TWO_COORDINATOR_MODELS:
            raise DomainRuleError(
                f"two coordinators are for a group conference, not for the {self.model} model"
            )

    class Clarified(Aggregate.Event):
        """Version 2 keeps the funding and the minimum requirements as values (a requirement's
        professional may name who they sign in as); version 1 kept plain dicts, and lacked
        the fields added since (two coordinators, organisations, wishes)."""

        class_version = 2

        conference_questions: list[str]
        funding: Funding
        minimum_requirements: list[MinimumRequirement]
        actor: dict[str, str]
        coordinators_needed: int
        involved_organisations: list[str]
        coordinator_wishes: dict[str, Any] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["funding"] = Funding.model_validate(state["funding"])
            state["minimum_requirements"] = [
                MinimumRequirement.model_validate(m) for m in state["minimum_requirements"]
            ]
            state.setdefault("coordinators_needed", 1)
            state["involved_organisations"] = state.get("involved_organisations") or []
            state.setdefault("coordinator_wishes", None)

    @event(Clarified)
    def _clarified(
        self,
        *,
        conference_questions: list[str],
        funding: Funding,
        minimum_requirements: list[MinimumRequirement],
        actor: dict[str, str],
        coordinators_needed: int,
        involved_organisations: list[str],
        coordinator_wishes: dict[str, Any] | None,
    ) -> None:
        self.conference_questions = conference_questions
        self.funding = funding
        self.minimum_requirements = minimum_requirements
        self.coordinators_needed = coordinators_needed
        self.involved_organisations = involved_organisations
        self.coordinator_wishes = coordinator_wishes
        self.stage = Stage.CLARIFIED

    # -- the informational talk ------------------------------------------------------------
    def record_talk(
        self,
        *,
        held_on: date,
        held_by: str,
        outcome: TalkOutcome,
        at: datetime,
        today: date,
        actor: dict[str, str],
    ) -> None:
        """An informational talk was held (the leaflet on requesting a conference: one may
        be asked for first). Until the request is accepted; again after one where the family
        took time to think it over. A "no" ends the request (withdrawn, with that reason):
        nobody is pressed."""
        self.check_is_open("given an informational talk")
        if held_on > today:
            raise InvalidFieldError(("held_on",), f"must not be after today ({today.isoformat()})")
        if self.talks and held_on < self.talks[-1].held_on:
            raise InvalidFieldError(
                ("held_on",),
                f"must not be before the last talk recorded ({self.talks[-1].held_on.isoformat()})",
            )
        talk = InformationalTalk(
            held_on=held_on, held_by=held_by, outcome=outcome, recorded_by=actor["id"]
        )
        self._talk_held(talk=talk, actor=actor)
        if outcome is TalkOutcome.NO:
            self._withdrawn(
                reason=NO_AFTER_TALK,
                at=at,
                actor=actor,
                was_accepted=False,
                model=self.model,
                region=self.region,
                stage=self.stage.value,
            )

    @event("InformationalTalkHeld")
    def _talk_held(self, *, talk: InformationalTalk, actor: dict[str, str]) -> None:
        self.talks.append(talk)

    @property
    def waits_for_talk(self) -> bool:
        try:
            self.check_talk_settled()
        except DomainRuleError:
            return self.stage in (Stage.SUBMITTED, Stage.CLARIFIED)
        return False

    def check_talk_settled(self) -> None:
        """Acceptance waits for the informational talk where one was asked for, and while the
        family is thinking it over after one."""
        last = self.talks[-1] if self.talks else None
        if last is not None and last.outcome is TalkOutcome.THINK_IT_OVER:
            raise DomainRuleError(
                f"after the informational talk of {last.held_on.isoformat()} the family is"
                " thinking it over: record the next talk once they decide"
            )
        if self.informational_talk and last is None:
            raise DomainRuleError(
                "an informational talk was asked for: record it (and that the family wants to go"
                " ahead) before accepting"
            )

    def accept(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.check_is_open("accepted")
        if self.stage is not Stage.CLARIFIED:
            raise DomainRuleError(
                "a request is accepted once it is clarified: record the conference question(s)"
                " and funding first"
            )
        self.check_talk_settled()
        self._accepted(
            at=at,
            actor=actor,
            model=self.model,
            region=self.region,
            languages=self.languages,
            informational_talk=self.informational_talk,
            submitted_at=self.submitted_at,
            has_minimum_requirements=bool(self.minimum_requirements),
            coordinators_needed=self.coordinators_needed,
            coordinator_wishes=self.coordinator_wishes,
            involved_organisations=self.involved_organisations,
            follow_up_of=self.follow_up_of,
        )

    class Accepted(Aggregate.Event):
        """Carries what coordination needs, so the relay translates it alone. Version 2
        declares every field; version 1 events lack those added one by one since (whether a
        minimum requirement was set, two coordinators, wishes, organisations, the case followed
        up), which read as their defaults."""

        class_version = 2

        at: datetime
        actor: dict[str, str]
        model: str
        region: str
        languages: list[str]
        informational_talk: bool
        submitted_at: datetime
        has_minimum_requirements: bool
        coordinators_needed: int
        coordinator_wishes: dict[str, Any] | None
        involved_organisations: list[str]
        follow_up_of: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("has_minimum_requirements", False)
            state.setdefault("coordinators_needed", 1)
            state.setdefault("coordinator_wishes", None)
            state["involved_organisations"] = state.get("involved_organisations") or []
            state.setdefault("follow_up_of", None)

    @event(Accepted)
    def _accepted(
        self,
        *,
        at: datetime,
        actor: dict[str, str],
        model: str,
        region: str,
        languages: list[str],
        informational_talk: bool,
        submitted_at: datetime,
        has_minimum_requirements: bool,
        coordinators_needed: int,
        coordinator_wishes: dict[str, Any] | None,
        involved_organisations: list[str],
        follow_up_of: UUID | None,
    ) -> None:
        # The event carries what coordination needs, so the relay can translate it alone.
        self.accepted_at = at
        self.stage = Stage.ACCEPTED

    def withdraw(self, *, reason: str, at: datetime, actor: dict[str, str]) -> None:
        """Withdraw the request, before or after acceptance. After acceptance coordination
        hears of it and stops the preparation; once a conference was held it changes nothing
        there (the plan belongs to the family), which is coordination's rule, not intake's."""
        if self.stage is Stage.WITHDRAWN:
            raise DomainRuleError("the request is already withdrawn")
        self._withdrawn(
            reason=reason,
            at=at,
            actor=actor,
            was_accepted=self.stage is Stage.ACCEPTED,
            model=self.model,
            region=self.region,
            stage=self.stage.value,
        )

    class Withdrawn(Aggregate.Event):
        """Model, region and the stage it was withdrawn at ride along, so the relay can
        translate the event alone (analysts count withdrawals before acceptance by them).

        Version 1 is the undeclared event, whose earliest form had neither ``was_accepted`` nor
        ``model``. Two releases wrote a version 2: one declared version 1's fields only, the
        other added ``region`` and ``stage``; version 3 is the latter, and its upcaster reads
        either form of version 2."""

        class_version = 3
        reason: str
        at: datetime
        actor: dict[str, str]
        was_accepted: bool
        model: str | None
        region: str | None
        stage: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state.setdefault("was_accepted", False)
            state.setdefault("model", None)

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            # A version 2 that already carries region and stage keeps them as written.
            if "stage" not in state:
                state["region"] = None
                state["stage"] = Stage.ACCEPTED.value if state["was_accepted"] else None

    @event(Withdrawn)
    def _withdrawn(
        self,
        *,
        reason: str,
        at: datetime,
        actor: dict[str, str],
        was_accepted: bool,
        model: str | None,
        region: str | None,
        stage: str | None,
    ) -> None:
        self.withdrawal_reason = reason
        self.stage = Stage.WITHDRAWN

    def open_follow_up(self, new_case_id: UUID, *, at: datetime, actor: dict[str, str]) -> Request:
        """A follow-up conference was requested: a new request for the same people, linked both
        ways. Returns the new request; the link is recorded on this one."""
        if new_case_id in self.follow_ups:
            raise DomainRuleError(f"follow-up case {new_case_id} is already open")
        self._follow_up_opened(new_case_id=new_case_id, at=at, actor=actor)
        return Request.submit(
            new_case_id,
            requester=self.requester,
            central_persons=self.central_persons,
            central_group=self.central_group,
            model=self.model,
            region=self.region,
            languages=self.languages,
            description="A follow-up conference.",
            informational_talk=False,
            coordinator_wishes=self.coordinator_wishes,
            follow_up_of=self.id,
            submitted_at=at,
            actor=actor,
        )

    @event("FollowUpOpened")
    def _follow_up_opened(self, *, new_case_id: UUID, at: datetime, actor: dict[str, str]) -> None:
        self.follow_ups.append(new_case_id)

    def close_for_erasure(self, *, at: datetime, actor: dict[str, str]) -> list[UUID]:
        """The request is about to be erased (right to erasure). Returns the follow-up cases
        opened from it: they copy its requester and central persons, so they go with it. The
        closing is an event of the request itself, so a follow-up opened from it at the same
        moment conflicts with the erasure (one of the two saves is refused and tried again)
        instead of slipping past it."""
        self._closed_for_erasure(at=at, actor=actor)
        return list(self.follow_ups)

    @event("ClosedForErasure")
    def _closed_for_erasure(self, *, at: datetime, actor: dict[str, str]) -> None:
        pass

    # -- what the plan needs of the clarification ----------------------------------------
    def for_the_plan(self) -> ClarificationForPlan | None:
        """The conference questions and minimum requirements as accepted, with stable ids
        (``q1``…, ``m1``…, in the clarification's order: it cannot change after acceptance),
        for the plan's documents. None before acceptance: nobody downstream knows the case."""
        if self.accepted_at is None:
            return None
        return ClarificationForPlan(
            questions=[
                QuestionForPlan(question_id=f"q{n}", text=text)
                for n, text in enumerate(self.conference_questions, start=1)
            ],
            requirements=[
                RequirementForPlan(
                    requirement_id=f"m{n}",
                    text=m.requirement,
                    set_by=ProfessionalForPlan.model_validate(m.set_by.model_dump()),
                )
                for n, m in enumerate(self.minimum_requirements, start=1)
            ],
        )

    def check_is_open(self, wanted: str) -> None:
        if self.stage not in (Stage.SUBMITTED, Stage.CLARIFIED):
            raise DomainRuleError(f"a request that is {self.stage.value} cannot be {wanted}")


#: The values intake's events and aggregates keep.
VALUES: tuple[type[Value], ...] = (
    InformationalTalk,
    Funding,
    Professional,
    MinimumRequirement,
)
