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

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.errors import DomainRuleError

#: Models in which the regional manager may ask for two coordinators (the leaflet on group
#: conferences: a group or neighbourhood conference is often prepared by two).
TWO_COORDINATOR_MODELS = frozenset({"group"})


class Stage(StrEnum):
    SUBMITTED = "submitted"
    CLARIFIED = "clarified"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"


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
        self.funding: dict[str, Any] | None = None
        self.minimum_requirements: list[dict[str, Any]] = []
        self.stage = Stage.SUBMITTED

    def clarify(
        self,
        *,
        conference_questions: list[str],
        funding: dict[str, Any],
        minimum_requirements: list[dict[str, Any]],
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
            funding=funding,
            minimum_requirements=minimum_requirements,
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

    @event("Clarified")
    def _clarified(
        self,
        *,
        conference_questions: list[str],
        funding: dict[str, Any],
        minimum_requirements: list[dict[str, Any]],
        actor: dict[str, str],
        # Defaults: absent in events stored before they existed.
        coordinators_needed: int = 1,
        involved_organisations: list[str] | None = None,
        coordinator_wishes: dict[str, Any] | None = None,
    ) -> None:
        self.conference_questions = conference_questions
        self.funding = funding
        self.minimum_requirements = minimum_requirements
        self.coordinators_needed = coordinators_needed
        self.involved_organisations = involved_organisations or []
        self.coordinator_wishes = coordinator_wishes
        self.stage = Stage.CLARIFIED

    def accept(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.check_is_open("accepted")
        if self.stage is not Stage.CLARIFIED:
            raise DomainRuleError(
                "a request is accepted once it is clarified: record the conference question(s)"
                " and funding first"
            )
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

    @event("Accepted")
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
        # Defaults: absent in events stored before they existed.
        has_minimum_requirements: bool = False,
        coordinators_needed: int = 1,
        coordinator_wishes: dict[str, Any] | None = None,
        involved_organisations: list[str] | None = None,
        follow_up_of: UUID | None = None,
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
        translate the event alone (analysts count withdrawals before acceptance by them)."""

        class_version = 2
        reason: str
        at: datetime
        actor: dict[str, str]
        was_accepted: bool
        model: str | None
        region: str | None
        stage: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 had no region or stage, and its earliest form neither was_accepted nor
            # model.
            state.setdefault("was_accepted", False)
            state.setdefault("model", None)
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

    def check_is_open(self, wanted: str) -> None:
        if self.stage not in (Stage.SUBMITTED, Stage.CLARIFIED):
            raise DomainRuleError(f"a request that is {self.stage.value} cannot be {wanted}")
